-- Every statement Tapeline sends, by name. `-- name --` starts one; the line after it says why.
-- Parameters are SQLAlchemy `:name` binds. Casts on optional parameters let asyncpg type NULLs.

-- enqueue_job --
-- Queue one job; the NOTIFY wakes idle workers at once (polling is only the fallback).
WITH job AS (
    INSERT INTO job (run_id, job_type, priority, max_attempts, run_after, needs)
    VALUES (:run_id, :job_type, :priority, :max_attempts, now() + make_interval(secs => :delay_ms / 1000.0),
            CAST(:needs AS text))
    RETURNING id, job_type
)
SELECT job.id, pg_notify('tapeline_jobs', job.job_type) FROM job;

-- enqueue_jobs_bulk --
-- Queue many run-less jobs in one statement (maintenance work, benchmarks) and wake workers once.
WITH jobs AS (
    INSERT INTO job (job_type, priority, max_attempts)
    SELECT t, :priority, :max_attempts FROM unnest(CAST(:job_types AS text[])) AS t
    RETURNING id
)
SELECT count(*) AS queued, pg_notify('tapeline_jobs', 'bulk') FROM jobs;

-- claim_jobs --
-- Take up to :limit due jobs in one statement; SKIP LOCKED lets workers race without blocking.
-- Only jobs this worker serves (:serves NULL serves all), so the rest wait for a worker that does.
WITH next AS (
    SELECT id FROM job
    WHERE status = 'queued' AND run_after <= now() AND job_type = ANY(CAST(:job_types AS text[]))
      AND (needs IS NULL OR CAST(:serves AS text[]) IS NULL OR needs = ANY(CAST(:serves AS text[])))
    ORDER BY priority DESC, run_after, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
UPDATE job
SET status = 'processing', attempts = job.attempts + 1, locked_by = :worker_id,
    locked_until = now() + make_interval(secs => :lease_ms / 1000.0), updated_at = now()
FROM next
WHERE job.id = next.id
RETURNING job.id, job.run_id, job.job_type, job.attempts, job.max_attempts;

-- claim_job_by_id --
-- Take one specific queued job, for inline processing inside the API request that created it.
UPDATE job
SET status = 'processing', attempts = attempts + 1, locked_by = :worker_id,
    locked_until = now() + make_interval(secs => :lease_ms / 1000.0), updated_at = now()
WHERE id = (SELECT id FROM job WHERE id = :job_id AND status = 'queued' FOR UPDATE SKIP LOCKED)
RETURNING id, run_id, job_type, attempts, max_attempts;

-- renew_leases --
-- Extend the leases this worker still holds; a job missing from the result was cancelled or lost.
UPDATE job
SET locked_until = now() + make_interval(secs => :lease_ms / 1000.0), updated_at = now()
WHERE id = ANY(CAST(:job_ids AS bigint[])) AND locked_by = :worker_id AND status = 'processing'
RETURNING id;

-- finish_job --
-- Record a job's outcome, only if this worker still holds it (a stale worker must not overwrite).
UPDATE job
SET status = :status, last_error = CAST(:last_error AS text), locked_by = NULL,
    locked_until = NULL, updated_at = now()
WHERE id = :job_id AND locked_by = :worker_id AND status = 'processing'
RETURNING id, run_id;

-- finish_jobs_succeeded --
-- Record many successes in one statement (the executor batches them); only jobs this worker
-- still holds change, so a job cancelled or taken over meanwhile keeps its new state.
UPDATE job
SET status = 'succeeded', last_error = NULL, locked_by = NULL, locked_until = NULL,
    updated_at = now()
WHERE id = ANY(CAST(:job_ids AS bigint[])) AND locked_by = :worker_id AND status = 'processing'
RETURNING id;

-- schedule_retry --
-- Put a failed attempt back in the queue after a delay (WORKER_RETRY_DELAYS), if still held.
UPDATE job
SET status = 'queued', last_error = :last_error, locked_by = NULL, locked_until = NULL,
    run_after = now() + make_interval(secs => :delay_ms / 1000.0), updated_at = now()
WHERE id = :job_id AND locked_by = :worker_id AND status = 'processing'
RETURNING id, run_id, run_after;

-- release_job --
-- Hand back a job this worker could not finish before shutting down; the attempt is not counted.
UPDATE job
SET status = 'queued', attempts = greatest(attempts - 1, 0), locked_by = NULL,
    locked_until = NULL, run_after = now(), updated_at = now()
WHERE id = :job_id AND locked_by = :worker_id AND status = 'processing'
RETURNING id, run_id;

-- reclaim_expired_jobs --
-- Requeue (or fail, when attempts are spent) jobs whose worker stopped renewing its lease.
WITH expired AS (
    SELECT id FROM job
    WHERE status = 'processing' AND locked_until < now()
    ORDER BY locked_until
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
UPDATE job
SET status = CASE WHEN job.attempts >= job.max_attempts THEN 'failed' ELSE 'queued' END,
    last_error = :last_error, locked_by = NULL, locked_until = NULL, run_after = now(),
    updated_at = now()
FROM expired
WHERE job.id = expired.id
RETURNING job.id, job.run_id, job.job_type, job.status, job.attempts;

-- cancel_run_jobs --
-- Stop a run's unfinished jobs; a worker running one notices at its next lease renewal. Webhook
-- deliveries go on: what they report (run.started) did happen.
WITH cancelled AS (
    UPDATE job SET status = 'cancelled', locked_by = NULL, locked_until = NULL, updated_at = now()
    WHERE run_id = :run_id AND status IN ('queued', 'processing')
      AND job_type <> 'deliver_webhook'
    RETURNING id
)
SELECT id, pg_notify('tapeline_cancel', CAST(id AS text)) FROM cancelled;

-- queue_depth --
-- Jobs by status, for the admin view (idx_job_status_created covers it).
SELECT status, count(*) AS jobs FROM job GROUP BY status;

-- insert_run --
-- Create a queued run for an audio file.
INSERT INTO transcript_run (audio_id, owner, engine, model, language, prompt, hotwords)
VALUES (:audio_id, :owner, :engine, :model, :language, :prompt, :hotwords)
RETURNING *;

-- start_run --
-- A worker picked the run up: processing, first stage, attempt counted.
UPDATE transcript_run
SET status = 'processing', stage = :stage, progress = :progress, attempts = :attempts,
    started_at = coalesce(started_at, now())
WHERE id = :run_id AND status IN ('queued', 'processing')
RETURNING *;

-- set_run_stage --
-- Move a processing run to its next stage (a persisted transition, unlike progress ticks).
UPDATE transcript_run SET stage = :stage, progress = :progress
WHERE id = :run_id AND status = 'processing'
RETURNING *;

-- succeed_run --
-- Store the transcript and finish the run in the same statement: success implies a transcript.
UPDATE transcript_run
SET status = 'succeeded', stage = 'done', progress = 100, transcript = CAST(:transcript AS jsonb),
    error_code = NULL, error_message = NULL, finished_at = now()
WHERE id = :run_id AND status = 'processing'
RETURNING *;

-- fail_run --
-- A failure that will not be retried: the run ends with a stable code and a readable message.
UPDATE transcript_run
SET status = 'failed', error_code = :error_code, error_message = :error_message,
    finished_at = now()
WHERE id = :run_id AND status IN ('queued', 'processing')
RETURNING *;

-- requeue_run --
-- An attempt failed but will be retried: back to queued, keeping the last error visible.
UPDATE transcript_run
SET status = 'queued', stage = 'queued', progress = 0,
    error_code = CAST(:error_code AS text), error_message = CAST(:error_message AS text)
WHERE id = :run_id AND status IN ('queued', 'processing')
RETURNING *;

-- cancel_run --
-- A user cancelled a run that has not finished.
UPDATE transcript_run SET status = 'cancelled', finished_at = now()
WHERE id = :run_id AND status IN ('queued', 'processing')
RETURNING *;

-- reset_run --
-- A user retries a failed or cancelled run: it starts over as queued.
UPDATE transcript_run
SET status = 'queued', stage = 'queued', progress = 0, error_code = NULL, error_message = NULL,
    started_at = NULL, finished_at = NULL, transcript = NULL
WHERE id = :run_id AND status IN ('failed', 'cancelled')
RETURNING *;

-- lock_event_order --
-- Serialise run_event inserts until commit, so event ids grow in commit order and a subscriber
-- resuming "after id N" can never miss an event that committed late with a smaller id.
SELECT pg_advisory_xact_lock(7262012);

-- append_run_event --
-- The outbox: every status or stage transition, in the transaction that made it; NOTIFY carries
-- only ids and small fields so payloads stay far under Postgres's 8000-byte limit.
WITH event AS (
    INSERT INTO run_event (run_id, owner, type, payload)
    VALUES (:run_id, :owner, :type, CAST(:payload AS jsonb))
    RETURNING id, run_id, owner, type
)
SELECT event.id, pg_notify('tapeline_runs', json_build_object(
    'id', event.id, 'runId', event.run_id, 'owner', event.owner, 'type', event.type)::text)
FROM event;

-- run_events_after --
-- Replay for the per-run stream: this run's transitions after the client's Last-Event-ID.
SELECT e.id, e.run_id, e.owner, e.type, e.payload, r.audio_id
FROM run_event e JOIN transcript_run r ON r.id = e.run_id
WHERE e.run_id = :run_id AND e.id > :after_id
ORDER BY e.id;

-- run_partials --
-- The partial transcripts of a run's latest attempt: its `partial` events since it last started
-- (up to an event id, for a stream opening consistent with its init message).
SELECT e.id, e.payload
FROM run_event e
WHERE e.run_id = :run_id AND e.type = 'partial'
  AND (CAST(:up_to AS bigint) IS NULL OR e.id <= :up_to)
  AND e.id > (SELECT coalesce(max(s.id), 0) FROM run_event s
              WHERE s.run_id = :run_id AND s.type = 'started')
ORDER BY e.id;

-- owner_events_after --
-- Replay for the global stream: the caller's transitions (everyone's for admin) after an id.
SELECT e.id, e.run_id, e.owner, e.type, e.payload, r.audio_id
FROM run_event e JOIN transcript_run r ON r.id = e.run_id
WHERE e.id > :after_id AND (CAST(:owner AS text) IS NULL OR e.owner = :owner)
ORDER BY e.id
LIMIT :limit;

-- events_by_id --
-- What the LISTEN connection was notified of: the rows behind a batch of NOTIFY ids.
SELECT e.id, e.run_id, e.owner, e.type, e.payload, r.audio_id
FROM run_event e JOIN transcript_run r ON r.id = e.run_id
WHERE e.id = ANY(CAST(:ids AS bigint[]))
ORDER BY e.id;

-- last_event_id --
-- Where the event log ends now; a process starts dispatching from here.
SELECT coalesce(max(id), 0) FROM run_event;

-- active_runs_snapshot --
-- The global stream's first message: every queued or processing run the caller may see, and
-- the event id the snapshot is consistent with (one statement, one MVCC snapshot).
SELECT (SELECT coalesce(max(id), 0) FROM run_event) AS last_event_id,
       coalesce(json_agg(json_build_object(
           'runId', r.id, 'audioId', r.audio_id, 'owner', r.owner, 'status', r.status,
           'stage', r.stage, 'progress', r.progress, 'attempts', r.attempts,
           'engine', r.engine, 'createdAt', r.created_at, 'filename', a.filename)
           ORDER BY r.created_at), '[]') AS runs
FROM transcript_run r LEFT JOIN audio a ON a.id = r.audio_id
WHERE r.status IN ('queued', 'processing') AND (CAST(:owner AS text) IS NULL OR r.owner = :owner);

-- notify_progress --
-- A progress tick inside a stage: NOTIFY only, no row written.
SELECT pg_notify('tapeline_runs', :payload);

-- get_run --
-- One run, if the caller may see it (owner NULL means admin).
SELECT * FROM transcript_run
WHERE id = :run_id AND (CAST(:owner AS text) IS NULL OR owner = :owner);

-- list_runs --
-- The caller's runs, newest first, keyset-paginated on (created_at, id).
SELECT * FROM transcript_run
WHERE (CAST(:owner AS text) IS NULL OR owner = :owner)
  AND (CAST(:status AS text) IS NULL OR status = :status)
  AND (CAST(:before_created AS timestamptz) IS NULL
       OR (created_at, id) < (CAST(:before_created AS timestamptz), CAST(:before_id AS uuid)))
ORDER BY created_at DESC, id DESC
LIMIT :limit;

-- run_progress --
-- Everything the /progress endpoint shows, in one indexed query (the polling fallback).
SELECT r.id, r.audio_id, r.owner, r.status, r.stage, r.progress, r.attempts, r.error_code,
       r.error_message,
       r.created_at, r.started_at, r.finished_at, now() AS now,
       a.filename, a.duration_ms, a.size_bytes,
       (SELECT coalesce(max(e.id), 0) FROM run_event e WHERE e.run_id = r.id) AS last_event_id,
       coalesce((SELECT json_agg(json_build_object(
                    'id', j.id, 'jobType', j.job_type, 'status', j.status,
                    'attempts', j.attempts, 'lastError', j.last_error, 'runAfter', j.run_after)
                    ORDER BY j.id)
                 FROM job j WHERE j.run_id = r.id), '[]') AS jobs,
       (SELECT j.needs FROM job j
        WHERE j.run_id = r.id AND j.status = 'queued' AND j.needs IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM worker w
                          WHERE w.state = 'running' AND w.heartbeat_at > now() - interval '2 minutes'
                            AND (w.serves IS NULL OR j.needs = ANY(w.serves)))
        LIMIT 1) AS waiting_for
