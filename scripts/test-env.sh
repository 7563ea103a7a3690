#!/bin/bash
# test-env.sh - a real BuildKit for torchkit tests, from Debian packages only.
#
# The project's copy of shared/reference/test-env.sh (see test-env.md there), adapted: the
# stand-ins are a Python base image plus a FAKE torch (scripts/fake-torch.py) that matches each
# name in STANDIN_REFS, so torchkit's verify stage (src/plan/verify.py) passes in them.
#
# Stand-ins (STANDIN=1), all in the registry, none left in the local image store:
#   $REGNAME/torchkit-test/python-base:1   debootstrap bookworm minbase + STANDIN_PKGS; no torch.
#                         Built once (rebuilt when STANDIN_PKGS changes).
#   every STANDIN_REFS name (pytorch/pytorch:<torch>-cuda<X.Y>-cudnn<N>-<flavor>)
#                         FROM that base + a fake torch into the interpreter's site-packages
#                         (/usr/local/lib/python3.11/dist-packages, where `pip install` puts
#                         packages): torch <torch>+cu<XY>, version.cuda X.Y, cuDNN, the wheel's
#                         arch list, torchvision/torchaudio of that release (table STANDIN_TORCH;
#                         an unknown release is an error). Another repository: the base, no torch.
#   $REGNAME/torchkit-test/pytorch:<tag>   deliberately wrong images for the verify e2e tests,
#                         each "torch 2.8.0 cu128" with one fault:
#       2.8.0-wrong-cuda   torch 2.8.0+cu126, CUDA 12.6, the cu126 arch list (no sm_100/sm_120)
#       2.8.0-cpu-torch    torch 2.8.0+cpu, version.cuda None, no cuDNN, no arch list
#       2.8.0-no-sm120     the right torch minus sm_120 in its arch list
#       2.8.0-broken-deps  torchvision requires torch==2.7.0 (`pip check` fails)
#   Each carries the label torchkit.test.fake-torch-key: a hash of fake-torch.py, its arguments and
#   the base digest. `up` rebuilds a name whose key differs (an older torch-less stand-in too) and
#   leaves current ones alone.
#
# BuildKit is the one embedded in dockerd. The engine (dockerd, docker CLI, buildx plugin) comes
# from a newer Debian suite through `apt-get download` + `dpkg -x`: nothing from that suite is
# installed. containerd, runc and tini come from the host's own (bookworm) packages. A local
# docker-registry serves as the docker.io mirror, so names such as
# pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime resolve to local stand-in images.
#
# Usage (as root):
#   ./test-env.sh up       start dockerd + registry, push the base images, run a smoke build,
#                          write $RT/env.sh (source it to point docker/buildx at this daemon)
#   ./test-env.sh verify   the checks a test suite relies on (run `up` first)
#   ./test-env.sh down     stop what `up` started (by pid) and remove the bridge and iptables
#                          rules it added; PURGE=1 also deletes $RT
#   ./test-env.sh status
#
# Settings (environment). `up` saves them in $RT/state.env; later runs with the same RT (up, verify,
# down, status) read them back, and variables set in the environment override them:
#   ENGINE=trixie         trixie: dockerd 26.1.5, BuildKit v0.13.2 (default; stable suite)
#                         sid: dockerd 28.5.2, BuildKit v0.25.2 (moving target)
#                         bookworm: installed docker.io 20.10.24, BuildKit v0.8 (no containerd store)
#   BUILDX_SUITE=         suite for the docker-buildx plugin (default: ENGINE; trixie for bookworm)
#   RT=/var/lib/torchkit-test-env   work dir: engine, logs, pid files, env.sh. Keep it short:
#                         sockets under EXEC must stay within the 107-byte unix socket path limit
#   SOCK=/var/run/docker.sock  DATA=/var/lib/docker  EXEC=/var/run/docker
#   REG=127.0.0.1:5000    local registry (plain HTTP; 127.0.0.0/8 is insecure-by-default)
#   C8D=1                 containerd image store: image/oci/docker exporters and push work
#   MIRROR=1              daemon.json "registry-mirrors": ["http://$REG"]
#   CDI=0                 1: CDI on, with a test device torchkit.test/gpu=h100 ($RT/cdi) that
#                         makes the stand-ins' fake torch see one H100 (Docker 28+ only)
#   BRIDGE=               own bridge with NAT rules (side-by-side with another dockerd)
#   BRIDGE_CIDR=172.30.0.1/24
#   NS=                   containerd namespace for this dockerd (only matters when it shares a
#                         system containerd with another dockerd)
#   STANDIN=0             1: build the python stand-ins (debootstrap once, about 1-2 min; then
#                         a docker build per fake torch, a few seconds)
#   STANDIN_REFS="pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime"
#                         space-separated Docker Hub names served by stand-ins (see above). Names
#                         with the same fake torch (runtime and devel) are one image.
#                         STANDIN_REF (one name, the old setting) is used when STANDIN_REFS is not set
#   FAKE_TORCH=<dir of this script>/fake-torch.py
#   STANDIN_PKGS="python3 python3-pip python3-venv python-is-python3"
#   DEBIAN_MIRROR=http://deb.debian.org/debian
#   DOCKERD_ARGS=         extra dockerd flags
#   VERIFY_PYPI=1         verify: also check PyPI access from RUN (needs the stand-in)
#   PURGE=0               down: 1 also deletes $RT
#
# Side by side with a dockerd that already owns /var/run/docker.sock, docker0 and :5000:
#   export RT=/var/lib/tk
#   SOCK=$RT/docker.sock DATA=$RT/data EXEC=$RT/exec BRIDGE=tkbr0 REG=127.0.0.1:5001 \
#     STANDIN=1 ./test-env.sh up
#   ./test-env.sh verify && ./test-env.sh down
set -euo pipefail

ACTION=${1:-up}
RT=${RT:-/var/lib/torchkit-test-env}
# STANDIN_REF (singular) from the environment still wins over a STANDIN_REFS saved by an earlier up
ENV_STANDIN_REFS=${STANDIN_REFS:-} ENV_STANDIN_REF=${STANDIN_REF:-}
# Settings an earlier `up` saved are the defaults, so a re-run (or verify/down) acts on the same
# daemon; variables set in the environment win. The STARTED_*/ADDED_* flags always come from the file.
if [ -f "$RT/state.env" ]; then
  while IFS= read -r line; do
    k=${line%%=*}
    case $k in STARTED_*|ADDED_*) ;; *) [ -n "${!k+x}" ] && continue ;; esac
    eval "$line"
  done < "$RT/state.env"
