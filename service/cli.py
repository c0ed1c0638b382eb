"""The `tapeline` command: serve, worker, migrate, token, models; transcribe, runs, retry,
cancel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from service.client.commands import register as register_client_commands
from service.config import ConfigError, Settings, get_settings

T = TypeVar("T")

app = typer.Typer(help="Tapeline: long audio in, transcripts out.", no_args_is_help=True)
token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")


def _settings() -> Settings:
    try:
        return get_settings()
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def _setup_logging(settings: Settings) -> None:
    from service.logs import configure_logging

    configure_logging(settings.log_format, settings.log_level, secrets=settings.secret_values())


def _migrate(settings: Settings) -> None:
    from service.database import direct_url
    from service.schema import upgrade

    try:
        upgrade(direct_url(settings))
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


@app.command()
def migrate() -> None:
    """Upgrade the database schema to the newest revision."""
    settings = _settings()
    _setup_logging(settings)
    _migrate(settings)
    typer.echo("database schema is current")


def _page_url(host: str, port: int) -> str:
    """The address a person opens: a wildcard bind is reachable on the loopback address."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/"


def _database_line(settings: Settings) -> str:
    from service.database import normalize_url

    if not settings.database_url:
        return f"embedded PostgreSQL in {(settings.tapeline_data_dir / 'postgres').resolve()}"
    url = normalize_url(settings.database_url)
    where = url.host or url.query.get("host") or "the local socket"
    port = f":{url.port}" if url.port else ""
    return f"PostgreSQL at {where}{port}/{url.database or ''}"


def _startup_summary(settings: Settings, url: str, *, worker: bool, processes: int) -> list[str]:
    from service.engines import describe_default

    runs_here = f"{settings.max_concurrent_jobs} jobs at a time" if worker else "none (--no-worker)"
    return [
        f"Tapeline is ready at {url}",
        f"  data dir   {settings.tapeline_data_dir.resolve()}",
        f"  database   {_database_line(settings)}",
        f"  engine     {describe_default(settings)}",
        f"  workers    {runs_here}"
        + (f", in each of {processes} processes" if worker and processes > 1 else ""),
    ]


def _owner_token(settings: Settings, wanted: bool) -> str | None:
    """On a fresh install (no token at all), make the owner's admin token to print once: when a
    person is at the terminal, or when asked with --print-owner-token; never otherwise, so a
    token is never created where nobody sees it."""
    if not (wanted or (sys.stdin.isatty() and sys.stdout.isatty())):
        return None
    from service import tokens

    return _in_transaction(settings, tokens.create_owner_token)


def _print_owner_token(token: str, url: str) -> None:
    """Straight to stdout, never through the logs (which redact tokens)."""
    typer.echo(
        "\nThis is a fresh install, so here is its owner token (shown once; it is an admin, "
        "like ADMIN_TOKEN: it sees every run and the workers page):\n"
        f"  {token}\n"
        f"Sign in by opening {url}#token={token}\n"
        "More tokens, one per person: tapeline token create NAME. "
        f"Revoke this one with: tapeline token revoke {token[:10]}\n"
    )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="API only.")] = False,
    no_migrate: Annotated[bool, typer.Option("--no-migrate", help="Skip migrations.")] = False,
    processes: Annotated[
        int,
        typer.Option(
            "--processes",
            min=1,
            help="API processes sharing the port, each with its own event listener (and worker).",
        ),
    ] = 1,
    print_owner_token: Annotated[
        bool,
        typer.Option(
            "--print-owner-token",
            help="On a fresh install, create and print the owner token even when not on a "
            "terminal (it is printed once, then never again).",
        ),
    ] = False,
) -> None:
    """Run the HTTP API (with a worker in the same process unless --no-worker)."""
    import uvicorn

    from service.app import SERVE_WITH_WORKER, create_app

    settings = _settings()
    _setup_logging(settings)
    if not no_migrate:
        _migrate(settings)
    url = _page_url(host, port)
    owner_token = _owner_token(settings, print_owner_token)
    summary = _startup_summary(settings, url, worker=not no_worker, processes=processes)

    def announce() -> None:
        for line in summary:
            logging.getLogger("service.cli").info("%s", line)
        if owner_token:
            _print_owner_token(owner_token, url)

    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "timeout_graceful_shutdown": 5,
        "log_level": settings.log_level.lower(),
        "log_config": None,
        "limit_concurrency": settings.serve_limit_concurrency,
    }
    if processes > 1:
        # Uvicorn's supervisor starts the processes, restarts any that dies, and on SIGTERM
        # stops them all gracefully before it returns.
        os.environ[SERVE_WITH_WORKER] = "0" if no_worker else "1"
        announce()
        uvicorn.run("service.app:serve_process", factory=True, workers=processes, **options)
        return
    application = create_app(settings, with_worker=not no_worker)
    # uvicorn re-raises SIGTERM once it has shut down gracefully; exit normally then, so exit
    # hooks run (the embedded database counts the processes using it and stops after the last).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    class Server(uvicorn.Server):
        """Uvicorn's server, saying where to go once it listens."""

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                announce()

    server = Server(uvicorn.Config(application, **options))
    server.run()
    if not server.started:
        sys.exit(3)  # as uvicorn.run does when the start-up failed


@app.command()
def worker(
    no_migrate: Annotated[bool, typer.Option("--no-migrate", help="Skip migrations.")] = False,
    concurrency: Annotated[int | None, typer.Option(help="Overrides MAX_CONCURRENT_JOBS.")] = None,
) -> None:
    """Run a worker alone: claims and transcribes queued jobs until SIGTERM or Ctrl-C."""
    settings = _settings()
    _setup_logging(settings)
    if not no_migrate:
        _migrate(settings)
    try:
        asyncio.run(_run_worker(settings, concurrency))
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


