"""Pure pieces of the client commands: where output goes, how runs and errors read."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from service.client.commands import describe_error, output_path, partial_text, runs_table
from service.client.http import StreamMessage


def test_output_path(tmp_path: Path) -> None:
    source = Path("talks/monday.mp3")
    assert output_path(None, source, "txt", many=False) is None
    assert output_path(tmp_path / "a.srt", source, "srt", many=False) == tmp_path / "a.srt"
    assert output_path(tmp_path, source, "vtt", many=False) == tmp_path / "monday.vtt"
    assert output_path(tmp_path / "out", source, "txt", many=True) == tmp_path / "out/monday.txt"


def test_describe_error() -> None:
    assert describe_error(None) == "the run failed"
    error = {"code": "audio_unreadable", "message": "The file could not be read."}
    assert describe_error(error) == "audio_unreadable: The file could not be read."


def test_runs_table_keeps_ids_whole_in_a_narrow_terminal() -> None:
    run_id = "0b6f3c1e-8f7a-4d55-9c1e-2a4f0e6b7c01"
    run = {
        "id": run_id,
        "status": "failed",
        "stage": "analyzing",
        "progress": 40,
        "engine": "local",
        "createdAt": "2026-11-23T14:00:00.123+00:00",
        "error": {"code": "job_timeout", "message": "Too long."},
    }
    narrow = Console(width=80, record=True)
    narrow.print(runs_table([run]))
    text = narrow.export_text()
    assert run_id in text and "failed" in text
    wide = Console(width=200, record=True)
    wide.print(runs_table([run]))
    text = wide.export_text()
    assert "2026-11-23 14:00:00" in text and "job_timeout: Too long." in text


def test_partial_text_reads_as_timed_lines_in_order() -> None:
    data = {
        "event": "partial",
        "chunkIndex": 3,
        "startMs": 60_000,
        "endMs": 75_000,
        "segments": [
            {"start_ms": 66_500, "end_ms": 70_000, "text": "and then the second"},
            {"start_ms": 61_200, "end_ms": 65_000, "text": "first words"},
        ],
    }
    message = StreamMessage("partial", "run", None, None, 0, data=data)
    assert partial_text(message) == (
        "[00:01:01.200] first words\n[00:01:06.500] and then the second"
    )
    assert partial_text(StreamMessage("partial", "run", None, None, 0, data={})) == ""
