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


def test_a_hub_that_cannot_be_reached_is_one_sentence(served_run, capsys, monkeypatch):
    """The real HfApi in offline mode (it refuses before any connection): no traceback, and not a disk error."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    code = main(["push", str(served_run), "--repo-prefix", "test-org/tiny", "--license", "mit"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("paretohqd: error:")]
    assert code == 2 and len(lines) == 1
    assert "could not create the dataset repo test-org/tiny-data" in lines[0] and "hf auth login" in lines[0]
