#!/usr/bin/env bash
# A user's workflow, one `talk` process per command, timed from outside (wall seconds, peak RSS):
# encode, distil at ratio 0.01 with the shipped recipe, evaluate that bundle under the joint and
# the gnn protocols, then the joint full-data reference. It prints; the GPU table in
# docs/performance.md was read off its log (kept in docs/logs/):
#   TALK_DATA_ROOT=../shared/datasets PYTHON=python3 bash benchmarks/cli_workflow.sh cuda cora arxiv_2023 2>&1 | tee workflow.log
set -uo pipefail
device=${1:?usage: cli_workflow.sh DEVICE DATASET...}
shift
bundles=$(mktemp -d)
for dataset in "$@"; do
    for command in \
        "encode --dataset $dataset --force" \
        "distill --dataset $dataset --ratio 0.01 --out $bundles/$dataset --force" \
        "evaluate $bundles/$dataset --dataset $dataset --protocol joint" \
        "evaluate $bundles/$dataset --dataset $dataset" \
        "evaluate --full --protocol joint --dataset $dataset"; do
        echo "== $command --device $device"
        # shellcheck disable=SC2086  # the command is split into words on purpose
        /usr/bin/time -f "TIME %e s, peak RSS %M KB" "${PYTHON:-python3}" -m talk_cli $command --device "$device" 2>&1 | grep -v Warning
    done
done
