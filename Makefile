# lambdarec: few targets, each sets itself up first.
.DEFAULT_GOAL := help
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
LAMBDAREC := $(VENV)/bin/lambdarec
PYTEST_ARGS ?=

.PHONY: help setup demo test test-unit bench bench-report bench-peers bento lint format clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

setup:  ## Create the environments and resolve the jars (idempotent)
	@bash scripts/setup.sh

DEMO_ARGS ?=

demo: setup  ## The main job: engines up, a dataset replayed into Kafka, models trained + indexed, a summary
	$(LAMBDAREC) demo $(DEMO_ARGS)

test: setup  ## Lint, then every test (unit, integration, e2e) on the real engines; CI=true fails on any unlisted skip
	$(VENV)/bin/ruff check src tests bench jobs features infra bentos dags
	$(VENV)/bin/mypy
	$(PY) -m pytest $(PYTEST_ARGS)
	infra/.venv/bin/python -m pytest infra/tests -q

test-unit: setup  ## Fast tests, no engines
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

bench: setup  ## Every benchmark (hours), then the report: bench/results/REPORT.md, report.json, plots/
	$(PY) bench/run_all.py

bench-report: setup  ## Rewrite bench/results/REPORT.md (+ report.json, plots/) from the results there, measuring nothing
	$(PY) bench/report.py

PEER_VENV := bench/peers/.venv
PEERS_ARGS ?=

bench-peers: setup  ## RecBole's SASRec + GRU4Rec in their own env (bench/peers/requirements.txt) on the models' split: results/peers.json
	@test -x $(PEER_VENV)/bin/python || .cache/tools/bin/uv venv -q --python $(PY) $(PEER_VENV)
	.cache/tools/bin/uv pip sync -q --python $(PEER_VENV)/bin/python bench/peers/requirements.txt
	$(PY) bench/bench_peers.py $(PEERS_ARGS)

bento: setup  ## Package the recommender as a bento (bentoml build; the lambdarec wheel rides along)
	.cache/tools/bin/uv build --wheel -q -o bentos/recommender/wheels
	cd bentos/recommender && PATH=$(CURDIR)/.cache/tools/bin:$$PATH BENTOML_DO_NOT_TRACK=True ../../$(VENV)/bin/bentoml build .

lint: setup  ## ruff + mypy
	$(VENV)/bin/ruff check src tests bench jobs features infra bentos dags
	$(VENV)/bin/ruff format --check src tests bench jobs features infra bentos dags
	$(VENV)/bin/mypy

format: setup  ## Apply ruff's formatting and import order
	$(VENV)/bin/ruff check --fix src tests bench jobs features infra bentos dags
	$(VENV)/bin/ruff format src tests bench jobs features infra bentos dags

clean:  ## Stop services and remove local state and built artifacts (keeps environments and jars)
	-$(LAMBDAREC) services down
	rm -rf .lambdarec dist
