# The torchkit `# syntax=` frontend image: one static torchkit binary FROM scratch, run by
# BuildKit's gateway as `/torchkit frontend` with LLBBridge on its stdin/stdout.
#
#   # torchkit.toml
#   # syntax=localhost:5000/torchkit/frontend:dev
#   docker build -f torchkit.toml .
#
# Two ways to get the binary, chosen with the build-arg BUILDER (BuildKit builds only the
# stages the final one needs, so the unused way costs nothing and pulls nothing):
#
# - BUILDER=prebuilt (default; offline, CI): a static binary built on the host is the
#   whole build context. scripts/frontend-image.sh does this:
#     RUSTFLAGS='-C target-feature=+crt-static' cargo build --profile frontend \
#       --target x86_64-unknown-linux-gnu --target-dir target/static
#     mkdir ctx && cp target/static/x86_64-unknown-linux-gnu/frontend/torchkit ctx/
#     docker build -f frontend.Dockerfile -t localhost:5000/torchkit/frontend:dev ctx
#
# - BUILDER=source (online): compile inside a Rust builder image from the repository:
#     docker build -f frontend.Dockerfile --build-arg BUILDER=source -t torchkit-frontend .
#   (glibc's static-pie: no musl target needed, and it runs FROM scratch.)

ARG BUILDER=prebuilt
ARG RUST_IMAGE=rust:1.89-bookworm

FROM ${RUST_IMAGE} AS source
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
COPY src src
COPY benches benches
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --locked --profile frontend --target x86_64-unknown-linux-gnu --bin torchkit \
 && cp target/x86_64-unknown-linux-gnu/frontend/torchkit /torchkit

FROM scratch AS prebuilt
COPY torchkit /torchkit

FROM ${BUILDER} AS bin

FROM scratch
COPY --from=bin /torchkit /torchkit
# The frontend needs no network: it only talks to the daemon over stdin/stdout.
LABEL moby.buildkit.frontend.network.none="true"
# The caps BuildKit checks before running the image: frontend inputs (forwarded by the
# Dockerfile frontend's `# syntax=` hop), subrequests (`buildx build --print`) and named
# contexts (`--build-context <base>=docker-image://…`, which replaces the base).
LABEL moby.buildkit.frontend.caps="moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts"
LABEL org.opencontainers.image.title="torchkit frontend" \
      org.opencontainers.image.description="BuildKit frontend for torchkit.toml (reproducible PyTorch/CUDA images)" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/torchkit", "frontend"]
