"""Audio by URL: fetched streaming into a staging file, with the limits of an upload.

The size limit (MAX_UPLOAD_BYTES) is enforced on `Content-Length` and again while reading;
the whole fetch has a deadline (FETCH_TIMEOUT_MS); at most FETCH_MAX_REDIRECTS redirects are
followed, and every connection, redirects included, goes through the private-address guard
(`FETCH_ALLOW_PRIVATE`). The result is a `ReceivedUpload`, probed and stored like any upload.

A fetch that an API request may wait for is one whose `Content-Length` is at most
TRANSCRIBE_SYNC_MAX_BYTES: anything larger, or of unknown length, is left to a worker
(`DeferToWorker`), where the run shows a `fetching` stage with progress.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import httpx

from service.config import Settings
from service.errors import FetchFailed, FetchTooLarge, FetchUnavailable
from service.media.uploads import ReceivedUpload
from service.metrics import UPLOAD_BYTES
from service.outbound import PrivateAddressRefused, checked_url, guarded_client

Progress = Callable[[int, int | None], Awaitable[None]]
READ_CHUNK_BYTES = 256 * 1024
CONNECT_TIMEOUT_S = 15.0
FILENAME = re.compile(r"""filename\*?=(?:UTF-8'')?"?([^";]+)"?""", re.IGNORECASE)


class DeferToWorker(Exception):
    """The file is too large (or of unknown size) to fetch while an API request waits."""


@dataclass(frozen=True, slots=True)
class Fetcher:
    """Fetches audio URLs under the server's limits."""

    max_bytes: int
    timeout_s: float
    max_redirects: int
    settings: Settings

    @classmethod
    def from_settings(cls, settings: Settings) -> Fetcher:
        return cls(
            max_bytes=settings.max_upload_bytes,
            timeout_s=settings.fetch_timeout_ms / 1000,
            max_redirects=settings.fetch_max_redirects,
            settings=settings,
        )

    def check(self, url: object, field: str = "url") -> str:
        """A URL a request gave: http(s), not a literal refused address."""
        return checked_url(url, field, self.settings.fetch_allow_private)

    async def fetch(
        self,
        url: str,
        staging: Path,
        *,
        in_request_limit: int | None = None,
        progress: Progress | None = None,
    ) -> ReceivedUpload:
        """Fetch `url` into `staging`; 4xx TapelineErrors say why not. With
        `in_request_limit`, raises DeferToWorker before reading a larger or unsized body."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._fetch(url, staging, in_request_limit, progress)
        except TimeoutError:
            await _discard(staging)
            raise FetchFailed(
                f"The URL did not deliver the file within {self.timeout_s:g} s (FETCH_TIMEOUT_MS)."
            ) from None
        except BaseException:
            await _discard(staging)
            raise

    async def _fetch(
        self, url: str, staging: Path, in_request_limit: int | None, progress: Progress | None
    ) -> ReceivedUpload:
        timeout = httpx.Timeout(self.timeout_s, connect=min(CONNECT_TIMEOUT_S, self.timeout_s))
        client = guarded_client(
            self.settings.fetch_allow_private,
            timeout=timeout,
            follow_redirects=True,
            max_redirects=self.max_redirects,
        )
        try:
            async with client, client.stream("GET", url) as response:
                if response.status_code != 200:
                    failure = FetchUnavailable if response.status_code >= 500 else FetchFailed
                    raise failure(
                        f"The URL answered {response.status_code}; it must answer 200 with the "
                        "audio file.",
                        status=response.status_code,
                    )
                total = _content_length(response)
                if total is not None and total > self.max_bytes:
                    raise self._too_large()
                if in_request_limit is not None and (total is None or total > in_request_limit):
                    raise DeferToWorker()
                size, digest = await self._save(response, staging, total, progress)
                filename = _filename(response)
                content_type = response.headers.get("content-type")
        except PrivateAddressRefused as exc:
            raise FetchFailed(
                f"The URL leads to an address this server does not fetch from ({exc}); "
                "FETCH_ALLOW_PRIVATE allows it."
            ) from None
        except httpx.TooManyRedirects:
            raise FetchFailed(
                f"The URL redirected more than {self.max_redirects} times (FETCH_MAX_REDIRECTS)."
            ) from None
        except httpx.TimeoutException:
            raise TimeoutError() from None
        except httpx.TransportError as exc:
            raise FetchUnavailable(
                f"The URL's server could not be reached ({type(exc).__name__})."
            ) from None
        except httpx.HTTPError as exc:
            raise FetchFailed(f"The URL could not be fetched ({type(exc).__name__}).") from None
        UPLOAD_BYTES.inc(size)
        return ReceivedUpload(
            path=staging,
            filename=filename,
            content_type=content_type.split(";")[0].strip() if content_type else None,
            size_bytes=size,
            sha256=digest,
        )

    async def _save(
        self, response: httpx.Response, staging: Path, total: int | None, progress: Progress | None
    ) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = 0
        with staging.open("wb") as out:
            async for chunk in response.aiter_bytes(READ_CHUNK_BYTES):
                size += len(chunk)
                if size > self.max_bytes:
                    raise self._too_large()
                digest.update(chunk)
                await asyncio.to_thread(out.write, chunk)
                if progress is not None:
                    await progress(size, total)
        return size, digest.hexdigest()

    def _too_large(self) -> FetchTooLarge:
        return FetchTooLarge(
            f"The file at the URL is larger than this server accepts ({self.max_bytes} bytes)."
        )


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "")
    if not value.isdigit() or "content-encoding" in response.headers:
        return None
    return int(value)


def _filename(response: httpx.Response) -> str:
    """Content-Disposition's filename, else the last segment of the final URL's path."""
    match = FILENAME.search(response.headers.get("content-disposition", ""))
    name = unquote(match.group(1)) if match else unquote(response.url.path.rsplit("/", 1)[-1])
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:255] or "audio"


async def _discard(path: Path) -> None:
    await asyncio.to_thread(path.unlink, missing_ok=True)
