# metricstream — the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev-all
# The tests of the encoders, which have optional compiled helpers.
PURE_PYTHON_TESTS := tests/test_batch.py tests/test_lineprotocol.py tests/test_json.py \
	tests/test_event.py tests/test_hostile_input.py tests/test_sink_jsonl.py

.PHONY: demo test bench bench-readme lint services services-stop clean

$(STAMP): pyproject.toml setup.py metricstream/_speedups.c
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,all]'
	@touch $(STAMP)

## Run the simulated analytics workload for ~10 s (console + zstd JSON Lines; no servers).
demo: $(STAMP)
	$(PY) -m metricstream demo --duration 10

## Start the real servers (Redis, InfluxDB 1.6, VictoriaMetrics, Tansu) and run the tests.
## The codec tests run a second time without the optional compiled helpers.
test: $(STAMP)
	scripts/services.sh start
	eval "$$(scripts/services.sh env)" && METRICSTREAM_REQUIRE_SERVERS=1 $(PY) -m pytest -q
	METRICSTREAM_PURE_PYTHON=1 $(PY) -m pytest -q $(PURE_PYTHON_TESTS)

$(VENV)/.installed-bench: pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,all,bench]'
	@touch $@

## Benchmarks against the peers; writes benchmarks/results/REPORT.md, its charts and
## results.json, then copies the report's table of targets into the README (even when a
## benchmark failed, so that the README never quotes another run; the exit status says so).
bench: $(VENV)/.installed-bench
	scripts/services.sh start
	eval "$$(scripts/services.sh env)" && $(PY) benchmarks/run.py; status=$$?; \
		$(PY) benchmarks/readme_targets.py && exit $$status

## Copy the table of targets of the committed benchmarks/results/results.json into the README.
bench-readme: $(STAMP)
	$(PY) benchmarks/readme_targets.py

lint: $(STAMP)
	$(VENV)/bin/ruff check metricstream tests benchmarks examples
	$(VENV)/bin/mypy metricstream

services:
	scripts/services.sh start

services-stop:
	scripts/services.sh stop

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis metricstream-demo
