#!/usr/bin/env bash
# csi-lab on kind, from nothing to working examples, in one command:
#
#   deploy/kind/deploy.sh
#
#  1. creates a kind cluster (deploy/kind/cluster.yaml: 1 control plane, 2 workers)
#  2. builds the driver image and loads it into the cluster's nodes
#  3. installs the VolumeSnapshot CRDs and the snapshot-controller
#     (deploy/snapshot-controller: with distributed snapshotting, for
#     node-local volumes)
#  4. applies the kind overlay of the manifests and waits for the driver
#  5. runs every example in deploy/examples that the deployment supports,
#     each in its own namespace, step by step, waiting until its pods are
#     Ready (which they become only after writing and reading back data)
#  6. runs csi-sanity against a node's driver socket, if csi-sanity is on PATH
#  7. prints a summary and how to clean up
#
# Running it again on the same cluster converges: every step applies the
# same manifests (nothing is patched by hand), and examples are applied
# again into their existing namespaces.
#
# Needs docker, kind, kubectl (and git, for kubectl's remote kustomize).
# Settings (environment):
#   CLUSTER=csi-lab            kind cluster name (reused if it exists)
#   EXAMPLES="pvc-pod ..."     examples to run (default: all that apply)
#   TIMEOUT=300s               how long to wait for each step
#   CSI_SANITY=csi-sanity      csi-sanity binary (skipped when not found)
#   SKIP_BUILD=1               reuse an image already loaded
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
examples_dir="$repo/deploy/examples"

CLUSTER=${CLUSTER:-csi-lab}
TIMEOUT=${TIMEOUT:-300s}
CSI_SANITY=${CSI_SANITY:-csi-sanity}
IMAGE=csi-lab:dev # what deploy/kind/kustomization.yaml names
SHARE=/tmp/csi-lab-kind-share
DRIVER=csi-lab.example.org
KUBELET_DIR=/var/lib/kubelet
context="kind-$CLUSTER"

passed=()
failed=()
skipped=()

say() { printf '\n==> %s\n' "$*"; }
die() {
  printf 'deploy.sh: %s\n' "$*" >&2
  exit 1
}
k() { kubectl --context "$context" "$@"; }

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
  k get nodes -o wide
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

# Node-local volumes are snapshotted by the csi-snapshotter on their own
# node; the controller must label each snapshot with that node. That flag
# is part of the applied kustomization, never patched in afterwards: a
# patch would make the next run's server-side apply conflict with it.
install_snapshot_support() {
  say "VolumeSnapshot CRDs and snapshot-controller (deploy/snapshot-controller)"
  k kustomize "$repo/deploy/snapshot-controller" | k apply --server-side -f -
  k -n kube-system rollout status deployment/snapshot-controller --timeout="$TIMEOUT"
}

deploy_driver() {
  say "applying deploy/kind (the base + kind settings)"
  k apply -k "$here"
  k -n csi-lab rollout status daemonset/csi-lab-node --timeout="$TIMEOUT"
  if k -n csi-lab get deployment csi-lab-controller >/dev/null 2>&1; then
    k -n csi-lab rollout status deployment/csi-lab-controller --timeout="$TIMEOUT"
  fi
  k get csidriver "$DRIVER"
  k get csinodes -o custom-columns='NODE:.metadata.name,DRIVERS:.spec.drivers[*].name'
}

# Containers running in the csi-lab namespace's workloads, one per line.
deployed_containers() {
  k -n csi-lab get daemonsets,deployments -o jsonpath='{range .items[*]}{range .spec.template.spec.containers[*]}{.name}{"\n"}{end}{end}'
}

# Why an example cannot run on this deployment (empty: it can).
unsupported_reason() {
  local example=$1 containers
  containers=$(deployed_containers)
  case $example in
    snapshot-restore)
      grep -qx csi-snapshotter <<<"$containers" || echo "no csi-snapshotter deployed (components/snapshots)" ;;
    expansion | modify-volume)
      grep -qx csi-resizer <<<"$containers" || echo "no csi-resizer deployed (components/resize)" ;;
    monitoring)
      k get crd podmonitors.monitoring.coreos.com >/dev/null 2>&1 || echo "the prometheus-operator CRDs are not installed" ;;
  esac
}

