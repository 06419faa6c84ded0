#!/usr/bin/env bash
# Build a model repository from the checkpoints mounted under /checkpoints (skipped when /models already
# holds one), then run tritonserver + the adapter with the same launcher as the embedded default.
set -euo pipefail
repo="${MODEL_REPOSITORY:-/models}"
if [ -z "$(ls -A "$repo" 2>/dev/null)" ]; then
  python -m builders deploy --checkpoints /checkpoints --out "$repo"
fi
exec python -m launcher serve --model-repository "$repo" \
  --tritonserver /opt/tritonserver/bin/tritonserver --backend-dir /opt/tritonserver/backends \
  --host 0.0.0.0 --port "${PORT:-9000}" --log-dir /tmp/logs
