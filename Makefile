# `make up` sets up and runs the PaaS; `make test` runs the whole suite. Both work on a fresh
# Debian machine as root and are idempotent.
SHELL := /bin/bash
HOST_CA := /etc/ssl/certs/ca-certificates.crt
ifeq ($(origin PAAS_BUILD_CA_BUNDLE), undefined)
  ifneq ($(wildcard $(HOST_CA)),)
    export PAAS_BUILD_CA_BUNDLE := $(HOST_CA)
  endif
endif

.PHONY: up test bootstrap lint bench install uninstall

bootstrap:
	@scripts/bootstrap.sh

up: bootstrap
	@exec .venv/bin/paas server

install:
	@scripts/install.sh

uninstall:
	@scripts/install.sh uninstall

test: bootstrap
	.venv/bin/ruff check paas plugins tests bench
	.venv/bin/python -m pytest -q -p no:cacheprovider --durations=15 tests

bench: bootstrap
	.venv/bin/python bench/deploy.py

lint:
	.venv/bin/ruff check paas plugins tests bench
	.venv/bin/ruff format --check paas plugins tests bench
