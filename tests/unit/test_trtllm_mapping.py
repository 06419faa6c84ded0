"""Our typed request -> TensorRT-LLM 1.0 SamplingParams / LLM arguments, and its CompletionOutputs -> our choices
(tokens, logprobs, finish reasons, usage), against fakes that follow the library's signatures."""
from __future__ import annotations

import json
import math

import pytest
import torch

from runtime.errors import ClientError
from runtime.llm.protocol import SamplingParams as Ours
from runtime.llm.sequence import Job
from runtime.llm.tokenizer import Prompt
from runtime.llm.trtllm_manifest import TrtLlmManifest
from runtime.llm.trtllm_params import StreamReader, end_id_of, engine_error, llm_kwargs, sampled, sampling_kwargs
from tests.unit.fake_trtllm import (END_OF_TEXT, EOT, V, VOCAB, CompletionOutput, KvCacheConfig, Logprob,
                                    SamplingParams)


def library_params(ours: Ours, max_tokens: int = 8) -> SamplingParams:
    return SamplingParams(**sampling_kwargs(ours, max_tokens=max_tokens, end_id=EOT, stop_ids=VOCAB.stop_ids,
                                            vocab_size=V))


def test_sampling_maps_every_field():
    ours = Ours(temperature=0.7, top_p=0.9, n=3, seed=42, presence_penalty=0.5, frequency_penalty=-0.25,
                logprobs=True, top_logprobs=4, logit_bias={3: 5.0, 7: -100.0})
    p = library_params(ours, max_tokens=11)
    assert (p.temperature, p.top_p, p.top_k, p.n, p.best_of, p.seed) == (0.7, 0.9, None, 3, 3, 42)
    assert (p.presence_penalty, p.frequency_penalty, p.logprobs, p.max_tokens) == (0.5, -0.25, 4, 11)
    assert (p.end_id, p.pad_id, p.stop_token_ids, p.ignore_eos, p.detokenize) == (EOT, EOT, [END_OF_TEXT], False, False)
    assert p.stop is None  # stop strings are matched on text by us, never by the library's token-id match
    assert p.embedding_bias.dtype == torch.float32 and p.embedding_bias.shape == (V,)
    assert p.embedding_bias[3] == 5.0 and p.embedding_bias[7] == -math.inf and p.embedding_bias[0] == 0.0


def test_greedy_is_top_k_1_and_sampling_keeps_top_p_explicit():
    greedy = library_params(Ours(temperature=0.0))
    assert (greedy.top_k, greedy.temperature, greedy.top_p) == (1, None, None)
    plain = library_params(Ours())  # top_p=1.0 must reach the runtime: top_k=0 with top_p=0 would be greedy
    assert (plain.top_k, plain.temperature, plain.top_p) == (None, 1.0, 1.0)
    assert plain.presence_penalty is None and plain.logprobs is None and plain.embedding_bias is None


def test_greedy_n_needs_the_library_switch(monkeypatch):
    monkeypatch.delenv("TLLM_ALLOW_N_GREEDY_DECODING", raising=False)
    with pytest.raises(ValueError, match="Greedy"):
        library_params(Ours(temperature=0.0, n=2))
    monkeypatch.setenv("TLLM_ALLOW_N_GREEDY_DECODING", "1")  # what tensorrt_llm_engine sets at load
    assert library_params(Ours(temperature=0.0, n=2)).n == 2


def test_ignore_eos_drops_stop_tokens_and_no_seed_means_a_fresh_one():
    p = library_params(Ours(ignore_eos=True))
    assert p.ignore_eos and p.stop_token_ids is None
    seeds = {library_params(Ours()).seed for _ in range(4)}
    assert len(seeds) == 4 and all(isinstance(s, int) and s >= 0 for s in seeds)


def test_logprobs_without_top_logprobs_still_ask_for_the_sampled_token():
    assert library_params(Ours(logprobs=True)).logprobs == 1


def test_llm_arguments_from_the_manifest():
    m = TrtLlmManifest(tensor_parallel_size=4, pipeline_parallel_size=2, dtype="bf16", quantization="fp8",
                       max_batch_size=64, max_num_tokens=8192, max_seq_len=8192)
    kw = llm_kwargs(m, KvCacheConfig)
    assert (kw["tensor_parallel_size"], kw["pipeline_parallel_size"]) == (4, 2)
    assert kw["kv_cache_config"] == KvCacheConfig(free_gpu_memory_fraction=0.9, enable_block_reuse=True)
    assert kw["enable_chunked_prefill"] and kw["gather_generation_logits"]


def test_end_id_prefers_the_tokenizers_eos():
    assert end_id_of(EOT, VOCAB.stop_ids) == EOT
    assert end_id_of(3, VOCAB.stop_ids) == END_OF_TEXT  # EOS that is no stop token: the smallest stop token
    assert end_id_of(None, VOCAB.stop_ids) == END_OF_TEXT


