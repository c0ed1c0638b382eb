"""The `tapeline` commands that talk to a running server: transcribe, runs, retry, cancel.

They read `TAPELINE_URL` and `TAPELINE_TOKEN`. Progress, the text transcribed so far and errors
go to stderr, transcripts and run ids to stdout, so `tapeline transcribe --follow a.mp3 > a.txt`
does what it says.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Column, Table
from rich.text import Text

from service.client.http import ClientError, StreamMessage, TapelineClient
from service.engines.base import Segment, Transcript
from service.runs.formats import clock, to_txt

FORMATS = ("txt", "srt", "vtt", "json")
STATUSES = ("queued", "processing", "succeeded", "failed", "cancelled")

err = Console(stderr=True)
out = Console()

Url = Annotated[
    str, typer.Option("--url", envvar="TAPELINE_URL", help="The server (TAPELINE_URL).")
]
Token = Annotated[
    str | None,
    typer.Option("--token", envvar="TAPELINE_TOKEN", help="API token (TAPELINE_TOKEN)."),
]


@contextmanager
def _client(url: str, token: str | None) -> Iterator[TapelineClient]:
    """A client whose failures end the command with the server's message and exit code 1."""
    client = TapelineClient(url, token)
    try:
        yield client
    except ClientError as exc:
        err.print(f"[red]error[/red] {exc.code}: {exc.message}", highlight=False)
        raise typer.Exit(1) from None
    finally:
        client.close()


def output_path(out_option: Path | None, source: Path, fmt: str, many: bool) -> Path | None:
    """Where a transcript goes: stdout (None), the file `-o` names, or `-o DIR/<stem>.<fmt>`
    when several files are transcribed."""
    if out_option is None:
        return None
    if many or out_option.is_dir():
        return out_option / f"{source.stem}.{fmt}"
    return out_option


def describe_error(error: dict[str, str] | None) -> str:
    if not error:
        return "the run failed"
    return f"{error.get('code', 'error')}: {error.get('message', '')}"


def stage_label(name: str, message: StreamMessage) -> str:
    return f"{name} [dim]{message.status or ''} {message.stage or ''}[/dim]".rstrip()


def partial_text(message: StreamMessage) -> str:
    """A `partial` message's segments as transcript lines, "[00:01:05.200] words", one each."""
    segments = [Segment.from_json(s) for s in message.data.get("segments", ())]
    return to_txt(Transcript.from_segments(segments, None)).rstrip("\n") if segments else ""


def follow_run(
    client: TapelineClient, progress: Progress, task: TaskID, name: str, run_id: str
) -> StreamMessage:
    """Drive one progress bar from the run's stream, printing each stretch of text above it as
    soon as it is transcribed (stretches may finish out of order: each line has its time);
    returns the final message."""

    def reconnecting(attempt: int) -> None:
        progress.update(task, description=f"{name} [yellow]reconnecting ({attempt})[/yellow]")

    last: StreamMessage | None = None
    for message in client.follow(run_id, on_reconnect=reconnecting):
        last = message
        if message.event == "partial":
            if text := partial_text(message):
                progress.console.print(Text(text, style="dim"))
            continue
        if message.data.get("transition") == "started" and message.data.get("attempts", 1) > 1:
            progress.console.print(Text(f"{name}: trying again from the start", style="yellow"))
        completed = 100 if message.event == "done" else message.progress
        progress.update(task, completed=completed, description=stage_label(name, message))
    assert last is not None and last.final
    return last


def transcribe(
    files: Annotated[
        list[Path], typer.Argument(exists=True, dir_okay=False, help="Audio files to upload.")
    ],
    engine: Annotated[str | None, typer.Option(help="Engine, e.g. local, gemini.")] = None,
    language: Annotated[str | None, typer.Option(help="Language hint, e.g. en.")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Wait, showing progress, then print the transcript.")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="txt, srt, vtt or json.")] = "txt",
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Write here (a directory for several files)."),
    ] = None,
    url: Url = "http://127.0.0.1:8000",
    token: Token = None,
) -> None:
    """Upload FILES and start a run for each; with --follow, wait and print the transcripts."""
    if fmt not in FORMATS:
        err.print(f"--format must be one of: {', '.join(FORMATS)}")
        raise typer.Exit(2)
    failures = 0
    with _client(url, token) as client:
        started: list[tuple[Path, dict[str, Any]]] = []
        for path in files:
            try:
                run = client.transcribe(path, engine=engine, language=language)
            except ClientError as exc:
                err.print(f"[red]{path}[/red]: {exc.code}: {exc.message}", highlight=False)
                failures += 1
                continue
            started.append((path, run))
            if not follow:
                out.print(run["id"], highlight=False)
        if follow:
            try:
                failures += _follow_all(client, started, fmt, output, many=len(files) > 1)
            except KeyboardInterrupt:
                ids = " ".join(run["id"] for _, run in started)
                err.print(f"stopped following; the runs go on: {ids}", highlight=False)
                raise typer.Exit(130) from None
    if failures:
        raise typer.Exit(1)


