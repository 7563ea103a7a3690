# Sourced by the benchmark scripts (from the repository root): which torchkit to time, the
# test environment's daemon, a log line and a median.
#
# Settings: TORCHKIT (default target/release/torchkit if built, else target/debug/torchkit),
# RT (the test environment, /var/lib/torchkit-test-env), BUILDKIT_HOST.
RT=${RT:-/var/lib/torchkit-test-env}
if [ -z "${TORCHKIT:-}" ]; then
  if [ -x target/release/torchkit ]; then TORCHKIT=target/release/torchkit; else TORCHKIT=target/debug/torchkit; fi
fi
[ -x "$TORCHKIT" ] || { echo "build torchkit first (cargo build [--release])" >&2; exit 1; }
# shellcheck disable=SC1091
[ -z "${BUILDKIT_HOST:-}" ] && [ -f "$RT/env.sh" ] && . "$RT/env.sh"
log() { printf 'bench: %s\n' "$*" >&2; }
# median of the numbers on stdin ("nan" for none)
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
