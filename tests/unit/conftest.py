"""Fixtures shared by the unit tests' modules."""
from __future__ import annotations

import pytest

from builders.llm.tiny import make_tiny_llama
from tests.unit.tiny_llm import SPEC


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    """The tiny Llama-3 checkpoint (tests/unit/tiny_llm.py's SPEC), made once per session."""
    return make_tiny_llama(tmp_path_factory.mktemp("ckpt"), SPEC)
