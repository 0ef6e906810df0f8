# The two commands of the README, and a few helpers. Each one installs what it needs first.
PY := .venv/bin/python
export STREAMLIT_BROWSER_GATHER_USAGE_STATS := false
export PYTHONPATH := $(CURDIR)

.PHONY: bootstrap run test bench stack-up stack-down stack-status lint

bootstrap:
	@scripts/bootstrap.sh

## run: start the local stack (MongoDB stand-in, Kafka, CDC relay) and the app on http://127.0.0.1:8501
## The flags repeat .streamlit/config.toml (a unit test keeps them equal): flags win over STREAMLIT_*
## variables and ~/.streamlit/config.toml, so neither can open the app to other machines here.
run: bootstrap
	$(PY) -m stack run -- $(PY) -m streamlit run app.py --server.headless true \
	  --server.address 127.0.0.1 --browser.gatherUsageStats false --client.toolbarMode viewer \
	  --server.port $${APP_PORT:-8501}

## test: lint and types, then the whole test suite on real services (started and stopped by the tests),
## browser tests included
test:
	@scripts/bootstrap.sh --dev --browser
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest

## bench: freshness and throughput against the original design's pipeline, insert -> pixel in Chromium, then the
## two CDC paths, relay and Debezium (about 27 minutes)
bench:
	@scripts/bootstrap.sh --dev --browser
	$(PY) -m bench

stack-up: bootstrap
	$(PY) -m stack up

stack-down:
	$(PY) -m stack down

stack-status:
	$(PY) -m stack status

lint:
	@scripts/bootstrap.sh --dev
	$(PY) -m ruff check .
	$(PY) -m mypy