FROM transcript_run r LEFT JOIN audio a ON a.id = r.audio_id
WHERE r.id = :run_id AND (CAST(:owner AS text) IS NULL OR r.owner = :owner);

-- insert_audio --
-- Record an uploaded, probed audio file.
INSERT INTO audio (owner, filename, content_type, size_bytes, duration_ms, sample_rate, channels,
                   sha256, storage_key)
VALUES (:owner, :filename, :content_type, :size_bytes, :duration_ms, :sample_rate, :channels,
        :sha256, :storage_key)
RETURNING *;

-- get_audio --
-- One audio file, if the caller may see it (owner NULL means admin).
SELECT * FROM audio WHERE id = :audio_id AND (CAST(:owner AS text) IS NULL OR owner = :owner);

-- list_audio --
-- The caller's audio, newest first, keyset-paginated on (created_at, id).
SELECT * FROM audio
WHERE (CAST(:owner AS text) IS NULL OR owner = :owner)
  AND (CAST(:before_created AS timestamptz) IS NULL
       OR (created_at, id) < (CAST(:before_created AS timestamptz), CAST(:before_id AS uuid)))
ORDER BY created_at DESC, id DESC
LIMIT :limit;

-- insert_token --
-- Store a new API token; only its hash is kept (its webhook secret is needed to sign, so kept).
INSERT INTO api_token (owner, token_hash, token_prefix, webhook_url, webhook_secret)
VALUES (:owner, :token_hash, :token_prefix, CAST(:webhook_url AS text), :webhook_secret)
RETURNING id, owner, token_prefix, created_at, webhook_url, webhook_secret;

