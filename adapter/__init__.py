"""OpenAI-compatible HTTP adapter in front of Triton Inference Server."""
