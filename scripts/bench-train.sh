#!/usr/bin/env bash
# `make bench-train`: our learners vs scikit-learn RandomForest and LightGBM (installed into
# .cache/bench-venv on first use) on the full default data, same features and split.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${PM_CACHE_DIR:-$ROOT/.cache}/bench-venv"
PINS=("pandas==2.2.3" "pyarrow==18.1.0" "scikit-learn==1.5.2" "lightgbm==4.5.0")
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c "import lightgbm, sklearn, pyarrow" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PINS[@]}"
fi
cargo build --locked -q --bin pm-datagen --bin pm-ingest --bin pm-features
cargo bench --locked -q --profile dev -p pm-components --bench train -- \
  --bin-dir "$ROOT/target/debug" --python "$VENV/bin/python" --peers "$ROOT/scripts/bench/train_peers.py"
