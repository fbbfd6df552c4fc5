# syntax=docker/dockerfile:1
# The socle binary (all components are its subcommands). Used by docker-compose.yml.

ARG RUST_VERSION=1
FROM rust:${RUST_VERSION}-bookworm AS build
# librdkafka is compiled by the rdkafka crate (cmake-build feature)
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      cmake libcurl4-openssl-dev libsasl2-dev libssl-dev zlib1g-dev libzstd-dev pkg-config build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin socle \
 && cp target/release/socle /usr/local/bin/socle

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 libsasl2-2 libzstd1 libcurl4 zlib1g curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app socle
WORKDIR /app
COPY --from=build /usr/local/bin/socle /usr/local/bin/socle
# Everything the binary reads at run time, at the paths of its defaults (relative to /app):
# the contracts, the topic declarations, the agreements, the access policies, the referential.
COPY schemas/ /app/schemas/
COPY deploy/topics.toml /app/deploy/topics.toml
COPY deploy/agreements/ /app/deploy/agreements/
COPY policies/ /app/policies/
COPY reference/ /app/reference/
# Secrets (the sealer's key, the dev IdP's key) live in a volume, never in the image.
RUN mkdir -p /var/lib/socle/seal /var/lib/socle/dev-idp && chown -R socle /var/lib/socle
USER socle
EXPOSE 8080 8081 8090 9101 9102 9103 9104 9105 9106
CMD ["socle", "--help"]
