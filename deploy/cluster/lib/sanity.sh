# shellcheck shell=bash
# csi-sanity against the deployed node plugin, inside its own container:
# the binary is copied in through `kubectl exec` (the image has sh and
# cat), and run on the driver's socket with scratch directories in the
# kubelet directory (the driver accepts staging and target paths only
# there). csi-sanity makes its staging and target directories with a plain
# mkdir, so their parent is made first; it is under plugins/, not pods/:
# the kubelet removes directories in pods/ that belong to no pod. A sanity
# run creates and deletes volumes of its own; the examples' are untouched.
# Needs: k, say, record (common.sh); CSI_SANITY.

run_csi_sanity() {
  local sanity pod args kubelet_dir endpoint dir
  if ! sanity=$(command -v "$CSI_SANITY"); then
    say "csi-sanity: not found (set CSI_SANITY=/path/to/csi-sanity); skipped"
    record skipped csi-sanity "not installed"
    return 0
  fi
  pod=$(k -n csi-lab get pods -l "$NODE_SELECTOR" -o jsonpath='{.items[0].metadata.name}')
  args=$(k -n csi-lab get daemonset csi-lab-node -o jsonpath='{.spec.template.spec.containers[?(@.name=="csi-lab")].args}')
  kubelet_dir=$(grep -o -- '--kubelet-dir=[^",]*' <<<"$args" | head -n 1 | cut -d= -f2)
  kubelet_dir=${kubelet_dir:-/var/lib/kubelet}
  endpoint=$(k -n csi-lab get daemonset csi-lab-node -o jsonpath='{.spec.template.spec.containers[?(@.name=="csi-lab")].env[?(@.name=="CSI_ENDPOINT")].value}')
  endpoint=${endpoint:-unix:///csi/csi.sock}
  dir="$kubelet_dir/plugins/csi-sanity"
  say "csi-sanity in $pod (socket ${endpoint#unix://}, scratch $dir)"
  k -n csi-lab exec -i "$pod" -c csi-lab -- sh -c 'cat > /tmp/csi-sanity && chmod +x /tmp/csi-sanity' <"$sanity" || {
    record FAILED csi-sanity "could not copy csi-sanity into $pod"
    return 0
  }
  k -n csi-lab exec "$pod" -c csi-lab -- mkdir -p "$dir"
  if k -n csi-lab exec "$pod" -c csi-lab -- /tmp/csi-sanity \
    --csi.endpoint="${endpoint#unix://}" \
    --csi.stagingdir="$dir/staging" \
    --csi.mountdir="$dir/target"; then
    record ok csi-sanity "against $pod"
  else
    record FAILED csi-sanity "against $pod: see its output above"
  fi
}
