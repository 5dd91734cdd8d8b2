-- Drive files and folders, and their versions. A node belongs to one drive: a user's own
-- (`u:<user id>`) or an organization's shared drive (`o:<org id>`); every query is scoped by
-- it. Names are unique among the live children of a folder.

CREATE TABLE drive_nodes (
    id              BLOB PRIMARY KEY NOT NULL,
    drive           TEXT NOT NULL,
    parent_id       BLOB REFERENCES drive_nodes (id) ON DELETE CASCADE,
    -- The parent's id, or `root`: makes names unique at the top level too.
    parent_key      TEXT NOT NULL,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('file', 'folder')),
    current_version BLOB,
    size            INTEGER NOT NULL DEFAULT 0,
    content_hash    TEXT,
    created_by      BLOB,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    trashed_at      TEXT
);
CREATE UNIQUE INDEX drive_nodes_live_name ON drive_nodes (drive, parent_key, name) WHERE trashed_at IS NULL;
CREATE INDEX drive_nodes_parent ON drive_nodes (drive, parent_key);

CREATE TABLE drive_versions (
    id          BLOB PRIMARY KEY NOT NULL,
    node_id     BLOB NOT NULL REFERENCES drive_nodes (id) ON DELETE CASCADE,
    manifest_id BLOB NOT NULL REFERENCES drive_manifests (id),
    size        INTEGER NOT NULL,
    hash        TEXT NOT NULL,
    created_by  BLOB,
    created_at  TEXT NOT NULL
);
CREATE INDEX drive_versions_node ON drive_versions (node_id, created_at);
