//! Named permissions and the built-in roles. Custom roles are sets of these names, checked when
//! defined; services check them, never only handlers.

use std::collections::BTreeSet;

pub const ORGS_READ: &str = "orgs.read";
pub const ORGS_MANAGE: &str = "orgs.manage";
pub const MEMBERS_MANAGE: &str = "members.manage";
pub const ROLES_MANAGE: &str = "roles.manage";
pub const USERS_READ: &str = "users.read";
pub const USERS_MANAGE: &str = "users.manage";
pub const USERS_IMPERSONATE: &str = "users.impersonate";
pub const AUDIT_READ: &str = "audit.read";
pub const API_KEYS_MANAGE: &str = "api_keys.manage";
pub const MAIL_SEND: &str = "mail.send";
pub const DRIVE_READ: &str = "drive.read";
pub const DRIVE_WRITE: &str = "drive.write";
pub const APPS_MANAGE: &str = "apps.manage";

/// Every permission name known outside the data API's `data.<app>.<table>.<operation>` and
/// `data.<app>.purge`.
pub const ALL: [&str; 13] = [
    ORGS_READ,
    ORGS_MANAGE,
    MEMBERS_MANAGE,
    ROLES_MANAGE,
    USERS_READ,
    USERS_MANAGE,
    USERS_IMPERSONATE,
    AUDIT_READ,
    API_KEYS_MANAGE,
    MAIL_SEND,
    DRIVE_READ,
    DRIVE_WRITE,
    APPS_MANAGE,
];

/// Administrative permissions: held on an organization, they also hold on every organization below
/// it (a reseller's administrator manages its customers). Every other permission (`orgs.read`,
/// `users.read`, `mail.send`, `drive.*`, `data.*`) holds only where the role is held, so a plain
/// member of the root organization neither lists the customers below it nor reads their drives.
pub const ADMINISTRATIVE: [&str; 8] = [
    ORGS_MANAGE,
    MEMBERS_MANAGE,
    ROLES_MANAGE,
    USERS_MANAGE,
    USERS_IMPERSONATE,
    AUDIT_READ,
    API_KEYS_MANAGE,
    APPS_MANAGE,
];

/// The part of `held` that holds below the organization where it is held: the administrative
/// permissions, and the directory reads that go with managing (`users.read` with `users.manage`
/// or `members.manage`, `orgs.read` with `orgs.manage` or `members.manage`).
pub fn inherited(held: &BTreeSet<String>) -> BTreeSet<String> {
    let has = |p: &str| held.contains(p);
    let mut out: BTreeSet<String> = held.iter().filter(|p| ADMINISTRATIVE.contains(&p.as_str())).cloned().collect();
    if has(USERS_READ) && (has(USERS_MANAGE) || has(MEMBERS_MANAGE)) {
        out.insert(USERS_READ.to_owned());
    }
    if has(ORGS_READ) && (has(ORGS_MANAGE) || has(MEMBERS_MANAGE)) {
        out.insert(ORGS_READ.to_owned());
    }
    out
}

/// The built-in roles, valid in every organization.
pub const BUILTIN_ROLES: [&str; 4] = ["owner", "admin", "member", "guest"];

/// Permissions of a built-in role, or `None` for another name.
pub fn builtin(role: &str) -> Option<BTreeSet<String>> {
    let names: &[&str] = match role {
        "owner" => &ALL,
        "admin" => &[
            ORGS_READ,
            ORGS_MANAGE,
            MEMBERS_MANAGE,
            ROLES_MANAGE,
            USERS_READ,
            USERS_MANAGE,
            AUDIT_READ,
            API_KEYS_MANAGE,
            MAIL_SEND,
            DRIVE_READ,
            DRIVE_WRITE,
            APPS_MANAGE,
        ],
        "member" => &[ORGS_READ, USERS_READ, MAIL_SEND, DRIVE_READ, DRIVE_WRITE],
        "guest" => &[ORGS_READ, DRIVE_READ],
        _ => return None,
    };
    Some(names.iter().map(|s| (*s).to_owned()).collect())
}

/// Whether `name` is a permission a role may hold.
pub fn is_valid(name: &str) -> bool {
    if ALL.contains(&name) {
        return true;
    }
    // data.<app>.<table>.<operation>, data.<app>.purge
    let parts: Vec<&str> = name.split('.').collect();
    (parts.len() == 4 || (parts.len() == 3 && parts[2] == "purge"))
        && parts[0] == "data"
        && parts[1..].iter().all(|p| {
            !p.is_empty()
                && p.len() <= 64
                && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

/// Whether `name` can name a custom role.
pub fn is_valid_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && !BUILTIN_ROLES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_builtins_nest() {
        let owner = builtin("owner").expect("owner");
        let admin = builtin("admin").expect("admin");
        let member = builtin("member").expect("member");
        let guest = builtin("guest").expect("guest");
        assert!(admin.is_subset(&owner) && member.is_subset(&admin) && guest.is_subset(&member));
        assert!(!admin.contains(USERS_IMPERSONATE));
        assert!(builtin("root").is_none());
    }

    #[test]
    fn permissions_validate_names() {
        assert!(is_valid("users.manage"));
        assert!(is_valid("data.crm.contacts.update"));
        assert!(!is_valid("data.crm.contacts"));
        assert!(!is_valid("data.CRM.contacts.update"));
        assert!(!is_valid("*"));
        assert!(is_valid_role_name("billing-viewer"));
        assert!(!is_valid_role_name("owner"));
        assert!(!is_valid_role_name("Bad Name"));
    }
}
