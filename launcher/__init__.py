"""Process launchers for the embedded stack: a real tritonserver plus the OpenAI adapter."""
