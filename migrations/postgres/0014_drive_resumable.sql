-- Resumable uploads (the tus protocol): a session per upload, and the parts received so far,
-- staged in the blob store until the last byte arrives.

CREATE TABLE drive_uploads (
    id            uuid PRIMARY KEY,
    drive         text NOT NULL,
    actor         uuid NOT NULL,
    parent_id     uuid,
    name          text NOT NULL,
    length        bigint NOT NULL,
    upload_offset bigint NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX drive_uploads_expiry ON drive_uploads (expires_at);

CREATE TABLE drive_upload_parts (
    upload_id uuid NOT NULL REFERENCES drive_uploads (id) ON DELETE CASCADE,
    offset_at bigint NOT NULL,
    blob_key  text NOT NULL,
    size      bigint NOT NULL,
    PRIMARY KEY (upload_id, offset_at)
);
