# Production image: NVIDIA Triton 24.10 (tritonserver 2.51, the same server as the embedded default),
# with TensorRT, the Python backend and CUDA. Engines are built at start from checkpoints mounted under
# /checkpoints (see docker/entrypoint.sh), then tritonserver and the adapter start through the same
# `python -m launcher serve` entry point as `make serve`, pointed at the container's own tritonserver.
FROM nvcr.io/nvidia/tritonserver:24.10-py3

ENV PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
    MODEL_REPOSITORY=/models PORT=9000
WORKDIR /opt/triton-openai

# Dependencies first (cached layer); requirements.txt pins versions. The container brings its own
# tritonserver and a CUDA torch build, so the embedded-only extras are not installed.
COPY requirements.txt pyproject.toml ./
RUN grep -vE '^(nvidia-pytriton|torch)==' requirements.txt > /tmp/constraints.txt \
 && pip install -c /tmp/constraints.txt torch==2.13.0 "tritonclient[grpc]" fastapi uvicorn pydantic \
      pydantic-settings "numpy<2" transformers tokenizers onnx onnxruntime-gpu diffusers Pillow \
      prometheus-client rich sentence-transformers

COPY adapter adapter
COPY builders builders
COPY runtime runtime
COPY launcher launcher
COPY model_repository model_repository
COPY docker/entrypoint.sh /usr/local/bin/entrypoint.sh
RUN pip install --no-deps .

EXPOSE 9000
VOLUME ["/checkpoints", "/models"]
ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]

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

COPY requirements.txt pyproject.toml ./
RUN grep -vE '^(nvidia-pytriton|torch|transformers|tokenizers|numpy|safetensors|huggingface_hub|protobuf)==' \
      requirements.txt > /tmp/constraints.txt \
 && pip install -c /tmp/constraints.txt "tritonclient[grpc]" fastapi uvicorn httptools uvloop pydantic \
      pydantic-settings prometheus-client rich orjson onnx diffusers \
      pytest pytest-timeout pytest-asyncio openai httpx  # make test-gpu-trtllm runs in this image

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
