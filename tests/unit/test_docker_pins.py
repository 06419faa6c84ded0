"""The Dockerfile's stages install what docker/pins.py resolves, and every CUDA-versioned wheel they resolve to
(for the base image's Python and platform, with `pip install --dry-run --report`) matches the base image's CUDA
major. Skips, saying why, where no package index answers."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("docker_pins", ROOT / "docker" / "pins.py")
pins = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = pins  # dataclasses look their module up there
_spec.loader.exec_module(pins)


def _name(requirement: str) -> str:
    return re.split(r"[<>=!\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _lines(path: Path) -> list[str]:
    return [line.split("#")[0].strip() for line in path.read_text().splitlines() if line.split("#")[0].strip()]


def _stage(name: str) -> str:
    text = (ROOT / "Dockerfile").read_text()
    start = text.index(f"AS {name}\n")
    end = text.find("\nFROM ", start)
    return text[text.rfind("FROM ", 0, start):end if end > 0 else None]


@pytest.mark.parametrize("name", sorted(pins.STAGES))
def test_each_stage_installs_the_files_pins_resolves(name):
    stage, text = pins.STAGES[name], _stage(name)
    assert text.startswith(f"FROM {stage.base} AS {name}")
    requirements = Path(stage.requirements).name
    assert re.search(rf"pip install (-c \S+ )?-r {re.escape(requirements)}\b", text), text
    if stage.constraints_from:
        assert f"grep -vE '^({stage.constraints_from})=='" in text


def test_the_gpu_lock_covers_every_dependency_and_the_one_onnxruntime_gpu_pin():
    import tomllib  # noqa: PLC0415

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = {_name(line): line for line in _lines(ROOT / "docker" / "gpu-requirements.txt")}
    wanted = {_name(dep) for dep in project["dependencies"]} - {"onnxruntime"}
    assert wanted <= set(locked), wanted - set(locked)
    assert {_name(line) for line in _lines(ROOT / "docker" / "gpu-requirements.in")} <= set(locked)
    gpu_pin = project["optional-dependencies"]["gpu"][0]
    assert locked["onnxruntime-gpu"] == gpu_pin
    assert f"ORT_GPU_PIN := {gpu_pin}" in (ROOT / "Makefile").read_text()
    assert "onnxruntime" not in locked  # the CPU package would shadow the GPU one's module


@pytest.mark.parametrize("wheel, major", [
    (("nvidia-cudnn-cu13", "9.20.0.48"), 13), (("nvidia-cublas-cu12", "12.6.4.1"), 12), (("cuda-toolkit", "13.0.3"), 13),
    (("nvidia-cuda-runtime", "13.0.96"), 13), (("torch", "2.7.1+cu126"), 12), (("onnxruntime-gpu", "1.20.2"), 12),
    (("nvidia-nccl-cu13", "2.29.7"), 13), (("tensorrt-cu12-bindings", "10.5.0"), 12), (("torch", "2.7.1"), None), (("fastapi", "0.162.5"), None)])
def test_cuda_majors_are_read_from_names_and_versions(wheel, major):
    assert pins.Wheel(*wheel).cuda_major == major


@pytest.fixture(scope="module")
def resolved():
    cache: dict[str, list] = {}

    def resolve(name: str):
        if name not in cache:
            try:
                cache[name] = pins.resolve(pins.STAGES[name])
            except pins.IndexUnavailable as exc:
                cache[name] = exc
        if isinstance(cache[name], Exception):
            print(f"no package index answered, the {name} stage's pins were not resolved: {cache[name]}")
            pytest.skip(f"no package index answered ({str(cache[name]).splitlines()[-1][:200]})")
        return cache[name]

    return resolve


@pytest.mark.parametrize("name", sorted(pins.STAGES))
def test_every_cuda_wheel_matches_the_base_images_cuda(resolved, name):
    stage, wheels = pins.STAGES[name], resolved(name)
    cuda = {f"{w.name}=={w.version}": w.cuda_major for w in wheels if w.cuda_major is not None}
    if stage.cuda_major is None:
        assert cuda == {}, f"{name} brings CUDA libraries of its own over the container's: {cuda}"
    else:
        assert cuda and set(cuda.values()) == {stage.cuda_major}, cuda


def test_the_gpu_lock_resolves_to_itself_nothing_more(resolved):
    wheels = resolved("gpu")
    locked = {_name(line): line.split("==")[1] for line in _lines(ROOT / "docker" / "gpu-requirements.txt")}
    assert {_name(w.name): w.version for w in wheels} == locked
