"""OpenAI's published OpenAPI spec trimmed to the routes this adapter serves (for schemathesis).

The 3 MB spec lives in the shared folder beside the clone (`../shared/reference/openai-openapi.yaml`, the same
relative place in CI; OPENAI_SPEC names another path); it is read and trimmed at test time, never copied into the
repository. A bare clone has no shared folder: the tests that need the spec skip and say why, unless
REQUIRE_OPENAI_SPEC=1 (set by CI, which has the folder) turns the skip into a failure.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SPEC = Path(os.environ.get("OPENAI_SPEC") or ROOT / ".." / "shared" / "reference" / "openai-openapi.yaml")
API_PREFIX = "/v1"  # the spec's server URL ends in /v1; its paths do not
_PARAM = re.compile(r"\{[^}]*\}")


def load_spec(path: Path = SPEC) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"OpenAI OpenAPI spec not found at {path.resolve()}: the fuzz test expects the shared "
                                "folder beside the repository clone (../shared/reference/openai-openapi.yaml)")
    with path.open() as f:
        return yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def spec_or_skip(path: Path = SPEC) -> dict:
    """The spec, or a skip with the reason (a failure where REQUIRE_OPENAI_SPEC=1: CI must not skip silently)."""
    try:
        return load_spec(path)
    except FileNotFoundError as exc:
        if os.environ.get("REQUIRE_OPENAI_SPEC") == "1":
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(f"{exc} (a bare clone has no shared folder; set OPENAI_SPEC to the spec's path to run this)")


def _shape(path: str) -> str:
    return _PARAM.sub("{}", path)


def served_operations(app_openapi: dict) -> set[tuple[str, str]]:
    """(path shape without /v1, lower-case method) for every /v1 operation in the app's own OpenAPI document."""
    return {(_shape(path[len(API_PREFIX):]), method.lower())
            for path, item in app_openapi["paths"].items() if path.startswith(API_PREFIX + "/")
            for method in item}


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/"):
            yield ref
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _components_closure(spec: dict, roots: Any) -> dict:
    """Only the components reachable from `roots` through $ref."""
    kept: dict[str, dict] = {}
    pending = list(_refs(roots))
    while pending:
        _, _, kind, name = pending.pop().split("/", 3)
        if name in kept.setdefault(kind, {}):
            continue
        node = spec["components"][kind][name]
        kept[kind][name] = node
        pending.extend(_refs(node))
    return kept


def trimmed_spec(spec: dict, served: set[tuple[str, str]], server_url: str) -> dict:
    paths = {}
    for path, item in spec["paths"].items():
        ops = {m: op for m, op in item.items() if (_shape(path), m) in served}
        if ops:
            paths[path] = {**{k: v for k, v in item.items() if k == "parameters"}, **ops}
    components = _components_closure(spec, paths)
    components["securitySchemes"] = spec["components"].get("securitySchemes", {})
    return {"openapi": spec["openapi"], "info": spec["info"], "servers": [{"url": server_url}],
            "security": spec.get("security", []), "paths": paths, "components": components}
