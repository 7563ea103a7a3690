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
# Every official tag the examples and tests resolve to is served by a stand-in
# (examples/legacy-driver resolves to torch 2.5.1 with CUDA 11.8; tests/e2e_layers.rs builds
# every example).
export STANDIN=1
export STANDIN_REFS=${STANDIN_REFS:-"pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime pytorch/pytorch:2.8.0-cuda12.8-cudnn9-devel pytorch/pytorch:2.5.1-cuda11.8-cudnn9-runtime"}

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

# The engines users run besides the default one (trixie's dockerd 26.1 with the containerd
# store): the same with the classic store, Debian bookworm's dockerd 20.10 (BuildKit 0.8,
# classic store) and sid's dockerd 28.5 (BuildKit 0.25). Each runs side by side with the
# default daemon (own socket, data, bridge; the same registry) and gets the driver,
# frontend and exporter tests (ENGINE_TESTS). TORCHKIT_TEST_ENGINES="" runs none.
ENGINES=${TORCHKIT_TEST_ENGINES-"trixie-classic bookworm sid"}
ENGINE_TESTS=${ENGINE_TESTS:-"e2e_build e2e_frontend e2e_verify"}
engine_env() {  # engine_env NAME: the test-env.sh settings of one extra engine
  local rt=${ENGINE_RT_BASE:-/var/lib/tk}-$1
  case $1 in
    trixie-classic) set -- trixie 0 tktc0 172.31.3.1/24 0 ;;
    bookworm) set -- bookworm 0 tkbw0 172.31.1.1/24 0 ;;
    sid) set -- sid 1 tksid0 172.31.2.1/24 1 ;;
    *) echo "unknown engine $1 (trixie-classic, bookworm or sid)" >&2; return 1 ;;
  esac
  printf 'RT=%s ENGINE=%s C8D=%s SOCK=%s/docker.sock DATA=%s/data EXEC=%s/exec BRIDGE=%s BRIDGE_CIDR=%s CDI=%s REG=%s' \
    "$rt" "$1" "$2" "$rt" "$rt" "$rt" "$3" "$4" "$5" "${REG:-127.0.0.1:5000}"
}
for e in $ENGINES; do
  step "engine $e side by side (scripts/test-env.sh up)"
  settings=$(engine_env "$e")
  env $settings sh -c 'mkdir -p "$RT"'
  env $settings scripts/test-env.sh up
done

step "cargo test"
cargo test --locked --no-fail-fast "$@"

failed=
for e in $ENGINES; do
  settings=$(engine_env "$e")
  rt=$(env $settings sh -c 'echo "$RT"')
  targets=()
  for t in $ENGINE_TESTS; do targets+=(--test "$t"); done
  # BuildKit 0.8's scheduler panics and takes dockerd down ("failed to get edge",
  # moby/moby#42414) when builds that share steps run at once and one ignores the cache
  # (a release build): on Docker 20.10 the tests run one at a time.
  threads=()
  [ "$e" = bookworm ] && threads=(-- --test-threads=1)
  step "cargo test ${targets[*]} on $e"
  # shellcheck disable=SC1091
  if ! ( export RT=$rt; . "$rt/env.sh"
         cargo test --locked --no-fail-fast "${targets[@]}" "$@" "${threads[@]}" ); then
    failed="$failed $e"
  fi
done
[ -z "$failed" ] || { echo "engine tests failed on:$failed" >&2; exit 1; }
