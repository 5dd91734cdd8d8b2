-- Small chunks (the whole content of small files) kept in the database instead of the blob store,
-- written in the transaction that commits their manifest; their blob_key is empty. The bytes live
-- in a table of their own so that scans of drive_chunks (usage, collection) stay small.
CREATE TABLE drive_chunk_data (
    hash text PRIMARY KEY NOT NULL REFERENCES drive_chunks (hash) ON DELETE CASCADE,
    data bytea NOT NULL
);
