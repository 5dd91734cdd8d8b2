-- The audit log: append-only, hash-chained (each entry's hash covers the previous one), so any
-- edit or deletion is detectable with `oppidum admin audit verify`.

CREATE TABLE audit_log (
    seq             INTEGER PRIMARY KEY NOT NULL,
    id              BLOB NOT NULL UNIQUE,
    at              TEXT NOT NULL,
    org_id          BLOB,
    org_path        TEXT,
    actor_id        BLOB,
    impersonator_id BLOB,
    action          TEXT NOT NULL,
    target_type     TEXT,
    target_id       TEXT,
    outcome         TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    ip              TEXT,
    user_agent      TEXT,
    details         TEXT NOT NULL,
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_org_path ON audit_log (org_path);
CREATE INDEX audit_log_actor ON audit_log (actor_id);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
