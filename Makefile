# tickwire — the commands of DESIGN.md §5.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
PYTEST := uv run --frozen pytest
# Test processes (pytest-xdist); each has its own Redis and Kafka, and a file's tests stay
# in one process. Most tests wait on services, so 2 halve the time even on 2 cores.
TEST_WORKERS ?= 2
PARALLEL := -n $(TEST_WORKERS) --dist loadfile

.PHONY: install install-test run run-cluster down test test-web test-unit test-integration test-deploy bench soak

install:
	@deploy/local/install.sh

install-test:
	@deploy/local/install.sh --test

run: install
	@uv run --frozen python deploy/local/run.py

run-cluster: install
	@uv run --frozen python deploy/local/run_cluster.py

down:
	@if [ -f .run/pids ]; then \
	  while read -r pid name; do kill "$$pid" 2>/dev/null && echo "stopped $$name ($$pid)"; done < .run/pids; \
	  rm -f .run/pids; \
	else echo "nothing left running"; fi

# Everything: the web client's type check and Vitest suite, then every Python tier.
test: install-test test-web
	@$(PYTEST) -q $(PARALLEL)

test-web:
	@libs/web-client/build.sh --test

test-unit: install
	@$(PYTEST) -q libs services

test-integration: install-test
	@$(PYTEST) -q $(PARALLEL) tests/integration

test-deploy: install-test
	@$(PYTEST) -q tests/deploy

# Issue #9's benchmark: one edge vs the baseline forwarder, 3 interleaved repeats, report in
# bench/results/ (latest.json, latest.png). Flags: make bench BENCH_ARGS="--msgpack --rate 100"
bench: install
	@uv run --frozen python -m bench.run $(BENCH_ARGS)

.PHONY: bench-smoke
bench-smoke: install
	@$(PYTEST) -q tests/bench

# The stack under moderate churning load, sampled for leaks (tests/soak/soak.py):
# SOAK_MINUTES (10), SOAK_INTERVAL (60 s), SOAK_CLIENTS (60); writes test-artifacts/soak/.
soak: install
	@uv run --frozen python tests/soak/soak.py
