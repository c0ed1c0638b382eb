"""The storage interface, the same tests once per backend: local files and S3 (moto server)."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from service.config import Settings
from service.errors import InsufficientStorage
from service.media.storage import LocalStorage, Storage, ensure_free_space, open_storage
from service.media.storage_s3 import S3Storage
from tests.s3 import S3Endpoint

SMALL_PART = 5 * 1024 * 1024  # the smallest part S3 accepts; keeps the multipart tests quick


@pytest.fixture(params=["local", "s3"])
async def storage(
    request: pytest.FixtureRequest, tmp_path: Path, settings: Settings
) -> AsyncIterator[Storage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "blobs")
    else:
        endpoint: S3Endpoint = request.getfixturevalue("s3_endpoint")
        yield endpoint.storage(settings, tmp_path / "staging", part_size=SMALL_PART)


async def test_adopt_then_read_back_through_a_local_file(storage: Storage) -> None:
    staged = storage.staging_path()
    staged.write_bytes(b"RIFF and some audio")
    await storage.adopt(staged, "audio/x/one")
    assert not staged.exists()
    assert await storage.exists("audio/x/one")
    async with storage.local_file("audio/x/one") as path:
        assert path.read_bytes() == b"RIFF and some audio"


async def test_missing_blobs_say_so(storage: Storage) -> None:
    assert not await storage.exists("audio/x/nothing")
    with pytest.raises(FileNotFoundError):
        async with storage.local_file("audio/x/nothing"):
            pass
    with pytest.raises(FileNotFoundError):
        await storage.get_bytes("transcripts/nothing.json")


async def test_delete_is_idempotent(storage: Storage) -> None:
    await storage.put_bytes("transcripts/a.json", b"{}")
    await storage.delete("transcripts/a.json")
    await storage.delete("transcripts/a.json")
    assert not await storage.exists("transcripts/a.json")


async def test_put_and_get_bytes(storage: Storage) -> None:
    await storage.put_bytes("transcripts/b.json", b'{"text": "hello"}')
    assert await storage.get_bytes("transcripts/b.json") == b'{"text": "hello"}'
    await storage.put_bytes("transcripts/b.json", b'{"text": "again"}')
    assert await storage.get_bytes("transcripts/b.json") == b'{"text": "again"}'


async def test_a_player_reads_the_blob_here_or_at_a_short_lived_url(storage: Storage) -> None:
    await storage.put_bytes("audio/x/play", b"RIFF and some audio")
    where = await storage.playable("audio/x/play", "audio/wav")
    if isinstance(where, Path):
        assert where.read_bytes() == b"RIFF and some audio"
    else:
        answer = httpx.get(where, headers={"Range": "bytes=5-7"})
        assert answer.status_code == 206 and answer.content == b"and"
        assert answer.headers["content-type"] == "audio/wav"
        assert "Expires=" in where or "X-Amz-Expires=300" in where
    with pytest.raises(FileNotFoundError):
        await storage.playable("audio/x/nothing", "audio/wav")


async def test_keys_cannot_escape(storage: Storage) -> None:
    with pytest.raises(ValueError):
        await storage.put_bytes("../outside", b"x")


async def _append(storage: Storage, key: str, state: dict, offset: int, data: bytes) -> dict:
    appender = await storage.append(key, state, offset)
    for start in range(0, len(data), 256 * 1024):
        await appender.write(data[start : start + 256 * 1024])
    return await appender.commit()


async def test_append_over_several_requests_then_finish(storage: Storage) -> None:
    """Three appends of odd sizes (crossing part boundaries on S3), each resumed from the
    state the previous one returned, as three tus PATCH requests on different machines."""
    data = os.urandom(2 * SMALL_PART + 123_457)
    cuts = [0, 1_000_001, SMALL_PART + 77, len(data)]
    state: dict = {}
    for start, end in itertools.pairwise(cuts):
        state = await _append(storage, "audio/x/big", state, start, data[start:end])
    assert not await storage.exists("audio/x/big")
    await storage.finish_append("audio/x/big", state)
    async with storage.local_file("audio/x/big") as path:
        assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(data).digest()
    await storage.finish_append("audio/x/big", state)  # a completion retried after a crash
    assert len(await storage.get_bytes("audio/x/big")) == len(data)


async def test_rolled_back_append_leaves_no_trace(storage: Storage) -> None:
    first = os.urandom(300_000)
    state = await _append(storage, "audio/x/rb", {}, 0, first)
    appender = await storage.append("audio/x/rb", state, len(first))
    await appender.write(os.urandom(SMALL_PART + 10))
    await appender.rollback()
    second = os.urandom(1000)
    state = await _append(storage, "audio/x/rb", state, len(first), second)
    await storage.finish_append("audio/x/rb", state)
    async with storage.local_file("audio/x/rb") as path:
        assert path.read_bytes() == first + second


async def test_small_and_empty_appends_finish(storage: Storage) -> None:
    state = await _append(storage, "audio/x/small", {}, 0, b"tiny")
    await storage.finish_append("audio/x/small", state)
    assert await storage.get_bytes("audio/x/small") == b"tiny"
    await storage.finish_append("audio/x/empty", {})
    assert await storage.get_bytes("audio/x/empty") == b""


async def test_abort_drops_the_partial_blob(storage: Storage) -> None:
    state = await _append(storage, "audio/x/gone", {}, 0, os.urandom(SMALL_PART + 5))
    await storage.abort_append("audio/x/gone", state)
    await storage.abort_append("audio/x/gone", state)
    assert not await storage.exists("audio/x/gone")
    assert not await storage.exists("audio/x/gone.tail")


def test_storage_url_picks_the_backend(settings: Settings, tmp_path: Path) -> None:
    local = open_storage(settings.model_copy(update={"storage_url": f"file://{tmp_path}/b"}))
    assert isinstance(local, LocalStorage) and local.root == (tmp_path / "b").resolve()
    s3 = open_storage(settings.model_copy(update={"storage_url": "s3://bucket/some/prefix"}))
    assert isinstance(s3, S3Storage) and (s3.bucket, s3.prefix) == ("bucket", "some/prefix")
    assert isinstance(open_storage(settings), LocalStorage)


def test_uploads_are_refused_below_min_free_disk(settings: Settings) -> None:
    ensure_free_space(settings.model_copy(update={"min_free_disk_mb": 1}))
    with pytest.raises(InsufficientStorage) as refused:
        ensure_free_space(settings.model_copy(update={"min_free_disk_mb": 10**12}))
    assert refused.value.http_status == 507 and "MIN_FREE_DISK_MB" in refused.value.message


def test_free_space_is_checked_where_the_storage_writes(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15, finding 5: the check looked at the data dir, not a `file://` storage root."""
    from service.media import storage as storage_module

    asked: list[Path] = []
    monkeypatch.setattr(storage_module, "free_disk_mb", lambda path: asked.append(path) or 10**9)
    root = tmp_path / "elsewhere"
    local = open_storage(settings.model_copy(update={"storage_url": f"file://{root}"}))
    ensure_free_space(settings.model_copy(update={"min_free_disk_mb": 1}), local)
    assert asked and root.resolve() in asked[0].resolve().parents
    assert Settings().min_free_disk_mb > 0, "a free-space reserve by default"


def test_stale_staging_files_are_swept_and_fresh_ones_kept(tmp_path: Path) -> None:
    """Issue 15, finding 2: nothing swept `blobs/staging`."""
    from service.media.storage import sweep_staging

    storage = LocalStorage(tmp_path / "blobs")
    stale, fresh = storage.staging_path(), storage.staging_path()
    stale.write_bytes(b"left by a process that died mid-upload")
    fresh.write_bytes(b"an upload still arriving")
    day_ago = stale.stat().st_mtime - 86_400
    os.utime(stale, (day_ago, day_ago))
    assert sweep_staging(storage, 3600) == 1
    assert not stale.exists() and fresh.exists()
