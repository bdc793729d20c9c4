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

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import io
from .errors import UserError
from .exporting import CARD_FILE, EXPORT_FILE, FOLDER_PLACEHOLDER, METHOD_TAGS, export_model
from .methods import get_method
from .model_files import is_local_path
from .pipeline.rundir import inside_run_directory, read_metrics
from .pipeline.serve import check_serving_weights, run_config
from .policy.load import EMBEDDED_DEFAULT
from .tables import format_vector

DATA_SUFFIX = "data"
TEST_PROMPTS_CONFIG = "test_prompts"
SCORED_CONFIG = "scored"
PUSH_RECORD = "push.json"
EMBEDDED_BASE_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The Hub model the embedded default is derived from (its Q4_1 GGUF dequantised): what a card on the Hub names as
its base, where the local card names the converted folder."""
EMBEDDED_BASE_LICENSE = "apache-2.0"
"""The embedded default model's licence: that of the Hub model it is derived from."""
REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
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


@dataclass
class PushInputs:
    """What :func:`check_push` found every input of a push to be, checked: the run read once, the licence and the
    base model the cards name, the models to export (name, weights, serving mode) and the dry-run folder."""

    run_dir: Path
    namespace: str
    name: str
    config: object
    metrics: dict
    method: object
    license: str
    hub_base: str | None
    wanted: list[tuple[str, list[float], str | None]]
    dry_run: Path | None


def check_push(run_dir: str | Path, repo_prefix: str, served: Sequence[Sequence[float]] = (),
               mode: str | None = None, license: str | None = None, base_model: str | None = None,
               dry_run: str | Path | None = None, api=None) -> PushInputs:
    """Every input of :func:`push_run` checked before it exports, prints or writes anything: the prefix and every
    repo id it makes, the licence, the base model id, each served preference, the dry-run folder and, for a real
    push, that the Hub is not switched off. One sentence naming the option and its value on the first that is
    wrong: a push that fails after exporting costs minutes and leaves half its folders behind."""
    namespace, name = split_prefix(repo_prefix)
    if license is not None:
        check_license(license, "--license")
    if base_model is not None:
        problem = hub_id_problem(base_model)
        if problem:
            raise UserError(f"--base-model '{base_model}' is not a Hub model id: {problem}")
    folder = check_dry_run(dry_run)
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    metrics = read_metrics(run_dir)
    method = get_method(config.method)
    if mode is not None and not method.serve_modes:  # export would refuse it only after the first model
        raise UserError(f"--mode '{mode}' does not apply to {method.name}, which serves every preference by its own "
                        "rule (leave --mode out)")
    if mode is not None and mode not in method.serve_modes:
        raise UserError(f"--mode must be one of {', '.join(method.serve_modes)} for {method.name}, not '{mode}'")
    if mode is None and served:
        mode = "interpolate" if method.serve_modes else None
    wanted = [(entry["model"], entry["weights"], None) for entry in metrics["preferences"]]
    wanted += served_models(served, len(config.objectives), mode)
    check_repo_ids(repo_prefix, [DATA_SUFFIX, *(model for model, _, _ in wanted)])
    from_card = license is None
    license = license or base_model_license(config.model)
    if not license:
        raise UserError(f"the licence of the run's base model '{config.model.name_or_path}' is unknown (its card "
                        "states none here): give the models' licence with --license (e.g. apache-2.0)")
    if from_card:
        check_license(license, f"the licence the card of the run's base model '{config.model.name_or_path}' states "
                               "(give another with --license)")
    if dry_run is None and api is None:
        check_hub_online()
    return PushInputs(run_dir, namespace, name, config, metrics, method, license,
                      base_model or hub_base_model(config.model), wanted, folder)


HUB_NAME_MAX = 96
"""The longest name (and user or organisation) the Hub accepts in a repo id (huggingface_hub's validate_repo_id)."""
HUB_NAME = re.compile(r"[A-Za-z0-9._-]+")
HUB_LICENSE = re.compile(r"[a-z0-9][a-z0-9.+-]*")
"""The shape of a Hub licence id (apache-2.0, mit, cc-by-nc-4.0, openrail++, other). huggingface_hub (2.4) ships no
list of the ids (its docs link the Hub's page, which an offline check cannot read), so the shape is what is
checked: a licence the Hub does not know is refused by it at upload, after the repos were created."""


