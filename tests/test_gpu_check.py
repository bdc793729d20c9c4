"""bench/gpu_check.py dry-runs here on shrunken shapes: the code a GPU machine will run, every figure produced, the
pipeline end to end; and the wheels scripts/gpu_wheels.py gathers are what that run imports beyond the machine's."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

AUDIT = """
import importlib.metadata, json, sys
sys.path.insert(0, "bench")
import gpu_check
gpu_check.main(["--dry-run", "--steps", "1", "--batches", "1", "--json", sys.argv[1]])
owners = importlib.metadata.packages_distributions()
imported = sorted({d for m in list(sys.modules) for d in owners.get(m.split(".")[0], [])})
json.dump(imported, open(sys.argv[2], "w"))
"""


def load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_gpu_check_dry_runs_on_the_cpu_and_the_wheels_cover_what_it_imports(tmp_path):
    figures_path, imported_path = tmp_path / "figures.json", tmp_path / "imported.json"
    done = subprocess.run([sys.executable, "-c", AUDIT, str(figures_path), str(imported_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(figures_path.read_text())
    assert figures["card"] == "CPU"
    for name in ("sft_with_checkpointing", "sft_without_checkpointing"):
        assert figures[name]["seconds_per_step"] > 0
    assert figures["generation_seconds_per_batch"] > 0 and figures["scoring_samples_per_second"] > 0
    assert figures["batched_greedy_equals_one_at_a_time"] is True
    hours = figures["recipe_gpu_hours"]
    assert hours["total_with_evaluation"] > hours["total_without_evaluation"] > hours["training"] > 0
    assert "the paper reports 55.87" in done.stdout
    run = figures["pipeline"]
    # 3 preferences: scoring, selection, stage 1, stage 2 (3 generators, rescoring, reselection, training),
    # evaluation of the base, the stage-1 and the final models, the report
    assert run["preferences"] == 3 and run["units"] >= 30 and 0 <= run["hypervolume"] <= 1
    assert run["gpu_seconds"] == 0 and set(run["gpu_seconds_by_stage"]) == {"scoring", "training", "generation",
                                                                             "evaluation"}
    assert "pipeline end to end on CPU" in done.stdout

    wheels = load("gpu_wheels", REPO / "scripts" / "gpu_wheels.py")
    have = wheels.image_packages(REPO / "scripts" / "gpu_image_packages.txt")
    present = wheels.closure(list(wheels.PREINSTALLED)) | have
    gathered = set(wheels.needed(have)) | {"paretohqd"}
    canonical = {wheels.canonicalize_name(name) for name in json.loads(imported_path.read_text())}
    assert not canonical - present - gathered, canonical - present - gathered


def test_the_wheels_leave_out_what_the_machine_has_and_what_the_check_never_uses():
    wheels = load("gpu_wheels", REPO / "scripts" / "gpu_wheels.py")
    bare = wheels.needed(set())
    assert {"trl", "datasets", "moocore", "omegaconf", "pyarrow", "pandas"} <= set(bare)
    assert not {"torch", "transformers", "peft", "accelerate", "numpy", "tokenizers", "safetensors"} & set(bare)
    assert not set(wheels.NOT_USED_BY_THE_CHECK) & set(bare)
    assert "pyarrow" not in wheels.needed({"pyarrow"}) and "trl" in wheels.needed({"pyarrow"})
