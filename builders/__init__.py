"""Builders: Hugging Face checkpoint -> ONNX -> (TensorRT plan) -> deployable Triton model repository."""
import logging


class _NoImageProcessorFallbackNotice(logging.Filter):
    """Drops transformers' notice that its CLIP/Siglip image processors fall back to PIL without torchvision.

    Importing diffusers' SDXL pipeline class touches those processors; no builder processes images with them, so
    the notice only hid the CLI's own progress. Every other transformers message passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("requires torchvision" in message and "ImageProcessor" in message)


logging.getLogger("transformers.utils.import_utils").addFilter(_NoImageProcessorFallbackNotice())
