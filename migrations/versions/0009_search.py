"""Full-text search over finished transcripts, and admin tokens.

`api_token.is_admin` marks the owner token a fresh install creates on its first start: an admin
like `ADMIN_TOKEN`, but stored as a hash and revocable like any other token.

The search document is the transcript's text with every CJK character standing alone, under the
`simple` configuration: `tapeline_search_document` spaces out Han, kana and Hangul characters,
because PostgreSQL's parser has no word breaker for them and would index a whole Chinese sentence
as one "word". A CJK query becomes a phrase of its characters (`预 <-> 算`), so it matches exactly
where those characters are adjacent. `simple` (no stemming) for every language keeps one index and
one query for all runs, whatever language each was spoken in (often unknown: auto-detected).

The vector lives in `run_search` (one row per run with a transcript, GIN-indexed), kept by a
trigger whenever `transcript_run.transcript` is written: nothing in the application writes it,
a reset run loses it in the same statement, and `SELECT *` on runs does not carry it around.
It is computed once per transcript, not at every search (an expression index would be, for the
recheck and for ranking, and the planner prices that computation far too low).

Revision ID: 0009_search
Revises: 0003_uploads
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_search"
down_revision: str | None = "0007_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CJK = r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]"


def upgrade() -> None:
    op.execute(
        rf"""
        CREATE FUNCTION tapeline_search_document(body text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        RETURN regexp_replace(coalesce(body, ''), '({CJK})', ' \1 ', 'g')
        """
    )
    op.execute(
        """
        CREATE FUNCTION tapeline_search_vector(transcript jsonb) RETURNS tsvector
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        RETURN to_tsvector('simple'::regconfig, tapeline_search_document(transcript ->> 'text'))
        """
    )
    op.execute(
        r"""
        CREATE FUNCTION tapeline_search_query(words text) RETURNS tsquery
        LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
        DECLARE
            result tsquery;
            part tsquery;
            word text;
        BEGIN
            FOREACH word IN ARRAY regexp_split_to_array(btrim(coalesce(words, '')), '\s+') LOOP
                part := phraseto_tsquery('simple'::regconfig, tapeline_search_document(word));
                IF numnode(part) > 0 THEN
                    result := CASE WHEN result IS NULL THEN part ELSE result && part END;
                END IF;
            END LOOP;
            RETURN result;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TABLE run_search (
            run_id    uuid PRIMARY KEY REFERENCES transcript_run (id) ON DELETE CASCADE,
            document  tsvector NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX idx_run_search ON run_search USING gin (document)")
    op.execute(
        """
        CREATE FUNCTION tapeline_index_transcript() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.transcript IS NULL THEN
                DELETE FROM run_search WHERE run_id = NEW.id;
            ELSE
                INSERT INTO run_search (run_id, document)
                VALUES (NEW.id, tapeline_search_vector(NEW.transcript))
                ON CONFLICT (run_id) DO UPDATE SET document = EXCLUDED.document;
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER trg_run_search AFTER INSERT OR UPDATE OF transcript ON transcript_run"
        " FOR EACH ROW EXECUTE FUNCTION tapeline_index_transcript()"
    )
    op.execute(
        "INSERT INTO run_search (run_id, document)"
        " SELECT id, tapeline_search_vector(transcript) FROM transcript_run"
        " WHERE transcript IS NOT NULL"
    )

    op.execute("ALTER TABLE api_token ADD COLUMN is_admin boolean NOT NULL DEFAULT false")


def downgrade() -> None:
    op.execute("ALTER TABLE api_token DROP COLUMN IF EXISTS is_admin")
    op.execute("DROP TRIGGER IF EXISTS trg_run_search ON transcript_run")
    op.execute("DROP FUNCTION IF EXISTS tapeline_index_transcript()")
    op.execute("DROP TABLE IF EXISTS run_search")
    op.execute("DROP FUNCTION IF EXISTS tapeline_search_query(text)")
    op.execute("DROP FUNCTION IF EXISTS tapeline_search_vector(jsonb)")
    op.execute("DROP FUNCTION IF EXISTS tapeline_search_document(text)")
