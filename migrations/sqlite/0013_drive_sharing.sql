-- Sharing of files and folders with users and organizations (groups are organizations), and
-- public links.

CREATE TABLE drive_shares (
    id           BLOB PRIMARY KEY NOT NULL,
    node_id      BLOB NOT NULL REFERENCES drive_nodes (id) ON DELETE CASCADE,
    grantee_kind TEXT NOT NULL CHECK (grantee_kind IN ('user', 'org')),
    grantee_id   BLOB NOT NULL,
    access       TEXT NOT NULL CHECK (access IN ('read', 'write', 'manage')),
    created_by   BLOB,
    created_at   TEXT NOT NULL,
    UNIQUE (node_id, grantee_kind, grantee_id)
);
CREATE INDEX drive_shares_grantee ON drive_shares (grantee_kind, grantee_id);

CREATE TABLE drive_links (
    id             BLOB PRIMARY KEY NOT NULL,
    -- SHA-256 of the token: the link itself is shown once, when created.
    token_hash     TEXT NOT NULL UNIQUE,
    node_id        BLOB NOT NULL REFERENCES drive_nodes (id) ON DELETE CASCADE,
    mode           TEXT NOT NULL CHECK (mode IN ('read', 'upload')),
    password_hash  TEXT,
    expires_at     TEXT,
    max_downloads  INTEGER,
    download_count INTEGER NOT NULL DEFAULT 0,
    revoked_at     TEXT,
    created_by     BLOB,
    created_at     TEXT NOT NULL
);
CREATE INDEX drive_links_node ON drive_links (node_id);

-- The media type found in the first bytes of the content when it was stored.
ALTER TABLE drive_nodes ADD COLUMN content_type TEXT;
ALTER TABLE drive_versions ADD COLUMN content_type TEXT;
