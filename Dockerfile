# Production image for GPU nodes (the default stage, `gpu`): NVIDIA Triton 24.10 (tritonserver 2.51, the same
# server as the embedded default) with CUDA 12.6, cuDNN 9.5 and TensorRT 10.5, plus onnxruntime-gpu 1.20.2, the
# release whose documented build matches them (ONNX Runtime 1.20: CUDA 12.0-12.6, TensorRT 10.4, cuDNN 9; the
# 10.5 runtime keeps TensorRT 10's ABI). The newest onnxruntime-gpu is built for CUDA 13 and would not load its
# CUDA provider here. Engines are built and compiled on first start from the checkpoints mounted under
# /checkpoints (docker/entrypoint.sh), then tritonserver and the adapter start through `python -m launcher serve`.
# Other images (the TensorRT-LLM container) are their own stages below: build one with `--target NAME`.
FROM nvcr.io/nvidia/tritonserver:24.10-py3 AS gpu

ENV PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
    MODEL_REPOSITORY=/models PORT=9000 DEVICE=cuda
WORKDIR /opt/triton-openai

# Dependencies first (cached layer); requirements.txt pins versions. The container brings its own
# tritonserver; torch comes as the CUDA build (the pinned version's default wheel). ONNX Runtime is the `gpu`
# extra's pin, never the CPU package: both provide the `onnxruntime` module and cannot be installed together.
COPY requirements.txt pyproject.toml ./
RUN grep -vE '^(nvidia-pytriton|torch|onnxruntime)==' requirements.txt > /tmp/constraints.txt \
 && gpu_pin=$(grep -o 'onnxruntime-gpu==[0-9.]*' pyproject.toml) \
 && pip install -c /tmp/constraints.txt torch==2.13.0 "tritonclient[grpc]" fastapi uvicorn httptools uvloop pydantic \
      pydantic-settings "numpy<2" transformers tokenizers onnx $gpu_pin diffusers Pillow prometheus-client rich orjson \
      sentence-transformers \
 && python3 -c "import onnxruntime as o; assert 'TensorrtExecutionProvider' in o.get_available_providers(), o.get_available_providers()"

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
