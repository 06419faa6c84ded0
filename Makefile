# Two entry points for a fresh machine: `make serve` and `make test`. Both are idempotent: the venv is
# rebuilt only when requirements change, the demo repository only when builders/runtime/templates change.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
REPO ?= build/model_repository
HOST ?= 127.0.0.1
PORT ?= 9000
PYTEST_ARGS ?=
INSTALLED := $(VENV)/.installed
SOURCES := $(shell find builders runtime model_repository -type f \( -name '*.py' -o -name '*.pbtxt' -o -name '*.json' \) 2>/dev/null)

.PHONY: venv repo serve test unit bench aiperf clean

venv: $(INSTALLED)

$(INSTALLED): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt 2>&1 | { grep -v "^WARNING: Location '" || true; }
	$(PY) -m pip install -q --no-deps -e . 2>&1 | { grep -v "^WARNING: Location '" || true; }
	touch $@

repo: $(REPO)/.built

$(REPO)/.built: $(INSTALLED) $(SOURCES)
	HF_HUB_OFFLINE=1 $(PY) -m builders demo --out $(REPO)
	touch $@

serve: repo
	HOST=$(HOST) PORT=$(PORT) $(PY) -m launcher serve --model-repository $(REPO)

test: repo
	MODEL_REPOSITORY=$(REPO) HF_HUB_OFFLINE=1 $(PY) -m pytest -q -rs $(PYTEST_ARGS)

unit: venv
	$(PY) -m pytest -q tests/unit

aiperf: repo  # NVIDIA aiperf (own venv, build/aiperf-venv) against `make serve` (started and stopped here)
	bench/aiperf.sh

clean:
	rm -rf build
