"""Builders: Hugging Face checkpoint -> ONNX -> (TensorRT plan) -> deployable Triton model repository."""
