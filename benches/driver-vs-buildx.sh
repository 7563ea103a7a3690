#!/usr/bin/env bash
# torchkit build vs docker buildx build through the same daemon, on the same environment:
# examples/quickstart (torchkit.toml) and its hand-written equivalent
# benches/equivalent/Dockerfile (same pinned base, apt/pip/requirements/copy steps, cache
# mounts, CA secret). Both store the image in dockerd (`-t`); buildx runs with
# --provenance=false, since torchkit makes no attestation.
#
#   benches/driver-vs-buildx.sh        # after scripts/test-env.sh up (STANDIN=1)
#
# Prints medians of
#   cold   – after `docker builder prune -af` (build cache and cache mounts gone), N_COLD runs;
#   warm   – fully cached rebuild, N_WARM runs;
#   upload – the context transfer of a BLOB_MB MB file (new random bytes before every run,
#            so every transfer is complete): the context vertex's duration from the daemon's
#            own timestamps (`--progress rawjson`), and the wall time of that build, N_UPLOAD runs;
# and torchkit/buildx ratios. Uses hyperfine when installed (`apt-get install -y hyperfine`),
# else a timing loop. NOTE: the cold runs prune the daemon's whole build cache.
#
# Settings: PARTS ("warm cold upload"), N_COLD (3), N_WARM (10), N_UPLOAD (3), BLOB_MB (50), CA_BUNDLE, TORCHKIT
# (default target/release/torchkit if built, else target/debug/torchkit), RT.
set -euo pipefail

cd "$(dirname "$0")/.."
N_COLD=${N_COLD:-3}
N_WARM=${N_WARM:-10}
N_UPLOAD=${N_UPLOAD:-3}
PARTS=${PARTS:-"warm cold upload"}   # any of: warm cold upload
BLOB_MB=${BLOB_MB:-50}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
EXAMPLE=examples/quickstart
EQUIV=benches/equivalent
# shellcheck source=benches/common.sh
. benches/common.sh

