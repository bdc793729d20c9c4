"""bench/gpu_check.py dry-runs here on shrunken shapes: the code a GPU machine will run, every figure produced."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


def test_the_gpu_check_dry_runs_on_the_cpu(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    out = tmp_path / "figures.json"
    figures = gpu_check.main(["--dry-run", "--steps", "1", "--batches", "1", "--json", str(out)])
    assert json.loads(out.read_text())["card"] == figures["card"] == "CPU"
    for name in ("sft_with_checkpointing", "sft_without_checkpointing"):
        assert figures[name]["seconds_per_step"] > 0
    assert figures["generation_seconds_per_batch"] > 0 and figures["scoring_samples_per_second"] > 0
    assert figures["batched_greedy_equals_one_at_a_time"] is True
    hours = figures["recipe_gpu_hours"]
    assert hours["total_with_evaluation"] > hours["total_without_evaluation"] > hours["training"] > 0
    assert "the paper reports 55.87" in capsys.readouterr().out
