#!/usr/bin/env bash
# Build the torchkit `# syntax=` frontend image offline and push it to the test registry.
#
#   scripts/frontend-image.sh            # → localhost:5000/torchkit/frontend:dev
#   IMAGE=localhost:5000/torchkit/frontend:v1 scripts/frontend-image.sh
#   (tests/e2e_frontend.rs tests it with TORCHKIT_TEST_FRONTEND=localhost:5000/torchkit/frontend:v1)
#
# 1. a static torchkit (glibc static-pie, [profile.frontend]) with cargo, in
#    target/static so that it does not disturb the debug builds in target/;
# 2. `docker build -f frontend.Dockerfile` with that binary as the whole build context
#    (BUILDER=prebuilt: no Rust image, no Docker Hub pull);
# 3. `docker push` to the registry, so `# syntax=<IMAGE>` resolves on any daemon that uses it.
#
# Idempotent: cargo and BuildKit only redo what changed. Needs the test environment's docker
# (`. /var/lib/torchkit-test-env/env.sh`; sourced here when present and DOCKER_HOST is unset).
# SKIP_CARGO=1 packages the binary already built.
set -euo pipefail

IMAGE=${IMAGE:-localhost:5000/torchkit/frontend:dev}
TARGET=x86_64-unknown-linux-gnu
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/target/static/$TARGET/frontend/torchkit
ENV_SH=${RT:-/var/lib/torchkit-test-env}/env.sh

if [ -z "${DOCKER_HOST:-}" ] && [ -f "$ENV_SH" ]; then
  # shellcheck disable=SC1090
  . "$ENV_SH"
fi

cd "$ROOT"
if [ "${SKIP_CARGO:-0}" != 1 ]; then
  echo "==> cargo build --profile frontend --target $TARGET (static)" >&2
  RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --locked --profile frontend --target "$TARGET" --target-dir target/static --bin torchkit
fi
[ -x "$BIN" ] || { echo "error: $BIN is missing; run without SKIP_CARGO=1" >&2; exit 1; }
if ldd "$BIN" 2>&1 | grep -q '=>'; then
  echo "error: $BIN is dynamically linked; it must be static to run FROM scratch" >&2
  exit 1
fi

CTX=$(mktemp -d)
trap 'rm -rf "$CTX"' EXIT
cp "$BIN" "$CTX/torchkit"

echo "==> docker build -f frontend.Dockerfile -t $IMAGE" >&2
docker build -f frontend.Dockerfile --build-arg BUILDER=prebuilt -t "$IMAGE" "$CTX"
echo "==> docker push $IMAGE" >&2
docker push "$IMAGE" >/dev/null

size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
echo "$IMAGE: binary $(stat -c %s "$BIN") bytes, image $size bytes" >&2
