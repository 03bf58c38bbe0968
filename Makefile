# The two commands of the README's quick start, on a fresh clone:
#   make run    set up .venv (the pinned requirements + nnscratch itself), then run the main job
#   make test   set up .venv, then run the test suite
# `source .venv/bin/activate` afterwards makes `import nnscratch` work in your own scripts, from any folder.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test setup clean

run: setup
	$(BIN)/python src/build_network.py

test: setup
	$(BIN)/python -m pytest

setup: $(VENV)/.installed

# Rebuilt only when the requirements or the package metadata change.
$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --editable .
	touch $@

clean:
	rm -rf $(VENV) runs src/*.egg-info
