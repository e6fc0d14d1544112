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

# The chat page's browser tests run in a process of their own: after the rest of the
# suite in one process, their server's engine stalled on its first answer (CI, and a
# full run here), alone they pass; what in the shared process causes it is not found yet.
test: setup lint
	$(VENV)/pytest -q --durations=25 --ignore=tests/test_ui.py
	$(VENV)/pytest -q tests/test_ui.py

bench-env: setup
	bash scripts/bench-env.sh

bench: bench-env
	.venv-bench/bin/python -m bench
