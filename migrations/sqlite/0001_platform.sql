-- Platform foundation: the durable job queue and its attempt history.
-- Times are RFC 3339 UTC text written by the application (never CURRENT_TIMESTAMP), so they
-- compare correctly as strings; ids are UUID blobs.

CREATE TABLE jobs (
    id               BLOB PRIMARY KEY NOT NULL,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL CHECK (max_attempts > 0),
    run_at           TEXT NOT NULL,
    unique_key       TEXT UNIQUE,
    lease_token      BLOB,
    leased_by        TEXT,
    lease_expires_at TEXT,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    finished_at      TEXT
);

CREATE INDEX jobs_due ON jobs (status, run_at);
CREATE INDEX jobs_lease ON jobs (status, lease_expires_at);

CREATE TABLE job_attempts (
    job_id      BLOB NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    lease_token BLOB NOT NULL UNIQUE,
    worker      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    outcome     TEXT CHECK (outcome IN ('succeeded', 'failed', 'lease_expired', 'released')),
    error       TEXT,
    PRIMARY KEY (job_id, attempt)
);
