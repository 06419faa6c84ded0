#!/usr/bin/env bash
# llama.cpp's side of bench/peers.py: a venv with llama-cpp-python built from source, and bench-llama's checkpoint
# converted to GGUF by llama.cpp's own converter (f32), then quantized to Q4_K_M by llama.cpp's quantizer.
#   bash bench/peers_gguf.sh            (after bench/peers.py has built build/peers/bench-llama/checkpoint)
#   LLAMA_CPP_PYTHON=build/peers/llamacpp/bin/python .venv/bin/python bench/peers.py
# The source build takes ~10 minutes on 2 cores. GGML_CPU_REPACK=OFF: Q4 weights repacked for this CPU's AMX
# crashed at load here.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.3.36
WORK=build/peers
VENV=$WORK/llamacpp
SRC=$WORK/llama-cpp-python-src
CKPT=$WORK/bench-llama/checkpoint
OUT=$WORK/gguf

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch==2.13.0 numpy sentencepiece "transformers==5.24.0"
  CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_CPU_REPACK=OFF" "$VENV/bin/pip" install -q "llama-cpp-python==$VERSION" \
    --no-binary llama-cpp-python
fi
if [ ! -f "$SRC/vendor/llama.cpp/convert_hf_to_gguf.py" ]; then
  mkdir -p "$SRC"
  "$VENV/bin/pip" download -q --no-deps --no-binary :all: -d "$WORK" "llama-cpp-python==$VERSION"
  tar -xzf "$WORK/llama_cpp_python-$VERSION.tar.gz" -C "$SRC" --strip-components=1
fi
mkdir -p "$OUT"
[ -f "$OUT/model-f32.gguf" ] || PYTHONPATH="$SRC/vendor/llama.cpp/gguf-py" "$VENV/bin/python" \
  "$SRC/vendor/llama.cpp/convert_hf_to_gguf.py" "$CKPT" --outtype f32 --outfile "$OUT/model-f32.gguf"
[ -f "$OUT/model-q4_k_m.gguf" ] || "$VENV/bin/python" - "$OUT" <<'EOF'
import ctypes, sys
import llama_cpp
out = sys.argv[1]
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
params.nthread = 2
rc = llama_cpp.llama_model_quantize(f"{out}/model-f32.gguf".encode(), f"{out}/model-q4_k_m.gguf".encode(),
                                    ctypes.byref(params))
sys.exit(rc)
EOF
ls -la "$OUT"
