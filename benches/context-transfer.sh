#!/usr/bin/env bash
# What crosses the wire from a context that holds data nobody uses: a copy of
# examples/quickstart plus DATA_MB MB of unreferenced files (a checkpoint and a dataset
# beside the code, as ML repositories have), built warm
#   torchkit  – `torchkit build` (the driver);
#   frontend  – `docker buildx build -f torchkit.toml` through the torchkit frontend image;
#   dockerfile – `docker buildx build` of benches/equivalent/Dockerfile (the builtin frontend,
#                which sends only its COPY sources).
# For each: the context vertex's transferred bytes and duration from the daemon's own status
# stream (`--progress rawjson`, benches/context_stats.py), and the build's wall time;
# medians of N runs, and the ratios to the Dockerfile frontend.
#
#   benches/context-transfer.sh        # after scripts/test-env.sh up (STANDIN=1)
#
# Settings: N (5), DATA_MB (1024), CA_BUNDLE, TORCHKIT (default target/release/torchkit if
# built, else target/debug/torchkit), RT.
set -euo pipefail

cd "$(dirname "$0")/.."
N=${N:-5}
DATA_MB=${DATA_MB:-1024}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
EXAMPLE=examples/quickstart
EQUIV=benches/equivalent
# shellcheck source=benches/common.sh
. benches/common.sh

work=$(mktemp -d /tmp/torchkit-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
ctx=$work/ctx
cp -a "$EXAMPLE/." "$ctx"
mkdir -p "$ctx/data"
head -c "$((DATA_MB * 3 / 4 << 20))" /dev/urandom >"$ctx/data/checkpoint.bin"
head -c "$((DATA_MB / 4 << 20))" /dev/urandom >"$ctx/data/shard-0000.parquet"
log "context: $(du -sh "$ctx" | cut -f1) ($DATA_MB MB of it unreferenced)"

# The pinned base for the Dockerfile, read back from a torchkit build's label.
"$TORCHKIT" build "$ctx" --ca-bundle "$CA_BUNDLE" -t bench/context:latest --progress quiet >/dev/null
pinned="$(docker image inspect bench/context:latest -f '{{index .Config.Labels "torchkit.base"}}')@$(docker image inspect bench/context:latest -f '{{index .Config.Labels "torchkit.base.digest"}}')"

build() { # build TOOL → the rawjson stream on stdout
  case $1 in
    torchkit) "$TORCHKIT" build "$ctx" --ca-bundle "$CA_BUNDLE" -t bench/context:latest --progress rawjson 2>&1 >/dev/null ;;
    frontend) docker buildx build -f "$ctx/torchkit.toml" --secret "id=torchkit-ca,src=$CA_BUNDLE" \
                --build-arg TORCHKIT_CA_SECRET=1 --provenance=false -t bench/context-fe:latest --progress rawjson "$ctx" 2>&1 ;;
    dockerfile) docker buildx build -f "$EQUIV/Dockerfile" --build-context "torchkit=$EQUIV" \
                  --secret "id=torchkit-ca,src=$CA_BUNDLE" --build-arg "BASE=$pinned" \
                  --provenance=false -t bench/context-df:latest --progress rawjson "$ctx" 2>&1 ;;
  esac
}

tools="torchkit frontend dockerfile"
for t in $tools; do build "$t" >/dev/null; : >"$work/$t.bytes"; : >"$work/$t.secs"; : >"$work/$t.wall"; done
for ((i = 0; i < N; i++)); do
  for t in $tools; do
    t0=$EPOCHREALTIME
    build "$t" >"$work/$t.log"
    awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f\n", b - a }' >>"$work/$t.wall"
    read -r secs bytes < <(python3 benches/context_stats.py <"$work/$t.log")
    echo "$secs" >>"$work/$t.secs"; echo "$bytes" >>"$work/$t.bytes"
  done
done

printf '\nwarm builds of a context with %d MB unreferenced, medians of %d (%s)\n' "$DATA_MB" "$N" "$TORCHKIT"
printf '%-11s %14s %12s %10s\n' "" "context bytes" "context s" "build s"
db=$(median <"$work/dockerfile.bytes"); dw=$(median <"$work/dockerfile.wall")
for t in $tools; do
  b=$(median <"$work/$t.bytes"); s=$(median <"$work/$t.secs"); w=$(median <"$work/$t.wall")
  awk -v t="$t" -v b="$b" -v s="$s" -v w="$w" -v db="$db" -v dw="$dw" \
    'BEGIN { printf "%-11s %14d %12.3f %10.3f   (%.2fx bytes, %.2fx build time vs dockerfile)\n", t, b, s, w, (db > 0 ? b / db : 0), w / dw }'
done