-- find_token --
-- Who a presented token belongs to, if it is valid, whether it is an admin (the owner token of a
-- fresh install), and where its runs' webhooks go by default.
SELECT id, owner, is_admin, webhook_url FROM api_token
WHERE token_hash = :token_hash AND revoked_at IS NULL;

-- list_tokens --
-- Every token, for `tapeline token list` (hashes stay inside the database).
SELECT id, owner, token_prefix, created_at, revoked_at, is_admin FROM api_token ORDER BY created_at;

-- revoke_token --
-- Revoke tokens by id or by the prefix `tapeline token list` shows.
UPDATE api_token SET revoked_at = now()
WHERE revoked_at IS NULL AND (CAST(id AS text) = :key OR token_prefix = :key)
RETURNING id, owner, token_prefix;

-- worker_heartbeat --
-- Proof of life with the jobs in hand; an upsert, so a worker whose row was removed reappears.
INSERT INTO worker (id, hostname, pid, state, concurrency, current_jobs, serves)
VALUES (:worker_id, :hostname, :pid, :state, :concurrency, CAST(:job_ids AS bigint[]),
        CAST(:serves AS text[]))
ON CONFLICT (id) DO UPDATE
SET heartbeat_at = now(), state = EXCLUDED.state, concurrency = EXCLUDED.concurrency,
    current_jobs = EXCLUDED.current_jobs, serves = EXCLUDED.serves;

