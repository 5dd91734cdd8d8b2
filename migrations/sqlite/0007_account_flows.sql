-- Account flows that go through mail: single-use tokens (password reset, set-password after an
-- administrator created the account, email verification, invitations, email change), the
-- verification state of addresses, and each organization's policy about unverified users.

CREATE TABLE action_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('reset', 'set_password', 'verify', 'invite', 'email_change')),
    user_id    BLOB REFERENCES users (id) ON DELETE CASCADE,
    org_id     BLOB REFERENCES orgs (id) ON DELETE CASCADE,
    email      TEXT,
    role       TEXT,
    created_by BLOB,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
);
CREATE INDEX action_tokens_user ON action_tokens (user_id);

ALTER TABLE users ADD COLUMN email_verified_at TEXT;
ALTER TABLE orgs ADD COLUMN require_verified_email INTEGER NOT NULL DEFAULT 0;
