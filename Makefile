# Every target creates the virtual environment on first use. torch is pinned to the CPU wheel by constraints.txt.
# The docs are built with --strict: a broken link or anchor, a page missing from the nav, any warning fails.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Material for MkDocs prints a banner about MkDocs 2 on every build; the docs extra pins MkDocs 1.x.
MKDOCS := NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs

.PHONY: setup demo test test-all docs bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,tune,docs,report,ray,dashboard,llm]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/expunge demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks docs
	$(BIN)/lint-imports
	$(MKDOCS) build --strict --quiet
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ""

docs: $(STAMP)
	$(MKDOCS) build --strict

bench: $(STAMP)
	$(BIN)/expunge bench configs/foundation.yaml --out runs/bench/foundation --resume
	$(BIN)/expunge results runs/bench/foundation --format markdown

clean:
	rm -rf $(VENV) runs site
