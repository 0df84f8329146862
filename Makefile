# The two commands: `make run` (the whole pipeline on an embedded PostgreSQL
# and the demo data set) and `make test`. Both install what they need first.

PYTHON ?= python3
VENV   ?= .venv
UV_VERSION := 0.13.9
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SYSDEPS := scripts/install-system-deps.sh

.PHONY: run test publish install system-deps docs lint lock clean-state help stack stack-down bench-city bench-province bench-national

help:
	@echo "make run    - the whole pipeline on the demo data (or CORRIDOR_LANDING_DIR)"
	@echo "make test   - the test suite (real PostgreSQL, Airflow, dbt, GX)"
	@echo "make publish - the publish DAG alone: quality gate, then scorecards"
	@echo "make stack  - the production topology natively: Redis, Airflow api-server, scheduler,"
	@echo "              dag-processor, triggerer, 2 Celery workers, SMTP catcher (prints URL, login)"
	@echo "make stack-down - stop every process make stack started"
	@echo "make docs   - dbt docs generate (under .corridor/dbt/target/)"
	@echo "make lint   - ruff and sqlfluff (postgres, dbt templater; .sqlfluff); make test runs it first"
	@echo "make lock   - recompile requirements.lock from requirements.in"
	@echo "make bench-city|bench-province|bench-national - the benchmark (benchmarks/README.md; landing areas cached)"

# compileall: the editable install compiles no bytecode for src/ and dags/, and where
# PYTHONDONTWRITEBYTECODE is set (these machines) every process compiled them again on import
# (~50 ms a process: each parse and render worker, each corridor command).
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --python $(BIN)/python --compile-bytecode requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode --no-deps -e .
	$(BIN)/python -m compileall -q -j 0 src dags
	touch $(STAMP)

install: $(STAMP)

system-deps:
	sh $(SYSDEPS)

run: $(STAMP) system-deps
	$(BIN)/corridor run

# CI runs exactly `make test`: the lint runs first, so a lint violation fails CI.
test: $(STAMP) system-deps lint
	$(BIN)/python -m pytest

publish: $(STAMP) system-deps
	$(BIN)/corridor publish

docs: $(STAMP)
	$(BIN)/corridor dbt docs generate
	@echo "dbt docs: $${CORRIDOR_STATE_DIR:-.corridor}/dbt/target/index.html"

stack: $(STAMP) system-deps
	$(BIN)/corridor stack up --workers $${CORRIDOR_STACK_WORKERS:-2}

stack-down: $(STAMP)
	$(BIN)/corridor stack down

lint: $(STAMP)
	$(BIN)/ruff check src dags tests scripts
	$(BIN)/python scripts/lint_sql.py lint

lock: $(STAMP)
	$(BIN)/uv pip compile --quiet --python-version 3.11 requirements.in -o requirements.lock

bench-city bench-province bench-national: bench-%: $(STAMP) system-deps
	$(BIN)/python benchmarks/$*.py $(BENCH_ARGS)

clean-state:
	rm -rf .corridor out
