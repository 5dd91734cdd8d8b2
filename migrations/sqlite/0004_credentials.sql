-- Machine and client credentials: organization API keys (bearer) and per-user app passwords
-- (HTTP Basic on protocol endpoints). Only SHA-256 hashes of the secrets are stored.

CREATE TABLE api_keys (
    id           BLOB PRIMARY KEY NOT NULL,
    org_id       BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    created_by   BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    permissions  TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    expires_at   TEXT
);
CREATE INDEX api_keys_org ON api_keys (org_id);

CREATE TABLE app_passwords (
    id           BLOB PRIMARY KEY NOT NULL,
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_used_at TEXT
);
CREATE INDEX app_passwords_user ON app_passwords (user_id);
