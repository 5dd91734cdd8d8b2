-- Row-level security on the identity tables: a second enforcement of tenancy behind the
-- services' own scoping. A transaction started with Db::begin_scoped sets `oppidum.scope` to the
-- JSON array of organization subtrees (materialized paths) the principal may see; rows outside
-- them are invisible and cannot be written. Unscoped transactions (sign-in, token checks, system
-- jobs) set nothing and see every row. Policies bind the table owner too (FORCE); superusers
-- always bypass row-level security, so run Oppidum as an ordinary role.

CREATE FUNCTION oppidum_scoped() RETURNS boolean
    LANGUAGE sql STABLE
    AS $$ SELECT COALESCE(current_setting('oppidum.scope', true), '') <> '' $$;

CREATE FUNCTION oppidum_scope_allows(target text) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
    SELECT NOT oppidum_scoped() OR (target IS NOT NULL AND EXISTS (
        SELECT 1 FROM jsonb_array_elements_text(current_setting('oppidum.scope', true)::jsonb) AS r(root)
        WHERE substr(target, 1, length(r.root)) = r.root))
    $$;

ALTER TABLE orgs ENABLE ROW LEVEL SECURITY;
ALTER TABLE orgs FORCE ROW LEVEL SECURITY;
CREATE POLICY orgs_scope ON orgs
    USING (oppidum_scope_allows(path))
    WITH CHECK (oppidum_scope_allows(path));

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
-- A user is visible where they live and where they are a member.
CREATE POLICY users_scope ON users
    USING (NOT oppidum_scoped()
        OR oppidum_scope_allows((SELECT o.path FROM orgs o WHERE o.id = home_org_id))
        OR EXISTS (SELECT 1 FROM memberships m JOIN orgs o ON o.id = m.org_id
                   WHERE m.user_id = users.id AND oppidum_scope_allows(o.path)))
    WITH CHECK (NOT oppidum_scoped() OR oppidum_scope_allows((SELECT o.path FROM orgs o WHERE o.id = home_org_id)));

ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY memberships_scope ON memberships
    USING (NOT oppidum_scoped() OR oppidum_scope_allows((SELECT o.path FROM orgs o WHERE o.id = org_id)))
    WITH CHECK (NOT oppidum_scoped() OR oppidum_scope_allows((SELECT o.path FROM orgs o WHERE o.id = org_id)));

ALTER TABLE roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE roles FORCE ROW LEVEL SECURITY;
CREATE POLICY roles_scope ON roles
    USING (NOT oppidum_scoped() OR oppidum_scope_allows((SELECT o.path FROM orgs o WHERE o.id = org_id)))
    WITH CHECK (NOT oppidum_scoped() OR oppidum_scope_allows((SELECT o.path FROM orgs o WHERE o.id = org_id)));

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY api_keys_scope ON api_keys
    USING (NOT oppidum_scoped() OR oppidum_scope_allows((SELECT o.path FROM orgs o WHERE o.id = org_id)))
    WITH CHECK (NOT oppidum_scoped() OR oppidum_scope_allows((SELECT o.path FROM orgs o WHERE o.id = org_id)));

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_log_scope ON audit_log
    USING (oppidum_scope_allows(org_path))
    WITH CHECK (true);
