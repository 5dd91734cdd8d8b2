-- WebDAV: dead properties set with PROPPATCH, and locks shared by every node of a cluster.

CREATE TABLE drive_properties (
    node_id   uuid NOT NULL REFERENCES drive_nodes (id) ON DELETE CASCADE,
    namespace text NOT NULL,
    name      text NOT NULL,
    prefix    text,
    -- The whole property element as XML.
    xml       bytea,
    PRIMARY KEY (node_id, namespace, name)
);

CREATE TABLE dav_locks (
    token        text PRIMARY KEY,
    drive        text NOT NULL,
    -- URL-encoded path inside the drive, as the lock was taken (`/a/b`, `/c/`).
    path         text NOT NULL,
    principal    text,
    owner_xml    text,
    shared       boolean NOT NULL,
    deep         boolean NOT NULL,
    timeout_secs bigint,
    expires_at   timestamptz,
    created_at   timestamptz NOT NULL
);
CREATE INDEX dav_locks_drive ON dav_locks (drive);
