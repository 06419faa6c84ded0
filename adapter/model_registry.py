"""Client-facing models, discovered from Triton's repository index and model configs (cached briefly)."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from adapter.errors import invalid_request, model_not_found
from adapter.triton_client import TritonClient
from runtime.contract import OWNED_BY_PARAMETER, TASK_PARAMETER, Task, model_parameters
from runtime.llm.families import family_of_parameters
from runtime.llm.families.base import ModelFamily


@dataclass(frozen=True)
class ServedModel:
    id: str  # public id == Triton model name
    task: Task
    created: int
    owned_by: str = "triton-openai"
    parameters: dict[str, str] = field(default_factory=dict)  # context window, embedding size, ...

    @property
    def family(self) -> ModelFamily:
        """The model family whose tool-call parsers read this model's output (config.pbtxt `model_family`)."""
        return family_of_parameters(self.parameters)


class ModelRegistry:
    def __init__(self, triton: TritonClient, ttl_s: float):
        self._triton, self._ttl_s = triton, ttl_s
        self._started = int(time.time())
        self._models: dict[str, ServedModel] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def list(self) -> list[ServedModel]:
        await self._refresh()
        return sorted(self._models.values(), key=lambda m: m.id)

    async def find(self, model_id: str) -> ServedModel | None:
        """The served model of that id, None when there is none (every request asks: a dict lookup)."""
        await self._refresh()
        return self._models.get(model_id)

    async def get(self, model_id: str) -> ServedModel:
        model = await self.find(model_id)
        if model is None:
            raise model_not_found(model_id)
        return model

    async def resolve(self, model_id: str, task: Task) -> ServedModel:
        model = await self.get(model_id)
        if model.task != task:
            raise invalid_request(f"The model `{model_id}` serves {model.task.value}, not {task.value}.",
                                  "model", "model_not_supported")
        return model

    async def _refresh(self) -> None:
        if self._fresh():  # the common case: no lock taken
            return
        async with self._lock:
            if not self._fresh():  # another request may have refreshed it while this one waited
                self._models = await self._discover()
                self._fetched_at = time.monotonic()

    def _fresh(self) -> bool:
        return time.monotonic() - self._fetched_at <= self._ttl_s

    async def _discover(self) -> dict[str, ServedModel]:
        ready = [m["name"] for m in await self._triton.repository_index() if m.get("state") == "READY"]
        configs = await asyncio.gather(*(self._triton.model_config(name) for name in ready))
        models = {}
        for name, config in zip(ready, configs):
            params = model_parameters(config)
            if TASK_PARAMETER not in params:
                continue
            models[name] = ServedModel(id=name, task=Task(params[TASK_PARAMETER]), created=self._started,
                                       owned_by=params.get(OWNED_BY_PARAMETER, "triton-openai"), parameters=params)
        return models
