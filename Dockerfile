# syntax=docker/dockerfile:1
# wasmcalls: the host binary, and the musicbot demo so `docker run` shows it working.
#
#   docker build -t wasmcalls .
#   docker run --rm --cap-add SYS_NICE wasmcalls                         # the demo, on the loopback
#   docker run --rm --cap-add SYS_NICE -v $PWD/site:/etc/wasmcalls wasmcalls   # your config
#
# Tenants' plugins are not baked in: mount them (or build FROM this image adding them).

# Build stage: the toolchain rust-toolchain.toml pins, cmake for libopus, the
# wasm32-wasip2 target for the demo plugin. --locked: the lockfile the tests ran with.
FROM rust:1.95.0-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin wasmcalls \
 && cargo build --release --locked --target wasm32-wasip2 --manifest-path plugins/Cargo.toml -p musicbot

# Runtime stage: the binary, CA certificates for https URL sources, nothing else.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/wasmcalls wasmcalls \
 && install -d -o wasmcalls /var/lib/wasmcalls /etc/wasmcalls
COPY --from=build /src/target/release/wasmcalls /usr/local/bin/wasmcalls
COPY --from=build /src/plugins/target/wasm32-wasip2/release/musicbot.wasm /usr/share/wasmcalls/plugins/
COPY examples/media /usr/share/wasmcalls/media
COPY deploy/wasmcalls.toml /etc/wasmcalls/wasmcalls.toml
USER wasmcalls
WORKDIR /var/lib/wasmcalls
EXPOSE 24859
# SIGTERM drains: no new calls, [host] drain_grace_s for the others, each left, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/wasmcalls"]
CMD ["run", "/etc/wasmcalls/wasmcalls.toml"]
