"""CLI: `python -m launcher triton ...` runs tritonserver alone; `python -m launcher serve ...` runs the stack."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from launcher.process import ProcessStartError, free_port
from launcher.stack import Stack
from launcher.supervisor import RestartPolicy, Supervisor
from launcher.tritonserver import TritonInstall, TritonServer, embedded_install


def _install(args: argparse.Namespace) -> TritonInstall:
    if args.tritonserver:
        binary = Path(args.tritonserver)
        return TritonInstall(binary=binary, backend_dir=Path(args.backend_dir or binary.parent.parent / "backends"))
    return embedded_install()


def _wait_for_signal(stop: threading.Event | None = None, poll_s: float = 0.1) -> None:
    """Until SIGINT/SIGTERM, or until `stop` is set by someone else (the supervisor giving up).

    The handlers only record the signal. One that set the event took its lock, and Python runs a handler again,
    nested, when a second signal lands while the first still holds it (Ctrl-C twice, SIGTERM from two sources): the
    launcher then waited on itself for good."""
    stop = stop or threading.Event()
    received: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: received.append(signum))
    while not received and not stop.wait(poll_s):
        pass


def _triton(args: argparse.Namespace) -> TritonServer:
    return TritonServer(args.model_repository, http_port=args.http_port or free_port(),
                        grpc_port=args.grpc_port or free_port(), metrics_port=args.metrics_port or free_port(),
                        log_file=Path(args.log_dir) / "tritonserver.log", install=_install(args))


def cmd_triton(args: argparse.Namespace) -> int:
    server = _triton(args)
    server.start()
    try:
        server.wait_ready(args.timeout)
    except ProcessStartError as exc:
        server.stop()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"tritonserver ready: grpc {server.grpc_url}, http {server.http_url} (log: {server.log_file})", flush=True)
    if args.check:
        server.stop()
        return 0
    try:
        _wait_for_signal()
    finally:
        server.stop()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    ports = (args.http_port or free_port(), args.grpc_port or free_port(), args.metrics_port or free_port())
    stack = Stack(args.model_repository, Path(args.log_dir), port=args.port, host=args.host, install=_install(args),
                  triton_ports=ports, drain_s=args.drain_timeout)
    try:
        stack.start(args.timeout)
    except ProcessStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    supervisor = Supervisor([stack.triton, stack.adapter], RestartPolicy(
        max_crashes=args.max_crashes, window_s=args.crash_window, backoff_s=args.restart_backoff,
        ready_timeout_s=args.timeout)).start()
    print(f"OpenAI-compatible API ready at {stack.adapter.base_url}\n"
          f"Triton HTTP {stack.triton.http_url} (/v2/models/<id>/generate), gRPC {stack.triton.grpc_url}; "
          f"logs in {args.log_dir}", flush=True)
    print(f"Playground (try every model in a browser) at {stack.adapter.url}/playground", flush=True)
    try:
        _wait_for_signal(supervisor.done)
    finally:
        supervisor.stop()
        print("stopping adapter and tritonserver...", flush=True)
        stack.stop()
        supervisor.join()
    if supervisor.failure:
        print(f"error: {supervisor.failure}; exiting for the orchestrator to take over", file=sys.stderr, flush=True)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="launcher", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, fn in (("triton", cmd_triton), ("serve", cmd_serve)):
        p = sub.add_parser(name)
        p.set_defaults(fn=fn)
        p.add_argument("--model-repository", type=Path, required=True)
        p.add_argument("--http-port", type=int, default=0, help="0 = a free port")
        p.add_argument("--grpc-port", type=int, default=0)
        p.add_argument("--metrics-port", type=int, default=0)
        p.add_argument("--log-dir", default="build/logs")
        p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for readiness")
        p.add_argument("--tritonserver", help="path of a tritonserver binary (default: the embedded one)")
        p.add_argument("--backend-dir", help="backends directory for --tritonserver")
    sub.choices["triton"].add_argument("--check", action="store_true", help="exit 0 once ready (load check)")
    serve = sub.choices["serve"]
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "9000")))
    serve.add_argument("--max-crashes", type=int, default=5,
                       help="this many crashes of tritonserver or the adapter within --crash-window: exit 1")
    serve.add_argument("--crash-window", type=float, default=300.0, help="seconds")
    serve.add_argument("--restart-backoff", type=float, default=1.0,
                       help="seconds before the first restart, doubled per recent crash (at most 30)")
    serve.add_argument("--drain-timeout", type=float, default=None,
                       help="seconds in-flight requests may run after SIGTERM before they are cut (default: "
                            "SHUTDOWN_TIMEOUT_S, else 20); the stack stops within 5 s after it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
