"""`python -m launcher serve` as `make serve` runs it, in a child process whose output the tests read."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai

from launcher.process import free_port
from tests.integration.llm_helpers import MODEL

ROOT = Path(__file__).resolve().parents[2]
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 24, "temperature": 0}


class Served:
    """A launcher child process; its output is collected by a thread."""

    def __init__(self, repo: Path, log_dir: Path, *args: str):
        self.port = free_port()
        self.log_dir = Path(log_dir)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "launcher", "serve", "--model-repository", str(repo), "--port", str(self.port),
             "--log-dir", str(log_dir), "--restart-backoff", "0.2", *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.output: list[str] = []
        threading.Thread(target=lambda: self.output.extend(self.proc.stdout), daemon=True).start()
        self.client = openai.OpenAI(base_url=f"http://127.0.0.1:{self.port}/v1", api_key="-", max_retries=0,
                                    timeout=60)

    @property
    def text(self) -> str:
        return "".join(self.output)

    def wait_for(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.proc.poll() is None or condition(), f"launcher exited while waiting for {what}:\n{self.text}"
            assert time.monotonic() < deadline, f"no {what} after {timeout:.0f} s:\n{self.text}"
            time.sleep(0.25)

    def child(self, marker: str) -> int:
        """Pid of the launcher's child whose command line contains `marker` (children of every thread)."""
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            for pid in (task / "children").read_text().split():
                if marker in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode():
                    return int(pid)
        raise AssertionError(f"no child process with {marker!r}")

    def answers(self) -> bool:
        try:
            return bool(self.client.chat.completions.create(**CHAT).choices[0].message.content is not None)
        except (openai.APIError, httpx.HTTPError):
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # test failure path: leave nothing behind
        self.proc.wait()
