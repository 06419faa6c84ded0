"""Write Triton model folders from templates in model_repository/, typed through Triton's ModelConfig proto.

A template folder holds config.pbtxt (structure: backend, inputs, outputs, batching) and 1/model.py. The
builder parses the template, sets the model name and parameters, and writes the folder under the output
repository, next to the engine files that it places in 1/.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

TEMPLATES = Path(__file__).resolve().parent.parent / "model_repository"


def load_config(template: str | Path) -> model_config_pb2.ModelConfig:
    path = _template_dir(template) / "config.pbtxt"
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def set_parameters(config: model_config_pb2.ModelConfig, **params: object) -> None:
    for key, value in params.items():
        config.parameters[key].string_value = str(value)


def get_parameters(config: model_config_pb2.ModelConfig) -> dict[str, str]:
    """The inverse of set_parameters: config.pbtxt `parameters` as a plain dict."""
    return {key: value.string_value for key, value in config.parameters.items()}


def write_model(repo: Path, config: model_config_pb2.ModelConfig, template: str | Path | None = None) -> Path:
    """Create repo/<config.name>/ with config.pbtxt and the template's version folder; returns the version dir."""
    model_dir = Path(repo) / config.name
    version_dir = model_dir / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    if template is not None:
        copy_template_code(template, version_dir)
    (model_dir / "config.pbtxt").write_text(text_format.MessageToString(config))
    return version_dir


def copy_template_code(template: str | Path, version_dir: Path) -> None:
    """The template's Python files into a built model's version folder (also to refresh a cached build)."""
    for src in (_template_dir(template) / "1").glob("*.py"):
        shutil.copy2(src, Path(version_dir) / src.name)


def _template_dir(template: str | Path) -> Path:
    path = Path(template)
    return path if path.is_absolute() else TEMPLATES / path
