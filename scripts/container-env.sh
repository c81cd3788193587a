# shellcheck shell=bash
# Sourced by scripts/container-*.sh: where the container test keeps its state, and the podman
# settings it runs with (never /etc/containers: those belong to the machine).

# Kept between runs on one machine, outside the work tree (a fresh clone reuses it): vendored
# crates keyed by Cargo.lock, podman-compose's virtualenv, scratch space for base images. The
# images themselves and buildah's build cache live in podman's own storage.
CACHE=${CONTAINER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/trueconf2mqtt/container}
mkdir -p "$CACHE"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf '\ncontainer: FAILED: %s\n' "$*" >&2; exit 1; }

# runc and cgroupfs work on hosts where podman's defaults (crun, systemd cgroups) do not (hybrid
# cgroups, no CAP_SYS_RESOURCE for the default nofile limit); fixed ulimits for the same reason.
if [ -z "${CONTAINERS_CONF:-}" ]; then
  cat >"$CACHE/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
  export CONTAINERS_CONF="$CACHE/containers.conf"
fi
# HEALTHCHECK and other Docker-only instructions survive only in the docker image format.
export BUILDAH_FORMAT=docker
