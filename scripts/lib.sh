# Sourced by the project's scripts (after they set ROOT): the version, the image names, the
# podman settings, and package installs as root or through sudo.
PM_VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"
PM_STEP_IMAGES=(ingest features train evaluate deploy registry monitor)
PM_IMAGES=("${PM_STEP_IMAGES[@]}" pipeline serve)
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/deploy/podman/containers.conf}"

as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }
apt_install() { as_root apt-get install -y -q --no-install-recommends "$@" >&2; }
# `apt-get update`, at most once per script (a fresh machine's package lists may be missing or
# stale, and then an install fails).
apt_update_once() {
  [[ -n "${PM_APT_UPDATED:-}" ]] && return 0
  as_root apt-get update -q >&2 && PM_APT_UPDATED=1
}

# Runs `$1` when the script ends, also when it is interrupted or terminated (bash runs an EXIT trap
# on a signal only if the signal is trapped): a CI timeout or Ctrl-C must not leave servers or
# containers running.
on_exit() {
  trap "$1" EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
