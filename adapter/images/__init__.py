"""Image generation: wire protocol, one Triton call to the model's pipeline, PNG -> base64."""
