"""Every fault the issue lists, through a real worker, the real SDKs and the fakes: a run ends
`succeeded` when the fault goes away, or `failed` with the right code, within its deadline,
never left `processing`; Gemini's remote files are gone in every outcome; keys leak nowhere;
a retried job does not send finished chunks again."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.context import open_context
from service.errors import EngineNotConfigured
from service.runs import store as runs
from service.runs import submission as transcription
from service.tokens import Principal
from tests.fakes import Fakes, FaultKind, transcript_json
from tests.integration.cloud import (
    GEMINI_KEY,
    OPENAI_KEY,
    cloud_settings,
    queue_audio_run,
    spoken,
    store_audio,
    until_final,
    worker_on,
)

TRANSCRIBE = "/audio/transcriptions"
UPLOAD = "/upload/"
GENERATE = ":generateContent"
JOB_TIMEOUT_MS = 15_000


@dataclass(frozen=True)
class Case:
    engine: str
    fault: dict[str, Any]
    code: str | None
    """None: the run succeeds; else the error_code it fails with."""
    setup: Callable[[Fakes], None] | None = None
    single_attempt: bool = False
    """A permanent error: one job attempt, no retry inside the engine either."""
    min_seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        kind = self.fault.get("kind", "setup")
        return f"{self.engine}-{kind}-{self.code or 'recovers'}"


def _stuck(fakes: Fakes) -> None:
    fakes.gemini.file_lifecycle(processing_polls=None)


def _failed_file(fakes: Fakes) -> None:
    fakes.gemini.file_lifecycle(processing_polls=1, final_state="FAILED")


def _refused(fakes: Fakes) -> None:
    fakes.gemini.respond_with(None, finish_reason="SAFETY")


def _not_json_once(fakes: Fakes) -> None:
    answers = iter(["Sure! Here is your transcript:", transcript_json()])
    fakes.gemini.respond_with(lambda body: next(answers, transcript_json()))


def _polls_twice(fakes: Fakes) -> None:
    fakes.gemini.file_lifecycle(processing_polls=2)


def oai(kind: FaultKind, times: int | None = 1, **more: Any) -> dict[str, Any]:
    return {"kind": kind, "times": times, "path_contains": TRANSCRIBE, **more}


def gem(kind: FaultKind, where: str, times: int | None = 1, **more: Any) -> dict[str, Any]:
    return {"kind": kind, "times": times, "path_contains": where, **more}


CASES = [
    # transient faults that go away: the run succeeds
    Case("openai", oai(FaultKind.BAD_GATEWAY), None),
    Case("openai", oai(FaultKind.UNAVAILABLE), None),
    Case("openai", oai(FaultKind.RATE_LIMITED, retry_after=0.5), None, min_seconds=0.5),
    Case("openai", oai(FaultKind.RESET), None),
    Case("openai", oai(FaultKind.TRUNCATED_JSON), None),
    Case("openai", oai(FaultKind.HANG), None, min_seconds=1.0),
    Case("openai", oai(FaultKind.TRICKLE, interval=0.2, chunk_size=2), None, min_seconds=1.0),
    Case("gemini", gem(FaultKind.BAD_GATEWAY, GENERATE), None),
    Case("gemini", gem(FaultKind.UNAVAILABLE, UPLOAD), None),
    Case("gemini", gem(FaultKind.RATE_LIMITED, GENERATE, retry_after=0.5), None, min_seconds=0.5),
    Case("gemini", gem(FaultKind.RESET, "/files/", method="GET"), None, _polls_twice),
    Case("gemini", gem(FaultKind.TRUNCATED_JSON, UPLOAD), None),
    Case("gemini", gem(FaultKind.TRUNCATED_JSON, GENERATE), None),
    Case("gemini", gem(FaultKind.HANG, GENERATE), None, min_seconds=1.0),
    Case("gemini", gem(FaultKind.HANG, "/files/", method="GET"), None, _polls_twice),
    Case("gemini", gem(FaultKind.TRICKLE, GENERATE, interval=0.3, chunk_size=8), None),
    Case("gemini", {}, None, _not_json_once),
    # permanent faults: fail at once with the code that says what to do
    Case("openai", oai(FaultKind.UNAUTHORIZED, None), "engine_auth_failed", single_attempt=True),
    Case("openai", oai(FaultKind.BAD_AUDIO, None), "engine_refused", single_attempt=True),
    Case(
        "openai", oai(FaultKind.BAD_AUDIO, None, status=413), "audio_too_long", single_attempt=True
    ),
    Case(
        "gemini",
        gem(FaultKind.UNAUTHORIZED, UPLOAD, None),
        "engine_auth_failed",
        single_attempt=True,
    ),
    Case(
        "gemini",
        gem(FaultKind.UNAUTHORIZED, GENERATE, None, status=401),
        "engine_auth_failed",
        single_attempt=True,
    ),
    Case("gemini", gem(FaultKind.BAD_AUDIO, GENERATE, None), "engine_refused", single_attempt=True),
    Case("gemini", {}, "engine_refused", _failed_file, single_attempt=True),
    Case("gemini", {}, "content_refused", _refused, single_attempt=True),
    # transient faults that never go away: failed after the retries, within the deadline
    Case("openai", oai(FaultKind.HANG, None), "upstream_timeout"),
    Case("openai", oai(FaultKind.BAD_GATEWAY, None), "upstream_bad_response"),
    Case("openai", oai(FaultKind.UNAVAILABLE, None), "upstream_unavailable"),
    Case("openai", oai(FaultKind.RATE_LIMITED, None, retry_after=600), "upstream_rate_limited"),
    Case("gemini", gem(FaultKind.HANG, UPLOAD, None), "upstream_timeout"),
    Case("gemini", gem(FaultKind.RESET, GENERATE, None), "upstream_unavailable"),
    Case("gemini", {}, "upstream_timeout", _stuck),
]


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_each_fault_ends_the_run_rightly_within_its_deadline(
    case: Case, db: AsyncEngine, settings: Settings, fakes: Fakes, speech_dir: Path
) -> None:
    if case.setup is not None:
        case.setup(fakes)
    service = fakes.openai if case.engine == "openai" else fakes.gemini
    if case.fault:
        service.fail(**case.fault)
    tuned = cloud_settings(settings, fakes, job_timeout_ms=JOB_TIMEOUT_MS, **case.settings)
    async with worker_on(tuned) as ctx:
        started = time.monotonic()
        run = await queue_audio_run(ctx, spoken(speech_dir, 4), case.engine)
        done = await until_final(db, run["id"], timeout=2 * JOB_TIMEOUT_MS / 1000 + 10)
        took = time.monotonic() - started
    expected = "succeeded" if case.code is None else "failed"
    assert (done["status"], done["error_code"]) == (expected, case.code), done["error_message"]
    assert took >= case.min_seconds
    assert took < tuned.max_attempts * JOB_TIMEOUT_MS / 1000 + 5
    if case.single_attempt:
        assert done["attempts"] == 1
        if case.engine == "openai":
            assert len(fakes.openai.transcriptions) == 1
        else:
            starts = [r for r in fakes.gemini.requests_to(UPLOAD) if "upload_id" not in r.query]
            assert len(starts) == 1
    if case.engine == "gemini":
        assert fakes.gemini.live_files == [], "a remote file was left behind"


async def test_a_retried_job_does_not_send_finished_chunks_again(
    db: AsyncEngine, settings: Settings, fakes: Fakes, speech_dir: Path
) -> None:
    fakes.openai.fail(FaultKind.UNAVAILABLE, times=2, after=2, path_contains=TRANSCRIBE)
    tuned = cloud_settings(
        settings,
        fakes,
        openai_chunk_ms=10_000,
        engine_max_concurrent_chunks=1,
        engine_max_attempts=2,
    )
    async with worker_on(tuned) as ctx:
        run = await queue_audio_run(ctx, spoken(speech_dir, 40), "openai")
        done = await until_final(db, run["id"])
    assert (done["status"], done["attempts"]) == ("succeeded", 2)
    calls = fakes.openai.transcriptions
    answered = Counter(c.file_name for c in calls if c.fault is None)
    assert len(answered) >= 4 and set(answered.values()) == {1}, answered
    assert [c.fault for c in calls].count(FaultKind.UNAVAILABLE) == 2
    async with db.connect() as conn:
        kept = (
            await conn.execute(
                text("SELECT count(*) FROM transcript_chunk WHERE run_id = :r"), {"r": run["id"]}
            )
        ).scalar_one()
    assert kept == len(answered)
    starts = [s["start_ms"] for s in done["transcript"]["segments"]]
    assert starts == sorted(starts) and len(starts) == 2 * len(answered)
    async with db.connect() as conn:
        latest = await runs.partials(conn, run["id"])
    assert len(latest) == len(answered), "the retry reported the kept chunks again"
    stitched = runs.partial_transcript(latest, None)
    row_segments = stitched.without_words().segments
    assert [seg.to_json() for seg in row_segments] == done["transcript"]["segments"]


async def test_keys_appear_in_no_log_error_event_or_row(
    db: AsyncEngine,
    settings: Settings,
    fakes: Fakes,
    speech_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fakes.openai.fail(FaultKind.UNAUTHORIZED, times=None, path_contains=TRANSCRIBE)
    fakes.gemini.fail(FaultKind.UNAVAILABLE, times=2, path_contains=GENERATE)
    fakes.gemini.fail(FaultKind.BAD_AUDIO, times=None, path_contains=GENERATE)
    async with worker_on(cloud_settings(settings, fakes)) as ctx:
        wav = spoken(speech_dir, 4)
        failed = [await queue_audio_run(ctx, wav, e) for e in ("openai", "gemini")]
        for run in failed:
            assert (await until_final(db, run["id"]))["status"] == "failed"
    rows: list[str] = []
    async with db.connect() as conn:
        for table in ("transcript_run", "run_event", "job", "transcript_chunk", "worker"):
            rows += [str(row) for row in (await conn.execute(text(f"SELECT * FROM {table}")))]
    dumped = " ".join(rows)
    assert "engine_auth_failed" in dumped and "OPENAI_API_KEY" in dumped
    for key in (GEMINI_KEY, OPENAI_KEY):
        assert key not in dumped
        assert key not in caplog.text
    assert GEMINI_KEY[:12] not in dumped + caplog.text


async def test_asking_for_an_engine_without_a_key_is_refused_clearly(
    db: AsyncEngine, settings: Settings, fakes: Fakes, speech_dir: Path
) -> None:
    only_openai = cloud_settings(settings, fakes).model_copy(update={"gemini_api_key": None})
    async with open_context(only_openai) as ctx:
        assert set(ctx.engines) == {"local", "openai"}
        assert ctx.storage is not None
        audio = await store_audio(db, ctx.storage, spoken(speech_dir, 4), "alice")  # type: ignore[arg-type]
        with pytest.raises(EngineNotConfigured) as refused:
            await transcription.submit_run(
                ctx, Principal("alice", False), audio["id"], engine="gemini"
            )
    assert "gemini" in refused.value.message
    async with worker_on(only_openai) as ctx:
        run = await queue_audio_run(ctx, spoken(speech_dir, 4), "gemini")
        done = await until_final(db, run["id"])
    assert (done["status"], done["error_code"], done["attempts"]) == (
        "failed",
        "engine_not_configured",
        1,
    )
