# Set-up and entry points. `make demo` and `make test` each create .venv and install pe-bench
# on first use (torch, torchvision, Ray: a few minutes), then run.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DATA   ?= $(abspath ../shared/data)
STORE  ?= results

# every suite whose tables live in docs/results, shortest first; one store and one encoder cache
# for all of them (settings they share train once). Resumable: re-run `make results` after an
# interruption and finished trials are skipped.
MEASURED      ?= demo demo-clip quick defenses encoders multitask paper paper-confirm attacks attacks-cifar10 attacks-zeroshot defenses-matrix defenses-matrix-clip
RESULTS_STORE ?= results-measured
FIGURES       := paper defenses attacks attacks-cifar10 defenses-matrix defenses-matrix-clip
# suites whose readings compare attacks: their tables carry the paired attack-vs-attack columns
VERSUS        := quick=duplicate paper=duplicate paper-confirm=duplicate attacks-cifar10=duplicate
# suites whose readings quote single seeds: they also get NAME-seeds.md (`leaderboard --by-seed`)
BY_SEED       := demo-clip paper-confirm attacks attacks-cifar10 attacks-zeroshot defenses-matrix defenses-matrix-clip
# suites whose readings compare defenses with each other: NAME-pairs.md (`leaderboard --defense-pairs`)
PAIRS         := defenses defenses-matrix defenses-matrix-clip

.PHONY: install demo test leaderboard results site clean

EXAMPLE := examples/pe-bench-defense-example

$(STAMP): pyproject.toml $(EXAMPLE)/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e $(EXAMPLE)
	touch $(STAMP)

install: $(STAMP)

# the README demo: two small suites into one store, ending with their boards (README, What the demo shows)
demo: $(STAMP)
	$(BIN)/pe-bench run suites/demo.yaml suites/demo-clip.yaml --data-dir $(DATA) --store $(STORE)

test: $(STAMP)
	PE_BENCH_DATA=$(DATA) $(BIN)/python -m pytest

leaderboard: $(STAMP)
	$(BIN)/pe-bench leaderboard --store $(STORE)

# the measured suites as a static site (docs/publishing.md): site/index.html, a page per suite
site: $(STAMP)
	$(BIN)/pe-bench publish --store $(RESULTS_STORE) --out site

results: $(STAMP)
	set -e; for s in $(MEASURED); do \
	  $(BIN)/pe-bench run suites/$$s.yaml --data-dir $(DATA) --store $(RESULTS_STORE) --resume --no-leaderboard; \
	  v=$$(for p in $(VERSUS); do [ "$${p%%=*}" = "$$s" ] && echo "--versus $${p#*=}"; done; true); \
	  $(BIN)/pe-bench leaderboard --store $(RESULTS_STORE) --suite $$s $$v --format md --out docs/results/$$s.md; \
	  case " $(FIGURES) " in *" $$s "*) $(BIN)/pe-bench plot --store $(RESULTS_STORE) --suite $$s --out docs/results/$$s;; esac; \
	  case " $(BY_SEED) " in *" $$s "*) $(BIN)/pe-bench leaderboard --by-seed --store $(RESULTS_STORE) --suite $$s --format md --out docs/results/$$s-seeds.md;; esac; \
	  case " $(PAIRS) " in *" $$s "*) $(BIN)/pe-bench leaderboard --defense-pairs --store $(RESULTS_STORE) --suite $$s --format md --out docs/results/$$s-pairs.md;; esac; \
	done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
