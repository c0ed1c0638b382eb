"""Audio by URL: the fetcher against a local server (ok, 404, too large, slow, redirects)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.config import load_settings
from service.errors import FetchFailed, FetchTooLarge
from service.media.fetch import DeferToWorker, Fetcher
from tests.receiver import redirect, send_file, send_status, serving, trickle

AUDIO = bytes(range(256)) * 400  # 102,400 bytes; the fetcher never looks inside


def fetcher(allow: str = "127.0.0.1/32", *, max_bytes: int = 1_000_000, timeout_s: float = 5):
    settings = load_settings(fetch_allow_private=allow)
    return Fetcher(max_bytes=max_bytes, timeout_s=timeout_s, max_redirects=3, settings=settings)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("site") / "talk.wav"
    path.write_bytes(AUDIO)
    base = ""
    routes = {
        "/talk.wav": send_file(path),
        "/unsized.wav": send_file(path, sized=False),
        "/missing.wav": send_status(404),
        "/down.wav": send_status(503),
        "/slow.wav": trickle(1000, 0.05),
        "/hop": redirect(lambda: f"{base}/talk.wav"),
        "/to-metadata": redirect(lambda: "http://169.254.169.254/latest/meta-data/"),
        "/to-other-loopback": redirect(lambda: f"http://127.0.0.2:{base.rsplit(':', 1)[1]}/"),
        "/loop": redirect(lambda: f"{base}/loop"),
    }
    with serving(routes) as url:
        base = url
        yield url


async def test_a_file_is_fetched_streaming_into_staging_with_its_size_and_hash(
    site: str, tmp_path: Path
) -> None:
    received = []

    async def progress(done: int, total: int | None) -> None:
        received.append((done, total))

    upload = await fetcher().fetch(f"{site}/hop", tmp_path / "a", progress=progress)
    assert upload.path.read_bytes() == AUDIO
    assert (upload.size_bytes, upload.sha256) == (len(AUDIO), hashlib.sha256(AUDIO).hexdigest())
    assert upload.filename == "talk.wav" and upload.content_type == "audio/wav"
    assert received[-1] == (len(AUDIO), len(AUDIO))


async def test_a_404_is_fetch_failed_with_the_status_and_a_503_is_retried(
    site: str, tmp_path: Path
) -> None:
    with pytest.raises(FetchFailed) as caught:
        await fetcher().fetch(f"{site}/missing.wav", tmp_path / "a")
    assert caught.value.to_dict()["status"] == 404 and caught.value.http_status == 422
    assert not (tmp_path / "a").exists() and not caught.value.transient
    with pytest.raises(FetchFailed) as down:
        await fetcher().fetch(f"{site}/down.wav", tmp_path / "a")
    assert down.value.to_dict()["status"] == 503 and down.value.transient, "a worker retries"


async def test_too_large_is_refused_on_content_length_and_while_reading(
    site: str, tmp_path: Path
) -> None:
    small = fetcher(max_bytes=50_000)
    for path in ("/talk.wav", "/unsized.wav"):
        with pytest.raises(FetchTooLarge) as caught:
            await small.fetch(f"{site}{path}", tmp_path / "a")
        assert caught.value.code == "too_large" and caught.value.http_status == 413
        assert not (tmp_path / "a").exists()


async def test_a_slow_server_meets_the_deadline(site: str, tmp_path: Path) -> None:
    with pytest.raises(FetchFailed, match=r"within 0\.5 s"):
        await fetcher(timeout_s=0.5).fetch(f"{site}/slow.wav", tmp_path / "a")
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("path", ["/to-metadata", "/to-other-loopback"])
async def test_a_redirect_to_a_private_address_is_refused(
    site: str, tmp_path: Path, path: str
) -> None:
    with pytest.raises(FetchFailed, match="does not fetch from"):
        await fetcher().fetch(f"{site}{path}", tmp_path / "a")


async def test_without_the_setting_loopback_is_refused_and_redirects_are_capped(
    site: str, tmp_path: Path
) -> None:
    with pytest.raises(FetchFailed, match=r"127\.0\.0\.1"):
        await fetcher("0").fetch(
            f"{site.replace('127.0.0.1', 'localhost')}/talk.wav", tmp_path / "a"
        )
    with pytest.raises(FetchFailed, match="redirected more than 3"):
        await fetcher().fetch(f"{site}/loop", tmp_path / "a")


async def test_a_request_defers_large_or_unsized_files_to_a_worker(
    site: str, tmp_path: Path
) -> None:
    for path, limit in (("/talk.wav", 1000), ("/unsized.wav", 10_000_000)):
        with pytest.raises(DeferToWorker):
            await fetcher().fetch(f"{site}{path}", tmp_path / "a", in_request_limit=limit)
    upload = await fetcher().fetch(f"{site}/talk.wav", tmp_path / "b", in_request_limit=len(AUDIO))
    assert upload.size_bytes == len(AUDIO)
