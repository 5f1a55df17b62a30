# Prompt Pipeline Hub. The two set-up commands: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
LOCAL := $(CURDIR)/.local
DEMO_DS ?= 2025-01-15
PIP := $(BIN)/pip install --quiet --disable-pip-version-check
# The pool bounding prompt tasks on the LLM connection (README "Throughput and limits").
LLM_POOL_SLOTS ?= 4
LLM_POOL = $(BIN)/airflow pools set llm_default $(LLM_POOL_SLOTS) "Prompt tasks on connection llm_default"

# Airflow on the same defaults for `make demo` and `make airflow`: SQLite metadata under .local/.
export AIRFLOW_HOME := $(LOCAL)/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__API__HOST := 127.0.0.1
export AIRFLOW__CORE__UNIT_TEST_MODE := False
export GX_ANALYTICS_ENABLED := False
# The include dir (prompts, PII and quality config, SQL, sample data) for any cwd (README "Settings").
export PIPELINE_HUB_INCLUDE_DIR ?= $(CURDIR)/include
# OpenLineage events: file transport, one JSON file per event under .local/openlineage/ (README "Lineage").
# Set AIRFLOW__OPENLINEAGE__TRANSPORT yourself for another transport, e.g. {"type": "console"}.
OPENLINEAGE_DIR := $(LOCAL)/openlineage
export AIRFLOW__OPENLINEAGE__TRANSPORT ?= {"type": "file", "log_file_path": "$(OPENLINEAGE_DIR)/event", "append": false}
export PATH := $(BIN):$(PATH)

.PHONY: help install install-demo install-scale test lint demo airflow services-up services-down lock clean checkov glue-tables terraform-check scale-check

help:
	@echo "make demo   - install everything, start S3 + local LLM, run prompt_pipeline on the sample, show results"
	@echo "make test   - install and run the test suite"
	@echo "make airflow - start the Airflow UI (standalone) on the same local defaults"
	@echo "make lint   - ruff check + format check"
	@echo "make checkov - scan infra/terraform with checkov (own venv under .local/checkov)"
	@echo "make terraform-check - terraform fmt -check + validate (needs terraform and the registry)"

	@echo "make scale-check - prompt_pipeline on 2 local Celery workers = the in-process run (heavy, by hand)"

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip setuptools wheel
	$(PIP) -c constraints.txt -e ".[test]"
	touch $@

install: $(VENV)/.installed

# The local LLM: llama-cpp-python builds from source (~5 min on 2 cores, pip caches the wheel).
$(VENV)/.installed-demo: $(VENV)/.installed
	$(PIP) -c constraints.txt -e ".[test,demo]"
	touch $@

install-demo: $(VENV)/.installed-demo

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check plugins dags tests benchmarks
	$(BIN)/ruff format --check plugins dags tests benchmarks

services-up: install
	$(BIN)/pipeline-hub services up

services-down:
	$(BIN)/pipeline-hub services down

$(AIRFLOW_HOME)/airflow.db: | install
	mkdir -p $(AIRFLOW_HOME) $(LOCAL)/logs
	$(BIN)/airflow db migrate > $(LOCAL)/logs/airflow-db-migrate.log 2>&1
	$(LLM_POOL) >> $(LOCAL)/logs/airflow-db-migrate.log 2>&1

demo: install-demo
	$(BIN)/pipeline-hub services up
	$(MAKE) --no-print-directory $(AIRFLOW_HOME)/airflow.db
	mkdir -p $(OPENLINEAGE_DIR)
	source $(LOCAL)/env.sh && $(BIN)/pipeline-hub seed --ds $(DEMO_DS)
	@echo "Running: airflow dags test prompt_pipeline $(DEMO_DS)  (log: .local/logs/demo-dags-test.log)"
	source $(LOCAL)/env.sh && $(BIN)/airflow dags test prompt_pipeline $(DEMO_DS) > $(LOCAL)/logs/demo-dags-test.log 2>&1 \
	  || { tail -n 60 $(LOCAL)/logs/demo-dags-test.log; exit 1; }
	@grep -hoE "topic [a-z_]+: batch [0-9a-f]+ already published[^[]*" $(LOCAL)/logs/demo-dags-test.log | sort -u || true
	@source $(LOCAL)/env.sh && $(BIN)/pipeline-hub report --ds $(DEMO_DS)
	@echo "OpenLineage events: $(OPENLINEAGE_DIR)/ (datasets read and written: $(BIN)/pipeline-hub lineage)"
	@echo
	@echo "Services keep running: $(BIN)/pipeline-hub services status | down"

airflow: install
	$(BIN)/pipeline-hub services up
	$(MAKE) --no-print-directory $(AIRFLOW_HOME)/airflow.db
	mkdir -p $(OPENLINEAGE_DIR)
	$(LLM_POOL) > /dev/null
	source $(LOCAL)/env.sh && $(BIN)/airflow standalone

# Scale-out (README "Scale-out"): the Celery executor and Postgres drivers (`scale` extra), then
# prompt_pipeline on 2 local Celery workers (Postgres + Redis from Debian's packages, on loopback and free
# ports, state in a temp dir) compared with the in-process run. Heavy (~10 min on 2 cores): not in `make test`.
$(VENV)/.installed-scale: $(VENV)/.installed
	$(PIP) -c constraints.txt -e ".[test,scale]"
	touch $@

install-scale: $(VENV)/.installed-scale

scale-check: install-scale
	@command -v redis-server > /dev/null && ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1 \
	  || { echo "scale-check needs PostgreSQL and Redis: apt-get install -y postgresql redis-server"; exit 1; }
	$(BIN)/python benchmarks/celery_two_workers.py $(SCALE_CHECK_ARGS)

# Regenerate the lock (Airflow-style constraints file) from the current environment.
lock:
	$(BIN)/pip freeze --exclude-editable | grep -v '^prompt-pipeline-hub' > constraints.txt

# Terraform (infra/README.md "Checks"). checkov pins its own dependencies, so it gets its own venv.
TF_DIR := infra/terraform
CHECKOV_VERSION ?= 3.3.30
CHECKOV_VENV := $(LOCAL)/checkov

$(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check "checkov==$(CHECKOV_VERSION)"
	touch $@

checkov: $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)
	$(CHECKOV_VENV)/bin/checkov -d $(TF_DIR) --framework terraform --compact --quiet --skip-download

# Regenerate the Glue tables Terraform creates from pipeline_hub.analytics.athena (tests/test_terraform.py checks it).
glue-tables: install
	$(BIN)/python $(TF_DIR)/tools/glue_tables.py --write

terraform-check:
	@command -v terraform > /dev/null || { echo "terraform not found: install Terraform >= 1.6 (infra/README.md)"; exit 1; }
	terraform fmt -check -recursive -diff $(TF_DIR)
	terraform -chdir=$(TF_DIR)/envs/prod init -backend=false -input=false
	terraform -chdir=$(TF_DIR)/envs/prod validate

clean:
	-$(BIN)/pipeline-hub services down
	rm -rf $(LOCAL)
