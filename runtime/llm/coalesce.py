"""When a stream's next response goes out: coalescing token deltas when the engine outruns the client.

The scheduler offers every job one response per step at most; a stream then holds its deltas until its
window has passed since its last response (vLLM's stream interval, in time here: a fast engine merges more
tokens per response, a slow one still sends every step), or until it holds `max_held_tokens`. Every response
is a Python-backend crossing, a gRPC message and an SSE chunk, so at GPU token rates this is what keeps the
serving path off the critical path. Never held: a stream's first response (time to first token) and its last.
A non-streaming request gets one response: its last.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StreamInterval:
    """config.pbtxt parameters stream_interval_ms and stream_max_held_tokens (0 = no limit by count)."""
    seconds: float = 0.0
    max_held_tokens: int = 0

    @classmethod
    def from_parameters(cls, params: dict[str, str], default_ms: float) -> "StreamInterval":
        return cls(float(params.get("stream_interval_ms", default_ms)) / 1e3,
                   int(params.get("stream_max_held_tokens", 0)))

    def to_parameters(self) -> dict[str, str]:
        return {"stream_interval_ms": f"{self.seconds * 1e3:g}", "stream_max_held_tokens": str(self.max_held_tokens)}


@dataclass
class StreamPace:
    """One job's side of the window: when and at what token count it last sent."""
    stream: bool = True
    sent_at: float | None = None  # None: nothing sent yet
    sent_tokens: int = 0

    def due(self, interval: StreamInterval, now: float, tokens: int, done: bool) -> bool:
        if done:
            return True
        if not self.stream:
            return False
        if self.sent_at is None:
            return True
        if interval.max_held_tokens and tokens - self.sent_tokens >= interval.max_held_tokens:
            return True
        return now - self.sent_at >= interval.seconds

    def sent(self, now: float, tokens: int) -> None:
        self.sent_at, self.sent_tokens = now, tokens
