"""`python -m launcher serve` as `make serve` runs it: a SIGKILLed tritonserver or adapter comes back on its own,
too many crashes end the launcher non-zero, SIGTERM after streaming traffic stops everything within 5 s, and a
killed launcher leaves nothing running."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import openai

from tests.integration.launcher_serve import CHAT
from tests.integration.llm_helpers import MODEL
from tests.timing import scaled, wait_until


def _leftovers(repo: Path) -> str:
    return subprocess.run(["pgrep", "-af", str(repo)], capture_output=True, text=True).stdout.strip()


def _stream_traffic(client: openai.OpenAI) -> None:
    def one(i: int) -> None:
        stream = client.chat.completions.create(**{**CHAT, "max_tokens": 64}, stream=True)
        for k, _ in enumerate(stream):
            if i % 2 and k == 3:  # half the clients go away mid-stream
                stream.close()
                break
    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)


def test_killed_processes_come_back_and_sigterm_stops_within_5s(serve, model_repository, tmp_path):
    repo = tmp_path / "repo"  # the LLM alone: the model under test, and the stack restarts faster
    repo.mkdir()
    (repo / MODEL).symlink_to((model_repository / MODEL).resolve())
    served = serve(repo)
    assert "Triton HTTP http://127.0.0.1:" in served.text and "gRPC 127.0.0.1:" in served.text
    assert served.answers()

    triton = served.child("tritonserver")
    os.kill(triton, signal.SIGKILL)
    served.wait_for(lambda: "tritonserver is back" in served.text, 300, "tritonserver restart")
    assert served.answers(), "the adapter did not recover without a restart"
    assert "tritonserver killed by SIGKILL (crash 1" in served.text and served.child("tritonserver") != triton
    assert "Started GRPCInferenceService" in served.text  # the crashed run's last log lines

    adapter = served.child("-m adapter")
    os.kill(adapter, signal.SIGKILL)
    served.wait_for(lambda: "adapter is back" in served.text, 120, "adapter restart")
    assert served.answers() and "adapter killed by SIGKILL (crash 1" in served.text

    _stream_traffic(served.client)
    sent = time.monotonic()
    served.proc.send_signal(signal.SIGTERM)
    served.proc.wait(scaled(30))
    stopped_after = time.monotonic() - sent
    assert served.proc.returncode == 0, served.text
    # 20 s here meant the model never unloaded: the adapter cancelled streams that had already ended (see
    # adapter/triton_client.py `_let_finish`), and the LLM stub ran on until Triton's stop timeout
    assert stopped_after < scaled(5), f"stopped {stopped_after:.1f} s after SIGTERM\n{served.text}"
    assert _leftovers(repo) == ""


def test_too_many_crashes_exit_nonzero(serve, tmp_path):
    repo = tmp_path / "empty-repo"  # no models: tritonserver starts in seconds
    repo.mkdir()
    served = serve(repo, "--max-crashes", "2", "--crash-window", "600")
    os.kill(served.child("-m adapter"), signal.SIGKILL)
    served.wait_for(lambda: "adapter is back" in served.text, 120, "adapter restart")
    os.kill(served.child("-m adapter"), signal.SIGKILL)
    served.proc.wait(scaled(60))
    assert served.proc.returncode == 1, served.text
    assert "giving up: adapter killed by SIGKILL: 2 crashes within 600 s" in served.text
    assert "exiting for the orchestrator" in served.text and _leftovers(repo) == ""


def _exited(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"  # exited, not yet reaped
    except FileNotFoundError:
        return True


def test_a_killed_launcher_takes_its_children_along(serve, tmp_path):
    """SIGKILL or the OOM killer on the launcher must not leave tritonserver and the adapter running (holding
    ports and GPU memory with nothing supervising them): they run in sessions of their own, so only the
    launcher's death signal (launcher/process.py) can end them."""
    repo = tmp_path / "empty-repo"
    repo.mkdir()
    served = serve(repo)
    children = [served.child("tritonserver"), served.child("-m adapter")]
    os.kill(served.proc.pid, signal.SIGKILL)
    served.proc.wait(scaled(10))
    exited = wait_until(lambda: all(_exited(pid) for pid in children), 30, interval=0.2)
    assert exited, [Path(f"/proc/{p}/cmdline").read_bytes() for p in children]
    assert _leftovers(repo) == ""
