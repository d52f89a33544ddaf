# consentgate — the two commands a newcomer needs are `make demo` and `make test`.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := config consent middleware widgets
# mypy checks the installed package (strict editable mode links it), module by module.
MYPY_MODULES := $(foreach f,$(wildcard $(addsuffix /*.py,$(PACKAGES))),-m consentgate.$(subst /,.,$(patsubst %/__init__,%,$(basename $(f)))))
SOURCES := $(wildcard $(addsuffix /*,$(PACKAGES)))
# The browser tests drive Debian's Chromium (Playwright's own browser download is not used).
CHROMIUM_STAMP := $(VENV)/.chromium

.PHONY: demo test lint typecheck unit wheel-check bench clean

$(STAMP): pyproject.toml $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# strict editable mode: mypy sees the code, and data files resolve like in a wheel
	$(BIN)/python -m pip install --quiet -e '.[test]' --config-settings editable_mode=strict
	touch $(STAMP)

$(CHROMIUM_STAMP): $(STAMP)
	command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
		|| { echo "chromium missing: run 'apt-get install chromium' as root" >&2; exit 1; }
	touch $(CHROMIUM_STAMP)

demo: $(STAMP)
	$(BIN)/python -m uvicorn example_site.app:app --host 127.0.0.1 --port 8000 --no-access-log

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy $(MYPY_MODULES)
	$(BIN)/mypy tests example_site bench

unit: $(STAMP) $(CHROMIUM_STAMP)
	$(BIN)/python -m pytest

test: $(CHROMIUM_STAMP) lint typecheck unit

wheel-check: $(STAMP)
	bash .ci/wheel-check

# The end-to-end part loads uvicorn with wrk (Debian package `wrk`; installed here if we may).
bench: $(STAMP) $(CHROMIUM_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]' --config-settings editable_mode=strict
	command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get install -y -qq wrk >/dev/null; } || echo "wrk not installed: end-to-end part skipped"
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .pytest_cache .ruff_cache .hypothesis
