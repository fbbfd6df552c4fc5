#!/usr/bin/env bash
# Creates (or updates) the Python virtual environment the interop tests run in:
# .local/venv (or $SOCLE_DATA/venv), from tests/interop/requirements.txt. Nothing global is
# installed. Idempotent: pip is not run again while requirements.txt is unchanged.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${SOCLE_VENV:-${SOCLE_DATA:-$root/.local}/venv}"
requirements="$root/tests/interop/requirements.txt"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
  echo "interop: creating $venv"
  "$python" -m venv "$venv"
fi
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
  echo "interop: installing $requirements"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" >"$stamp"
fi
# Fails here, with the import error, if an extra the Avro serializer needs is missing.
"$venv/bin/python" -c "import confluent_kafka, confluent_kafka.schema_registry.avro, pytest; print('interop: confluent-kafka', confluent_kafka.version()[0], 'librdkafka', confluent_kafka.libversion()[0])"
