"""Where audio bytes, finished uploads and transcripts live. One small interface, two backends:
the local filesystem (default, under the data dir) and S3-compatible object storage
(`service/media/storage_s3.py`), chosen by `STORAGE_URL`.

Keys are relative paths like `audio/<owner-hash>/<uuid>`; nothing outside the root is reachable.
Blocking I/O always runs in a thread, never on the event loop.

Resumable uploads append to a blob over many requests, possibly on different machines: an
`Appender` takes the bytes of one request, and its `commit()` returns the backend's state (a
small JSON object) that the caller stores in Postgres next to the upload's offset, so the next
request, on any process, continues from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from service.config import ConfigError, Settings
from service.errors import InsufficientStorage

WRITE_BUFFER_BYTES = 1024 * 1024
READ_CHUNK_BYTES = 1024 * 1024
PLAYBACK_URL_SECONDS = 300


@dataclass(frozen=True, slots=True)
class StoredBlob:
    key: str
    size_bytes: int
    sha256: str


class Appender(Protocol):
    """Receives one request's bytes for a resumable upload."""

    async def write(self, chunk: bytes) -> None: ...

    async def commit(self) -> dict[str, Any]:
        """Make what was written durable; returns the state to pass to the next append."""
        ...

    async def rollback(self) -> None:
        """Forget what was written since the append began (a checksum did not match)."""
        ...


class Storage(Protocol):
    def staging_path(self) -> Path:
        """A fresh local path where an upload is written before it is accepted."""
        ...

    async def adopt(self, staged: Path, key: str) -> None:
        """Move a finished, validated staging file to its permanent key."""
        ...

    def local_file(self, key: str) -> contextlib.AbstractAsyncContextManager[Path]:
        """A local path holding the blob for as long as the context is open (a streamed,
        temporary copy for remote backends, removed afterwards)."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def playable(self, key: str, content_type: str) -> Path | str:
        """Where a browser may read the blob: a local path to serve (with Range), or a
        short-lived URL (`PLAYBACK_URL_SECONDS`) answering with `content_type`, to redirect to.
        FileNotFoundError if it is not there."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the blob; deleting what is not there is not an error (cleanup is idempotent)."""
        ...

    async def put_bytes(self, key: str, data: bytes) -> None:
        """Store a small blob (a transcript) whole."""
        ...

    async def get_bytes(self, key: str) -> bytes:
        """Read a small blob whole; FileNotFoundError if it is not there."""
        ...

    async def append(self, key: str, state: Mapping[str, Any], offset: int) -> Appender:
        """Continue the partial blob at `key`, which holds `offset` committed bytes."""
        ...

    async def finish_append(self, key: str, state: Mapping[str, Any]) -> None:
        """Turn the partial blob into an ordinary blob at `key`."""
        ...

    async def abort_append(self, key: str, state: Mapping[str, Any]) -> None:
        """Drop a partial blob and everything the backend kept for it."""
        ...


class _FileAppender:
    """Appends to one local file, buffering so each thread hop writes about a megabyte."""

    def __init__(self, path: Path, offset: int) -> None:
        self.path = path
        self.start = offset
        self.buffer = bytearray()
        self.file = path.open("r+b" if path.exists() else "w+b")
        self.file.truncate(offset)
        self.file.seek(offset)

    async def write(self, chunk: bytes) -> None:
        self.buffer += chunk
        if len(self.buffer) >= WRITE_BUFFER_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        data, self.buffer = bytes(self.buffer), bytearray()
        await asyncio.to_thread(self.file.write, data)

    async def commit(self) -> dict[str, Any]:
        await self._flush()

        def sync_and_close() -> None:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()

        await asyncio.to_thread(sync_and_close)
        return {}

    async def rollback(self) -> None:
        self.buffer = bytearray()

        def truncate_and_close() -> None:
            self.file.truncate(self.start)
            self.file.close()

        await asyncio.to_thread(truncate_and_close)


