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
#
# The floor: BuildKit charges every `# syntax=` build for resolving the frontend image,
# starting its container and tearing it down, whatever the frontend does. To show that cost
# apart from torchkit's own work, the same loop also builds a one-line Dockerfile
# (`FROM <base>`) two ways: with the builtin frontend, and with benches/gateway_floor.rs, a
# frontend that makes only the calls the builtin makes for that line. Their gap is the floor.
# FLOOR=0 skips it.
#
# Prints the medians, the ratios, the gaps in milliseconds and the frontend image's size.
# Needs the test environment and the pushed frontend image (scripts/frontend-image.sh); it
# builds and pushes the floor image itself (cargo, static, like the frontend).
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
FLOOR=${FLOOR:-1}
FLOOR_IMAGE=${FLOOR_IMAGE:-localhost:5000/torchkit/gateway-floor:bench}
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

if [ "$FLOOR" = 1 ]; then
  TARGET=x86_64-unknown-linux-gnu
  echo "==> building the floor frontend $FLOOR_IMAGE (benches/gateway_floor.rs, static)" >&2
  (cd "$ROOT" && RUSTFLAGS='-C target-feature=+crt-static' cargo build --quiet --locked \
    --profile frontend --target "$TARGET" --target-dir target/static --example gateway-floor)
  mkdir "$WORK/floor-image"
  cp "$ROOT/target/static/$TARGET/frontend/examples/gateway-floor" "$WORK/floor-image/"
  # The labels of frontend.Dockerfile, so that BuildKit runs both the same way.
  cat > "$WORK/floor-image/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY gateway-floor /gateway-floor
LABEL moby.buildkit.frontend.network.none="true"
LABEL moby.buildkit.frontend.caps="moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts"
ENTRYPOINT ["/gateway-floor"]
DOCKERFILE
  docker build --progress quiet -t "$FLOOR_IMAGE" "$WORK/floor-image" >/dev/null
  docker push --quiet "$FLOOR_IMAGE" >/dev/null
  rm -rf "$WORK/floor-image"
  echo "FROM $BASE_REF" > "$WORK/floor-builtin.Dockerfile"
  printf '# syntax=%s\nFROM %s\n' "$FLOOR_IMAGE" "$BASE_REF" > "$WORK/floor-gateway.Dockerfile"
fi

build() { # $1 = file; prints wall seconds
  local t0 t1 args=("${extra[@]}")
  case "$1" in floor-*) args=(--build-arg "FLOOR_BASE=$BASE_REF") ;; esac
  t0=$(date +%s%N)
  docker build --progress quiet "${args[@]}" -f "$WORK/$1" -t "torchkit-bench:${1%%.*}" "$WORK" >/dev/null
  t1=$(date +%s%N)
  echo "scale=3; ($t1 - $t0) / 1000000000" | bc
}

files=(torchkit.toml Dockerfile)
[ "$FLOOR" = 1 ] && files+=(floor-gateway.Dockerfile floor-builtin.Dockerfile)
echo "warming the cache ($WORKLOAD) ..." >&2
for f in "${files[@]}"; do build "$f" >/dev/null; done

declare -A runs
for _ in $(seq "$N"); do
  for f in "${files[@]}"; do runs[$f]="${runs[$f]:-} $(build "$f")"; done
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
# shellcheck disable=SC2086
med() { median ${runs[$1]}; }
ratio() { echo "scale=2; $1 / $2" | bc; }
gap_ms() { echo "($1 - $2) * 1000 / 1" | bc; }
mt=$(med torchkit.toml)
md=$(med Dockerfile)
size=$(docker image inspect --format '{{.Size}}' "$FRONTEND")
echo "workload:                  $WORKLOAD"
echo "runs per side:             $N (warm, fully cached, docker build -t, interleaved)"
echo "torchkit frontend runs:   ${runs[torchkit.toml]}"
echo "Dockerfile frontend runs: ${runs[Dockerfile]}"
echo "median torchkit frontend:  ${mt}s"
echo "median Dockerfile builtin: ${md}s"
echo "ratio:                     $(ratio "$mt" "$md")x ($(gap_ms "$mt" "$md") ms more; 1.2x allows $(gap_ms "$md * 1.2" "$md") ms)"
if [ "$FLOOR" = 1 ]; then
  mg=$(med floor-gateway.Dockerfile)
  mb=$(med floor-builtin.Dockerfile)
  echo "floor, FROM <base> only:   gateway-floor ${mg}s vs builtin ${mb}s = $(ratio "$mg" "$mb")x ($(gap_ms "$mg" "$mb") ms: BuildKit's cost of any frontend image)"
  echo "torchkit beyond the floor: $(( $(gap_ms "$mt" "$md") - $(gap_ms "$mg" "$mb") )) ms"
fi
echo "frontend image:            $FRONTEND, $size bytes"
