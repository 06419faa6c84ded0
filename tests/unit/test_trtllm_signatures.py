"""The keywords we pass to TensorRT-LLM, checked against the signatures of TensorRT-LLM 1.0.0 itself: recorded
once from the installed library by tests/fixtures/trtllm/record.py into tests/fixtures/trtllm/signatures.json
(the command is in that file). Without the recording the test skips, saying how to make it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from builders.llm.trtllm import TrtLlmSpec, build_command
from runtime.llm.protocol import SamplingParams as Ours
from runtime.llm.trtllm_manifest import TrtLlmManifest
from runtime.llm.trtllm_params import llm_kwargs, sampling_kwargs

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "trtllm" / "signatures.json"


@pytest.fixture(scope="module")
def library() -> dict:
    if not FIXTURE.exists():
        reason = (f"{FIXTURE.relative_to(FIXTURE.parents[3])} is not recorded yet: run "
                  "tests/fixtures/trtllm/record.py where TensorRT-LLM 1.0.0 is installed (the trtllm image)")
        print(reason)
        pytest.skip(reason)
    recorded = json.loads(FIXTURE.read_text())
    assert recorded["tensorrt_llm"] == "1.0.0", recorded["tensorrt_llm"]
    return recorded


def test_sampling_keywords_are_the_librarys(library):
    every_option = Ours(temperature=0.7, top_p=0.9, n=2, seed=1, presence_penalty=0.5, frequency_penalty=0.5,
                        logprobs=True, top_logprobs=3, logit_bias={3: 1.0})
    greedy = Ours(temperature=0.0)
    for params in (every_option, greedy):
        kw = sampling_kwargs(params, max_tokens=8, end_id=2, stop_ids={1, 2}, vocab_size=16)
        assert set(kw) <= set(library["SamplingParams"]), set(kw) - set(library["SamplingParams"])


def test_llm_and_kv_cache_keywords_are_the_librarys(library):
    seen = {}

    def kv_cache_config(**kw):
        seen.update(kw)
        return kw

    manifest = TrtLlmManifest(tensor_parallel_size=4, pipeline_parallel_size=2, dtype="bf16", quantization="fp8",
                              max_batch_size=64, max_num_tokens=8192, max_seq_len=8192)
    kw = llm_kwargs(manifest, kv_cache_config)
    assert set(kw) | {"model", "tokenizer"} <= set(library["LLM"]), set(kw) - set(library["LLM"])
    assert set(seen) <= set(library["KvCacheConfig"]), set(seen) - set(library["KvCacheConfig"])


@pytest.mark.parametrize("spec", [TrtLlmSpec(), TrtLlmSpec(tp=4, quantization="fp8")])
def test_trtllm_build_flags_are_the_commands(library, spec, tmp_path):
    flags = {arg for arg in build_command(spec, tmp_path, tmp_path, 8192) if arg.startswith("--")}
    assert flags <= set(library["trtllm-build"]), flags - set(library["trtllm-build"])
