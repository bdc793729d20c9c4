#!/usr/bin/env bash
# The whole suite once under each condition that a bit-for-bit comparison could depend on: one core (taskset), one
# and two OpenMP threads, and AVX2 kernels instead of the processor's widest. Every leg must pass: a test that
# compares results bit for bit pins the thread count on both sides (tests/conftest.py, EXACT_THREADS) and runs both
# sides with the same kernels. Prints each leg's summary line at the end; exits non-zero if any leg failed.
set -u
python=${1:-.venv/bin/python}
legs=("taskset -c 0" "env OMP_NUM_THREADS=1" "env OMP_NUM_THREADS=2" "env ATEN_CPU_CAPABILITY=avx2")
command -v taskset >/dev/null || { echo "test-matrix: taskset (util-linux) is not installed" >&2; exit 2; }
failed=0
summary=()
for leg in "${legs[@]}"; do
  echo "== $leg"
  log=$(mktemp)
  $leg "$python" -m pytest -q tests 2>&1 | tee "$log"
  code=${PIPESTATUS[0]}
  summary+=("$leg: $(grep -E '(passed|failed|error)' "$log" | tail -n 1 | tr -d '=' | sed 's/^ *//')")
  [ "$code" = 0 ] || failed=1
  rm -f "$log"
done
printf '\n%s\n' "test-matrix:"
printf '  %s\n' "${summary[@]}"
exit $failed
