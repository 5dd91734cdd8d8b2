//! PostgreSQL row-level security on identity tables: a scoped transaction of an ordinary role sees
//! only its subtrees, whatever SQL it runs.

use std::sync::Arc;

use oppidum_core::config::IdentityConfig;
use oppidum_core::time::SystemClock;
use oppidum_core::vault::Vault;
use oppidum_store::Db;
use uuid::Uuid;

use super::Identity;
use crate::model::Org;
use crate::repo;

async fn child(db: &Db, parent: &Org, name: &str) -> Org {
    let now = chrono::Utc::now();
    let id = Uuid::now_v7();
    let org = Org {
        id,
        parent_id: Some(parent.id),
        path: format!("{}{id}/", parent.path),
        name: name.into(),
        kind: "customer".into(),
        require_verified_email: false,
        mfa_required_roles: oppidum_store::Json(vec!["owner".into(), "admin".into()]),
        created_at: now,
        updated_at: now,
    };
    repo::insert_org(db, &org).await.expect("org");
    org
}

#[tokio::test]
async fn rls_scoped_transactions_see_only_their_subtree() {
    let Some(admin) = oppidum_store::testing::postgres_admin_url("rls_scoped_transactions_see_only_their_subtree")
    else {
        return;
    };
    let url = oppidum_store::testing::create_postgres_database(&admin).await;
    let db = Db::connect(&url, &Default::default()).await.expect("db");
    db.migrate().await.expect("migrate");
    let clock: Arc<dyn oppidum_core::time::Clock> = Arc::new(SystemClock);
    let bus = oppidum_store::EventBus::new(Uuid::now_v7(), None);
    let queue = oppidum_store::jobs::JobQueue::new(db.clone(), clock.clone(), bus, 3);
    let mailer = oppidum_mail::Mailer::new(db.clone(), queue, Default::default(), clock.clone(), false);
    let identity = Identity::new(
        db.clone(),
        Vault::from_master_key(&"k".repeat(40)),
        clock,
        IdentityConfig::default(),
        "oppidum".into(),
        mailer,
        "http://localhost".into(),
    );
    let root = identity.ensure_ready().await.expect("root");
    let a = child(&db, &root, "A").await;
    let a1 = child(&db, &a, "A1").await;
    let b = child(&db, &root, "B").await;
    for (email, org) in [("a@x.org", &a), ("a1@x.org", &a1), ("b@x.org", &b)] {
        identity.insert_user(email.into(), email.into(), None, org.id, "member", false).await.expect("user");
    }
    // Superusers bypass row-level security: act as an ordinary role, as production should.
    let role = format!("oppidum_probe_{}", Uuid::now_v7().simple());
    for sql in [
        format!("CREATE ROLE {role} NOLOGIN"),
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"),
    ] {
        db.query_dynamic(sql).execute().await.expect("role");
    }

    let mut tx = db.begin_scoped(std::slice::from_ref(&a.path)).await.expect("scoped");
    tx.query_dynamic(format!("SET LOCAL ROLE {role}")).execute().await.expect("set role");
    let emails: Vec<(String,)> = tx.query("SELECT email FROM users ORDER BY email").fetch_all().await.expect("users");
    assert_eq!(emails, vec![("a1@x.org".to_owned(),), ("a@x.org".to_owned(),)]);
    let (orgs,): (i64,) = tx.query("SELECT COUNT(*) FROM orgs").fetch_one().await.expect("orgs");
    assert_eq!(orgs, 2, "A and A1 only");
    let (foreign,): (i64,) =
        tx.query("SELECT COUNT(*) FROM memberships WHERE org_id = $1").bind(b.id).fetch_one().await.expect("m");
    assert_eq!(foreign, 0);
    tx.rollback().await.expect("rollback");

    // Unscoped (sign-in, token checks): everything.
    let mut tx = db.begin().await.expect("begin");
    tx.query_dynamic(format!("SET LOCAL ROLE {role}")).execute().await.expect("set role");
    let (users,): (i64,) = tx.query("SELECT COUNT(*) FROM users").fetch_one().await.expect("users");
    assert_eq!(users, 3);
    tx.rollback().await.expect("rollback");
    db.close().await;
}
