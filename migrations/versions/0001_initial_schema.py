"""Initial schema: audio, transcript_run, job, run_event, worker, api_token.

Plain text statuses with CHECK constraints, so `psql` users can type
`WHERE status = 'failed'` without knowing about enum types.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = "'queued', 'processing', 'succeeded', 'failed', 'cancelled'"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE api_token (
            id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            owner         text NOT NULL,
            token_hash    text NOT NULL UNIQUE,
            token_prefix  text NOT NULL,
            created_at    timestamptz NOT NULL DEFAULT now(),
            last_used_at  timestamptz,
            revoked_at    timestamptz
        )
        """
    )
    op.execute(
        """
        CREATE TABLE audio (
            id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            owner         text NOT NULL,
            filename      text NOT NULL,
            content_type  text,
            size_bytes    bigint NOT NULL CHECK (size_bytes > 0),
            duration_ms   integer NOT NULL CHECK (duration_ms > 0),
            sample_rate   integer,
            channels      smallint,
            sha256        text NOT NULL,
            storage_key   text NOT NULL,
            created_at    timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX idx_audio_owner_created ON audio (owner, created_at DESC, id DESC)")
    op.execute(
        f"""
        CREATE TABLE transcript_run (
            id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            audio_id       uuid NOT NULL REFERENCES audio (id) ON DELETE CASCADE,
            owner          text NOT NULL,
            engine         text NOT NULL,
            model          text,
            language       text,
            status         text NOT NULL DEFAULT 'queued' CHECK (status IN ({STATUSES})),
            stage          text NOT NULL DEFAULT 'queued',
            progress       smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
            error_code     text,
            error_message  text,
            attempts       integer NOT NULL DEFAULT 0,
            created_at     timestamptz NOT NULL DEFAULT now(),
            started_at     timestamptz,
            finished_at    timestamptz,
            transcript     jsonb
        )
        """
    )
    op.execute("CREATE INDEX idx_run_status ON transcript_run (status)")
    op.execute(
        "CREATE INDEX idx_run_owner_created ON transcript_run (owner, created_at DESC, id DESC)"
    )
    op.execute("CREATE INDEX idx_run_audio ON transcript_run (audio_id)")
    op.execute(
        f"""
        CREATE TABLE job (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            run_id        uuid REFERENCES transcript_run (id) ON DELETE CASCADE,
            job_type      text NOT NULL,
            status        text NOT NULL DEFAULT 'queued' CHECK (status IN ({STATUSES})),
            priority      integer NOT NULL DEFAULT 0,
            attempts      integer NOT NULL DEFAULT 0,
            max_attempts  integer NOT NULL DEFAULT 4 CHECK (max_attempts >= 1),
            run_after     timestamptz NOT NULL DEFAULT now(),
            locked_by     text,
            locked_until  timestamptz,
            last_error    text,
            created_at    timestamptz NOT NULL DEFAULT now(),
            updated_at    timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX idx_job_status_created ON job (status, created_at)")
    op.execute(
        "CREATE INDEX idx_job_queued ON job (priority DESC, run_after, id) WHERE status = 'queued'"
    )
    op.execute("CREATE INDEX idx_job_lease ON job (locked_until) WHERE status = 'processing'")
    op.execute("CREATE INDEX idx_job_run ON job (run_id)")
    op.execute(
        """
        CREATE TABLE run_event (
            id          bigserial PRIMARY KEY,
            run_id      uuid NOT NULL REFERENCES transcript_run (id) ON DELETE CASCADE,
            owner       text NOT NULL,
            type        text NOT NULL,
            payload     jsonb NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX idx_run_event_run ON run_event (run_id, id)")
    op.execute("CREATE INDEX idx_run_event_owner ON run_event (owner, id)")
    op.execute(
        """
        CREATE TABLE worker (
            id            text PRIMARY KEY,
            hostname      text NOT NULL,
            pid           integer NOT NULL,
            started_at    timestamptz NOT NULL DEFAULT now(),
            heartbeat_at  timestamptz NOT NULL DEFAULT now(),
            state         text NOT NULL CHECK (state IN ('running', 'stopping', 'stopped')),
            concurrency   integer NOT NULL,
            current_jobs  bigint[] NOT NULL DEFAULT '{}'
        )
        """
    )


def downgrade() -> None:
    for table in ("worker", "run_event", "job", "transcript_run", "audio", "api_token"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
