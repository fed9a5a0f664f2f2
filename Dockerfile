# sso-sidecar container image.
#   docker build -t sso-sidecar .
#   docker run -p 8080:8080 -p 9090:9090 -v $PWD/my.toml:/etc/sso-sidecar/sidecar.toml:ro \
#     -e SSO_SESSION_KEY=... --read-only sso-sidecar
# The config comes from a mounted file (SSO_SIDECAR_CONFIG), secrets from env: references in it.

FROM rust:1.95-slim-bookworm AS build
# cmake: pingora's compression dependency builds zlib-ng; the rest is the C toolchain for it.
# Versions are not pinned: the Rust image pins the Debian release, and its security updates should flow in.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake make g++ pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so a source change does not rebuild them: build once with a stub main.
COPY Cargo.toml Cargo.lock ./
COPY vendor ./vendor
RUN mkdir -p src \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked --bin sso-sidecar \
    && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin sso-sidecar \
    && objcopy --strip-debug target/release/sso-sidecar /sso-sidecar

# Runtime: glibc, CA certificates and nothing else; runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /sso-sidecar /usr/local/bin/sso-sidecar
COPY conf/sidecar.toml /etc/sso-sidecar/sidecar.toml
ENV SSO_SIDECAR_CONFIG=/etc/sso-sidecar/sidecar.toml \
    SSO_SIDECAR_LOG_FORMAT=json
USER 65532:65532
# 8080: the proxy (server.listen); 9090: /healthz, /readyz, /metrics (admin.listen).
# The config must listen on 0.0.0.0 for these to be reachable from outside the container.
EXPOSE 8080 9090
# Nothing is written to disk: the image runs with a read-only root filesystem.
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/sso-sidecar", "health", "--url", "http://127.0.0.1:9090/healthz"]
ENTRYPOINT ["/usr/local/bin/sso-sidecar"]
CMD ["run"]
