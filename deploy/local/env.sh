# shellcheck shell=sh
# Source this file (". deploy/local/env.sh") to point socle at the local stack.
# Each variable is set only when not already set, so your own values win. See example.env.
: "${SOCLE_KAFKA_PORT:=9092}"
: "${SOCLE_PG_PORT:=5432}"
: "${SOCLE__KAFKA__BROKERS:=localhost:${SOCLE_KAFKA_PORT}}"
: "${SOCLE__DATABASE__URL:=postgres://socle:socle@localhost:${SOCLE_PG_PORT}/socle}"
: "${SOCLE__REGISTRY__URL:=http://localhost:8081}"
: "${SOCLE__API__LISTEN:=127.0.0.1:8080}"
: "${SOCLE__REGISTRY__LISTEN:=127.0.0.1:8081}"
export SOCLE_KAFKA_PORT SOCLE_PG_PORT SOCLE__KAFKA__BROKERS SOCLE__DATABASE__URL \
  SOCLE__REGISTRY__URL SOCLE__API__LISTEN SOCLE__REGISTRY__LISTEN
