"""Continuous batching: a background loop that admits waiting jobs between decode steps, decodes one token for
every running choice (batched), and lets finished or cancelled jobs leave.

An admitted prompt is prefilled but for its last token, through the layers only; that token then goes through the
decode step with the running sequences, whose logits give its first token. The LM head (at Llama-3's vocabulary
the largest matrix) thus runs once per step for everyone instead of once more per arriving prompt.

The loop owns the engine session and every job's state; other threads only call submit() and stop().
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque

from runtime.llm.coalesce import StreamInterval
from runtime.llm.grammar import GrammarEngine
from runtime.llm.sampling import Sampled, sample_rows
from runtime.llm.sequence import Choice, Job, Vocab
from runtime.llm.session import EngineSession
from runtime.llm.slot_table import PrefixStats, SlotTable

log = logging.getLogger(__name__)
STOPPED = "generator stopped: the server is shutting down"


class Scheduler:
    supports_grammar = True  # masks constrained rows before sampling (JobEngine capability)

    def __init__(self, session: EngineSession, vocab: Vocab, max_batch_size: int,
                 max_prefill_tokens: int = 8192, cancel_check_s: float = 0.25,
                 interval: StreamInterval = StreamInterval(), grammar: GrammarEngine | None = None,
                 prefix_caching: bool = True):
        self.session, self.vocab, self.interval, self.grammar = session, vocab, interval, grammar
        self.max_batch_size, self.max_prefill_tokens = max_batch_size, max_prefill_tokens
        self.cancel_check_s = cancel_check_s
        self.slots = SlotTable(max_batch_size, reuse=prefix_caching)
        self.waiting: deque[Job] = deque()
        self.running: list[Job] = []
        self.steps = 0
        self._lock = threading.Condition()
        self._stopped = False
        self._last_cancel_check = 0.0
        self._thread: threading.Thread | None = None

    def use_grammar(self, grammar: GrammarEngine) -> None:
        self.grammar = grammar

    def prefix_cache_stats(self) -> PrefixStats:
        return self.slots.stats

    # -- other threads ------------------------------------------------------------------------------------
    def submit(self, job: Job) -> bool:
        """Queue a job for the next step; True when the loop was idle (the job's prefill starts at once).
        Its n fits the batch: GenerationRequest.validate checked it against the model's max_batch_size."""
        with self._lock:
            if self._stopped:  # the loop is gone: the job would never end
                raise RuntimeError(STOPPED)
            idle = not self.waiting and not self.running
            job.submitted_at = time.monotonic()
            self.waiting.append(job)
            self._lock.notify()
        return idle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="llm-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the loop -----------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._stopped and not self.waiting and not self.running:
                    self._lock.wait()
                if self._stopped:
                    break
            try:
                self.step()
            except Exception as exc:  # an engine failure must not hang the clients: fail their jobs
                log.exception("generation step failed")
                self._fail_all(exc)
        self._fail_all(RuntimeError(STOPPED))

    def step(self) -> None:
        """One scheduling round: drop cancelled jobs, admit and prefill waiting ones, decode the running ones."""
        self._drop_cancelled()
        admitted = self._admit()
        if admitted:
            self.running += admitted  # before the engine runs: if it fails, _fail_all fails these jobs too
            self._prefill(admitted)
        if self.running:  # the engine decodes every live slot together, the admitted prompts' last tokens included
            self._decode(self.running)
        now = time.monotonic()
        for job in list(self.running):
            self._emit(job, now)
        self.steps += 1

    def run_until_idle(self) -> None:
        """Drive the loop in the caller's thread (tests, the in-process benchmark)."""
        while self.waiting or self.running:
            self.step()

    # -- admission and prefill ----------------------------------------------------------------------------
    def _admit(self) -> list[Job]:
        admitted: list[Job] = []
        tokens = 0
        with self._lock:
            while self.waiting and self.waiting[0].params.n <= self.slots.available():
                job = self.waiting[0]
                if self._waited_long(job) and job.sink.cancelled():  # once here, not on every sweep (an IPC call)
                    self.waiting.popleft()
                    job.sink.close()
                    job.started.set()
                    continue
                tokens += len(job.prompt.token_ids)
                if admitted and tokens > self.max_prefill_tokens:
                    break
                self.waiting.popleft()
                self._claim(job)
                admitted.append(job)
        return admitted

    def _claim(self, job: Job) -> None:
        """Slots for a job's choices: the first reuses what it can of a cached prefix, the others fork it."""
        first, *others = job.choices
        job.claim = self.slots.claim(job.prompt.token_ids)
        first.slot = job.claim.slot
        for choice in others:
            choice.slot = self.slots.claim_copy(first.slot)

    def _waited_long(self, job: Job) -> bool:
        """Whether a waiting job is worth a cancellation check: one submitted a moment ago is not (its client was
        there then; the running sweep catches it later), which keeps the IPC call off the time to first token."""
        return time.monotonic() - job.submitted_at >= self.cancel_check_s

    def _prefill(self, jobs: list[Job]) -> None:
        """One prompt at a time, in admission order (a later job may reuse an earlier one's prefix), all but its
        last token; the job's other choices fork that cache and decode the last token each."""
        for job in jobs:
            claim, prompt = job.claim, job.prompt.token_ids
            if claim.copy_needed:
                self.session.copy(claim.source, [claim.slot], claim.reused)
            cached = len(prompt) - 1  # the table reuses at most this much: claim.reused <= cached
            self.session.prefill(claim.slot, prompt[:cached], claim.reused, logits=False)
            self.session.copy(claim.slot, [c.slot for c in job.choices[1:]], cached)

    # -- decode -------------------------------------------------------------------------------------------
    def _decode(self, jobs: list[Job]) -> None:
        active = [(job, c) for job in jobs for c in job.choices if not c.finished]
        if not active:
            return
        feed = [c.token_ids[-1] if c.token_ids else job.prompt.token_ids[-1] for job, c in active]
        logits = self.session.decode([c.slot for _, c in active], feed)
        self._constrain(logits, [c for _, c in active])
        for (job, choice), sampled in zip(active, sample_rows(logits, [c.sampler for _, c in active])):
            self._accept(job, choice, sampled)

    def _constrain(self, logits, choices: list[Choice]) -> None:
        """Grammar masks for the constrained rows (one bitmask, one apply); unconstrained rows are not touched."""
        rows = [i for i, c in enumerate(choices) if c.constraint is not None]
        if rows:
            self.grammar.mask(logits, rows, [choices[i].constraint for i in rows])

    def _accept(self, job: Job, choice: Choice, sampled: Sampled) -> None:
        choice.accept(sampled, self.vocab, job.params.ignore_eos)
        if choice.finished:
            self._free(choice, job.prompt.token_ids)

    def _free(self, choice: Choice, prompt: list[int]) -> None:
        """The slot keeps its cache for later prompts: the prompt and every token fed back (not the last)."""
        if choice.slot >= 0:
            self.slots.release(choice.slot, prompt + choice.token_ids[:-1])
            choice.slot = -1

    # -- leaving ------------------------------------------------------------------------------------------
    def _emit(self, job: Job, now: float) -> None:
        job.started.set()  # its first step is out (or held by the window): a waiting submitter may go on
        if not job.pace.due(self.interval, now, job.completion_tokens, job.done):
            return  # coalescing: its deltas wait for the stream's window (runtime/llm/coalesce.py)
        try:
            job.flush(now)
        except Exception:  # the client is gone (a send on a cancelled request fails): drop it
            log.info("dropping a job whose response could not be sent", exc_info=True)
            self._leave(job)
            job.sink.close()
            return
        if job.done:
            self._leave(job)

    def _leave(self, job: Job) -> None:
        for choice in job.choices:
            self._free(choice, job.prompt.token_ids)
        if job in self.running:
            self.running.remove(job)

    def _drop_cancelled(self) -> None:
        """Running jobs whose client went away leave (waiting ones are checked when admitted)."""
        now = time.monotonic()
        if now - self._last_cancel_check < self.cancel_check_s:
            return
        self._last_cancel_check = now
        for job in [j for j in self.running if j.sink.cancelled()]:
            self._leave(job)
            job.sink.close()

    def _fail_all(self, exc: BaseException) -> None:
        with self._lock:
            jobs = self.running + list(self.waiting)
            self.waiting.clear()
        self.running = []
        for job in jobs:
            job.started.set()
            for choice in job.choices:
                choice.slot = -1
            try:
                job.sink.fail(exc)
            except Exception:  # noqa: BLE001  (best effort: the client may be gone too)
                log.exception("could not report a failure")
        self.slots.reset()  # a failed engine call leaves the cache's contents unknown

