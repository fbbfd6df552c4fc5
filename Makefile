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

.PHONY: help up down demo test fmt lint status logs stack-up build registry check-compose interop

help:
	@echo "make up               start Kafka, PostgreSQL and every socle component; load the demo"
	@echo "make demo             run the walkthrough make up prints, checking each step"
	@echo "make down [PURGE=1]   stop everything (PURGE=1 also deletes the local data)"
	@echo "make test             fmt check, clippy, all tests against the real services"
	@echo "make fmt | lint       format the code | fmt check + clippy"
	@echo "make status | logs    what runs | the end of every log in $(LOGS)"

stack-up:
	$(LOCAL)/stack.sh up

build:
	cargo build --bin socle

# The schema registry (socle registry), restarted so that it runs the binary just built
# (after `socle migrate`, which creates its tables).
registry: stack-up build
	$(ENV) $(SOCLE) migrate >/dev/null
	$(ENV) SOCLE_SUPERVISE=1 $(DAEMON) restart registry -- $(SOCLE) registry
	$(ENV) $(WAIT) "$$SOCLE__REGISTRY__URL/health" 60 $(LOGS)/registry.log

# The demo person loaded by `socle demo load` (crates/socle-cli/src/demo.rs).
DEMO_PERSON := 01936b2a-5c00-7000-8000-000000000001
# The demo advisor (a France Travail agency) and the grant make up gives her (docs/api.md).
DEMO_ADVISOR := --user conseillere.demo --org 90000100900019 --ecosystem france-travail

# Everything: the stack, `socle migrate`, every component supervised (deploy/local/components.sh),
# the demo data through ingest, the demo advisor's grant, then the walkthrough to paste.
up: stack-up build
	$(ENV) $(LOCAL)/components.sh up
	$(ENV) $(SOCLE) demo load
	$(ENV) $(SOCLE) admin grant $(DEMO_ADVISOR) \
	  --actions person.read,person.search,person.write,caseload.list \
	  --purpose accompagnement --until "$$(date -u -d "+30 days" +%Y-%m-%dT%H:%M:%SZ)" --by make-up
	$(ENV) $(SOCLE) admin grant --user auditrice.demo --org 90000100500012 --ecosystem france-travail \
	  --actions audit.query --purpose controle --until "$$(date -u -d "+30 days" +%Y-%m-%dT%H:%M:%SZ)" --by make-up
	@$(ENV) $(LOCAL)/components.sh status || true
	@$(ENV) DEMO_PERSON=$(DEMO_PERSON) $(LOCAL)/walkthrough.sh print

# The walkthrough that make up prints, run step by step (each step checks what it shows).
demo:
	@$(ENV) DEMO_PERSON=$(DEMO_PERSON) $(LOCAL)/walkthrough.sh run

down:
	$(ENV) $(LOCAL)/components.sh down
	$(DAEMON) stop --all
	$(LOCAL)/stack.sh down $(if $(PURGE),--purge)

# The tests find Kafka, PostgreSQL and the registry through the SOCLE__* variables of env.sh.
test: check-compose
	cargo fmt --all -- --check
	$(MAKE) --no-print-directory registry
	cargo clippy --workspace --all-targets -- -D warnings
	$(ENV) cargo test --workspace
	$(MAKE) --no-print-directory interop
	tests/first-start.sh
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

# Kafka and PostgreSQL, then every component with its health; says plainly what is not running.
status:
	@$(LOCAL)/stack.sh status >/dev/null 2>&1 || true
	@$(LOCAL)/postgres.sh status || true
	@$(LOCAL)/kafka.sh status || true
	@$(ENV) $(LOCAL)/components.sh status || true

logs:
	@for f in $(LOGS)/*.log; do [[ -e "$$f" ]] || continue; echo "==== $$f"; tail -n 40 "$$f"; done
