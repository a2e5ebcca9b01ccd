# shellcheck shell=bash
# Shared by deploy/cluster/e2e.sh and what it sources: messages, the
# kubectl wrapper, and the results table.
#
# Every result is one row: a status (ok, skipped, FAILED), a name (an
# example, a check, csi-sanity) and a detail. Each name gets exactly one
# row: a skipped example is not also counted as passed.

say() { printf '\n==> %s\n' "$*"; }
die() {
  printf 'e2e.sh: %s\n' "$*" >&2
  exit 2
}

# kubectl on the chosen context (empty: the current one).
k() {
  if [[ -n ${CONTEXT:-} ]]; then
    kubectl --context "$CONTEXT" "$@"
  else
    kubectl "$@"
  fi
}

results=()

# record STATUS NAME [DETAIL]
record() {
  local status=$1 name=$2 detail=${3:-}
  case $status in ok | skipped | FAILED) ;; *) die "record: unknown status $status" ;; esac
  results+=("$status"$'\t'"$name"$'\t'"$detail")
}

# How many rows have STATUS.
count() {
  local status=$1 row n=0
  for row in ${results[@]+"${results[@]}"}; do
    [[ ${row%%$'\t'*} == "$status" ]] && n=$((n + 1))
  done
  echo "$n"
}

# The table, and the exit status: 1 if any row FAILED.
print_table() {
  local row status name detail
  say "summary"
  for row in ${results[@]+"${results[@]}"}; do
    IFS=$'\t' read -r status name detail <<<"$row"
    printf '  %-8s %-30s %s\n' "$status" "$name" "$detail"
  done
  printf '\n%s ok, %s skipped, %s failed\n' "$(count ok)" "$(count skipped)" "$(count FAILED)"
  [[ $(count FAILED) -eq 0 ]]
}
