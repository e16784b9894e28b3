#!/usr/bin/env bash
# Installs the pinned Python tools the tests call into venvs under .cache/ and prints the path
# of what to run.
#
#   scripts/py-venv.sh               # the python of the main tools venv:
#     the Kubeflow Pipelines SDK (loads the emitted specs), openapi-spec-validator (checks
#     pm-serve's OpenAPI 3.1 document against the specification's schema), and two standard
#     inference clients that talk to pm-serve as a user's code would: Triton's tritonclient[http]
#     (Open Inference Protocol) and KServe's own SDK (its REST client, V1 and V2 protocols)
#   scripts/py-venv.sh schemathesis  # the python of schemathesis's venv (its dependencies are
#     pinned apart from the SDKs'): `python -m schemathesis.cli` fuzzes pm-serve against its
#     OpenAPI document. Entry-point scripts are not used: they name the venv's build folder.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${PM_CACHE_DIR:-$ROOT/.cache}"

# venv DIR IMPORT_CHECK PACKAGE...: creates DIR with the packages unless it already imports them.
venv() {
  local dir="$1" check="$2"
  shift 2
  if [[ ! -x "$dir/bin/python" ]] || ! "$dir/bin/python" -c "$check" 2>/dev/null; then
    rm -rf "$dir.tmp"
    python3 -m venv "$dir.tmp"
    "$dir.tmp/bin/pip" install -q --disable-pip-version-check "$@" >&2
    rm -rf "$dir"; mv "$dir.tmp" "$dir"; python3 -m venv --upgrade "$dir" >/dev/null
  fi
}

case "${1:-tools}" in
  tools)
    VENV="$CACHE/py-venv-kfp2.17.3-oasv0.9.0-tc2.73.0-ks0.21.0"
    venv "$VENV" "import kfp, openapi_spec_validator, tritonclient.http, kserve" \
      "kfp==2.17.3" "kfp-pipeline-spec==2.17.3" "protobuf==6.33.6" "openapi-spec-validator==0.9.0" \
      "tritonclient[http]==2.73.0" "kserve==0.21.0"
    echo "$VENV/bin/python"
    ;;
  schemathesis)
    VENV="$CACHE/py-venv-schemathesis4.32.5"
    venv "$VENV" "import schemathesis" "schemathesis==4.32.5"
    echo "$VENV/bin/python"
    ;;
  *) echo "usage: $0 [tools|schemathesis]" >&2; exit 2 ;;
esac
