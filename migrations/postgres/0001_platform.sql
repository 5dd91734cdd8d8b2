-- Platform foundation: row-level-security plumbing, the durable job queue and its attempt history.

-- The organization a transaction acts for, set with `SELECT set_config('oppidum.org_id', $1, true)`
-- by Db::begin_for_org. Row-level-security policies of tenant tables compare their org_id with it.
CREATE FUNCTION oppidum_current_org() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT NULLIF(current_setting('oppidum.org_id', true), '')::uuid $$;

CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    kind             text NOT NULL,
    payload          jsonb NOT NULL,
    status           text NOT NULL CHECK (status IN ('queued', 'running', 'done', 'dead')),
    attempts         bigint NOT NULL DEFAULT 0,
    max_attempts     bigint NOT NULL CHECK (max_attempts > 0),
    run_at           timestamptz NOT NULL,
    unique_key       text UNIQUE,
    lease_token      uuid,
    leased_by        text,
    lease_expires_at timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    finished_at      timestamptz
);

CREATE INDEX jobs_due ON jobs (status, run_at);
CREATE INDEX jobs_lease ON jobs (status, lease_expires_at);

CREATE TABLE job_attempts (
    job_id      uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt     bigint NOT NULL,
    lease_token uuid NOT NULL UNIQUE,
    worker      text NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    outcome     text CHECK (outcome IN ('succeeded', 'failed', 'lease_expired', 'released')),
    error       text,
    PRIMARY KEY (job_id, attempt)
);
