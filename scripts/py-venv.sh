#!/usr/bin/env bash
# Installs the pinned Python tools the tests call into a venv under .cache/ and prints its python:
# the Kubeflow Pipelines SDK (loads the emitted specs), openapi-spec-validator (checks pm-serve's
# OpenAPI 3.1 document against the specification's schema), and two standard inference clients
# that talk to pm-serve as a user's code would: Triton's tritonclient[http] (Open Inference
# Protocol) and KServe's own SDK (its REST client, V1 and V2 protocols).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PM_CACHE_DIR:-$ROOT/.cache}/py-venv-kfp2.17.3-oasv0.9.0-tc2.73.0-ks0.21.0"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c "import kfp, openapi_spec_validator, tritonclient.http, kserve" 2>/dev/null; then
  python3 -m venv "$VENV.tmp"
  "$VENV.tmp/bin/pip" install -q --disable-pip-version-check "kfp==2.17.3" "kfp-pipeline-spec==2.17.3" \
    "protobuf==6.33.6" "openapi-spec-validator==0.9.0" "tritonclient[http]==2.73.0" \
    "kserve==0.21.0" >&2
  rm -rf "$VENV"; mv "$VENV.tmp" "$VENV"; python3 -m venv --upgrade "$VENV" >/dev/null
fi
echo "$VENV/bin/python"
