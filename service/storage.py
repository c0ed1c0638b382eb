"""Where audio bytes live. One small interface; the local filesystem backend is the default.

Keys are relative paths like `audio/<owner-hash>/<uuid>`; nothing outside the root is reachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredBlob:
    key: str
    size_bytes: int
    sha256: str


class Storage(Protocol):
    def staging_path(self) -> Path:
        """A fresh local path where an upload is written before it is accepted."""
        ...

    async def adopt(self, staged: Path, key: str) -> None:
        """Move a finished, validated staging file to its permanent key."""
        ...

    def local_file(self, key: str) -> contextlib.AbstractAsyncContextManager[Path]:
        """A local path holding the blob for as long as the context is open."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None: ...


class LocalStorage:
    """Blobs as files under one directory (by default `<TAPELINE_DATA_DIR>/blobs`)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        (self.root / "staging").mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"storage key escapes the root: {key!r}")
        return path

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

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self._path(key).unlink)


def audio_key(owner: str) -> str:
    owner_dir = hashlib.sha256(owner.encode()).hexdigest()[:16]
    return f"audio/{owner_dir}/{uuid.uuid4()}"
