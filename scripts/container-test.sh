#!/usr/bin/env bash
# The Docker image and docker-compose.yml, built and run for real with podman:
#
#   scripts/container-test.sh                  (root or sudo; Debian; ~8 min cold on 2 idle cores, <1 min cached)
#   CONTAINER_TEST=skip scripts/container-test.sh    # says it skipped, exits 0
#
# 1. installs podman, buildah, runc, debootstrap, mosquitto-clients (apt) and podman-compose (PyPI,
#    in a virtualenv) when missing;
# 2. makes the base images locally (scripts/container-base-images.sh: no registry is needed);
# 3. vendors the crates on the host (cached per Cargo.lock) into a copy of the work tree, so the
#    build needs no network, and builds the Dockerfile in docker format (HEALTHCHECK kept);
# 4. starts docker-compose.yml (broker, simulated Room, bridge) with the broker published on a free
#    127.0.0.1 port instead of 1883, waits for the Room's retained state on that broker, sends
#    set/mic_muted and checks the `ok` response and the state change, runs the image's health
#    check in the bridge container; stops and removes the stack whatever happens.
#
# Prints `container: N passed, M failed` last and exits non-zero on any failure. A machine that
# cannot run it (no Debian mirror for debootstrap, no root) fails loudly unless CONTAINER_TEST=skip.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

if [ "${CONTAINER_TEST:-}" = skip ]; then
  printf '\n!!! container: SKIPPED (CONTAINER_TEST=skip): the image and docker-compose.yml were NOT tested\n\n' >&2
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || {
    echo "container: FAILED: needs root (rootful podman) or sudo; CONTAINER_TEST=skip skips it" >&2
    exit 1
  }
  exec sudo --preserve-env=CONTAINER_CACHE,DEBIAN_MIRROR,PATH,RUSTUP_HOME,CARGO_HOME "$0" "$@"
fi

# shellcheck source=scripts/container-env.sh
. scripts/container-env.sh

PROJECT=trueconf2mqtt-test # compose project: never the user's `trueconf2mqtt` stack
IMAGE=trueconf2mqtt:local  # the name docker-compose.yml gives the image
ROOM=boardroom             # config/docker.toml's room
PODMAN_COMPOSE_VERSION=1.6.0
# Bounds (a slow 2-core machine builds for minutes; the stack starts in seconds).
BUILD_TIMEOUT=2400   # the release build of the whole project
UP_TIMEOUT=180       # podman-compose up: it hangs in `podman wait` if a service cannot start
STATE_TIMEOUT=120    # until the Room's state is retained on the compose broker
COMMAND_TIMEOUT=30   # until a command's response and state change arrive
HEALTH_TIMEOUT=60    # until the bridge's health check passes (start period 15 s)

passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'ok - %s\n' "$*"; }
not_ok() { failed=$((failed + 1)); printf 'not ok - %s\n' "$*"; }
started=$SECONDS
step() { log "$* ($((SECONDS - started)) s)"; }
# Whatever ends the script (a failed check, an error, ^C) stops the stack if it was started, then
# prints the summary: non-zero unless every check ran and passed.
STACK_UP=
SUBS=()
on_exit() {
  local rc=$?
  for pid in "${SUBS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -z "$STACK_UP" ] || stop_stack "$rc"
  if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1
    printf 'not ok - the container test stopped (exit status %d, see above)\n' "$rc"
  fi
  printf '\ncontainer: %d passed, %d failed (%d s)\n' "$passed" "$failed" "$((SECONDS - started))"
  [ "$failed" -eq 0 ] || exit 1
}
trap on_exit EXIT
trap 'exit 130' INT TERM
# After a failed check that the remaining ones depend on.
give_up() { exit 1; }

# ----- tools --------------------------------------------------------------------------------------
missing=()
for tool in podman:podman buildah:buildah runc:runc debootstrap:debootstrap \
  mosquitto_sub:mosquitto-clients mosquitto_pub:mosquitto-clients; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
VENV=$CACHE/podman-compose-$PODMAN_COMPOSE_VERSION
if ! "$VENV/bin/podman-compose" version >/dev/null 2>&1; then
  step "installing podman-compose $PODMAN_COMPOSE_VERSION into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "podman-compose==$PODMAN_COMPOSE_VERSION"
fi
compose() {
  "$VENV/bin/podman-compose" -p "$PROJECT" -f "$REPO/docker-compose.yml" -f "$OVERRIDE" "$@"
}

# ----- base images --------------------------------------------------------------------------------
step "base images"
scripts/container-base-images.sh