def hub_id_problem(repo_id: str) -> str | None:
    """Why the Hub would refuse ``repo_id`` (``name`` or ``ORG/name``) as a repo id, as part of a sentence; None
    when it would not. The rules of huggingface_hub's ``validate_repo_id``, each said in words (its own messages
    are two sentences ending in the id), and that function itself as the last word."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    parts = repo_id.split("/")
    if len(parts) > 2:
        return f"it has {len(parts) - 1} '/', where a Hub id is NAME or ORG/name"
    for part in parts:
        if not part:
            return "it has an empty part"
        if not HUB_NAME.fullmatch(part):
            odd = next(c for c in part if not HUB_NAME.fullmatch(c))
            return f"'{odd}' is not one of the letters, digits, '-', '_' or '.' a Hub id is made of"
        if len(part) > HUB_NAME_MAX:
            return f"'{part}' has {len(part)} characters, where the Hub allows at most {HUB_NAME_MAX}"
        if part[0] in "-." or part[-1] in "-.":
            return f"'{part}' starts or ends with '-' or '.'"
    doubled = next((pair for pair in ("--", "..") if pair in repo_id), None)
    if doubled:
        return f"it holds '{doubled}'"
    if repo_id.endswith(".git"):
        return "it ends in '.git'"
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        return "huggingface_hub refuses it as a repo id"
    return None


def check_repo_ids(repo_prefix: str, suffixes: Sequence[str]) -> None:
    """Every repo id ``repo_prefix-SUFFIX`` a push makes is one the Hub takes."""
    ids = [f"{repo_prefix}-{suffix}" for suffix in suffixes]
    for repo_id in ids:
        problem = hub_id_problem(repo_id)
        if problem is None:
            continue
        longest = max(len(suffix) + 1 for suffix in suffixes)
        if len(repo_id.split("/")[1]) > HUB_NAME_MAX:
            # the prefix's name leaves no room for its suffixes: say how long it may be, not only that it is too long
            raise UserError(f"--repo-prefix '{repo_prefix}' is too long: its repo '{repo_id}' has a name of "
                            f"{len(repo_id.split('/')[1])} characters, where the Hub allows at most {HUB_NAME_MAX} "
                            f"(give a name of at most {HUB_NAME_MAX - longest} characters)")
        raise UserError(f"--repo-prefix '{repo_prefix}' would make the repo '{repo_id}', which the Hub refuses: "
                        f"{problem}")


def check_license(license: str, what: str) -> None:
    """``license`` has the shape of a Hub licence id (see ``HUB_LICENSE``); ``what`` names where it came from."""
    if not HUB_LICENSE.fullmatch(license):
        raise UserError(f"{what} '{license}' is not a Hub licence id (lower-case letters, digits, '.', '-' or '+', "
                        "as apache-2.0, mit, cc-by-4.0 or other)")


def served_models(served: Sequence[Sequence[float]], num_objectives: int,
                  mode: str | None) -> list[tuple[str, list[float], str | None]]:
    """(repo suffix, weights, mode) of each ``--served`` preference: one sentence on an empty, wrong-length,
    non-finite, negative or all-zero one, and on one that is the same preference as an earlier one once both are
    normalised (``0.5,0.5`` and ``1,1`` would push one model twice)."""
    wanted, earlier = [], []
    for weights in served:
        values = [float(w) for w in weights]
        shown = ",".join(f"{w:g}" for w in values)
        if not values:
            raise UserError(f"--served '' is empty (0 weights): give the preference's {num_objectives} weights "
                            "separated by commas (0.3,0.7)")
        try:
            preference = check_serving_weights(values, num_objectives)
        except UserError as exc:
            # check_serving_weights says "weights (1.0, 2.0): <why>"; the option and its value replace the prefix
            raise UserError(f"--served {shown}: {str(exc).partition('): ')[2] or exc}") from None
        # Named by the preference served (normalised, as export serves it): 1,1 is w0.5_0.5, and no weight above 1
        # is written with an exponent's '+', which the Hub refuses in a repo name.
        suffix = f"w{'_'.join(f'{w:.3g}' for w in preference)}"
        for other_shown, other, other_suffix in earlier:
            if np.allclose(other, preference, rtol=0, atol=1e-12):
                raise UserError(f"--served {shown} is the same preference as --served {other_shown} once both are "
                                "normalised to sum to 1: give each preference once")
            if other_suffix == suffix:  # the repo is named by the weights to 3 significant digits
                raise UserError(f"--served {shown} and --served {other_shown} would both be the repo ending in "
                                f"-{suffix}: give preferences whose weights differ in their first 3 significant "
                                "digits")
        earlier.append((shown, preference, suffix))
        wanted.append((suffix, values, mode))
    return wanted


def check_dry_run(dry_run: str | Path | None) -> Path | None:
    """The ``--dry-run`` folder, checked: not empty text (which would be the working directory), not a file, new
    or empty, one that can be made, and not in a run directory (this run's or another's)."""
    if dry_run is None:
        return None
    if not str(dry_run).strip():
        raise UserError("--dry-run '' is empty: give a new or empty folder to build the repos in")
    folder = Path(dry_run).expanduser()
    inside = inside_run_directory(folder)
    if inside is not None:  # first: a run directory is never empty, but "not empty" would not say why it is wrong
        # the run's own files would be mixed with (or replaced by) the repos' folders
        where = "is" if inside.resolve() == folder.resolve() else "lies inside"
        raise UserError(f"--dry-run '{dry_run}' {where} the run directory '{inside}', whose files are the run's "
                        "own: give a new or empty folder outside it")
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--dry-run '{dry_run}' is a file: give a new or empty folder to build the repos in")
    if folder.is_dir() and any(folder.iterdir()):
        raise UserError(f"--dry-run folder '{dry_run}' exists and is not empty: give a new or empty folder")
    parent = next((p for p in folder.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UserError(f"--dry-run '{dry_run}' cannot be made: '{parent}' is a file")
    return folder


def check_hub_online() -> None:
    """A real push needs the Hub: huggingface_hub's offline mode refuses every request, which would be found only
    after every model was exported."""
    import huggingface_hub.constants

    if huggingface_hub.constants.HF_HUB_OFFLINE:
        variable = next((v for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") if os.environ.get(v)),
                        "HF_HUB_OFFLINE")
        raise UserError(f"push needs the Hub, and {variable}={os.environ.get(variable, '1')} switches it off: unset "
                        f"{variable}, or give --dry-run DIR to build the repos' folders without the Hub")


def split_prefix(repo_prefix: str) -> tuple[str, str]:
    """(ORG, name) of ``--repo-prefix ORG/name``; one sentence when it is not that."""
    parts = repo_prefix.split("/")
    if len(parts) != 2 or not all(REPO_NAME.fullmatch(part) for part in parts):
        raise UserError(f"--repo-prefix must be ORG/name (a Hub user or organisation, a name of letters, digits, "
                        f"'-', '_' or '.'), not '{repo_prefix}'")
    return parts[0], parts[1]


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


def base_model_license(model_config) -> str | None:
    """The ``license`` the base model's card states: a local folder's README.md, a Hub model's card as the local
    Hub cache holds it (nothing is downloaded), the embedded default's known licence; None when none is known."""
    from huggingface_hub import metadata_load

    name = model_config.name_or_path
    if name == EMBEDDED_DEFAULT:
        return EMBEDDED_BASE_LICENSE
    if is_local_path(name):
        card = Path(name).expanduser() / CARD_FILE
    else:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, CARD_FILE, revision=model_config.revision)
        card = Path(cached) if isinstance(cached, str) else None
    if card is None or not card.is_file():
        return None
    license = (metadata_load(card) or {}).get("license")
    return license if isinstance(license, str) and license else None


def hub_base_model(model_config) -> str | None:
    """The Hub id a card on the Hub names as the run's base model: a Hub base as it is, the embedded default's
    origin; None for a local folder (the Hub knows no local path)."""
    name = model_config.name_or_path
    if name == EMBEDDED_DEFAULT:
        return EMBEDDED_BASE_HUB_ID
    return None if is_local_path(name) else name


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

