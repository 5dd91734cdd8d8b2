-- Small chunks (the whole content of small files) kept in their row instead of the blob store,
-- written in the transaction that commits their manifest; their blob_key is empty.
ALTER TABLE drive_chunks ADD COLUMN inline_data bytea;
