"""Model families and the registry that picks one, as vLLM's tool-parser registry picks a parser by name.

A builder writes the family's name into the model's config.pbtxt (`model_family`); the generator and the
adapter look it up here. A checkpoint's family comes from its config.json `model_type`. A new family is one
module that defines a ModelFamily, plus a line in FAMILIES (or a `register` call).
"""
from __future__ import annotations

from runtime.llm.families import llama3
from runtime.llm.families.base import ModelFamily

FAMILY_PARAMETER = "model_family"  # config.pbtxt parameter naming the entry's family
DEFAULT_FAMILY = llama3.FAMILY     # entries built before the parameter existed are Llama-3

FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (llama3.FAMILY,)}


class UnknownFamily(ValueError):
    pass


def register(family: ModelFamily) -> ModelFamily:
    """Add a family (a plug-in, a test's fake); a second family of the same name is refused."""
    if family.name in FAMILIES and FAMILIES[family.name] is not family:
        raise ValueError(f"model family {family.name!r} is already registered")
    FAMILIES[family.name] = family
    return family


def unregister(name: str) -> None:
    FAMILIES.pop(name, None)


def get_family(name: str | None) -> ModelFamily:
    """The family of that name; none given: the default."""
    if not name:
        return DEFAULT_FAMILY
    if name not in FAMILIES:
        raise UnknownFamily(f"unknown model family {name!r} (known: {', '.join(sorted(FAMILIES))})")
    return FAMILIES[name]


def family_of_parameters(parameters: dict[str, str]) -> ModelFamily:
    """The family a served model's config.pbtxt parameters name."""
    return get_family(parameters.get(FAMILY_PARAMETER))


def family_for_checkpoint(config: dict) -> ModelFamily | None:
    """The family whose chat format a checkpoint (its config.json) speaks; None for a model_type no family serves."""
    model_type = config.get("model_type")
    return next((f for f in FAMILIES.values() if model_type in f.model_types), None)
