-- Scopes may name one organization alone (`=<path>`); on PostgreSQL this migration teaches the
-- row-level security function about them. SQLite has no row-level security: nothing to change.
SELECT 1;
