"""Names shared by builders (which write config.pbtxt) and the adapter (which reads it through Triton).

A client-facing Triton model is named by its public model id and carries `openai_task` among its
config parameters; internal steps (tokenizers, engines) carry none and are never listed.
"""
from enum import Enum

TASK_PARAMETER = "openai_task"
OWNED_BY_PARAMETER = "openai_owned_by"


class Task(str, Enum):
    TEXT_GENERATION = "text-generation"  # /v1/chat/completions and /v1/completions
    EMBEDDINGS = "embeddings"
    IMAGE_GENERATION = "image-generation"
