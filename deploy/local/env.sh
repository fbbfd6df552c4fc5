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
# The data folder (deploy/local/lib.sh: .local/ in the checkout unless SOCLE_DATA says otherwise).
_socle_data="${SOCLE_DATA:-$PWD/.local}"
# The health ports of the components without an HTTP API of their own (make status reads them).
: "${SOCLE__HEALTH__INGEST:=127.0.0.1:9101}"
: "${SOCLE__HEALTH__PROJECTOR:=127.0.0.1:9102}"
: "${SOCLE__HEALTH__FEED:=127.0.0.1:9103}"
: "${SOCLE__HEALTH__SEAL:=127.0.0.1:9104}"
: "${SOCLE__HEALTH__DETECT:=127.0.0.1:9105}"
: "${SOCLE__HEALTH__AUDIT:=127.0.0.1:9106}"
# The local stack's identity provider (socle dev idp), which the API trusts.
: "${SOCLE__AUTH__DEV_IDP_LISTEN:=127.0.0.1:8090}"
: "${SOCLE__AUTH__ISSUER:=http://${SOCLE__AUTH__DEV_IDP_LISTEN}}"
: "${SOCLE__AUTH__JWKS_URL:=${SOCLE__AUTH__ISSUER}/jwks.json}"
: "${SOCLE__AUTH__DEV_IDP_DIR:=${_socle_data}/dev-idp}"
# The sealer's key pair, generated on the first `make up` into the data folder (never the
# checkout); `socle audit verify` checks with the public key by default.
: "${SOCLE__SEAL__PRIVATE_KEY:=${_socle_data}/seal/private-key.pem}"
: "${SOCLE__SEAL__PUBLIC_KEY:=${_socle_data}/seal/public-key.pem}"
unset _socle_data
export SOCLE_KAFKA_PORT SOCLE_PG_PORT SOCLE__KAFKA__BROKERS SOCLE__DATABASE__URL \
  SOCLE__REGISTRY__URL SOCLE__API__LISTEN SOCLE__REGISTRY__LISTEN \
  SOCLE__HEALTH__INGEST SOCLE__HEALTH__PROJECTOR SOCLE__HEALTH__FEED SOCLE__HEALTH__SEAL \
  SOCLE__HEALTH__DETECT SOCLE__HEALTH__AUDIT SOCLE__AUTH__DEV_IDP_LISTEN SOCLE__AUTH__ISSUER \
  SOCLE__AUTH__JWKS_URL SOCLE__AUTH__DEV_IDP_DIR SOCLE__SEAL__PRIVATE_KEY SOCLE__SEAL__PUBLIC_KEY
