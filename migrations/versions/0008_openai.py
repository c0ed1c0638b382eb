"""The OpenAI-compatible endpoint: a run keeps the `prompt` it was asked with.

The prompt guides the model's spelling and style (names, jargon); the worker that takes the
run hands it to the engine, so it has to live on the run, not in the request.

Revision ID: 0008_openai
Revises: 0003_uploads
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008_openai"
down_revision: str | None = "0003_uploads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE transcript_run ADD COLUMN prompt text")


def downgrade() -> None:
    op.execute("ALTER TABLE transcript_run DROP COLUMN prompt")
