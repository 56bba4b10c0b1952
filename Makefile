# Two commands on a fresh machine: `make demo` (set up + the main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup demo lint test test-fast clean wheelhouse

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

# Lint, format and type checks first (ruff and mypy, configured in pyproject.toml), then the tests.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest

# The unit tests alone (no process started, no learning or chaos test): under 2 minutes on 2 cores.
test-fast: setup
	$(VENV)/bin/pytest -m "not integration and not slow"

# An offline install on a GPU node that has PyTorch (torch, Lightning, pandas, seaborn, sacrebleu) but no
# internet: wheels of exactly what such a node lacks, for its Python and platform, plus this project's own
# wheel. W&B is optional (runs with tracking.wandb=disabled or WANDB_MODE=disabled never import it), and
# so are scipy and adjustText (only `s2s report` needs them; reports are built off the node).
# On the node: pip install --no-index --no-deps WHEELHOUSE/*.whl (tests/test_bench.py checks the list).
NODE_PYTHON ?= 3.12
NODE_PLATFORMS ?= manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64
NODE_NEEDS := alembic annotated-types click cloudpickle colorlog joblib mako markdown optuna pydantic \
	pydantic-core sacremoses sqlalchemy typing-inspection $(NODE_TEST_NEEDS)
# The acceptance run's tests step runs pytest (a node with PyTorch has packaging already).
NODE_TEST_NEEDS := pytest iniconfig pluggy pygments
WHEELHOUSE ?= wheelhouse
wheelhouse:
	python3 -m pip download -q --no-deps --only-binary=:all: --implementation cp --python-version $(NODE_PYTHON) \
		$(foreach p,$(NODE_PLATFORMS),--platform $(p)) -d $(WHEELHOUSE) $(NODE_NEEDS)
	python3 -m pip wheel -q --no-deps -w $(WHEELHOUSE) .
	@ls $(WHEELHOUSE) | wc -l | xargs echo "wheels in $(WHEELHOUSE):"

clean:
	rm -rf runs wandb .pytest_cache .mypy_cache $(WHEELHOUSE)
