# syntax=docker/dockerfile:1
#
# codeserver-service: build with the Rust toolchain image, run on distroless (no shell,
# no package manager), as uid 1000.
#
#   docker build \
#     --build-arg BUILD_VERSION="$(git describe --tags --always --dirty)" \
#     --build-arg BUILD_TIME="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
#     -t codeserver-service:0.1.0 .
#
# `make docker-build` runs exactly this.

# --- build stage ---
# NB: keep the Debian release of both stages equal (bookworm / debian12): the binary
# links against the build image's glibc.
FROM rust:1.95-bookworm AS builder

WORKDIR /src

# Stamped into the binary at compile time (read with `option_env!`).
ARG BUILD_VERSION=dev
ARG BUILD_TIME=unknown
ENV BUILD_VERSION=${BUILD_VERSION} \
    BUILD_TIME=${BUILD_TIME}

COPY . .

# The cache mounts keep the registry and compiled dependencies between builds; the
# binary is copied out of the cached target directory because the mount is not part of
# the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin codeserver-service \
 && install -D -m 0755 target/release/codeserver-service /out/codeserver-service

# --- runtime stage ---
# distroless/cc: glibc, libgcc, CA certificates, tzdata; nothing else.
FROM gcr.io/distroless/cc-debian12:nonroot

ARG BUILD_VERSION=dev
ARG BUILD_TIME=unknown
LABEL org.opencontainers.image.title="codeserver-service" \
      org.opencontainers.image.description="Personal, persistent code-server workspaces on Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${BUILD_VERSION}" \
      org.opencontainers.image.created="${BUILD_TIME}"

WORKDIR /app
COPY --from=builder --chown=0:0 /out/codeserver-service /app/codeserver-service

# The healthcheck subcommand reads PORT like the server does.
ENV PORT=8082 \
    METRICS_PORT=9092

USER 1000:1000

EXPOSE 8082 9092

# No shell in the image: the binary checks itself (GET http://127.0.0.1:$PORT/health,
# exit 0 on 200, 1 otherwise).
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/app/codeserver-service", "healthcheck"]

ENTRYPOINT ["/app/codeserver-service"]
CMD ["serve"]
