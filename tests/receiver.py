"""Local HTTP servers on 127.0.0.1 for webhooks and audio URLs, each in a thread of its own.

`Receiver` answers webhook deliveries from a script (500, 500, 200, ...) and records every
request; `FileServer` serves files, statuses, redirects and slow or unsized bodies.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each POST with the next status of `script` (then `default`), recording it."""

    url: str = ""
    script: list[int] = field(default_factory=list)
    default: int = 200
    requests: list[Received] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def answer(self) -> int:
        return self.script.pop(0) if self.script else self.default

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.requests)} of {count} requests arrived")
            time.sleep(0.02)
        return self.requests


Route = Callable[[BaseHTTPRequestHandler], None]


@contextmanager
def serving(routes: dict[str, Route]) -> Iterator[str]:
    """A threaded HTTP/1.0 server (bodies may end with the connection) on a free port."""

    class Handler(BaseHTTPRequestHandler):
        def _dispatch(self) -> None:
            route = routes.get(self.path.split("?", 1)[0]) or routes.get("*")
            if route is None:
                self.send_error(404)
                return
            route(self)

        do_GET = do_POST = _dispatch

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    def receive(handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length", "0"))
        body = handler.rfile.read(length)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        status = receiver.answer()
        receiver.requests.append(Received(handler.path, headers, body))
        handler.send_response(status)
        for name, value in receiver.headers.items():
            handler.send_header(name, value)
        handler.send_header("content-length", "2")
        handler.end_headers()
        handler.wfile.write(b"ok")

    with serving({"*": receive}) as url:
        receiver.url = url
        yield receiver


def send_file(path: Path, *, sized: bool = True) -> Route:
    """Serve `path`; unsized, the body ends when the connection closes (no Content-Length)."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        data = path.read_bytes()
        handler.send_response(200)
        handler.send_header("content-type", "audio/wav")
        if sized:
            handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return route


def send_status(status: int) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("content-length", "0")
        handler.end_headers()

    return route


def redirect(location: Callable[[], str]) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("location", location())
        handler.send_header("content-length", "0")
        handler.end_headers()

    return route


def trickle(total: int, every_s: float) -> Route:
    """Announce `total` bytes and send one every `every_s` seconds (a server that stalls)."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("content-length", str(total))
        handler.end_headers()
        try:
            for _ in range(total):
                handler.wfile.write(b"\0")
                handler.wfile.flush()
                time.sleep(every_s)
        except OSError:
            return

    return route
