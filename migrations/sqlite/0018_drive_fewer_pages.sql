-- Fewer pages written per upload. Every index an insert touches is one more page in the
-- write-ahead log of its commit (a small upload wrote 21):
--   - drive_nodes_parent duplicated drive_nodes_live_name: every query by folder asks for live
--     nodes (trashed_at IS NULL), which the partial unique index answers, in name order;
--   - the chunk lists and the versions become WITHOUT ROWID tables, stored in their primary key's
--     own B-tree instead of a rowid table plus an index on that key. No table refers to either.

DROP INDEX drive_nodes_parent;

CREATE TABLE drive_manifest_chunks_new (
    manifest_id BLOB NOT NULL REFERENCES drive_manifests (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    chunk_hash  TEXT NOT NULL REFERENCES drive_chunks (hash),
    size        INTEGER NOT NULL,
    PRIMARY KEY (manifest_id, seq)
) WITHOUT ROWID;
INSERT INTO drive_manifest_chunks_new (manifest_id, seq, chunk_hash, size)
    SELECT manifest_id, seq, chunk_hash, size FROM drive_manifest_chunks;
DROP TABLE drive_manifest_chunks;
ALTER TABLE drive_manifest_chunks_new RENAME TO drive_manifest_chunks;
CREATE INDEX drive_manifest_chunks_chunk ON drive_manifest_chunks (chunk_hash);

CREATE TABLE drive_versions_new (
    id           BLOB PRIMARY KEY NOT NULL,
    node_id      BLOB NOT NULL REFERENCES drive_nodes (id) ON DELETE CASCADE,
    manifest_id  BLOB NOT NULL REFERENCES drive_manifests (id),
    size         INTEGER NOT NULL,
    hash         TEXT NOT NULL,
    created_by   BLOB,
    created_at   TEXT NOT NULL,
    content_type TEXT
) WITHOUT ROWID;
INSERT INTO drive_versions_new (id, node_id, manifest_id, size, hash, created_by, created_at, content_type)
    SELECT id, node_id, manifest_id, size, hash, created_by, created_at, content_type FROM drive_versions;
DROP TABLE drive_versions;
ALTER TABLE drive_versions_new RENAME TO drive_versions;
CREATE INDEX drive_versions_node ON drive_versions (node_id, created_at);
