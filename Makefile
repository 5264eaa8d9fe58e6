# Two commands on a fresh machine: `make repro` and `make test`.
# Everything runs inside .venv, built from the pinned requirements.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# Nothing may phone home: no DVC analytics, no Hugging Face hub look-ups.
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup repro test test-fast deps bench lint chat serve orchestrate recipes recipe ablation compare clean-venv

setup: $(VENV)/.installed

# Rebuilt whenever requirements.txt changes.
$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

repro: setup
	$(BIN)/dvc repro
	@$(BIN)/python -m tools.summary

test: setup
	$(BIN)/python -m pytest -q tests

# The quick lane while editing (under a minute on 2 cores): everything not marked slow.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" tests

# dvc.yaml's code deps derived from the import graph (--check fails when they drift).
deps: setup
	$(BIN)/python -m tools.deps --write

bench: setup
	@for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python -m bench.$$(basename $$script .py) || exit 1; done

chat: setup
	$(BIN)/python -m tools.chat --model data/model/model.pt --tokenizer data/tokenizer

# OpenAI-compatible API and chat page on http://127.0.0.1:8000 (python -m tools.serve --help)
serve: setup
	$(BIN)/python -m tools.serve --model data/model/model.pt --tokenizer data/tokenizer

# Train in slices, judging each checkpoint in its own process (see tools/orchestrate.py).
orchestrate: setup
	$(BIN)/python -m tools.orchestrate --params params.yaml

# The 25 named recipes (data/recipes.yaml); `make recipe NAME=padded [SCALE=real]` runs one.
recipes: setup
	$(BIN)/python -m tools.recipes list --findings

SCALE ?= mini
recipe: setup
	@test -n "$(NAME)" || { echo "usage: make recipe NAME=<recipe> [SCALE=mini|real] (make recipes lists them)"; exit 2; }
	$(BIN)/python -m tools.recipes run $(NAME) --scale $(SCALE)

# The small ablation table: 6 recipe rows as DVC experiments, one after another (some 35
# minutes on 2 cores), then the Markdown table (python -m tools.ablation --help; ARGS="--dry-run").
ablation: setup
	$(BIN)/python -m tools.ablation run $(ARGS)

# The key params and metrics of every experiment of HEAD (python -m tools.compare --help).
compare: setup
	@$(BIN)/python -m tools.compare

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean-venv:
	rm -rf $(VENV)
