"""A benchmark's server in its own process (a leading underscore keeps `make bench` from
running it): in the client's process its request handling would compete with the client for
the GIL, and the bench would measure both sides."""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection


def serve_until_told(server: contextlib.AbstractContextManager, conn: Connection) -> None:
    """In the child: start `server` (it has .base_url), send its URL, serve until the parent says stop."""
    with server as running:
        conn.send(running.base_url)
        with contextlib.suppress(EOFError):  # the parent died and closed the pipe
            conn.recv()  # until the parent asks to stop


@contextlib.contextmanager
def server_process(target: Callable[..., None], args: tuple, timeout: float = 30.0) -> Iterator[str]:
    """Run `target(*args, conn)` in a spawned process; yields the base URL it sends back."""
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=target, args=(*args, child), daemon=True)
    process.start()
    try:
        if not parent.poll(timeout):
            raise RuntimeError(f"the server process did not start within {timeout:.0f} s")
        yield parent.recv()
    finally:
        parent.send("stop")
        process.join(10)
