-- Identity: organization tree, roles, users, memberships, sessions with rotating refresh tokens,
-- token signing keys. Times are RFC 3339 UTC text; ids are UUID blobs; booleans are 0/1.

CREATE TABLE orgs (
    id         BLOB PRIMARY KEY NOT NULL,
    parent_id  BLOB REFERENCES orgs (id),
    -- Materialized path of ids, `/<root>/<child>/`: subtree queries are prefix matches.
    path       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
-- One root per instance.
CREATE UNIQUE INDEX orgs_single_root ON orgs ((parent_id IS NULL)) WHERE parent_id IS NULL;
CREATE INDEX orgs_parent ON orgs (parent_id);

-- Built-in roles have org_id NULL; custom roles belong to one organization and its subtree.
CREATE TABLE roles (
    id          BLOB PRIMARY KEY NOT NULL,
    org_id      BLOB REFERENCES orgs (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    permissions TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX roles_name ON roles (COALESCE(org_id, x'00'), name);

CREATE TABLE users (
    id             BLOB PRIMARY KEY NOT NULL,
    email          TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    password_hash  TEXT,
    home_org_id    BLOB NOT NULL REFERENCES orgs (id),
    instance_admin INTEGER NOT NULL DEFAULT 0,
    disabled       INTEGER NOT NULL DEFAULT 0,
    token_version  INTEGER NOT NULL DEFAULT 1,
    locale         TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    last_login_at  TEXT
);
CREATE INDEX users_home_org ON users (home_org_id);

CREATE TABLE memberships (
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id     BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, org_id)
);
CREATE INDEX memberships_org ON memberships (org_id);

CREATE TABLE sessions (
    id             BLOB PRIMARY KEY NOT NULL,
    user_id        BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id         BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    ip             TEXT,
    user_agent     TEXT,
    created_at     TEXT NOT NULL,
    last_used_at   TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    revoked_at     TEXT,
    revoked_reason TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Every refresh token ever issued, by hash: the current one has used_at NULL; presenting a used
-- one again is reuse, and revokes the session.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    session_id BLOB NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    used_at    TEXT
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Ed25519 keys signing access tokens; private keys sealed with the vault.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY NOT NULL,
    public_key  BLOB NOT NULL,
    private_key TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    retired_at  TEXT
);

-- One-time tokens that let the first administrator be created (`oppidum admin bootstrap`).
CREATE TABLE bootstrap_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
);
