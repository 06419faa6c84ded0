"""Chat and text completions: wire protocol, generation on Triton's decoupled generator, JSON and SSE."""
