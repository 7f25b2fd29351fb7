# Two commands set everything up on a fresh machine with Python 3.11:
#   make demo   - create .venv, install, run the simulated day
#   make test   - create .venv, install, run the whole suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench venv clean

$(PY):
	@test -n "$(PYTHON)" || { echo "need Python 3.11 (python3.11 or python3 on PATH, or PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m databricks.devtools.demo

test: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache   # the layer contracts in .importlinter
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m databricks.devtools.bench

clean:
	rm -rf $(VENV) .pytest_cache demo-output
