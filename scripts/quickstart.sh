#!/usr/bin/env bash
# The README's first command: build examples/quickstart with torchkit and run the image.
#
#   scripts/quickstart.sh            # as root on a fresh machine, or as any Docker user
#
# 1. Builds torchkit (`cargo build`; PROFILE=release for an optimised binary).
# 2. Finds a BuildKit: BUILDKIT_HOST, else the Docker socket (DOCKER_HOST or
#    /var/run/docker.sock). If none answers, starts the test environment
#    (`scripts/test-env.sh up`, as root) with a stand-in for the base image the quickstart
#    resolves to; if the test environment is in use but lacks that stand-in, adds it.
# 3. `torchkit build examples/quickstart --ca-bundle … -t torchkit/quickstart:dev`, then
#    `docker run --rm torchkit/quickstart:dev`.
#
# Idempotent: a second run reuses the daemon, the registry, the stand-in and the build
# cache (the build is fully cached). Settings: RT (test environment dir), IMAGE, CA_BUNDLE,
# PROFILE (debug|release), PROGRESS (plain).
set -euo pipefail

cd "$(dirname "$0")/.."
RT=${RT:-/var/lib/torchkit-test-env}
IMAGE=${IMAGE:-torchkit/quickstart:dev}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
PROFILE=${PROFILE:-debug}
PROGRESS=${PROGRESS:-plain}
EXAMPLE=examples/quickstart

log() { printf 'quickstart: %s\n' "$*" >&2; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
die() { printf 'quickstart: error: %s\n' "$*" >&2; exit 1; }

# --- 1. the binary -----------------------------------------------------------------------
log "building torchkit ($PROFILE)"
start=$EPOCHREALTIME
if [ "$PROFILE" = release ]; then
  cargo build --release --quiet --bin torchkit
  TORCHKIT=target/release/torchkit
else
  cargo build --quiet --bin torchkit
  TORCHKIT=target/debug/torchkit
fi
log "built $TORCHKIT in $(since "$start")s"

# The base image the quickstart resolves to, as a Docker Hub name (pytorch/pytorch:…).
base=$("$TORCHKIT" plan "$EXAMPLE" | awk '$1 == "base" { print $2; exit }')
[ -n "$base" ] || die "torchkit plan $EXAMPLE printed no base image"
hub=${base#docker.io/}
hub=${hub%%@*}
log "the quickstart builds on $hub"

# --- 2. a BuildKit -----------------------------------------------------------------------
docker_sock() {
  case "${DOCKER_HOST:-}" in
    unix://*) printf '%s\n' "${DOCKER_HOST#unix://}" ;;
    *) printf '/var/run/docker.sock\n' ;;
  esac
}
docker_answers() { curl -fsS --max-time 5 --unix-socket "$(docker_sock)" http://docker/_ping >/dev/null 2>&1; }

need_root() {
  [ "$(id -u)" = 0 ] || die "$1; run this script as root to start the test environment (scripts/test-env.sh up), or set BUILDKIT_HOST to a running BuildKit"
}

# The stand-in names the test environment serves now, plus the one we need.
standin_refs() {
  local saved=""
  if [ -f "$RT/state.env" ]; then
    saved=$(set +u; . "$RT/state.env" >/dev/null 2>&1; printf '%s' "${STANDIN_REFS:-${STANDIN_REF:-}}")
  fi
  printf '%s\n' $saved "$hub" | awk 'NF && !seen[$0]++' | paste -sd' ' -
}

standin_in_registry() {
  local reg repo tag
  reg=$(set +u; . "$RT/state.env" >/dev/null 2>&1; printf '%s' "${REG:-127.0.0.1:5000}")
  repo=${hub%:*}
  tag=${hub##*:}
  curl -fsS --max-time 10 -o /dev/null \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json' \
    "http://$reg/v2/$repo/manifests/$tag" 2>/dev/null
}

if [ -n "${BUILDKIT_HOST:-}" ]; then
  log "using BUILDKIT_HOST=$BUILDKIT_HOST"
elif ! docker_answers; then
  need_root "no BuildKit answers (BUILDKIT_HOST is unset and nothing listens on $(docker_sock))"
  log "no BuildKit found: starting the test environment with a stand-in for $hub (about 90 s the first time)"
  STANDIN=1 STANDIN_REFS="$(standin_refs)" RT="$RT" scripts/test-env.sh up >&2
else
  log "using the Docker daemon on $(docker_sock)"
fi

# The test environment: its env.sh (DOCKER_HOST, the buildx plugin) and the stand-in.
if [ -z "${BUILDKIT_HOST:-}" ] && [ -f "$RT/state.env" ] && [ -f "$RT/env.sh" ]; then
  # shellcheck disable=SC1091
  . "$RT/env.sh"
  if ! standin_in_registry; then
    need_root "the test environment has no stand-in for $hub"
    log "adding a stand-in for $hub to the test environment"
    STANDIN=1 STANDIN_REFS="$(standin_refs)" RT="$RT" scripts/test-env.sh up >&2
  fi
fi

# --- 3. build and run --------------------------------------------------------------------
ca_args=()
if [ -r "$CA_BUNDLE" ]; then
  ca_args=(--ca-bundle "$CA_BUNDLE")
else
  log "no CA bundle at $CA_BUNDLE: building without one"
fi
log "torchkit build $EXAMPLE ${ca_args[*]} -t $IMAGE --progress $PROGRESS"
start=$EPOCHREALTIME
digest=$("$TORCHKIT" build "$EXAMPLE" "${ca_args[@]}" -t "$IMAGE" --progress "$PROGRESS")
log "built $IMAGE ($digest) in $(since "$start")s"

log "docker run --rm $IMAGE"
docker run --rm "$IMAGE"
