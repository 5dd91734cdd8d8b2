-- PostgreSQL adds row-level-security policies on the identity tables in this version. SQLite has
-- no row-level security: the repositories' own scoping is the rule there. Kept so both engines
-- share version numbers.
SELECT 1;
