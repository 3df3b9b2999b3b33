#!/usr/bin/env bash
# Detection figures: for every capture in README.md's "What each capture shows", what `tunerctl scan --json`
# finds (kind and device) against what the capture shows. Per file: found, missed (a failure
# with no incident of its device), mislabelled (an incident of its device, of another kind),
# false alarms (an incident of a device the capture shows no failure of). Needs jq.
#
#   bash tests/logs/figures.sh [TUNERCTL]     (default: target/debug/tunerctl)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../target/debug/tunerctl}
# The table's rows, as FILE<TAB>KIND<TAB>DEVICE (`-` for none).
expected=$(sed -n '/^## What each capture shows/,$p' "$here/README.md" |
  awk -F'|' '/^\| `/ { for (i = 2; i <= 4; i++) { gsub(/[ `]/, "", $i) } print $2 "\t" $3 "\t" $4 }')
files=$(printf '%s\n' "$expected" | cut -f1 | uniq)
t_exp=0 t_ok=0 t_miss=0 t_mis=0 t_false=0
printf '%-45s %-4s %-4s %-6s %-9s %-5s\n' FILE WANT OK MISSED MISLABEL FALSE
for f in $files; do
  want=$(printf '%s\n' "$expected" | awk -F'\t' -v f="$f" '$1 == f && $2 != "-" { print $2 "\t" ($3 == "-" ? "" : $3) }' | sort)
  got=$({ "$bin" scan --json "$here/$f" || true; } | jq -r '.incidents[] | "\(.kind)\t\(.device // "")"' | sort)
  n_exp=$(printf '%s' "$want" | grep -c . || true)
  ok=0 miss=0 mis=0 false=0
  while IFS=$'\t' read -r k d; do
    [ -z "$k" ] && continue
    if printf '%s\n' "$got" | grep -qxF "$k"$'\t'"$d"; then ok=$((ok + 1))
    elif printf '%s\n' "$got" | cut -f2 | grep -qxF "$d"; then mis=$((mis + 1))
    else miss=$((miss + 1)); fi
  done <<< "$want"
  while IFS=$'\t' read -r k d; do
    [ -z "$k" ] && continue
    printf '%s\n' "$want" | cut -f2 | grep -qxF "$d" || false=$((false + 1))
  done <<< "$got"
  printf '%-45s %-4s %-4s %-6s %-9s %-5s\n' "$f" "$n_exp" "$ok" "$miss" "$mis" "$false"
  t_exp=$((t_exp + n_exp)) t_ok=$((t_ok + ok)) t_miss=$((t_miss + miss)) t_mis=$((t_mis + mis)) t_false=$((t_false + false))
done
printf '%-45s %-4s %-4s %-6s %-9s %-5s\n' TOTAL "$t_exp" "$t_ok" "$t_miss" "$t_mis" "$t_false"
