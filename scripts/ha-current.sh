#!/usr/bin/env bash
# A current Home Assistant for the tests, on a host whose own Python is too old for it.
#
# Home Assistant 2026.3 and later need Python >= 3.14, which Debian 12 does not have. This script
# makes a minimal Debian testing root with debootstrap (from the Debian mirror the host's apt
# uses), creates a virtualenv with that root's python3 and installs a pinned Home Assistant in it,
# with the requirements of the integrations a headless core loads (so `hass --skip-pip` starts).
# `hass` then runs inside that root, in a mount namespace of its own: whatever it mounts there
# (/proc, /sys, /dev, its config directory) disappears with its last process, on the host nothing.
#
# Usage:
#   scripts/ha-current.sh setup      install or check (idempotent; ~4-5 min and ~2 GB the first
#                                    time, about a second when present). Exit status 0: ready;
#                                    3: not possible here (no debootstrap, mirror or PyPI), with the
#                                    reason written where `status` finds it; 1: anything else.
#   scripts/ha-current.sh status     prints `ready ROOT`, `unavailable REASON` or `missing ROOT`
#   scripts/ha-current.sh hass [--into PORT]... [--out PORT]... CONFIG_DIR [HASS_ARGS...]
#                                    runs Home Assistant with the host directory CONFIG_DIR as its
#                                    configuration (seen inside the root as /srv/ha-config), in a
#                                    network namespace of its own: --into PORT makes its
#                                    127.0.0.1:PORT (HTTP) reachable on the host's 127.0.0.1:PORT,
#                                    --out PORT the host's 127.0.0.1:PORT (the broker) reachable
#                                    from it (scripts/ha-netns-forward.py). It execs, so the
#                                    caller's pid is Home Assistant's and SIGTERM stops it.
# Env:
#   TRUECONF2MQTT_HA_ROOT   where the root lives (default: a per-user cache directory, so every
#                           clone on the machine shares one copy)
#   MIRROR                  Debian mirror (default: the one in the host's apt configuration)
# Needs root (debootstrap, chroot, mount); uses sudo when not root and sudo works unprompted.
set -euo pipefail

# The pinned versions: Home Assistant 2026.11.0 needs Python >= 3.14.2, which Debian testing
# ("forky") has.
HA_VERSION=2026.11.0
SUITE=forky
# Inside the root.
HA_VENV=/opt/ha
CONFIG_MOUNT=/srv/ha-config

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/trueconf2mqtt"
ROOT="${TRUECONF2MQTT_HA_ROOT:-$cache/ha-$HA_VERSION}"
ROOT="${ROOT%/}"
# Written by `setup` when this machine cannot make the root; read by `status` (and so the tests).
UNAVAILABLE="$ROOT.unavailable"
# Written last by a setup that finished; names what was installed.
STAMP="$ROOT/.trueconf2mqtt-ha-$HA_VERSION"

t0=$(date +%s)
log() { echo "ha-current [+$(($(date +%s) - t0))s]: $*" >&2; }
die() {
    echo "ha-current: ERROR: $*" >&2
    exit 1
}
# Setup is not possible on this machine: say so, loudly, and leave the reason for the tests.
unavailable() {
    mkdir -p "$(dirname "$UNAVAILABLE")"
    printf '%s\n' "$*" >"$UNAVAILABLE"
    echo "ha-current: UNAVAILABLE: $*" >&2
    echo "ha-current: the tests against Home Assistant $HA_VERSION will be SKIPPED on this machine" >&2
    exit 3
}

as_root() {  # re-exec this script as root when needed
    [ "$(id -u)" = 0 ] && return 0
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        exec sudo -n --preserve-env=TRUECONF2MQTT_HA_ROOT,MIRROR HOME="$HOME" "$0" "$@"
    fi
    return 1
}

in_root() {  # in_root CMD... : run in the root with a clean environment (no host PIP_* etc.)
    chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TZ=UTC DEBIAN_FRONTEND=noninteractive "$@"
}

# Mounts what programs in the root need. Only ever called inside a private mount namespace
# (`unshare --mount --propagation private`), so these mounts never reach the host's mount table;
# the EXIT trap in `setup_inner` undoes them anyway as soon as setup ends.
mount_root() {
    mount -t proc proc "$ROOT/proc"
    mount -t sysfs sys "$ROOT/sys"
    mount --rbind /dev "$ROOT/dev"
    mount --make-rslave "$ROOT/dev"
}
umount_root() {
    local m
    for m in dev sys proc; do
        if mountpoint -q "$ROOT/$m"; then
            umount -R "$ROOT/$m" 2>/dev/null || umount -lR "$ROOT/$m" 2>/dev/null || true
        fi
    done
}

ready() {  # the root is complete and Home Assistant imports
    [ -f "$STAMP" ] && [ -x "$ROOT$HA_VENV/bin/python" ] && [ -x "$ROOT$HA_VENV/bin/hass" ]
}

