# syntax=docker/dockerfile:1
#
# trueconf2mqtt container image.
#
#   docker build -t trueconf2mqtt .
#   docker run --rm -v "$PWD/config.toml:/config/config.toml:ro" trueconf2mqtt
#
# The default command runs the bridge with /config/config.toml; any other subcommand works too
# (`docker run --rm trueconf2mqtt check-config --config /config/config.toml`,
# `… simulate --bind 0.0.0.0 --http-port 8766 --ws-port 8765`, `… demo --listen 0.0.0.0:1883`).
# docker-compose.yml wires it to mosquitto, a simulated Room and (profile `ha`) Home Assistant.

# --- build -------------------------------------------------------------------------------------
FROM rust:1-slim-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the registry and the target directory between builds; the binary is
# copied out of the (cached, hence not persisted) target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin trueconf2mqtt \
 && install -D -m 0755 target/release/trueconf2mqtt /out/trueconf2mqtt

# --- runtime -----------------------------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: the system roots for MQTT over TLS without a ca_file.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin trueconf2mqtt
COPY --from=builder /out/trueconf2mqtt /usr/local/bin/trueconf2mqtt
COPY config/trueconf2mqtt.example.toml /usr/share/doc/trueconf2mqtt/config.example.toml

# Not root. Docker secrets and mounted configuration files must be readable by uid 10001
# (file-based Compose secrets keep the host file's owner and mode).
USER 10001:10001

# Liveness: GET /healthz on the bridge's health endpoint, which must be enabled in the
# configuration as  [http] listen = "0.0.0.0:9180"  (or 127.0.0.1:9180; another port: set
# HEALTHCHECK_PORT). It answers 200 while the bridge's own loops run, whatever the Room and the
# broker do — a Room that is switched off must not get the bridge restarted. /readyz (200 only
# when every Room and the broker are connected) is for monitoring, not for this check.
# The image has no curl: bash's /dev/tcp does the request. Containers that run another
# subcommand (e.g. `simulate`) override or disable this check.
ENV HEALTHCHECK_PORT=9180
EXPOSE 9180
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${HEALTHCHECK_PORT} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

ENTRYPOINT ["/usr/local/bin/trueconf2mqtt"]
CMD ["run", "--config", "/config/config.toml"]
