# Two entry points (see README): `make run` and `make test`. Both set up .venv first.
# The interpreter for .venv: empty = scripts/pick_python.sh picks one (python3 when it is 3.10-3.12,
# else python3.12, python3.11 or python3.10; else it says how to get one); PYTHON=... overrides.
PYTHON ?=
VENV ?= .venv
# The locally cached CPU build; on a GPU machine pick a CUDA build, e.g.
#   make run TORCH_SPEC="torch==2.13.0" PIP_EXTRA="--index-url https://download.pytorch.org/whl/cu126"
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test lint clean which-python

$(STAMP): pyproject.toml
	@py="$$($(SHELL) scripts/pick_python.sh "$(PYTHON)")" && echo "$$py -m venv $(VENV)" && "$$py" -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)" $(PIP_EXTRA)
	$(PY) -m pip install --quiet -e ".[test,server]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(PY) main.py $(ARGS)

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest $(PYTEST_ARGS)
	$(VENV)/bin/ruff check avatarify_app tests main.py
	$(VENV)/bin/lint-imports

which-python:  # the interpreter `make setup` builds .venv with
	@$(SHELL) scripts/pick_python.sh "$(PYTHON)"

clean:
	rm -rf $(VENV)
