-- Account flows that go through mail: single-use tokens (password reset, set-password after an
-- administrator created the account, email verification, invitations, email change), the
-- verification state of addresses, and each organization's policy about unverified users.

CREATE TABLE action_tokens (
    token_hash TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('reset', 'set_password', 'verify', 'invite', 'email_change')),
    user_id    uuid REFERENCES users (id) ON DELETE CASCADE,
    org_id     uuid REFERENCES orgs (id) ON DELETE CASCADE,
    email      TEXT,
    role       TEXT,
    created_by uuid,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX action_tokens_user ON action_tokens (user_id);

ALTER TABLE users ADD COLUMN email_verified_at timestamptz;
ALTER TABLE orgs ADD COLUMN require_verified_email boolean NOT NULL DEFAULT false;
