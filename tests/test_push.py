"""`paretohqd push`: a finished run's models, selected data and collection, uploaded to a local stand-in for the
Hub API (no network); the uploaded files and cards are read back as the Hub reads them."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from huggingface_hub import DatasetCard, ModelCard, metadata_load

from paretohqd import io
from paretohqd.cli import main
from paretohqd.errors import UserError
from paretohqd.pushing import push_run

from .test_hostile import cli, judge, snapshot
from .test_hostile_pass import run_cli


class StandInHub:
    """The four HfApi calls a push makes: records each, and keeps a copy of every uploaded folder."""

    def __init__(self, root: Path):
        self.root = root
        self.calls = []
        self.collections = {}

    def create_repo(self, repo_id, *, repo_type=None, private=None, exist_ok=False, **kwargs):
        self.calls.append(("create_repo", repo_id, repo_type, private, exist_ok))
        return f"https://hub.invalid/{repo_id}"

    def upload_folder(self, *, repo_id, folder_path, repo_type=None, commit_message=None, **kwargs):
        self.calls.append(("upload_folder", repo_id, repo_type, commit_message))
        shutil.copytree(folder_path, self.repo(repo_id, repo_type), dirs_exist_ok=True)

    def create_collection(self, title, *, namespace=None, description=None, private=False, exists_ok=False,
                          **kwargs):
        slug = f"{namespace}/{title}-0123456789abcdef"
        self.calls.append(("create_collection", title, namespace, private, exists_ok))
        self.collections[slug] = []
        return SimpleNamespace(slug=slug, title=title)

    def add_collection_item(self, collection_slug, item_id, item_type, *, note=None, exists_ok=False, **kwargs):
        self.calls.append(("add_collection_item", collection_slug, item_id, item_type))
        self.collections[collection_slug].append((item_id, item_type, note))

    def repo(self, repo_id: str, repo_type: str) -> Path:
        return self.root / repo_type / repo_id


def test_push_uploads_every_model_the_data_and_a_collection(served_run, tmp_path):
    hub = StandInHub(tmp_path / "hub")
    metrics = io.read_json(served_run / "eval" / "metrics.json")
    repos = push_run(served_run, "test-org/tiny", private=True, served=[[0.75, 0.25], [0.4, 0.6]], license="mit",
                     base_model="test-org/tiny-base", api=hub, log=lambda *_: None)
    served = ["test-org/tiny-w0.75_0.25", "test-org/tiny-w0.4_0.6"]
    models = [f"test-org/tiny-{entry['model']}" for entry in metrics["preferences"]] + served
    assert [r.repo_id for r in repos] == ["test-org/tiny-data", *models]
    creates = [call for call in hub.calls if call[0] == "create_repo"]
    assert creates == [("create_repo", "test-org/tiny-data", "dataset", True, True)] + [
        ("create_repo", repo, "model", True, True) for repo in models]
    assert [call[1] for call in hub.calls if call[0] == "upload_folder"] == ["test-org/tiny-data", *models]
    (slug, items), = hub.collections.items()
    assert slug.startswith("test-org/tiny-") and ("create_collection", "tiny", "test-org", True, True) in hub.calls
    assert [(item, kind) for item, kind, _ in items] == [("test-org/tiny-data", "dataset")] + [
        (repo, "model") for repo in models]

    names = metrics["objectives"]
    for entry in metrics["preferences"]:
        folder = hub.repo(f"test-org/tiny-{entry['model']}", "model")
        assert {"README.md", "paretohqd.json", "adapter_config.json", "adapter_model.safetensors",
                "generation_config.json", "tokenizer_config.json"} <= {p.name for p in folder.iterdir()}
        meta = metadata_load(folder / "README.md")
        assert meta["base_model"] == "test-org/tiny-base"
        assert meta["datasets"] == ["test-org/tiny-data"]
        assert meta["license"] == "mit"
        assert {"paretohqd", "multi-objective-alignment"} <= set(meta["tags"])
        card = ModelCard.load(folder / "README.md")
        results = {(r.metric_type, r.metric_config): r for r in card.data.eval_results}
        for name, value in zip(names, entry["mean_rewards"]):
            result = results[(f"mean_reward_{name}", None)]
            assert result.metric_value == pytest.approx(value)
            assert (result.dataset_type, result.dataset_config, result.dataset_split) == (
                "test-org/tiny-data", "test_prompts", "test")
        assert results[("collapse_rate", None)].metric_value == pytest.approx(entry["collapse_rate"])
        hypervolumes = {config: r.metric_value for (kind, config), r in results.items() if kind == "hypervolume"}
        assert hypervolumes and all(value == pytest.approx(metrics[name]) for name, value in hypervolumes.items())
        assert card.data.model_name == f"test-org/tiny-{entry['model']}"
        assert "path/to/this/folder" not in card.text and f"'test-org/tiny-{entry['model']}'" in card.text
    # a served preference the run evaluated (a midpoint) carries its own numbers; one it did not has no model-index
    midpoint = next(entry for entry in metrics["served"] if entry["weights"] == [0.75, 0.25])
    folder = hub.repo(served[0], "model")
    assert json.loads((folder / "paretohqd.json").read_text())["mode"] == "interpolate"
    results = {r.metric_type: r.metric_value for r in ModelCard.load(folder / "README.md").data.eval_results}
    assert results[f"mean_reward_{names[0]}"] == pytest.approx(midpoint["mean_rewards"][0])
    unevaluated = metadata_load(hub.repo(served[1], "model") / "README.md")
    assert "model-index" not in unevaluated and unevaluated["datasets"] == ["test-org/tiny-data"]

    data = hub.repo("test-org/tiny-data", "dataset")
    card = DatasetCard.load(data / "README.md")
    configs = {c["config_name"]: c["data_files"] for c in card.data.configs}
    assert set(configs) == {*(entry["model"] for entry in metrics["preferences"]), "test_prompts"}
    for entry in metrics["preferences"]:
        (split,) = configs[entry["model"]]
        assert split["split"] == "stage1"
        frame = pd.read_parquet(data / split["path"])
        selection = io.read_json(served_run / "selection" / f"{entry['model']}.json")
        assert frame["id"].tolist() == selection["sample_ids"]
        assert frame["pareto_layer"].tolist() == selection["layers"]
        assert {"prompt", "response", *names} <= set(frame.columns)
    test = pd.read_parquet(data / configs["test_prompts"][0]["path"])
    assert len(test) == metrics["num_test_prompts"]


def test_dry_run_builds_the_folders_prints_the_files_and_uploads_nothing(served_run, tmp_path, capsys,
                                                                        monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", lambda *a, **k: pytest.fail("a dry run made an HfApi"))
    folder = tmp_path / "dry"
    code = main(["push", str(served_run), "--repo-prefix", "test-org/tiny", "--license", "mit",
                 "--dry-run", str(folder)])
    out = capsys.readouterr().out
    assert code == 0
    assert "dataset test-org/tiny-data" in out and "model test-org/tiny-pref_00" in out
    assert "  pref_00/stage1.parquet" in out and "  adapter_model.safetensors" in out and "nothing uploaded" in out
    record = io.read_json(folder / "push.json")
    assert record["collection"]["items"][0] == "test-org/tiny-data"
    assert {repo["repo_id"] for repo in record["repos"]} == set(record["collection"]["items"])
    assert "README.md" in record["repos"][1]["files"]
    # the run's base is a local folder: without --base-model the cards name none rather than a local path
    assert "base_model" not in metadata_load(folder / "tiny-pref_00" / "README.md")


def test_push_refuses_before_any_work(served_run, tmp_path):
    with pytest.raises(UserError, match="--repo-prefix must be ORG/name"):
        push_run(served_run, "no-slash", license="mit", dry_run=tmp_path / "a")
    with pytest.raises(UserError, match=r"licence of the run's base model .* is unknown.*--license"):
        push_run(served_run, "test-org/tiny", dry_run=tmp_path / "b")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("x")
    with pytest.raises(UserError, match="exists and is not empty"):
        push_run(served_run, "test-org/tiny", license="mit", dry_run=tmp_path / "c")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("arguments, pattern", [
    ([], r"--repo-prefix"),
    (["--repo-prefix", "test-org/tiny", "--served", "half,half"], r"--served must be numbers .* 'half,half'"),
])
def test_push_arguments_are_refused_in_one_sentence(served_run, capsys, arguments, pattern):
    import re

    try:
        code = main(["push", str(served_run), *arguments])
    except SystemExit as exit:  # argparse's own errors leave through SystemExit
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("paretohqd: error:") and re.search(pattern, lines[0]), err


def test_a_hub_that_cannot_be_reached_is_one_sentence(served_run, capsys):
    """huggingface_hub's errors are OSErrors: one that reaches the upload (here offline mode, as the real HfApi
    raises it before any connection) is one sentence, not a traceback and not a disk error."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    class Unreachable(StandInHub):
        def create_repo(self, repo_id, **kwargs):
            raise OfflineModeIsEnabled("Cannot reach https://huggingface.co/api/repos/create: offline mode is enabled")

    lines = []
    with pytest.raises(UserError) as refused:
        push_run(served_run, "test-org/tiny", license="mit", api=Unreachable(Path("unused")), log=lines.append)
    assert "could not create the dataset repo test-org/tiny-data" in str(refused.value)
    assert "hf auth login" in str(refused.value) and "offline mode is enabled" in str(refused.value)


