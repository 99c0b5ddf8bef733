# Everything installs from nothing into .venv.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test demo bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install -q -e ".[offline,dev]"

test: setup
	$(BIN)/python -m pytest -q

demo: setup
	$(BIN)/python cli.py demo

bench: setup
	$(BIN)/python bench/extract_speed.py
	$(BIN)/python bench/head_speed.py

clean:
	rm -rf $(VENV) demo_data caches runs
