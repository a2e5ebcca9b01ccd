# shellcheck shell=bash
# Running deploy/examples on a cluster: each example in its own namespace
# (csi-lab-ex-<name>), one numbered file at a time, waiting until what the
# step made is usable, with the hand-made steps its README describes in
# between. Needs: k, say, record (common.sh); examples_dir, TIMEOUT.

# Containers running in the csi-lab namespace's workloads, one per line.
deployed_containers() {
  k -n csi-lab get daemonsets,deployments -o jsonpath='{range .items[*]}{range .spec.template.spec.containers[*]}{.name}{"\n"}{end}{end}'
}

# Why an example cannot run on this deployment (empty: it can).
unsupported_reason() {
  local example=$1 containers
  containers=$(deployed_containers)
  case $example in
    snapshot-restore | shared-snapshot)
      grep -qx csi-snapshotter <<<"$containers" || echo "no csi-snapshotter deployed (components/snapshots)" ;;
    expansion | modify-volume)
      grep -qx csi-resizer <<<"$containers" || echo "no csi-resizer deployed (components/resize)" ;;
    monitoring)
      k get crd podmonitors.monitoring.coreos.com >/dev/null 2>&1 || echo "the prometheus-operator CRDs are not installed" ;;
  esac
}

# Wait until what a step created is usable: pods Ready, Deployments rolled
# out, snapshots ready, claims at their requested size.
# (Called where `set -e` does not apply, hence the explicit returns.)
wait_for_namespace() {
  local ns=$1 pvc want deploy
  for deploy in $(k -n "$ns" get deployments -o name); do
    k -n "$ns" rollout status "$deploy" --timeout="$TIMEOUT" || return 1
  done
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

# Release a claim whose PV has reclaimPolicy Retain: its pods, the claim
# (the PV must turn Released and keep the volume: a row of the table),
# then the PV. Sets released_handle to the volume's handle.
released_handle=
release_retained() {
  local ns=$1 claim=$2 pv phase
  shift 2
  pv=$(k -n "$ns" get pvc "$claim" -o jsonpath='{.spec.volumeName}') || return 1
  released_handle=$(k get pv "$pv" -o jsonpath='{.spec.csi.volumeHandle}') || return 1
  [[ -n $released_handle ]] || return 1
  if (($#)); then k -n "$ns" delete pod "$@" --wait || return 1; fi
  k -n "$ns" delete pvc "$claim" --wait || return 1
  phase=$(k get pv "$pv" -o jsonpath='{.status.phase}') || return 1
  if [[ $phase == Released ]]; then
    record ok "reclaim-retain:$claim" "PV $pv Released, its volume kept"
  else
    record FAILED "reclaim-retain:$claim" "PV $pv is ${phase:-gone}, not Released"
  fi
  k delete pv "$pv" --wait || return 1
}

# static-pv, before step 2: release the volume made in step 1, then write
# the static PV for it on the node that holds it.
static_pv_step2() {
  local ns=$1 file=$2 node handle
  node=$(k get pv "$(k -n "$ns" get pvc origin-data -o jsonpath='{.spec.volumeName}')" \
    -o jsonpath='{.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}') || return 1
  release_retained "$ns" origin-data origin-writer || return 1
  handle=$released_handle
  [[ -n $node ]] || return 1
  echo "adopting volume $handle on node $node"
  sed -e "s/REPLACE-WITH-VOLUME-HANDLE/$handle/" -e "s/REPLACE-WITH-NODE-NAME/$node/" "$file" | k -n "$ns" apply -f -
}

# lifecycle, before step 4: release the claim of steps 2-3 (Retain keeps
# the volume), then adopt its volume with a hand-written PV.
lifecycle_step4() {
  local ns=$1 file=$2 handle
  release_retained "$ns" lifecycle-data lifecycle-writer lifecycle-reader || return 1
  handle=$released_handle
  echo "adopting volume $handle"
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

# The examples to run: $EXAMPLES, or every directory of deploy/examples.
example_names() {
  local example names=()
  if [[ -n ${EXAMPLES:-} ]]; then
    read -r -a names <<<"$EXAMPLES"
    printf '%s\n' "${names[@]}"
  else
    for example in "$examples_dir"/*/; do basename "$example"; done
  fi
}

ran_examples=()

run_examples() {
  local example reason
  for example in $(example_names); do
    [[ -d $examples_dir/$example ]] || die "no example named $example in $examples_dir"
    # A skipped example is listed once, as skipped: neither passed nor failed.
    reason=$(unsupported_reason "$example")
    if [[ -n $reason ]]; then
      say "example $example: skipped, $reason"
      record skipped "$example" "$reason"
    elif run_example "$example"; then
      record ok "$example"
      ran_examples+=("$example")
    else
      record FAILED "$example" "see the output above"
      show_failure "$example"
    fi
  done
}

# Did example $1 run and pass?
ran() { [[ " ${ran_examples[*]-} " == *" $1 "* ]]; }

# Remove what the examples made, so that the next run starts as this one
# did: their namespaces (pods, snapshots, claims: reclaim runs), then the
# hand-written PersistentVolumes they left Released (their volumes are
# retained on the nodes, as Retain means). Also run first, for what an
# interrupted run left.
cleanup_examples() {
  local example pv
  say "removing the examples' namespaces and Released PersistentVolumes"
  for example in $(example_names); do
    if k get namespace "csi-lab-ex-$example" >/dev/null 2>&1; then
      k delete namespace "csi-lab-ex-$example" --wait --timeout="$TIMEOUT" || return 1
    fi
  done
  for pv in $(k get pv -o jsonpath='{range .items[?(@.spec.csi.driver=="'"$DRIVER"'")]}{.metadata.name} {.status.phase} {.spec.claimRef.namespace}{"\n"}{end}' |
    awk '$2 == "Released" && $3 ~ /^csi-lab-ex-/ {print $1}'); do
    k delete pv "$pv" --wait --timeout="$TIMEOUT" || return 1
  done
}
