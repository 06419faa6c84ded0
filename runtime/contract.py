"""Names shared by builders (which write config.pbtxt), the Triton models and the adapter (which read it).

A client-facing Triton model is named by its public model id and carries `openai_task` among its
config parameters; internal steps (tokenizers, engines) carry none and are never listed.
"""
from __future__ import annotations

from enum import Enum

TASK_PARAMETER = "openai_task"
OWNED_BY_PARAMETER = "openai_owned_by"


class Task(str, Enum):
    TEXT_GENERATION = "text-generation"  # /v1/chat/completions and /v1/completions
    EMBEDDINGS = "embeddings"
    IMAGE_GENERATION = "image-generation"


def model_parameters(model_config: dict) -> dict[str, str]:
    """config.pbtxt `parameters` as a plain dict (Triton gives {key: {"string_value": v}})."""
    return {k: v["string_value"] for k, v in model_config.get("parameters", {}).items()}
