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
      pydantic-settings "numpy<2" transformers tokenizers onnx onnxruntime-gpu diffusers accelerate Pillow \
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
