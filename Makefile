# Two commands on a fresh machine: `make demo` (set up + the main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup demo lint test clean

setup: $(STAMP)

# torch first: a bare `torch` requirement with nothing installed pulls the multi-GB CUDA build.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

# The main job: the addition ablation (quick budget) as an Optuna study in local storage,
# W&B offline, then the report.
demo: setup
	WANDB_MODE=offline $(VENV)/bin/s2s sweep run ablations/addition.yaml --budget quick --workers 2
	$(VENV)/bin/s2s report --study addition-quick -o reports/addition-quick

# Lint and format checks first (ruff, configured in pyproject.toml), then the tests.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(VENV)/bin/pytest

clean:
	rm -rf runs wandb .pytest_cache
