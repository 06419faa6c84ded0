"""The GPU target without a GPU: decisions, provider options, profiles from limits, the cuda demo repository's
configs through Triton's own protobuf, pooling in the graph, manifests, and `builders compile` refusing."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from builders.embeddings.pooled_graph import add_pooling
from builders.profiles import CompilePlan, encoder_ranges, length_tiers, plan_path, sdxl_ranges
from builders.progress import BuildError
from builders.target import BuildTarget
from runtime.embeddings.batching import plan_chunks
from runtime.embeddings.pooling import PoolingMode, PoolingSpec, pool
from runtime.engine_manifest import (BuildEnvironment, EngineManifest, EngineMismatch, EngineNotCompiled,
                                     check_environment, load_compiled, manifest_path)
from runtime.gpu_probe import GpuUnavailable, format_tensorrt_version, gpu_info
from runtime.providers import CUDA, TENSORRT, CompileOptions, GpuOptions, Profile, providers_for
from runtime.target import Device, EngineKind, EngineTarget, Precision

# Provider option names parsed by onnxruntime-gpu 1.20.2 (strings of its libonnxruntime_providers_*.so and pybind).
ORT_1_20_OPTIONS = {
    CUDA: {"device_id", "arena_extend_strategy", "cudnn_conv_algo_search", "do_copy_in_default_stream",
           "enable_cuda_graph", "user_compute_stream", "gpu_mem_limit"},
    TENSORRT: {"device_id", "trt_fp16_enable", "trt_cuda_graph_enable", "user_compute_stream",
               "trt_engine_cache_enable", "trt_dump_ep_context_model", "trt_ep_context_file_path",
               "trt_ep_context_embed_mode", "trt_timing_cache_enable", "trt_timing_cache_path",
               "trt_max_workspace_size", "trt_builder_optimization_level", "trt_profile_min_shapes",
               "trt_profile_opt_shapes", "trt_profile_max_shapes"}}
ROOT = Path(__file__).resolve().parents[2]


def test_cpu_default_is_unchanged_and_cuda_defaults_per_family():
    cpu = BuildTarget().for_family("embeddings")
    assert (cpu.engine, cpu.precision, cpu.export_dtype()) == (EngineKind.ONNXRUNTIME, Precision.FP32, "fp32")
    gpu = BuildTarget(Device.CUDA)
    assert gpu.for_family("embeddings").engine is EngineKind.ONNXRUNTIME_TENSORRT
    assert gpu.for_family("llm").engine is EngineKind.ONNXRUNTIME_CUDA  # KV cache grows: no TensorRT box profile
    assert gpu.precision is Precision.FP16
    sdxl = gpu.for_family("sdxl")
    assert sdxl.component("unet").precision is Precision.FP16
    assert sdxl.component("vae_decoder").precision is Precision.FP32  # SDXL's VAE overflows in fp16
    assert sdxl.export_dtype("unet") == "fp32"  # TensorRT lowers it (trt_fp16_enable)
    assert gpu.for_family("llm").export_dtype() == "fp16"  # weights and KV cache


@pytest.mark.parametrize("kwargs, family, message", [
    ({"device": Device.CPU, "requested_engine": EngineKind.ONNXRUNTIME_TENSORRT}, "sdxl", "does not run"),
    ({"device": Device.CUDA, "requested_engine": EngineKind.ONNXRUNTIME_TENSORRT}, "llm", "does not run llm"),
    ({"device": Device.CPU, "requested_precision": Precision.BF16}, "llm", "bf16 needs --device cuda"),
    ({"device": Device.CUDA, "instances_per_gpu": 0}, "llm", "instances-per-gpu"),
])
def test_invalid_targets_are_build_errors(kwargs, family, message):
    with pytest.raises(BuildError, match=message):
        BuildTarget(**kwargs).for_family(family)


def test_bf16_under_tensorrt_is_refused_for_graphs_tensorrt_lowers():
    with pytest.raises(BuildError, match="bf16 under TensorRT"):
        BuildTarget(Device.CUDA, requested_precision=Precision.BF16).for_family("embeddings").export_dtype()


def test_provider_lists_and_options_per_target():
    assert providers_for(EngineTarget()) == [("CPUExecutionProvider", {})]
    cuda = providers_for(EngineTarget(Device.CUDA, EngineKind.ONNXRUNTIME_CUDA), GpuOptions(2, stream=1234))
    assert [n for n, _ in cuda] == [CUDA] and cuda[0][1]["device_id"] == "2"
    assert cuda[0][1]["user_compute_stream"] == "1234"
    profile = Profile({"x": (1, 4)}, {"x": (2, 8)}, {"x": (4, 16)})
    compile_opts = CompileOptions(Path("/r/m_ctx.onnx"), (profile, profile), Path("/cache"))
    trt = providers_for(EngineTarget(Device.CUDA, EngineKind.ONNXRUNTIME_TENSORRT),
                        GpuOptions(1, fp16=True, cuda_graph=True, compile=compile_opts))
    assert [n for n, _ in trt] == [TENSORRT, CUDA]  # CUDA EP takes what TensorRT cannot
    options = trt[0][1]
    assert options["trt_fp16_enable"] == "True" and options["trt_cuda_graph_enable"] == "True"
    assert options["trt_dump_ep_context_model"] == "True" and options["trt_ep_context_embed_mode"] == "0"
    assert options["trt_profile_max_shapes"] == "x:4x16,x:4x16"  # an input repeated = a second profile
    for name, opts in trt + cuda:
        assert set(opts) <= ORT_1_20_OPTIONS[name], set(opts) - ORT_1_20_OPTIONS[name]


def test_encoder_profiles_bound_tokens_and_chunks_fit_them():
    tiers = length_tiers(512)
    ranges = encoder_ranges(512, 2048, 16384, tiers)
    assert ranges == [{"batch": (1, 128, 128), "sequence": (1, 128, 128)},
                      {"batch": (1, 32, 32), "sequence": (129, 512, 512)}]
    lengths = np.random.default_rng(0).integers(1, 513, 3000)
    for rows in plan_chunks(lengths, 16384, tiers):
        width = int(lengths[rows].max())
        fits = [r for r in ranges if r["sequence"][0] <= width <= r["sequence"][2] and len(rows) <= r["batch"][2]]
        assert fits, (len(rows), width)


def test_sdxl_profiles_from_sizes_and_batch_limit():
    sizes, default = [(1024, 1024), (1344, 768), (768, 1344)], (1024, 1024)
    unet = sdxl_ranges("unet", sizes, default, 8, 4)
    assert unet == {"batch": (1, 2, 8), "height": (96, 128, 168), "width": (96, 128, 168)}
    assert sdxl_ranges("text_encoder_2", sizes, default, 8, 4) == {"batch": (1, 2, 2)}
    assert sdxl_ranges("vae_decoder", sizes, default, 8, 4)["batch"] == (1, 1, 4)


@pytest.fixture(scope="module")
def cuda_repo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gpu") / "repo"
    run = subprocess.run([sys.executable, "-m", "builders", "demo", "--device", "cuda", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin"})
    assert run.returncode == 0, run.stderr[-3000:]
    return out


def _configs(repo: Path) -> dict[str, model_config_pb2.ModelConfig]:
    return {p.parent.name: text_format.Parse(p.read_text(), model_config_pb2.ModelConfig())
            for p in repo.glob("*/config.pbtxt")}


def test_cuda_demo_repository_configs_parse_with_kind_gpu_and_tensorrt(cuda_repo):
    configs = _configs(cuda_repo)
    engines = {name: c for name, c in configs.items() if c.backend == "python" and "__tokenizer" not in name}
    llms = {"tiny-llama-3": "fp16", "tiny-llama-3-int4": "int4"}  # no int8 on cuda (builders/llm/export.py)
    assert set(engines) == {*llms, "tiny-sdxl", "all-MiniLM-L6-v2__encoder"}
    for name, config in engines.items():
        assert [g.kind for g in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_GPU], name
        assert config.instance_group[0].count == 1 and not config.instance_group[0].gpus  # one per GPU
        params = {k: v.string_value for k, v in config.parameters.items()}
        assert params["device"] == "cuda" and params["precision"] == llms.get(name, "fp16"), name
    kinds = {name: c.parameters["engine_kind"].string_value for name, c in engines.items()}
    assert kinds == {**dict.fromkeys(llms, "onnxruntime-cuda"), "tiny-sdxl": "onnxruntime-tensorrt",
                     "all-MiniLM-L6-v2__encoder": "onnxruntime-tensorrt"}
    assert configs["all-MiniLM-L6-v2__tokenizer"].instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert configs["all-MiniLM-L6-v2"].parameters["engine_kind"].string_value == "onnxruntime-tensorrt"


def test_cuda_demo_repository_plans_every_tensorrt_graph(cuda_repo):
    graphs = sorted(p.relative_to(cuda_repo) for p in cuda_repo.rglob("*.onnx"))
    planned = sorted(p.relative_to(cuda_repo) for p in cuda_repo.rglob("*.onnx") if plan_path(p).exists())
    assert [str(p) for p in planned] == [str(p) for p in graphs if not str(p).startswith("tiny-llama-3")]
    vae = CompilePlan.from_json(plan_path(cuda_repo / "tiny-sdxl/1/engines/vae_decoder.onnx").read_text())
    assert vae.precision == "fp32" and vae.profiles[0].max["latents"] == (2, 4, 16, 16)  # 2 images, 128x128


def test_builders_compile_refuses_without_a_gpu(cuda_repo):
    run = subprocess.run([sys.executable, "-m", "builders", "compile", str(cuda_repo)], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode != 0
    assert "needs an NVIDIA GPU" in run.stderr and "libcuda.so.1" in run.stderr


def test_gpu_probe_names_the_missing_driver():
    with pytest.raises(GpuUnavailable, match="libcuda.so.1"):
        gpu_info(0)
    assert format_tensorrt_version(100500) == "10.5.0"


@pytest.mark.parametrize("mode, normalize", [(PoolingMode.MEAN, True), (PoolingMode.MEAN, False),
                                             (PoolingMode.CLS, True)])
def test_pooling_in_the_graph_matches_runtime_pooling(tmp_path, mode, normalize):
    import onnx  # noqa: PLC0415
    import onnxruntime as ort  # noqa: PLC0415
    from onnx import TensorProto, helper  # noqa: PLC0415

    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])
    out = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", 3])
    weights = helper.make_tensor("w", TensorProto.FLOAT, [1, 3], [0.5, -1.0, 2.0])
    nodes = [helper.make_node("Cast", ["input_ids"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["f", "ax"], ["u"]), helper.make_node("Mul", ["u", "w"], ["m"]),
             helper.make_node("Sin", ["m"], ["last_hidden_state"])]
    ax = helper.make_tensor("ax", TensorProto.INT64, [1], [-1])
    model = helper.make_model(helper.make_graph(nodes, "g", [ids, mask], [out], [weights, ax]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "m.onnx"))
    spec = PoolingSpec(mode, normalize)
    pooled = add_pooling(tmp_path / "m.onnx", tmp_path / "p.onnx", spec)
    x = np.array([[5, 7, 9, 0], [3, 0, 0, 0]], np.int64)
    m = (x > 0).astype(np.int64)
    states = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"input_ids": x, "attention_mask": m})[0]
    got = ort.InferenceSession(str(pooled)).run(None, {"input_ids": x, "attention_mask": m})[0]
    np.testing.assert_allclose(got, pool(states, m, spec), rtol=1e-6, atol=1e-7)


ENV = BuildEnvironment("NVIDIA H100 80GB HBM3", "9.0", "10.5.0", "1.20.2")


def test_manifest_mismatch_names_both_sides():
    check_environment(ENV, ENV, "unet.onnx")
    other = BuildEnvironment("NVIDIA L40S", "8.9", "10.5.0", "1.20.2")
    with pytest.raises(EngineMismatch) as err:
        check_environment(ENV, other, "unet.onnx")
    text = str(err.value)
    assert "H100" in text and "L40S" in text and "'9.0'" in text and "'8.9'" in text and "tensorrt" not in text
    with pytest.raises(EngineMismatch, match="tensorrt_version: built with '10.5.0', serving has '10.6.0'"):
        check_environment(ENV, BuildEnvironment(ENV.gpu_name, "9.0", "10.6.0", "1.20.2"), "unet.onnx")


def test_load_compiled_reads_the_manifest(tmp_path):
    graph = tmp_path / "unet.onnx"
    with pytest.raises(EngineNotCompiled, match="builders compile"):
        load_compiled(graph, ENV)
    manifest = EngineManifest(ENV, "unet.onnx", "unet_ctx.onnx", ("TensorrtExecutionProvider_x.engine",), "fp16",
                              {"profiles": []})
    manifest_path(graph).write_text(manifest.to_json())
    assert EngineManifest.from_json(manifest_path(graph).read_text()) == manifest
    assert load_compiled(graph, ENV) == tmp_path / "unet_ctx.onnx"
    with pytest.raises(EngineMismatch):
        load_compiled(graph, BuildEnvironment(ENV.gpu_name, ENV.compute_capability, ENV.tensorrt_version, "1.21.0"))


def test_gpu_check_metrics():
    from tests.gpu.check import min_cosine, psnr_db, same_prefix  # noqa: PLC0415

    a = np.array([[1.0, 0.0], [0.6, 0.8]])
    assert min_cosine(a, a) == pytest.approx(1.0) and min_cosine(a, a[::-1]) == pytest.approx(0.6)
    image = np.full((4, 4, 3), 100, np.uint8)
    assert psnr_db(image, image) == float("inf")
    assert psnr_db(image, image + 1) == pytest.approx(48.13, abs=0.01)
    assert same_prefix(list(range(20)), list(range(16)) + [0]) and not same_prefix([1] * 16, [1] * 15 + [2])


@pytest.mark.parametrize("what", ["tests", "benches"])
def test_gpu_check_refuses_without_a_gpu(what):
    run = subprocess.run([sys.executable, "-m", "tests.gpu.check", what], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode != 0 and "GPU check FAILED" in run.stderr and "libcuda.so.1" in run.stderr


def test_no_parameter_is_empty(cuda_repo):
    """Triton's JSON form of a parameter drops an empty string_value (readers then fail): never write one."""
    empty = [(p.parent.name, k) for p in cuda_repo.glob("*/config.pbtxt")
             for k, v in text_format.Parse(p.read_text(), model_config_pb2.ModelConfig()).parameters.items()
             if not v.string_value]
    assert not empty


