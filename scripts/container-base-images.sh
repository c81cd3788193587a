#!/usr/bin/env bash
# Makes, locally and without any container registry, the three base images the Dockerfile and
# docker-compose.yml name, so that `podman build --pull=never` and podman-compose never pull:
#
#   docker.io/library/debian:bookworm-slim    debootstrap (minbase) from the machine's Debian mirror
#   docker.io/library/rust:1-slim-bookworm    that + gcc, libc6-dev and the machine's Rust toolchain,
#                                             laid out as the official image (RUSTUP_HOME, CARGO_HOME)
#   docker.io/library/eclipse-mosquitto:2     that + Debian's mosquitto, with the official image's
#                                             /mosquitto/{config,data,log} layout
#
#   scripts/container-base-images.sh          (root; podman, buildah, debootstrap installed)
#
# Each image carries a label with a hash of its recipe (the shell function that makes it and its
# inputs: the mirror, the base image's id, `rustc -vV`); an image whose label matches is kept, so
# a second run costs seconds and a changed recipe (or a new base) rebuilds what depends on it.
# scripts/container-test.sh runs this; it can also be run alone before a `podman build`.
#
# Environment: DEBIAN_MIRROR (default: the machine's bookworm mirror, else deb.debian.org),
# CONTAINER_CACHE (scratch space; default ~/.cache/trueconf2mqtt/container).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/container-env.sh
. scripts/container-env.sh

SUITE=bookworm
LABEL=org.trueconf2mqtt.recipe
DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
RUST_IMAGE=docker.io/library/rust:1-slim-bookworm
MOSQUITTO_IMAGE=docker.io/library/eclipse-mosquitto:2

