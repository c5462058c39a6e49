# The registry's everyday commands. `make run` and `make test` do all their own set-up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run custodians test test-fast lint format messages bench bench-smoke clean

$(STAMP): requirements.txt client/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

messages: $(STAMP)
	$(PY) scripts/compile_messages.py >/dev/null

# Development server: API + admin + Celery worker + beat in the foreground (Ctrl-C stops all).
run: $(STAMP) messages
	$(PY) scripts/dev_secrets.py
	source var/dev.env; \
	eval "$$($(PY) scripts/services.py --for run)"; \
	echo "export DATABASE_URL=\"\$${DATABASE_URL:-$$DATABASE_URL}\"" > var/run.env; \
	$(PY) manage.py migrate --no-input && \
	$(PY) scripts/dev_bootstrap.py && \
	exec $(PY) scripts/run_dev.py

# Three local key custodians (2-of-3) beside `make run`, in a second shell: the registry then
# holds no key share (scripts/custodians_demo.py prints how to restart it and the client).
custodians: $(STAMP)
	test -f var/dev.env || $(PY) scripts/dev_secrets.py
	source var/dev.env; \
	eval "$$($(PY) scripts/services.py --for run)"; \
	exec $(PY) scripts/custodians_demo.py

# The whole suite on a real PostgreSQL and a real Redis (see scripts/services.py).
test: $(STAMP) messages
	eval "$$($(PY) scripts/services.py --for test)"; \
	REGISTRY_ENV=test $(PY) -m pytest $(PYTEST_ARGS)

# Without the slow real-process tests (worker, browser, e2e, chaos).
test-fast: $(STAMP) messages
	eval "$$($(PY) scripts/services.py --for test)"; \
	REGISTRY_ENV=test $(PY) -m pytest -m "not worker and not browser and not e2e and not chaos" $(PYTEST_ARGS)

# The benchmark (bench/run.py): its own database, seeded once (1M identifiers, a year of 10M
# lookup-log rows) and reused; gunicorn with deploy/gunicorn.conf.py; every target a ratio
# against PostgreSQL in the same run; figures and table in var/bench/. Larger (opt-in, each
# compared with the one before): BENCH_ARGS="--profile 10m", then BENCH_ARGS="--profile large"
# (100M log rows: ~45 GiB of disk). Seconds-long check: make bench-smoke.
bench: $(STAMP)
	eval "$$($(PY) scripts/services.py --for bench --database registry_bench)"; \
	$(PY) -m bench.run $(BENCH_ARGS)

bench-smoke: $(STAMP)
	eval "$$($(PY) scripts/services.py --for bench --database registry_bench_smoke)"; \
	$(PY) -m bench.run --smoke --reseed $(BENCH_ARGS)

# Also: no model change without its migration (needs no database; without one, Django's
# migration-history check only warns, so that warning is silenced).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	REGISTRY_ENV=test $(PY) -W "ignore:Got an error checking a consistent:RuntimeWarning" \
		manage.py makemigrations --check --dry-run

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) var/broker var/broker-done var/broker-control .pytest_cache