# Wait until what a step created is usable: pods Ready, snapshots ready,
# claims at their requested size.
# (Called where `set -e` does not apply, hence the explicit returns.)
wait_for_namespace() {
  local ns=$1 pvc want
  if [[ -n $(k -n "$ns" get pods -o name) ]]; then
    k -n "$ns" wait --for=condition=Ready pod --all --timeout="$TIMEOUT" || return 1
  fi
  if k get crd volumesnapshots.snapshot.storage.k8s.io >/dev/null 2>&1 && [[ -n $(k -n "$ns" get volumesnapshots -o name) ]]; then
    k -n "$ns" wait --for=jsonpath='{.status.readyToUse}'=true volumesnapshot --all --timeout="$TIMEOUT" || return 1
  fi
  for pvc in $(k -n "$ns" get pvc -o name); do
    want=$(k -n "$ns" get "$pvc" -o jsonpath='{.spec.resources.requests.storage}') || return 1
    k -n "$ns" wait --for=jsonpath='{.status.capacity.storage}'="$want" "$pvc" --timeout="$TIMEOUT" || return 1
  done
}

# static-pv, before step 2: release the volume made in step 1 from its claim
# and PV (it is retained), then write the static PV for it.
static_pv_step2() {
  local ns=$1 file=$2 pv handle node
  pv=$(k -n "$ns" get pvc origin-data -o jsonpath='{.spec.volumeName}') || return 1
  handle=$(k get pv "$pv" -o jsonpath='{.spec.csi.volumeHandle}') || return 1
  node=$(k get pv "$pv" -o jsonpath='{.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}') || return 1
  [[ -n $handle && -n $node ]] || return 1
  echo "adopting volume $handle on node $node (was PV $pv)"
  k -n "$ns" delete pod origin-writer --wait || return 1
  k -n "$ns" delete pvc origin-data --wait || return 1
  k delete pv "$pv" --wait || return 1
  sed -e "s/REPLACE-WITH-VOLUME-HANDLE/$handle/" -e "s/REPLACE-WITH-NODE-NAME/$node/" "$file" | k -n "$ns" apply -f -
}

# lifecycle, before step 4: release the claim of steps 2-3 (Retain keeps
# the volume), then adopt its volume with a hand-written PV.
lifecycle_step4() {
  local ns=$1 file=$2 pv handle
  pv=$(k -n "$ns" get pvc lifecycle-data -o jsonpath='{.spec.volumeName}') || return 1
  handle=$(k get pv "$pv" -o jsonpath='{.spec.csi.volumeHandle}') || return 1
  [[ -n $handle ]] || return 1
  echo "releasing claim lifecycle-data; adopting volume $handle (was PV $pv)"
  k -n "$ns" delete pod lifecycle-writer lifecycle-reader --wait || return 1
  k -n "$ns" delete pvc lifecycle-data --wait || return 1
  k get pv "$pv" -o jsonpath='{.status.phase}{"\n"}' # Released
  k delete pv "$pv" --wait || return 1
  sed -e "s/REPLACE-WITH-VOLUME-HANDLE/$handle/" "$file" | k -n "$ns" apply -f -
}

# Run one example that the deployment supports; its status says whether it passed.
run_example() {
  local example=$1 ns="csi-lab-ex-$1" file step pod
  say "example $example (namespace $ns)"
  k create namespace "$ns" --dry-run=client -o yaml | k apply -f - || return 1
  for file in "$examples_dir/$example"/[0-9]*.yaml; do
    step=$(basename "$file")
    echo "--- $step"
    if [[ $example == static-pv && $step == 02-* ]]; then
      static_pv_step2 "$ns" "$file" || return 1
    elif [[ $example == lifecycle && $step == 04-* ]]; then
      lifecycle_step4 "$ns" "$file" || return 1
    elif [[ $example == monitoring ]]; then
      k apply -f "$file" || return 1 # namespaced to csi-lab in the file
    else
      k -n "$ns" apply -f "$file" || return 1
    fi
    wait_for_namespace "$ns" || return 1
  done
  for pod in $(k -n "$ns" get pods -o name); do
    k -n "$ns" logs "$pod" | grep 'csi-lab-example: ok' || return 1
  done
}

