#!/usr/bin/env bash
# Warm, fully cached builds: the torchkit `# syntax=` frontend vs dockerd's builtin
# Dockerfile frontend on an equivalent Dockerfile, same daemon, same context.
#
#   benches/frontend-vs-dockerfile.sh          # N=10 runs each
#   N=20 benches/frontend-vs-dockerfile.sh
#
# The spec is tests/e2e-frontend/basic/torchkit.toml (base, user, copy); the Dockerfile
# does the same three steps with the same base digest, command and copy. Each side is built
# once to warm the cache, then N times, alternating, with `docker build -t` (export to the
# image store included). Prints the medians, the ratio and the frontend image's size.
# Needs the test environment and the pushed frontend image (scripts/frontend-image.sh).
set -euo pipefail

N=${N:-10}
FRONTEND=${FRONTEND:-localhost:5000/torchkit/frontend:dev}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENV_SH=${RT:-/var/lib/torchkit-test-env}/env.sh
if [ -z "${DOCKER_HOST:-}" ] && [ -f "$ENV_SH" ]; then
  # shellcheck disable=SC1090
  . "$ENV_SH"
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp -r "$ROOT/tests/e2e-frontend/basic/." "$WORK/"
sed -i "1s|.*|# syntax=$FRONTEND|" "$WORK/torchkit.toml"


build() { # $1 = file; prints wall seconds
  local t0 t1
  t0=$(date +%s%N)
  docker build --progress quiet -f "$WORK/$1" -t "torchkit-bench:${1%%.*}" "$WORK" >/dev/null
  t1=$(date +%s%N)
  echo "scale=3; ($t1 - $t0) / 1000000000" | bc
}

echo "warming the cache ..." >&2
build torchkit.toml >/dev/null
# The base as the frontend pinned it (its label), so both sides start from the same digest.
BASE_REF=docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime
DIGEST=$(docker image inspect --format '{{index .Config.Labels "torchkit.base.digest"}}' torchkit-bench:torchkit)
cat > "$WORK/Dockerfile" <<DOCKERFILE
FROM $BASE_REF@$DIGEST
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
echo "runs per side:             $N (warm, fully cached, docker build -t)"
echo "torchkit frontend runs:    ${tk[*]}"
echo "Dockerfile frontend runs:  ${df[*]}"
echo "median torchkit frontend:  ${mt}s"
echo "median Dockerfile builtin: ${md}s"
echo "ratio:                     $(echo "scale=2; $mt / $md" | bc)x"
echo "frontend image:            $FRONTEND, $size bytes"
