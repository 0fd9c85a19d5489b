# Two commands: `make serve` and `make test`. Both create the virtualenv first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup sysdeps serve test lint bench-ingest clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# torch==2.13.0 (CPU build) is pinned in pyproject.toml; the GPU build is Dockerfile.gpu's.
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# DICOM peers the tests talk to: DCMTK and dicom3tools (dciodvfy), from Debian's packages.
sysdeps:
	@if [ ! -x /usr/bin/storescu ] || [ ! -x /usr/bin/dciodvfy ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dcmtk dicom3tools >/dev/null; \
	  else echo "install dcmtk and dicom3tools (apt-get install dcmtk dicom3tools)"; exit 1; fi; \
	fi

serve: setup
	$(VENV)/bin/pacs-ai serve

lint: setup
	$(VENV)/bin/ruff check pacs_ai tests benchmarks
	$(VENV)/bin/ruff format --check pacs_ai tests benchmarks
	$(VENV)/bin/mypy

test: setup sysdeps lint
	$(VENV)/bin/pytest -m "not gpu" $(PYTEST_ARGS)

bench-ingest: setup sysdeps
	$(PY) benchmarks/ingest.py

clean:
	rm -rf $(VENV) pacs-data .pytest_cache .mypy_cache .ruff_cache
