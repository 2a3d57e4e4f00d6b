# metricstream — the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check
# What an install depends on: a change to any of them installs again.
INSTALL_INPUTS := pyproject.toml setup.py metricstream/_speedups.c
# The package and its core dependencies (the demo's needs) / with every extra and the dev tools.
CORE_STAMP := $(VENV)/.installed-core
DEV_STAMP  := $(VENV)/.installed-dev-all
# The tests of the encoders, which have optional compiled helpers.
PURE_PYTHON_TESTS := tests/test_batch.py tests/test_lineprotocol.py tests/test_json.py \
	tests/test_event.py tests/test_hostile_input.py tests/test_sink_jsonl.py
# How many processes run the main test suite side by side (pytest-xdist).
TEST_WORKERS ?= 3
# The Python versions, besides the one of $(VENV), that run the tests needing no server.
OTHER_PYTHONS ?= 3.10 3.11 3.12 3.13

.PHONY: demo test test-other-pythons bench bench-readme lint services services-stop clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(CORE_STAMP): $(INSTALL_INPUTS) | $(PY)
	$(PIP) -e .
	@touch $@

# Everything the core install has, and more: it stands for that install too.
$(DEV_STAMP): $(INSTALL_INPUTS) | $(PY)
	$(PIP) -e '.[dev,all]'
	@touch $@ $(CORE_STAMP)

## Run the simulated analytics workload for ~10 s (console + zstd JSON Lines; no servers).
## Installs the package and its core dependencies only.
demo: $(CORE_STAMP)
	$(PY) -m metricstream demo --duration 10

## Start the real servers (Redis, InfluxDB 1.6, VictoriaMetrics, Tansu) and run the tests
## (TEST_WORKERS processes: most tests wait on servers, child processes and deadlines);
## the codec tests run a second time without the optional compiled helpers. Beside them,
## from the start, the tests that need no server run on each other Python version installed
## (.ci/other-pythons, its output in $(VENV)/other-pythons.log, shown at the end).
test: $(DEV_STAMP)
	scripts/services.sh start
	.ci/other-pythons $(OTHER_PYTHONS) >$(VENV)/other-pythons.log 2>&1 & others=$$!; \
	eval "$$(scripts/services.sh env)" \
		&& METRICSTREAM_REQUIRE_SERVERS=1 $(PY) -m pytest -q -n $(TEST_WORKERS); main=$$?; \
	METRICSTREAM_PURE_PYTHON=1 $(PY) -m pytest -q $(PURE_PYTHON_TESTS); pure=$$?; \
	echo "== waiting for the other Pythons"; wait $$others; other=$$?; \
	cat $(VENV)/other-pythons.log; \
	echo "  and on $(PY): the full suite against the servers $$( [ $$main = 0 ] && echo passed || echo FAILED)," \
		"the codec tests without the compiled helpers $$( [ $$pure = 0 ] && echo passed || echo FAILED)"; \
	[ $$main = 0 ] && [ $$pure = 0 ] && [ $$other = 0 ]

## The tests that need no server on each of OTHER_PYTHONS found here, side by side, each in
## .venv-X.Y; a version not installed is reported, not a failure (.ci/other-pythons).
test-other-pythons: $(DEV_STAMP)
	.ci/other-pythons $(OTHER_PYTHONS)

$(VENV)/.installed-bench: pyproject.toml $(DEV_STAMP)
	$(PIP) -e '.[dev,all,bench]'
	@touch $@

## Benchmarks against the peers; writes benchmarks/results/REPORT.md, its charts and
## results.json, then copies the report's table of targets into the README (even when a
## benchmark failed, so that the README never quotes another run; the exit status says so).
bench: $(VENV)/.installed-bench
	scripts/services.sh start
	eval "$$(scripts/services.sh env)" && $(PY) benchmarks/run.py; status=$$?; \
		$(PY) benchmarks/readme_targets.py && exit $$status

## Copy the table of targets of the committed benchmarks/results/results.json into the README.
bench-readme: $(DEV_STAMP)
	$(PY) benchmarks/readme_targets.py

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check metricstream tests benchmarks examples
	$(VENV)/bin/mypy metricstream

services:
	scripts/services.sh start

services-stop:
	scripts/services.sh stop

clean:
	rm -rf $(VENV) $(VENV)-3.* build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache \
		.hypothesis metricstream-demo
