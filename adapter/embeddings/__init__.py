"""Embeddings: wire protocol, one Triton call to the model's ensemble, float or base64 vectors."""
