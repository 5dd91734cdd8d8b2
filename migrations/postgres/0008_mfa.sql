-- Second factor: TOTP secrets (sealed with the vault), single-use backup codes, login challenges
-- (with optional emailed one-time codes), each organization's list of roles that must use 2FA,
-- and how each session authenticated (the `amr` claim).

ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_enabled_at timestamptz;
ALTER TABLE users ADD COLUMN totp_last_step bigint;
ALTER TABLE users ADD COLUMN mfa_failures bigint NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN mfa_locked_until timestamptz;

CREATE TABLE backup_codes (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    created_at timestamptz NOT NULL,
    used_at    timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE mfa_challenges (
    token_hash            text PRIMARY KEY,
    user_id               uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id                uuid,
    ip                    TEXT,
    user_agent            TEXT,
    created_at            timestamptz NOT NULL,
    expires_at            timestamptz NOT NULL,
    used_at               timestamptz,
    email_code_hash       TEXT,
    email_code_expires_at timestamptz
);

ALTER TABLE orgs ADD COLUMN mfa_required_roles jsonb NOT NULL DEFAULT '["owner", "admin"]';
ALTER TABLE sessions ADD COLUMN amr jsonb NOT NULL DEFAULT '["pwd"]';
