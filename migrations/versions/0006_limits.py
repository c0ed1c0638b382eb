"""Limits: an index for the per-owner quota on open uploads.

Revision ID: 0006_limits
Revises: 0003_uploads
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_limits"
down_revision: str | None = "0004_whisper"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX idx_upload_owner_receiving ON upload (owner) WHERE status = 'receiving'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS idx_upload_owner_receiving")
