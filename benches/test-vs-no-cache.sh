#!/usr/bin/env bash
# A fresh dependency rebuild: torchkit's `test` profile vs `docker build --no-cache` of the
# same image written as a Dockerfile, on the same daemon.
#
#   benches/test-vs-no-cache.sh        # N=3 runs each
#   N=5 benches/test-vs-no-cache.sh
#
# The test profile re-runs the dependency steps' resolutions (`pip install --dry-run`), reuses
# base and apt, and re-installs only a set that changed (docs/caching.md). Two torchkit
# figures are printed:
# - `test`: the usual case, nothing new on the index, so the installs stay cached;
# - `test, all re-installed`: `--no-cache-filter pip,requirements` on top, the bound for a
#   resolution where everything changed (both halves re-run, download caches warm).
# The spec and the Dockerfile are in benches/lock-equivalent/ (same base digest, same apt
# and pip packages, pinned versions). Each side is built once to warm up, then N times,
# alternating. The timed builds measure the rebuild, not an export: torchkit without an
# output (the result stays in the build cache) and `docker buildx build --output
# type=cacheonly` (EXPORT=1 exports both to dockerd's image store with `-t` instead).
# Prints the runs, the medians and the ratios. Needs the test environment
# (`. /var/lib/torchkit-test-env/env.sh`) and a built torchkit (`cargo build --release`;
# TORCHKIT=path to use another binary).
set -euo pipefail

N=${N:-3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TORCHKIT=${TORCHKIT:-$ROOT/target/release/torchkit}
CA=${CA:-/etc/ssl/certs/ca-certificates.crt}
ENV_SH=${RT:-/var/lib/torchkit-test-env}/env.sh
if [ -z "${DOCKER_HOST:-}" ] && [ -f "$ENV_SH" ]; then
  # shellcheck disable=SC1090
  . "$ENV_SH"
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp -r "$ROOT/benches/lock-equivalent/." "$WORK/"

secs() { echo "scale=3; ($2 - $1) / 1000000000" | bc; }

EXPORT=${EXPORT:-0}
tk_out=(); df_out=(--output type=cacheonly)
if [ "$EXPORT" = 1 ]; then tk_out=(-t torchkit-bench:test); df_out=(-t torchkit-bench:no-cache); fi

tk_build() { # $1 = profile, then output flags; prints wall seconds
  local t0 t1 profile=$1
  shift
  t0=$(date +%s%N)
  "$TORCHKIT" build "$WORK" --profile "$profile" --ca-bundle "$CA" "$@" --progress quiet >/dev/null 2>"$WORK/tk.err" \
    || { cat "$WORK/tk.err" >&2; echo "torchkit build failed" >&2; exit 1; }
  t1=$(date +%s%N)
  secs "$t0" "$t1"
}

df_build() { # prints wall seconds
  local t0 t1
  t0=$(date +%s%N)
  docker buildx build --progress quiet --no-cache --secret "id=torchkit-ca,src=$CA" \
    --build-arg "BASE=$BASE" -f "$WORK/Dockerfile" "${df_out[@]}" "$WORK" >/dev/null
  t1=$(date +%s%N)
  secs "$t0" "$t1"
}

echo "warming up (dev build fills the layer and download caches) ..." >&2
tk_build dev -t torchkit-bench:test >/dev/null
BASE=docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime@$(docker image inspect \
  --format '{{index .Config.Labels "torchkit.base.digest"}}' torchkit-bench:test)
df_build >/dev/null

tk=(); tka=(); df=()
for _ in $(seq "$N"); do
  tk+=("$(tk_build test "${tk_out[@]}")")
  tka+=("$(tk_build test --no-cache-filter pip,requirements "${tk_out[@]}")")
  df+=("$(df_build)")
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
mt=$(median "${tk[@]}")
ma=$(median "${tka[@]}")
md=$(median "${df[@]}")
echo "base:                          $BASE"
echo "runs per side:                 $N, same daemon, $([ "$EXPORT" = 1 ] && echo 'exported to the image store (-t)' || echo 'no export (build cache only)')"
echo "torchkit --profile test:       ${tk[*]}"
echo "  ... all re-installed:        ${tka[*]}"
echo "docker build --no-cache:       ${df[*]}"
echo "median torchkit test:          ${mt}s"
echo "median test, all re-installed: ${ma}s"
echo "median docker --no-cache:      ${md}s"
echo "speed-up (no-cache / test):    $(echo "scale=2; $md / $mt" | bc)x"
echo "speed-up, all re-installed:    $(echo "scale=2; $md / $ma" | bc)x"
