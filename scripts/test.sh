#!/usr/bin/env bash
# The whole test suite, on a fresh machine (as root), as CI runs it:
#   1. brings up the local BuildKit (dockerd's embedded BuildKit from Debian packages), the
#      local registry acting as docker.io mirror, and the stand-in base images;
#   2. builds the static frontend image and pushes it to the local registry;
#   3. runs every test: unit, golden, CLI and end-to-end against the real daemon.
# It installs Graphviz first (Debian package, only if missing): `torchkit graph --format svg`
# runs its `dot`, and tests/graph.rs checks that.
# End-to-end tests fail (they never skip) if the daemon is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

export RT=${RT:-/var/lib/torchkit-test-env}
# Every official tag the examples and tests resolve to is served by the same stand-in.
export STANDIN=1
export STANDIN_REFS=${STANDIN_REFS:-"pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime pytorch/pytorch:2.8.0-cuda12.8-cudnn9-devel"}

step() { printf '\n==> %s\n' "$*" >&2; }

step "Graphviz for the \`torchkit graph --format svg\` tests (Debian package graphviz)"
if [ "$(dpkg-query -W -f='${Status}' graphviz 2>/dev/null)" != "install ok installed" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends graphviz >/dev/null
fi

step "local BuildKit, registry and stand-in images (scripts/test-env.sh up)"
scripts/test-env.sh up
# shellcheck disable=SC1091
. "$RT/env.sh"

step "frontend image (scripts/frontend-image.sh)"
scripts/frontend-image.sh

step "cargo test"
cargo test --locked --no-fail-fast "$@"
