import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from paretohqd.cli import main


def make_dataset(path, n=300, seed=0):
    """Two anti-correlated ratings, so the first Pareto layers hold a real front."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, np.pi / 2, n)
    radius = rng.uniform(0.2, 1.0, n)
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "prompt": [f"question {i}" for i in range(n)],
                          "response": [("word " * (i % 17 + 1)).strip() for i in range(n)],
                          "a": radius * np.cos(angle), "b": radius * np.sin(angle)})
    frame.to_json(path, orient="records", lines=True)
    return frame


def write_config(tmp_path, **sections):
    data = tmp_path / "data.jsonl"
    if not data.exists():
        make_dataset(data)
    config = {"output_dir": str(tmp_path / "run"),
              "data": {"source": str(data), "id_column": "id"},
              "objectives": [{"name": "obj_a", "type": "column", "column": "a"},
                             {"name": "obj_b", "type": "column", "column": "b"}],
              "select": {"k": 10, "min_pool": 40}}
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def score_and_select(config, *overrides):
    """The first half of the pipeline (the whole `run` trains models: see test_pipeline.py)."""
    code = main(["score", str(config), *overrides])
    return code if code else main(["select", str(config), *overrides])


def test_help_is_light():
    # --help must answer at once: the CLI module may not import torch, transformers or pandas.
    code = ("import sys, paretohqd.cli; "
            "heavy = [m for m in ('torch', 'transformers', 'pandas', 'numpy') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
    out = subprocess.run([sys.executable, "-m", "paretohqd.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "score" in out.stdout and "select" in out.stdout


def test_run_writes_the_run_directory_and_resumes(tmp_path, capsys):
    config = write_config(tmp_path)
    assert score_and_select(config) == 0
    run = tmp_path / "run"
    scores = pd.read_parquet(run / "scores" / "scores.parquet")
    assert {"id", "prompt", "response", "obj_a", "obj_b"} <= set(scores.columns)
    stats = json.loads((run / "scores" / "stats.json").read_text())
    assert stats["objectives"] == ["obj_a", "obj_b"] and len(stats["min"]) == 2
    summary = json.loads((run / "selection" / "summary.json").read_text())
    assert len(summary["files"]) == 11 and summary["pool_size"] >= 40
    first = json.loads((run / "selection" / "pref_00.json").read_text())
    last = json.loads((run / "selection" / "pref_10.json").read_text())
    assert first["weights"] == [0.0, 1.0] and last["weights"] == [1.0, 0.0]
    assert len(first["sample_ids"]) == 10 and len(first["distances"]) == 10 and len(first["layers"]) == 10
    # Preferring objective a moves the selection towards high a.
    assert last["mean_raw_scores"][0] > first["mean_raw_scores"][0]
    assert last["mean_raw_scores"][1] < first["mean_raw_scores"][1]
    assert (run / "selection" / "selection.png").stat().st_size > 1000
    assert (run / "config.resolved.yaml").exists() and (run / "env.json").exists()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"]["score"]["status"] == manifest["stages"]["select"]["status"] == "done"

    stamp = (run / "scores" / "scores.parquet").stat().st_mtime_ns
    capsys.readouterr()
    assert score_and_select(config) == 0
    assert "done already" in capsys.readouterr().out
    assert (run / "scores" / "scores.parquet").stat().st_mtime_ns == stamp

    # A selection setting reruns selection only; scores are reused.
    assert score_and_select(config, "--select.k", "5") == 0
    assert (run / "scores" / "scores.parquet").stat().st_mtime_ns == stamp
    assert len(json.loads((run / "selection" / "pref_00.json").read_text())["sample_ids"]) == 5
    assert not list(run.rglob("*.tmp"))


def test_k_by_its_rule_scales_with_the_samples_and_sizes_the_pool(tmp_path):
    """select.k null: k = max(k_min, k_fraction x n), decided on the scored samples, and P_min follows it."""
    config = write_config(tmp_path, select={"k": None, "min_pool": None, "k_fraction": 0.05, "k_min": 4})
    run = tmp_path / "run"
    assert score_and_select(config) == 0  # 300 samples: ceil(0.05 x 300) = 15
    summary = json.loads((run / "selection" / "summary.json").read_text())
    assert summary["k"] == 15 and summary["min_pool"] == 75  # P_min = max(0.625% of 300, 5 x 15)
    assert len(json.loads((run / "selection" / "pref_03.json").read_text())["sample_ids"]) == 15
    assert score_and_select(config, "--select.k_fraction", "0.01") == 0  # 3 < the floor
    summary = json.loads((run / "selection" / "summary.json").read_text())
    assert summary["k"] == 4 and summary["min_pool"] == 20


def test_three_objectives_use_ric_grid(tmp_path):
    config = write_config(tmp_path, objectives=[
        {"name": "obj_a", "type": "column", "column": "a"}, {"name": "obj_b", "type": "column", "column": "b"},
        {"name": "length", "type": "callable", "callable": "tests.helpers_objectives:response_length"}])
    assert score_and_select(config) == 0
    summary = json.loads((tmp_path / "run" / "selection" / "summary.json").read_text())
    assert len(summary["files"]) == 13


BAD_INPUTS = [
    ({"data": {"source": "/no/such/file.jsonl"}}, "does not exist"),
    ({"objectives": [{"name": "obj_a", "type": "column", "column": "a"}, {"name": "humour"}]},
     "unknown objective 'humour'"),
    ({"objectives": [{"name": "obj_a", "type": "column", "column": "missing"},
                     {"name": "obj_b", "type": "column", "column": "b"}]}, "reads column 'missing'"),
    ({"preferences": {"grid": "explicit", "weights": [[1, 0, 0]]}}, "3 weights but there are 2 objectives"),
    ({"preferences": {"grid": "explicit", "weights": [[0.5, 0.5], [-0.2, 1.2]]}}, "negative"),
    ({"preferences": {"grid": "explicit", "weights": [[0, 0]]}}, "all zero"),
    ({"select": {"k": 5000}}, "larger than"),
    ({"select": {"kk": 3}}, "unknown key 'select.kk'"),
    ({"objectives": [{"name": "obj_a", "type": "column", "column": "a"},
                     {"name": "few", "type": "callable", "callable": "tests.helpers_objectives:too_few_scores"}]},
     "returned 1 scores for"),
    ({"objectives": [{"name": "obj_a", "type": "column", "column": "a"},
                     {"name": "text", "type": "column", "column": "response"}]}, "which is not a number"),
    ({"select": {"robust_quantiles": ["a", "b"]}}, "select.robust_quantiles.0 must be a number"),
]


@pytest.mark.parametrize("sections, message", BAD_INPUTS)
def test_bad_input_exits_2_with_one_sentence(tmp_path, capsys, sections, message):
    config = write_config(tmp_path, **sections)
    assert score_and_select(config) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not list(tmp_path.rglob("*.tmp"))


def test_malformed_line_nan_and_empty_data(tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    make_dataset(data, n=20)
    lines = data.read_text().splitlines()
    lines[6] = lines[6][:-5]
    data.write_text("\n".join(lines) + "\n")
    assert main(["score", str(write_config(tmp_path))]) == 2
    assert "line 7 is not valid JSON" in capsys.readouterr().err

    frame = make_dataset(data, n=20)
    frame.loc[4, "a"] = np.nan
    frame.to_json(data, orient="records", lines=True)
    assert main(["score", str(write_config(tmp_path))]) == 2
    assert "returned NaN for sample 'r4'" in capsys.readouterr().err
    assert not (tmp_path / "run" / "scores" / "scores.parquet").exists()

    data.write_text("")
    assert main(["score", str(write_config(tmp_path))]) == 2
    assert "has no samples" in capsys.readouterr().err


def test_process_exit_code_and_no_traceback(tmp_path):
    config = write_config(tmp_path, data={"source": str(tmp_path / "absent.jsonl")})
    out = subprocess.run([sys.executable, "-m", "paretohqd.cli", "score", str(config)], capture_output=True,
                         text=True)
    assert out.returncode == 2
    assert "absent.jsonl' does not exist" in out.stderr and "Traceback" not in out.stderr


def test_edited_data_file_is_rescored(tmp_path):
    config = write_config(tmp_path)
    assert score_and_select(config) == 0
    data = tmp_path / "data.jsonl"
    frame = pd.read_json(data, lines=True)
    frame["a"] = frame["a"] * 100
    frame.to_json(data, orient="records", lines=True)
    assert score_and_select(config) == 0
    scores = pd.read_parquet(tmp_path / "run" / "scores" / "scores.parquet")
    np.testing.assert_allclose(scores["obj_a"], frame["a"])


def test_override_into_a_value_is_an_error(tmp_path, capsys):
    assert main(["score", str(write_config(tmp_path)), "--select.k.x", "3"]) == 2
    assert "'select.k' is a value, not a section" in capsys.readouterr().err


def test_runs_can_share_a_score_cache(tmp_path):
    config = write_config(tmp_path)
    shared = tmp_path / "shared_cache"
    assert main(["score", str(config), "--score.cache_dir", str(shared)]) == 0
    shards = sorted(p.stat().st_mtime_ns for p in shared.rglob("*.npy"))
    assert shards and not (tmp_path / "run" / "scores" / "cache").exists()
    assert main(["score", str(config), "--score.cache_dir", str(shared), "--output_dir",
                 str(tmp_path / "other")]) == 0
    assert sorted(p.stat().st_mtime_ns for p in shared.rglob("*.npy")) == shards  # reused, not rescored
    assert (tmp_path / "other" / "scores" / "scores.parquet").exists()
