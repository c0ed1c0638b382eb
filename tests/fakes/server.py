"""Serve both fakes from one uvicorn in a background thread, for the length of a `with`.

A thread rather than a process: tests configure faults and read records on the very objects
the server uses, with no IPC. uvicorn gets a pre-bound socket on port 0 (no free-port race),
and stopping first releases every held request (hang, trickle), so `with` exits in about a
second even when a client is still waiting on a hung call.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp

from tests.fakes.gemini import PREFIX as GEMINI_PREFIX
from tests.fakes.gemini import GeminiFake
from tests.fakes.injector import FaultInjector
from tests.fakes.openai import PREFIX as OPENAI_PREFIX
from tests.fakes.openai import OpenAIFake


class Fakes:
    """Both fake providers on one server: Gemini under /gemini, OpenAI under /openai.

    Separate prefixes because google-genai 3.x calls Gemini's v1 API by default, whose
    /v1/... paths would otherwise be mistaken for OpenAI's.
    """

    def __init__(self) -> None:
        self.url = ""
        self.gemini = GeminiFake()
        self.openai = OpenAIFake()
        self.stopping = threading.Event()
        """Set when the server stops: held requests (hang, trickle) let go."""

    @property
    def gemini_url(self) -> str:
        """For `genai.Client(http_options=types.HttpOptions(base_url=...))`."""
        return f"{self.url}{GEMINI_PREFIX}"

    @property
    def openai_url(self) -> str:
        """For `openai.AsyncOpenAI(base_url=...)` (it ends in /v1, like the real one)."""
        return f"{self.url}{OPENAI_PREFIX}/v1"

    def reset(self) -> None:
        """Forget faults, records, files and custom answers (between tests)."""
        self.gemini.reset()
        self.openai.reset()

    def app(self) -> ASGIApp:
        services = [self.gemini, self.openai]
        routes = [route for service in services for route in service.routes()]
        return FaultInjector(Starlette(routes=routes), services, self.stopping)


@contextmanager
def running_fakes(
    host: str = "127.0.0.1", start_timeout: float = 10.0, stop_timeout: float = 5.0
) -> Iterator[Fakes]:
    """Both fakes on a free port of `host`; `fakes.url` is set inside the block."""
    fakes = Fakes()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    fakes.url = f"http://{host}:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        fakes.app(),
        lifespan="off",
        loop="asyncio",  # the reset fault sets SO_LINGER on the transport's real socket
        log_config=None,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="fake-apis", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake API server did not start")
            time.sleep(0.01)
        yield fakes
    finally:
        fakes.stopping.set()
        server.should_exit = True
        thread.join(stop_timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(stop_timeout)
        sock.close()
        if thread.is_alive():
            raise RuntimeError("the fake API server did not stop")
