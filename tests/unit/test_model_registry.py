"""ModelRegistry: models discovered from Triton's index and configs, cached for the TTL, looked up per request."""
from __future__ import annotations

import asyncio

import pytest

from adapter.errors import OpenAIError
from adapter.model_registry import ModelRegistry
from runtime.contract import Task


class FakeTriton:
    def __init__(self):
        self.models = {"b-llm": "text-generation", "a-emb": "embeddings"}
        self.index_calls = 0

    async def repository_index(self) -> list[dict]:
        self.index_calls += 1
        await asyncio.sleep(0.01)  # concurrent lookups overlap a refresh
        return [{"name": n, "state": "READY"} for n in self.models] + [{"name": "loading", "state": "LOADING"}]

    async def model_config(self, name: str) -> dict:
        return {"parameters": {"openai_task": {"string_value": self.models[name]}}}


def test_lookups_share_one_discovery_per_ttl():
    async def main():
        triton = FakeTriton()
        registry = ModelRegistry(triton, ttl_s=60)
        found = await asyncio.gather(*(registry.find("b-llm") for _ in range(5)))
        assert [m.task for m in found] == [Task.TEXT_GENERATION] * 5
        assert await registry.find("loading") is None and await registry.find("nope") is None
        assert [m.id for m in await registry.list()] == ["a-emb", "b-llm"]
        assert triton.index_calls == 1
        with pytest.raises(OpenAIError) as info:
            await registry.get("nope")
        assert info.value.status == 404
        with pytest.raises(OpenAIError) as info:
            await registry.resolve("a-emb", Task.TEXT_GENERATION)
        assert info.value.code == "model_not_supported"
    asyncio.run(main())


def test_expired_cache_is_refreshed():
    async def main():
        triton = FakeTriton()
        registry = ModelRegistry(triton, ttl_s=0)
        assert await registry.find("c-new") is None
        triton.models["c-new"] = "text-generation"
        assert (await registry.find("c-new")).id == "c-new"
        assert triton.index_calls == 2
        listed = await registry.list()
        listed.clear()  # a caller's copy: the cache is not touched
        assert [m.id for m in await registry.list()] == ["a-emb", "b-llm", "c-new"]
    asyncio.run(main())
