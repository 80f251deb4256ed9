#!/bin/bash
# Whether a refactor kept bundles byte-identical: distil the same settings with the code of two git
# revisions and compare the tensor files (the manifests differ in times and dates by design).
#   bash scripts/same_bundles.sh BEFORE_REV [AFTER_REV, default: the working tree]
# Needs the datasets (TALK_DATA_ROOT, else ../shared/datasets) and the venv. One thread, so that
# both sides sum in the same order.
set -euo pipefail
before=$1
after=${2:-}
repo=$(git rev-parse --show-toplevel)
python=${PYTHON:-$repo/.venv/bin/python}
data_root=${TALK_DATA_ROOT:-$repo/../shared/datasets}
work=$(mktemp -d)
trap 'git -C "$repo" worktree remove --force "$work/before" >/dev/null 2>&1 || true; [ -n "$after" ] && git -C "$repo" worktree remove --force "$work/after" >/dev/null 2>&1; rm -rf "$work"' EXIT
git -C "$repo" worktree add -q --detach "$work/before" "$before"
code_after=$repo
if [ -n "$after" ]; then git -C "$repo" worktree add -q --detach "$work/after" "$after"; code_after=$work/after; fi
printf "steps: 20\ninvert_steps: 0\n" > "$work/tokens.yaml"                         # the token loop runs
printf "steps: 6\ninvert_steps: 0\ninner_every: 3\ninner_steps: 2\n" > "$work/inner.yaml"  # with the inner loop
cases=("demo talk -" "cora talk -" "demo talk tokens" "demo talk inner" "demo kernel-features -" "cora kernel-features -")
status=0
for case in "${cases[@]}"; do
  read -r dataset method recipe <<< "$case"
  args=(distill --dataset "$dataset" --data-root "$data_root" --method "$method" --ratio 0.01 --threads 1 --force --quiet)
  [ "$recipe" != - ] && args+=(--recipe "$work/$recipe.yaml")
  for side in before after; do
    code=$work/before; [ $side = after ] && code=$code_after
    (cd "$code" && PYTHONPATH="$code" "$python" -m talk_cli "${args[@]}" --out "$work/$side-$dataset-$method-$recipe" > /dev/null)
  done
  a=$(sha256sum < "$work/before-$dataset-$method-$recipe/synthetic.safetensors")
  b=$(sha256sum < "$work/after-$dataset-$method-$recipe/synthetic.safetensors")
  if [ "$a" = "$b" ]; then echo "same      $dataset $method recipe=$recipe"; else echo "DIFFERENT $dataset $method recipe=$recipe"; status=1; fi
done
exit $status