async def _run_worker(settings: Settings, concurrency: int | None) -> None:
    from service.context import open_context
    from service.cpu import shutdown_cpu_pool

    async with open_context(settings) as ctx:
        worker = ctx.worker = ctx.make_worker()
        if concurrency:
            worker.concurrency = concurrency
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, lambda: asyncio.ensure_future(worker.stop()))
        if settings.metrics_port:
            from service.metrics import serve_worker_metrics

            token = settings.metrics_token
            serve_worker_metrics(
                settings.metrics_port,
                settings.metrics_host,
                token.get_secret_value() if token is not None else None,
            )
        logging.getLogger("service.jobs.worker").info(
            "worker %s started%s",
            worker.id,
            f"; metrics on port {settings.metrics_port}" if settings.metrics_port else "",
        )
        await worker.run()
    shutdown_cpu_pool()


def _with_connection(action: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Migrate, then run `action` in one transaction on a short-lived connection pool."""
    settings = _settings()
    _migrate(settings)
    return _in_transaction(settings, action)


def _in_transaction(settings: Settings, action: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run `action` in one transaction on a short-lived connection pool."""
    from service.database import create_engine, database_url, is_pooled

    async def run() -> T:
        db = create_engine(database_url(settings), pool_size=1, pooled=is_pooled(settings))
        try:
            async with db.begin() as conn:
                return await action(conn)
        finally:
            await db.dispose()

    return asyncio.run(run())


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="The owner the token acts as.")],
    webhook_url: Annotated[
        str | None,
        typer.Option("--webhook-url", help="Where this token's runs send webhooks by default."),
    ] = None,
) -> None:
    """Create a token for NAME and print it (shown once; only its hash is stored). Its
    webhook signing secret goes to stderr, also shown only this once."""
    from service import tokens
    from service.errors import TapelineError
    from service.outbound import checked_url

    if tokens.is_reserved_owner(name):
        typer.echo(f"{name!r} is a reserved owner name; choose another.", err=True)
        raise typer.Exit(2)
    settings = _settings()
    if webhook_url is not None:
        try:
            checked_url(webhook_url, "--webhook-url", settings.webhook_allow_private)
        except TapelineError as exc:
            raise typer.BadParameter(exc.message) from None
    token, row = _with_connection(lambda conn: tokens.create(conn, name, webhook_url=webhook_url))
    typer.echo(token)
    typer.echo(f"webhook secret: {row['webhook_secret']}", err=True)


@token_app.command("rotate-webhook-secret")
def token_rotate_webhook_secret(
    key: Annotated[str, typer.Argument(help="Owner name, token id or prefix.")],
) -> None:
    """Give the matching tokens a new webhook secret and print it (shown once). For a day both
    the new and the old secret sign every webhook, so receivers can switch without a gap."""
    from service import tokens

    rotated = _with_connection(lambda conn: tokens.rotate_webhook_secret(conn, key))
    if not rotated:
        typer.echo(f"no active token matches {key!r}", err=True)
        raise typer.Exit(1)
    for row in rotated:
        typer.echo(f"{row['token_prefix']}…  {row['webhook_secret']}")


@token_app.command("list")
def token_list() -> None:
    """List tokens: owner, prefix, created, revoked (and which are admins)."""
    from service import tokens

    for row in _with_connection(tokens.list_all):
        revoked = row["revoked_at"].isoformat() if row["revoked_at"] else "-"
        admin = "  (admin)" if row["is_admin"] else ""
        typer.echo(
            f"{row['id']}  {row['owner']:<20} {row['token_prefix']}…  "
            f"{row['created_at']:%Y-%m-%d %H:%M}  revoked: {revoked}{admin}"
        )


@token_app.command("revoke")
def token_revoke(key: Annotated[str, typer.Argument(help="Token id or prefix.")]) -> None:
    """Revoke a token by the id or prefix `tapeline token list` shows."""
    from service import tokens

    revoked = _with_connection(lambda conn: tokens.revoke(conn, key))
    if not revoked:
        typer.echo(f"no active token matches {key!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {len(revoked)} token(s)")


models_app = typer.Typer(help="Whisper models for the local engine.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("pull")
def models_pull(
    name: Annotated[
        str | None, typer.Argument(help="Size name, repo id or directory (default WHISPER_MODEL).")
    ] = None,
) -> None:
    """Fetch a model into WHISPER_MODELS_DIR now, with a progress bar, so no run waits for it."""
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    from service.engines.models import fetch_model, find_model
    from service.errors import ModelUnavailable

    settings = _settings()
    model = name or settings.whisper_model
    found = find_model(settings, model)
    if found is None:
        with Progress(
            *Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn()
        ) as bar:
            task = bar.add_task(f"Downloading {model}", total=None)

            def advance(done: int, total: int | None) -> None:
                bar.update(task, completed=min(done, total or done), total=total)

            try:
                found = fetch_model(settings, model, advance)
            except ModelUnavailable as exc:
                typer.echo(exc.message, err=True)
                raise typer.Exit(1) from None
    typer.echo(f"{model}: {found}")


@models_app.command("list")
def models_list() -> None:
    """The models on this machine: the default (WHISPER_MODEL) and what WHISPER_MODELS_DIR holds."""
    from service.engines.models import list_models

    settings = _settings()
    for info in list_models(settings):
        default = " (default)" if info.name == settings.whisper_model else ""
        where = f"{info.size_bytes / 1024**2:.0f} MB  {info.path}" if info.path else "not present"
        typer.echo(f"{info.name}{default}  {where}")


register_client_commands(app)
