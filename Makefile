# tickwire — the commands of DESIGN.md §5.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
PYTEST := uv run --frozen pytest

.PHONY: install run down test test-unit test-integration bench

install:
	@deploy/local/install.sh

run: install
	@uv run --frozen python deploy/local/run.py

down:
	@if [ -f .run/pids ]; then \
	  while read -r pid name; do kill "$$pid" 2>/dev/null && echo "stopped $$name ($$pid)"; done < .run/pids; \
	  rm -f .run/pids; \
	else echo "nothing left running"; fi

test: install
	@$(PYTEST) -q

test-unit: install
	@$(PYTEST) -q libs services

test-integration: install
	@$(PYTEST) -q tests/integration
