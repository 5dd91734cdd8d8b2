-- The audit log: append-only, hash-chained (each entry's hash covers the previous one), so any
-- edit or deletion is detectable with `oppidum admin audit verify`.

CREATE TABLE audit_log (
    seq             bigint PRIMARY KEY,
    id              uuid NOT NULL UNIQUE,
    at              timestamptz NOT NULL,
    org_id          uuid,
    org_path        text,
    actor_id        uuid,
    impersonator_id uuid,
    action          text NOT NULL,
    target_type     text,
    target_id       text,
    outcome         text NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    ip              text,
    user_agent      text,
    details         jsonb NOT NULL,
    prev_hash       text NOT NULL,
    hash            text NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_org_path ON audit_log (org_path text_pattern_ops);
CREATE INDEX audit_log_actor ON audit_log (actor_id);

CREATE FUNCTION oppidum_audit_append_only() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION oppidum_audit_append_only();