cmd_status() {
    if ready; then
        echo "ready $ROOT"
    elif [ -f "$UNAVAILABLE" ]; then
        echo "unavailable $(head -n 1 "$UNAVAILABLE")"
    else
        echo "missing $ROOT"
    fi
}

debian_mirror() {
    local m
    m=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null |
        awk '$2 !~ /-(security|updates|backports|proposed-updates)$/ {print $1; exit}') || true
    if [ -z "$m" ]; then  # deb822 .sources, then one-line sources.list
        m=$({ grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
              grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
                  sed -E 's/\[[^]]*\]//' | awk '{print $2}'; } | grep -v -- '-security' | head -n 1) || true
    fi
    echo "${m%/}"
}

cmd_setup() {
    if ready; then
        rm -f "$UNAVAILABLE"
        echo "ha-current: Home Assistant $HA_VERSION already present in $ROOT" >&2
        return 0
    fi
    as_root setup || unavailable "making the Home Assistant root needs root (or sudo without a password)"
    mkdir -p "$(dirname "$ROOT")"
    # One setup at a time per root (two clones' CI may start together).
    exec 9>"$ROOT.lock"
    flock 9
    if ready; then
        rm -f "$UNAVAILABLE"
        echo "ha-current: Home Assistant $HA_VERSION already present in $ROOT" >&2
        return 0
    fi

    # Host tools: debootstrap makes the root; curl checks the mirror; ip sets up the namespace
    # Home Assistant runs in.
    local need=()
    command -v debootstrap >/dev/null || need+=(debootstrap)
    command -v curl >/dev/null || need+=(curl)
    command -v ip >/dev/null || need+=(iproute2)
    if [ ${#need[@]} -gt 0 ]; then
        log "apt-get install ${need[*]}"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } \
            >/dev/null 2>&1 || unavailable "${need[*]} not installed, and apt-get cannot install them"
    fi
    MIRROR="${MIRROR:-$(debian_mirror)}"
    [ -n "$MIRROR" ] || unavailable "no Debian mirror in the host's apt configuration"
    curl -fsSI --max-time 30 "$MIRROR/dists/$SUITE/InRelease" >/dev/null ||
        unavailable "the Debian mirror $MIRROR does not serve dists/$SUITE (or cannot be reached)"
    log "mirror $MIRROR, suite $SUITE, root $ROOT"
    rm -f "$UNAVAILABLE"
    # The mounts live in a mount namespace of setup's own: nothing is left mounted on the host,
    # however setup ends.
    unshare --mount --propagation private -- "$0" _setup_inner "$MIRROR"
    rm -f "$UNAVAILABLE"
}

setup_inner() {
    local mirror=$1
    if [ ! -x "$ROOT/usr/bin/python3" ]; then
        local script=/usr/share/debootstrap/scripts/$SUITE
        # An older debootstrap may not know the suite; testing is made like sid.
        [ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid
        log "debootstrap $SUITE (minbase) into $ROOT (a few minutes)"
        rm -rf "$ROOT"
        mkdir -p "$ROOT"
        # g++ and python3-dev: some Home Assistant requirements have no wheel for a new Python.
        # libturbojpeg0: the camera integration, which the MQTT integration imports.
        if ! debootstrap --variant=minbase \
            --include=python3,python3-venv,python3-dev,g++,ca-certificates,libturbojpeg0 \
            "$SUITE" "$ROOT" "$mirror" "$script" >"$ROOT.debootstrap.log" 2>&1; then
            tail -n 20 "$ROOT.debootstrap.log" >&2
            rm -rf "$ROOT"
            unavailable "debootstrap of $SUITE from $mirror failed (log: $ROOT.debootstrap.log)"
        fi
    fi
    # Testing's Release file has a Valid-Until that a mirror snapshot may be past.
    echo 'Acquire::Check-Valid-Until "false";' >"$ROOT/etc/apt/apt.conf.d/99no-check-valid-until"
    # The host's name resolution, and its local CAs (the host may reach PyPI through a TLS proxy).
    cp /etc/resolv.conf /etc/hosts "$ROOT/etc/"
    if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
        cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
        in_root update-ca-certificates >/dev/null 2>&1 || true
    fi
    mkdir -p "$ROOT$CONFIG_MOUNT"

    trap umount_root EXIT
    mount_root
    log "python in the root: $(in_root python3 --version)"
    local pip=("$HA_VENV/bin/pip" --no-cache-dir --disable-pip-version-check --no-input)
    if [ ! -f "$ROOT$HA_VENV/pyvenv.cfg" ]; then
        in_root python3 -m venv "$HA_VENV"
        in_root "${pip[@]}" install -q --upgrade pip wheel ||
            unavailable "pip in the root cannot reach the package index"
    fi
    if ! in_root "$HA_VENV/bin/python" -c \
        "import sys, homeassistant.const as c; sys.exit(c.__version__ != '$HA_VERSION')" 2>/dev/null; then
        log "pip install homeassistant==$HA_VERSION"
        in_root "${pip[@]}" install -q "homeassistant==$HA_VERSION" ||
            die "pip install homeassistant==$HA_VERSION failed in the root"
    fi
    # What the integrations a headless core loads require, read from Home Assistant's own
    # manifests and pinned by its own package_constraints.txt, as it would install them itself.
    cp "$here/ha-current-requirements.py" "$ROOT/opt/ha-requirements.py"
    in_root "$HA_VENV/bin/python" /opt/ha-requirements.py >"$ROOT$HA_VENV.requirements.txt"
    local constraints
    constraints=$(in_root "$HA_VENV/bin/python" -c \
        'import homeassistant, os; print(os.path.join(os.path.dirname(homeassistant.__file__), "package_constraints.txt"))')
    log "pip install $(wc -l <"$ROOT$HA_VENV.requirements.txt") integration requirements"
    in_root "${pip[@]}" install -q -r "$HA_VENV.requirements.txt" -c "$constraints" ||
        die "pip install of the integrations' requirements failed in the root"
    # Every module of the MQTT integration imports (a missing requirement shows here, not in a test).
    in_root "$HA_VENV/bin/python" - <<'PY' || die "Home Assistant's MQTT integration does not import in the root"
import importlib, pkgutil
import homeassistant.const as c
import homeassistant.components.mqtt as mqtt
for module in pkgutil.iter_modules(mqtt.__path__):
    importlib.import_module("homeassistant.components.mqtt." + module.name)
print("ha-current: homeassistant", c.__version__, "and every MQTT module import")
PY
    in_root apt-get clean
    date -u +%FT%TZ >"$STAMP"
    log "ready: $(du -shx "$ROOT" | cut -f1) in $ROOT"
}

cmd_hass() {
    local fwd=()
    while [ $# -gt 0 ]; do
        case "$1" in
        --into | --out) [ $# -ge 2 ] || die "$1 needs a port"; fwd+=("$1" "$2"); shift 2 ;;
        *) break ;;
        esac
    done
    [ $# -ge 1 ] || die "usage: $0 hass [--into PORT]... [--out PORT]... CONFIG_DIR [HASS_ARGS...]"
    ready || die "Home Assistant $HA_VERSION is not installed in $ROOT: run scripts/ha-current.sh setup"
    command -v python3 >/dev/null || die "python3 is needed on the host (the namespace's port forwarder)"
    command -v ip >/dev/null || die "ip is needed on the host (apt-get install iproute2)"
    local config
    config=$(cd "$1" && pwd) || die "no config directory $1"
    shift
    as_root hass "${fwd[@]}" "$config" "$@" ||
        die "running Home Assistant in its root needs root (or sudo without a password)"
    # Each hass gets a mount and a network namespace of its own: several can run at once, each
    # with its own config at the same place; their mounts vanish with them, and what they bind
    # stays in their namespace. Descriptor 8 keeps the host's network namespace for the forwarder.
    exec 8</proc/self/ns/net
    exec unshare --net --mount --propagation private -- "$0" _hass_inner "$config" "${fwd[@]}" -- "$@"
}

hass_inner() {
    local config=$1
    shift
    local fwd=()
    while [ "$1" != -- ]; do fwd+=("$1"); shift; done
    shift
    mount_root
    mount --bind "$config" "$ROOT$CONFIG_MOUNT"
    # Only a loopback here; a multicast route on it lets Home Assistant's mDNS socket start.
    ip link set lo up multicast on
    ip route add 224.0.0.0/4 dev lo
    # The forwarder's parent is this process, which becomes Home Assistant below: it ends with it.
    exec 7< <(exec python3 "$here/ha-netns-forward.py" --host-netns-fd 8 "${fwd[@]}")
    local line=""
    read -r -t 10 line <&7 || true
    [ "$line" = ready ] || die "the network namespace's port forwarder did not start"
    exec 7<&- 8<&-
    exec chroot "$ROOT" /usr/bin/env -i PATH="$HA_VENV/bin:/usr/local/bin:/usr/bin:/bin" \
        HOME=/root LANG=C.UTF-8 TZ=UTC \
        "$HA_VENV/bin/hass" --config "$CONFIG_MOUNT" --skip-pip "$@"
}

case "${1:-setup}" in
setup) cmd_setup ;;
status) cmd_status ;;
hass) shift; cmd_hass "$@" ;;
_setup_inner) setup_inner "$2" ;;
_hass_inner) shift; hass_inner "$@" ;;
version) echo "$HA_VERSION" ;;
*) die "unknown command '$1' (setup, status, hass, version)" ;;
esac
