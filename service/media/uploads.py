"""Receiving an audio upload: multipart streamed to a staging file, size-capped, hashed.

Nothing is held whole in memory: each chunk of the request body goes through the multipart
parser straight to disk. Everything else is bounded whether or not the request declares its
length: the number of parts, each part's header bytes, and all text fields together. Each text
field is checked as it ends, so a bad option is refused before the rest of the file is read.
The caller probes the staged file and either adopts or deletes it.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

from service.errors import InvalidRequest, TapelineError, UnsupportedMediaType, UploadTooLarge
from service.inputs import clean_filename, printable, whole_number
from service.metrics import UPLOAD_BYTES

MAX_FIELD_BYTES = 64 * 1024
MAX_FORM_BYTES = 256 * 1024
MAX_PARTS = 32
MAX_PART_HEADER_BYTES = 16 * 1024

FieldCheck = Callable[[str, str], None]


@dataclass
class ReceivedUpload:
    path: Path
    filename: str
    content_type: str | None
    size_bytes: int
    sha256: str
    fields: dict[str, str] = field(default_factory=dict)


class _Collector:
    """Multipart callbacks: the `file` part goes to disk, small text fields to memory."""

    def __init__(self, staging: Path, max_bytes: int, check: FieldCheck | None = None) -> None:
        self.staging = staging
        self.max_bytes = max_bytes
        self.check = check
        self.parts = 0
        self.header_bytes = 0
        self.form_bytes = 0
        self.fields: dict[str, str] = {}
        self.file: io.BufferedWriter | None = None
        self.filename: str | None = None
        self.content_type: str | None = None
        self.size = 0
        self.digest = hashlib.sha256()
        self._headers: dict[bytes, bytes] = {}
        self._header_name = b""
        self._header_value = b""
        self._name: str | None = None
        self._value = bytearray()
        self._is_file = False

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": self.header_field,
            "on_header_value": self.header_value,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
        }

    def part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise InvalidRequest(f"Send at most {MAX_PARTS} form fields.")
        self._headers = {}
        self._value = bytearray()
        self.header_bytes = 0

    def _count_header(self, size: int) -> None:
        self.header_bytes += size
        if self.header_bytes > MAX_PART_HEADER_BYTES:
            raise InvalidRequest("A form field's headers are too long.")

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_name += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_value += data[start:end]

    def header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name = b""
        self._header_value = b""

    def headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        self._is_file = self._name == "file"
        if self._is_file:
            if self.file is not None:
                raise InvalidRequest("Send exactly one file in the `file` field.")
            self.filename = clean_filename((filename or b"audio").decode("utf-8", "replace"))
            content_type = self._headers.get(b"content-type")
            self.content_type = content_type.decode("latin-1") if content_type else None
            self.file = self.staging.open("wb")

    def part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._is_file:
            self.size += len(chunk)
            if self.size > self.max_bytes:
                raise UploadTooLarge(
                    f"The file is larger than this server accepts ({self.max_bytes} bytes)."
                )
            self.digest.update(chunk)
            assert self.file is not None
            self.file.write(chunk)
        else:
            self._value += chunk
            self.form_bytes += len(chunk)
            if len(self._value) > MAX_FIELD_BYTES:
                raise InvalidRequest(f"The form field {self._name!r} is too long.")
            if self.form_bytes > MAX_FORM_BYTES:
                raise InvalidRequest("The form's fields are too long together.")

    def part_end(self) -> None:
        """A field sent several times as `name[]` (how the OpenAI SDKs send a list) keeps
        every value, comma-separated; any other field keeps its last value."""
        if not self._is_file and self._name:
            value = printable(self._value.decode("utf-8", "replace"))
            if self.check is not None:
                self.check(self._name, value)
            earlier = self.fields.get(self._name)
            if self._name.endswith("[]") and earlier is not None:
                value = f"{earlier},{value}"
            self.fields[self._name] = value

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def declared_length(request: Request) -> int:
    """The body's declared Content-Length, or 0 for a chunked body (which declares none)."""
    return whole_number(request.headers.get("content-length")) or 0


async def receive_audio(
    request: Request, staging: Path, max_bytes: int, check: FieldCheck | None = None
) -> ReceivedUpload:
    """Stream a multipart body to `staging`; raises a 4xx TapelineError on bad input (and then
    nothing is left in staging). `check(name, value)` sees each text field as it ends."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise UnsupportedMediaType()
    declared = whole_number(request.headers.get("content-length"))
    if declared is not None and declared > max_bytes + MAX_FORM_BYTES + MAX_PARTS * 1024:
        raise UploadTooLarge(f"The file is larger than this server accepts ({max_bytes} bytes).")
    collector = _Collector(staging, max_bytes, check)
    parser = MultipartParser(boundary, cast("MultipartCallbacks", collector.callbacks()))
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except Exception as exc:
        collector.close()
        await _discard(staging)
        if isinstance(exc, TapelineError):
            raise
        raise InvalidRequest(
            f"The multipart body could not be read ({type(exc).__name__})."
        ) from exc
    collector.close()
    UPLOAD_BYTES.inc(collector.size)
    if collector.file is None or collector.filename is None:
        await _discard(staging)
        raise InvalidRequest("Send the audio in a multipart field named `file`.")
    return ReceivedUpload(
        path=staging,
        filename=collector.filename,
        content_type=collector.content_type,
        size_bytes=collector.size,
        sha256=collector.digest.hexdigest(),
        fields=collector.fields,
    )


async def _discard(path: Path) -> None:
    await asyncio.to_thread(path.unlink, missing_ok=True)
