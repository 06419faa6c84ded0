"""`builders compile` without a GPU: check_context_model on hand-made EPContext models, the context model the
direct TensorRT route writes, and which route a graph takes (over 2 GB: TensorRT's own parser, never one
protobuf through ONNX Runtime)."""
from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from builders import compile as compile_mod
from builders.compile import check_context_model, compile_graph
from builders.onnx_export import PROTOBUF_LIMIT
from builders.profiles import CompilePlan
from builders.progress import BuildError
from builders.trt_direct import EPCONTEXT_DOMAIN, trt_architecture, write_context_model
from runtime.engine_manifest import BuildEnvironment, EngineManifest, context_path, manifest_path
from runtime.providers import Profile

ENV = BuildEnvironment("NVIDIA H100 80GB HBM3", "9.0", "10.5.0", "1.20.2")
PLAN = CompilePlan("fp16", (Profile({"x": (1, 4)}, {"x": (2, 4)}, {"x": (8, 4)}),))


def _graph(path: Path) -> Path:
    """x [batch, 4] -> y = x * w (an initializer), as an exported graph has."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    w = helper.make_tensor("w", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])
    model = helper.make_model(helper.make_graph([helper.make_node("Mul", ["x", "w"], ["y"])], "g", [x], [y], [w]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _context(path: Path, nodes: list, inputs=("x",), outputs=("y",)) -> Path:
    values = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 4]) for n in (*inputs, *outputs)]
    model = helper.make_model(helper.make_graph(nodes, "ctx", values[:len(inputs)], values[len(inputs):]),
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(EPCONTEXT_DOMAIN, 1)])
    onnx.save(model, str(path))
    return path


def _ep_node(cache: str, embed_mode: int = 0, inputs=("x",), outputs=("y",)):
    return helper.make_node("EPContext", list(inputs), list(outputs), domain=EPCONTEXT_DOMAIN, embed_mode=embed_mode,
                            ep_cache_context=cache)


def test_a_whole_graph_context_model_names_its_engines(tmp_path):
    (tmp_path / "unet.engine").write_bytes(b"plan")
    ctx = _context(tmp_path / "unet_ctx.onnx", [_ep_node("unet.engine")])
    assert check_context_model(ctx, _graph(tmp_path / "unet.onnx")) == ("unet.engine",)
    embedded = _context(tmp_path / "e_ctx.onnx", [_ep_node("<engine bytes>", embed_mode=1)])
    assert check_context_model(embedded) == ()


def test_a_partial_graph_is_refused(tmp_path):
    (tmp_path / "a.engine").write_bytes(b"plan")
    nodes = [_ep_node("a.engine", outputs=("t",)), helper.make_node("Relu", ["t"], ["y"])]
    with pytest.raises(BuildError, match="did not take the whole graph.*Relu"):
        check_context_model(_context(tmp_path / "m_ctx.onnx", nodes))


@pytest.mark.parametrize("cache, message", [
    ("missing.engine", "not beside it: missing.engine"),
    ("/abs/unet.engine", "relative to the context model"),
    ("../up/unet.engine", "relative to the context model"),
])
def test_engine_paths_the_provider_would_not_open_are_refused(tmp_path, cache, message):
    with pytest.raises(BuildError, match=message):
        check_context_model(_context(tmp_path / "m_ctx.onnx", [_ep_node(cache)]))


def test_a_context_model_with_other_inputs_than_the_graph_is_refused(tmp_path):
    (tmp_path / "m.engine").write_bytes(b"plan")
    ctx = _context(tmp_path / "m_ctx.onnx", [_ep_node("m.engine", inputs=("z",))], inputs=("z",))
    with pytest.raises(BuildError, match="not the graph's"):
        check_context_model(ctx, _graph(tmp_path / "m.onnx"))


def test_the_direct_routes_context_model_is_what_the_provider_loads(tmp_path):
    graph = _graph(tmp_path / "unet.onnx")
    (tmp_path / "unet.engine").write_bytes(b"plan")
    ctx = write_context_model(graph, tmp_path / "unet_ctx.onnx", "unet.engine", "9.0")
    onnx.checker.check_model(str(ctx))
    node = onnx.load(str(ctx)).graph.node[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert (node.op_type, node.domain) == ("EPContext", "com.microsoft")
    assert attrs == {"main_context": 1, "embed_mode": 0, "ep_cache_context": b"unet.engine",
                     "hardware_architecture": b"90", "onnx_model_filename": b"unet.onnx"}
    assert check_context_model(ctx, graph) == ("unet.engine",)
    assert trt_architecture("8.9") == "89"


@pytest.fixture
def routes(monkeypatch):
    """compile_graph with both routes replaced by recorders that write what the real ones write."""
    taken: list[str] = []

    def provider(graph, plan, context, timing_cache, device_id):
        taken.append("onnxruntime")
        graph.with_name("ort.engine").write_bytes(b"plan")
        _context(context, [_ep_node("ort.engine")])

    def direct(graph, plan, out, timing_cache, device_id):
        taken.append(f"tensorrt:{timing_cache.name}")
        out.write_bytes(b"plan")
        return out

    monkeypatch.setattr(compile_mod, "_compile_with_provider", provider)
    monkeypatch.setattr(compile_mod, "build_engine", direct)
    return taken


@pytest.mark.parametrize("weights, route, engine", [
    (1 << 20, "onnxruntime", "ort.engine"),
    (PROTOBUF_LIMIT + 1, "tensorrt:sm90.timing", "unet.engine"),  # the SDXL UNet: ~10 GB fp32
])
def test_graphs_over_2gb_take_tensorrts_own_parser(tmp_path, monkeypatch, routes, weights, route, engine):
    graph = _graph(tmp_path / "unet.onnx")
    monkeypatch.setattr("builders.trt_direct.weight_bytes", lambda model, base: weights)
    manifest = EngineManifest.from_json(compile_graph(graph, PLAN, ENV, tmp_path).read_text())
    assert routes == [route]
    assert manifest.engine_files == (engine,) and manifest.context_model == context_path(graph).name
    assert manifest_path(graph).exists()
