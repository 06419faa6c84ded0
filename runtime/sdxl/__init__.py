"""SDXL text-to-image inside Triton's Python backend: prompt encoding, CFG denoise loop, VAE decode, PNG."""
