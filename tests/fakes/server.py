"""Run a fake provider as a real HTTP server on 127.0.0.1 in a background thread.

base_url, stop = serve_in_thread(OpenAIFake().app)
env = OpenAIFake.env(base_url)      # {"OPENAI_BASE_URL": base_url + "/v1", ...}
...
stop()
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import uvicorn
from starlette.types import ASGIApp

__all__ = ["serve_in_thread"]


def serve_in_thread(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> tuple[str, Callable[[], None]]:
    """Start `app` with uvicorn; return its base URL and a function that stops it and waits. Stopping gives
    requests still in flight a quarter second, then cancels them: at a test's end a slow fake's handler is
    one whose caller has gone (a killed server), and waiting out its delay only idles the suite."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=0.25)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake server did not start")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    return f"http://{host}:{bound_port}", stop
