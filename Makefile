# The two commands: `make backup DIR=<path>` runs a backup; `make test` runs the tests.
# Both create .venv and node_modules on first use. ARGS passes options to the backup client,
# e.g. make backup DIR=/srv/site ARGS="--exclude '*.tmp' --exclude cache/".
# Then: `make backups DIR=<path>` lists its backups, `make verify DIR=<path>` checks the latest one,
# `make restore DIR=<path> TARGET=<dir> [BACKUP=<id or time>]` restores one into TARGET,
# `make prune DIR=<path> [ARGS=--dry-run]` removes the backups the retention policy does not keep.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_VENV := $(VENV)/.installed
STAMP_NODE := node_modules/.installed

.PHONY: backup backups verify restore prune test test-faults start lint bench bench-quick bench-setup setup clean

backup: setup
	@test -n "$(DIR)" || { echo "usage: make backup DIR=<directory to back up>"; exit 2; }
	$(PY) -m backup_cli backup "$(DIR)" $(ARGS)

backups: setup
	@test -n "$(DIR)" || { echo "usage: make backups DIR=<backed-up directory>"; exit 2; }
	$(PY) -m backup_cli backups "$(DIR)" $(ARGS)

verify: setup
	@test -n "$(DIR)" || { echo "usage: make verify DIR=<backed-up directory> [BACKUP=<id or time>]"; exit 2; }
	$(PY) -m backup_cli verify "$(DIR)" --backup "$(or $(BACKUP),latest)" $(ARGS)

prune: setup
	@test -n "$(DIR)" || { echo "usage: make prune DIR=<backed-up directory> [ARGS='--keep last=7,daily=30 --dry-run']"; exit 2; }
	$(PY) -m backup_cli prune "$(DIR)" $(ARGS)

restore: setup
	@test -n "$(DIR)" -a -n "$(TARGET)" || { echo "usage: make restore DIR=<backed-up directory> TARGET=<directory to restore into> [BACKUP=<id or time>]"; exit 2; }
	$(PY) -m backup_cli restore "$(DIR)" --target "$(TARGET)" --backup "$(or $(BACKUP),latest)" $(ARGS)

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest --ignore=tests/faults $(PYTEST_ARGS)

# The fault suite: crashes, storage faults, a changing tree and hostile requests (docs/RELIABILITY.md).
test-faults: setup
	$(PY) -m pytest tests/faults $(PYTEST_ARGS)

start: setup
	$(PY) -m backup_cli start

# Lint: ruff, and mypy --strict over the app, its package, devhost and the client (pyproject.toml's [tool.mypy]).
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# Benchmarks (not tests): site-backup against azcopy, rclone, the raw aio ceiling and the seed's sample,
# each on a fresh disk-mode Azurite. `make bench-setup` installs the peers first.
bench: setup
	cd bench && ../$(PY) run.py

bench-quick: setup
	cd bench && ../$(PY) run.py --quick

# The peers: azcopy from npm (the package ships the real binary), rclone and libsecret from Debian; and
# MariaDB from Debian, for Azurite's SQL metadata store in bench/million.py --sql.
AZCOPY_PACKAGE := @azure-tools/azcopy-linux@10.32.2
bench-setup: setup
	npm install --prefix bench/.tools --no-audit --no-fund --loglevel=error --no-save $(AZCOPY_PACKAGE)
	chmod +x bench/.tools/node_modules/@azure-tools/azcopy-linux/dist/bin/azcopy_linux_amd64
	@if ! command -v rclone >/dev/null || ! ldconfig -p | grep -q libsecret-1 || ! command -v mariadbd >/dev/null; then \
	    if [ "$$(id -u)" = 0 ]; then apt-get install -y --no-install-recommends rclone libsecret-1-0 mariadb-server; \
	    else echo "install Debian's rclone, libsecret-1-0 and mariadb-server (sudo apt-get install ...)"; fi; fi

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
