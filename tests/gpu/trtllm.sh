#!/usr/bin/env bash
# `make test-gpu-trtllm`: the chat and completions integration suites, unchanged, against a TensorRT-LLM entry
# built from the tiny Llama by the real builder (no --dry-run). Needs an NVIDIA GPU, TensorRT-LLM and a Triton
# container's tritonserver (the Dockerfile's trtllm stage has all three). Never green without them: exits 2.
set -euo pipefail
PY=${PY:-python3}
TP=${TP:-1}
TRITONSERVER=${TRITONSERVER:-/opt/tritonserver/bin/tritonserver}
WORK=${WORK:-build/trtllm}

fail() { echo "test-gpu-trtllm: $*" >&2; exit 2; }
nvidia-smi -L >/dev/null 2>&1 || fail "no NVIDIA GPU here (nvidia-smi -L failed)"
gpus=$(nvidia-smi -L | wc -l)
[ "$gpus" -ge "$TP" ] || fail "TP=$TP needs $TP GPUs, this node has $gpus"
"$PY" -c "import tensorrt_llm" >/dev/null 2>&1 || fail "TensorRT-LLM is not importable by $PY (use the Dockerfile's trtllm stage)"
[ -x "$TRITONSERVER" ] || fail "no tritonserver at $TRITONSERVER (set TRITONSERVER)"

# The library's own signatures, recorded once (commit the file), then our keywords checked against them.
signatures=tests/fixtures/trtllm/signatures.json
if [ ! -f "$signatures" ]; then
  "$PY" tests/fixtures/trtllm/record.py "$signatures"
  echo "test-gpu-trtllm: recorded $signatures from $("$PY" -c 'import tensorrt_llm; print(tensorrt_llm.__version__)'): commit it" >&2
fi
"$PY" -m pytest -q -p no:cacheprovider tests/unit/test_trtllm_signatures.py

rm -rf "$WORK" && mkdir -p "$WORK"
# Head size 64 (256 / 4 heads): a size TensorRT-LLM's fused attention kernels take (the CPU demo's is 16).
"$PY" -m builders llm-tiny --out "$WORK/ckpt" --hidden 256 --heads 4 --kv-heads 2 --layers 2 --max-model-len 2048
"$PY" -m builders llm --engine tensorrt-llm --checkpoint "$WORK/ckpt" --model-id tiny-llama-3 --tp "$TP" \
  --dtype fp16 --max-batch-size 32 --max-num-tokens 4096 --max-model-len 2048 --out "$WORK/repo" --work "$WORK/work"
MODEL_REPOSITORY="$WORK/repo" TRITONSERVER="$TRITONSERVER" HF_HUB_OFFLINE=1 \
  "$PY" -m pytest -q -rs -p no:cacheprovider tests/integration/test_chat_completions.py \
  tests/integration/test_completions.py "$@"
