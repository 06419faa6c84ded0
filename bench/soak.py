"""Soak: mixed traffic against `launcher serve` for a while, tritonserver killed in the middle, then SIGTERM.

  HF_HUB_OFFLINE=1 .venv/bin/python bench/soak.py [--minutes 30] [--repo build/model_repository] [--out FILE]

Traffic: every shape of bench/mixed_load.py (all routes, streaming and not, cut and abandoned
requests, model-refused ones, Triton's HTTP generate and gRPC streams), `--concurrency` at once, in rounds until
time is up. Half way, tritonserver gets SIGKILL; the launcher restarts it. Reported: requests and errors (those
while Triton is down and until it is ready again count apart, as "during the kill"), the stack's memory (every
process under the launcher) after the first round and at the end, and how long the stop takes after SIGTERM.
Targets: 0 errors outside the kill, memory flat (within 10%), stop < 5 s.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from any directory

from bench import mixed_load  # noqa: E402
from launcher.process import free_port, http_ok  # noqa: E402


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *_children(int(child))]
    return found


def tree_rss_mib(pid: int) -> float:
    """Resident memory of `pid` and every process below it (tritonserver, its stubs, the adapter)."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except FileNotFoundError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total / 1024


class Launcher:
    def __init__(self, repo: Path, log_dir: Path):
        http, grpc, metrics, port = free_port(), free_port(), free_port(), free_port()
        self.urls = mixed_load.Urls(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{http}", f"127.0.0.1:{grpc}")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "launcher", "serve", "--model-repository", str(repo), "--port", str(port),
             "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics),
             "--log-dir", str(log_dir), "--restart-backoff", "0.5"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.output: list[str] = []
        threading.Thread(target=lambda: self.output.extend(self.proc.stdout), daemon=True).start()

    def wait_for(self, text: str, count: int = 1, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while "".join(self.output).count(text) < count:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no {text!r}:\n{''.join(self.output)[-3000:]}")
            time.sleep(0.2)

    def kill_triton(self) -> None:
        pid = next(p for p in _children(self.proc.pid)
                   if b"tritonserver" in Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0])
        os.kill(pid, signal.SIGKILL)

    def stop_seconds(self) -> float:
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        return time.monotonic() - sent


class Tally:
    def __init__(self):
        self.requests = self.errors = self.kill_errors = 0
        self.down: tuple[float, float] | None = None  # (killed, the adapter ready again), monotonic
        self.back = 0.0  # when the launcher said tritonserver is back
        self.samples: list[str] = []
        self._ok_after = 0
        self._lock = threading.Lock()

    def ok_after(self) -> int:
        """Requests that succeeded after tritonserver was back (the recovery)."""
        return self._ok_after

    def run(self, shape) -> None:
        start = time.monotonic()
        try:
            shape()
            failed = None
        except Exception as exc:  # noqa: BLE001  (every failure is counted and sampled)
            failed = f"{type(exc).__name__}: {exc}"[:300]
        with self._lock:
            self.requests += 1
            if failed is None:
                self._ok_after += self.down is not None and start > self.down[1]
                return
            in_kill = self.down is not None and start <= self.down[1] and time.monotonic() >= self.down[0]
            if in_kill:
                self.kill_errors += 1
            else:
                self.errors += 1
                self.samples = (self.samples + [failed])[-10:]


def _kill_at(stack: Launcher, tally: Tally, at: float) -> None:
    """At monotonic time `at`, SIGKILL tritonserver while traffic runs. tally.down spans the kill until the adapter
    is ready again: after the launcher's "tritonserver is back" the adapter's channel may still wait out its
    reconnect backoff (up to 2 s, adapter/triton_client.py), answering 503; tally.back marks the launcher's line."""
    time.sleep(max(0.0, at - time.monotonic()))
    down_at = time.monotonic()
    tally.down = (down_at, float("inf"))
    stack.kill_triton()
    stack.wait_for("tritonserver is back")
    tally.back = time.monotonic()
    while not http_ok(f"{stack.urls.adapter}/health/ready"):
        time.sleep(0.05)
    tally.down = (down_at, time.monotonic())


def soak(repo: Path, minutes: float, concurrency: int, log_dir: Path) -> dict:
    stack = Launcher(repo, log_dir)
    stack.wait_for("API ready at")
    tally, shapes = Tally(), mixed_load.all_shapes(stack.urls)
    start = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(tally.run, shapes))  # warm-up round: memory is measured after it
        rss_start = tree_rss_mib(stack.proc.pid)
        killer = threading.Thread(target=_kill_at, args=(stack, tally, start + minutes * 30), daemon=True)
        killer.start()
        while time.monotonic() < start + minutes * 60 or killer.is_alive():
            list(pool.map(tally.run, shapes))
    succeeded = tally.requests - tally.kill_errors - tally.errors
    time.sleep(2)  # abandoned requests end (their slots free at once; the adapter notices within a moment)
    rss_end = tree_rss_mib(stack.proc.pid)
    return {"minutes": minutes, "concurrency": concurrency, "requests": tally.requests, "succeeded": succeeded,
            "errors": tally.errors, "errors_during_kill": tally.kill_errors, "error_samples": tally.samples,
            "triton_down_s": round(tally.back - tally.down[0], 1),
            "adapter_reconnect_s": round(tally.down[1] - tally.back, 1), "ok_after_restart": tally.ok_after(),
            "rss_start_mib": round(rss_start), "rss_end_mib": round(rss_end), "stop_s": round(stack.stop_seconds(), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=ROOT / "build" / "model_repository")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--log-dir", type=Path, default=ROOT / "build" / "soak-logs")
    parser.add_argument("--out", type=Path, help="also write the JSON result here")
    args = parser.parse_args()
    result = soak(args.repo, args.minutes, args.concurrency, args.log_dir)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if result["errors"] == 0 and result["stop_s"] < 5 else 1


if __name__ == "__main__":
    sys.exit(main())
