# Switchboard. `make run` starts the demo; `make test` installs what the tests need and runs them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run demo serve test lint bench bench-sustained soak clean system

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(TEST_STAMP)

run: demo

demo: $(STAMP)
	$(VENV)/bin/switchboard demo

serve: $(STAMP)
	$(VENV)/bin/switchboard serve

# What the tests need from Debian: a browser with CJK fonts, and Dovecot as the real IMAP
# server of the email tests (started by the tests themselves, never as a system service).
system:
	@if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi "noto sans cjk" \
			|| ! command -v dovecot >/dev/null 2>&1; then \
		echo "installing chromium, fonts-noto-cjk and dovecot-imapd with apt"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium fonts-noto-cjk dovecot-imapd >/dev/null; \
	fi

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check .

test: $(TEST_STAMP) system
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

# Crash, fault, storm and fuzz runs at full size (bounded, loopback only, ~15 min); the figures
# are printed at the end (and written to $CHAOS_RESULTS as JSON when it is set).
soak: $(TEST_STAMP)
	$(PY) -m pip install --quiet -e '.[soak]'
	CHAOS_FUZZ_EXAMPLES=3000 CHAOS_SCHEMA_EXAMPLES=60 \
		$(PY) -m pytest -q -p no:randomly soak tests/test_chaos_fuzz.py tests/test_chaos_api_schema.py

bench: $(TEST_STAMP)
	$(PY) -m bench

# ingest and replies together at 80% of capacity for ten minutes
bench-sustained: $(TEST_STAMP)
	$(PY) -m bench --only sustained --budget 1500

clean:
	rm -rf $(VENV) data
