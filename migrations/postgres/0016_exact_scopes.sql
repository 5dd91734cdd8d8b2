-- Scopes may name one organization alone: an entry `=<path>` matches that organization only,
-- a plain `<path>` its whole subtree. Plain members' directory permissions (`orgs.read`,
-- `users.read`) hold where the membership is, not below it; administrative ones cover the subtree.

CREATE OR REPLACE FUNCTION oppidum_scope_allows(target text) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
    SELECT NOT oppidum_scoped() OR (target IS NOT NULL AND EXISTS (
        SELECT 1 FROM jsonb_array_elements_text(current_setting('oppidum.scope', true)::jsonb) AS r(root)
        WHERE CASE WHEN substr(r.root, 1, 1) = '=' THEN target = substr(r.root, 2)
                   ELSE substr(target, 1, length(r.root)) = r.root END))
    $$;