def test_sampled_reads_ranked_logprob_dicts_and_plain_floats():
    entry = {5: Logprob(-2.0, 3), 1: Logprob(-0.1, 1), 2: Logprob(-0.9, 2)}
    s = sampled(5, entry, 2)
    assert (s.token_id, s.logprob, s.top) == (5, -2.0, [(1, -0.1), (2, -0.9)])
    assert sampled(1, entry, 0).top == [] and sampled(9, entry, 1).logprob == -math.inf
    assert (sampled(4, -0.5, 3).logprob, sampled(4, None, 3).logprob) == (-0.5, None)


def make_job(params: Ours, prompt=(0,), max_model_len=64, sink=None):
    return Job(Prompt(list(prompt), "p"), params, VOCAB, sink or ListSink(), max_model_len)


class ListSink:
    def __init__(self):
        self.responses: list[dict] = []

    def send(self, payload, final):
        self.responses.append({**json.loads(payload), "final": final})


def test_stream_reader_tokens_text_finish_and_usage():
    job = make_job(Ours(n=2, max_tokens=5))
    reader = StreamReader(job, VOCAB, EOT)
    a, b = CompletionOutput(0, token_ids=[1, 2]), CompletionOutput(1, token_ids=[3])
    reader.read([a, b])
    a.token_ids += [3]
    b.token_ids += [4, 5]
    a.finish_reason = "stop"  # the end token, dropped by the library
    reader.read([a, b])
    assert job.choices[0].finished and job.choices[0].finish_reason == "stop"
    assert job.choices[0].token_ids == [1, 2, 3, EOT]  # counted like our scheduler counts it
    assert not job.choices[1].finished
    b.token_ids += [6, 7]
    b.finish_reason = "length"
    reader.read([a, b])
    reader.finish()
    job.flush()
    body = job.sink.responses[-1]
    assert body["final"] and body["usage"] == {"prompt_tokens": 1, "completion_tokens": 9, "cached_tokens": 0}
    texts = {c["index"]: (c["text"], c["finish_reason"]) for c in body["choices"]}
    assert texts == {0: ("bcd", "stop"), 1: ("defgh", "length")}


def test_stream_reader_stop_token_id_and_logprobs():
    job = make_job(Ours(logprobs=True, top_logprobs=1))
    reader = StreamReader(job, VOCAB, EOT)
    out = CompletionOutput(0, token_ids=[4], logprobs=[{4: Logprob(-0.5, 1), 6: Logprob(-2.0, 2)}])
    reader.read([out])
    out.finish_reason, out.stop_reason = "stop", END_OF_TEXT
    reader.read([out])
    job.flush()
    choice = job.sink.responses[-1]["choices"][0]
    assert choice["text"] == "e" and choice["finish_reason"] == "stop"
    first = choice["logprobs"]["content"][0]
    assert first["token"] == "e" and first["logprob"] == -0.5 and [t["token"] for t in first["top_logprobs"]] == ["e"]
    assert job.choices[0].token_ids == [4, END_OF_TEXT]


def test_stream_reader_stop_string_across_tokens_ends_the_choice():
    job = make_job(Ours(stop=("cd",)))
    reader = StreamReader(job, VOCAB, EOT)
    reader.read([CompletionOutput(0, token_ids=[1, 2])])  # "bc": "c" is held back
    assert not job.done
    reader.read([CompletionOutput(0, token_ids=[1, 2, 3, 4])])  # "d" completes "cd"; "e" is never fed
    job.flush()
    assert job.done and job.choices[0].token_ids == [1, 2, 3]
    assert "".join(c["text"] for r in job.sink.responses for c in r["choices"]) == "b"


def test_cancelled_inside_the_engine_is_an_error():
    reader = StreamReader(make_job(Ours(n=2)), VOCAB, EOT)
    with pytest.raises(RuntimeError, match="cancelled"):
        reader.read([CompletionOutput(0, finish_reason="cancelled")])
    reader.read([CompletionOutput(0, finish_reason="length")])
    with pytest.raises(RuntimeError, match=r"not its choices \[1\]"):
        reader.finish()


def test_engine_errors_in_our_vocabulary():
    too_long = engine_error(ValueError("The sum of prompt length (90) and max_tokens (8) should not exceed "
                                       "max_seq_len (64)"), at_submit=True)
    assert isinstance(too_long, ClientError) and too_long.code == "context_length_exceeded"
    assert isinstance(engine_error(ValueError("SamplingParams.n (9) is too large"), at_submit=True), ClientError)
    kv = RuntimeError("out of KV cache blocks")
    assert engine_error(kv, at_submit=False) is kv  # a server-side failure: 500
