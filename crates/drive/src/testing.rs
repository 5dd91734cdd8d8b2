//! Test doubles for unit tests of the drive crate (the end-to-end tests use the real identity).

use std::collections::BTreeSet;

use oppidum_core::principal::Credential;
use oppidum_core::{Directory, Error, OrgAccess, Principal};
use uuid::Uuid;

/// No organization is visible in these tests.
#[derive(Debug)]
pub struct NoOrgs;

#[async_trait::async_trait]
impl Directory for NoOrgs {
    async fn org_access(&self, _: &Principal, _: Uuid, _: &str) -> Result<OrgAccess, Error> {
        Ok(OrgAccess::Hidden)
    }

    async fn user_by_email(&self, _: &str) -> Result<Option<Uuid>, Error> {
        Ok(None)
    }

    async fn hash_password(&self, password: &str) -> Result<String, Error> {
        Ok(password.to_owned())
    }

    async fn verify_password(&self, password: &str, stored: &str) -> Result<bool, Error> {
        Ok(password == stored)
    }
}

/// A principal signed in with an app password.
pub fn principal(user: Uuid) -> Principal {
    Principal {
        user_id: user,
        org_id: Uuid::nil(),
        permissions: BTreeSet::new(),
        role: None,
        instance_admin: false,
        credential: Credential::AppPassword { id: Uuid::nil(), scopes: vec!["dav".into()] },
        impersonator: None,
        ip: None,
        user_agent: None,
    }
}

/// A drive over the database at `url` (migrated here) and in-memory blobs.
pub async fn drive_at(url: &str, config: oppidum_core::config::DriveConfig) -> crate::Drive {
    let db = oppidum_store::Db::connect(url, &Default::default()).await.expect("db");
    db.migrate().await.expect("migrate");
    let blobs = std::sync::Arc::new(oppidum_store::blob::ObjectBlobStore::memory());
    let content = crate::ContentStore::new(db.clone(), blobs, std::sync::Arc::new(oppidum_core::time::SystemClock));
    crate::Drive::new(db, content, config, std::sync::Arc::new(NoOrgs))
}
