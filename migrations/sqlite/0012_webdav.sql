-- WebDAV: dead properties set with PROPPATCH, and locks shared by every node of a cluster.

CREATE TABLE drive_properties (
    node_id   BLOB NOT NULL REFERENCES drive_nodes (id) ON DELETE CASCADE,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    prefix    TEXT,
    -- The whole property element as XML.
    xml       BLOB,
    PRIMARY KEY (node_id, namespace, name)
);

CREATE TABLE dav_locks (
    token        TEXT PRIMARY KEY NOT NULL,
    drive        TEXT NOT NULL,
    -- URL-encoded path inside the drive, as the lock was taken (`/a/b`, `/c/`).
    path         TEXT NOT NULL,
    principal    TEXT,
    owner_xml    TEXT,
    shared       INTEGER NOT NULL,
    deep         INTEGER NOT NULL,
    timeout_secs INTEGER,
    expires_at   TEXT,
    created_at   TEXT NOT NULL
);
CREATE INDEX dav_locks_drive ON dav_locks (drive);
