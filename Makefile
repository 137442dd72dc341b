# filejob: `make serve` and `make test` are all a fresh clone needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# What serving needs, and on top of it what the tests, linters and benchmarks need.
SERVE_STAMP := $(VENV)/.installed-serve
DEV_STAMP   := $(VENV)/.installed-dev

.PHONY: serve test test-fast lint types layers docs format bench bench-anchors bench-uploads clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the project's metadata changes.
$(SERVE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(SERVE_STAMP)

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(SERVE_STAMP) $(DEV_STAMP)

serve: $(SERVE_STAMP)
	$(BIN)/filejob db upgrade
	$(BIN)/filejob serve

# The fast tier: style, types and the unit tests (no servers, no databases), in seconds.
test-fast: lint types
	$(BIN)/python -m pytest -q -n 0 tests/unit

# Everything `.ci/run` checks: the fast tier, the layer contracts, the docs site built strictly,
# then the whole suite.
test: lint types layers
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site
	# Two processes: most tests wait on servers, databases and subprocesses rather than compute,
	# so two overlap well (measured on 2 cores: 706 s in one, 508 s in two, 530 s in four).
	$(BIN)/python -m pytest -q -n 2

lint: $(DEV_STAMP)
	$(BIN)/ruff check service tests bench migrations docs
	$(BIN)/ruff format --check service tests bench migrations docs

# mypy over the package, the tests, the benchmarks and the migrations ([tool.mypy]).
types: $(DEV_STAMP)
	$(BIN)/mypy

# The layers point one way ([tool.importlinter] in pyproject.toml; docs/architecture.md).
layers: $(DEV_STAMP)
	$(BIN)/lint-imports

# The documentation site from docs/ into site/ (`$(BIN)/mkdocs serve` to browse it live).
docs: $(DEV_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

format: $(DEV_STAMP)
	$(BIN)/ruff check --fix service tests bench migrations docs
	$(BIN)/ruff format service tests bench migrations docs

# filejob beside the FastAPI + Celery and + arq recipes and a bare FastAPI + SQLite endpoint,
# interleaved rounds, one table (needs Redis on 127.0.0.1:6379; wrk if installed). Minutes.
bench-anchors: $(DEV_STAMP)
	$(BIN)/python bench/anchors.py

bench-uploads: $(DEV_STAMP)
	$(BIN)/python bench/uploads.py

bench: $(DEV_STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/latency.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
