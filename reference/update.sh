#!/usr/bin/env bash
# Refreshes the runtime referential (this folder) from a folder of the upstream files.
#
#   reference/update.sh SOURCE_DIR [--check]
#
# SOURCE_DIR has the upstream layout, the one this folder mirrors (for example a checkout of the
# workplace's shared/data, or a folder assembled by hand from each upstream: see README.md,
# "Updating"): insee-cog/, rome-v460/, data-inclusion-schema/, france-travail-pass-emploi/,
# data-inclusion-api/. Only the files listed in SHA256SUMS are copied: those socle reads at run
# time and their licence files. Nothing else is taken from SOURCE_DIR.
#
# Prints one line per file (unchanged / CHANGED with the old and new size and line count /
# MISSING in the source), rewrites SHA256SUMS and exits 0. With --check nothing is written and
# the exit status is 1 when a file differs or is missing (0 when all are identical).
# A file missing from SOURCE_DIR is never deleted here: remove it by hand, with the code that
# reads it.
#
# After an update: read the upstream changelog, then run `cargo test -p socle-domain` (the
# loaders are strict: a renamed column or a repeated code fails there with the file's name)
# and update the version and date columns of README.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[ $# -ge 1 ] || { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
src="$(cd "$1" && pwd)"
check=0
[ "${2:-}" = "--check" ] && check=1

lines() { wc -l <"$1" | tr -d ' '; }
size() { wc -c <"$1" | tr -d ' '; }

changed=0
missing=0
same=0
sums="$(mktemp)"
trap 'rm -f "$sums"' EXIT
while read -r _ rel; do
  [ -n "$rel" ] || continue
  dst="$here/$rel"
  new="$src/$rel"
  if [ ! -f "$new" ]; then
    echo "MISSING    $rel (not in $src; kept as is)"
    missing=$((missing + 1))
    (cd "$here" && sha256sum "$rel") >>"$sums"
    continue
  fi
  if [ -f "$dst" ] && cmp -s "$new" "$dst"; then
    echo "unchanged  $rel"
    same=$((same + 1))
  else
    if [ -f "$dst" ]; then
      echo "CHANGED    $rel: $(size "$dst") -> $(size "$new") bytes, $(lines "$dst") -> $(lines "$new") lines"
    else
      echo "CHANGED    $rel: new file, $(size "$new") bytes"
    fi
    changed=$((changed + 1))
    if [ "$check" = 0 ]; then
      mkdir -p "$(dirname "$dst")"
      cp "$new" "$dst"
      chmod 0644 "$dst"
    fi
  fi
  if [ "$check" = 0 ]; then
    (cd "$here" && sha256sum "$rel") >>"$sums"
  fi
done <"$here/SHA256SUMS"

if [ "$check" = 0 ]; then
  cp "$sums" "$here/SHA256SUMS"
fi
echo "$changed changed, $same unchanged, $missing missing in the source"
if [ "$check" = 1 ] && [ $((changed + missing)) -gt 0 ]; then
  exit 1
fi
if [ "$check" = 0 ] && [ "$changed" -gt 0 ]; then
  echo "next: cargo test -p socle-domain, then the version/date columns of reference/README.md"
fi
