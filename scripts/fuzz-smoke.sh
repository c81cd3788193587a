#!/usr/bin/env bash
# Smoke-fuzz every cargo-fuzz target for a short while:
#   scripts/fuzz-smoke.sh [SECONDS]      (default 20 per target)
# Installs cargo-fuzz when missing, builds the targets (stable toolchain: `-s none`, i.e. no
# sanitizer; debug assertions and overflow checks stay on), runs each one on its committed seeds
# (fuzz/seeds/<target>) plus the local corpus (fuzz/corpus/<target>, git-ignored), and fails on
# the first crash. A crashing input is left in fuzz/artifacts/<target>/; see fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-20}"
case "$duration" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

log() { printf '\n==> %s\n' "$*"; }

if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz into ${CARGO_HOME:-$HOME/.cargo}/bin (cargo install; remove with: cargo uninstall cargo-fuzz)"
  cargo install cargo-fuzz --locked || cargo install cargo-fuzz
fi

log "building the fuzz targets"
cargo fuzz build -s none

status=0
for target in $(cargo fuzz list); do
  log "fuzzing $target for ${duration}s"
  mkdir -p "fuzz/corpus/$target"
  seeds=()
  if [ -d "fuzz/seeds/$target" ]; then seeds=("fuzz/seeds/$target"); fi
  log_file="$(mktemp)"
  if cargo fuzz run -s none "$target" "fuzz/corpus/$target" "${seeds[@]}" -- \
      -max_total_time="$duration" -print_final_stats=1 >"$log_file" 2>&1; then
    grep -E '^stat::number_of_executed_units|^Done [0-9]+ runs' "$log_file" || true
  else
    echo "error: $target crashed; the fuzzer's output ends with:" >&2
    tail -n 60 "$log_file" >&2
    status=1
  fi
  rm -f "$log_file"
done
exit "$status"
