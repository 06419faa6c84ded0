"""The adapter's route paths, named once: the routers declare them, the middleware checks the bodies sent to them
(adapter/middleware/limits.py), the settings exempt the public ones from auth, and the launcher and the benches
call them."""
from __future__ import annotations

API = "/v1"  # the OpenAI API's base path (clients' base_url ends with it)
CHAT_COMPLETIONS = API + "/chat/completions"
COMPLETIONS = API + "/completions"
EMBEDDINGS = API + "/embeddings"
IMAGES_GENERATIONS = API + "/images/generations"
MODELS = API + "/models"
MODEL = MODELS + "/{model_id:path}"
HEALTH = "/health"
HEALTH_READY = "/health/ready"
METRICS = "/metrics"
PLAYGROUND = "/playground"
ROOT = "/"  # the playground page too
