-- Second factor: TOTP secrets (sealed with the vault), single-use backup codes, login challenges
-- (with optional emailed one-time codes), each organization's list of roles that must use 2FA,
-- and how each session authenticated (the `amr` claim).

ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_enabled_at TEXT;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;
ALTER TABLE users ADD COLUMN mfa_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN mfa_locked_until TEXT;

CREATE TABLE backup_codes (
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    created_at TEXT NOT NULL,
    used_at    TEXT,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE mfa_challenges (
    token_hash            TEXT PRIMARY KEY NOT NULL,
    user_id               BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id                BLOB,
    ip                    TEXT,
    user_agent            TEXT,
    created_at            TEXT NOT NULL,
    expires_at            TEXT NOT NULL,
    used_at               TEXT,
    email_code_hash       TEXT,
    email_code_expires_at TEXT
);

ALTER TABLE orgs ADD COLUMN mfa_required_roles TEXT NOT NULL DEFAULT '["owner", "admin"]';
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT '["pwd"]';
