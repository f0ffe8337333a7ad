#!/usr/bin/env bash
# Opt-in (not in CI; heavy: 10+ minutes, several GB): build both images with podman on a locally
# bootstrapped Debian base, then run the serving image on a freshly trained bundle mounted at
# /mnt/models and get a v2 answer from it.
#
#   bash scripts/build-images.sh            # needs root (mmdebstrap, podman), PyPI and Debian's mirror
#
# No Docker daemon or registry image is needed: the base is `mmdebstrap` + `podman import`, builds
# use `--pull=never` and the BASE_IMAGE build argument (the Dockerfiles default to the official
# python:3.11-slim-bookworm). The host's CA bundle and pip settings are mounted into the build so
# pip reaches the same package sources as the host (PIP_FIND_LINKS holds a local CPU torch wheel
# when the host has one; TORCH_INDEX_URL, if set, is passed to the training build).
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${STATE:-/tmp/petr4-images}
TAG=${TAG:-0.1.0}
BASE=${BASE:-localhost/petr4-base:py311-bookworm}
# A free loopback port pair for the check run (the container uses the host network).
PORT=${PORT:-$(python3 -c 'import socket
while True:
    a, b = socket.socket(), socket.socket()
    a.bind(("127.0.0.1", 0)); port = a.getsockname()[1]
    try:
        b.bind(("127.0.0.1", port + 1)); print(port); break
    except OSError:
        pass
    finally:
        a.close(); b.close()')}
PY=.venv/bin/python
mkdir -p "$STATE"
started=$(date +%s)
step() { echo "== [$(( $(date +%s) - started ))s] $*"; }

need=()
for tool in podman:podman mmdebstrap:mmdebstrap runc:runc; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  step "installing ${need[*]} (Debian)"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" \
    uidmap fuse-overlayfs slirp4netns >/dev/null
fi
PODMAN=(podman --runtime runc)
# Explicit limits runc may set here: podman's defaults (and even the host's own nproc) can be refused
# ("error setting rlimit"); lowering is always allowed.
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ] && nofile=65536
ULIMITS=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=8192:8192")

if ! "${PODMAN[@]}" image exists "$BASE"; then
  step "bootstrapping the base image $BASE (Debian bookworm minbase + Python 3.11)"
  mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates,passwd \
    bookworm "$STATE/rootfs.tar"
  "${PODMAN[@]}" import --change 'CMD ["python3"]' "$STATE/rootfs.tar" "$BASE" >/dev/null
  rm -f "$STATE/rootfs.tar"
fi

# pip inside the build: the host's CA bundle and package sources (never baked into an image).
pipconf="$STATE/pip.conf"
{
  echo "[global]"
  echo "cert = /etc/ssl/certs/ca-certificates.crt"
  [ -n "${PIP_FIND_LINKS:-}" ] && [ -d "${PIP_FIND_LINKS}" ] && echo "find-links = ${PIP_FIND_LINKS}"
  true
} >"$pipconf"
mounts=(-v "/etc/ssl/certs:/etc/ssl/certs:ro" -v "$pipconf:/etc/pip.conf:ro")
if [ -n "${PIP_FIND_LINKS:-}" ] && [ -d "${PIP_FIND_LINKS}" ]; then mounts+=(-v "$PIP_FIND_LINKS:$PIP_FIND_LINKS:ro"); fi
build=("${PODMAN[@]}" build --pull=never --network host --format docker "${ULIMITS[@]}"
  --build-arg "BASE_IMAGE=$BASE" "${mounts[@]}")

# Torch-free images first (serve, monitor, mlflow), the torch training image last: a failing torch
# install (no CPU wheel reachable) still leaves the three long-lived images built and timed.
declare -A took
build_image() {  # build_image <name> [extra build args...]
  local image=$1; shift
  step "building petr4-forecaster-$image:$TAG"
  local t0; t0=$(date +%s)
  "${build[@]}" "$@" -f "Dockerfile.$image" -t "localhost/petr4-forecaster-$image:$TAG" . || return $?
  took[$image]=$(( $(date +%s) - t0 ))
  step "built petr4-forecaster-$image:$TAG in ${took[$image]}s"
}
build_image serve
build_image monitor  # the torch-free long-lived pods
build_image mlflow
# A failed training image is reported, not fatal: the serving check below does not need it.
build_image train --build-arg "TORCH_INDEX_URL=${TORCH_INDEX_URL:-}" || step "training image FAILED (see above)"

step "training a bundle on the packaged sample (host venv, 2 epochs)"
rm -rf "$STATE/out"
$PY -m training --source sample --no-registry --max-epochs 2 --output-dir "$STATE/out" \
  2> >(grep -vE "Tip:|GPU available|TPU available|pre-processing|Quantization param" >&2)
chmod -R a+rX "$STATE/out/bundle"

step "running the serving image on the bundle (read-only root, uid 10001, /mnt/models read-only)"
name="petr4-serve-check-$$"
cleanup() { "${PODMAN[@]}" rm -f "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT
for port in "$PORT" "$((PORT + 1))"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "port $port is taken" >&2; exit 1; fi
done
"${PODMAN[@]}" run -d --name "$name" --network host --read-only --tmpfs /tmp:rw,size=256m \
  --cap-drop ALL --security-opt no-new-privileges "${ULIMITS[@]}" \
  -e PROMETHEUS_MULTIPROC_DIR=/tmp/metrics \
  -v "$STATE/out/bundle:/mnt/models:ro" "localhost/petr4-forecaster-serve:$TAG" \
  --model_name aapl-forecaster --http_port "$PORT" --grpc_port "$((PORT + 1))" >/dev/null
for _ in $(seq 90); do
  curl -fsS -o /dev/null "http://127.0.0.1:$PORT/v2/health/ready" 2>/dev/null && break
  sleep 1
done
curl -fsS "http://127.0.0.1:$PORT/v2/health/ready" >/dev/null || { "${PODMAN[@]}" logs "$name" | tail -30; exit 1; }
step "one Open Inference Protocol v2 request"
$PY scripts/request.py --url "http://127.0.0.1:$PORT" --model aapl-forecaster
curl -fsS "http://127.0.0.1:$PORT/metrics" | grep -E '^forecaster_model_ready' || true
test "$("${PODMAN[@]}" exec "$name" id -u)" = 10001

step "done"
echo "build time: serve ${took[serve]}s, monitor ${took[monitor]}s, mlflow ${took[mlflow]}s, train ${took[train]:-FAILED}s; total wall time $(( $(date +%s) - started ))s"
"${PODMAN[@]}" images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'petr4-(forecaster|base)'