-- list_workers --
-- Every registered worker, most recently alive first.
SELECT id, hostname, pid, started_at, heartbeat_at, state, concurrency, current_jobs, serves
FROM worker ORDER BY heartbeat_at DESC;

-- --- uploads, tombstones, retention, idempotency ---------------------------------------------

-- insert_upload --
-- Start a tus upload: its state lives here so any API process can take the next request.
INSERT INTO upload (owner, length, metadata, storage_key, expires_at)
VALUES (:owner, :length, CAST(:metadata AS jsonb), :storage_key,
        now() + make_interval(secs => :expiry_s))
RETURNING *, now() AS now;

-- get_upload --
-- One upload, if the caller may see it (owner NULL means admin), with the database's clock.
SELECT *, now() AS now FROM upload
WHERE id = :upload_id AND (CAST(:owner AS text) IS NULL OR owner = :owner);

-- lock_upload --
-- Take the upload for one PATCH: a lease, so two requests never append at once and a crashed
-- process's lease simply runs out.
UPDATE upload
SET lock_token = :token, locked_until = now() + make_interval(secs => :lease_s), updated_at = now()
WHERE id = :upload_id AND owner = :owner AND status = 'receiving' AND expires_at > now()
  AND (lock_token IS NULL OR locked_until < now())
RETURNING *, now() AS now;

-- renew_upload_lock --
-- A long PATCH keeps its lease while bytes keep arriving.
UPDATE upload SET locked_until = now() + make_interval(secs => :lease_s)
WHERE id = :upload_id AND lock_token = :token
RETURNING id;

