"""Whisper runs and a fleet of different workers.

`transcript_run.prompt` and `hotwords` are the vocabulary a run asks the local engine for.
`job.needs` says what a job needs of its worker (`local/base`, `local/large-v3`, `gemini`,
`openai`; NULL for jobs any worker can do) and `worker.serves` what each worker offers, so a
worker claims only jobs it can do and a job nobody serves stays queued, visibly.

Revision ID: 0004_whisper
Revises: 0003_uploads
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_whisper"
down_revision: str | None = "0003_uploads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE transcript_run ADD COLUMN prompt text, ADD COLUMN hotwords text")
    op.execute("ALTER TABLE job ADD COLUMN needs text")
    op.execute("ALTER TABLE worker ADD COLUMN serves text[]")


def downgrade() -> None:
    op.execute("ALTER TABLE worker DROP COLUMN serves")
    op.execute("ALTER TABLE job DROP COLUMN needs")
    op.execute("ALTER TABLE transcript_run DROP COLUMN hotwords, DROP COLUMN prompt")
