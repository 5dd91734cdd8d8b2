//! The organization tree, memberships and custom roles. A role held on an organization applies
//! to its whole subtree; nobody can grant more than they hold.

use std::collections::BTreeSet;

use oppidum_core::Principal;
use oppidum_store::Json;
use uuid::Uuid;

use super::{Access, Identity, normalize_email, normalize_name, path_ids};
use crate::audit::Outcome;
use crate::cache::Change;
use crate::error::{IdentityError, Result};
use crate::model::{
    AddMemberRequest, CreateOrgRequest, Member, Org, Role, RoleRequest, RoleRow, UpdateMemberRequest, UpdateOrgRequest,
    UpdateRoleRequest,
};
use crate::permissions::{self, MEMBERS_MANAGE, ORGS_MANAGE, ORGS_READ, ROLES_MANAGE};
use crate::repo;
use crate::service::in_org;

fn normalize_kind(kind: &str) -> Result<String> {
    let kind = kind.trim().to_lowercase();
    let ok = (1..=64).contains(&kind.len())
        && kind.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(kind)
    } else {
        Err(IdentityError::Invalid("invalid_kind", "The kind must be 1 to 64 of a-z, 0-9, '_' and '-'.".into()))
    }
}

impl Identity {
    /// Organizations the principal can see: the subtrees of their memberships.
    pub async fn list_orgs(&self, principal: &Principal) -> Result<Vec<Org>> {
        let access = self.access_of(principal).await?;
        let roots = access.subtrees_with(None);
        let mut tx = self.db.begin_scoped(&roots).await?;
        let mut orgs = Vec::new();
        for root in &roots {
            orgs.extend(repo::orgs_under(&mut tx, root).await?);
        }
        tx.commit().await?;
        orgs.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(orgs)
    }

    pub async fn get_org(&self, principal: &Principal, id: Uuid) -> Result<Org> {
        let access = self.access_of(principal).await?;
        self.visible_org(&access, id).await
    }

    /// Creates a child of an organization the principal manages.
    pub async fn create_org(&self, principal: &Principal, request: CreateOrgRequest) -> Result<Org> {
        let name = normalize_name(&request.name, "organization name")?;
        let kind = normalize_kind(&request.kind)?;
        let (parent, _) = self.authorize(principal, request.parent_id, ORGS_MANAGE).await?;
        let now = self.now();
        let id = Uuid::now_v7();
        let org = Org {
            id,
            parent_id: Some(parent.id),
            path: format!("{}{id}/", parent.path),
            name,
            kind,
            require_verified_email: parent.require_verified_email,
            mfa_required_roles: parent.mfa_required_roles.clone(),
            created_at: now,
            updated_at: now,
        };
        repo::insert_org(&self.db, &org).await?;
        self.org_event(principal, "org.create", &org, serde_json::json!({ "name": org.name, "kind": org.kind })).await;
        Ok(org)
    }

    pub async fn update_org(&self, principal: &Principal, id: Uuid, request: UpdateOrgRequest) -> Result<Org> {
        let name = request.name.as_deref().map(|n| normalize_name(n, "organization name")).transpose()?;
        let kind = request.kind.as_deref().map(normalize_kind).transpose()?;
        self.authorize(principal, id, ORGS_MANAGE).await?;
        if let Some(roles) = &request.mfa_required_roles
            && let Some(bad) =
                roles.iter().find(|r| permissions::builtin(r).is_none() && !permissions::is_valid_role_name(r))
        {
            return Err(IdentityError::Invalid("unknown_role", format!("`{bad}` is not a role name.")));
        }
        repo::update_org(
            &self.db,
            id,
            name.as_deref(),
            kind.as_deref(),
            request.require_verified_email,
            request.mfa_required_roles.as_deref(),
            self.now(),
        )
        .await?;
        let org = repo::get_org(&self.db, id).await?.ok_or(IdentityError::NotFound("organization"))?;
        self.org_event(
            principal,
            "org.update",
            &org,
            serde_json::json!({
                "name": name, "kind": kind, "require_verified_email": request.require_verified_email,
                "mfa_required_roles": request.mfa_required_roles,
            }),
        )
        .await;
        Ok(org)
    }

