-- Drive content store: chunks addressed by their BLAKE3 hash (stored once in the blob store,
-- whatever references them) and manifests, the ordered chunk lists of file contents. A manifest
-- exists only once all its chunks are stored; chunks no manifest references are collected after
-- a grace period that covers uploads in progress.

CREATE TABLE drive_chunks (
    hash        text PRIMARY KEY,
    size        bigint NOT NULL,
    stored_size bigint NOT NULL,
    -- Each upload of a missing chunk writes a fresh blob key, so a collection deleting an old
    -- copy can never remove the blob a concurrent upload just wrote.
    blob_key    TEXT NOT NULL,
    -- Last time an upload stored or reused the chunk; collection spares recently touched chunks.
    touched_at  timestamptz NOT NULL
);
CREATE INDEX drive_chunks_touched ON drive_chunks (touched_at);

CREATE TABLE drive_manifests (
    id         uuid PRIMARY KEY,
    hash       TEXT NOT NULL,
    size       bigint NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE drive_manifest_chunks (
    manifest_id uuid NOT NULL REFERENCES drive_manifests (id) ON DELETE CASCADE,
    seq         bigint NOT NULL,
    chunk_hash  TEXT NOT NULL REFERENCES drive_chunks (hash),
    size        bigint NOT NULL,
    PRIMARY KEY (manifest_id, seq)
);
CREATE INDEX drive_manifest_chunks_chunk ON drive_manifest_chunks (chunk_hash);
