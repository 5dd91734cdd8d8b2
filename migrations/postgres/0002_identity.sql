-- Identity: organization tree, roles, users, memberships, sessions with rotating refresh tokens,
-- token signing keys.

CREATE TABLE orgs (
    id         uuid PRIMARY KEY,
    parent_id  uuid REFERENCES orgs (id),
    -- Materialized path of ids, `/<root>/<child>/`: subtree queries are prefix matches.
    path       text NOT NULL UNIQUE,
    name       text NOT NULL,
    kind       text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
-- One root per instance.
CREATE UNIQUE INDEX orgs_single_root ON orgs ((parent_id IS NULL)) WHERE parent_id IS NULL;
CREATE INDEX orgs_parent ON orgs (parent_id);
CREATE INDEX orgs_path ON orgs (path text_pattern_ops);

-- Built-in roles have org_id NULL; custom roles belong to one organization and its subtree.
CREATE TABLE roles (
    id          uuid PRIMARY KEY,
    org_id      uuid REFERENCES orgs (id) ON DELETE CASCADE,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    permissions jsonb NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE UNIQUE INDEX roles_name ON roles (COALESCE(org_id, '00000000-0000-0000-0000-000000000000'::uuid), name);

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    email          text NOT NULL UNIQUE,
    name           text NOT NULL,
    password_hash  text,
    home_org_id    uuid NOT NULL REFERENCES orgs (id),
    instance_admin boolean NOT NULL DEFAULT false,
    disabled       boolean NOT NULL DEFAULT false,
    token_version  bigint NOT NULL DEFAULT 1,
    locale         text,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    last_login_at  timestamptz
);
CREATE INDEX users_home_org ON users (home_org_id);

CREATE TABLE memberships (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id     uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    role       text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, org_id)
);
CREATE INDEX memberships_org ON memberships (org_id);

CREATE TABLE sessions (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id         uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    ip             text,
    user_agent     text,
    created_at     timestamptz NOT NULL,
    last_used_at   timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Every refresh token ever issued, by hash: the current one has used_at NULL; presenting a used
-- one again is reuse, and revokes the session.
CREATE TABLE refresh_tokens (
    token_hash text PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Ed25519 keys signing access tokens; private keys sealed with the vault.
CREATE TABLE signing_keys (
    kid         text PRIMARY KEY,
    public_key  bytea NOT NULL,
    private_key text NOT NULL,
    created_at  timestamptz NOT NULL,
    retired_at  timestamptz
);

-- One-time tokens that let the first administrator be created (`oppidum admin bootstrap`).
CREATE TABLE bootstrap_tokens (
    token_hash text PRIMARY KEY,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
