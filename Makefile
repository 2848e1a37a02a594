# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-all clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch is pinned to 2.14.1 / torchvision 0.29.1 in pyproject.toml.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/hpa demo --out demo

test: install
	$(BIN)/python -m pytest -m "not slow and not gpu"

test-all: install
	$(BIN)/python -m pytest

clean:
	rm -rf demo runs .pytest_cache .hypothesis
