# The two commands a newcomer runs: `make demo` and `make test`. Both set everything up first.
SHELL := /bin/bash
ENV := . scripts/dotenv.sh; load_dotenv .env; export AIRFLOW_HOME=$(CURDIR);

.PHONY: setup demo test lint airflow cluster clean

setup:
	@bash scripts/setup.sh

demo: setup
	@$(ENV) .venv/bin/python scripts/demo.py

lint: setup
	@echo "==> ruff and mypy"
	@.venv/bin/ruff check digitize dags plugins tests scripts bench
	@.venv/bin/mypy digitize
	@echo "==> import contracts: layers, no Airflow, S3 and SQL each in one package, public faces (lint-imports)"
	@.venv/bin/lint-imports --config pyproject.toml --no-logo
	@echo "==> sizes: modules up to 600 lines, functions up to 80, or their allow-listed limit (scripts/check_sizes.py)"
	@.venv/bin/python scripts/check_sizes.py

test: lint
	@echo "==> running the test suite"
	@$(ENV) .venv/bin/python -m pytest -q tests

airflow: setup
	@$(ENV) bash scripts/airflow.sh

# The distributed profile on one machine: CeleryExecutor, Redis, PostgreSQL, two workers.
cluster: setup
	@$(ENV) bash scripts/cluster.sh

clean:
	rm -rf var demo-output logs airflow.db simple_auth_manager_passwords.json.generated
