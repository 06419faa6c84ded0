"""`python -m adapter --port 9000`: run the adapter under uvicorn."""
import argparse
import logging

import uvicorn

from adapter.app import create_app
from adapter.settings import get_settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="adapter")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # SIGTERM: uvicorn stops accepting, lets in-flight requests (streams) run up to the deadline, then cancels them.
    # Its own access log is off when ours (JSON, with request id and model) is on. Idle connections outlive the
    # clients' pool expiry (see Settings.keep_alive_timeout_s). uvicorn picks uvloop and httptools (dependencies):
    # about half the adapter's CPU per request of the pure-Python asyncio loop and h11.
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=settings.log_level,
                timeout_graceful_shutdown=settings.shutdown_timeout_s, access_log=not settings.access_log,
                timeout_keep_alive=settings.keep_alive_timeout_s)


if __name__ == "__main__":
    main()
