#!/usr/bin/env bash
# The GPU checks of a lent device session, in priority order, each under its own time limit so that
# a slow one cannot starve the rest; everything goes to $OUT/gpu.log and the tables to
# $OUT/performance.md (copied into docs/ by hand, with the log kept in docs/logs/).
#   TALK_DATA_ROOT=... [PARTS="paper cost encode joint paper-reference"] bash benchmarks/gpu_session.sh CPU_BUNDLE
# CPU_BUNDLE: a Cora bundle distilled on the CPU with `talk distill --dataset cora --ratio 0.01`,
# evaluated here under the joint protocol to compare the devices on the same bundle.
set -uo pipefail
cpu_bundle=${1:?usage: gpu_session.sh CPU_BUNDLE}
parts=" ${PARTS:-paper cost encode joint paper-reference} "
want() { [[ $parts == *" $1 "* ]]; }
out=${OUT:-/tmp/gpu-out}
bundles=$(mktemp -d)
log=$out/gpu.log
mkdir -p "$out"
step() {  # LIMIT_SECONDS COMMAND...: run, log, time
    local limit=$1
    shift
    echo "== $*" >>"$log"
    local started=$SECONDS
    timeout "$limit" "$@" >>"$log" 2>&1
    echo "== rc=$? wall=$((SECONDS - started)) s" >>"$log"
}
talk="python3 -m talk_cli"  # a command, not a function: timeout runs commands
cuda="--device cuda --json"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$log"
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)" >>"$log" 2>&1
# 1. The paper's configuration on Cora, both protocols (docs/method.md, --recipe paper).
want paper && step 150 $talk distill --dataset cora --recipe paper --ratio 0.01 --out "$bundles/cora-paper" $cuda
want paper && step 60 $talk evaluate "$bundles/cora-paper" --dataset cora $cuda
want paper && step 60 $talk evaluate --full --dataset cora --max-length 256 --pooling cls $cuda
want paper && step 150 $talk evaluate "$bundles/cora-paper" --dataset cora --protocol joint --lora-rank 4 --lm-lr 1e-4 --runs 2 $cuda
# 2. What TaLK costs beside kernel-features on CUDA (the CPU table's command, on the GPU).
want cost && step 200 python3 -m benchmarks.cost --datasets cora arxiv_2023 --device cuda --threads 16 --data-root "$TALK_DATA_ROOT" --write "$out/performance.md"
# 3. Encode throughput against the GPU's GEMM peak.
want encode && step 60 python3 -m benchmarks.encode --device cuda --dtype float32 bfloat16 --batch-size 32 256 --lengths 128 --data-root "$TALK_DATA_ROOT" --write "$out/performance.md"
# 4. The joint protocol on the same bundle as on the CPU.
want joint && step 100 $talk evaluate "$cpu_bundle" --dataset cora --protocol joint --runs 2 $cuda
# 5. The joint reference of the paper's configuration (LoRA rank 4, 256 tokens, CLS), last: the most expensive.
want paper-reference && step 200 $talk evaluate --full --protocol joint --dataset cora --max-length 256 --pooling cls --lora-rank 4 --runs 2 $cuda
echo "== done" >>"$log"