# ---------------------------------------------------------------------------------------------------------------
# The hostile pass, classes D (push checked its inputs late: after a notice line, after exporting every model) and
# F (values the Hub refuses): every input is checked before any export, printed line or written file.


def served_copy(served_run: Path, tmp_path: Path) -> Path:
    """A private copy of the served run (a refused push must leave it as it was; judge compares)."""
    shutil.copytree(served_run, tmp_path / "run", symlinks=True)
    return tmp_path / "run"


PUSH = [
    ("served-wrong-length", ["--served", "1,2,3"], [r"--served 1,2,3", r"3 weights"]),
    ("served-nan", ["--served", "nan,1"], [r"--served nan,1", r"non-finite"]),
    ("served-negative", ["--served", "-1,1"], [r"--served -1,1", r"negative"]),
    ("served-all-zero", ["--served", "0,0"], [r"--served 0,0", r"all zeros"]),
    ("served-empty", ["--served", ""], [r"--served ''", r"0 weights|empty"]),
    ("served-same-preference-twice", ["--served", "0.5,0.5", "--served", "1,1"],
     [r"--served 1,1 is the same preference as --served 0.5,0.5"]),
    ("served-same-repo-name", ["--served", "0.3331,0.6669", "--served", "0.3332,0.6668"],
     [r"--served 0.3332,0.6668 and --served 0.3331,0.6669", r"-w0.333_0.667"]),
    ("prefix-too-long", ["--repo-prefix", "org/" + "x" * 200], [r"--repo-prefix 'org/x{200}'", r"96", r"too long"]),
    ("prefix-trailing-dash", ["--repo-prefix", "org/demo-"], [r"--repo-prefix 'org/demo-'", r"'--'"]),
    ("prefix-org-too-long", ["--repo-prefix", "o" * 97 + "/demo"], [r"--repo-prefix", r"97 characters"]),
    ("license-not-a-hub-licence", ["--license", "not a licence!"], [r"--license 'not a licence!'",
                                                                    r"not a Hub licence id"]),
    ("base-model-not-a-hub-id", ["--base-model", "bad id!!"], [r"--base-model 'bad id!!'", r"not a Hub model id"]),
    ("base-model-double-dot", ["--base-model", "org/a..b"], [r"--base-model 'org/a\.\.b'", r"'\.\.'"]),
]


