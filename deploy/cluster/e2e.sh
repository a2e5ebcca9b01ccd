#!/usr/bin/env bash
# csi-lab end to end on an existing cluster (the current kubeconfig
# context, or --context): no kind, no docker, images already pullable.
#
#   deploy/cluster/e2e.sh [--context NAME] [--kustomization DIR] [--examples "pvc-pod clone"]
#
#  1. installs the VolumeSnapshot CRDs and the snapshot-controller
#     (deploy/snapshot-controller; --no-snapshot-controller if the cluster
#     has its own, which must run with --enable-distributed-snapshotting)
#  2. applies the manifests (default deploy/kubernetes) and waits for the
#     node plugin and the controller
#  3. removes what an earlier run's examples left, then runs every example
#     that the deployment supports, each in its own namespace, step by step
#  4. checks what a user relies on, with real pods: df inside the pod after
#     expansion, a restore's data, a modification's outcome, a Deployment's
#     rolling update on one ReadWriteOnce claim, the node plugin's /metrics,
#     `kubectl delete pod` of the node plugin while a volume is in use (old
#     data intact, a new pod starts, clean-ups finish), reclaim Retain and
#     Delete through the node plugin
#  5. runs csi-sanity inside a node plugin's container, if csi-sanity is on
#     PATH (or CSI_SANITY=/path/to/csi-sanity)
#  6. removes the examples again (--keep-examples leaves them) and prints a
#     table; exits 1 if any row FAILED
#
# A second run on the same cluster does the same and passes too: every
# apply sends the same objects, and each run starts by removing what the
# last one's examples left. Without a reachable cluster it prints one line
# and exits 0 (REQUIRE_CLUSTER=1: exit 1 instead).
#
# Settings (flags, or environment): CONTEXT, KUSTOMIZATION, EXAMPLES,
# TIMEOUT=300s, CSI_SANITY=csi-sanity, KEEP_EXAMPLES=1, SNAPSHOT_CONTROLLER=skip.
# Needs kubectl (and git, for the snapshot-controller's remote base).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
examples_dir="$repo/deploy/examples"
DRIVER=csi-lab.example.org

CONTEXT=${CONTEXT:-}
KUSTOMIZATION=${KUSTOMIZATION:-$repo/deploy/kubernetes}
EXAMPLES=${EXAMPLES:-}
TIMEOUT=${TIMEOUT:-300s}
CSI_SANITY=${CSI_SANITY:-csi-sanity}
KEEP_EXAMPLES=${KEEP_EXAMPLES:-}
SNAPSHOT_CONTROLLER=${SNAPSHOT_CONTROLLER:-apply}

source "$here/lib/common.sh"
source "$here/lib/examples.sh"
source "$here/lib/checks.sh"
source "$here/lib/sanity.sh"

usage() {
  sed -n '2,/^# Needs/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

# The value of option $1, given as "$1 VALUE" ($2 is what followed it).
value() {
  if (($# < 2)) || [[ -z $2 ]]; then die "$1 needs a value (see --help)"; fi
  printf '%s' "$2"
}

while (($#)); do
  case $1 in
    --context | --kustomization | --examples | --timeout)
      v=$(value "$@") || exit 2
      case $1 in
        --context) CONTEXT=$v ;;
        --kustomization) KUSTOMIZATION=$v ;;
        --examples) EXAMPLES=$v ;;
        --timeout) TIMEOUT=$v ;;
      esac
      shift 2 ;;
    --context=*) CONTEXT=${1#*=}; shift ;;
    --kustomization=*) KUSTOMIZATION=${1#*=}; shift ;;
    --examples=*) EXAMPLES=${1#*=}; shift ;;
    --timeout=*) TIMEOUT=${1#*=}; shift ;;
    --keep-examples) KEEP_EXAMPLES=1; shift ;;
    --no-snapshot-controller) SNAPSHOT_CONTROLLER=skip; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

[[ -f $KUSTOMIZATION/kustomization.yaml ]] || die "--kustomization $KUSTOMIZATION: no kustomization.yaml there"
[[ $TIMEOUT =~ ^[0-9]+[smh]$ ]] || die "--timeout $TIMEOUT: a duration such as 300s or 5m"
[[ $SNAPSHOT_CONTROLLER == apply || $SNAPSHOT_CONTROLLER == skip ]] || die "SNAPSHOT_CONTROLLER=$SNAPSHOT_CONTROLLER: apply or skip"
for example in $(example_names); do
  [[ -d $examples_dir/$example ]] || die "--examples: no example named $example in $examples_dir"
done

# One line and out when there is no cluster to talk to.
skip_without_cluster() {
  local why
  if ! command -v kubectl >/dev/null 2>&1; then
    why="kubectl is not on PATH"
  elif ! why=$(k cluster-info --request-timeout=10s 2>&1 >/dev/null); then
    why="no reachable cluster${CONTEXT:+ for context $CONTEXT} ($(head -n 1 <<<"$why"))"
  else
    return 0
  fi
  echo "e2e.sh: skipped: $why"
  [[ -z ${REQUIRE_CLUSTER:-} ]] || exit 1
  exit 0
}

install_snapshot_controller() {
  if [[ $SNAPSHOT_CONTROLLER == skip ]]; then
    say "snapshot-controller: the cluster's own (--no-snapshot-controller)"
    return 0
  fi
  say "VolumeSnapshot CRDs and snapshot-controller (deploy/snapshot-controller)"
  k kustomize "$repo/deploy/snapshot-controller" | k apply --server-side -f -
  k -n kube-system rollout status deployment/snapshot-controller --timeout="$TIMEOUT"
}

deploy_driver() {
  say "applying $KUSTOMIZATION"
  k apply -k "$KUSTOMIZATION"
  k -n csi-lab rollout status daemonset/csi-lab-node --timeout="$TIMEOUT"
  if k -n csi-lab get deployment csi-lab-controller >/dev/null 2>&1; then
    k -n csi-lab rollout status deployment/csi-lab-controller --timeout="$TIMEOUT"
  fi
  k get csidriver "$DRIVER"
  k get csinodes -o custom-columns='NODE:.metadata.name,DRIVERS:.spec.drivers[*].name'
}

main() {
  skip_without_cluster
  say "cluster: ${CONTEXT:-$(k config current-context)}"
  install_snapshot_controller
  deploy_driver
  cleanup_examples || record FAILED cleanup "could not remove an earlier run's examples"
  run_examples
  run_checks
  run_csi_sanity
  if [[ -z $KEEP_EXAMPLES ]]; then
    cleanup_examples || record FAILED cleanup "could not remove the examples"
  fi
  print_table
}

main