fi
ENGINE=${ENGINE:-trixie}
BUILDX_SUITE=${BUILDX_SUITE:-$([ "$ENGINE" = bookworm ] && echo trixie || echo "$ENGINE")}
SOCK=${SOCK:-/var/run/docker.sock}
DATA=${DATA:-/var/lib/docker}
EXEC=${EXEC:-/var/run/docker}
REG=${REG:-127.0.0.1:5000}
C8D=${C8D:-1}
MIRROR=${MIRROR:-1}
CDI=${CDI:-0}
BRIDGE=${BRIDGE:-}
BRIDGE_CIDR=${BRIDGE_CIDR:-172.30.0.1/24}
NS=${NS:-}
STANDIN=${STANDIN:-0}
if [ -z "$ENV_STANDIN_REFS" ] && [ -n "$ENV_STANDIN_REF" ]; then STANDIN_REFS=$ENV_STANDIN_REF; fi
STANDIN_REFS=${STANDIN_REFS:-${STANDIN_REF:-pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime}}
read -r -a STANDIN_LIST <<< "$STANDIN_REFS"
[ "${#STANDIN_LIST[@]}" -gt 0 ] || { echo "STANDIN_REFS is empty" >&2; exit 2; }
STANDIN_REFS="${STANDIN_LIST[*]}"
STANDIN_REF=${STANDIN_LIST[0]}        # the first name: the one verify's PyPI check builds FROM
STANDIN_PKGS=${STANDIN_PKGS:-python3 python3-pip python3-venv python-is-python3}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DOCKERD_ARGS=${DOCKERD_ARGS:-}
REGNAME=localhost:${REG##*:}          # how images are tagged for the local registry
export DEBIAN_FRONTEND=noninteractive

T0=$(date +%s%N)
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
fmt() { printf '%d.%02ds' $(($1 / 1000)) $(($1 % 1000 / 10)); }
log() { printf '[%8s] %s\n' "$(fmt "$(ms "$T0")")" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
TIMINGS=()
record() { TIMINGS+=("$(printf '%-46s %8s  %s' "$1" "$(fmt "$2")" "$3")"); log "$1: $(fmt "$2") $3"; }
timed() {  # timed LABEL cmd...: an `up` step; any failing command aborts the script (set -e)
  local label=$1 s; shift; s=$(date +%s%N); STEP=$label
  "$@"
  record "$label" "$(ms "$s")" ok
}
check() {  # check LABEL cmd...: a `verify` check; runs under set -e in a subshell, failures are counted
  local label=$1 s rc; shift; s=$(date +%s%N)
  set +e; ( set -e; "$@" ); rc=$?; set -e
  record "$label" "$(ms "$s")" "$([ $rc = 0 ] && echo PASS || echo "FAIL (rc=$rc)")"
  [ $rc = 0 ] || FAILS=$((FAILS + 1))
}
STEP=
trap 'rc=$?; [ $rc = 0 ] || [ -z "$STEP" ] || log "failed (rc=$rc) during: $STEP; logs in $RT"' EXIT
ping_daemon() { curl -fsS --max-time 2 --unix-socket "$SOCK" http://localhost/_ping >/dev/null 2>&1; }
ping_registry() { curl -fsS --max-time 2 "http://$REG/v2/" >/dev/null 2>&1; }
# repository path of a Docker Hub name inside a mirror: "pytorch/pytorch:x" -> "pytorch/pytorch:x", "python:3" -> "library/python:3"
hub_path() {
  local r=${1#docker.io/}; r=${r#index.docker.io/}
  case "${r%%:*}" in */*) echo "$r" ;; *) echo "library/$r" ;; esac
}
pid_is() {  # pid_is PIDFILE NAME: the pid in PIDFILE is alive and its command is NAME
  # (a process, not a thread of another one: /proc/<tid> answers too, with its own comm)
  local p; p=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$p" ] && [ -r "/proc/$p/comm" ] && [ "$(cat "/proc/$p/comm")" = "$2" ] \
    && [ "$(awk '/^Tgid:/ {print $2}' "/proc/$p/status" 2>/dev/null)" = "$p" ]
}
save_state() {
  { for v in ENGINE BUILDX_SUITE SOCK DATA EXEC REG C8D MIRROR BRIDGE BRIDGE_CIDR NS STANDIN STANDIN_REFS STANDIN_REF REGNAME; do
      printf '%s=%q\n' "$v" "${!v}"; done
    printf 'STARTED_DOCKERD=%q\nSTARTED_REGISTRY=%q\nADDED_BRIDGE=%q\n' "${STARTED_DOCKERD:-0}" "${STARTED_REGISTRY:-0}" "${ADDED_BRIDGE:-0}"
  } > "$RT/state.env"
}

# ---------------------------------------------------------------------------------------------
install_host_packages() {
  local need="containerd runc tini iptables docker-registry curl ca-certificates" missing p
  [ "$ENGINE" = bookworm ] && need="$need docker.io"
  # python3: scripts/fake-torch.py and the registry reads of the stand-ins; python3-venv: the
  # venv of tests/verify_script.rs
  [ "$STANDIN" = 1 ] && need="$need debootstrap python3 python3-venv"
  [ -n "$BRIDGE" ] && need="$need iproute2"
  missing=$(for p in $need; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || echo "$p"; done)
  if [ -n "$missing" ]; then
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
}

suite_download() {  # suite_download SUITE DEST PKG...: download .debs from SUITE with private apt state, dpkg -x into DEST
  local suite=$1 dest=$2 a=$RT/apt-$1; shift 2
  mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/debs" "$dest"
  echo "deb $DEBIAN_MIRROR $suite main" > "$a/sources.list"
  local ao=(-o "Dir::Etc::sourcelist=$a/sources.list" -o "Dir::Etc::sourceparts=-"
            -o "Dir::State::Lists=$a/lists" -o "Dir::Cache=$a/cache" -o "APT::Sandbox::User=root")
  apt-get -qq "${ao[@]}" update
  (cd "$a/debs" && apt-get -qq "${ao[@]}" download "$@")
  for d in "$a"/debs/*.deb; do dpkg -x "$d" "$dest"; done
}

fetch_engine() {
  mkdir -p "$RT/bin" "$RT/client" "$RT/docker-config/cli-plugins"
  if [ "$ENGINE" = bookworm ]; then
    X=/
    ln -sf /usr/sbin/dockerd /usr/sbin/docker-proxy "$RT/bin/"
    ln -sf /usr/bin/docker "$RT/client/docker"
    C8D=0   # 20.10 has no containerd image store
  else
    X=$RT/engine-$ENGINE
    [ -x "$X/usr/sbin/dockerd" ] || suite_download "$ENGINE" "$X" docker.io docker-cli docker-buildx
    ln -sf "$X/usr/sbin/dockerd" "$X/usr/sbin/docker-proxy" "$RT/bin/"
    ln -sf "$X/usr/bin/docker" "$RT/client/docker"
  fi
  local bx=$RT/engine-$BUILDX_SUITE
  [ -x "$bx/usr/libexec/docker/cli-plugins/docker-buildx" ] || suite_download "$BUILDX_SUITE" "$bx" docker-buildx
  ln -sf "$bx/usr/libexec/docker/cli-plugins/docker-buildx" "$RT/docker-config/cli-plugins/docker-buildx"
  # containerd, runc, docker-init always from the host (the trixie/sid runc needs GLIBC_2.38)
  ln -sf /usr/bin/containerd /usr/bin/containerd-shim-runc-v2 /usr/sbin/runc "$RT/bin/"
  ln -sf /usr/bin/tini-static "$RT/bin/docker-init"
  [ -f "$RT/docker-config/config.json" ] || echo '{}' > "$RT/docker-config/config.json"
  log "engine: $("$RT/bin/dockerd" --version); buildx: $("$RT/docker-config/cli-plugins/docker-buildx" version)"
}

add_bridge() {  # own bridge + NAT, for a dockerd started with --iptables=false next to another one
  [ -n "$BRIDGE" ] || return 0
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$BRIDGE_CIDR" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    ADDED_BRIDGE=1
  fi
  local c=(-m comment --comment "torchkit-test-env:$BRIDGE")
  : > "$RT/iptables.rules"
  local rules=("-t nat POSTROUTING -s $BRIDGE_CIDR ! -o $BRIDGE -j MASQUERADE"
               "-t filter FORWARD -i $BRIDGE -j ACCEPT"
               "-t filter FORWARD -o $BRIDGE -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
  local r t chain spec
  for r in "${rules[@]}"; do
    # shellcheck disable=SC2086
    set -- $r; t=$2; chain=$3; shift 3; spec=("$@" "${c[@]}")
    iptables -t "$t" -C "$chain" "${spec[@]}" 2>/dev/null || iptables -t "$t" -I "$chain" "${spec[@]}"
    printf '%s\n' "$r" >> "$RT/iptables.rules"
  done
  echo 1 > /proc/sys/net/ipv4/ip_forward
  DOCKERD_ARGS="--bridge $BRIDGE --iptables=false --ip-masq=false --userland-proxy=false $DOCKERD_ARGS"
}

start_dockerd() {
  if ping_daemon; then log "a daemon already answers on $SOCK; using it"; return 0; fi
  local cfg=() features=()
  [ "$C8D" = 1 ] && features+=('"containerd-snapshotter": true')
  if [ "$CDI" = 1 ]; then
    # CDI devices for the verify stage's GPU path (`--gpus torchkit.test/gpu=h100`): each
    # makes the stand-in's fake torch see one GPU (TORCHKIT_FAKE_GPUS, scripts/fake-torch.py),
    # as a real GPU device makes the driver visible: an H100, and an A100 that a spec for
    # H100s must refuse. BuildKit v0.20+ (Docker 28) only.
    mkdir -p "$RT/cdi"
    cat > "$RT/cdi/torchkit-test.yaml" <<'CDI'
cdiVersion: "0.6.0"
kind: torchkit.test/gpu
devices:
  - name: h100
    # dockerd 28.5 cannot grant builds the `device` entitlement: BuildKit attaches only
    # devices it may use without one.
    annotations:
      org.mobyproject.buildkit.device.autoallow: "true"
    containerEdits:
      env:
        - TORCHKIT_FAKE_GPUS=NVIDIA H100 80GB HBM3:9.0
  - name: a100
    annotations:
      org.mobyproject.buildkit.device.autoallow: "true"
    containerEdits:
      env:
        - TORCHKIT_FAKE_GPUS=NVIDIA A100-SXM4-80GB:8.0
CDI
    features+=('"cdi": true')
    cfg+=("\"cdi-spec-dirs\": [\"$RT/cdi\"]")
  fi
  [ "${#features[@]}" -gt 0 ] && cfg+=("\"features\": {$(IFS=,; echo "${features[*]}")}")
  [ "$MIRROR" = 1 ] && cfg+=("\"registry-mirrors\": [\"http://$REG\"]")
  (IFS=,; echo "{${cfg[*]}}") > "$RT/daemon.json"
  mkdir -p "$DATA" "$EXEC"
  # A pid file left by a dockerd that is gone (a machine restart reuses its pid for another
  # process): dockerd refuses to start while the pid in it is alive, whatever it runs.
  # The same for its managed containerd, which dockerd would take for still running.
  if [ -e "$RT/dockerd.pid" ] && ! pid_is "$RT/dockerd.pid" dockerd; then
    rm -f "$RT/dockerd.pid"
  fi
  if [ -e "$EXEC/containerd/containerd.pid" ] && ! pid_is "$EXEC/containerd/containerd.pid" containerd; then
    rm -f "$EXEC/containerd/containerd.pid"
  fi
  # shellcheck disable=SC2086
  PATH=$RT/bin:/usr/sbin:/usr/bin:/sbin:/bin setsid nohup "$RT/bin/dockerd" \
    --config-file "$RT/daemon.json" -H "unix://$SOCK" --data-root "$DATA" --exec-root "$EXEC" \
    --pidfile "$RT/dockerd.pid" ${NS:+--containerd-namespace "$NS" --containerd-plugins-namespace "$NS-plugins"} \
    $DOCKERD_ARGS > "$RT/dockerd.log" 2>&1 < /dev/null &
  local launcher=$! i
  for i in $(seq 1 300); do
    ping_daemon && break
    kill -0 "$launcher" 2>/dev/null || { tail -20 "$RT/dockerd.log" >&2; die "dockerd exited"; }
    [ "$i" = 300 ] && { tail -20 "$RT/dockerd.log" >&2; die "dockerd did not answer in 30 s"; }
    sleep 0.1
  done
  STARTED_DOCKERD=1
}

start_registry() {
  if ping_registry; then log "a registry already answers on $REG; using it"; return 0; fi
  mkdir -p "$RT/registry-data"
  cat > "$RT/registry.yml" <<EOF
version: 0.1
log: {level: info, fields: {service: registry}}
storage:
  filesystem: {rootdirectory: $RT/registry-data}
  delete: {enabled: true}
http: {addr: $REG}
EOF
  setsid nohup docker-registry serve "$RT/registry.yml" > "$RT/registry.log" 2>&1 < /dev/null &
  echo $! > "$RT/registry.pid"
  local i
  for i in $(seq 1 100); do ping_registry && break; sleep 0.1; done
  ping_registry || { tail -20 "$RT/registry.log" >&2; die "registry did not answer on $REG"; }
  STARTED_REGISTRY=1
}

write_env() {
  cat > "$RT/env.sh" <<EOF
# source this file: docker/buildx on PATH then talk to the test daemon and find the Debian buildx plugin
export DOCKER_HOST=unix://$SOCK
export DOCKER_CONFIG=$RT/docker-config
export DOCKER_BUILDKIT=1
export BUILDKIT_TEST_REGISTRY=$REGNAME
command -v docker >/dev/null 2>&1 || export PATH=$RT/client:\$PATH
EOF
  if [ "$CDI" = 1 ]; then
    echo "export TK_TEST_CDI_DEVICE=torchkit.test/gpu=h100  # the daemon's test CDI device" >> "$RT/env.sh"
  fi
}

in_registry() {  # in_registry REPO TAG
  curl -fsS -o /dev/null -H 'Accept: application/vnd.oci.image.index.v1+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://$REG/v2/$1/manifests/$2" 2>/dev/null
}

manifest_digest() {  # manifest_digest REPO TAG: the registry's Docker-Content-Digest for REPO:TAG
  curl -fsSI -H 'Accept: application/vnd.oci.image.index.v1+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://$REG/v2/$1/manifests/$2" 2>/dev/null |
    tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: *//p'
}

busybox_base() {  # a ~2 MB image from Debian's busybox-static; no pull from any hub
  if in_registry base 1; then log "$REGNAME/base:1 already in the registry"; return 0; fi
  (cd "$RT" && { ls busybox-static_*.deb >/dev/null 2>&1 || apt-get download -qq busybox-static 2>/dev/null ||
     { apt-get update -qq && apt-get download -qq busybox-static; }; })
  local r=$RT/busybox-rootfs
  rm -rf "$RT/bbx" "$r"; mkdir -p "$RT/bbx" "$r"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,proc,sys,dev}
  dpkg -x "$RT"/busybox-static_*.deb "$RT/bbx"; cp "$RT/bbx/bin/busybox" "$r/bin/"
  chroot "$r" /bin/busybox --install -s
  echo 'root:x:0:0:root:/root:/bin/sh' > "$r/etc/passwd"; echo 'root:x:0:' > "$r/etc/group"; chmod 1777 "$r/tmp"
  tar -C "$r" -c . | docker import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'LABEL org.opencontainers.image.description="busybox from Debian busybox-static (torchkit test base)"' \
    - "$REGNAME/base:1" >/dev/null
  docker push -q "$REGNAME/base:1" >/dev/null
  # the same image as docker.io/library/busybox:latest, for `FROM busybox` through the mirror
  docker tag "$REGNAME/base:1" "$REGNAME/library/busybox:latest"
  docker push -q "$REGNAME/library/busybox:latest" >/dev/null
}

# --- python stand-ins: Debian + python3 + a FAKE torch (scripts/fake-torch.py) -------------------
# The fake torch of each official tag, from the tag (<torch>-cuda<X.Y>-cudnn<N>-<flavor>): cuDNN as
# torch.backends.cudnn.version() reports it, torchvision, torchaudio and the wheel's
# TORCH_CUDA_ARCH_LIST, as src/matrix/matrix.toml has them (shared/reference/cuda-torch-matrix.md
# sections 5.1 and 6.1). Add a row to serve another release.
#  torch  cuda cudnn torchvision torchaudio arch list
STANDIN_TORCH='
2.5.1  11.8 90100 0.20.1 2.5.1  3.7;5.0;6.0;7.0;7.5;8.0;8.6;9.0
2.7.0  11.8 90100 0.22.0 2.7.0  3.7;5.0;6.0;7.0;7.5;8.0;8.6;9.0
2.7.0  12.6 90501 0.22.0 2.7.0  5.0;6.0;7.0;7.5;8.0;8.6;9.0
2.7.0  12.8 90701 0.22.0 2.7.0  7.5;8.0;8.6;9.0;10.0;12.0+PTX
2.7.1  11.8 90100 0.22.1 2.7.1  3.7;5.0;6.0;7.0;7.5;8.0;8.6;9.0
2.7.1  12.6 90501 0.22.1 2.7.1  5.0;6.0;7.0;7.5;8.0;8.6;9.0
2.7.1  12.8 90701 0.22.1 2.7.1  7.5;8.0;8.6;9.0;10.0;12.0+PTX
2.8.0  12.6 91002 0.23.0 2.8.0  5.0;6.0;7.0;7.5;8.0;8.6;9.0
2.8.0  12.8 91002 0.23.0 2.8.0  7.0;7.5;8.0;8.6;9.0;10.0;12.0
2.8.0  12.9 91002 0.23.0 2.8.0  7.0;7.5;8.0;8.6;9.0;10.0;12.0+PTX
2.9.0  12.6 91002 0.24.0 2.9.0  5.0;6.0;7.0;7.5;8.0;8.6;9.0
2.9.0  12.8 91002 0.24.0 2.9.0  7.0;7.5;8.0;8.6;9.0;10.0;12.0
2.9.0  13.0 91300 0.24.0 2.9.0  7.5;8.0;8.6;9.0;10.0;12.0+PTX
2.9.1  12.6 91002 0.24.1 2.9.1  5.0;6.0;7.0;7.5;8.0;8.6;9.0
2.9.1  12.8 91002 0.24.1 2.9.1  7.0;7.5;8.0;8.6;9.0;10.0;12.0
2.9.1  13.0 91300 0.24.1 2.9.1  7.5;8.0;8.6;9.0;10.0;12.0+PTX
2.10.0 12.6 91002 0.25.0 2.10.0 5.0;6.0;7.0;7.5;8.0;8.6;9.0
2.10.0 12.8 91002 0.25.0 2.10.0 7.0;7.5;8.0;8.6;9.0;10.0;12.0
2.10.0 13.0 91501 0.25.0 2.10.0 7.5;8.0;8.6;9.0;10.0;12.0+PTX
2.11.0 12.6 91002 0.26.0 2.11.0 5.0;6.0;7.0;7.5;8.0;8.6;9.0
2.11.0 12.8 91701 0.26.0 2.11.0 7.5;8.0;8.6;9.0;10.0;12.0
2.11.0 13.0 91900 0.26.0 2.11.0 7.5;8.0;8.6;9.0;10.0;12.0
2.12.0 12.6 91002 0.27.0 2.11.0 5.0;6.0;7.0;7.5;8.0;8.6;9.0
2.12.0 13.0 92000 0.27.0 2.11.0 7.5;8.0;8.6;9.0;10.0;12.0
2.12.0 13.2 92000 0.27.0 2.11.0 7.5;8.0;8.6;9.0;10.0;12.0
2.12.1 12.6 91002 0.27.1 2.11.0 5.0;6.0;7.0;7.5;8.0;8.6;9.0
2.12.1 13.0 92000 0.27.1 2.11.0 7.5;8.0;8.6;9.0;10.0;12.0
2.12.1 13.2 92000 0.27.1 2.11.0 7.5;8.0;8.6;9.0;10.0;12.0
2.13.0 12.6 91002 0.28.0 2.11.0 5.0;6.0;7.0;7.5;8.0;8.6;9.0
2.13.0 13.0 92000 0.28.0 2.11.0 7.5;8.0;8.6;9.0;10.0;12.0
2.13.0 13.2 92000 0.28.0 2.11.0 7.5;8.0;8.6;9.0;10.0;12.0
2.14.0 12.6 91002 0.29.0 2.11.0 5.0;6.0;7.0;7.5;8.0;8.6;9.0
2.14.0 13.0 92400 0.29.0 2.11.0 7.5;8.0;8.6;9.0;10.0;12.0
2.14.0 13.2 92400 0.29.0 2.11.0 7.5;8.0;8.6;9.0;10.0;12.0
2.14.1 12.6 91002 0.29.1 2.11.0 5.0;6.0;7.0;7.5;8.0;8.6;9.0
2.14.1 13.0 92400 0.29.1 2.11.0 7.5;8.0;8.6;9.0;10.0;12.0
2.14.1 13.2 92400 0.29.1 2.11.0 7.5;8.0;8.6;9.0;10.0;12.0
2.15.0 13.2 92600 0.29.2 2.11.1 7.5;8.0;8.6;9.0;10.0;12.0
'
PYBASE_REPO=torchkit-test/python-base PYBASE_TAG=1
FAKE_TORCH=${FAKE_TORCH:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/fake-torch.py}
# Deliberately wrong images for the verify stage's end-to-end tests: name (under
# $REGNAME/torchkit-test/pytorch) -> fake-torch.py arguments, each "as 2.8.0 cu128" with one fault.
WRONG_STANDINS=(2.8.0-wrong-cuda 2.8.0-cpu-torch 2.8.0-no-sm120 2.8.0-broken-deps)

arch_flags() {  # arch_flags "7.0;9.0;12.0+PTX" -> "sm_70 sm_90 sm_120 compute_120"
  local e out=() ptx=()
  IFS=';' read -r -a list <<< "$1"
  for e in "${list[@]}"; do
    case $e in *+PTX) e=${e%+PTX}; ptx+=("compute_${e/./}") ;; esac
    out+=("sm_${e/./}")
  done
  echo "${out[*]} ${ptx[*]}" | sed 's/ *$//'
}

torch_args() {  # torch_args RELEASE CUDA: fake-torch.py arguments of that official image (one per line)
  local row
  row=$(awk -v t="$1" -v c="$2" '$1 == t && $2 == c' <<< "$STANDIN_TORCH")
  [ -n "$row" ] || { log "ERROR: no fake torch for torch $1 CUDA $2: add a row to STANDIN_TORCH in $0 (known: $(awk 'NF {printf "%s cuda %s, ", $1, $2}' <<< "$STANDIN_TORCH" | sed "s/, $//"))"; return 1; }
  # shellcheck disable=SC2086
  set -- $row
  printf '%s\n' --torch "$1+cu${2/./}" --cuda "$2" --cudnn "$3" --torchvision "$4" --torchaudio "$5" --arch "$(arch_flags "$6")"
}

standin_args() {  # standin_args PATH: fake-torch.py arguments for a registry path ("" = python only)
  local repo=${1%%:*} tag=${1##*:} t c n
  case $repo in
    pytorch/pytorch)
      [[ $tag =~ ^([0-9]+\.[0-9]+\.[0-9]+)-cuda([0-9]+\.[0-9]+)-cudnn([0-9]+)-(runtime|devel)$ ]] ||
        { log "ERROR: stand-in $1: the tag is not <torch>-cuda<X.Y>-cudnn<N>-<runtime|devel>"; return 1; }
      t=${BASH_REMATCH[1]} c=${BASH_REMATCH[2]} n=${BASH_REMATCH[3]}
      local args; args=$(torch_args "$t" "$c") || return 1
      local cudnn; cudnn=$(sed -n '/^--cudnn$/{n;p}' <<< "$args")
      [ $((cudnn >= 90000 ? cudnn / 10000 : cudnn / 1000)) = "$n" ] ||
        { log "ERROR: stand-in $1: torch $t CUDA $c ships cuDNN $cudnn, not cuDNN $n"; return 1; }
      printf '%s\n' "$args" ;;
    torchkit-test/pytorch)
      local ok; ok=$(torch_args 2.8.0 12.8) || return 1
      case $tag in
        2.8.0-wrong-cuda) torch_args 2.8.0 12.6 ;;
        2.8.0-cpu-torch) printf '%s\n' --torch 2.8.0+cpu --cuda none --cudnn none --arch "" --torchvision 0.23.0 --torchaudio 2.8.0 ;;
        2.8.0-no-sm120) printf '%s\n' "$ok" | sed 's/ sm_120//' ;;
        2.8.0-broken-deps) printf '%s\n' "$ok" --torchvision-requires torch==2.7.0 ;;
        *) log "ERROR: no wrong stand-in $tag (known: ${WRONG_STANDINS[*]})"; return 1 ;;
      esac ;;
    *) ;;  # any other name: the python base with no torch
  esac
}

