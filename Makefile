# socle: developer entry points. Everything runs on this machine (no Docker):
# deploy/local/ installs and runs Kafka and PostgreSQL, daemon.sh runs socle's own processes.
#   make up            start everything and load the demo data
#   make down          stop everything (make down PURGE=1 also deletes .local/)
#   make test          the whole test suite, starting what it needs
# Addresses and ports come from deploy/local/env.sh (override them in your environment).

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

LOCAL  := deploy/local
DAEMON := $(LOCAL)/daemon.sh
WAIT   := $(LOCAL)/wait-http.sh
LOGS   := $(or $(SOCLE_DATA),$(CURDIR)/.local)/logs
SOCLE  := target/debug/socle
# Prefix for recipe lines that need the SOCLE__* variables (only sets what is not already set).
ENV    := . $(LOCAL)/env.sh &&
# Python virtual environment of the interop tests (tests/interop/setup.sh creates it).
VENV   := $(or $(SOCLE_VENV),$(or $(SOCLE_DATA),$(CURDIR)/.local)/venv)

.PHONY: help up down test fmt lint status logs stack-up build registry check-compose interop

help:
	@echo "make up               start Kafka, PostgreSQL, the registry and socle; load the demo"
	@echo "make down [PURGE=1]   stop everything (PURGE=1 also deletes the local data)"
	@echo "make test             fmt check, clippy, all tests against the real services"
	@echo "make fmt | lint       format the code | fmt check + clippy"
	@echo "make status | logs    what runs | the end of every log in $(LOGS)"

stack-up:
	$(LOCAL)/stack.sh up

build:
	cargo build --bin socle

# The schema registry (socle registry), restarted so that it runs the binary just built.
registry: stack-up build
	$(ENV) $(DAEMON) restart registry -- $(SOCLE) registry
	$(ENV) $(WAIT) "$$SOCLE__REGISTRY__URL/subjects" 60 $(LOGS)/registry.log

# The demo person loaded by `socle demo load` (crates/socle-cli/src/demo.rs).
DEMO_PERSON := 01936b2a-5c00-7000-8000-000000000001
# The development IdP (socle dev idp) that make up trusts, and the demo advisor (docs/api.md).
DEV_IDP := http://127.0.0.1:8090
AUTH    := SOCLE__AUTH__ISSUER=$(DEV_IDP) SOCLE__AUTH__JWKS_URL=$(DEV_IDP)/jwks.json
DEMO_ADVISOR := --user conseillere.demo --org 90000100900019 --ecosystem france-travail

up: registry
	$(ENV) $(SOCLE) admin topics apply
	$(ENV) $(SOCLE) admin schemas apply
	$(ENV) $(DAEMON) restart dev-idp -- $(SOCLE) dev idp
	$(ENV) $(WAIT) "$(DEV_IDP)/jwks.json" 30 $(LOGS)/dev-idp.log
	$(ENV) $(AUTH) $(DAEMON) restart socle -- $(SOCLE) all --no-registry
	$(ENV) $(WAIT) "http://$$SOCLE__API__LISTEN/health" 90 $(LOGS)/socle.log
	$(ENV) $(SOCLE) demo load
	$(ENV) $(SOCLE) admin grant $(DEMO_ADVISOR) --actions person.read,person.search,caseload.list \
	  --purpose accompagnement --until "$$(date -u -d "+30 days" +%Y-%m-%dT%H:%M:%SZ)" --by make-up
	@$(ENV) echo; \
	echo "socle is up."; \
	echo "  API:           http://$$SOCLE__API__LISTEN  (registry: $$SOCLE__REGISTRY__URL)"; \
	echo "  token:         TOKEN=\$$(target/debug/socle dev token $(DEMO_ADVISOR) --mfa)"; \
	echo "  read a person: curl -s -H \"Authorization: Bearer \$$TOKEN\" http://$$SOCLE__API__LISTEN/persons/$(DEMO_PERSON)"; \
	echo "  access trail:  $(SOCLE) audit tail"; \
	echo "  health:        curl -s http://$$SOCLE__API__LISTEN/health"; \
	echo "  logs:          $(LOGS)   stop: make down"

down:
	$(DAEMON) stop --all
	$(LOCAL)/stack.sh down $(if $(PURGE),--purge)

# The tests find Kafka, PostgreSQL and the registry through the SOCLE__* variables of env.sh.
test: check-compose
	cargo fmt --all -- --check
	$(MAKE) --no-print-directory registry
	cargo clippy --workspace --all-targets -- -D warnings
	$(ENV) cargo test --workspace
	$(MAKE) --no-print-directory interop
	$(ENV) cargo test -p socle-it --features outage --test outage -- --test-threads=1

# Real clients nobody here wrote (confluent-kafka for Python) against socle's registry and Kafka
# (running: make registry or make up). pytest's exit status fails the target.
interop:
	tests/interop/setup.sh
	$(ENV) $(VENV)/bin/python -m pytest -p no:cacheprovider -ra tests/interop

check-compose:
	python3 $(LOCAL)/check-compose.py

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

status:
	@$(LOCAL)/stack.sh status || true

logs:
	@for f in $(LOGS)/*.log; do [[ -e "$$f" ]] || continue; echo "==== $$f"; tail -n 40 "$$f"; done
