-- Outbound mail: the durable outbox drained by `mail.deliver` jobs, and per-organization
-- overrides of the built-in templates.

CREATE TABLE mail_outbox (
    id             BLOB PRIMARY KEY NOT NULL,
    org_id         BLOB,
    to_addr        TEXT NOT NULL,
    from_addr      TEXT NOT NULL,
    subject        TEXT NOT NULL,
    text_body      TEXT NOT NULL,
    html_body      TEXT,
    template       TEXT,
    message_id     TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'dead')),
    attempts       INTEGER NOT NULL DEFAULT 0,
    relay_response TEXT,
    last_error     TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    sent_at        TEXT
);
CREATE INDEX mail_outbox_status ON mail_outbox (status, created_at);

CREATE TABLE mail_templates (
    org_id     BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    locale     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    text_body  TEXT NOT NULL,
    html_body  TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (org_id, name, locale)
);
