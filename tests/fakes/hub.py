"""A local stand-in for the Hugging Face hub's file endpoints, enough for `snapshot_download`.

Serves one repository's files from a directory: the repo info with its file list and sizes,
and each file under `/{repo}/resolve/{revision}/{name}` (HEAD and GET, with the headers the
client checks). Counts downloads, so a test can tell that several workers fetched a model once.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubFake:
    def __init__(self, repo_id: str, files: Path) -> None:
        self.repo_id = repo_id
        self.files = files
        self.downloads: Counter[str] = Counter()
        self.requests: list[str] = []
        self.url = ""

    def _siblings(self) -> list[dict[str, object]]:
        return [
            {"rfilename": p.name, "size": p.stat().st_size}
            for p in sorted(self.files.iterdir())
            if p.is_file()
        ]

    async def info(self, request: Request) -> Response:
        self.requests.append(f"{request.method} {request.url.path}")
        if request.path_params["repo"] != self.repo_id:
            return JSONResponse({"error": "Repository not found"}, status_code=404)
        return JSONResponse(
            {
                "id": self.repo_id,
                "modelId": self.repo_id,
                "sha": COMMIT,
                "siblings": self._siblings(),
            }
        )

    async def tree(self, request: Request) -> Response:
        self.requests.append(f"{request.method} {request.url.path}")
        return JSONResponse(
            [
                {"type": "file", "path": s["rfilename"], "size": s["size"], "oid": COMMIT}
                for s in self._siblings()
            ]
        )

    async def resolve(self, request: Request) -> Response:
        self.requests.append(f"{request.method} {request.url.path}")
        name = request.path_params["name"]
        path = self.files / name
        if request.path_params["repo"] != self.repo_id or not path.is_file():
            return Response(status_code=404, headers={"X-Error-Code": "EntryNotFound"})
        etag = hashlib.sha1(str(path.stat().st_size).encode() + name.encode()).hexdigest()
        headers = {
            "X-Repo-Commit": COMMIT,
            "ETag": f'"{etag}"',
            "Content-Length": str(path.stat().st_size),
        }
        if request.method == "HEAD":
            return Response(status_code=200, headers=headers)
        self.downloads[name] += 1
        return FileResponse(path, headers={"X-Repo-Commit": COMMIT, "ETag": f'"{etag}"'})


@contextmanager
def running_hub(repo_id: str, files: Path) -> Iterator[HubFake]:
    fake = HubFake(repo_id, files)
    repo = "{repo:path}"
    app = Starlette(
        routes=[
            Route(f"/api/models/{repo}/revision/{{revision}}", fake.info),
            Route(f"/api/models/{repo}/tree/{{revision}}", fake.tree),
            Route(f"/api/models/{repo}", fake.info),
            Route(f"/{repo}/resolve/{{revision}}/{{name}}", fake.resolve, methods=["GET", "HEAD"]),
        ]
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(5)
