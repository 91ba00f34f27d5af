# The two commands of the README, from a fresh clone:
#   make book   venv, pinned dependencies, packaged assets, every notebook (cpu profile), HTML book
#   make test   the same set-up, then the unit tests and nbval over the smoke-profile notebooks
# Both are idempotent: a second run reinstalls nothing and re-executes only what changed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= cpu
PYTEST_ARGS ?=
# the installed state is keyed by the lock file and the project metadata
INSTALLED := $(VENV)/.installed-$(shell cat requirements/lock.txt pyproject.toml | sha256sum | cut -c1-12)

.PHONY: all install fetch book test nbval-refs clean

all: book

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(INSTALLED): $(BIN)/python requirements/lock.txt pyproject.toml
	@echo "installing pinned dependencies into $(VENV) (torch 2.13.0 CPU first)"
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

install: $(INSTALLED)

fetch: install
	$(BIN)/macm data fetch

book: fetch
	$(BIN)/macm reproduce --profile $(PROFILE)

test: fetch
	$(BIN)/python -m pytest tests --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg $(PYTEST_ARGS)

# re-create the nbval references after a deliberate change to a notebook's output
nbval-refs: fetch
	$(BIN)/macm reproduce --profile smoke --output tests/notebooks --no-book --force

clean:
	rm -rf _build book/executed book/_static/plotly.min.js
