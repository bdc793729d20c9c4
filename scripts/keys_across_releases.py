"""Which unit keys each release changed: one fixed three-preference ParetoHqD config, planned with the code of every
release (the commit that set each version in pyproject.toml) and of the working tree, and the keys compared with
the release before. What CHANGELOG.md's "Keys" lines were checked with.

    .venv/bin/python scripts/keys_across_releases.py

The config: objectives `harmless` (MiniLM head) and `conciseness`, a tiny random local model, 40 samples, explicit
`k` and `min_pool`, the sections every release reads. Planning scores and trains nothing: about ten seconds per
release on 2 cores. Other methods, objectives or defaults may see other changes.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PLAN_KEYS = """import json, sys
import paretohqd
if not hasattr(paretohqd, "plan"):  # before units and keys existed (0.1)
    print("null")
    sys.exit(0)
from paretohqd.config import load_config
print(json.dumps({unit.name: unit.key for unit in paretohqd.plan(load_config(sys.argv[1])).units}))
"""


def releases() -> list[tuple[str, str]]:
    """(version, commit) for every commit that set the version in pyproject.toml, oldest first."""
    log = subprocess.run(["git", "-C", str(REPO), "log", "--reverse", "--format=commit %h", "-p", "--",
                          "pyproject.toml"], capture_output=True, text=True, check=True).stdout
    found, commit = [], None
    for line in log.splitlines():
        if line.startswith("commit "):
            commit = line.split()[1]
        elif (match := re.match(r'^\+version = "([^"]+)"', line)) and commit:
            found.append((match.group(1), commit))
    return found


def write_inputs(folder: Path) -> Path:
    """The tiny model, data, test prompts and config, as the tests build them."""
    sys.path.insert(0, str(REPO))
    from tests.conftest import tiny_chat_tokenizer, tiny_llama
    from tests.test_pipeline import write_run_config

    model = tiny_llama(tiny_chat_tokenizer(), folder / "model")
    written = yaml.safe_load(write_run_config(folder, model, "fixed").read_text())
    config = {key: written[key] for key in ("output_dir", "seed", "data", "preferences", "model", "stage2",
                                            "evaluate")}
    config["objectives"] = [{"name": "harmless", "type": "builtin"}, {"name": "brevity", "builtin": "conciseness"}]
    config["select"] = {"k": 6, "min_pool": 12}
    config["train"] = {"sft": {"max_steps": 3, "per_device_train_batch_size": 2, "max_length": 64,
                               "learning_rate": 0.05}, "lora": {"r": 4, "lora_alpha": 8}}
    path = folder / "keys.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def source_of(commit: str | None, folder: Path) -> Path:
    """The release's src/ unpacked into ``folder`` (None: the working tree's)."""
    if commit is None:
        return REPO / "src"
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "src"], capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder / "src"


def plan_keys(source: Path, config: Path, cache: Path) -> dict[str, str] | None:
    environment = {**os.environ, "PYTHONPATH": str(source), "PARETOHQD_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
                   "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", PLAN_KEYS, str(config)], capture_output=True, text=True,
                            env=environment, check=False)
    if result.returncode != 0:
        raise SystemExit(f"planning with {source} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        config = write_inputs(folder)
        previous: tuple[str, dict[str, str]] | None = None
        for version, commit in [*releases(), ("working tree", None)]:
            keys = plan_keys(source_of(commit, folder / (commit or "tree")), config, folder / "cache")
            if keys is None:
                print(f"{version} ({commit}): no unit keys yet")
                continue
            if previous is None:
                print(f"{version} ({commit}): {len(keys)} units")
            else:
                before = previous[1]
                kept = set(keys) & set(before)
                changed = sorted(name for name in kept if keys[name] != before[name])
                print(f"{previous[0]} -> {version} ({commit or 'uncommitted'}): {len(keys)} units, {len(changed)} of "
                      f"{len(kept)} kept names with a new key; new: {sorted(set(keys) - set(before))}; gone: "
                      f"{sorted(set(before) - set(keys))}")
                if changed:
                    print(f"    new keys: {', '.join(changed)}")
            previous = (version, keys)
    return 0


if __name__ == "__main__":
    sys.exit(main())
