# The two commands: `make backup DIR=<path>` runs a backup; `make test` runs the tests.
# Both create .venv and node_modules on first use. ARGS passes options to the backup client,
# e.g. make backup DIR=/srv/site ARGS="--exclude '*.tmp' --exclude cache/".

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_VENV := $(VENV)/.installed
STAMP_NODE := node_modules/.installed

.PHONY: backup test start lint bench setup clean

backup: setup
	@test -n "$(DIR)" || { echo "usage: make backup DIR=<directory to back up>"; exit 2; }
	$(PY) -m backup_cli backup "$(DIR)" $(ARGS)

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

start: setup
	$(PY) -m backup_cli start

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: setup
	$(PY) bench/upload_throughput.py
	$(PY) bench/backup_end_to_end.py
	$(PY) bench/devhost_fanout.py

setup: $(STAMP_VENV) $(STAMP_NODE)

$(STAMP_VENV): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(STAMP_NODE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) node_modules .devhost .azurite .pytest_cache .ruff_cache
