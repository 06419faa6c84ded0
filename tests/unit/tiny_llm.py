"""The tiny Llama-3 the engine's unit tests export: its shape, the cache length and the BOS id their prompts use."""
from __future__ import annotations

from builders.llm.tiny import TinySpec

SPEC = TinySpec(seed=1, hidden_size=64, intermediate_size=128, max_model_len=256)  # head_dim 16, 2 kv heads
MAX_LEN = 160
BOS = 128000
