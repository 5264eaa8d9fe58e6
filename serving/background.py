"""Run the server in a background thread of this process, on a free loopback port.

For code that needs a real HTTP server next to itself: the tests (the openai client and a
browser on 127.0.0.1), bench/serve_throughput.py. `tools/serve.py` runs uvicorn in the
foreground instead.

Example:
  with BackgroundServer(create_app(engine)) as server:
      client = openai.OpenAI(base_url=server.base_url, api_key="none")
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

STARTUP_TIMEOUT_S = 30.0


class BackgroundServer:
    """uvicorn serving `app` on 127.0.0.1 (a free port unless `port` is given) in a daemon thread."""

    def __init__(self, app, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))  # bound here, so the port is known before uvicorn starts
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as base_url."""
        return self.url + "/v1"

    def start(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.url} did not start within {STARTUP_TIMEOUT_S:.0f} s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=STARTUP_TIMEOUT_S)
        self.sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
