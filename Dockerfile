# syntax=docker/dockerfile:1
# One image for both roles: `legation ingestor …` and `legation xds-server …` (deploy/, docs/install.md).
#   docker build -t legation:dev .
# The build step is scripts/build.sh, the script CI builds with (a test keeps it that way).

FROM swift:6.3-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libhiredis-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN ./scripts/build.sh release

FROM debian:bookworm-slim
# The binary's only shared libraries besides glibc, libstdc++, libgcc and zlib (all in the base image).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libhiredis0.14 ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/.build/release/legation /usr/local/bin/legation
USER 65532:65532
EXPOSE 9090 9091 18000
ENTRYPOINT ["/usr/local/bin/legation"]
CMD ["--help"]