registry_label() {  # registry_label REPO TAG LABEL: the label in the image config in the registry ('' if none)
  python3 - "$REG" "$1" "$2" "$3" <<'EOF'
import json, sys, urllib.request
reg, repo, tag, label = sys.argv[1:]
kinds = ["application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
         "application/vnd.docker.distribution.manifest.list.v2+json",
         "application/vnd.docker.distribution.manifest.v2+json"]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
def get(kind, ref):
    req = urllib.request.Request("http://%s/v2/%s/%s/%s" % (reg, repo, kind, ref), headers={"Accept": ", ".join(kinds)})
    with opener.open(req, timeout=10) as r:
        return json.load(r)
try:
    m = get("manifests", tag)
    if "manifests" in m:  # an index: the linux/amd64 image, not an attestation
        m = get("manifests", [d for d in m["manifests"] if d.get("platform", {}).get("architecture") == "amd64"][0]["digest"])
    print(((get("blobs", m["config"]["digest"]).get("config") or {}).get("Labels") or {}).get(label, ""))
except Exception:
    print("")
EOF
}

python_base() {  # Debian bookworm minbase + STANDIN_PKGS, imported once as $REGNAME/$PYBASE_REPO:$PYBASE_TAG
  if [ "$(registry_label "$PYBASE_REPO" "$PYBASE_TAG" torchkit.test.packages)" = "$STANDIN_PKGS" ]; then
    log "$REGNAME/$PYBASE_REPO:$PYBASE_TAG already in the registry"; return 0
  fi
  local r=$RT/standin-rootfs
  rm -rf "$r"
  debootstrap --variant=minbase --include="$(echo "$STANDIN_PKGS" | tr ' ' ',')" \
    bookworm "$r" "$DEBIAN_MIRROR" > "$RT/debootstrap.log" 2>&1 || { tail -20 "$RT/debootstrap.log" >&2; return 1; }
  rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb
  # pip in the real image (conda python) installs into the system interpreter; allow the same here (PEP 668)
  rm -f "$r"/usr/lib/python3*/EXTERNALLY-MANAGED
  # where `pip install` puts packages as root (Debian: /usr/local/lib/python3.X/dist-packages)
  local purelib
  purelib=$(chroot "$r" python3 -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
  tar -C "$r" -c . | docker import \
    -c 'CMD ["/bin/bash"]' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'ENV LANG=C.UTF-8' \
    -c 'LABEL org.opencontainers.image.title="torchkit test python base (Debian bookworm minbase + python3)"' \
    -c 'LABEL org.opencontainers.image.description="The base of the torchkit test stand-ins. No torch, no CUDA. For offline tests only."' \
    -c "LABEL torchkit.test.packages=\"$STANDIN_PKGS\"" -c "LABEL torchkit.test.purelib=\"$purelib\"" \
    - "$REGNAME/$PYBASE_REPO:$PYBASE_TAG" >/dev/null
  docker push -q "$REGNAME/$PYBASE_REPO:$PYBASE_TAG" >/dev/null
  docker image rm "$REGNAME/$PYBASE_REPO:$PYBASE_TAG" >/dev/null
  log "pushed $REGNAME/$PYBASE_REPO:$PYBASE_TAG (site-packages: $purelib)"
}

standin_key() {  # standin_key BASE_DIGEST ARGS: what a stand-in is built from, hashed
  { echo "standin-v2 $1"; printf '%s\n' "$2"; cat "$FAKE_TORCH"; } | sha256sum | cut -c1-32
}

python_standin() {  # every STANDIN_REFS name and the wrong variants: the python base + the right fake torch
  [ -f "$FAKE_TORCH" ] || die "no $FAKE_TORCH"
  python_base
  local base_digest purelib; base_digest=$(manifest_digest "$PYBASE_REPO" "$PYBASE_TAG")
  [ -n "$base_digest" ] || die "$REGNAME/$PYBASE_REPO:$PYBASE_TAG is not in the registry"
  purelib=$(registry_label "$PYBASE_REPO" "$PYBASE_TAG" torchkit.test.purelib)
  [ -n "$purelib" ] || die "$REGNAME/$PYBASE_REPO:$PYBASE_TAG has no torchkit.test.purelib label"
  local paths=() ref path args key name
  for ref in "${STANDIN_LIST[@]}"; do paths+=("$(hub_path "$ref")"); done
  for name in "${WRONG_STANDINS[@]}"; do paths+=("torchkit-test/pytorch:$name"); done
  # check every name first: an unknown release fails before anything is built
  local -A args_of=() built=()
  for path in "${paths[@]}"; do args_of[$path]=$(standin_args "$path") || return 1; done
  local local_tags=() d=$RT/standin-build
  for path in "${paths[@]}"; do
    args=${args_of[$path]}
    key=$(standin_key "$base_digest" "$args")
    if [ "$(registry_label "${path%%:*}" "${path##*:}" torchkit.test.fake-torch-key)" = "$key" ]; then
      log "$REGNAME/$path is current"; continue
    fi
    if [ -n "${built[$key]:-}" ]; then  # the same fake torch under another name: one image
      docker tag "${built[$key]}" "$REGNAME/$path"
    else
      rm -rf "$d"; mkdir -p "$d"
      local what="no torch"
      if [ -n "$args" ]; then
        local a; mapfile -t a <<< "$args"
        python3 "$FAKE_TORCH" "$d/site" "${a[@]}"
        what=$(printf '%s ' "${a[@]}" | sed 's/--//g; s/  */ /g; s/ $//')
      else
        mkdir -p "$d/site"
      fi
      cat > "$d/Dockerfile" <<EOF
FROM $REGNAME/$PYBASE_REPO:$PYBASE_TAG
COPY site/ $purelib/
LABEL org.opencontainers.image.title="TEST STAND-IN with a FAKE torch (scripts/fake-torch.py)"
LABEL org.opencontainers.image.description="Debian bookworm + python3, pip, venv and a fake torch: $what. Not PyTorch, no CUDA. For offline tests only."
LABEL torchkit.test.stand-in="true" torchkit.test.fake-torch="$what" torchkit.test.fake-torch-key="$key"
EOF
      # OCI media types, as the imported stand-in had and the real images have (the classic
      # store can only write Docker's)
      local out=(-t "$REGNAME/$path")
      [ "$C8D" = 1 ] && out=(--output "type=image,name=$REGNAME/$path,oci-mediatypes=true")
      docker build -q --provenance=false "${out[@]}" "$d" > "$RT/standin-build.log" 2>&1 ||
        { cat "$RT/standin-build.log" >&2; return 1; }
      built[$key]=$REGNAME/$path
    fi
    local_tags+=("$REGNAME/$path")
    docker push -q "$REGNAME/$path" >/dev/null
    log "pushed $REGNAME/$path (fake torch: $(docker image inspect -f '{{index .Config.Labels "torchkit.test.fake-torch"}}' "$REGNAME/$path"))"
  done
  # drop the local copies: builds must resolve docker.io/<name> through the registry mirror
  [ "${#local_tags[@]}" = 0 ] || docker image rm "${local_tags[@]}" >/dev/null
}

smoke() {
  mkdir -p "$RT/smoke"; printf 'FROM %s/base:1\nRUN echo buildkit-ok\n' "$REGNAME" > "$RT/smoke/Dockerfile"
  docker build --progress=plain -t torchkit-smoke:1 "$RT/smoke" > "$RT/smoke.log" 2>&1 || { cat "$RT/smoke.log" >&2; return 1; }
  grep -qE 'buildkit-ok|CACHED' "$RT/smoke.log"
}

up() {
  [ "$(id -u)" = 0 ] || die "run as root"
  mkdir -p "$RT"
  timed "host packages (apt)" install_host_packages
  timed "engine ($ENGINE, dpkg -x)" fetch_engine
  timed "bridge + NAT${BRIDGE:+ ($BRIDGE)}" add_bridge
  timed "dockerd until /_ping answers" start_dockerd
  save_state
  timed "registry until /v2/ answers ($REG)" start_registry
  save_state; write_env
  # shellcheck disable=SC1091
  . "$RT/env.sh"
  log "client: $(command -v docker) $(docker version --format '{{.Client.Version}}') -> server $(docker version --format '{{.Server.Version}}')"
  timed "busybox base image -> $REGNAME/base:1" busybox_base
  if [ "$STANDIN" = 1 ]; then timed "python stand-in -> ${STANDIN_LIST[*]}" python_standin; fi
  timed "smoke build FROM $REGNAME/base:1 + RUN" smoke
  printf '%s\n' "${TIMINGS[@]}" | tee "$RT/timings-up.txt"
  log "ready. source $RT/env.sh; stop with: RT=$RT $0 down"
}

# ---------------------------------------------------------------------------------------------
verify() {
  [ -f "$RT/env.sh" ] || die "no $RT/env.sh; run '$0 up' first"
  # shellcheck disable=SC1091
  . "$RT/env.sh"
  local v=$RT/verify; rm -rf "$v"; mkdir -p "$v"; FAILS=0

  daemon_answers() {
    ping_daemon || return 1
    log "server $(docker version --format '{{.Server.Version}}'), client $(docker version --format '{{.Client.Version}}'), $(docker buildx version)"
    docker buildx inspect > "$v/buildx-inspect.txt" 2>&1 || true
    log "buildx: $(grep -m1 -i 'buildkit' "$v/buildx-inspect.txt" | tr -s ' ')"
    log "storage: $(docker info --format '{{.Driver}} {{range .DriverStatus}}{{index . 0}}={{index . 1}} {{end}}')"
  }
  grpc_upgrade() {  # the endpoint a Control-API client (torchkit's driver) dials on the docker socket
    # curl does not speak HTTP/2 after the 101 and waits; its verbose log (stderr) shows the status line
    timeout 1 curl -sv --unix-socket "$SOCK" -X POST -H 'Connection: Upgrade' -H 'Upgrade: h2c' \
      http://localhost/grpc > /dev/null 2> "$v/grpc.txt" || true
    grep -q '^< HTTP/1.1 101 ' "$v/grpc.txt"
  }
  from_standin() {  # from_standin REF N: FROM the official name, served by the local registry acting as docker.io mirror
    local ref=$1 d=$v/py-$2 want run expect
    want=$(standin_args "$(hub_path "$ref")" | sed -n '/^--torch$/{n;p}')
    if [ -n "$want" ]; then
      run='python3 -c "import torch; print(\"torch\", torch.__version__)"' expect="torch $want"
    else
      run='python3 -c "print(1)"' expect=1
    fi
    mkdir -p "$d"
    printf 'FROM %s\nRUN %s\n' "$ref" "$run" > "$d/Dockerfile"
    local n0; n0=$(wc -l < "$RT/registry.log" 2>/dev/null || echo 0)
    timeout 300 docker build --progress=plain --no-cache -t "torchkit-verify-py:$2" "$d" > "$d.log" 2>&1 ||
      { tail -20 "$d.log" >&2; return 1; }
    sed -nE 's/^#[0-9]+ [0-9.]+ //p' "$d.log" | grep -qxF "$expect" || { tail -20 "$d.log" >&2; return 1; }
    local path; path=$(hub_path "$ref")
    tail -n +"$((n0 + 1))" "$RT/registry.log" 2>/dev/null | grep -o "\"[A-Z]* /v2/${path%%:*}/[^\"]*\"" | sort | uniq -c > "$d.mirror-requests.txt" || true
    log "mirror requests: $(tr -s ' ' < "$d.mirror-requests.txt" | tr '\n' ';')"
  }
  standin_current() {  # every stand-in (STANDIN_REFS and the wrong variants) carries the current fake torch
    local base path paths=() ref name key have stale=0
    base=$(manifest_digest "$PYBASE_REPO" "$PYBASE_TAG")
    [ -n "$base" ] || { log "$REGNAME/$PYBASE_REPO:$PYBASE_TAG: not in the registry"; return 1; }
    for ref in "${STANDIN_LIST[@]}"; do paths+=("$(hub_path "$ref")"); done
    for name in "${WRONG_STANDINS[@]}"; do paths+=("torchkit-test/pytorch:$name"); done
    for path in "${paths[@]}"; do
      key=$(standin_key "$base" "$(standin_args "$path")")
      have=$(registry_label "${path%%:*}" "${path##*:}" torchkit.test.fake-torch-key)
      if [ "$have" = "$key" ]; then
        log "$REGNAME/$path: $(registry_label "${path%%:*}" "${path##*:}" torchkit.test.fake-torch)"
      else
        log "$REGNAME/$path: not the current stand-in (key '$have', want $key): run up"; stale=1
      fi
    done
    [ "$stale" = 0 ]
  }
  from_busybox() {  # docker.io/library/busybox through the mirror (the busybox-static base re-tagged)
    mkdir -p "$v/bb"; printf 'FROM busybox\nRUN busybox | head -1\n' > "$v/bb/Dockerfile"
    docker build --progress=plain --no-cache -t torchkit-verify-bb:1 "$v/bb" > "$v/bb.log" 2>&1 ||
      { tail -20 "$v/bb.log" >&2; return 1; }
    grep -q 'BusyBox v' "$v/bb.log"
  }
  oci_export() {
    mkdir -p "$v/oci"; printf 'FROM %s/base:1\nRUN echo oci > /oci.txt\n' "$REGNAME" > "$v/oci/Dockerfile"
    docker buildx build --progress=plain --output "type=oci,dest=$v/out.oci.tar" "$v/oci" > "$v/oci.log" 2>&1 ||
      { tail -20 "$v/oci.log" >&2; return 1; }
    tar -tf "$v/out.oci.tar" > "$v/oci.list"
    grep -qx 'oci-layout' "$v/oci.list" && grep -qx 'index.json' "$v/oci.list"
    log "oci tar: $(stat -c %s "$v/out.oci.tar") bytes, $(wc -l < "$v/oci.list") entries"
  }
  tar_export() {
    mkdir -p "$v/tar"; printf 'FROM %s/base:1\nRUN echo tar > /tar.txt\n' "$REGNAME" > "$v/tar/Dockerfile"
    docker buildx build --progress=plain --output "type=tar,dest=$v/out.tar" "$v/tar" > "$v/tar.log" 2>&1 ||
      { tail -20 "$v/tar.log" >&2; return 1; }
    tar -tf "$v/out.tar" > "$v/tar.list"
    grep -qx 'tar.txt' "$v/tar.list"
  }
  push_image() {
    docker buildx build --progress=plain --output "type=image,name=$REGNAME/torchkit-verify:1,push=true" "$v/oci" > "$v/push.log" 2>&1 ||
      { tail -20 "$v/push.log" >&2; return 1; }
    in_registry torchkit-verify 1
  }
  pypi_https() {  # PyPI is reachable from RUN over HTTPS only, trusting the host CA bundle (passed as a secret)
    mkdir -p "$v/pypi"
    cat > "$v/pypi/Dockerfile" <<EOF
FROM $STANDIN_REF
RUN --mount=type=secret,id=hostca PIP_CERT=/run/secrets/hostca pip download --no-deps -d /dl six==1.16.0 && ls /dl
EOF
    timeout 300 docker buildx build --progress=plain --no-cache --secret id=hostca,src=/etc/ssl/certs/ca-certificates.crt \
      -t torchkit-verify-pypi:1 "$v/pypi" > "$v/pypi.log" 2>&1 || { tail -20 "$v/pypi.log" >&2; return 1; }
    grep -q 'six-1.16.0-py2.py3-none-any.whl' "$v/pypi.log"
  }

  check "daemon answers (/_ping, version, buildx)" daemon_answers
  check "/grpc answers 101 Switching Protocols" grpc_upgrade
  check "FROM busybox (mirror) + RUN" from_busybox
  if [ "$STANDIN" = 1 ]; then
    local i=0 ref
    for ref in "${STANDIN_LIST[@]}"; do
      i=$((i + 1)); check "FROM $ref (mirror) + RUN python3 (import torch)" from_standin "$ref" "$i"
    done
    check "stand-ins carry the current fake torch (${#STANDIN_LIST[@]} + ${#WRONG_STANDINS[@]} wrong)" standin_current
  else
    log "skipped: FROM $STANDIN_REF (set STANDIN=1 at 'up')"
  fi
  if [ "$C8D" = 1 ]; then
    check "buildx --output type=oci,dest=..." oci_export
    check "buildx --output type=image,push=true" push_image
  else
    check "buildx --output type=tar,dest=... (no containerd store)" tar_export
  fi
  if [ "$STANDIN" = 1 ] && [ "${VERIFY_PYPI:-1}" = 1 ]; then check "pip download from PyPI (HTTPS, host CA secret)" pypi_https; fi
  printf '%s\n' "${TIMINGS[@]}" | tee "$RT/timings-verify.txt"
  [ "$FAILS" = 0 ] || die "verify: $FAILS check(s) failed (logs in $v)"
  log "verify: all checks passed"
}

# ---------------------------------------------------------------------------------------------
down() {
  [ "$(id -u)" = 0 ] || die "run as root"
  local p i
  if [ "${STARTED_DOCKERD:-0}" = 1 ] && pid_is "$RT/dockerd.pid" dockerd; then
    p=$(cat "$RT/dockerd.pid"); kill "$p"
    for i in $(seq 1 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && die "dockerd $p still running after 30 s"
    log "stopped dockerd $p"
  fi
  if [ "${STARTED_REGISTRY:-0}" = 1 ] && pid_is "$RT/registry.pid" docker-registry; then
    p=$(cat "$RT/registry.pid"); kill "$p"
    for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    log "stopped registry $p"
  fi
  if [ -n "${BRIDGE:-}" ] && [ -f "$RT/iptables.rules" ]; then
    local r t chain
    while read -r r; do
      # shellcheck disable=SC2086
      set -- $r; t=$2; chain=$3; shift 3
      iptables -t "$t" -D "$chain" "$@" -m comment --comment "torchkit-test-env:$BRIDGE" 2>/dev/null || true
    done < "$RT/iptables.rules"
    rm -f "$RT/iptables.rules"; log "removed iptables rules for $BRIDGE"
  fi
  if [ "${ADDED_BRIDGE:-0}" = 1 ] && ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link del "$BRIDGE"; log "removed bridge $BRIDGE"
  fi
  STARTED_DOCKERD=0 STARTED_REGISTRY=0 ADDED_BRIDGE=0; [ -d "$RT" ] && save_state
  if [ "${PURGE:-0}" = 1 ]; then
    grep -q " $RT/" /proc/mounts && die "mounts remain under $RT; not deleting"
    rm -rf "$RT"; log "deleted $RT"
  fi
}

status() {
  ping_daemon && echo "dockerd: up on $SOCK" || echo "dockerd: down ($SOCK)"
  ping_registry && echo "registry: up on $REG" || echo "registry: down ($REG)"
  [ -n "${BRIDGE:-}" ] && { ip -br addr show "$BRIDGE" 2>/dev/null || echo "bridge $BRIDGE: absent"; }
  if [ "$STANDIN" = 1 ] && ping_registry; then
    local ref path
    local paths=() name fake
    for ref in "${STANDIN_LIST[@]}"; do paths+=("$(hub_path "$ref")"); done
    for name in "${WRONG_STANDINS[@]}"; do paths+=("torchkit-test/pytorch:$name"); done
    for path in "${paths[@]}"; do
      if in_registry "${path%%:*}" "${path##*:}"; then
        fake=$(registry_label "${path%%:*}" "${path##*:}" torchkit.test.fake-torch)
        echo "stand-in: $path in the registry (fake torch: ${fake:-none})"
      else
        echo "stand-in: $path missing (run up)"
      fi
    done
  fi
  return 0
}

case "$ACTION" in
  up) up ;;
  verify) verify ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|verify|down|status" >&2; exit 2 ;;
esac
