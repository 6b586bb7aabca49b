# Set-up and entry points. `make demo` and `make test` each create .venv and install pe-bench
# on first use (torch, torchvision, Ray: a few minutes), then run.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DATA   ?= $(abspath ../shared/data)
STORE  ?= results

.PHONY: install demo test leaderboard clean

EXAMPLE := examples/pe-bench-defense-example

$(STAMP): pyproject.toml $(EXAMPLE)/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e $(EXAMPLE)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/pe-bench run suites/quick.yaml --data-dir $(DATA) --store $(STORE)

test: $(STAMP)
	PE_BENCH_DATA=$(DATA) $(BIN)/python -m pytest

leaderboard: $(STAMP)
	$(BIN)/pe-bench leaderboard --store $(STORE)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
