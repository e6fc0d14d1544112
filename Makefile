# The two entry points README.md gives a fresh machine.
VENV := .venv/bin

.PHONY: setup demo test lint bench-env bench

setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh

lint:
	$(VENV)/ruff check .
	$(VENV)/mypy
	$(VENV)/lint-imports

test: setup lint
	$(VENV)/pytest -q

bench-env: setup
	bash scripts/bench-env.sh

bench: bench-env
	.venv-bench/bin/python -m bench