    /// Deletes an empty organization; needs `orgs.manage` on its parent.
    pub async fn delete_org(&self, principal: &Principal, id: Uuid) -> Result<()> {
        let access = self.access_of(principal).await?;
        let org = self.visible_org(&access, id).await?;
        let Some(parent_id) = org.parent_id else {
            return Err(IdentityError::Conflict("root_org", "The root organization cannot be deleted.".into()));
        };
        self.authorize(principal, parent_id, ORGS_MANAGE).await?;
        if repo::org_in_use(&self.db, id).await? {
            return Err(IdentityError::Conflict(
                "org_not_empty",
                "The organization still has sub-organizations or users; move or delete them first.".into(),
            ));
        }
        repo::delete_org(&self.db, id).await?;
        self.auth_changed(Change::All).await;
        self.org_event(principal, "org.delete", &org, serde_json::json!({ "name": org.name })).await;
        Ok(())
    }

    async fn org_event(&self, principal: &Principal, action: &'static str, org: &Org, details: serde_json::Value) {
        let mut event = Self::event_by(principal, action, Outcome::Success);
        event.target = Some(("org", org.id.to_string()));
        event.details = details;
        self.record(in_org(event, org)).await;
    }

    async fn member_event(
        &self,
        principal: &Principal,
        action: &'static str,
        org: &Org,
        user: Uuid,
        role: Option<&str>,
    ) {
        let mut event = Self::event_by(principal, action, Outcome::Success);
        event.target = Some(("user", user.to_string()));
        event.details = serde_json::json!({ "org_id": org.id, "role": role });
        self.record(in_org(event, org)).await;
    }

    async fn role_event(&self, principal: &Principal, action: &'static str, org: &Org, role: &Role) {
        let mut event = Self::event_by(principal, action, Outcome::Success);
        event.target = Some(("role", role.name.clone()));
        event.details = serde_json::json!({ "org_id": org.id, "permissions": role.permissions });
        self.record(in_org(event, org)).await;
    }

    pub async fn list_members(&self, principal: &Principal, org: Uuid) -> Result<Vec<Member>> {
        let (org, access) = self.authorize(principal, org, ORGS_READ).await?;
        let mut tx = self.db.begin_scoped(&access.subtrees_with(None)).await?;
        let members = repo::members_of(&mut tx, org.id).await?;
        tx.commit().await?;
        Ok(members)
    }

    /// Adds a user to an organization with a role, or changes their role there.
    pub async fn add_member(&self, principal: &Principal, org_id: Uuid, request: AddMemberRequest) -> Result<Member> {
        let (org, access) = self.authorize(principal, org_id, MEMBERS_MANAGE).await?;
        let user = match (request.user_id, request.email.as_deref()) {
            (Some(id), _) => repo::get_user(&self.db, id).await?,
            (None, Some(email)) => repo::get_user_by_email(&self.db, &normalize_email(email)?).await?,
            (None, None) => {
                return Err(IdentityError::Invalid("invalid_request_body", "Give `user_id` or `email`.".into()));
            }
        }
        .ok_or(IdentityError::NotFound("user"))?;
        self.check_grantable(&access, &org, &request.role).await?;
        repo::upsert_member(&self.db, org.id, user.id, &request.role, self.now()).await?;
        self.auth_changed(Change::User(user.id)).await;
        self.member_event(principal, "member.add", &org, user.id, Some(&request.role)).await;
        repo::get_member(&self.db, org.id, user.id).await?.ok_or(IdentityError::NotFound("member"))
    }

