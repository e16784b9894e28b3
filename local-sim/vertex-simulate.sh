#!/usr/bin/env bash
# `make vertex-simulate`: runs the training pipeline locally on the embedded default data set.
# Usage: local-sim/vertex-simulate.sh BUCKET_DIR
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUCKET="${1:-$ROOT/local-bucket}"
BIN="$ROOT/target/debug"
RUN="run-$(date -u +%Y%m%dT%H%M%SZ)"
R="$BUCKET/runs/$RUN"

if [[ ! -f "$BUCKET/raw/PdM_telemetry.csv" ]]; then
  "$BIN/pm-datagen" --output-uri "$BUCKET/raw"
fi
"$BIN/pm-ingest" --input-uri "$BUCKET/raw" --output-uri "$R/ingest/dataset"
"$BIN/pm-features" --input-uri "$R/ingest/dataset" --output-uri "$R/features/features"
"$BIN/pm-train" --features-uri "$R/features/features" --output-uri "$R/train/model"
"$BIN/pm-evaluate" --model-uri "$R/train/model" --features-uri "$R/features/features" \
  --output-uri "$R/evaluate/evaluation" --registry-uri "$BUCKET/registry"
"$BIN/pm-deploy" --model-uri "$R/train/model" --evaluation-uri "$R/evaluate/evaluation" --registry-uri "$BUCKET/registry"
echo "run $RUN: artifacts under $R; report: $R/evaluate/evaluation/report.html"
