"""builders.sdxl: tiny maker determinism, checkpoint checks, ONNX export with external data == torch modules."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from builders.__main__ import main as builders_main
from builders.onnx_export import check_weights_dtype, weights_dtype
from builders.progress import BuildError
from builders.sdxl import TINY_ID, build_model
from builders.sdxl.checkpoint import inspect_checkpoint
from builders.sdxl.export import ENGINES, save_onnx
from builders.sdxl.tiny import make_tiny_sdxl
from builders.target import BuildTarget
from builders.triton_config import get_parameters, load_config
from runtime.sdxl.engines import OrtEngine
from runtime.target import Device, EngineKind, Precision
from tests.unit.sdxl_build import tiny_build

ATOL = 1e-4


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    return tiny_build()[0]


@pytest.fixture(scope="module")
def version_dir() -> Path:
    return tiny_build()[1]


@pytest.fixture(scope="module")
def engines(version_dir) -> dict[str, Path]:
    return {name: version_dir / "engines" / f"{name}.onnx" for name in ENGINES}


def _weights(ckpt: Path) -> dict[str, bytes]:
    return {str(p.relative_to(ckpt)): p.read_bytes() for p in sorted(ckpt.rglob("*.safetensors"))}


def test_tiny_maker_is_deterministic_from_its_seed(checkpoint, tmp_path):
    again = make_tiny_sdxl(tmp_path / "again", seed=0)
    other = make_tiny_sdxl(tmp_path / "other", seed=1)
    assert _weights(again) == _weights(checkpoint)
    assert _weights(other).keys() == _weights(checkpoint).keys()
    assert all(_weights(other)[k] != v for k, v in _weights(checkpoint).items())


def test_external_data_forced_on_every_engine(engines):
    for name in ENGINES:
        data = engines[name].with_name(f"{name}.onnx.data")
        assert data.stat().st_size > engines[name].stat().st_size  # weights live outside the protobuf
        model = onnx.load(str(engines[name]), load_external_data=False)
        assert any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


@pytest.mark.parametrize("mode", ["always", "never"])
def test_weights_torch_wrote_as_one_file_per_tensor_are_rewritten(engines, tmp_path, mode):
    """Over 2 GB torch writes every tensor to its own file; the builder makes one .onnx.data (or inlines)."""
    traced = tmp_path / "traced" / "model.onnx"
    traced.parent.mkdir()
    model = onnx.load(str(engines["vae_decoder"]))
    onnx.save_model(model, str(traced), save_as_external_data=True, all_tensors_to_one_file=False, size_threshold=0)
    assert len(list(traced.parent.iterdir())) > 10
    save_onnx(traced, tmp_path / "vae_decoder.onnx", mode)
    assert (tmp_path / "vae_decoder.onnx.data").exists() == (mode == "always")
    latents = np.random.default_rng(0).standard_normal((1, 4, 8, 8), dtype=np.float32)
    expected = OrtEngine(engines["vae_decoder"]).run({"latents": latents})["image"]
    np.testing.assert_array_equal(OrtEngine(tmp_path / "vae_decoder.onnx").run({"latents": latents})["image"], expected)


def test_text_encoders_export_penultimate_states_and_pooled_embeds(checkpoint, engines):
    ids = np.array([[512, 100, 200, 513] + [513] * 73, [512, 7, 513] + [513] * 74], np.int64)
    one = CLIPTextModel.from_pretrained(checkpoint / "text_encoder").eval()
    two = CLIPTextModelWithProjection.from_pretrained(checkpoint / "text_encoder_2").eval()
    with torch.no_grad():
        ref1 = one(torch.from_numpy(ids), output_hidden_states=True)
        ref2 = two(torch.from_numpy(ids), output_hidden_states=True)
    out1 = OrtEngine(engines["text_encoder"]).run({"input_ids": ids})
    out2 = OrtEngine(engines["text_encoder_2"]).run({"input_ids": ids})
    np.testing.assert_allclose(out1["hidden_states"], ref1.hidden_states[-2].numpy(), atol=ATOL)
    np.testing.assert_allclose(out2["hidden_states"], ref2.hidden_states[-2].numpy(), atol=ATOL)
    np.testing.assert_allclose(out2["text_embeds"], ref2.text_embeds.numpy(), atol=ATOL)


def test_unet_export_with_text_time_conditioning_at_other_sizes(checkpoint, engines):
    unet = UNet2DConditionModel.from_pretrained(checkpoint / "unet").eval()
    session = OrtEngine(engines["unet"])
    for batch, h, w in ((2, 8, 8), (4, 16, 8)):  # dynamic batch, height and width
        gen = torch.Generator().manual_seed(h * w)
        sample, hidden = torch.randn(batch, 4, h, w, generator=gen), torch.randn(batch, 77, 64, generator=gen)
        text_embeds = torch.randn(batch, 32, generator=gen)
        time_ids = torch.tensor([[h * 8, w * 8, 0, 0, h * 8, w * 8]] * batch, dtype=torch.float32)
        t = torch.tensor([501.0])
        with torch.no_grad():
            ref = unet(sample, t, hidden, added_cond_kwargs={"text_embeds": text_embeds, "time_ids": time_ids}).sample
        out = session.run({"sample": sample.numpy(), "timestep": t.numpy(), "encoder_hidden_states": hidden.numpy(),
                           "text_embeds": text_embeds.numpy(), "time_ids": time_ids.numpy()})["noise_pred"]
        np.testing.assert_allclose(out, ref.numpy(), atol=ATOL)


def test_vae_decoder_export_is_fp32_and_matches(checkpoint, engines):
    vae = AutoencoderKL.from_pretrained(checkpoint / "vae").eval()
    latents = torch.randn(2, 4, 16, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = vae.decode(latents).sample
    out = OrtEngine(engines["vae_decoder"]).run({"latents": latents.numpy()})["image"]
    assert out.dtype == np.float32 and out.shape == (2, 3, 128, 64)
    np.testing.assert_allclose(out, ref.numpy(), atol=ATOL)


def test_build_places_engines_assets_and_config(version_dir):
    version = version_dir
    assert sorted(p.name for p in (version / "engines").iterdir()) == sorted(
        f"{e}.onnx{suffix}" for e in ENGINES for suffix in ("", ".data"))
    for asset in ("model.py", "tokenizer/tokenizer.json", "tokenizer_2/tokenizer.json",
                  "scheduler/scheduler_config.json", "vae/config.json"):
        assert (version / asset).is_file(), asset
    config = load_config(version.parent)
    params = get_parameters(config)
    assert config.name == TINY_ID and config.backend == "python"
    assert params["openai_task"] == "image-generation"
    assert params["sizes"] == "64x64,128x64" and params["default_steps"] == "4"
    assert config.instance_group[0].count == 2  # --instances: batches that run at once, one process each
    assert (params["ort_threads"], params["torch_threads"]) == ("1", "1")


def test_instance_and_thread_counts_are_checked(checkpoint, tmp_path):
    with pytest.raises(BuildError, match="instances"):
        build_model(checkpoint, tmp_path / "repo", TINY_ID, tmp_path / "work", sizes="64x64", default_size="64x64",
                    instances=0)


def _copy(checkpoint: Path, dest: Path) -> Path:
    shutil.copytree(checkpoint, dest)
    return dest


@pytest.mark.parametrize("breakage, needle", [
    (lambda c: shutil.rmtree(c), "not a directory"),
    (lambda c: (c / "model_index.json").unlink(), "model_index.json"),
    (lambda c: (c / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"})),
     "supports StableDiffusionXLPipeline"),
    (lambda c: shutil.rmtree(c / "text_encoder_2"), "missing component folders text_encoder_2"),
    (lambda c: (c / "unet" / "config.json").write_text(json.dumps({"addition_embed_type": None})), "text_time"),
])
def test_unsupported_checkpoints_fail_clearly(checkpoint, tmp_path, breakage, needle):
    broken = _copy(checkpoint, tmp_path / "ckpt")
    breakage(broken)
    with pytest.raises(BuildError, match=needle):
        inspect_checkpoint(broken)


def test_cli_reports_build_errors_with_exit_code_2(tmp_path, checkpoint, capsys):
    assert builders_main(["sdxl", "--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    bad_size = ["sdxl", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "r"),
                "--sizes", "64x64,72x72", "--default-size", "64x64"]
    assert builders_main(bad_size) == 2  # 72 is not a multiple of VAE scale x UNet downsampling (16)
    assert builders_main([*bad_size[:-4], "--sizes", "big"]) == 2
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("engine, expected", [
    (EngineKind.ONNXRUNTIME_CUDA, {"text_encoder": "fp16", "text_encoder_2": "fp16", "unet": "fp16",
                                   "vae_decoder": "fp32"}),  # the CUDA provider runs the graphs as exported
    (EngineKind.ONNXRUNTIME_TENSORRT, dict.fromkeys(ENGINES, "fp32")),  # TensorRT builds fp16 kernels itself
])
def test_cuda_builds_export_each_engine_in_the_precision_they_record(checkpoint, tmp_path, engine, expected):
    target = BuildTarget(Device.CUDA, engine)
    version = build_model(checkpoint, tmp_path / "repo", TINY_ID, tmp_path / "work", sizes="64x64",
                          default_size="64x64", steps=4, target=target)
    assert get_parameters(load_config(version.parent))["precision"] == "fp16"
    got = {name: weights_dtype(version / "engines" / f"{name}.onnx") for name in ENGINES}
    assert got == expected
    assert got == {name: target.for_family("sdxl").export_dtype(name) for name in ENGINES}


def test_a_graph_in_another_dtype_than_recorded_fails_the_build(engines):
    check_weights_dtype(engines["unet"], "fp32")
    with pytest.raises(BuildError, match="unet.onnx: weights exported in fp32, the build records fp16"):
        check_weights_dtype(engines["unet"], "fp16")


def test_bf16_is_refused_before_export_for_sdxl(checkpoint, tmp_path):
    target = BuildTarget(Device.CUDA, EngineKind.ONNXRUNTIME_CUDA, Precision.BF16)
    with pytest.raises(BuildError, match="no bf16 export"):
        build_model(checkpoint, tmp_path / "repo", TINY_ID, tmp_path / "work", sizes="64x64",
                    default_size="64x64", target=target)
