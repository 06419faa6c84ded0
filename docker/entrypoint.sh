#!/usr/bin/env bash
# First start (empty /models): build a model repository from the checkpoints mounted under /checkpoints for
# DEVICE (cuda by default in the GPU image) and, on cuda, compile its graphs to TensorRT engines for this GPU.
# Then run tritonserver + the adapter with the same launcher as the embedded default.
set -euo pipefail
repo="${MODEL_REPOSITORY:-/models}"
device="${DEVICE:-cuda}"
if [ -z "$(ls -A "$repo" 2>/dev/null)" ]; then
  python -m builders deploy --checkpoints /checkpoints --out "$repo" --device "$device"
  if [ "$device" = cuda ]; then
    python -m builders compile "$repo"
  fi
fi
exec python -m launcher serve --model-repository "$repo" \
  --tritonserver /opt/tritonserver/bin/tritonserver --backend-dir /opt/tritonserver/backends \
  --host 0.0.0.0 --port "${PORT:-9000}" --log-dir /tmp/logs
