-- Resumable uploads (the tus protocol): a session per upload, and the parts received so far,
-- staged in the blob store until the last byte arrives.

CREATE TABLE drive_uploads (
    id            BLOB PRIMARY KEY NOT NULL,
    drive         TEXT NOT NULL,
    actor         BLOB NOT NULL,
    parent_id     BLOB,
    name          TEXT NOT NULL,
    length        INTEGER NOT NULL,
    upload_offset INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL
);
CREATE INDEX drive_uploads_expiry ON drive_uploads (expires_at);

CREATE TABLE drive_upload_parts (
    upload_id BLOB NOT NULL REFERENCES drive_uploads (id) ON DELETE CASCADE,
    offset_at INTEGER NOT NULL,
    blob_key  TEXT NOT NULL,
    size      INTEGER NOT NULL,
    PRIMARY KEY (upload_id, offset_at)
);
