-- Outbound mail: the durable outbox drained by `mail.deliver` jobs, and per-organization
-- overrides of the built-in templates.

CREATE TABLE mail_outbox (
    id             uuid PRIMARY KEY,
    org_id         uuid,
    to_addr        TEXT NOT NULL,
    from_addr      TEXT NOT NULL,
    subject        TEXT NOT NULL,
    text_body      TEXT NOT NULL,
    html_body      TEXT,
    template       TEXT,
    message_id     TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'dead')),
    attempts       bigint NOT NULL DEFAULT 0,
    relay_response TEXT,
    last_error     TEXT,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    sent_at        timestamptz
);
CREATE INDEX mail_outbox_status ON mail_outbox (status, created_at);

CREATE TABLE mail_templates (
    org_id     uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    locale     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    text_body  TEXT NOT NULL,
    html_body  TEXT NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, name, locale)
);