# ----- build context: the work tree + vendored crates ---------------------------------------------
# The build runs without network access to crates.io (the host may trust a CA the image does not),
# so the crates are vendored on the host, keyed by Cargo.lock, and added to a copy of the work tree
# (tracked and untracked-but-not-ignored files, as `docker build .` would see them) under target/.
lock_hash=$(sha256sum Cargo.lock | cut -c1-16)
VENDOR=$CACHE/vendor/$lock_hash
if [ ! -d "$VENDOR" ]; then
  step "vendoring crates for Cargo.lock $lock_hash"
  rm -rf "$CACHE/vendor" # one Cargo.lock at a time
  mkdir -p "$CACHE/vendor"
  cargo vendor --locked --quiet "$VENDOR.tmp" >/dev/null
  mv "$VENDOR.tmp" "$VENDOR"
fi
CONTEXT=$REPO/target/container/context
step "build context in $CONTEXT"
rm -rf "$CONTEXT"
mkdir -p "$CONTEXT/.cargo"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -c | tar -x -C "$CONTEXT"
else # not a git checkout (a release tarball): everything but build output
  tar --exclude=./target --exclude=./.git -c . | tar -x -C "$CONTEXT"
fi
cp -al "$VENDOR" "$CONTEXT/vendor" 2>/dev/null || cp -a "$VENDOR" "$CONTEXT/vendor"
cat >"$CONTEXT/.cargo/config.toml" <<'EOF'
[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "vendor"
EOF

# ----- image --------------------------------------------------------------------------------------
# A cold build needs ~3 GB (build cache, layers); say so before it fails with ENOSPC in rustc.
for dir in /var/lib/containers /var/tmp; do
  free_gb=$(df --output=avail -BG "$dir" 2>/dev/null | tail -n 1 | tr -dc 0-9)
  if [ -n "$free_gb" ] && [ "$free_gb" -lt 4 ]; then
    printf '\n!!! only %s GB free for %s: a cold image build needs ~3 GB\n\n' "$free_gb" "$dir" >&2
  fi
done
step "podman build (docker format) -t $IMAGE"
if ! timeout "$BUILD_TIMEOUT" podman build --pull=never --format docker --layers \
  -t "$IMAGE" -t trueconf2mqtt -f "$CONTEXT/Dockerfile" "$CONTEXT"; then
  not_ok "the image builds from Dockerfile"
  give_up
fi
# Each change of the sources leaves the previous build behind, untagged: its builder stage (the
# sources and vendored crates, ~400 MB) and its image. Keep the two newest builder stages (the
# layer cache: going back and forth between two trees stays cached) and remove the others, old
# images of this Dockerfile and superseded base images (an image still in use is kept).
prune_old_builds() {
  local id top builders=0
  for id in $(podman images --filter dangling=true --sort created --format '{{.ID}}'); do
    top=$(podman history --no-trunc --format '{{.CreatedBy}}' "$id" 2>/dev/null | sed -n 1p)
    if [[ $top == *"cargo build --release --locked --bin trueconf2mqtt"* ]]; then
      builders=$((builders + 1))
      [ "$builders" -le 2 ] && continue
    elif [ "$(podman image inspect --format '{{json .Config.Entrypoint}}' "$id")" != \
      '["/usr/local/bin/trueconf2mqtt"]' ] &&
      [ -z "$(podman image inspect --format '{{index .Config.Labels "org.trueconf2mqtt.recipe"}}' "$id")" ]; then
      continue # not ours
    fi
    podman rmi "$id" >/dev/null 2>&1 || true
  done
}
prune_old_builds

healthcheck=$(podman image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE")
if [[ $healthcheck == *"/healthz"* ]]; then
  ok "the image builds, with its HEALTHCHECK ($(podman image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=si)B)"
else
  not_ok "the image has no HEALTHCHECK (built in OCI format?): $healthcheck"
fi

# ----- compose stack ------------------------------------------------------------------------------
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
BROKER_PORT=$(free_port)
OVERRIDE=$REPO/target/container/compose.override.yml
# The machine may run its own broker on 1883: publish the compose broker on a free port instead.
cat >"$OVERRIDE" <<EOF
services:
  mosquitto:
    ports: !override
      - "127.0.0.1:$BROKER_PORT:1883"
EOF
stop_stack() {
  if [ "$1" -ne 0 ] || [ "$failed" -ne 0 ]; then
    for ctr in $(podman ps -a --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}}'); do
      printf '\n--- podman logs %s (last 40 lines)\n' "$ctr" >&2
      podman logs --tail 40 "$ctr" >&2 2>&1 || true
    done
  fi
  step "stopping and removing the stack"
  timeout 120 "$VENV/bin/podman-compose" -p "$PROJECT" -f "$REPO/docker-compose.yml" -f "$OVERRIDE" \
    down -v -t 5 >"$CACHE/compose-down.log" 2>&1 || {
    tail -n 20 "$CACHE/compose-down.log" >&2
    not_ok "podman-compose down stops and removes the stack"
  }
}

step "podman-compose up (broker on 127.0.0.1:$BROKER_PORT)"
compose down -v -t 5 >/dev/null 2>&1 || true # leftovers of an interrupted run
STACK_UP=1
if ! timeout "$UP_TIMEOUT" "$VENV/bin/podman-compose" -p "$PROJECT" -f docker-compose.yml \
  -f "$OVERRIDE" up -d --no-build >"$CACHE/compose-up.log" 2>&1; then
  tail -n 30 "$CACHE/compose-up.log" >&2
  not_ok "podman-compose up starts broker, simulated Room and bridge within $UP_TIMEOUT s"
  give_up
fi
# `retained TOPIC`: the retained payload of TOPIC on the compose broker, or nothing.
retained() {
  mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t "$1" -C 1 -W 2 2>/dev/null || true
}
deadline=$((SECONDS + STATE_TIMEOUT))
while :; do
  availability=$(retained "trueconf/$ROOM/availability")
  mic=$(retained "trueconf/$ROOM/mic_muted")
  [ "$availability" = online ] && [ -n "$mic" ] && break
  if [ $SECONDS -ge $deadline ]; then break; fi
  sleep 1
done
if [ "$availability" = online ] && { [ "$mic" = ON ] || [ "$mic" = OFF ]; }; then
  ok "the simulated Room's state is retained on the compose broker (availability online, mic_muted $mic)"
else
  not_ok "no Room state on the compose broker within $STATE_TIMEOUT s (availability '$availability', mic_muted '$mic')"
  give_up
fi

# A command: the opposite mute. Subscribed before publishing; the retained mic_muted arriving
# first proves the subscription is in place.
want=ON
[ "$mic" = ON ] && want=OFF
events=$CACHE/command-events.txt
: >"$events"
mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -v -W "$COMMAND_TIMEOUT" \
  -t "trueconf/$ROOM/mic_muted" -t "trueconf/$ROOM/response/mic_muted" >"$events" 2>&1 &
SUBS+=($!)
deadline=$((SECONDS + COMMAND_TIMEOUT))
until grep -q "^trueconf/$ROOM/mic_muted " "$events" || [ $SECONDS -ge $deadline ]; do sleep 0.2; done
mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" -t "trueconf/$ROOM/set/mic_muted" -m "$want"
until { grep -q "^trueconf/$ROOM/response/mic_muted " "$events" &&
  grep -q "^trueconf/$ROOM/mic_muted $want\$" "$events"; } || [ $SECONDS -ge $deadline ]; do
  sleep 0.2
done
response=$(grep "^trueconf/$ROOM/response/mic_muted " "$events" | sed -n 1p | cut -d' ' -f2-)
if [[ $response == *'"status":"ok"'* ]]; then
  ok "set/mic_muted $want is answered ok: $response"
else
  not_ok "set/mic_muted $want: no ok response within $COMMAND_TIMEOUT s (got '$response')"
fi
if grep -q "^trueconf/$ROOM/mic_muted $want\$" "$events"; then
  ok "the Room's mic_muted changed to $want"
else
  not_ok "mic_muted did not change to $want within $COMMAND_TIMEOUT s: $(tr '\n' '|' <"$events")"
fi

# The image's HEALTHCHECK (GET /healthz on the bridge) in the bridge's container, named as podman-
# compose names it (the README's `podman healthcheck run` line relies on it). Without systemd podman
# does not run health checks on a timer; `podman healthcheck run` runs one.
bridge=${PROJECT}_trueconf2mqtt_1
deadline=$((SECONDS + HEALTH_TIMEOUT))
until health=$(podman healthcheck run "$bridge" 2>&1) || [ $SECONDS -ge $deadline ]; do sleep 1; done
if podman healthcheck run "$bridge" >/dev/null 2>&1; then
  ok "the image's health check passes in the bridge container ($bridge)"
else
  not_ok "the health check fails in the bridge container $bridge: $health"
fi
# docker-compose.yml's own check for the simulated Room (the image's one is for the bridge).
if podman healthcheck run "${PROJECT}_room_1" >/dev/null 2>&1; then
  ok "the compose health check passes in the simulated Room's container"
else
  not_ok "the compose health check fails in ${PROJECT}_room_1"
fi
uid=$(podman exec "$bridge" id -u 2>&1 || true)
if [ "$uid" = 10001 ]; then
  ok "the bridge runs as uid 10001, not root"
else
  not_ok "the bridge runs as uid '$uid', not 10001"
fi
