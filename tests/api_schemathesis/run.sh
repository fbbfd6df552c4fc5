#!/usr/bin/env bash
# Schemathesis against the API's generated /openapi.json, on the local stack (make up's Kafka,
# PostgreSQL and registry): no 500, and every answer conforms to the document (status, content
# type, body schema). See docs/api.md. Usage: tests/api_schemathesis/run.sh [MAX_EXAMPLES]
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/local/env.sh
EXAMPLES=${1:-50}
VENV=.local/venv-api   # its own venv: schemathesis pins hypothesis, which others' tools also use
if [[ ! -x $VENV/bin/schemathesis ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q schemathesis
fi
cargo build -q --bin socle
SOCLE=target/debug/socle
WORK=$(mktemp -d)
export SOCLE__AUTH__DEV_IDP_LISTEN=127.0.0.1:18190 SOCLE__AUTH__DEV_IDP_DIR="$WORK/idp"
export SOCLE__AUTH__ISSUER=http://127.0.0.1:18190 SOCLE__AUTH__JWKS_URL=http://127.0.0.1:18190/jwks.json
export SOCLE__API__LISTEN=127.0.0.1:18180
"$SOCLE" dev idp >"$WORK/idp.log" 2>&1 & IDP=$!
"$SOCLE" serve >"$WORK/api.log" 2>&1 & API=$!
trap 'kill $API $IDP 2>/dev/null || true; wait $API $IDP 2>/dev/null || true; rm -rf "$WORK"' EXIT
deploy/local/wait-http.sh "http://$SOCLE__API__LISTEN/health" 60 "$WORK/api.log"
USER_ID="schemathesis.$$"
"$SOCLE" admin grant --user "$USER_ID" --org 90000100900019 --ecosystem france-travail \
  --actions person.read,person.search,caseload.list,person.lookup_nir --purpose accompagnement \
  --until "$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)" --by schemathesis
TOKEN=$("$SOCLE" dev token --user "$USER_ID" --org 90000100900019 --ecosystem france-travail --mfa)
"$VENV/bin/schemathesis" run "http://$SOCLE__API__LISTEN/openapi.json" \
  -H "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  -n "$EXAMPLES"