class LocalStorage:
    """Blobs as files under one directory (by default `<TAPELINE_DATA_DIR>/blobs`).

    Several machines can share it only through a shared filesystem (NFS and the like); without
    one, use S3-compatible storage.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        (self.root / "staging").mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"storage key escapes the root: {key!r}")
        return path

    def _partial(self, key: str) -> Path:
        return self._path(key + ".partial")

    def staging_path(self) -> Path:
        return self.root / "staging" / uuid.uuid4().hex

    async def adopt(self, staged: Path, key: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(os.replace, staged, target)

    @contextlib.asynccontextmanager
    async def local_file(self, key: str) -> AsyncIterator[Path]:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        yield path

    async def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    async def playable(self, key: str, content_type: str) -> Path | str:
        path = self._path(key)
        if not await asyncio.to_thread(path.is_file):
            raise FileNotFoundError(key)
        return path

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self._path(key).unlink)

    async def put_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)

        def write() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            staged = self.staging_path()
            with staged.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(staged, target)

        await asyncio.to_thread(write)

    async def get_bytes(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    async def append(self, key: str, state: Mapping[str, Any], offset: int) -> Appender:
        path = self._partial(key)

        def open_appender() -> _FileAppender:
            path.parent.mkdir(parents=True, exist_ok=True)
            return _FileAppender(path, offset)

        return await asyncio.to_thread(open_appender)

    async def finish_append(self, key: str, state: Mapping[str, Any]) -> None:
        partial, target = self._partial(key), self._path(key)

        def finish() -> None:
            if not partial.exists():
                if target.exists():
                    return  # finished already (a completion retried after a crash)
                partial.parent.mkdir(parents=True, exist_ok=True)
                partial.touch()
            os.replace(partial, target)

        await asyncio.to_thread(finish)

    async def abort_append(self, key: str, state: Mapping[str, Any]) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self._partial(key).unlink)


def audio_key(owner: str) -> str:
    owner_dir = hashlib.sha256(owner.encode()).hexdigest()[:16]
    return f"audio/{owner_dir}/{uuid.uuid4()}"


def transcript_key(run_id: uuid.UUID) -> str:
    return f"transcripts/{run_id}.json"


async def file_sha256(path: Path) -> str:
    """The sha256 of a local file, read in a thread a megabyte at a time."""

    def digest() -> str:
        h = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(READ_CHUNK_BYTES):
                h.update(chunk)
        return h.hexdigest()

    return await asyncio.to_thread(digest)


def free_disk_mb(path: Path) -> int:
    """Free space on the disk holding `path`, in MiB."""
    return shutil.disk_usage(path).free // (1024 * 1024)


def sweep_staging(storage: Storage, max_age_s: float) -> int:
    """Remove staging files untouched for `max_age_s` (left by a process that died mid-upload);
    a file still being written keeps a fresh mtime. Returns how many went."""
    staging = storage.staging_path().parent
    cutoff = time.time() - max_age_s
    removed = 0
    for path in staging.iterdir():
        with contextlib.suppress(FileNotFoundError):
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed


def open_storage(settings: Settings) -> Storage:
    """The backend `STORAGE_URL` names: `file:///path` (default: the data dir) or
    `s3://bucket/prefix` with the standard AWS_* endpoint and credential variables."""
    url = settings.storage_url
    staging = settings.tapeline_data_dir / "blobs"
    if not url:
        return LocalStorage(staging)
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStorage(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ConfigError(f"STORAGE_URL names no bucket: {url!r} (s3://bucket/prefix)")
        from service.media.storage_s3 import S3Storage

        return S3Storage.from_settings(settings, parsed.netloc, parsed.path.strip("/"), staging)
    raise ConfigError(f"STORAGE_URL must start with file:// or s3://, not {url!r}")


def ensure_free_space(settings: Settings, storage: Storage | None = None) -> None:
    """Refuse an upload (507) when the disk it is written to is below MIN_FREE_DISK_MB: the
    storage root for `file://` storage (the staging area, where S3 uploads are received)."""
    if settings.min_free_disk_mb <= 0:
        return
    where = settings.tapeline_data_dir if storage is None else storage.staging_path().parent
    where.mkdir(parents=True, exist_ok=True)
    free = free_disk_mb(where)
    if free < settings.min_free_disk_mb:
        raise InsufficientStorage(
            f"The server has {free} MB of disk free, less than the {settings.min_free_disk_mb} MB"
            " it keeps in reserve (MIN_FREE_DISK_MB); uploads are refused until space is freed."
        )
