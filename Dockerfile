# Production image for GPU nodes (the default stage, `gpu`): NVIDIA Triton 24.10 (tritonserver 2.51, the same
# server as the embedded default) with CUDA 12.6, cuDNN 9.5 and TensorRT 10.5, plus onnxruntime-gpu 1.20.2, the
# release whose documented build matches them (ONNX Runtime 1.20: CUDA 12.0-12.6, TensorRT 10.4, cuDNN 9; the
# 10.5 runtime keeps TensorRT 10's ABI). The newest onnxruntime-gpu is built for CUDA 13 and would not load its
# CUDA provider here. Engines are built and compiled on first start from the checkpoints mounted under
# /checkpoints (docker/entrypoint.sh), then tritonserver and the adapter start through `python -m launcher serve`.
# Other images (the TensorRT-LLM container) are their own stages above it: build one with `--target NAME`;
# the gpu stage stays last, so a plain `docker build .` builds it.

# ---- trtllm: models larger than one GPU (Llama-3-70B) on TensorRT-LLM -------------------------------------------
# `docker build --target trtllm -t triton-openai:trtllm .` Triton 25.10's TensorRT-LLM container ships
# TensorRT-LLM 1.0.0 (the version runtime/llm/trtllm_engine.py is written against), its torch, transformers, MPI
# and tritonserver; we add the adapter's dependencies and our package, not another torch or transformers.
# Engines are built in a job on the serving GPU type with this same image (README: "Llama-3-70B-Instruct on
# 4x H100 80GB or 2x H200") and mounted at /models; this image serves a built repository, it does not build one.
FROM nvcr.io/nvidia/tritonserver:25.10-trtllm-python-py3 AS trtllm
ARG TRTLLM_TAG=v1.0.0
ENV PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false MODEL_REPOSITORY=/models PORT=9000 \
    TRTLLM_EXAMPLES=/opt/tensorrt_llm/examples
WORKDIR /opt/triton-openai

# The checkpoint converters are examples in the library's repository, not in its wheel: take the installed tag's.
RUN git clone --depth 1 --branch "${TRTLLM_TAG}" --filter=blob:none --sparse \
      https://github.com/NVIDIA/TensorRT-LLM.git /tmp/trtllm \
 && git -C /tmp/trtllm sparse-checkout set examples/models/core/llama examples/quantization \
 && mkdir -p /opt/tensorrt_llm && mv /tmp/trtllm/examples /opt/tensorrt_llm/examples && rm -rf /tmp/trtllm \
 && pip install -r /opt/tensorrt_llm/examples/models/core/llama/requirements.txt

# Our additions, under requirements.txt's pins less what the container brings (docker/pins.py resolves the same).
COPY requirements.txt pyproject.toml docker/trtllm-requirements.in ./
RUN grep -vE '^(nvidia-pytriton|torch|triton|transformers|tokenizers|numpy|safetensors|huggingface_hub|protobuf)==' \
      requirements.txt > /tmp/constraints.txt \
 && pip install -c /tmp/constraints.txt -r trtllm-requirements.in

COPY adapter adapter
COPY builders builders
COPY runtime runtime
COPY launcher launcher
COPY model_repository model_repository
COPY tests tests
COPY Makefile ./
RUN pip install --no-deps .

EXPOSE 9000
VOLUME ["/models"]
# Loading 70B weights onto the ranks takes minutes: a long readiness timeout.
CMD ["python3", "-m", "launcher", "serve", "--model-repository", "/models", \
     "--tritonserver", "/opt/tritonserver/bin/tritonserver", "--backend-dir", "/opt/tritonserver/backends", \
     "--host", "0.0.0.0", "--port", "9000", "--log-dir", "/tmp/logs", "--timeout", "1800"]

# ---- gpu (default): ONNX Runtime / TensorRT engines ---------------------------------------------------------------
FROM nvcr.io/nvidia/tritonserver:24.10-py3 AS gpu

ENV PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
    MODEL_REPOSITORY=/models PORT=9000 DEVICE=cuda
WORKDIR /opt/triton-openai

# Dependencies first (cached layer), locked for this image's Python 3.10 (requirements.txt's pins are for the
# embedded 3.11 stack): docker/gpu-requirements.txt, from gpu-requirements.in by `python docker/pins.py lock gpu`.
# torch is the CUDA 12.6 / cuDNN 9.5 build, as the image's libraries; ONNX Runtime is onnxruntime-gpu, never the
# CPU package (both provide the `onnxruntime` module). The container brings its own tritonserver.
COPY pyproject.toml docker/gpu-requirements.txt ./
RUN pip install -r gpu-requirements.txt \
 && python3 -c "import onnxruntime as o; assert 'TensorrtExecutionProvider' in o.get_available_providers(), o.get_available_providers()" \
 && python3 -c "import torch; assert torch.version.cuda.startswith('12.'), torch.version.cuda"

COPY adapter adapter
COPY builders builders
COPY runtime runtime
COPY launcher launcher
COPY bench bench
COPY model_repository model_repository
COPY docker/entrypoint.sh /usr/local/bin/entrypoint.sh
RUN pip install --no-deps .

EXPOSE 9000
VOLUME ["/checkpoints", "/models"]
ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]
