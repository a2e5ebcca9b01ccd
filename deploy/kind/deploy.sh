#!/usr/bin/env bash
# csi-lab on kind, from nothing to working examples, in one command:
#
#   deploy/kind/deploy.sh                       # a kind cluster, then the end-to-end run
#   deploy/kind/deploy.sh --existing-cluster …  # no kind, no docker: deploy/cluster/e2e.sh …
#
#  1. creates a kind cluster (deploy/kind/cluster.yaml: 1 control plane, 2 workers)
#  2. builds the driver image and loads it into the cluster's nodes
#  3. runs deploy/cluster/e2e.sh on it with the kind overlay (deploy/kind):
#     the VolumeSnapshot CRDs and snapshot-controller (deploy/snapshot-controller,
#     with distributed snapshotting, for node-local volumes), the driver,
#     every example that the deployment supports, each in its own
#     namespace, step by step, waiting until its pods are Ready (which they
#     become only after writing and reading back data), the checks with
#     real pods, csi-sanity inside the node plugin if csi-sanity is on PATH,
#     and a table of results
#  4. prints how to clean up
#
# Running it again on the same cluster converges: every step applies the
# same manifests (nothing is patched by hand), and the examples' namespaces
# left by the last run are removed before the examples run again.
#
# Needs docker, kind, kubectl (and git, for kubectl's remote kustomize).
# Settings (environment):
#   CLUSTER=csi-lab            kind cluster name (reused if it exists)
#   EXAMPLES="pvc-pod ..."     examples to run (default: all that apply)
#   TIMEOUT=300s               how long to wait for each step
#   CSI_SANITY=csi-sanity      csi-sanity binary (skipped when not found)
#   KEEP_EXAMPLES=1            leave the examples running at the end (the default here)
#   SKIP_BUILD=1               reuse an image already loaded
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
e2e="$repo/deploy/cluster/e2e.sh"

if [[ ${1:-} == --existing-cluster ]]; then
  shift
  exec "$e2e" "$@"
fi
(($# == 0)) || { echo "deploy.sh: unknown argument: $1 (settings are environment variables; see the header)" >&2; exit 2; }

CLUSTER=${CLUSTER:-csi-lab}
IMAGE=csi-lab:dev # what deploy/kind/kustomization.yaml names
SHARE=/tmp/csi-lab-kind-share
context="kind-$CLUSTER"

say() { printf '\n==> %s\n' "$*"; }
die() {
  printf 'deploy.sh: %s\n' "$*" >&2
  exit 1
}

for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is needed and was not found on PATH"
done

create_cluster() {
  say "kind cluster $CLUSTER"
  mkdir -p "$SHARE"
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    echo "already exists; reusing it"
  else
    kind create cluster --name "$CLUSTER" --config "$here/cluster.yaml" --wait 180s
  fi
  kubectl --context "$context" get nodes -o wide
}

build_image() {
  if [[ ${SKIP_BUILD:-} == 1 ]]; then
    say "image: SKIP_BUILD=1, using the loaded $IMAGE"
    return
  fi
  say "building $IMAGE"
  docker build -t "$IMAGE" "$repo"
  say "loading $IMAGE into the nodes"
  kind load docker-image "$IMAGE" --name "$CLUSTER"
}

create_cluster
build_image
status=0
KEEP_EXAMPLES=${KEEP_EXAMPLES:-1} REQUIRE_CLUSTER=1 "$e2e" --context "$context" --kustomization "$here" || status=$?
cat <<EOF

Metrics:   kubectl --context $context -n csi-lab port-forward daemonset/csi-lab-node 9810:9810 &
           curl -s localhost:9810/metrics | grep ^csi_lab_
Clean up:  the examples:   kubectl --context $context get ns -o name | grep csi-lab-ex- | xargs kubectl --context $context delete
           the driver:     kubectl --context $context delete -k $here
           everything:     kind delete cluster --name $CLUSTER && rm -rf $SHARE
EOF
exit "$status"
