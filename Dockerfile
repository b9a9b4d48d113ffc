# syntax=docker/dockerfile:1
# One image for both roles: `distcache master` (the default command) and
# `distcache aux`. Settings are environment variables (README: "Running the
# roles yourself"); set PORT in every container, so that the HEALTHCHECK
# (`distcache healthcheck`, which checks http://127.0.0.1:$PORT/health)
# checks the right port for the role: masters 8000, auxiliaries 3001.
#
#   docker build -t distcache .
#   docker run -e PORT=8000 distcache master
#   docker run -e PORT=3001 -e MASTER_ADDRESS=master:8000 distcache aux

# ---- dependency recipe: the workspace's manifests and lock file only ----
FROM rust:1-bookworm AS chef
RUN cargo install cargo-chef --version 0.1.78 --locked
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# ---- build: dependencies first (a cached layer while the lock file does
# not change), then the workspace's own crates ----
FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --package distcache --bin distcache --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --package distcache --bin distcache \
    && install -m 0755 target/release/distcache /usr/local/bin/distcache

# ---- runtime: Debian slim, no compiler, no shell tools needed ----
FROM debian:bookworm-slim AS runtime
# reqwest is built without TLS (cluster traffic is plain HTTP inside the
# network), so no CA certificates or OpenSSL are needed.
RUN groupadd --system --gid 10001 distcache \
    && useradd --system --uid 10001 --gid distcache --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin distcache \
    && mkdir -p /app/backup \
    && chown -R distcache:distcache /app
COPY --from=builder /usr/local/bin/distcache /usr/local/bin/distcache

WORKDIR /app
ENV BACKUP_DIR=/app/backup \
    RUST_LOG=info
# Snapshots and cluster backups survive the container.
VOLUME ["/app/backup"]
# master HTTP, master RESP (RESP_PORT), auxiliary HTTP, auxiliary data protocol (PORT + 10000)
EXPOSE 8000 6379 3001 13001
USER distcache:distcache

# Slim images have no curl: the binary checks itself. A master answers 503
# until at least one auxiliary is up, so it turns healthy only once the
# cluster can serve.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["distcache", "healthcheck", "--timeout-ms", "2000"]

# distcache handles SIGTERM itself (graceful shutdown within 10 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["distcache"]
CMD ["master"]
