#!/usr/bin/env bash
# `make vertex-simulate`: runs the training pipeline locally on the embedded default data set.
# Usage: local-sim/vertex-simulate.sh BUCKET_DIR
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUCKET="${1:-$ROOT/local-bucket}"
BIN="$ROOT/target/debug"
RUN="run-$(date -u +%Y%m%dT%H%M%SZ)"

if [[ ! -f "$BUCKET/raw/PdM_telemetry.csv" ]]; then
  "$BIN/pm-datagen" --output-uri "$BUCKET/raw"
fi
"$BIN/pm-ingest" --input-uri "$BUCKET/raw" --output-uri "$BUCKET/runs/$RUN/ingest/dataset" \
  --report-path "$BUCKET/runs/$RUN/ingest/validation_report.json"
"$BIN/pm-features" --input-uri "$BUCKET/runs/$RUN/ingest/dataset" --output-uri "$BUCKET/runs/$RUN/features/features"
echo "run $RUN: artifacts under $BUCKET/runs/$RUN"