    pub async fn update_member(
        &self,
        principal: &Principal,
        org_id: Uuid,
        user_id: Uuid,
        request: UpdateMemberRequest,
    ) -> Result<Member> {
        let (org, access) = self.authorize(principal, org_id, MEMBERS_MANAGE).await?;
        repo::get_member(&self.db, org.id, user_id).await?.ok_or(IdentityError::NotFound("member"))?;
        self.check_grantable(&access, &org, &request.role).await?;
        repo::upsert_member(&self.db, org.id, user_id, &request.role, self.now()).await?;
        self.auth_changed(Change::User(user_id)).await;
        self.member_event(principal, "member.update", &org, user_id, Some(&request.role)).await;
        repo::get_member(&self.db, org.id, user_id).await?.ok_or(IdentityError::NotFound("member"))
    }

    pub async fn remove_member(&self, principal: &Principal, org_id: Uuid, user_id: Uuid) -> Result<()> {
        let (org, _) = self.authorize(principal, org_id, MEMBERS_MANAGE).await?;
        let user = repo::get_user(&self.db, user_id).await?.ok_or(IdentityError::NotFound("member"))?;
        if user.home_org_id == org.id {
            return Err(IdentityError::Conflict(
                "home_membership",
                "This is the user's home organization; delete the user instead.".into(),
            ));
        }
        if repo::delete_member(&self.db, org.id, user_id).await? == 0 {
            return Err(IdentityError::NotFound("member"));
        }
        self.auth_changed(Change::User(user_id)).await;
        self.member_event(principal, "member.remove", &org, user_id, None).await;
        Ok(())
    }

    /// The permissions of role `name` as seen from `org`: built-in, or custom on it or an ancestor.
    async fn resolve_role(&self, org: &Org, name: &str) -> Result<Option<Role>> {
        Ok(self.roles_for(org).await?.into_iter().find(|r| r.name == name))
    }

    /// A role may be granted only when it exists here and the granter holds all its permissions.
    pub(crate) async fn check_grantable(&self, access: &Access, org: &Org, role: &str) -> Result<()> {
        let role = self
            .resolve_role(org, role)
            .await?
            .ok_or_else(|| IdentityError::Invalid("unknown_role", format!("There is no role `{role}` here.")))?;
        let held = access.grantable_on(org);
        if !access.instance_admin && !role.permissions.is_subset(&held) {
            return Err(IdentityError::Forbidden(
                "privilege_escalation",
                "You cannot grant a role with permissions you do not hold.".into(),
            ));
        }
        Ok(())
    }

    /// Built-in roles and the custom roles defined on `org` and its ancestors.
    async fn roles_for(&self, org: &Org) -> Result<Vec<Role>> {
        let mut roles: Vec<Role> = permissions::BUILTIN_ROLES
            .iter()
            .map(|name| Role {
                name: (*name).to_owned(),
                org_id: None,
                builtin: true,
                description: format!("Built-in {name} role"),
                permissions: permissions::builtin(name).unwrap_or_default(),
            })
            .collect();
        let chain = path_ids(&org.path);
        let rows = repo::roles_on(&self.db, &chain).await?;
        // Closest definition of a name wins.
        for org_id in chain.iter().rev() {
            for row in rows.iter().filter(|r| r.org_id == Some(*org_id)) {
                if !roles.iter().any(|r| r.name == row.name) {
                    roles.push(Role {
                        name: row.name.clone(),
                        org_id: row.org_id,
                        builtin: false,
                        description: row.description.clone(),
                        permissions: row.permissions.0.iter().cloned().collect(),
                    });
                }
            }
        }
        Ok(roles)
    }

    pub async fn list_roles(&self, principal: &Principal, org_id: Uuid) -> Result<Vec<Role>> {
        let (org, _) = self.authorize(principal, org_id, ORGS_READ).await?;
        self.roles_for(&org).await
    }