# The first repository URI apt uses for `$1` (a suite), or `$2`.
apt_uri() {
  # shellcheck disable=SC2016 # apt's own $(…) placeholders
  apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 2>/dev/null |
    awk -v s="$1" '$1 == s { print $2; exit }' | grep . || echo "$2"
}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-$(apt_uri "$SUITE" http://deb.debian.org/debian/)}
SECURITY_MIRROR=${SECURITY_MIRROR:-$(apt_uri "$SUITE-security" http://deb.debian.org/debian-security/)}

# The recipe label an image carries, or nothing.
image_label() {
  podman image inspect --format "{{index .Config.Labels \"$LABEL\"}}" "$1" 2>/dev/null || true
}
image_id() { podman image inspect --format '{{.Id}}' "$1"; }

# `ensure IMAGE KEY-INPUTS FUNCTION`: runs FUNCTION (which must leave IMAGE labelled with the key)
# unless IMAGE already carries the key made of the function's text and the inputs.
ensure() {
  local image=$1 inputs=$2 fn=$3 key
  key=$( { declare -f "$fn"; printf '%s\n' "$inputs"; } | sha256sum | cut -c1-32)
  if [ "$(image_label "$image")" = "$key" ]; then
    log "$image: up to date (recipe $key)"
    return
  fi
  log "$image: making it (recipe $key)"
  local started=$SECONDS
  "$fn" "$image" "$key"
  [ "$(image_label "$image")" = "$key" ] || die "$image: $fn did not produce the labelled image"
  log "$image: made in $((SECONDS - started)) s"
}

make_debian() {
  local image=$1 key=$2 rootfs="$CACHE/rootfs-debian"
  command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
  rm -rf "$rootfs"
  mkdir -p "$CACHE"
  if ! debootstrap --variant=minbase "$SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$CACHE/debootstrap.log" 2>&1; then
    tail -n 20 "$CACHE/debootstrap.log" >&2
    rm -rf "$rootfs"
    die "debootstrap of Debian $SUITE from $DEBIAN_MIRROR failed (log above; mirror unreachable?).
The container test needs a Debian mirror: set DEBIAN_MIRROR, or CONTAINER_TEST=skip to skip it."
  fi
  # apt inside the image uses the same mirrors as this machine, and its proxy and date settings.
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  apt-config dump | grep -E '^Acquire::(https?::Proxy|Check-Valid-Until|Check-Date)' \
    >"$rootfs/etc/apt/apt.conf.d/90host" || true
  # Like the official slim image: no package lists or caches in the image.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log "$rootfs"/tmp/*
  podman rmi --force "$image" >/dev/null 2>&1 || true
  tar --numeric-owner -C "$rootfs" -c . |
    podman import --quiet \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' \
      --change "LABEL $LABEL=$key" \
      - "$image" >/dev/null
  rm -rf "$rootfs"
}

make_rust() {
  local image=$1 key=$2 sysroot toolchain ctr
  sysroot=$(rustc --print sysroot)
  toolchain=$(basename "$sysroot")
  ctr=$(buildah from --pull=never "$DEBIAN_IMAGE")
  # shellcheck disable=SC2064
  trap "buildah rm $ctr >/dev/null 2>&1 || true; trap - RETURN" RETURN
  buildah run --network=host "$ctr" -- sh -ec 'apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      gcc libc6-dev ca-certificates >/dev/null
    rm -rf /var/lib/apt/lists/*'
  # The machine's toolchain (Debian's rustc is older than the crate's rust-version), without
  # its HTML documentation; cargo and rustc on PATH as in the official image.
  local root
  root=$(buildah mount "$ctr")
  mkdir -p "$root/usr/local/rustup/toolchains/$toolchain" "$root/usr/local/cargo/bin"
  tar -C "$sysroot" --exclude=./share/doc -c . | tar -x -C "$root/usr/local/rustup/toolchains/$toolchain"
  buildah umount "$ctr" >/dev/null
  buildah run --network=host "$ctr" -- sh -ec "for bin in /usr/local/rustup/toolchains/$toolchain/bin/*; do
      ln -s \"\$bin\" /usr/local/cargo/bin/; done
    chmod -R a+rwX /usr/local/cargo"
  buildah config \
    --env RUSTUP_HOME=/usr/local/rustup --env CARGO_HOME=/usr/local/cargo \
    --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env "RUST_VERSION=$(rustc --version | cut -d' ' -f2)" \
    --label "$LABEL=$key" "$ctr"
  buildah run --network=host "$ctr" -- cargo --version >/dev/null
  buildah commit --quiet --rm --format docker "$ctr" "$image" >/dev/null
}

make_mosquitto() {
  local image=$1 key=$2 ctr
  ctr=$(buildah from --pull=never "$DEBIAN_IMAGE")
  # shellcheck disable=SC2064
  trap "buildah rm $ctr >/dev/null 2>&1 || true; trap - RETURN" RETURN
  buildah run --network=host "$ctr" -- sh -ec 'apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mosquitto >/dev/null
    rm -rf /var/lib/apt/lists/*
    mkdir -p /mosquitto/config /mosquitto/data /mosquitto/log
    printf "listener 1883\nallow_anonymous true\n" >/mosquitto/config/mosquitto.conf
    chown -R mosquitto:mosquitto /mosquitto/data /mosquitto/log'
  # Started as root, mosquitto drops to its `mosquitto` user. stdbuf: line-buffered log, or it
  # only shows up when the broker stops. No VOLUME: compose names the data volume, and anonymous
  # ones would outlive `down -v` under podman-compose.
  buildah config \
    --cmd '["stdbuf", "-oL", "/usr/sbin/mosquitto", "-c", "/mosquitto/config/mosquitto.conf"]' \
    --port 1883 \
    --label "$LABEL=$key" "$ctr"
  buildah commit --quiet --rm --format docker "$ctr" "$image" >/dev/null
}

main() {
  [ "$(id -u)" -eq 0 ] || die "run as root (rootful podman)"
  mkdir -p "$CACHE"
  ensure "$DEBIAN_IMAGE" "$SUITE $DEBIAN_MIRROR $SECURITY_MIRROR" make_debian
  ensure "$RUST_IMAGE" "$(image_id "$DEBIAN_IMAGE") $(rustc -vV | tr '\n' ' ')" make_rust
  ensure "$MOSQUITTO_IMAGE" "$(image_id "$DEBIAN_IMAGE")" make_mosquitto
}

main "$@"
