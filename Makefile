# Two commands for a fresh machine: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DEMO_OUT ?= demo_out
# pytest worker processes (pytest-xdist); each test file runs whole on one worker. Much of a test's
# time is single-threaded (tracing, XLA compilation), so 2 workers use both cores of a 2-core box.
TEST_WORKERS ?= 2
XDIST  := -n $(TEST_WORKERS) --dist loadfile

.PHONY: test test-slow test-all demo lint format bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q $(XDIST)

test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q $(XDIST)

test-all: $(STAMP)
	$(PY) -m pytest -q $(XDIST)

demo: $(STAMP)
	$(VENV)/bin/vqturb demo --out $(DEMO_OUT)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

# Every benchmark prints JSON lines; `make bench > bench.jsonl` keeps them.
bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "# $$b" >&2; $(PY) $$b || exit 1; done
	$(VENV)/bin/vqturb bench train --preset cpu --var_mode --batch_size 8

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
