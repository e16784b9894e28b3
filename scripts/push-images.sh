#!/usr/bin/env bash
# `make push-images REGISTRY=europe-west4-docker.pkg.dev/PROJECT/REPO`: pushes the images of
# `make images` to a registry, as REGISTRY/pm/<image>:<version> — the names
# `pm-orchestrator compile|submit --image-registry REGISTRY` writes into the specs. Log in first
# (`podman login`, or `gcloud auth print-access-token | podman login -u oauth2accesstoken
# --password-stdin europe-west4-docker.pkg.dev`). PM_REGISTRY_TLS_VERIFY=false pushes to a
# plain-HTTP registry (a local one; `make test-containers` pushes to one and pulls back).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
REGISTRY="${1:?usage: push-images.sh REGISTRY}"
REGISTRY="${REGISTRY%/}"
. scripts/lib.sh
for img in "${PM_IMAGES[@]}"; do
  src="localhost/pm/pm-$img:$PM_VERSION"
  podman image exists "$src" || { echo "push-images: $src is missing: run make images" >&2; exit 1; }
  podman push --tls-verify="${PM_REGISTRY_TLS_VERIFY:-true}" "$src" "docker://$REGISTRY/pm/pm-$img:$PM_VERSION"
  echo "pushed $REGISTRY/pm/pm-$img:$PM_VERSION"
done
