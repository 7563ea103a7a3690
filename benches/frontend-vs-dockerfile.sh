#!/usr/bin/env bash
# Warm, fully cached builds: the torchkit `# syntax=` frontend vs dockerd's builtin
# Dockerfile frontend on an equivalent Dockerfile, same daemon, same context.
#
#   benches/frontend-vs-dockerfile.sh                        # N=10 runs each, WORKLOAD=minimal
#   N=20 WORKLOAD=project benches/frontend-vs-dockerfile.sh
#
# Workloads:
# - minimal: tests/e2e-frontend/basic/torchkit.toml (base, user, copy); the Dockerfile does the
#   same three steps with the same base, command and copy. The worst case for a frontend
#   image: BuildKit's fixed cost of starting any `# syntax=` container is largest against it.
# - project: benches/lock-equivalent/ (base, apt, pip, requirements, user), a small real
#   project; its Dockerfile is the hand-written equivalent (see test-vs-no-cache.sh).
# Each side is built once to warm the cache, then N times, alternating, with `docker build -t`
# (export to the image store included). Both name the base by the tag the spec resolves to.
# Prints the medians, the ratio and the frontend image's size. Needs the test environment
# and the pushed frontend image (scripts/frontend-image.sh).
set -euo pipefail

N=${N:-10}
FRONTEND=${FRONTEND:-localhost:5000/torchkit/frontend:dev}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENV_SH=${RT:-/var/lib/torchkit-test-env}/env.sh
if [ -z "${DOCKER_HOST:-}" ] && [ -f "$ENV_SH" ]; then
  # shellcheck disable=SC1090
  . "$ENV_SH"
fi

WORKLOAD=${WORKLOAD:-minimal}
CA=${CA:-/etc/ssl/certs/ca-certificates.crt}
BASE_REF=docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
extra=()
case "$WORKLOAD" in
  minimal)
    cp -r "$ROOT/tests/e2e-frontend/basic/." "$WORK/"
    cat > "$WORK/Dockerfile" <<DOCKERFILE
FROM $BASE_REF
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility NVIDIA_VISIBLE_DEVICES=all TORCHKIT_E2E=frontend
RUN set -eu; if getent passwd ml >/dev/null; then [ "\$(id -u ml)" = 1234 ] || exit 1; \\
    else groupadd -g 1234 ml; useradd -m -u 1234 -g 1234 -s /bin/sh ml; fi; \\
    mkdir -p /workspace; chown 1234:1234 /workspace
COPY --chown=1234:1234 app/ /workspace/app/
LABEL org.example.e2e=frontend
USER ml
WORKDIR /workspace
CMD ["python3", "app/hello.py"]
DOCKERFILE
    ;;
  project)
    cp -r "$ROOT/benches/lock-equivalent/." "$WORK/"
    sed -i "1i # syntax=$FRONTEND" "$WORK/torchkit.toml"
    # The downloading steps mount the CA bundle secret on both sides (unused when cached).
    extra=(--secret "id=torchkit-ca,src=$CA" --build-arg TORCHKIT_CA_SECRET=1)
    ;;
  *) echo "unknown WORKLOAD=$WORKLOAD (minimal|project)" >&2; exit 2 ;;
esac
sed -i "1s|^# syntax=.*|# syntax=$FRONTEND|" "$WORK/torchkit.toml"

build() { # $1 = file; prints wall seconds
  local t0 t1
  t0=$(date +%s%N)
  docker build --progress quiet "${extra[@]}" -f "$WORK/$1" -t "torchkit-bench:${1%%.*}" "$WORK" >/dev/null
  t1=$(date +%s%N)
  echo "scale=3; ($t1 - $t0) / 1000000000" | bc
}

echo "warming the cache ($WORKLOAD) ..." >&2
build torchkit.toml >/dev/null
build Dockerfile >/dev/null

tk=(); df=()
for i in $(seq "$N"); do
  tk+=("$(build torchkit.toml)")
  df+=("$(build Dockerfile)")
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
mt=$(median "${tk[@]}")
md=$(median "${df[@]}")
size=$(docker image inspect --format '{{.Size}}' "$FRONTEND")
echo "workload:                  $WORKLOAD"
echo "runs per side:             $N (warm, fully cached, docker build -t)"
echo "torchkit frontend runs:    ${tk[*]}"
echo "Dockerfile frontend runs:  ${df[*]}"
echo "median torchkit frontend:  ${mt}s"
echo "median Dockerfile builtin: ${md}s"
echo "ratio:                     $(echo "scale=2; $mt / $md" | bc)x"
echo "frontend image:            $FRONTEND, $size bytes"
