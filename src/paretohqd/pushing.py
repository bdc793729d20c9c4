"""A finished run on the Hugging Face Hub: a model repo per trained preference (and per served one asked for), the
selected training data of every preference as one dataset repo, and a collection that ties them together.

    paretohqd push runs/demo --repo-prefix my-org/demo [--private] [--served 0.35,0.65 ...] [--dry-run DIR]
    paretohqd.push("runs/demo", "my-org/demo", private=True)

With ``--repo-prefix ORG/name``:

- ``ORG/name-pref_00``, ``ORG/name-pref_01``, ...: each evaluated preference's model (its name in the run) exactly as
  ``paretohqd export`` writes it (a peft adapter on the run's base model, or full weights; tokenizer, generation
  config, ``paretohqd.json``). Its card is export's card with the fields the Hub reads added to the front matter:
  ``datasets`` (``ORG/name-data``, and the run's source dataset when it is a Hub id), ``license`` (the base model's,
  or ``--license``) and ``model-index``: the held-out mean raw reward of every objective, the collapse rate and the
  run's hypervolumes, measured on the test prompts of ``ORG/name-data`` (config ``test_prompts``);
- ``ORG/name-w0.35_0.65``: each ``--served`` preference (named by its weights normalised to sum to 1: ``1,1`` is
  ``w0.5_0.5``), made by export (by default as the exact interpolation of the trained models around it);
- ``ORG/name-data``: per preference a config (``pref_00``, ...) whose split ``stage1`` holds the samples its
  selection chose, with their raw rewards, Pareto layer and distance to the ray (and ``stage2`` the stage-2
  selection, when the run has one); a method without a selection has the config ``scored``: the scored offline data
  it trained from. Config ``test_prompts``: the held-out prompts the evaluation answered;
- the collection ``name`` in ``ORG``, holding every repo above.

Every input is checked first (:func:`check_push`), before anything is exported, printed or written. Every repo's
folder is built first; ``--dry-run DIR`` builds them in DIR (with ``push.json``: what would be created)
and uploads nothing. A push creates each repo (an existing one is updated), uploads its folder as one commit, then
makes the collection. Tests pass a stand-in for ``huggingface_hub.HfApi`` as ``api``.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from . import io
from .errors import UserError
from .exporting import CARD_FILE, EXPORT_FILE, FOLDER_PLACEHOLDER, METHOD_TAGS, export_model
from .methods import get_method
from .push_inputs import DATA_SUFFIX, check_push
from .tables import format_vector

TEST_PROMPTS_CONFIG = "test_prompts"
SCORED_CONFIG = "scored"
PUSH_RECORD = "push.json"
HUB_DATASET_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


@dataclass
class Repo:
    """One repository a push creates or updates, and the folder uploaded to it."""

    repo_id: str
    repo_type: str
    """``model`` or ``dataset``."""
    folder: Path
    note: str
    """What it holds, as the collection says it."""

    def describe(self) -> dict:
        return {**asdict(self), "folder": self.folder.name,
                "files": sorted(p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*") if p.is_file())}


def push_run(run_dir: str | Path, repo_prefix: str, private: bool = False,
             served: Sequence[Sequence[float]] = (), mode: str | None = None, license: str | None = None,
             base_model: str | None = None, merge: bool = False, dry_run: str | Path | None = None, api=None,
             log: Callable[[str], None] = print) -> list[Repo]:
    """Publish the finished run ``run_dir`` under ``repo_prefix`` (``ORG/name``; see the module's text); returns
    the repos. ``served``: further preferences to export and push (``mode``: how they are served, by default
    ``interpolate`` for a method with one model per preference); ``license``: the models' licence when the base
    model's card does not state one; ``base_model``: the Hub id the cards name as the base model when the run's
    base is a local folder (a Hub base is named as it is; without it a local base is named nowhere); ``merge``:
    merged full weights instead of LoRA adapters (as export's); ``dry_run``: a new or empty folder to build every
    repo's folder in, uploading nothing; ``api``: a ``huggingface_hub.HfApi`` (default: a new one, with the token
    ``hf auth login`` stored, or ``HF_TOKEN``)."""
    checked = check_push(run_dir, repo_prefix, served, mode, license, base_model, dry_run, api)
    run_dir, name, config, metrics, method = checked.run_dir, checked.name, checked.config, checked.metrics, \
        checked.method
    # A notice, not a refusal: printed only once every input has passed, so a refused push prints one line.
    if checked.hub_base is None:
        log(f"push: the run's base model '{config.model.name_or_path}' is a local folder: the cards name no "
            "base_model (give its Hub id with --base-model)")
    with RepoFolders(checked.dry_run) as root:
        data = Repo(f"{repo_prefix}-{DATA_SUFFIX}", "dataset", root / f"{name}-{DATA_SUFFIX}",
                    "the selected training data of every preference, and the held-out test prompts")
        configs = write_dataset(data.folder, run_dir, config, metrics, repo_prefix)
        sources = hub_datasets(config.data.source)
        repos = [data]
        for model, weights, how in checked.wanted:
            repo = Repo(f"{repo_prefix}-{model}", "model", root / f"{name}-{model}",
                        f"{method.name}, preference {format_vector(weights, '.3g')}")
            log(f"push: exporting {model} (preference {format_vector(weights, '.3g')}) for {repo.repo_id}")
            export_model(run_dir, weights, repo.folder, merge=merge, mode=how)
            add_hub_metadata(repo.folder / CARD_FILE, repo.repo_id, checked.hub_base, [data.repo_id, *sources],
                             checked.license, data.repo_id)
            repos.append(repo)
        plan = {"run": str(run_dir.resolve()), "private": private, "repos": [r.describe() for r in repos],
                "collection": {"namespace": checked.namespace, "title": name, "items": [r.repo_id for r in repos]},
                "dataset_configs": configs}
        if dry_run is not None:
            io.write_json(root / PUSH_RECORD, plan)
            return repos
        upload(api, repos, checked.namespace, name, private, run_dir, method.name, log)
    return repos


class RepoFolders:
    """The folder the repos are built in: ``dry_run`` (new or empty, as :func:`check_dry_run` found it; kept), or a
    temporary one (removed). A dry run that fails half-way leaves the folder as it found it."""

    def __init__(self, dry_run: Path | None):
        self.dry_run = dry_run
        self.scratch: tempfile.TemporaryDirectory | None = None
        self.made: Path | None = None

    def __enter__(self) -> Path:
        if self.dry_run is None:
            self.scratch = tempfile.TemporaryDirectory(prefix="paretohqd-push-")
            return Path(self.scratch.name)
        missing = [p for p in [self.dry_run, *self.dry_run.parents] if not p.exists()]
        self.made = missing[-1] if missing else None
        self.dry_run.mkdir(parents=True, exist_ok=True)
        return self.dry_run

    def __exit__(self, exc_type, *exc) -> None:
        if self.scratch is not None:
            self.scratch.cleanup()
        elif exc_type is not None:
            # half the repos' folders would read as a finished dry run; the folder was new or empty before
            if self.made is not None:
                shutil.rmtree(self.made, ignore_errors=True)
            else:
                for entry in self.dry_run.iterdir():
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------ licence, data


def hub_datasets(source) -> list[str]:
    """The run's data sources that are Hub dataset ids (not a local file or folder, not a packaged dataset)."""
    sources = source if isinstance(source, list) else [source]
    return [s for s in sources if isinstance(s, str) and HUB_DATASET_ID.fullmatch(s)
            and not s.startswith("embedded:") and not Path(s).expanduser().exists()]


def write_dataset(folder: Path, run_dir: Path, config, metrics: dict, repo_prefix: str) -> list[dict]:
    """The dataset repo's folder: one parquet file per (config, split) and the dataset card; returns the
    ``configs`` of its front matter."""
    names = list(metrics["objectives"])
    configs = []
    stages = [("stage1", run_dir / "selection", run_dir / "scores" / "scores.parquet"),
              ("stage2", run_dir / "stage2" / "selection", run_dir / "stage2" / "scores.parquet")]
    frames: dict[Path, pd.DataFrame] = {}
    for entry in metrics["preferences"]:
        model, files = entry["model"], []
        for split, selections, scores in stages:
            path = selections / f"{model}.json"
            if not (path.is_file() and scores.is_file()):
                continue
            selection = io.read_json(path)
            frame = frames.setdefault(scores, pd.read_parquet(scores))
            files.append((split, selected_samples(frame, selection, names)))
        if files:
            configs.append(_write_config(folder, model, files))
    method_selects = bool(configs)
    if not method_selects:  # a method that trains on the whole scored data (or prompts of it)
        scores = pd.read_parquet(run_dir / "scores" / "scores.parquet")
        configs.append(_write_config(folder, SCORED_CONFIG, [("train", _sample_columns(scores, names))]))
    test_prompts = run_dir / "inputs" / "test_prompts.parquet"
    if test_prompts.is_file():
        configs.append(_write_config(folder, TEST_PROMPTS_CONFIG, [("test", pd.read_parquet(test_prompts))]))
    write_dataset_card(folder / CARD_FILE, config, metrics, repo_prefix, configs, method_selects)
    return configs


def selected_samples(scores: pd.DataFrame, selection: dict, names: list[str]) -> pd.DataFrame:
    """The samples one selection chose, in its order: text, raw rewards, Pareto layer and distance to the ray."""
    frame = _sample_columns(scores.iloc[selection["rows"]], names).reset_index(drop=True)
    frame["pareto_layer"] = selection["layers"]
    frame[f"distance_to_ray_{selection.get('metric', 'perpendicular')}"] = selection["distances"]
    return frame


def _sample_columns(scores: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    kept = [c for c in ("id", "prompt", "response", "truncated") if c in scores.columns]
    return scores[kept + [n for n in names if n in scores.columns]]


def _write_config(folder: Path, config_name: str, splits: list[tuple[str, pd.DataFrame]]) -> dict:
    files = []
    for split, frame in splits:
        relative = f"{config_name}/{split}.parquet"
        io.write_parquet(folder / relative, frame.reset_index(drop=True))
        files.append({"split": split, "path": relative})
    return {"config_name": config_name, "data_files": files}


def write_dataset_card(path: Path, config, metrics: dict, repo_prefix: str, configs: list[dict],
                       method_selects: bool) -> None:
    """README.md of the dataset repo: front matter with ``configs`` (checked by parsing it back), and what each
    config holds."""
    from huggingface_hub import DatasetCard, DatasetCardData

    method = get_method(config.method)
    names = list(metrics["objectives"])
    data = DatasetCardData(pretty_name=f"{repo_prefix.split('/')[1]}: {method.name} training data",
                           tags=list(dict.fromkeys(["paretohqd", "multi-objective-alignment",
                                                    METHOD_TAGS.get(config.method, config.method)])),
                           configs=configs)
    weights = {entry["model"]: entry["weights"] for entry in metrics["preferences"]}
    sources = config.data.source if isinstance(config.data.source, list) else [config.data.source]
    # A local path means nothing on the Hub (and says where the pusher keeps files): its file name is enough.
    shown = ", ".join(f"`{s}`" if s in hub_datasets(s) or str(s).startswith("embedded:")
                      else f"the local file `{Path(str(s)).name}`" for s in sources)
    lines = [f"# {method.name} training data of `{repo_prefix}`", "",
             f"Pushed by paretohqd from the run `{Path(config.output_dir).resolve().name}` (objectives, maximised: "
             f"{', '.join(names)}; data source: {shown}). Each preference's model is the repo "
             f"`{repo_prefix}-<config>`.", "", "## Configs", ""]
    for entry in configs:
        name = entry["config_name"]
        splits = ", ".join(f"`{f['split']}`" for f in entry["data_files"])
        if name == TEST_PROMPTS_CONFIG:
            lines.append(f"- `{name}` ({splits}): the held-out prompts every model answered for its card's "
                         "model-index results")
        elif name == SCORED_CONFIG:
            lines.append(f"- `{name}` ({splits}): the offline samples with their raw rewards, what {method.name} "
                         "trained from")
        else:
            lines.append(f"- `{name}` ({splits}): the samples ParetoHqD selected for preference "
                         f"{format_vector(weights.get(name, []), '.3g')} (the first Pareto layers nearest its ray)"
                         + ("; `stage2`: those selected among the stage-1 models' generations"
                            if len(entry["data_files"]) > 1 else ""))
    if method_selects:
        lines += ["", "Columns: the sample's `id`, `prompt`, `response` (and `truncated`), its raw reward per "
                  f"objective ({', '.join(names)}), its `pareto_layer` and its distance to the preference's ray."]
    lines += ["", "```python", "from datasets import load_dataset", "",
              f"data = load_dataset({repo_prefix + '-' + DATA_SUFFIX!r}, {configs[0]['config_name']!r})",
              "```", ""]
    card = DatasetCard(f"---\n{data.to_yaml()}\n---\n" + "\n".join(lines))
    card.save(str(path))
    if [c["config_name"] for c in DatasetCard.load(str(path)).data.configs] != [c["config_name"] for c in configs]:
        raise RuntimeError(f"the dataset card's front matter does not read back its configs ({path})")


# ---------------------------------------------------------------------------------------------- model cards


def add_hub_metadata(card_path: Path, repo_id: str, base_model: str | None, datasets: list[str], license: str,
                     data_repo: str) -> None:
    """Export's card with what the Hub reads in its front matter: ``base_model`` as a Hub id (None: left out, where
    export names a local folder), ``datasets``, ``license`` and ``model-index`` (from the evaluation export
    recorded there); the usage example names the repo."""
    from huggingface_hub import EvalResult, ModelCard

    card = ModelCard.load(str(card_path))
    facts = card.data.to_dict().get("paretohqd", {})
    record = io.read_json(card_path.with_name(EXPORT_FILE))
    evaluation = facts.get("evaluation") or {}
    common = dict(task_type="text-generation", task_name="Multi-objective alignment (held-out prompts)",
                  dataset_type=data_repo, dataset_name=f"{data_repo} test prompts", dataset_config=TEST_PROMPTS_CONFIG,
                  dataset_split="test")
    results = []
    if evaluation.get("evaluated"):
        for objective, value in zip(record["objectives"], evaluation["mean_rewards"]):
            results.append(EvalResult(metric_type=f"mean_reward_{objective}", metric_value=float(value),
                                      metric_name=f"mean raw reward: {objective}", **common))
        results.append(EvalResult(metric_type="collapse_rate", metric_value=float(evaluation["collapse_rate"]),
                                  metric_name="collapse rate (share of degenerate responses)", **common))
        # The front this model is a point of; a preference the run did not evaluate is on no measured front, and
        # its card's body names its evaluated neighbours instead of a model-index.
        for name, value in (evaluation.get("hypervolume") or {}).items():
            results.append(EvalResult(metric_type="hypervolume", metric_value=float(value), metric_config=name,
                                      metric_name=f"the run's hypervolume, {name}", **common))
    card.data.base_model = base_model
    card.data.license = license
    card.data.datasets = datasets
    if results:
        card.data.model_name = repo_id
        card.data.eval_results = results
    card.text = card.text.replace(FOLDER_PLACEHOLDER, repo_id)
    card.save(str(card_path))
    written = ModelCard.load(str(card_path)).data
    if (written.base_model != base_model or written.license != license or written.datasets != datasets
            or len(written.eval_results or []) != len(results)):
        raise RuntimeError(f"the model card's front matter does not read back its Hub fields ({card_path})")


# ---------------------------------------------------------------------------------------------------- upload


def upload(api, repos: list[Repo], namespace: str, title: str, private: bool, run_dir: Path, method_name: str,
           log: Callable[[str], None]) -> str:
    """Create (or update) every repo with its folder as one commit, then the collection; returns its slug."""
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    message = f"paretohqd push of the run {run_dir.resolve().name} ({method_name})"
    uploaded: list[str] = []
    for repo in repos:
        _on_the_hub(f"create the {repo.repo_type} repo {repo.repo_id}", uploaded, api.create_repo, repo.repo_id,
                    repo_type=repo.repo_type, private=private, exist_ok=True)
        _on_the_hub(f"upload {repo.repo_id}", uploaded, api.upload_folder, repo_id=repo.repo_id,
                    folder_path=str(repo.folder), repo_type=repo.repo_type, commit_message=message)
        uploaded.append(repo.repo_id)
        log(f"push: uploaded {repo.repo_type} {repo.repo_id}")
    collection = _on_the_hub(
        f"create the collection {title} in {namespace}", uploaded, api.create_collection, title, namespace=namespace,
        private=private, exists_ok=True,
        description=f"{method_name}: one model per preference, the measured front and the selected training data "
                    "(paretohqd)")
    for repo in repos:
        _on_the_hub(f"add {repo.repo_id} to the collection {collection.slug}", uploaded, api.add_collection_item,
                    collection.slug, repo.repo_id, repo.repo_type, note=repo.note, exists_ok=True)
    log(f"push: collection {collection.slug} holds {len(repos)} repos")
    return collection.slug


def _on_the_hub(what: str, uploaded: list[str], call: Callable, *args, **kwargs):
    """``call(*args, **kwargs)``, or one sentence when the Hub refuses it or cannot be reached (huggingface_hub's
    errors are OSErrors, which would otherwise read as a full disk)."""
    try:
        return call(*args, **kwargs)
    except OSError as exc:
        done = f"; already uploaded: {', '.join(uploaded)} (pushing again updates them)" if uploaded else ""
        raise UserError(f"could not {what}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__} (log in "
                        f"with `hf auth login` or set HF_TOKEN; check ORG and the network){done}") from None


def file_listing(repos: list[Repo]) -> list[str]:
    """One line per repo and one per file it uploads, with the file's size: what a dry run prints."""
    lines = []
    for repo in repos:
        lines.append(f"{repo.repo_type} {repo.repo_id}  ({repo.folder})")
        for file in sorted(p for p in repo.folder.rglob("*") if p.is_file()):
            lines.append(f"  {file.relative_to(repo.folder).as_posix()}  {file.stat().st_size} bytes")
    return lines

