# The two commands a newcomer needs: `make repro` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export DVC_NO_ANALYTICS := 1
# dvc.yaml's commands call `python`: make it the project's interpreter
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup repro test test-fast check-corpus clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "make setup: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11'"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c requirements.lock -e '.[test]'
	touch $(STAMP)

## Run the whole pipeline (on the built-in demo corpus with the default params.yaml).
repro: setup
	$(VENV)/bin/dvc repro

## Run the whole test suite.
test: setup
	$(PY) -m pytest -q

## Fast tests only (skips the whole-pipeline ones).
test-fast: setup
	$(PY) -m pytest -q -m "not slow"

## Check the corpus at corpus.root (counts, labels, missing files) in seconds.
check-corpus: setup
	$(PY) pipeline/check_corpus.py --params params.yaml

clean:
	rm -rf data/demo data/interim data/shards results
