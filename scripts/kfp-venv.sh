#!/usr/bin/env bash
# Installs the pinned Kubeflow Pipelines SDK into .cache/kfp-venv (used by the tests that load the
# emitted specs) and prints its python.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PM_CACHE_DIR:-$ROOT/.cache}/kfp-venv-2.17.3"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c "import kfp" 2>/dev/null; then
  python3 -m venv "$VENV.tmp"
  "$VENV.tmp/bin/pip" install -q --disable-pip-version-check "kfp==2.17.3" "kfp-pipeline-spec==2.17.3" "protobuf==6.33.6" >&2
  rm -rf "$VENV"; mv "$VENV.tmp" "$VENV"; python3 -m venv --upgrade "$VENV" >/dev/null
fi
echo "$VENV/bin/python"
