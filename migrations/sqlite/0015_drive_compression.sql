-- Chunks stored compressed when that saves at least a tenth of their size: how (`lz4`), or NULL
-- for stored as is.
ALTER TABLE drive_chunks ADD COLUMN compression TEXT;