show_failure() {
  local ns="csi-lab-ex-$1"
  echo "--- what $ns looks like"
  k -n "$ns" get pods,pvc,events -o wide || true
  k -n "$ns" describe pvc || true
  k -n csi-lab logs daemonset/csi-lab-node -c csi-lab --tail=50 || true
}

run_examples() {
  local all=() example reason
  if [[ -n ${EXAMPLES:-} ]]; then
    read -r -a all <<<"$EXAMPLES"
  else
    for example in "$examples_dir"/*/; do
      all+=("$(basename "$example")")
    done
  fi
  for example in ${all[@]+"${all[@]}"}; do
    [[ -d $examples_dir/$example ]] || die "no example named $example in $examples_dir"
    # A skipped example is listed once, as skipped: neither passed nor failed.
    reason=$(unsupported_reason "$example")
    if [[ -n $reason ]]; then
      say "example $example: skipped, $reason"
      skipped+=("$example ($reason)")
    elif run_example "$example"; then
      passed+=("$example")
    else
      failed+=("$example")
      show_failure "$example"
    fi
  done
}

# csi-sanity talks to the driver's socket directly. The kind nodes are
# containers, so the binary is copied into a worker and run there, with
# the socket and scratch directories at the paths the driver sees.
# csi-sanity makes its staging and target directories with a plain mkdir,
# so their parent must exist, and the driver accepts them only inside the
# kubelet directory. Both go under plugins/, not pods/: the kubelet removes
# directories in pods/ that belong to no pod.
run_csi_sanity() {
  local sanity node nodes dir="$KUBELET_DIR/plugins/csi-sanity"
  # A sanity run on a live driver creates and deletes its own volumes; it
  # does not touch the examples'.
  if ! sanity=$(command -v "$CSI_SANITY"); then
    say "csi-sanity: not found (set CSI_SANITY=/path/to/csi-sanity); skipped"
    skipped+=("csi-sanity (not installed)")
    return 0
  fi
  nodes=$(kind get nodes --name "$CLUSTER")
  node=$(grep -m1 worker <<<"$nodes")
  say "csi-sanity on node $node"
  docker cp "$sanity" "$node:/usr/local/bin/csi-sanity"
  docker exec "$node" mkdir -p "$dir"
  if docker exec "$node" csi-sanity \
    --csi.endpoint="$KUBELET_DIR/plugins/$DRIVER/csi.sock" \
    --csi.stagingdir="$dir/staging" \
    --csi.mountdir="$dir/target"; then
    passed+=("csi-sanity")
  else
    failed+=("csi-sanity")
  fi
}

summary() {
  say "summary"
  local item
  # ${a[@]+...}: empty arrays are "unset" to bash 3.2 (macOS) under set -u.
  for item in ${passed[@]+"${passed[@]}"}; do echo "  ok       $item"; done
  for item in ${skipped[@]+"${skipped[@]}"}; do echo "  skipped  $item"; done
  for item in ${failed[@]+"${failed[@]}"}; do echo "  FAILED   $item"; done
  cat <<EOF

Metrics:   kubectl --context $context -n csi-lab port-forward daemonset/csi-lab-node 9810:9810 &
           curl -s localhost:9810/metrics | grep ^csi_lab_
Clean up:  the examples:   kubectl --context $context get ns -o name | grep csi-lab-ex- | xargs kubectl --context $context delete
           the driver:     kubectl --context $context delete -k $here
           everything:     kind delete cluster --name $CLUSTER && rm -rf $SHARE
EOF
  [[ ${#failed[@]} -eq 0 ]]
}

create_cluster
build_image
install_snapshot_support
deploy_driver
run_examples
run_csi_sanity
summary
