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

# From what a new machine has: no image, container, volume, network or venv of ours (scripts/
# fresh-engine.sh), so bootstrap and the tests build every image again. PAAS_TEST_REUSE=1 skips that.
test: export PAAS_TEST_STARTED := $(shell date +%s)
test:
	@scripts/fresh-engine.sh
	@scripts/bootstrap.sh
	.venv/bin/ruff check paas plugins tests bench
	@scripts/test.sh

bench: bootstrap
	.venv/bin/python bench/deploy.py

lint:
	.venv/bin/ruff check paas plugins tests bench
	.venv/bin/ruff format --check paas plugins tests bench
