"""The image stages' pip installs, resolved with pip itself for the base image's Python and platform.

    python docker/pins.py lock gpu      # rewrite docker/gpu-requirements.txt from gpu-requirements.in
    python docker/pins.py show STAGE    # print what the stage's install resolves to, with CUDA majors

`pip install --dry-run --report` resolves for another interpreter (`--python-version`, `--platform`) without
installing anything; tests/unit/test_docker_pins.py uses the same functions to check every CUDA-versioned wheel
against the base image's CUDA major.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_CUDA_SUFFIX = re.compile(r"-cu(\d+)(-|$)")
# Packages versioned by the CUDA release they ship (their major is CUDA's); nvidia-cudnn-* and the like carry
# their own versions and show CUDA only in the -cuNN suffix.
_CUDA_VERSIONED = re.compile(r"^(cuda-toolkit|cuda-bindings|cuda-python|nvidia-cuda-[a-z-]+)$")
_KNOWN = {"onnxruntime-gpu": {"1.20.2": 12}}  # built for CUDA 12 (its release notes), no suffix in the name


@dataclass(frozen=True)
class Stage:
    base: str  # FROM image
    python: str  # the base image's python3
    glibc: tuple[int, int]  # the base image's glibc: the newest manylinux tag its pip accepts
    cuda_major: int | None  # the base image's CUDA; None: the stage must install no CUDA wheel at all
    requirements: str  # what the stage installs (-r), relative to the repository
    constraints_from: str | None = None  # `grep -vE` pattern applied to requirements.txt for -c, or None


STAGES = {
    # Triton 24.10: Ubuntu 22.04 (glibc 2.35), Python 3.10, CUDA 12.6, cuDNN 9.5, TensorRT 10.5.
    "gpu": Stage("nvcr.io/nvidia/tritonserver:24.10-py3", "3.10", (2, 35), 12, "docker/gpu-requirements.txt"),
    # Triton 25.10 TensorRT-LLM: Ubuntu 24.04 (glibc 2.39), Python 3.12; torch and TensorRT-LLM come with it.
    "trtllm": Stage("nvcr.io/nvidia/tritonserver:25.10-trtllm-python-py3", "3.12", (2, 39), None,
                    "docker/trtllm-requirements.in",
                    "nvidia-pytriton|torch|triton|transformers|tokenizers|numpy|safetensors|huggingface_hub|protobuf"),
}


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str

    @property
    def cuda_major(self) -> int | None:
        name = self.name.lower().replace("_", "-")
        if (suffix := _CUDA_SUFFIX.search(name)) is not None:
            return int(suffix.group(1)[:2])
        if _CUDA_VERSIONED.match(name):
            return int(self.version.split(".")[0])
        if "+cu" in self.version:  # torch's local versions: 2.7.1+cu126
            return int(self.version.split("+cu")[1][:2])
        return _KNOWN.get(name, {}).get(self.version)


class IndexUnavailable(RuntimeError):
    """No package index answered: the resolution says nothing about the pins."""


def platforms(glibc: tuple[int, int]) -> list[str]:
    tags = [f"manylinux_2_{minor}_x86_64" for minor in range(glibc[1], 4, -1)]
    return [*tags, "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]


def constraints(stage: Stage, out: Path) -> list[str]:
    if stage.constraints_from is None:
        return []
    pattern = re.compile(rf"^({stage.constraints_from})==", re.IGNORECASE)
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    out.write_text("\n".join(line for line in lines if not pattern.match(line)) + "\n")
    return ["-c", str(out)]


def resolve(stage: Stage, requirements: Path | None = None) -> list[Wheel]:
    """What `pip install -r` resolves to on the stage's base image (nothing is installed here)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report),
                   "--target", str(Path(tmp) / "never"), "--python-version", stage.python, "--only-binary=:all:",
                   *(arg for tag in platforms(stage.glibc) for arg in ("--platform", tag)),
                   *constraints(stage, Path(tmp) / "constraints.txt"),
                   "-r", str(requirements or ROOT / stage.requirements)]
        run = subprocess.run(command, capture_output=True, text=True, timeout=900)
        if run.returncode != 0:
            _raise(run.stderr)
        data = json.loads(report.read_text())
    return [Wheel(item["metadata"]["name"], item["metadata"]["version"]) for item in data["install"]]


def _raise(stderr: str) -> None:
    errors = "\n".join(line for line in stderr.splitlines() if "Requires-Python" not in line)
    unreachable = ("Failed to establish a new connection", "Temporary failure in name resolution",
                   "Could not fetch URL", "No route to host", "Network is unreachable")
    if any(text in errors for text in unreachable):
        raise IndexUnavailable(errors[-2000:])
    raise RuntimeError(f"pip could not resolve the stage's pins:\n{errors[-4000:]}")


def lock(name: str) -> Path:
    stage = STAGES[name]
    source = (ROOT / stage.requirements).with_suffix(".in")
    wheels = sorted(resolve(stage, source), key=lambda w: w.name.lower())
    header = [f"# Locked from {source.name} for {stage.base} (Python {stage.python}, x86_64) by",
              f"#   python docker/pins.py lock {name}", "# Do not edit: change the .in file and run that again."]
    path = ROOT / stage.requirements
    path.write_text("\n".join([*header, *(f"{w.name}=={w.version}" for w in wheels)]) + "\n")
    return path


def main(argv: list[str]) -> int:
    verb, name = argv
    if verb == "lock":
        print(lock(name))
        return 0
    for wheel in resolve(STAGES[name]):
        print(f"{wheel.name}=={wheel.version}" + (f"  (CUDA {wheel.cuda_major})" if wheel.cuda_major else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
