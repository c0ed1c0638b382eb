"""Webhooks (Standard Webhooks) and audio fetched by URL.

`api_token` gains a default webhook URL and the `whsec_` secret that signs its runs' webhooks
(kept in the clear: signing needs it; the previous one is kept while a rotation overlaps).
A run records where its webhooks go, which events it wants and which token signs them; a run
submitted with an `audioUrl` has no audio until a worker has fetched it (`source_url`).
`webhook_message` is one event to one URL (its id is the `webhook-id` every retry repeats),
`webhook_job` ties each delivery job to its message, `webhook_delivery` is one row per attempt,
and `webhook_gone` remembers URLs that answered 410 so nothing more is sent there.

Revision ID: 0007_webhooks
Revises: 0003_uploads
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_webhooks"
down_revision: str | None = "0006_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RANDOM_SECRET = (
    "'whsec_' || encode(decode(replace(gen_random_uuid()::text || gen_random_uuid()::text,"
    " '-', ''), 'hex'), 'base64')"
)


def upgrade() -> None:
    op.execute(
        "ALTER TABLE api_token ADD COLUMN webhook_url text, ADD COLUMN webhook_secret text, "
        "ADD COLUMN webhook_secret_previous text, ADD COLUMN webhook_secret_rotated_at timestamptz"
    )
    op.execute(f"UPDATE api_token SET webhook_secret = {RANDOM_SECRET}")
    op.execute(
        "ALTER TABLE transcript_run ADD COLUMN webhook_url text, "
        "ADD COLUMN webhook_events text[] NOT NULL DEFAULT '{}', "
        "ADD COLUMN webhook_token_id uuid REFERENCES api_token (id) ON DELETE SET NULL, "
        "ADD COLUMN source_url text"
    )
    op.execute("ALTER TABLE transcript_run ALTER COLUMN audio_id DROP NOT NULL")
    op.execute(
        """
        CREATE TABLE webhook_message (
            id          text PRIMARY KEY,
            run_id      uuid NOT NULL REFERENCES transcript_run (id) ON DELETE CASCADE,
            owner       text NOT NULL,
            event_type  text NOT NULL,
            url         text NOT NULL,
            token_id    uuid REFERENCES api_token (id) ON DELETE SET NULL,
            body        text NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX idx_webhook_message_run ON webhook_message (run_id, created_at)")
    op.execute(
        """
        CREATE TABLE webhook_job (
            job_id      bigint PRIMARY KEY REFERENCES job (id) ON DELETE CASCADE,
            message_id  text NOT NULL REFERENCES webhook_message (id) ON DELETE CASCADE
        )
        """
    )
    op.execute(
        """
        CREATE TABLE webhook_delivery (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            message_id   text NOT NULL REFERENCES webhook_message (id) ON DELETE CASCADE,
            run_id       uuid NOT NULL REFERENCES transcript_run (id) ON DELETE CASCADE,
            owner        text NOT NULL,
            event        text NOT NULL,
            url          text NOT NULL,
            attempt      integer NOT NULL CHECK (attempt >= 1),
            status_code  integer,
            duration_ms  integer NOT NULL,
            error        text,
            created_at   timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX idx_webhook_delivery_run ON webhook_delivery (run_id, id)")
    op.execute("CREATE INDEX idx_webhook_delivery_message ON webhook_delivery (message_id, id)")
    op.execute(
        """
        CREATE TABLE webhook_gone (
            owner    text NOT NULL,
            url      text NOT NULL,
            gone_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (owner, url)
        )
        """
    )


def downgrade() -> None:
    for table in ("webhook_gone", "webhook_delivery", "webhook_job", "webhook_message"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DELETE FROM transcript_run WHERE audio_id IS NULL")
    op.execute("ALTER TABLE transcript_run ALTER COLUMN audio_id SET NOT NULL")
    op.execute(
        "ALTER TABLE transcript_run DROP COLUMN source_url, DROP COLUMN webhook_token_id, "
        "DROP COLUMN webhook_events, DROP COLUMN webhook_url"
    )
    op.execute(
        "ALTER TABLE api_token DROP COLUMN webhook_secret_rotated_at, "
        "DROP COLUMN webhook_secret_previous, DROP COLUMN webhook_secret, DROP COLUMN webhook_url"
    )
