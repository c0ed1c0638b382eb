"""Checking what users send before it goes anywhere: whole numbers, names, languages, models.

Every entry point (JSON, multipart forms, tus headers and metadata, query strings) parses with
these, so the same input is accepted or refused the same way wherever it arrives.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection

from service.config import Settings
from service.errors import EngineNotConfigured, InvalidRequest, ModelNotAllowed

_WHOLE_NUMBER = re.compile(r"[0-9]{1,19}")
MAX_FILENAME_CHARS = 255

_BCP47 = re.compile(
    r"""
    [a-z]{2,3}(?:-[a-z]{3}){0,3}                    # language (ISO 639; no 4-8 letter one is
                                                    # registered), with up to three extlangs
    (?:-[a-z]{4})?                                  # script
    (?:-(?:[a-z]{2}|[0-9]{3}))?                     # region
    (?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*        # variants
    (?:-[0-9a-wyz](?:-[a-z0-9]{2,8})+)*             # extensions
    (?:-x(?:-[a-z0-9]{1,8})+)?                      # private use
    |x(?:-[a-z0-9]{1,8})+                           # private use alone
    """,
    re.IGNORECASE | re.VERBOSE,
)
MAX_LANGUAGE_CHARS = 35


def whole_number(raw: str | None) -> int | None:
    """`raw` as a non-negative integer if it is one written in ASCII digits, else None.

    `str.isdigit` also accepts superscripts and other digits `int()` then refuses."""
    if raw is None or not _WHOLE_NUMBER.fullmatch(raw):
        return None
    return int(raw)


def printable(text: str) -> str:
    """`text` without control characters (NUL, which Postgres refuses, among them)."""
    return "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cs"))


def clean_filename(raw: str, default: str = "audio") -> str:
    """A display name for an uploaded file: its last path part, printable, at most 255 chars."""
    name = printable(raw).replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:MAX_FILENAME_CHARS] or default


def language_tag(value: str | None) -> str | None:
    """`value` if it is a well-formed BCP-47 language tag (`en`, `pt-BR`, `zh-Hant-TW`)."""
    if value is None or value == "":
        return None
    if len(value) > MAX_LANGUAGE_CHARS or not _BCP47.fullmatch(value):
        raise InvalidRequest("`language` must be a BCP-47 language tag such as en, de or pt-BR.")
    return value


def check_run_options(
    settings: Settings, engines: Collection[str], engine: str, model: str | None
) -> None:
    """Refuse a run the operator has not allowed: an engine this process lacks, or a model
    outside the engine's allow-list (a cloud model is billed to the operator's key)."""
    if engine not in engines:
        raise EngineNotConfigured(
            f"The engine {engine!r} is not available here. Available: {', '.join(engines)}."
        )
    allowed = settings.models_allowed(engine)
    if model is not None and allowed is not None and model not in allowed:
        raise ModelNotAllowed(
            f"The model {model!r} is not allowed for {engine}. Allowed: {', '.join(allowed)}."
        )
