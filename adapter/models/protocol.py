"""Wire form of GET /v1/models and /v1/models/{id}: OpenAI's Model and its list, with extensions."""
from __future__ import annotations

from adapter.model_registry import ServedModel


def model_card(model: ServedModel) -> dict:
    """OpenAI's model object plus extensions a client needs to offer the model (the playground page):
    `task`, and `sizes` ("WxH", the only ones accepted) for models whose config lists them."""
    card = {"id": model.id, "object": "model", "created": model.created, "owned_by": model.owned_by,
            "task": model.task.value}
    if "sizes" in model.parameters:
        card["sizes"] = [s.strip() for s in model.parameters["sizes"].split(",") if s.strip()]
    return card


def model_list(models: list[ServedModel]) -> dict:
    return {"object": "list", "data": [model_card(m) for m in models]}
