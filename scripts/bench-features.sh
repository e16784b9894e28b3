#!/usr/bin/env bash
# `make bench-features`: ingest + features on the full default data set, against the seed's pandas
# computation on the same CSV files. Installs pandas into .cache/bench-venv on first use.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/lib.sh
VENV="${PM_CACHE_DIR:-$ROOT/.cache}/bench-venv"
PANDAS_VERSION="2.2.3"

if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c "import pandas" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "pandas==$PANDAS_VERSION"
fi

# The messy line runs the training pipeline too: the orchestrator and every step.
cargo build --locked -q --bin pm-datagen --bin pm-ingest --bin pm-features --bin pm-train --bin pm-evaluate \
  --bin pm-deploy --bin pm-orchestrator
WORK="$(mktemp -d)"
on_exit 'rm -rf "$WORK"'
./target/debug/pm-datagen --output-uri "$WORK/raw" >/dev/null 2>&1
# Best of 3 for pandas too.
best=""
for _ in 1 2 3; do
  out="$("$VENV/bin/python" scripts/bench/seed_features.py "$WORK/raw" 72)"
  best="$(printf '%s\n%s\n' "$best" "$out" | "$VENV/bin/python" -c '
import json, sys
runs = [json.loads(l) for l in sys.stdin if l.strip()]
print(json.dumps(min(runs, key=lambda r: r["features_s"])))')"
done
echo "$best" > "$WORK/pandas.json"
cargo bench --locked -q --profile dev -p pm-components --bench features -- --bin-dir "$ROOT/target/debug" --pandas-json "$WORK/pandas.json"
