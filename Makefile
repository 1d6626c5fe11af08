# The two set-up commands of the README: `make serve` and `make test`. Both install what they need.
ARGS ?=
PYTEST_ARGS ?= --durations=40
# Two pytest-xdist workers: engine starts are single-core imports, so two overlap on two cores (tests/conftest.py
# binds each worker's engines to its own core and keeps modules that share a server on one worker).
WORKERS ?= 2

.PHONY: setup serve test test-quick lint

setup:
	@scripts/setup.sh

serve: setup
	.venv/bin/python server.py $(ARGS)

test: setup
	@scripts/setup_browser.sh
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -q -n $(WORKERS) $(PYTEST_ARGS)

test-quick: setup
	@scripts/setup_browser.sh
	.venv/bin/python -m pytest -q -n $(WORKERS) -m "not slow" $(PYTEST_ARGS)

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
