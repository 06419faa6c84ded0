"""TensorRT-LLM as the generator's engine: the library's LLM API (1.0.0, TensorRT engine flow) does the
in-flight batching, paged KV cache and tensor / pipeline parallel ranks; we keep the contract around it.

Why the LLM API and not the executor bindings: `generate_async(..., streaming=True)` gives one awaitable stream
per request with `abort()`, spawns and drives the MPI ranks for tp x pp itself (orchestrator mode), and is the
interface NVIDIA's own Triton model (triton_backend/all_models/llmapi) is built on; the executor would leave
rank management, request ids and response demultiplexing to us.

Threads: the library's results are asyncio-aware, so requests run as tasks on one event loop in a background
thread. execute() only hands jobs over (submit); each task maps the request (trtllm_params.sampling_kwargs),
reads the stream into the job's choices (StreamReader), sends responses through the job's sink, aborts the
request inside the engine when our stop string matched, the client went away or the generator stops, and turns
every failure into the sink's error response (400 / 500), so no stream is left open.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path
from typing import Any

from runtime.llm.engines import make_vocab
from runtime.llm.protocol import GeneratorConfig
from runtime.llm.sequence import Job, Vocab
from runtime.llm.session import EngineSession
from runtime.llm.tokenizer import ChatTokenizer
from runtime.llm.trtllm_manifest import MANIFEST_FILE, TrtLlmManifest
from runtime.llm.trtllm_params import StreamReader, end_id_of, engine_error, llm_kwargs, sampling_kwargs

log = logging.getLogger(__name__)


def tensorrt_llm_engine(model_dir: Path, config: GeneratorConfig, tokenizer: ChatTokenizer,
                        session: EngineSession | None = None, target: object = None,
                        device_id: int = 0) -> "TrtLlmScheduler":
    """Load the entry's engine with TensorRT-LLM (GPU node only; checks the manifest first)."""
    if session is not None:
        raise ValueError("the tensorrt-llm engine runs its own session; it takes none")
    manifest = TrtLlmManifest.read(model_dir / MANIFEST_FILE)
    manifest.check_built()  # before importing the library: a dry-run entry says so even where it is missing
    # n > 1 at temperature 0 gives n equal choices in our scheduler; the LLM API refuses it without this.
    os.environ.setdefault("TLLM_ALLOW_N_GREEDY_DECODING", "1")
    import tensorrt_llm  # noqa: PLC0415  (imported at load: CUDA must not start before Triton forks the stub)
    import torch  # noqa: PLC0415
    from tensorrt_llm import SamplingParams  # noqa: PLC0415
    from tensorrt_llm._tensorrt_engine import LLM  # noqa: PLC0415  (1.0: the TensorRT-engine LLM)
    from tensorrt_llm.llmapi import KvCacheConfig  # noqa: PLC0415

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
    manifest.check(tensorrt_llm.__version__, gpu, torch.cuda.device_count())
    llm = LLM(model=str(model_dir / config.engine), tokenizer=str(model_dir / "tokenizer"),
              **llm_kwargs(manifest, KvCacheConfig))
    vocab = make_vocab(tokenizer, config.vocab_size)
    return TrtLlmScheduler(llm, SamplingParams, vocab, config, end_id_of(tokenizer.hf.eos_token_id, vocab.stop_ids))