-- release_upload_lock --
-- A PATCH that stored nothing (bad checksum, wrong offset) gives the upload back.
UPDATE upload SET lock_token = NULL, locked_until = NULL
WHERE id = :upload_id AND lock_token = :token;

-- commit_upload_bytes --
-- The bytes of one PATCH are durable in storage: record the new offset and the backend's state;
-- the expiry restarts, so a slow but living upload is not discarded, though never past
-- seven expiry periods from its creation (a trickle cannot hold space forever).
UPDATE upload
SET upload_offset = :upload_offset, storage_state = CAST(:storage_state AS jsonb),
    lock_token = NULL, locked_until = NULL, updated_at = now(),
    expires_at = LEAST(now() + make_interval(secs => :expiry_s),
                       created_at + make_interval(secs => :expiry_s * 7))
WHERE id = :upload_id AND lock_token = :token
RETURNING *, now() AS now;

-- finish_upload --
-- The upload became audio (and maybe a run), or failed validation: it is no longer receiving.
UPDATE upload
SET status = :status, audio_id = CAST(:audio_id AS uuid), run_id = CAST(:run_id AS uuid),
    error_code = CAST(:error_code AS text), error_message = CAST(:error_message AS text),
    updated_at = now()
WHERE id = :upload_id
RETURNING *, now() AS now;

-- delete_upload --
-- Termination (tus DELETE) or cleanup: the row goes; the caller removes the bytes.
DELETE FROM upload WHERE id = :upload_id RETURNING *;

-- expired_uploads --
-- Unfinished uploads past their expiry, oldest first, for the cleanup to discard.
SELECT * FROM upload
WHERE status = 'receiving' AND expires_at < now() AND (lock_token IS NULL OR locked_until < now())
ORDER BY expires_at
LIMIT :limit;

-- insert_tombstone --
-- Remember that something existed, so its 404 can say `deleted` rather than `not_found`.
INSERT INTO tombstone (id, kind, owner, reason) VALUES (:id, :kind, :owner, :reason)
ON CONFLICT (id) DO NOTHING;

-- insert_run_tombstones --
-- Remember every run of an audio that is about to be deleted with it.
INSERT INTO tombstone (id, kind, owner, reason)
SELECT id, 'run', owner, :reason FROM transcript_run WHERE audio_id = :audio_id
ON CONFLICT (id) DO NOTHING;

-- get_tombstone --
-- Why an id the caller asks for is gone, if it ever existed for them.
SELECT kind, reason, deleted_at FROM tombstone
WHERE id = :id AND kind = :kind AND (CAST(:owner AS text) IS NULL OR owner = :owner);

-- lock_audio_sha256 --
-- Serialise inserts of one owner's identical files, so concurrent duplicates become one audio.
SELECT pg_advisory_xact_lock(hashtextextended(:owner || ':' || :sha256, 0));

-- find_audio_by_sha256 --
-- An owner's existing audio with the same bytes (duplicates return it instead of a new row).
SELECT * FROM audio WHERE owner = :owner AND sha256 = :sha256 AND purged_at IS NULL
ORDER BY created_at LIMIT 1;

-- delete_audio --
-- DELETE /api/audio/{id} and retention: the row goes, its runs, jobs and events cascade.
DELETE FROM audio WHERE id = :audio_id RETURNING *;

-- audio_transcript_keys --
-- The stored transcripts of an audio's runs, to remove with it.
SELECT transcript_key FROM transcript_run WHERE audio_id = :audio_id AND transcript_key IS NOT NULL;

-- set_run_transcript_key --
-- Record where a run's transcript was stored, just before the run is marked succeeded.
UPDATE transcript_run SET transcript_key = :transcript_key WHERE id = :run_id;

-- find_run_by_idempotency_key --
-- A submission retried with the same Idempotency-Key returns the run the first one made.
SELECT * FROM transcript_run WHERE owner = :owner AND idempotency_key = :idempotency_key;

