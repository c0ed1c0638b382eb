"""Cloud engines: finished chunks kept per run, and the optional analysis of a transcript.

`transcript_chunk` holds each chunk's segments as soon as the provider returns them, so a
retried job sends only the chunks still missing. `transcript_run.analysis_requested` is what
the run asked for; `transcript_run.analysis` is the title, summary and speaker turns.

Revision ID: 0002_engines
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002_engines"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE transcript_chunk (
            run_id       uuid NOT NULL REFERENCES transcript_run (id) ON DELETE CASCADE,
            chunk_index  integer NOT NULL CHECK (chunk_index >= 0),
            start_ms     integer NOT NULL,
            end_ms       integer NOT NULL CHECK (end_ms >= start_ms),
            segments     jsonb NOT NULL,
            engine       text NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (run_id, chunk_index)
        )
        """
    )
    op.execute(
        "ALTER TABLE transcript_run "
        "ADD COLUMN analysis_requested boolean NOT NULL DEFAULT false, "
        "ADD COLUMN analysis jsonb"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE transcript_run DROP COLUMN analysis, DROP COLUMN analysis_requested")
    op.execute("DROP TABLE transcript_chunk")
