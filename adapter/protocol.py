"""Base for OpenAI request models: unknown fields are accepted and ignored (clients send extras)."""
from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, model_validator

log = logging.getLogger("adapter.protocol")


class OpenAIRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _drop_unknown_fields(self) -> "OpenAIRequest":
        extra = self.__pydantic_extra__ or {}
        if extra:
            log.debug("ignoring unknown fields in %s: %s", type(self).__name__, sorted(extra))
            extra.clear()
        return self