def _follow_all(
    client: TapelineClient,
    started: Sequence[tuple[Path, dict[str, Any]]],
    fmt: str,
    output: Path | None,
    *,
    many: bool,
) -> int:
    """Follow each run in turn, then print or write its transcript; returns how many failed."""
    failures = 0
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        tasks = [progress.add_task(path.name, total=100) for path, _ in started]
        finals = []
        for (path, run), task in zip(started, tasks, strict=True):
            finals.append(follow_run(client, progress, task, path.name, run["id"]))
    for (path, run), final in zip(started, finals, strict=True):
        if final.event == "error":
            err.print(f"[red]{path}[/red]: {describe_error(final.error)}", highlight=False)
            failures += 1
            continue
        text = client.transcript(run["id"], fmt)
        target = output_path(output, path, fmt, many)
        if target is None:
            if many:
                out.print(f"==> {path} <==", highlight=False)
            typer.echo(text.rstrip("\n"))
        else:
            target.write_text(text)
            err.print(f"{path} → {target}", highlight=False)
    return failures


def runs_table(items: Sequence[dict[str, Any]]) -> Table:
    table = Table(
        Column("run", no_wrap=True),
        Column("status", no_wrap=True),
        "stage",
        "progress",
        "engine",
        "created",
        "error",
    )
    for run in items:
        table.add_row(
            run["id"],
            run["status"],
            run.get("stage") or "",
            f"{run.get('progress') or 0}%",
            run.get("engine") or "",
            (run.get("createdAt") or "")[:19].replace("T", " "),
            describe_error(run["error"]) if run.get("error") else "",
        )
    return table


def search_results(items: Sequence[dict[str, Any]]) -> Iterator[Text]:
    """Each found run as a line (name, id), then its matching moments with the words in bold."""
    for run in items:
        yield Text.assemble((run.get("filename") or "recording", "bold"), "  ", (run["id"], "dim"))
        for match in run["matches"]:
            line = Text(match["snippet"])
            for start, end in match["highlights"]:
                line.stylize("bold yellow", start, end)
            yield Text.assemble("  ", (f"[{clock(match['startMs'])}]", "cyan"), " ", line)


def runs(
    status: Annotated[str | None, typer.Option(help=f"Only runs {', '.join(STATUSES)}.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many, newest first.")] = 50,
    search: Annotated[
        str | None,
        typer.Option(
            "--search",
            metavar="WORDS",
            help="Your finished runs whose transcript has every word, best first, "
            "with the moments they are spoken.",
        ),
    ] = None,
    url: Url = "http://127.0.0.1:8000",
    token: Token = None,
) -> None:
    """List your runs, newest first (or search their transcripts)."""
    with _client(url, token) as client:
        if search is None:
            out.print(runs_table(client.runs(status, limit)))
            return
        found = client.search(search, min(limit, 100))
    if not found:
        err.print(f"no finished transcript has {search!r}", highlight=False)
        raise typer.Exit(1)
    for line in search_results(found):
        out.print(line, highlight=False)


def retry(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="A failed or cancelled run.")],
    url: Url = "http://127.0.0.1:8000",
    token: Token = None,
) -> None:
    """Queue a failed or cancelled run again."""
    with _client(url, token) as client:
        run = client.retry(run_id)
    out.print(f"{run['id']} {run['status']}", highlight=False)


def cancel(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="A queued or processing run.")],
    url: Url = "http://127.0.0.1:8000",
    token: Token = None,
) -> None:
    """Cancel a queued or processing run."""
    with _client(url, token) as client:
        run = client.cancel(run_id)
    out.print(f"{run['id']} {run['status']}", highlight=False)


def register(app: typer.Typer) -> None:
    for command in (transcribe, runs, retry, cancel):
        app.command()(command)