-- insert_run_idempotent --
-- Create a queued run under an Idempotency-Key; the unique index makes concurrent retries
-- create one run (the losers get no row and read the winner's).
INSERT INTO transcript_run (audio_id, owner, engine, model, language, prompt, hotwords,
                            idempotency_key)
VALUES (:audio_id, :owner, :engine, :model, :language, :prompt, :hotwords, :idempotency_key)
ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING *;

-- try_cleanup_lock --
-- Only the worker holding this session lock runs the retention cleanup, cluster-wide.
SELECT pg_try_advisory_lock(7262013);

-- release_cleanup_lock --
-- The cleanup pass is over; another worker may take the next one.
SELECT pg_advisory_unlock(7262013);

-- audio_past_retention --
-- Audio older than AUDIO_RETENTION_DAYS whose bytes are still stored.
SELECT * FROM audio
WHERE purged_at IS NULL AND created_at < now() - make_interval(secs => :retention_s)
  AND NOT EXISTS (SELECT 1 FROM transcript_run r
                  WHERE r.audio_id = audio.id AND r.status IN ('queued', 'processing'))
ORDER BY created_at
LIMIT :limit;

-- mark_audio_purged --
-- The audio's bytes were removed by retention; the row stays while its transcripts are kept.
UPDATE audio SET purged_at = now() WHERE id = :audio_id AND purged_at IS NULL RETURNING id;

-- runs_past_retention --
-- Finished runs older than TRANSCRIPT_RETENTION_DAYS: their transcripts and rows go.
SELECT id, owner, transcript_key FROM transcript_run
WHERE finished_at IS NOT NULL AND finished_at < now() - make_interval(secs => :retention_s)
ORDER BY finished_at
LIMIT :limit;

-- delete_run --
-- Retention removes a run; its jobs and events cascade.
DELETE FROM transcript_run WHERE id = :run_id RETURNING id;

-- purged_audio_without_runs --
-- Audio whose bytes are gone and which no run refers to any more: nothing is left to keep.
SELECT a.* FROM audio a
WHERE a.purged_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM transcript_run r WHERE r.audio_id = a.id)
LIMIT :limit;
-- metrics_queue_depth --
-- Queued and processing jobs for a Prometheus scrape: only the active statuses, so the count
-- stays cheap however many finished jobs the table holds (idx_job_status_created).
SELECT status, count(*) AS jobs FROM job WHERE status IN ('queued', 'processing') GROUP BY status;
-- record_chunk --
-- Keep a finished chunk's segments, so a retried job does not send (and pay for) it again.
INSERT INTO transcript_chunk (run_id, chunk_index, start_ms, end_ms, segments, engine)
VALUES (:run_id, :chunk_index, :start_ms, :end_ms, CAST(:segments AS jsonb), :engine)
ON CONFLICT (run_id, chunk_index) DO UPDATE
SET start_ms = EXCLUDED.start_ms, end_ms = EXCLUDED.end_ms, segments = EXCLUDED.segments,
    engine = EXCLUDED.engine, created_at = now();

-- finished_chunks --
-- The chunks of a run already transcribed, in order (by an earlier attempt or this one).
SELECT chunk_index, start_ms, end_ms, segments, engine FROM transcript_chunk
WHERE run_id = :run_id ORDER BY chunk_index;

-- request_run_analysis --
-- Mark a new run as asking for a title, summary and speaker turns after its transcript.
UPDATE transcript_run SET analysis_requested = true WHERE id = :run_id RETURNING *;

-- store_run_analysis --
-- Keep the analysis with the run while it is still processing (it is finished right after).
UPDATE transcript_run SET analysis = CAST(:analysis AS jsonb)
WHERE id = :run_id AND status = 'processing'
RETURNING id;

-- --- a fleet of different workers ----------------------------------------------------------

-- unserved_jobs --
-- Queued jobs no live worker serves, by what they need: what /api/admin/worker says they wait for.
SELECT j.needs, count(*) AS jobs FROM job j
WHERE j.status = 'queued' AND j.needs IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM worker w
                  WHERE w.state = 'running' AND w.heartbeat_at > now() - interval '2 minutes'
                    AND (w.serves IS NULL OR j.needs = ANY(w.serves)))
GROUP BY j.needs ORDER BY j.needs;

-- free_connections --
-- At start-up: free connection slots for this role (counting the asking one, which is ours),
-- so a server too small for the pool fails clearly instead of hanging later.
SELECT current_setting('max_connections')::int AS max,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS used,
       least(
           current_setting('max_connections')::int
           - current_setting('superuser_reserved_connections')::int
           - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
           coalesce((SELECT nullif(rolconnlimit, -1) FROM pg_roles WHERE rolname = current_user)
                    - (SELECT count(*) FROM pg_stat_activity WHERE usename = current_user),
                    2147483647)
       ) + 1 AS free;

-- lock_owner_quota --
-- Serialise one owner's quota check and upload creation, so parallel requests cannot both fit.
SELECT pg_advisory_xact_lock(hashtextextended('quota:' || :owner, 0));

