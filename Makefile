# Two entry points for a fresh machine: `make serve` and `make test`. Both are idempotent: the venv is
# rebuilt only when requirements change, the demo repository only when builders/runtime/templates change.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
REPO ?= build/model_repository
HOST ?= 127.0.0.1
PORT ?= 9000
PYTEST_ARGS ?=
INSTALLED := $(VENV)/.installed
SOURCES := $(shell find builders runtime model_repository -type f \( -name '*.py' -o -name '*.pbtxt' -o -name '*.json' \) 2>/dev/null)

# onnxruntime-gpu cannot share a venv with onnxruntime: a second small venv holds only it (the pin of the GPU
# image) and reaches everything else through the main venv's site-packages; tests/unit/test_ort_gpu.py runs the
# GPU-provider session paths in it (tests/ort_gpu/). GPU_REPO: the cuda demo repository of make test-gpu.
ORT_GPU_VENV ?= .venv-ort-gpu
ORT_GPU_PIN := onnxruntime-gpu==1.20.2
GPU_REPO ?= build/gpu_repository

.PHONY: venv repo serve test test-loaded unit bench clean ort-gpu-venv test-gpu gpu-check test-gpu-trtllm aiperf

venv: $(INSTALLED)

$(INSTALLED): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt 2>&1 | { grep -v "^WARNING: Location '" || true; }
	$(PY) -m pip install -q --no-deps -e . 2>&1 | { grep -v "^WARNING: Location '" || true; }
	touch $@

repo: $(REPO)/.built

$(REPO)/.built: $(INSTALLED) $(SOURCES)
	HF_HUB_OFFLINE=1 $(PY) -m builders demo --out $(REPO)
	touch $@

serve: repo
	HOST=$(HOST) PORT=$(PORT) $(PY) -m launcher serve --model-repository $(REPO)

$(ORT_GPU_VENV)/.installed: $(INSTALLED) Makefile
	rm -rf $(ORT_GPU_VENV)
	"$$($(PY) -c 'import sys; print(sys._base_executable)')" -m venv $(ORT_GPU_VENV)
	$(ORT_GPU_VENV)/bin/python -m pip install -q --no-deps $(ORT_GPU_PIN) 2>&1 | { grep -v "^WARNING: Location '" || true; }
	echo "import site; site.addsitedir('$$($(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")')" \
	  > "$$($(ORT_GPU_VENV)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/main_venv.pth"
	touch $@

ort-gpu-venv: $(ORT_GPU_VENV)/.installed

test: repo ort-gpu-venv
	MODEL_REPOSITORY=$(REPO) HF_HUB_OFFLINE=1 $(PY) -m pytest -q -rs $(PYTEST_ARGS)

# The timing-sensitive tests (stopping, draining, signals, supervision) while busy processes keep every core
# taken, as on a shared CI machine (tests/cpu_load.py); deadlines stretch by TEST_TIME_SCALE (tests/timing.py).
LOADED_TESTS ?= tests/unit/test_launcher_signals.py tests/integration/test_faults_shutdown.py \
  tests/integration/test_stop_after_traffic.py tests/integration/test_drain.py tests/integration/test_supervision.py
test-loaded: repo
	MODEL_REPOSITORY=$(REPO) HF_HUB_OFFLINE=1 $(PY) -m tests.cpu_load -- $(PY) -m pytest -q -rs -p no:cacheprovider \
	  $(LOADED_TESTS) $(PYTEST_ARGS)

unit: venv ort-gpu-venv
	$(PY) -m pytest -q tests/unit

# Chat and completions suites against a TensorRT-LLM entry of the tiny Llama (GPU + TensorRT-LLM, e.g. in the
# Dockerfile's trtllm stage; TP=2 for two ranks). Fails loudly where either is missing.
test-gpu-trtllm:
	bash tests/gpu/trtllm.sh $(PYTEST_ARGS)

# GPU nodes only (needs an NVIDIA GPU, CUDA 12, cuDNN 9, TensorRT 10 and onnxruntime-gpu, as in the image):
# the cuda demo repository, compiled, served and compared with the CPU path; fails without a GPU.
test-gpu: venv
	$(PY) -m tests.gpu.check require && $(MAKE) repo
	$(PY) -m tests.gpu.check tests --cpu-repo $(REPO) --gpu-repo $(GPU_REPO)

gpu-check: venv
	$(PY) -m tests.gpu.check require && $(MAKE) repo
	$(PY) -m tests.gpu.check all --cpu-repo $(REPO) --gpu-repo $(GPU_REPO)

aiperf: repo  # NVIDIA aiperf (own venv, build/aiperf-venv) against `make serve` (started and stopped here)
	bench/aiperf.sh

clean:
	rm -rf build
