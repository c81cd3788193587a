#!/usr/bin/env bash
# Create (idempotently) a Python 3.11 venv with Home Assistant 2024.3.3 installed,
# used by tests/ha_discovery.rs to validate our MQTT discovery payloads with
# Home Assistant's own schemas (tests/ha/validate_discovery.py), and by
# tests/ha_acceptance.rs to run a real Home Assistant process (which needs the
# requirements of its default integrations: without the frontend it starts in
# recovery mode and loads no config entry).
#
# Usage: scripts/ha-venv.sh [DIR]        (default DIR: target/ha-venv)
# Env:   HA_VENV_PYTHON  interpreter used to create the venv (default: python3.11)
#        HA_VERSION      Home Assistant version (default: 2024.3.3)
set -euo pipefail

HA_VERSION="${HA_VERSION:-2024.3.3}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-$here/target/ha-venv}"
log="$(mktemp -t ha-venv.XXXXXX.log)"
stamp="$dir/.trueconf2mqtt-ha-$HA_VERSION"

fail() {
    echo "ha-venv: ERROR: $*" >&2
    if [ -s "$log" ]; then
        echo "ha-venv: last lines of the install log ($log):" >&2
        tail -n 30 "$log" | cut -c1-300 >&2
    fi
    exit 1
}

check() {
    "$dir/bin/python" - <<'PY' >>"$log" 2>&1
import homeassistant.const as c
import homeassistant.components.mqtt  # noqa: F401
from homeassistant.components.mqtt import (  # noqa: F401
    binary_sensor, button, event, select, sensor, switch, text,
)
import fnv_hash_fast, hass_frontend, psutil_home_assistant, securetar, sqlalchemy  # noqa: F401,E401
print("homeassistant", c.__version__)
PY
}

if [ -f "$stamp" ] && [ -x "$dir/bin/python" ] && check; then
    echo "ha-venv: homeassistant $HA_VERSION already present in $dir"
    rm -f "$log"
    exit 0
fi

py="${HA_VENV_PYTHON:-}"
if [ -z "$py" ]; then
    for cand in python3.11 python3.12 python3; do
        if command -v "$cand" >/dev/null 2>&1 &&
            "$cand" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 13) else 1)' 2>/dev/null; then
            py="$cand"
            break
        fi
    done
fi
[ -n "$py" ] || fail "need Python 3.11 or 3.12 (Home Assistant $HA_VERSION); install python3.11 (e.g. apt-get install python3.11-venv) or set HA_VENV_PYTHON"

echo "ha-venv: creating $dir with $($py --version 2>&1) and installing homeassistant==$HA_VERSION (takes a few minutes)..."
"$py" -m venv "$dir" >>"$log" 2>&1 || fail "could not create venv in $dir (is the venv module installed? apt-get install python3.11-venv)"
pip=("$dir/bin/python" -m pip --disable-pip-version-check --no-input -q)

"${pip[@]}" install -U pip wheel >>"$log" 2>&1 || fail "could not upgrade pip in the venv"
# josepy 2.x removed APIs that acme (pulled in by HA's cloud stack) still imports.
"${pip[@]}" install "homeassistant==$HA_VERSION" "josepy<2" >>"$log" 2>&1 ||
    fail "pip install homeassistant==$HA_VERSION failed"

constraints="$("$dir/bin/python" -c 'import homeassistant, os; print(os.path.join(os.path.dirname(homeassistant.__file__), "package_constraints.txt"))')"
[ -f "$constraints" ] || fail "homeassistant's package_constraints.txt not found at $constraints"
# Requirements of the MQTT integration (manifest) and what importing it needs,
# pinned by Home Assistant's own constraints file; then those of the default
# integrations a running `hass` sets up (frontend, hardware, backup, and the
# recorder modules that onboarding's analytics dependency imports).
"${pip[@]}" install -c "$constraints" "homeassistant==$HA_VERSION" "josepy<2" \
    "paho-mqtt==1.6.1" numpy janus Pillow >>"$log" 2>&1 ||
    fail "pip install of the MQTT integration's requirements failed"
"${pip[@]}" install -c "$constraints" "homeassistant==$HA_VERSION" "josepy<2" \
    home-assistant-frontend psutil-home-assistant "securetar==2024.2.1" \
    SQLAlchemy "fnv-hash-fast==0.5.0" >>"$log" 2>&1 ||
    fail "pip install of the default integrations' requirements failed"

check || fail "Home Assistant's MQTT integration or a default integration's requirement does not import in $dir"
touch "$stamp"
echo "ha-venv: ready: $dir/bin/python ($(tail -n 1 "$log"))"
rm -f "$log"
