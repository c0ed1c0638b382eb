"""Resumable uploads, tombstones, stored transcripts, idempotency keys.

`upload` holds a tus upload's state so any API process can continue it; its bytes live in the
storage backend. `tombstone` remembers what was deleted (by a user or by retention), so a 404
can say "deleted" instead of "never existed". A unique index on (owner, idempotency_key) makes
concurrent retries of one submission create one run.

Revision ID: 0003_uploads
Revises: 0002_engines
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003_uploads"
down_revision: str | None = "0002_engines"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPLOAD_STATUSES = "'receiving', 'completed', 'failed', 'expired'"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE upload (
            id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            owner          text NOT NULL,
            length         bigint NOT NULL CHECK (length >= 0),
            upload_offset  bigint NOT NULL DEFAULT 0 CHECK (upload_offset BETWEEN 0 AND length),
            metadata       jsonb NOT NULL DEFAULT '{{}}',
            storage_key    text NOT NULL,
            storage_state  jsonb NOT NULL DEFAULT '{{}}',
            status         text NOT NULL DEFAULT 'receiving' CHECK (status IN ({UPLOAD_STATUSES})),
            error_code     text,
            error_message  text,
            audio_id       uuid REFERENCES audio (id) ON DELETE SET NULL,
            run_id         uuid REFERENCES transcript_run (id) ON DELETE SET NULL,
            lock_token     uuid,
            locked_until   timestamptz,
            created_at     timestamptz NOT NULL DEFAULT now(),
            updated_at     timestamptz NOT NULL DEFAULT now(),
            expires_at     timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX idx_upload_expires ON upload (expires_at) WHERE status = 'receiving'")
    op.execute(
        """
        CREATE TABLE tombstone (
            id          uuid PRIMARY KEY,
            kind        text NOT NULL CHECK (kind IN ('audio', 'run', 'upload')),
            owner       text NOT NULL,
            reason      text NOT NULL,
            deleted_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("ALTER TABLE transcript_run ADD COLUMN transcript_key text")
    op.execute("ALTER TABLE transcript_run ADD COLUMN idempotency_key text")
    op.execute(
        "CREATE UNIQUE INDEX uq_run_idempotency ON transcript_run (owner, idempotency_key)"
        " WHERE idempotency_key IS NOT NULL"
    )
    op.execute(
        "CREATE INDEX idx_run_finished ON transcript_run (finished_at)"
        " WHERE finished_at IS NOT NULL"
    )
    op.execute("ALTER TABLE audio ADD COLUMN purged_at timestamptz")
    op.execute("CREATE INDEX idx_audio_owner_sha256 ON audio (owner, sha256)")
    op.execute("CREATE INDEX idx_audio_created ON audio (created_at) WHERE purged_at IS NULL")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS idx_audio_created")
    op.execute("DROP INDEX IF EXISTS idx_audio_owner_sha256")
    op.execute("ALTER TABLE audio DROP COLUMN IF EXISTS purged_at")
    op.execute("DROP INDEX IF EXISTS idx_run_finished")
    op.execute("DROP INDEX IF EXISTS uq_run_idempotency")
    op.execute("ALTER TABLE transcript_run DROP COLUMN IF EXISTS idempotency_key")
    op.execute("ALTER TABLE transcript_run DROP COLUMN IF EXISTS transcript_key")
    op.execute("DROP TABLE IF EXISTS tombstone")
    op.execute("DROP TABLE IF EXISTS upload")
