# Two commands for a fresh machine:
#   make run   - set up and start the bench station (simulated hardware) on http://127.0.0.1:8080
#   make test  - set up and run every check and test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check lint typecheck pytest bench bench-smoke system-deps clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# `make run METER=sim`: the budget follows a simulated site meter (house load and solar).
run: $(STAMP)
	$(BIN)/pev-charger run --sim $(if $(METER),--meter $(METER))

# Debian's chromium (page tests), zbar-tools (QR decoding), shellcheck (hardware/install.sh) and
# mosquitto (the MQTT broker the tests start), installed when missing and we are root.
system-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v zbarimg >/dev/null 2>&1 \
	    || ! command -v shellcheck >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium zbar-tools shellcheck >/dev/null) \
	      || echo "warning: could not install chromium/zbar-tools/shellcheck; some checks will be skipped"; \
	  else echo "warning: chromium, zbarimg or shellcheck missing and not root; some checks will be skipped"; fi; \
	fi
	@if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null) \
	      || echo "warning: could not install mosquitto; MQTT broker tests will be skipped"; \
	  else echo "warning: mosquitto missing and not root; MQTT broker tests will be skipped"; fi; \
	fi

lint: $(STAMP) system-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@if command -v shellcheck >/dev/null 2>&1; then shellcheck hardware/install.sh; \
	else echo "shellcheck is not installed: hardware/install.sh not linted"; fi

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-deps
	$(BIN)/pytest -q

test: lint typecheck pytest bench-smoke

# Benchmarks: the full run (minutes) and the smoke run that tests include (seconds).
bench: $(STAMP)
	$(BIN)/python -m bench all

bench-smoke: $(STAMP)
	@if [ -f bench/__main__.py ]; then $(BIN)/python -m bench all --smoke; fi

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
