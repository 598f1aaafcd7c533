# The two commands a newcomer needs: `make repro` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export DVC_NO_ANALYTICS := 1
# dvc.yaml's commands call `python`: make it the project's interpreter
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup repro test test-fast corpus corpus-link check-corpus clean

# This machine's IEMOCAP_full_release (`make corpus ROOT=...`); the default is the demo.
ROOT ?= data/demo/IEMOCAP_full_release

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "make setup: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11'"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c requirements.lock -e '.[test]'
	touch $(STAMP)

## Run the whole pipeline (on the built-in demo corpus with the default params.yaml).
# With the demo linked, `demo` runs first: DVC cannot see that data/corpus leads to its output.
repro: setup corpus-link
	@if [ "$$(readlink data/corpus)" = "demo/IEMOCAP_full_release" ]; then $(VENV)/bin/dvc repro demo; fi
	$(VENV)/bin/dvc repro

## Point data/corpus at this machine's copy of the corpus (changes nothing tracked by git):
##   make corpus ROOT=/path/to/IEMOCAP_full_release     (no ROOT: back to the demo corpus)
corpus: setup
	$(PY) pipeline/link_corpus.py "$(ROOT)"

# a fresh clone links the demo corpus; an existing link is never changed
corpus-link: setup
	@test -L data/corpus || $(PY) pipeline/link_corpus.py

## Run the whole test suite.
test: setup
	$(PY) -m pytest -q

## Fast tests only (skips the whole-pipeline ones).
test-fast: setup
	$(PY) -m pytest -q -m "not slow"

## Check the corpus data/corpus links to (counts, labels, missing files, headers) in seconds.
check-corpus: setup corpus-link
	$(PY) pipeline/check_corpus.py --params params.yaml --root data/corpus

clean:
	rm -rf data/demo data/interim data/shards results