    fn check_permissions(&self, access: &Access, org: &Org, requested: &BTreeSet<String>) -> Result<()> {
        if let Some(bad) = requested.iter().find(|p| !permissions::is_valid(p)) {
            return Err(IdentityError::Invalid("unknown_permission", format!("`{bad}` is not a permission.")));
        }
        if !access.instance_admin && !requested.is_subset(&access.grantable_on(org)) {
            return Err(IdentityError::Forbidden(
                "privilege_escalation",
                "A role cannot hold permissions you do not hold.".into(),
            ));
        }
        Ok(())
    }

    pub async fn create_role(&self, principal: &Principal, org_id: Uuid, request: RoleRequest) -> Result<Role> {
        if !permissions::is_valid_role_name(&request.name) {
            return Err(IdentityError::Invalid(
                "invalid_role_name",
                "Role names are 1 to 64 of a-z, 0-9, '_' and '-', and not a built-in name.".into(),
            ));
        }
        let (org, access) = self.authorize(principal, org_id, ROLES_MANAGE).await?;
        self.check_permissions(&access, &org, &request.permissions)?;
        let description: String = request.description.chars().take(500).collect();
        let row = RoleRow {
            id: Uuid::now_v7(),
            org_id: Some(org.id),
            name: request.name.clone(),
            description: description.clone(),
            permissions: Json(request.permissions.iter().cloned().collect()),
        };
        repo::insert_role(&self.db, &row, self.now()).await.map_err(|err| {
            if err.is_unique_violation() {
                IdentityError::Conflict("role_exists", format!("A role `{}` already exists here.", request.name))
            } else {
                err.into()
            }
        })?;
        // It may shadow a role of the same name defined higher up.
        self.auth_changed(Change::All).await;
        let role =
            Role { name: row.name, org_id: row.org_id, builtin: false, description, permissions: request.permissions };
        self.role_event(principal, "role.create", &org, &role).await;
        Ok(role)
    }

    /// The custom role `name` defined on exactly this organization.
    async fn own_role(&self, org: &Org, name: &str) -> Result<RoleRow> {
        if permissions::builtin(name).is_some() {
            return Err(IdentityError::Forbidden("builtin_role", "Built-in roles cannot be changed.".into()));
        }
        repo::roles_on(&self.db, &[org.id])
            .await?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or(IdentityError::NotFound("role"))
    }

    pub async fn update_role(
        &self,
        principal: &Principal,
        org_id: Uuid,
        name: &str,
        request: UpdateRoleRequest,
    ) -> Result<Role> {
        let (org, access) = self.authorize(principal, org_id, ROLES_MANAGE).await?;
        let row = self.own_role(&org, name).await?;
        let permissions: BTreeSet<String> =
            request.permissions.unwrap_or_else(|| row.permissions.0.iter().cloned().collect());
        self.check_permissions(&access, &org, &permissions)?;
        let description: String = request.description.unwrap_or(row.description).chars().take(500).collect();
        let list: Vec<String> = permissions.iter().cloned().collect();
        repo::update_role(&self.db, row.id, &description, &list, self.now()).await?;
        self.auth_changed(Change::All).await;
        let role = Role { name: row.name, org_id: row.org_id, builtin: false, description, permissions };
        self.role_event(principal, "role.update", &org, &role).await;
        Ok(role)
    }

    pub async fn delete_role(&self, principal: &Principal, org_id: Uuid, name: &str) -> Result<()> {
        let (org, _) = self.authorize(principal, org_id, ROLES_MANAGE).await?;
        let row = self.own_role(&org, name).await?;
        if repo::role_in_use(&self.db, &org.path, name).await? {
            return Err(IdentityError::Conflict("role_in_use", "Members still hold this role.".into()));
        }
        repo::delete_role(&self.db, row.id).await?;
        self.auth_changed(Change::All).await;
        let role = Role {
            name: row.name,
            org_id: row.org_id,
            builtin: false,
            description: row.description,
            permissions: row.permissions.0.into_iter().collect(),
        };
        self.role_event(principal, "role.delete", &org, &role).await;
        Ok(())
    }
}
