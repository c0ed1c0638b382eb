"""tus header parsing: metadata, checksums, lengths, and what metadata asks of an upload."""

from __future__ import annotations

import base64
import hashlib

import pytest

from service.errors import InvalidRequest
from service.media.tus import (
    encode_metadata,
    parse_checksum,
    parse_length,
    parse_metadata,
    upload_options,
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_metadata_round_trip_with_empty_values_and_unicode() -> None:
    header = f"filename {b64('réunion 1.mp3')},autoTranscribe {b64('1')},private"
    metadata = parse_metadata(header)
    assert metadata == {"filename": "réunion 1.mp3", "autoTranscribe": "1", "private": ""}
    assert parse_metadata(encode_metadata(metadata)) == metadata


@pytest.mark.parametrize(
    "header", ["filename not-base64!", "a b c", f"x {b64('1')},x {b64('2')}", " "]
)
def test_bad_metadata_is_a_400(header: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_metadata(header)


def test_no_metadata_is_empty() -> None:
    assert parse_metadata(None) == parse_metadata("") == {}


def test_checksum_header() -> None:
    digest = hashlib.sha256(b"chunk").digest()
    checksum = parse_checksum(f"sha256 {base64.b64encode(digest).decode()}")
    assert checksum is not None and checksum.algorithm == "sha256"
    assert checksum.matches(hashlib.sha256(b"chunk").digest())
    assert not checksum.matches(hashlib.sha256(b"other").digest())
    assert parse_checksum(None) is None


@pytest.mark.parametrize("header", ["crc32 AAAA", "sha256 ***"])
def test_bad_checksum_header(header: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_checksum(header)


@pytest.mark.parametrize("value", [None, "", "-1", "1.5", "ten"])
def test_lengths_are_whole_numbers(value: str | None) -> None:
    with pytest.raises(InvalidRequest):
        parse_length(value, "Upload-Length")
    assert parse_length("0", "Upload-Length") == 0


def test_upload_options_understand_uppy_and_tus_js_client_names() -> None:
    uppy = upload_options({"name": "a/b/talk.m4a", "type": "audio/mp4", "autoTranscribe": "true"})
    assert uppy["filename"] == "talk.m4a" and uppy["content_type"] == "audio/mp4"
    assert uppy["auto_transcribe"] is True
    plain = upload_options({"filename": "x.wav", "language": "en", "engine": "local"})
    assert (plain["language"], plain["engine"], plain["auto_transcribe"]) == ("en", "local", False)
    assert upload_options({})["filename"] == "audio"