work=$(mktemp -d /tmp/torchkit-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The pinned base: what torchkit resolved, read back from its image's label.
log "priming: one torchkit build to learn the pinned base ($TORCHKIT)"
"$TORCHKIT" build "$EXAMPLE" --ca-bundle "$CA_BUNDLE" -t bench/torchkit:latest --progress quiet >/dev/null
base=$(docker image inspect bench/torchkit:latest -f '{{index .Config.Labels "torchkit.base"}}')
digest=$(docker image inspect bench/torchkit:latest -f '{{index .Config.Labels "torchkit.base.digest"}}')
pinned="${base}@${digest}"
log "base: $pinned"

tk() { # tk CONTEXT_DIR PROGRESS
  "$TORCHKIT" build "$1" --ca-bundle "$CA_BUNDLE" -t bench/torchkit:latest --progress "$2"
}
bx() { # bx CONTEXT_DIR PROGRESS
  docker buildx build -f "$EQUIV/Dockerfile" --build-context "torchkit=$EQUIV" \
    --secret "id=torchkit-ca,src=$CA_BUNDLE" --build-arg "BASE=$pinned" \
    --provenance=false -t bench/buildx:latest --progress "$2" "$1"
}
export -f tk bx
export TORCHKIT CA_BUNDLE EQUIV pinned

# One build each, to check both work before timing anything.
tk "$EXAMPLE" quiet >/dev/null
bx "$EXAMPLE" quiet >/dev/null
log "both builds work; same image contents: $(docker run --rm bench/torchkit:latest | md5sum | cut -c1-8) vs $(docker run --rm bench/buildx:latest | md5sum | cut -c1-8)"


# time_runs NAME RUNS PREPARE -- prints one wall time (s) per run
time_loop() {
  local runs=$1 prepare=$2 cmd=$3 i t0
  for ((i = 0; i < runs; i++)); do
    [ -n "$prepare" ] && bash -c "$prepare" >/dev/null 2>&1
    t0=$EPOCHREALTIME
    bash -c "$cmd" >/dev/null 2>&1
    awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f\n", b - a }'
  done
}

# measure MODE RUNS WARMUP PREPARE → $work/MODE.{tk,bx} (one time per line)
measure() {
  local mode=$1 runs=$2 warmup=$3 prepare=$4
  local tkc="tk $EXAMPLE quiet" bxc="bx $EXAMPLE quiet"
  if command -v hyperfine >/dev/null; then
    local args=(--shell bash --runs "$runs" --warmup "$warmup" --export-json "$work/$mode.json" --style basic)
    [ -n "$prepare" ] && args+=(--prepare "$prepare")
    hyperfine "${args[@]}" -n torchkit "$tkc" -n buildx "$bxc" >&2
    python3 - "$work/$mode.json" "$work/$mode" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for r, ext in zip(d["results"], ("tk", "bx")):
    open(f"{sys.argv[2]}.{ext}", "w").write("".join(f"{t:.4f}\n" for t in r["times"]))
PY
  else
    [ "$warmup" -gt 0 ] && time_loop "$warmup" "" "$tkc" >/dev/null && time_loop "$warmup" "" "$bxc" >/dev/null
    time_loop "$runs" "$prepare" "$tkc" >"$work/$mode.tk"
    time_loop "$runs" "$prepare" "$bxc" >"$work/$mode.bx"
  fi
}

want() { [[ " $PARTS " == *" $1 "* ]]; }
if want warm; then
  log "warm: $N_WARM fully cached builds each"
  measure warm "$N_WARM" 2 ""
fi
if want cold; then
  log "cold: $N_COLD builds each after docker builder prune -af"
  measure cold "$N_COLD" 0 "docker builder prune -af"
fi

# Upload: a copy of the example with a BLOB_MB MB file under src/ (copied into the image,
# so both tools must send it), rewritten with new random bytes before every build.
log "upload: $N_UPLOAD builds each with a ${BLOB_MB} MB file in the context"
ctx="$work/ctx"
cp -a "$EXAMPLE/." "$ctx"
: >"$work/upload.tk"; : >"$work/upload.bx"; : >"$work/upwall.tk"; : >"$work/upwall.bx"
# The context vertex (`[torchkit] context` / buildx's `[internal] load build context`):
# completed − started, from the daemon's own nanosecond timestamps in the rawjson stream.
context_stats() { # → "SECONDS BYTES"
  python3 benches/context_stats.py
}
want upload || N_UPLOAD=0
for ((i = 0; i < N_UPLOAD; i++)); do
  for tool in tk bx; do
    head -c "$((BLOB_MB << 20))" /dev/urandom >"$ctx/src/blob.bin"
    t0=$EPOCHREALTIME
    $tool "$ctx" rawjson >/dev/null 2>"$work/upload.log"
    awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f\n", b - a }' >>"$work/upwall.$tool"
    read -r secs bytes < <(context_stats <"$work/upload.log")
    echo "$secs" >>"$work/upload.$tool"
    log "  $tool run $((i + 1)): context $((bytes >> 20)) MiB in ${secs}s"
  done
done

row() { # row LABEL FILE_BASE
  local a b
  a=$(median <"$2.tk")
  b=$(median <"$2.bx")
  awk -v l="$1" -v a="$a" -v b="$b" 'BEGIN { printf "%-28s %10.3f %10.3f %8.3fx\n", l, a, b, (b > 0 ? a / b : 0) }'
}
echo
printf '%-28s %10s %10s %9s\n' "median (s)" torchkit buildx ratio
if want warm; then row "warm (fully cached) x$N_WARM" "$work/warm"; fi
if want cold; then row "cold (after prune) x$N_COLD" "$work/cold"; fi
if want upload; then
  row "upload ${BLOB_MB}MB: context x$N_UPLOAD" "$work/upload"
  row "upload ${BLOB_MB}MB: build x$N_UPLOAD" "$work/upwall"
fi
echo "(torchkit: $TORCHKIT; buildx: $(docker buildx version | awk '{print $2}'); daemon: $(docker version -f '{{.Server.Version}}'))"
