#!/usr/bin/env bash
# NVIDIA's aiperf (from PyPI, in its own venv) against `make serve`: chat streaming at c=32 and c=128 with the
# model's local tokenizer, then embeddings; after each chat run, bench/llm.py's own streaming client on the same
# server with the same setting (c, 4c requests, 64 output tokens on average, greedy, ignore_eos) for comparison.
#
#   bench/aiperf.sh [URL]     default: starts `make serve` on a free port and stops it at the end
#   (make aiperf)             results: build/aiperf/<run>/ and a summary table on stdout
set -euo pipefail
cd "$(dirname "$0")/.."
AIPERF_VENV=${AIPERF_VENV:-build/aiperf-venv}
AIPERF_VERSION=${AIPERF_VERSION:-0.13.0}
OUT=${OUT:-build/aiperf}
CONCURRENCY=${CONCURRENCY:-32 128}
CHAT_MODEL=tiny-llama-3
EMBED_MODEL=all-MiniLM-L6-v2
REPO=build/model_repository
mkdir -p "$OUT"

if [ ! -x "$AIPERF_VENV/bin/aiperf" ]; then
  python3 -m venv "$AIPERF_VENV"
  "$AIPERF_VENV/bin/pip" install -q "aiperf==$AIPERF_VERSION"
fi

URL=${1:-}
if [ -z "$URL" ]; then
  PORT=$(.venv/bin/python -c "from launcher.process import free_port; print(free_port())" 2>/dev/null || echo 9123)
  make repo > /dev/null
  setsid make serve PORT="$PORT" > "$OUT/serve.log" 2>&1 &
  SERVE_PID=$!
  trap 'kill -TERM -- -$SERVE_PID 2>/dev/null || true; wait $SERVE_PID 2>/dev/null || true' EXIT
  URL="http://127.0.0.1:$PORT"
  for _ in $(seq 1 300); do
    curl -sf "$URL/health/ready" > /dev/null && break
    kill -0 "$SERVE_PID" 2>/dev/null || { cat "$OUT/serve.log"; exit 1; }
    sleep 1
  done
fi
echo "server: $URL  (load average $(cut -d' ' -f1 /proc/loadavg), $(nproc) CPUs)"

aiperf() {  # HF_HUB_OFFLINE stays unset for aiperf (it loads the local tokenizer folder)
  env -u HF_HUB_OFFLINE "$AIPERF_VENV/bin/aiperf" profile --url "$URL" --ui-type none --random-seed 0 "$@" \
    > "$OUT/$RUN.log" 2>&1 || { tail -30 "$OUT/$RUN.log"; exit 1; }
}

summary() {  # one line from aiperf's JSON export
  "$AIPERF_VENV/bin/python" - "$OUT/$RUN" "$RUN" <<'EOF'
import json, pathlib, sys
path = next(pathlib.Path(sys.argv[1]).rglob("profile_export_aiperf.json"))
m = json.loads(path.read_text())
def get(key, stat="avg"):
    v = m.get(key) or {}
    return v.get(stat) if isinstance(v, dict) else None
fmt = lambda v: "-" if v is None else f"{v:.1f}"
print(f"| aiperf | {sys.argv[2]} | {fmt(get('output_token_throughput'))} | {fmt(get('request_throughput'))} | "
      f"{fmt(get('time_to_first_token', 'p50'))} | {fmt(get('inter_token_latency', 'p50'))} |")
EOF
}

echo "| tool | run | output tok/s | requests/s | TTFT p50 ms | ITL p50 ms |"
echo "|---|---|---|---|---|---|"
for C in $CONCURRENCY; do
  RUN=chat-c$C
  aiperf --model "$CHAT_MODEL" --endpoint-type chat --streaming --concurrency "$C" --request-count $((4 * C)) \
    --warmup-request-count "$C" --isl 30 --isl-stddev 10 --osl 64 --osl-stddev 16 \
    --extra-inputs ignore_eos:true --extra-inputs temperature:0 --use-server-token-count \
    --tokenizer "$REPO/$CHAT_MODEL/1/tokenizer" --artifact-dir "$OUT/$RUN"
  summary
  .venv/bin/python - "$URL" "$C" <<'EOF'
import sys
sys.path.insert(0, ".")
from bench.llm import HttpClient, prompts
url, c = sys.argv[1], int(sys.argv[2])
client = HttpClient(url)
r = client.served("tiny-llama-3", prompts(4 * c, 64, seed=c), c, True)
client.close()
print(f"| bench/llm.py | chat-c{c} | {r['tok_s']:.1f} | {4 * c / r['wall']:.1f} | {r['ttft_p50']:.1f} | {r['itl_p50']:.1f} |")
EOF
done
RUN=embeddings-c8
aiperf --model "$EMBED_MODEL" --endpoint-type embeddings --concurrency 8 --request-count 256 --warmup-request-count 8 \
  --isl 32 --isl-stddev 8 --tokenizer "$REPO/${EMBED_MODEL}__tokenizer/1/tokenizer" --artifact-dir "$OUT/$RUN"
summary