class TrtLlmScheduler:
    """Jobs in, the library's streams out; the same start / stop / submit as our own Scheduler."""

    supports_grammar = False  # TensorRT-LLM samples inside the library: our grammar cannot mask its logits

    def __init__(self, llm: Any, sampling_params_cls: Any, vocab: Vocab, config: GeneratorConfig, end_id: int,
                 cancel_check_s: float = 0.25, stall_timeout_s: float = 600.0):
        self.llm, self._params_cls, self.vocab, self.config = llm, sampling_params_cls, vocab, config
        self.end_id = end_id
        self.cancel_check_s, self.stall_timeout_s = cancel_check_s, stall_timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        # Live requests, touched only on the loop's thread: their tasks, when each last heard from the engine,
        # and why the watcher cancelled one ("client": the client went away, "stall": the engine went silent).
        self._tasks: dict[Job, asyncio.Task] = {}
        self._progress: dict[Job, float] = {}
        self._why: dict[Job, str] = {}

    # -- other threads ------------------------------------------------------------------------------------
    def use_grammar(self, grammar: object) -> None:
        raise TypeError("TensorRT-LLM entries do not run our grammar")

    def prefix_cache_stats(self) -> None:
        """TensorRT-LLM keeps its own KV-cache reuse counters."""
        return None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="trtllm-loop", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        asyncio.run_coroutine_threadsafe(self._serve(job), self._loop)

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is not None:
            asyncio.run_coroutine_threadsafe(self._cancel_all(), self._loop).result(timeout)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        self.llm.shutdown()

    # -- the loop -----------------------------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        watcher = self._loop.create_task(self._watch())
        self._loop.run_forever()
        watcher.cancel()
        self._loop.run_until_complete(asyncio.gather(watcher, return_exceptions=True))
        self._loop.close()

    async def _serve(self, job: Job) -> None:
        self._tasks[job], self._progress[job] = asyncio.current_task(), self._loop.time()
        result = None
        try:
            result = self._generate(job)
            await self._stream(job, result)
        except asyncio.CancelledError:  # the watcher or stop() cancelled it
            _abort(result)
            why = self._why.get(job)
            if why == "client":
                job.sink.close()
            else:
                _fail(job, RuntimeError(f"TensorRT-LLM sent nothing for {self.stall_timeout_s:.0f} s"
                                        if why == "stall" else "generator stopped"))
        except Exception as exc:  # noqa: BLE001  (every failure ends the stream with an error response)
            _abort(result)
            log.warning("TensorRT-LLM request failed", exc_info=True)
            _fail(job, engine_error(exc, at_submit=result is None))
        finally:
            for live in (self._tasks, self._progress, self._why):
                live.pop(job, None)

    def _generate(self, job: Job) -> Any:
        params = self._params_cls(**sampling_kwargs(
            job.params, max_tokens=job.choices[0].max_tokens, end_id=self.end_id, stop_ids=self.vocab.stop_ids,
            vocab_size=self.config.vocab_size))
        return self.llm.generate_async(job.prompt.token_ids, sampling_params=params, streaming=True)

    async def _stream(self, job: Job, result: Any) -> None:
        reader = StreamReader(job, self.vocab, self.end_id)
        stream = result.__aiter__()
        while not job.done:
            try:  # awaited directly (no wait_for, whose 3.11 form can lose a cancellation): the watcher times it
                output = await stream.__anext__()
            except StopAsyncIteration:
                raise RuntimeError("TensorRT-LLM ended the stream before every choice finished") from None
            self._progress[job] = self._loop.time()
            reader.read(output.outputs)
            if output.finished:
                reader.finish()
            elif job.done:  # our stop strings ended every choice: free the sequence inside the engine
                _abort(result)
            try:
                job.flush()
            except Exception:  # noqa: BLE001  (the client is gone: a send on a cancelled request fails)
                log.info("dropping a request whose response could not be sent", exc_info=True)
                _abort(result)
                job.sink.close()
                return

    async def _watch(self) -> None:
        """Cancel the requests whose client went away, or that the engine left without a response for too long."""
        while True:
            await asyncio.sleep(self.cancel_check_s)
            now = self._loop.time()
            for job, task in list(self._tasks.items()):
                if job in self._why:
                    continue
                if job.sink.cancelled():
                    self._why[job] = "client"
                elif now - self._progress[job] > self.stall_timeout_s:
                    self._why[job] = "stall"
                else:
                    continue
                task.cancel()

    async def _cancel_all(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _abort(result: Any) -> None:
    if result is not None and not result.finished:
        try:
            result.abort()
        except Exception:  # noqa: BLE001  (best effort: the request may be gone already)
            log.warning("could not abort a TensorRT-LLM request", exc_info=True)


def _fail(job: Job, exc: BaseException) -> None:
    try:
        job.sink.fail(exc)
    except Exception:  # noqa: BLE001  (the client may be gone too)
        log.exception("could not report a failure")
