# The README's two commands: `make demo` and `make test`. Both create .venv and install everything first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install lint clean trt-bindings

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/bpnas demo

lint: $(STAMP)
	$(BIN)/ruff check sdk calibration export targets runtimes examples tests
	$(BIN)/ruff format --check sdk calibration export targets runtimes examples tests
	$(BIN)/mypy

# TensorRT's real bindings wheels (names only; no GPU needed) for the API-surface tests, cached outside the
# repo; a registry outage only makes those tests skip with the reason.
trt-bindings: $(STAMP)
	-$(BIN)/python tests/runtimes/_trt_bindings.py

test: lint trt-bindings
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
