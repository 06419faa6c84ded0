"""LLM generation core: request protocol, tokenization, engine sessions, continuous-batching scheduler,
sampling, stop strings, incremental detokenization, logprobs. Nothing here imports pb_utils."""
