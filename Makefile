# Every target makes its own virtualenv when it is missing, so a fresh clone needs only
# python3 (>= 3.10) and, for the Redis tests, root to apt-get redis-server (CI's case).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LINTED := entitlegate $(wildcard integrations/entitlegate_*) example_app

.PHONY: test test-compat lint format demo bench bench-instructions redis-server run-django run-flask run-asgi clean

# One virtualenv for everything: the test suite also smoke-tests the benchmarks, which compare
# with django-waffle (the bench extra).
$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[all,dev,bench]"
	@touch $@

# redis-server is a system package, not a Python one: install it when the machine lacks it.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server (apt-get)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server >/dev/null; }
	@command -v redis-server >/dev/null 2>&1 || { echo "redis-server is required; install it and retry" >&2; exit 1; }

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED) tests bench
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy --strict $(LINTED)

format: $(STAMP)
	$(VENV)/bin/ruff format $(LINTED)
	$(VENV)/bin/ruff check --fix $(LINTED) tests bench

test: $(STAMP) redis-server lint
	$(PY) -m pytest

# The walkthrough: each example app denies a customer, takes a signed webhook, lets them in.
# The suite again on Python 3.10 + Django 4.2 LTS and on Python 3.12 + the newest releases,
# where this machine has those interpreters (CI runs it after `make test`).
test-compat: redis-server
	bash .ci/compat

demo: $(STAMP)
	$(PY) -m example_app.demo

# One example app on http://127.0.0.1:8000 to click through. STRIPE_API_KEY + STRIPE_WEBHOOK_SECRET
# (test mode) switch it from the embedded fixture to Stripe; CACHE_URL=redis://... to Redis.
run-django: $(STAMP)
	$(PY) -m django runserver --settings example_app.django_app.settings 127.0.0.1:8000

run-flask: $(STAMP)
	$(PY) -m flask --app example_app.flask_app run --host 127.0.0.1 --port 8000

run-asgi: $(STAMP)
	$(PY) -m uvicorn --factory example_app.asgi_app:create_app --host 127.0.0.1 --port 8000

bench: $(STAMP) redis-server
	$(PY) -m bench

# What each gate adds per request in instructions (callgrind), beside the same floors: exact
# where timings on a shared VM are noisy. Needs valgrind; about 10 minutes.
bench-instructions: $(STAMP)
	@command -v valgrind >/dev/null 2>&1 || { echo "bench-instructions needs valgrind (apt-get install valgrind)" >&2; exit 1; }
	$(PY) -m bench.instructions

clean:
	rm -rf $(VENV) .venv-compat-* .mypy_cache .ruff_cache .hypothesis
