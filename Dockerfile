# The tool's own container image: what the scheduled repair runs (`[repair] image`).
# Multi-stage: a locked release build, then a slim runtime with CA certificates and a
# non-root user; the binary is the entrypoint. No config goes in: the scheduled command
# (`repair --scheduled --project P --region R --env E`) reads the applied record.
#
#   docker build -t <registry>/tap-provision:$(cargo pkgid | cut -d'#' -f2) .

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY tests ./tests
RUN cargo build --release --locked --bin tap-provision

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin tap
COPY --from=build /src/target/release/tap-provision /usr/local/bin/tap-provision
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/tap-provision"]
CMD ["--help"]
