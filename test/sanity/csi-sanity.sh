#!/usr/bin/env bash
# Run csi-sanity (kubernetes-csi/csi-test) against a fresh csi-lab driver.
#
# csi-sanity is the conformance suite every CSI driver is measured by. It is
# not shipped with this project: install it (a Go binary) and point
# $CSI_SANITY at it, or put it on PATH. Extra arguments go to csi-sanity,
# e.g.  test/sanity/csi-sanity.sh --ginkgo.focus=NodePublish
#
# By default the driver runs with its optional features switched on
# (attach with a per-node limit) and csi-sanity is given what their specs
# need (the mutable-parameters file, the attach-limit test). Set
# CSI_LAB_DRIVER_ARGS to choose the driver flags yourself; an empty value
# runs the driver on its defaults, and the specs of what is off are skipped.
#
# With --csi.testvolumeparameters naming a file that sets `share:` (the
# shared backend with a local share, e.g. test/sanity/shared-volume-parameters.yaml),
# that directory is made before the run, given to the driver with
# --allow-share, and removed after it.
#
# The driver runs from this checkout on a scratch socket and root, with a
# scratch kubelet directory (--kubelet-dir) that holds csi-sanity's staging
# and target directories, as a node's kubelet directory holds them. It is
# stopped, unmounted and removed afterwards whatever the outcome. The driver
# makes real mounts, so the script moves itself into a private mount
# namespace of its own first (unshare -m --propagation private, util-linux):
# none of them reaches the namespace it was started from.
set -euo pipefail

if [ "${CSI_LAB_SANITY_PRIVATE:-}" != 1 ]; then
  exec env CSI_LAB_SANITY_PRIVATE=1 unshare --mount --propagation private -- bash "${BASH_SOURCE[0]}" "$@"
fi

CSI_SANITY=${CSI_SANITY:-csi-sanity}
if ! command -v "$CSI_SANITY" >/dev/null 2>&1; then
  echo "csi-sanity not found (set CSI_SANITY=/path/to/csi-sanity or put it on PATH)" >&2
  exit 2
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=$(mktemp -d /tmp/csi-lab-sanity.XXXXXX)
socket="$work/csi.sock"
driver_pid=""
share=""

# A local share named by the volume parameters file, if any.
params_file=""
prev=""
for a in "$@"; do
  case "$a" in
    --csi.testvolumeparameters=*) params_file=${a#*=} ;;
  esac
  [[ "$prev" == "--csi.testvolumeparameters" ]] && params_file=$a
  prev=$a
done
share_args=()
if [[ -n "$params_file" ]]; then
  share=$(sed -n 's/^share:[[:space:]]*//p' "$params_file" | head -n 1)
  [[ -n "$share" ]] && share_args=(--allow-share "$share")
  if [[ -n "$share" && ! -e "$share" ]]; then mkdir -p "$share"; else share=""; fi
fi
mkdir -p "$work/kubelet"

# shellcheck disable=SC2317  # called through the trap
cleanup() {
  if [[ -n "$driver_pid" ]] && kill -0 "$driver_pid" 2>/dev/null; then
    kill -TERM "$driver_pid" 2>/dev/null || true
    wait "$driver_pid" 2>/dev/null || true
  fi
  # Anything csi-sanity left mounted under the scratch directory, deepest first.
  awk -v w="$work" '$5 == w || index($5, w "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$work"
  if [[ -n "$share" ]]; then rm -rf "$share"; fi
}
trap cleanup EXIT

if [[ ! -f "$repo/dist/src/cli.js" ]]; then
  (cd "$repo" && npm run --silent build)
fi

# Driver flags: the optional features, unless the caller chose others.
default_driver_args="--enable-attach --max-volumes-per-node 4"
read -r -a driver_args <<<"${CSI_LAB_DRIVER_ARGS-$default_driver_args}"
node "$repo/bin/csi-lab.js" driver \
  --endpoint "unix://$socket" \
  --node-id csi-sanity-node \
  --root "$work/root" \
  --kubelet-dir "$work/kubelet" \
  "${share_args[@]}" \
  "${driver_args[@]}" \
  >"$work/driver.log" 2>&1 &
driver_pid=$!

for _ in $(seq 1 100); do
  grep -q '"msg":"ready"' "$work/driver.log" 2>/dev/null && break
  if ! kill -0 "$driver_pid" 2>/dev/null; then
    echo "the driver exited before it was ready:" >&2
    cat "$work/driver.log" >&2
    exit 1
  fi
  sleep 0.1
done

status=0
"$CSI_SANITY" \
  --csi.endpoint="unix://$socket" \
  --csi.mountdir="$work/kubelet/target" \
  --csi.stagingdir="$work/kubelet/staging" \
  --csi.testvolumesize=$((1024 * 1024 * 1024)) \
  --csi.testvolumeexpandsize=$((2 * 1024 * 1024 * 1024)) \
  --csi.testvolumemutableparameters="$repo/test/sanity/mutable-parameters.yaml" \
  --csi.testnodevolumeattachlimit \
  "$@" || status=$?

if [[ $status -ne 0 ]]; then
  echo "--- last driver log lines ($work/driver.log) ---" >&2
  tail -n 40 "$work/driver.log" >&2
fi
exit $status
