-- Fewer index pages written per upload: drive_nodes_parent duplicated drive_nodes_live_name, since
-- every query by folder asks for live nodes (trashed_at IS NULL), which the partial unique index
-- answers, in name order. (SQLite also stores two tables without a rowid; PostgreSQL tables have
-- none.)

DROP INDEX drive_nodes_parent;
