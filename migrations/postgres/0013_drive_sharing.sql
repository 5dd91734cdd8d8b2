-- Sharing of files and folders with users and organizations (groups are organizations), and
-- public links.

CREATE TABLE drive_shares (
    id           uuid PRIMARY KEY,
    node_id      uuid NOT NULL REFERENCES drive_nodes (id) ON DELETE CASCADE,
    grantee_kind text NOT NULL CHECK (grantee_kind IN ('user', 'org')),
    grantee_id   uuid NOT NULL,
    access       text NOT NULL CHECK (access IN ('read', 'write', 'manage')),
    created_by   uuid,
    created_at   timestamptz NOT NULL,
    UNIQUE (node_id, grantee_kind, grantee_id)
);
CREATE INDEX drive_shares_grantee ON drive_shares (grantee_kind, grantee_id);

CREATE TABLE drive_links (
    id             uuid PRIMARY KEY,
    -- SHA-256 of the token: the link itself is shown once, when created.
    token_hash     text NOT NULL UNIQUE,
    node_id        uuid NOT NULL REFERENCES drive_nodes (id) ON DELETE CASCADE,
    mode           text NOT NULL CHECK (mode IN ('read', 'upload')),
    password_hash  text,
    expires_at     timestamptz,
    max_downloads  bigint,
    download_count bigint NOT NULL DEFAULT 0,
    revoked_at     timestamptz,
    created_by     uuid,
    created_at     timestamptz NOT NULL
);
CREATE INDEX drive_links_node ON drive_links (node_id);

-- The media type found in the first bytes of the content when it was stored.
ALTER TABLE drive_nodes ADD COLUMN content_type TEXT;
ALTER TABLE drive_versions ADD COLUMN content_type TEXT;
