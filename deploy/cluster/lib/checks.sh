# shellcheck shell=bash
# What a user relies on, checked with real pods after the examples ran —
# the same checks the replay (test/replay) makes against the driver run
# as the manifests run it. Each check records one row of the table, and
# runs only when the example it builds on ran and passed.
# Needs: k, say, record, ran (common.sh, examples.sh); TIMEOUT, DRIVER.

NODE_SELECTOR=app.kubernetes.io/name=csi-lab,app.kubernetes.io/component=node

# The node plugin's pod on node $1.
node_plugin_on() {
  k -n csi-lab get pods -l "$NODE_SELECTOR" --field-selector "spec.nodeName=$1" -o jsonpath='{.items[0].metadata.name}'
}

# Wait until the node plugin on node $1 is a Ready pod other than $2.
wait_for_new_node_plugin() {
  local node=$1 old=$2 pod i
  for ((i = 0; i < 150; i++)); do
    pod=$(node_plugin_on "$node" 2>/dev/null) || pod=
    if [[ -n $pod && $pod != "$old" ]] && k -n csi-lab wait --for=condition=Ready "pod/$pod" --timeout="$TIMEOUT" >/dev/null; then
      echo "$pod"
      return 0
    fi
    sleep 2
  done
  return 1
}

# expansion: the pod sees the new size (df inside it), not only the claim's status.
check_expansion() {
  local kib want=$((2 * 1024 * 1024 * 9 / 10))
  ran expansion || return 0
  kib=$(k -n csi-lab-ex-expansion exec growing-writer -- df -k /data | awk 'NR == 2 {print $2}')
  if [[ $kib =~ ^[0-9]+$ ]] && ((kib >= want)); then
    record ok "expansion:df-in-pod" "df in growing-writer: ${kib} KiB (asked 2Gi)"
  else
    record FAILED "expansion:df-in-pod" "df in growing-writer shows ${kib:-nothing} KiB, less than $want"
  fi
}

# snapshot-restore, shared-snapshot: the restored claim holds what the source held when the snapshot was taken.
check_restore() {
  local got example pod check
  for example in snapshot-restore shared-snapshot; do
    ran "$example" || continue
    if [[ $example == snapshot-restore ]]; then pod=snap-reader check=restore:data; else pod=shared-reader check=shared-snapshot:data; fi
    got=$(k -n "csi-lab-ex-$example" exec "$pod" -- cat /data/payload.txt)
    if [[ $got == "content before the snapshot" ]]; then
      record ok "$check" "$pod reads the snapshot's payload.txt"
    else
      record FAILED "$check" "$pod reads ${got:-nothing}"
    fi
  done
}

# modify-volume: the change ends somewhere definite — applied, or refused as
# infeasible (a node-local volume the controller cannot reach) — not pending.
check_modify() {
  local ns=csi-lab-ex-modify-volume state i
  ran modify-volume || return 0
  for ((i = 0; i < 60; i++)); do
    state=$(k -n "$ns" get pvc tunable-data -o jsonpath='{.status.currentVolumeAttributesClassName}/{.status.modifyVolumeStatus.status}')
    case $state in
      csi-lab-private/*) record ok "modify-volume:result" "applied: the claim's current class is csi-lab-private"; return 0 ;;
      */Infeasible) record ok "modify-volume:result" "refused as infeasible (status Infeasible), the volume unchanged"; return 0 ;;
    esac
    sleep 2
  done
  record FAILED "modify-volume:result" "still ${state:-unknown} (class/status) after 2 minutes"
}

# rolling-update: one pod left, of the new version, which read the old one's file.
check_rolling_update() {
  local ns=csi-lab-ex-rolling-update pods
  ran rolling-update || return 0
  pods=$(k -n "$ns" get pods -o name)
  if [[ $(wc -w <<<"$pods") -eq 1 ]] && k -n "$ns" logs "$pods" | grep -q 'version 2 wrote'; then
    record ok "rolling-update:rwo" "version 2 started beside version 1 on one RWO claim and read its file"
  else
    record FAILED "rolling-update:rwo" "pods: ${pods:-none}"
  fi
}