-- owner_usage --
-- Quotas: the bytes an owner's audio holds, the bytes its open tus uploads reserve, and how many.
SELECT
  (SELECT coalesce(sum(size_bytes), 0) FROM audio
   WHERE owner = :owner AND purged_at IS NULL)::bigint AS stored_bytes,
  (SELECT coalesce(sum(length), 0) FROM upload
   WHERE owner = :owner AND status = 'receiving' AND expires_at > now())::bigint AS reserved_bytes,
  (SELECT count(*) FROM upload
   WHERE owner = :owner AND status = 'receiving' AND expires_at > now()) AS open_uploads;

-- set_upload_audio --
-- A finished upload's audio is known before its run is submitted: a retried completion reuses it.
UPDATE upload SET audio_id = :audio_id, updated_at = now() WHERE id = :upload_id;

-- global_replay_after --
-- A global stream resumed after an id: the caller's transitions (everyone's for admin) without
-- the partial transcripts, which only run streams carry, so none is read only to be dropped.
SELECT e.id, e.run_id, e.owner, e.type, e.payload, r.audio_id
FROM run_event e JOIN transcript_run r ON r.id = e.run_id
WHERE e.id > :after_id AND (CAST(:owner AS text) IS NULL OR e.owner = :owner)
  AND e.type <> 'partial'
ORDER BY e.id
LIMIT :limit;

-- --- webhooks and audio by URL ---------------------------------------------------------------