def test_cpu_encoder_parameters_have_no_empty_value():
    from runtime.embeddings.params import EncoderParams  # noqa: PLC0415

    params = EncoderParams(PoolingSpec()).to_parameters()
    assert all(params.values()) and EncoderParams.from_parameters(params).length_tiers == ()


def test_gpu_check_compares_both_sdxl_entries_at_every_size():
    from tests.gpu.check import CUDA_EP_SDXL, IMAGE_SIZES, image_rows  # noqa: PLC0415

    image = np.full((4, 4, 3), 100, np.uint8)
    cpu = {("tiny-sdxl", size): image for size in IMAGE_SIZES}
    gpu = {(model, size): image + (model == CUDA_EP_SDXL) * 40 for model in ("tiny-sdxl", CUDA_EP_SDXL)
           for size in IMAGE_SIZES}
    rows = image_rows(cpu, gpu)
    assert [(name.split(" image")[0], ok) for name, _, ok in rows] == [
        (f"tiny-sdxl {s}", True) for s in IMAGE_SIZES] + [(f"{CUDA_EP_SDXL} {s}", False) for s in IMAGE_SIZES]


def test_gpu_check_builds_the_cuda_provider_sdxl_entry(tmp_path, monkeypatch):
    import builders.compile  # noqa: PLC0415
    import builders.demo  # noqa: PLC0415
    from tests.gpu import check as gpu_check  # noqa: PLC0415

    calls = []
    monkeypatch.setattr(builders.demo, "build_demo", lambda repo, work, target: calls.append(("demo", target)))
    monkeypatch.setattr(gpu_check, "build_cuda_ep_sdxl", lambda repo, work: calls.append(("cuda-ep", work.name)))
    monkeypatch.setattr(builders.compile, "compile_repository", lambda repo: calls.append(("compile", repo)))
    gpu_check.build_gpu_repository(tmp_path / "repo")
    assert [c[0] for c in calls] == ["demo", "cuda-ep", "compile"]
    assert calls[1][1] == gpu_check.CUDA_EP_SDXL
