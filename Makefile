# One command per habit. Every target sets up .venv first, so each works on a fresh clone.
# .venv is made with the newest Python of 3.11 or later here that can make one; each is run,
# not only looked up, since pyenv's shims stand for versions they refuse to run. PYTHON=...
# chooses another, VENV=... another directory (CI's second Python: .ci/run).
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	$$p -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 \
	&& { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo serve migrate test test-fast lint format bench bench-scaled messages clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { py="$(PYTHON)"; \
	  "$$py" -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	  || { echo "make: no Python 3.11 or newer with its venv module (PYTHON='$$py';" \
	       "python3.13, python3.12, python3.11 and python3 are tried). Install one (Debian:" \
	       "apt-get install python3 python3-venv) or name it: make PYTHON=/path/to/python3.x" >&2; \
	       exit 1; }; \
	  echo "Setting up $(VENV) with $$("$$py" -c 'import sys; print(sys.executable, sys.version.split()[0])')"; \
	  "$$py" -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)  ## set up $(VENV) with the project (editable) and its development tools

demo: $(STAMP)  ## migrate, load demo data and serve at http://127.0.0.1:8000
	$(BIN)/originlive demo

serve: $(STAMP)
	$(BIN)/originlive serve

migrate: $(STAMP)
	$(BIN)/originlive migrate

# Tests run in parallel processes (pytest-xdist; -n auto is a worker per core, at most eight,
# see tests/conftest.py), each handed the next test as it frees up. PARALLEL= runs them in one.
PARALLEL ?= -n auto --dist worksteal

test: $(STAMP)  ## the whole suite, SQLite and PostgreSQL
	$(BIN)/python -m pytest $(PARALLEL)

test-fast: $(STAMP)  ## SQLite only
	$(BIN)/python -m pytest $(PARALLEL) -k "not postgresql"

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests bench scripts
	$(BIN)/ruff check --fix src tests bench scripts

bench: $(STAMP)  ## needs Debian's wrk and tesseract-ocr (video.py); each prints JSON
	$(BIN)/python bench/catalog.py
	$(BIN)/python bench/flash_sale.py
	$(BIN)/python bench/fanout.py
	$(BIN)/python bench/video.py
	$(BIN)/python bench/images.py
	$(BIN)/python bench/surge.py
	$(BIN)/python bench/delivery.py
	$(BIN)/python bench/ledger.py --database sqlite
	$(BIN)/python bench/settlement.py

bench-scaled: $(STAMP)  ## the flash sale on PostgreSQL (127.0.0.1:5432) and Redis (redis-server), two processes
	$(BIN)/python bench/flash_sale.py --database postgresql --redis --workers 2

messages: $(STAMP)  ## extract the pages' strings and bring the translations up to date
	$(BIN)/pybabel extract -F babel.cfg -k N_ -k _ --no-location --omit-header -o src/originlive/web/locale/messages.pot .
	$(BIN)/pybabel update -i src/originlive/web/locale/messages.pot -d src/originlive/web/locale --width 100 --ignore-obsolete

clean:
	rm -rf $(VENV) .venv-3.* var .pytest_cache .mypy_cache .ruff_cache
