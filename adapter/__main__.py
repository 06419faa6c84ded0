"""`python -m adapter --port 9000 [--workers N]`: run the adapter under uvicorn.

Several workers (ADAPTER_WORKERS or --workers) are separate processes that share only the listening socket;
each has its own event loop and its own gRPC channel to Triton. Their Prometheus metrics are merged through
prometheus_client's multiprocess mode (a fresh PROMETHEUS_MULTIPROC_DIR, set before the app is imported).
"""
import argparse
import logging
import os
import tempfile

import uvicorn

from adapter.settings import get_settings


def main() -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="adapter")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--workers", type=int, default=settings.adapter_workers)
    args = parser.parse_args()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.workers > 1:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="adapter-metrics-"))
    # SIGTERM: uvicorn stops accepting, lets in-flight requests (streams) run up to the deadline, then cancels them.
    # Its own access log is off when ours (JSON, with request id and model) is on. Idle connections outlive the
    # clients' pool expiry (see Settings.keep_alive_timeout_s). uvicorn picks uvloop and httptools (dependencies):
    # about half the adapter's CPU per request of the pure-Python asyncio loop and h11.
    uvicorn.run("adapter.app:create_app", factory=True, workers=args.workers, host=args.host, port=args.port,
                log_level=settings.log_level, timeout_graceful_shutdown=settings.shutdown_timeout_s,
                access_log=not settings.access_log, timeout_keep_alive=settings.keep_alive_timeout_s)


if __name__ == "__main__":
    main()
