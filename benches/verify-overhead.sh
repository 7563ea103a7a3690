#!/usr/bin/env bash
# What the verify stage costs on a warm cache: `torchkit build examples/quickstart` fully
# cached, with the verify stage and with --skip-verify, through the same daemon,
# interleaved (ABAB…) so drift hits both alike.
#
#   benches/verify-overhead.sh        # after scripts/test-env.sh up (STANDIN=1)
#
# Prints the median wall time of each, their ratio and difference, and how many verify
# execs ran in the last warm build (from the daemon's own status stream: 0 means the stage
# came from the cache as a whole).
#
# Settings: N (21 runs each), CA_BUNDLE, TORCHKIT (default target/release/torchkit if built,
# else target/debug/torchkit), RT.
set -euo pipefail

cd "$(dirname "$0")/.."
N=${N:-21}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
EXAMPLE=examples/quickstart
# shellcheck source=benches/common.sh
. benches/common.sh

tk() { # tk [FLAGS…]: one quiet build of the quickstart into dockerd
  "$TORCHKIT" build "$EXAMPLE" --ca-bundle "$CA_BUNDLE" -t bench/verify:latest --progress quiet "$@" >/dev/null
}

log "priming: both builds once ($TORCHKIT)"
tk
tk --skip-verify

with=() without=()
for ((i = 0; i < N; i++)); do
  t0=$EPOCHREALTIME; tk; with+=("$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f", b - a }')")
  t0=$EPOCHREALTIME; tk --skip-verify; without+=("$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f", b - a }')")
done
mw=$(printf '%s\n' "${with[@]}" | median)
mo=$(printf '%s\n' "${without[@]}" | median)

# What ran in a warm build with verify: execs of the stage not served from the cache.
ran=$("$TORCHKIT" build "$EXAMPLE" --ca-bundle "$CA_BUNDLE" -t bench/verify:latest --progress rawjson 2>&1 >/dev/null |
  python3 -c '
import json, sys
seen = {}
for line in sys.stdin:
    try:
        s = json.loads(line)
    except ValueError:
        continue
    for v in s.get("vertexes") or []:
        e = seen.setdefault(v.get("digest"), {"name": "", "cached": False, "done": False})
        e["name"] = v.get("name") or e["name"]
        e["cached"] |= bool(v.get("cached"))
        e["done"] |= bool(v.get("completed"))
done = {e["name"]: e["cached"] for e in seen.values()
        if e["name"].startswith("[torchkit verify ") and e["done"]}
print(sum(1 for c in done.values() if not c), "of", len(done))')

printf '\nwarm quickstart build, medians of %d (%s)\n' "$N" "$TORCHKIT"
printf '  with verify      %.3f s\n' "$mw"
printf '  --skip-verify    %.3f s\n' "$mo"
awk -v w="$mw" -v o="$mo" 'BEGIN { printf "  ratio            %.2fx (%+.0f ms)\n", w / o, (w - o) * 1000 }'
printf '  verify execs run in a warm build: %s\n' "$ran"
