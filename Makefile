# consentgate — the two commands a newcomer needs are `make demo` and `make test`.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := config consent middleware widgets
# mypy checks the installed package (strict editable mode links it), module by module.
MYPY_MODULES := $(foreach f,$(wildcard $(addsuffix /*.py,$(PACKAGES))),-m consentgate.$(subst /,.,$(patsubst %/__init__,%,$(basename $(f)))))
SOURCES := $(wildcard $(addsuffix /*,$(PACKAGES)))

.PHONY: demo test lint typecheck unit wheel-check bench clean

$(STAMP): pyproject.toml $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# strict editable mode: mypy sees the code, and data files resolve like in a wheel
	$(BIN)/python -m pip install --quiet -e '.[test]' --config-settings editable_mode=strict
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m uvicorn example_site.app:app --host 127.0.0.1 --port 8000 --no-access-log

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy $(MYPY_MODULES)
	$(BIN)/mypy tests example_site bench

unit: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck unit

wheel-check: $(STAMP)
	bash .ci/wheel-check

# The end-to-end part loads uvicorn with wrk (Debian package `wrk`; installed here if we may).
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]' --config-settings editable_mode=strict
	command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get install -y -qq wrk >/dev/null; } || echo "wrk not installed: end-to-end part skipped"
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .pytest_cache .ruff_cache .hypothesis