-- rotate_webhook_secret --
-- `tapeline token rotate-webhook-secret`: a new secret per token (32 bytes of two random UUIDs,
-- from Postgres's strong random source); the old one keeps signing beside it for a day.
UPDATE api_token
SET webhook_secret_previous = webhook_secret,
    webhook_secret = 'whsec_' || encode(decode(replace(
        gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'), 'base64'),
    webhook_secret_rotated_at = now()
WHERE revoked_at IS NULL AND (owner = :key OR CAST(id AS text) = :key OR token_prefix = :key)
RETURNING id, owner, token_prefix, webhook_secret;

-- set_run_webhook --
-- A new run's callback: where it goes, which events, whose secret signs it.
UPDATE transcript_run
SET webhook_url = :webhook_url, webhook_events = CAST(:webhook_events AS text[]),
    webhook_token_id = :webhook_token_id
WHERE id = :run_id
RETURNING *;

-- set_run_source --
-- A run submitted with an audio URL: a worker fetches it before transcribing.
UPDATE transcript_run SET source_url = :source_url WHERE id = :run_id RETURNING *;

-- set_run_audio --
-- The worker fetched the run's audio URL: the run now has its audio.
UPDATE transcript_run SET audio_id = :audio_id
WHERE id = :run_id AND status = 'processing'
RETURNING *;

-- insert_webhook_message --
-- One event for one URL, stored with the transition that caused it; its id is the webhook-id.
INSERT INTO webhook_message (id, run_id, owner, event_type, url, token_id, body)
VALUES (:id, :run_id, :owner, :event_type, :url, CAST(:token_id AS uuid), :body);

-- insert_webhook_job --
-- Which message a deliver_webhook job sends.
INSERT INTO webhook_job (job_id, message_id) VALUES (:job_id, :message_id);

-- webhook_for_job --
-- What a delivery job sends and signs with (the previous secret only during a rotation's day),
-- and whether its URL answered 410 since.
SELECT m.id, m.run_id, m.owner, m.event_type, m.url, m.body,
       t.webhook_secret, t.webhook_secret_previous,
       coalesce(t.webhook_secret_rotated_at > now() - interval '24 hours', false)
           AS rotation_overlaps,
       EXISTS (SELECT 1 FROM webhook_gone g WHERE g.owner = m.owner AND g.url = m.url) AS gone
FROM webhook_job j
JOIN webhook_message m ON m.id = j.message_id
LEFT JOIN api_token t ON t.id = m.token_id AND t.revoked_at IS NULL
WHERE j.job_id = :job_id;

-- record_webhook_delivery --
-- Every attempt, whatever happened: readable in psql and at GET /api/runs/{id}/webhooks.
INSERT INTO webhook_delivery (message_id, run_id, owner, event, url, attempt, status_code,
                              duration_ms, error)
VALUES (:message_id, :run_id, :owner, :event, :url,
        (SELECT count(*) + 1 FROM webhook_delivery WHERE message_id = :message_id),
        CAST(:status_code AS integer), :duration_ms, CAST(:error AS text));

-- mark_webhook_gone --
-- The receiver answered 410: nothing more goes to that URL for this owner.
INSERT INTO webhook_gone (owner, url) VALUES (:owner, :url) ON CONFLICT DO NOTHING;

-- clear_webhook_gone --
-- The owner redelivers to a URL that answered 410 once: they want it tried again.
DELETE FROM webhook_gone WHERE owner = :owner AND url = :url;

-- run_webhooks --
-- A run's webhook deliveries with the state of their latest job and every attempt.
SELECT m.id, m.event_type, m.url, m.created_at, lj.status, lj.next_attempt_at,
       coalesce((SELECT json_agg(json_build_object(
                    'id', d.id, 'attempt', d.attempt, 'statusCode', d.status_code,
                    'durationMs', d.duration_ms, 'error', d.error, 'createdAt', d.created_at)
                    ORDER BY d.id)
                 FROM webhook_delivery d WHERE d.message_id = m.id), '[]') AS attempts
FROM webhook_message m
LEFT JOIN LATERAL (
    SELECT CASE WHEN j.status IN ('queued', 'processing') THEN 'pending'
                ELSE j.status END AS status,
           CASE WHEN j.status = 'queued' THEN j.run_after END AS next_attempt_at
    FROM webhook_job wj JOIN job j ON j.id = wj.job_id
    WHERE wj.message_id = m.id ORDER BY j.id DESC LIMIT 1
) lj ON true
WHERE m.run_id = :run_id
ORDER BY m.created_at, m.id;

-- find_webhook_message --
-- The delivery a redeliver names: by message id, or by the id of one of its attempts.
SELECT m.* FROM webhook_message m
WHERE m.run_id = :run_id
  AND (m.id = :key OR m.id = (SELECT d.message_id FROM webhook_delivery d
                              WHERE CAST(d.id AS text) = :key));

-- webhook_pending --
-- Is a job for this message still queued or running? (Redelivering it then would send twice.)
SELECT 1 FROM webhook_job wj JOIN job j ON j.id = wj.job_id
WHERE wj.message_id = :message_id AND j.status IN ('queued', 'processing')
LIMIT 1;

-- --- search, first start, renaming --------------------------------------------------------------

-- search_runs --
-- The caller's finished runs whose transcript has every word, best first (idx_run_search), then,
-- for those only, up to :per_run segments holding any of the words, as ts_headline snippets.
WITH query AS (
    SELECT tapeline_search_query(:q) AS words
), found AS (
    SELECT r.id, ts_rank(s.document, query.words) AS rank
    FROM query, run_search s JOIN transcript_run r ON r.id = s.run_id
    WHERE query.words IS NOT NULL
      AND s.document @@ query.words
      AND r.status = 'succeeded'
      AND (CAST(:owner AS text) IS NULL OR r.owner = :owner)
    ORDER BY rank DESC, r.created_at DESC, r.id DESC
    LIMIT :limit
)
SELECT r.*, a.filename, found.rank,
       coalesce((
           SELECT json_agg(json_build_object(
                      'startMs', m.seg -> 'start_ms', 'endMs', m.seg -> 'end_ms',
                      'headline', ts_headline('simple'::regconfig,
                          tapeline_search_document(m.seg ->> 'text'), any_word.q,
                          :headline_options))
                  ORDER BY m.ord)
           FROM (
               SELECT s.seg, s.ord
               FROM jsonb_array_elements(r.transcript -> 'segments') WITH ORDINALITY AS s(seg, ord)
               WHERE to_tsvector('simple'::regconfig, tapeline_search_document(s.seg ->> 'text'))
                     @@ any_word.q
               ORDER BY s.ord
               LIMIT :per_run
           ) m), '[]') AS matches
FROM found
JOIN transcript_run r ON r.id = found.id
JOIN audio a ON a.id = r.audio_id
CROSS JOIN query
CROSS JOIN LATERAL (
    SELECT CAST(replace(CAST(query.words AS text), ' & ', ' | ') AS tsquery) AS q
) any_word
ORDER BY found.rank DESC, r.created_at DESC, r.id DESC;

-- rename_audio --
-- A person renames a recording; only the name shown changes, the bytes and runs stay.
UPDATE audio SET filename = :filename
WHERE id = :audio_id AND (CAST(:owner AS text) IS NULL OR owner = :owner)
RETURNING *;

-- lock_first_token --
-- Serialise first starts, so processes starting together on a fresh install make one owner token.
SELECT pg_advisory_xact_lock(7262017);

-- any_token --
-- Whether this install has any token at all (revoked ones count: it is not a fresh install).
SELECT EXISTS (SELECT 1 FROM api_token) AS present;

-- insert_admin_token --
-- The owner token of a fresh install: an admin, like ADMIN_TOKEN, but stored (hashed) and revocable.
INSERT INTO api_token (owner, token_hash, token_prefix, is_admin)
VALUES (:owner, :token_hash, :token_prefix, true)
RETURNING id, owner, token_prefix, created_at;
