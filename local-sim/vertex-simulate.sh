#!/usr/bin/env bash
# `make vertex-simulate`: the training pipeline, run locally the way Vertex AI would run it —
# every step a separate process of its component binary, artifacts passed through a bucket
# (./local-bucket by default), the compiled Kubeflow/Vertex specs written next to the run.
# Usage: local-sim/vertex-simulate.sh [BUCKET_DIR] [extra pm-orchestrator run flags...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUCKET="${1:-$ROOT/local-bucket}"
shift || true
BIN="$ROOT/target/debug"
mkdir -p "$BUCKET"
BUCKET="$(cd "$BUCKET" && pwd)"

if [[ ! -f "$BUCKET/raw/PdM_telemetry.csv" ]]; then
  "$BIN/pm-datagen" --output-uri "$BUCKET/raw"
fi
exec "$BIN/pm-orchestrator" run "$ROOT/pipelines/training.yaml" \
  --root "$BUCKET" --bin-dir "$BIN" --emit-specs \
  --param "data_uri=$BUCKET/raw" --param "registry_uri=$BUCKET/registry" "$@"