# /metrics of the node plugins count the calls the examples caused.
check_metrics() {
  local pod text="" method missing=()
  for pod in $(k -n csi-lab get pods -l "$NODE_SELECTOR" -o jsonpath='{.items[*].metadata.name}'); do
    text+=$(k get --raw "/api/v1/namespaces/csi-lab/pods/$pod:9810/proxy/metrics")$'\n'
  done
  for method in CreateVolume NodeStageVolume NodePublishVolume NodeUnpublishVolume; do
    grep -Eq "^csi_lab_rpc_requests_total\{[^}]*method=\"$method\"[^}]*code=\"OK\"" <<<"$text" || missing+=("$method")
  done
  if ran snapshot-restore || ran shared-snapshot; then
    grep -Eq "^csi_lab_rpc_requests_total\{[^}]*method=\"CreateSnapshot\"[^}]*code=\"OK\"" <<<"$text" || missing+=(CreateSnapshot)
  fi
  if ((${#missing[@]} == 0)); then
    record ok "metrics:node-plugin" "/metrics counts the calls the examples made"
  else
    record FAILED "metrics:node-plugin" "no successful ${missing[*]} in /metrics"
  fi
}

# The node plugin's pod deleted while pvc-pod's volume is staged and
# published on its node: the old pod keeps its data, a new pod on the same
# claim starts, and both are cleaned up. Then reclaim Delete through the
# node plugin: the claim deleted, DeleteVolume removes the volume and the PV.
check_node_restart_and_reclaim() {
  local ns=csi-lab-ex-pvc-pod node plugin new before after pv
  ran pvc-pod || return 0
  node=$(k -n "$ns" get pod hello-writer -o jsonpath='{.spec.nodeName}')
  plugin=$(node_plugin_on "$node")
  before=$(k -n "$ns" exec hello-writer -- cat /data/hello.txt)
  say "deleting the node plugin $plugin on $node while hello-data is in use"
  k -n csi-lab delete pod "$plugin" --wait || { record FAILED "node-plugin-restart" "could not delete $plugin"; return 0; }
  if ! new=$(wait_for_new_node_plugin "$node" "$plugin"); then
    record FAILED "node-plugin-restart" "no Ready node plugin on $node after deleting $plugin"
    return 0
  fi
  after=$(k -n "$ns" exec hello-writer -- cat /data/hello.txt)
  k -n "$ns" apply -f - <<EOF_POD
apiVersion: v1
kind: Pod
metadata:
  name: hello-after-restart
spec:
  nodeName: $node
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: busybox:1.37.0
      command: ["/bin/sh", "-c", "test -s /data/hello.txt && touch /tmp/ok && exec sleep 86400"]
      readinessProbe:
        exec:
          command: ["cat", "/tmp/ok"]
        periodSeconds: 2
      volumeMounts:
        - name: data
          mountPath: /data
  volumes:
    - name: data
      persistentVolumeClaim:
        claimName: hello-data
EOF_POD
  if [[ -z $before || $after != "$before" ]]; then
    record FAILED "node-plugin-restart" "hello-writer's file changed or vanished: '${before}' → '${after}'"
  elif ! k -n "$ns" wait --for=condition=Ready pod/hello-after-restart --timeout="$TIMEOUT"; then
    record FAILED "node-plugin-restart" "a new pod on the staged claim did not start after $new replaced $plugin"
  elif ! k -n "$ns" delete pod hello-after-restart hello-writer --wait --timeout="$TIMEOUT"; then
    record FAILED "node-plugin-restart" "the pods did not finish terminating (NodeUnpublish/NodeUnstage)"
  else
    record ok "node-plugin-restart" "$plugin → $new: old data intact, new pod started, pods cleaned up"
  fi
  pv=$(k -n "$ns" get pvc hello-data -o jsonpath='{.spec.volumeName}')
  k -n "$ns" delete pod --all --wait --timeout="$TIMEOUT" >/dev/null
  k -n "$ns" delete pvc hello-data --wait --timeout="$TIMEOUT"
  if [[ -n $pv ]] && k wait --for=delete "pv/$pv" --timeout="$TIMEOUT"; then
    record ok "reclaim-delete:hello-data" "DeleteVolume on the node plugin; PV $pv gone"
  else
    record FAILED "reclaim-delete:hello-data" "PV ${pv:-?} still there after its claim was deleted"
  fi
}

run_checks() {
  say "checks"
  check_expansion
  check_restore
  check_modify
  check_rolling_update
  check_metrics
  check_node_restart_and_reclaim
}
