"""Code that runs inside Triton's Python backend; importable and testable without Triton."""