@pytest.mark.parametrize("options, patterns", [c[1:] for c in PUSH], ids=[c[0] for c in PUSH])
def test_push_inputs_refused_before_any_work(served_run, tmp_path, options, patterns):
    run = served_copy(served_run, tmp_path)
    before = snapshot(run)
    prefix = [] if "--repo-prefix" in options else ["--repo-prefix", "me/demo"]
    license = [] if "--license" in options else ["--license", "mit"]
    # the run's base is a local folder: a push that printed its notice before refusing has two lines on stderr
    judge(cli("push", run, *prefix, *license, *options, "--dry-run", tmp_path / "dry"), *patterns,
          root=tmp_path, run=run, before=before)
    assert not (tmp_path / "dry").exists(), "a --dry-run folder made for a refused push"


@pytest.mark.parametrize("target", ["file", "non-empty", "the-run", "inside-the-run", "empty-text", "under-a-file"])
def test_push_dry_run_folder_refused_in_one_line(served_run, tmp_path, monkeypatch, target):
    run = served_copy(served_run, tmp_path)
    before = snapshot(run)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f").write_text("precious\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep.txt").write_text("precious\n")
    path = {"file": tmp_path / "f", "non-empty": tmp_path / "d", "the-run": run, "inside-the-run": run / "pushed",
            "empty-text": "", "under-a-file": tmp_path / "f" / "dry"}[target]
    pattern = {"file": r"is a file", "non-empty": r"exists and is not empty", "the-run": r"is the run directory",
               "inside-the-run": r"lies inside the run directory", "empty-text": r"--dry-run '' is empty",
               "under-a-file": r"cannot be made: '.*f' is a file"}[target]
    judge(cli("push", run, "--repo-prefix", "me/demo", "--license", "mit", "--dry-run", path), r"--dry-run", pattern,
          root=tmp_path, run=run, before=before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f", "run"], "written beside the run"
    assert (tmp_path / "f").read_text() == "precious\n" and [p.name for p in (tmp_path / "d").iterdir()] == [
        "keep.txt"]


def test_push_offline_refused_before_exporting(served_run, tmp_path):
    """The real process with HF_HUB_OFFLINE=1 and no --dry-run: one sentence before any model is exported."""
    run = served_copy(served_run, tmp_path)
    before = snapshot(run)
    result = run_cli("push", run, "--repo-prefix", "me/demo", "--license", "mit", cwd=tmp_path,
                     env={"HF_HUB_OFFLINE": "1", "HF_TOKEN": "hf_not_a_token"})
    judge(result, r"push needs the Hub", r"HF_HUB_OFFLINE=1", r"--dry-run DIR", root=tmp_path, run=run,
          before=before)
    assert "exporting" not in result.err


def test_a_dry_run_that_fails_half_way_leaves_no_half_built_folder(served_run, tmp_path, monkeypatch):
    """A failure after the checks (here the second export) takes back what the dry run had built."""
    import paretohqd.pushing as pushing

    exported = []

    def export_then_fail(run_dir, weights, folder, **kwargs):
        if exported:
            raise UserError("the disk is full (a stand-in)")
        exported.append(folder)
        return real_export(run_dir, weights, folder, **kwargs)

    real_export = pushing.export_model
    monkeypatch.setattr(pushing, "export_model", export_then_fail)
    for dry in (tmp_path / "new" / "dry", tmp_path / "empty"):
        exported.clear()
        if dry.name == "empty":
            dry.mkdir()
        with pytest.raises(UserError, match="the disk is full"):
            push_run(served_run, "test-org/tiny", license="mit", dry_run=dry, log=lambda *_: None)
        assert exported, "the failure came before the first export"
        assert (dry.exists() and not any(dry.iterdir())) if dry.name == "empty" else not (tmp_path / "new").exists()
