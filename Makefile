# Spacedock: `make up` runs it, `make test` tests it. Both start from a fresh clone.
# `make test-fast` runs the tests marked `fast` (no Docker, no server started) in seconds.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
# `make up` serves on SPACEDOCK_PORT (default 8080) and runs gunicorn behind Caddy on
# SPACEDOCK_WEB_PORT (default port + 1); see the Procfile. The suite picks free ports of its own.

.PHONY: up test test-fast lint format docker base-image build-engine registry-tools install install-dev migrate bench browser compose wrk git-lfs swarm-lab

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

# A Docker engine that answers, and the base image that space images start from.
docker:
	bash deploy/docker-engine.sh
base-image: docker
	bash deploy/base-image.sh

# The engine tenants' builds run on (own image store, network namespace, limits; needs root), and
# the registry's tools: the registry itself and htpasswd.
build-engine: base-image registry-tools
	bash deploy/build-engine.sh
registry-tools:
	command -v docker-registry >/dev/null && command -v htpasswd >/dev/null \
		|| (apt-get update -qq && apt-get install -y -qq --no-install-recommends docker-registry apache2-utils)

migrate: install
	$(PY) manage.py migrate --no-input

up: install base-image build-engine migrate
	$(VENV)/bin/honcho start --procfile Procfile

test: install-dev base-image build-engine browser compose git-lfs swarm-lab
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Pure units and database-only tests: no Docker engine, base image or browser needed.
test-fast: install-dev
	$(VENV)/bin/pytest -m fast $(PYTEST_ARGS)

# Debian's Chromium for the browser tests (Playwright never downloads its own), and an
# emoji font so screenshots show space cards as people see them.
browser:
	test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver fonts-noto-color-emoji)

# The real git-lfs client for the Git LFS tests (the server itself needs no git-lfs).
git-lfs:
	command -v git-lfs >/dev/null || (apt-get update -qq && apt-get install -y -qq git-lfs)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The cluster tests' extra engines (deploy/swarm-lab.sh) reach the registry through socat.
swarm-lab:
	command -v socat >/dev/null || (apt-get update -qq && apt-get install -y -qq socat)

# docker-compose validates the production compose file in the deploy tests (Debian's v1 works offline).
compose:
	command -v docker-compose >/dev/null || (apt-get update -qq && apt-get install -y -qq docker-compose)

# Every benchmark in bench/, one after another; the report goes to bench/results/report.md.
bench: install-dev base-image wrk
	$(PY) bench/run_all.py $(BENCH_ARGS)

# wrk drives the proxy benchmark's load: a Python client would take a core of its own.
wrk:
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
