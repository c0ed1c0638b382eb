"""A run costs a small, fixed number of row writes, however many progress ticks it sends."""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.context import open_context
from service.media.storage import LocalStorage
from tests.fakes_engines import EchoEngine
from tests.integration.helpers import queue_run, run_state

COUNTED = ("transcript_run", "job", "run_event")


async def _install_counter(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS write_count"))
        await conn.execute(text("CREATE TABLE write_count (tbl text, op text)"))
        await conn.execute(
            text(
                "CREATE OR REPLACE FUNCTION count_write() RETURNS trigger AS $$ BEGIN "
                "INSERT INTO write_count VALUES (TG_TABLE_NAME, TG_OP); RETURN NULL; END $$ "
                "LANGUAGE plpgsql"
            )
        )
        for table in COUNTED:
            await conn.execute(text(f"DROP TRIGGER IF EXISTS count_writes ON {table}"))
            await conn.execute(
                text(
                    f"CREATE TRIGGER count_writes AFTER INSERT OR UPDATE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION count_write()"
                )
            )


async def _remove_counter(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        for table in COUNTED:
            await conn.execute(text(f"DROP TRIGGER IF EXISTS count_writes ON {table}"))
        await conn.execute(text("DROP TABLE IF EXISTS write_count"))


async def _writes_for_one_run(
    db: AsyncEngine, settings: Settings, dsn: str, ticks: int
) -> tuple[int, int]:
    """Row writes and progress NOTIFYs for one run through a worker."""
    heard: list[str] = []
    listener = await asyncpg.connect(dsn)
    await listener.add_listener("tapeline_runs", lambda *args: heard.append(args[-1]))
    async with db.begin() as conn:
        await conn.execute(text("TRUNCATE write_count"))
    tuned = settings.model_copy(update={"job_lease_ms": 60_000})
    async with open_context(tuned, engines={"local": EchoEngine(ticks=ticks, delay_s=2)}) as ctx:
        assert isinstance(ctx.storage, LocalStorage)
        run, _ = await queue_run(db, storage=ctx.storage)
        ctx.worker = ctx.make_worker()
        await ctx.worker.start()
        while (await run_state(db, run["id"]))["status"] != "succeeded":
            await asyncio.sleep(0.05)
    await listener.close()
    async with db.connect() as conn:
        writes = (await conn.execute(text("SELECT count(*) FROM write_count"))).scalar_one()
    return int(writes), sum('"type": "progress"' in p for p in heard)


async def test_progress_ticks_cost_no_row_writes(
    db: AsyncEngine, settings: Settings, database_dsn: str
) -> None:
    await _install_counter(db)
    try:
        few_writes, few_ticks = await _writes_for_one_run(db, settings, database_dsn, ticks=4)
        many_writes, many_ticks = await _writes_for_one_run(db, settings, database_dsn, ticks=16)
    finally:
        await _remove_counter(db)
    assert many_ticks > few_ticks >= 3, "ticks reached subscribers as NOTIFYs"
    assert few_writes == many_writes, "a longer run costs no more writes"
    assert few_writes <= 14, f"{few_writes} row writes for one run"
    print(f"row writes per run: {few_writes} (with {few_ticks} and {many_ticks} progress ticks)")
