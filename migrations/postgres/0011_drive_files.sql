-- Drive files and folders, and their versions. A node belongs to one drive: a user's own
-- (`u:<user id>`) or an organization's shared drive (`o:<org id>`); every query is scoped by
-- it. Names are unique among the live children of a folder.

CREATE TABLE drive_nodes (
    id              uuid PRIMARY KEY,
    drive           TEXT NOT NULL,
    parent_id       uuid REFERENCES drive_nodes (id) ON DELETE CASCADE,
    -- The parent's id, or `root`: makes names unique at the top level too.
    parent_key      TEXT NOT NULL,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('file', 'folder')),
    current_version uuid,
    size            bigint NOT NULL DEFAULT 0,
    content_hash    TEXT,
    created_by      uuid,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    trashed_at      timestamptz
);
CREATE UNIQUE INDEX drive_nodes_live_name ON drive_nodes (drive, parent_key, name) WHERE trashed_at IS NULL;
CREATE INDEX drive_nodes_parent ON drive_nodes (drive, parent_key);

CREATE TABLE drive_versions (
    id          uuid PRIMARY KEY,
    node_id     uuid NOT NULL REFERENCES drive_nodes (id) ON DELETE CASCADE,
    manifest_id uuid NOT NULL REFERENCES drive_manifests (id),
    size        bigint NOT NULL,
    hash        TEXT NOT NULL,
    created_by  uuid,
    created_at  timestamptz NOT NULL
);
CREATE INDEX drive_versions_node ON drive_versions (node_id, created_at);
