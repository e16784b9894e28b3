# Sourced by the project's scripts (after they set ROOT): the version, the image names, the
# podman settings, and package installs as root or through sudo.
PM_VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"
PM_STEP_IMAGES=(ingest features train evaluate deploy registry monitor)
PM_IMAGES=("${PM_STEP_IMAGES[@]}" pipeline serve)
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/deploy/podman/containers.conf}"

as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }
apt_install() { as_root apt-get install -y -q --no-install-recommends "$@" >&2; }
