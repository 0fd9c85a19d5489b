# Two commands: `make serve` and `make test`. Both create the virtualenv first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup sysdeps serve test lint bench-ingest bench-parse bench-dicomweb bench-models bench-pipeline bench-triage bench-worklist bench-qa clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# torch==2.13.0 (CPU build) is pinned in pyproject.toml; the GPU build is Dockerfile.gpu's.
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# What the tests talk to, from Debian's packages: DCMTK, dicom3tools (dciodvfy), Chromium
# (browser tests; Playwright cannot download a browser here).
SYSTEM_PACKAGES := dcmtk dicom3tools chromium
sysdeps:
	@if [ ! -x /usr/bin/storescu ] || [ ! -x /usr/bin/dciodvfy ] || [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	  else echo "install them: apt-get install $(SYSTEM_PACKAGES)"; exit 1; fi; \
	fi

serve: setup
	$(VENV)/bin/pacs-ai serve --demo

lint: setup
	$(VENV)/bin/ruff check pacs_ai tests benchmarks models
	$(VENV)/bin/ruff format --check pacs_ai tests benchmarks models
	$(VENV)/bin/mypy

test: setup sysdeps lint
	$(VENV)/bin/pytest -m "not gpu" $(PYTEST_ARGS)

# Benchmarks run Orthanc beside pacs-ai when it is installed (apt-get install orthanc orthanc-dicomweb).
bench-ingest: setup sysdeps
	$(PY) benchmarks/ingest.py

bench-parse: setup
	$(PY) benchmarks/parse.py

bench-dicomweb: setup sysdeps
	$(PY) benchmarks/dicomweb.py

bench-models: setup
	$(PY) benchmarks/models.py

bench-pipeline: setup sysdeps
	$(PY) benchmarks/pipeline.py

bench-triage: setup
	$(PY) benchmarks/triage.py

bench-worklist: setup
	$(PY) benchmarks/worklist.py

bench-qa: setup
	$(PY) benchmarks/qa.py

clean:
	rm -rf $(VENV) pacs-data .pytest_cache .mypy_cache .ruff_cache
