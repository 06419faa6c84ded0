"""Sentence embeddings inside Triton: tokenization -> encoder session -> pooling + normalization.

tokenization.py  texts / token-id lists -> padded model inputs (+ the validation a caller can fail)
session.py       the engine behind a small interface (ONNX Runtime now; a TensorRT session can replace it)
batching.py      many Triton requests -> few length-sorted engine calls -> one result per request
pooling.py       mean / CLS pooling and L2 normalization, as sentence-transformers does them
"""
