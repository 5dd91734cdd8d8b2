//! The audit log: what is recorded, who may read it, the JSON Lines export, append-only storage
//! and tamper detection with `oppidum admin audit verify`.

use serde_json::json;

use crate::both;
use crate::harness::{Backend, Site, json};

const PASSWORD: &str = "correct horse battery staple";

async fn audit_records_scopes_and_detects_tampering(backend: Backend) {
    let site = Site::new(backend).await;
    site.create_admin("root@example.org", PASSWORD);
    let server = site.start().await;
    let admin = server.login("root@example.org", PASSWORD).await;
    let bad = server
        .post_json("/api/auth/login", None, json!({"email": "root@example.org", "password": "wrong password!"}))
        .await;
    assert_eq!(bad.status(), 401);
    let me = json(server.get_as("/api/auth/me", &admin.access).await).await;
    let root = me["org"]["id"].as_str().expect("root").to_owned();
    let reseller =
        json(server.post_json("/api/orgs", Some(&admin.access), json!({"parent_id": root, "name": "R"})).await).await;
    let reseller = reseller["id"].as_str().expect("id").to_owned();
    let created = server
        .post_json(
            "/api/users",
            Some(&admin.access),
            json!({"email": "ra@example.org", "name": "RA", "password": PASSWORD, "org_id": reseller, "role": "admin"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let ra = server.login("ra@example.org", PASSWORD).await;
    let member = server
        .post_json(
            "/api/users",
            Some(&ra.access),
            json!({"email": "m@example.org", "name": "M", "password": PASSWORD, "org_id": reseller, "role": "member"}),
        )
        .await;
    assert_eq!(member.status(), 201);
    let m = server.login("m@example.org", PASSWORD).await;

    // The instance administrator sees everything, with actor, IP and outcome.
    let all = json(server.get_as("/api/audit?limit=1000", &admin.access).await).await;
    let items = all["items"].as_array().expect("items");
    let actions: Vec<(&str, &str)> =
        items.iter().map(|e| (e["action"].as_str().expect("a"), e["outcome"].as_str().expect("o"))).collect();
    for expected in
        [("auth.login", "success"), ("auth.login", "failure"), ("org.create", "success"), ("user.create", "success")]
    {
        assert!(actions.contains(&expected), "{expected:?} not in {actions:?}");
    }
    let failed = items.iter().find(|e| e["action"] == "auth.login" && e["outcome"] == "failure").expect("failure");
    assert_eq!(failed["ip"], "127.0.0.1");
    assert_eq!(failed["details"]["email"], "root@example.org");
    assert!(items.windows(2).all(|w| w[0]["seq"].as_i64() > w[1]["seq"].as_i64()), "newest first");

    // Filters.
    let failures = json(server.get_as("/api/audit?outcome=failure", &admin.access).await).await;
    assert!(failures["items"].as_array().expect("items").iter().all(|e| e["outcome"] == "failure"));
    let by_actor = json(server.get_as(&format!("/api/audit?actor={}", ra.user_id), &admin.access).await).await;
    assert!(!by_actor["items"].as_array().expect("items").is_empty());
    assert!(by_actor["items"].as_array().expect("items").iter().all(|e| e["actor_id"] == ra.user_id.as_str()));
    let page = json(server.get_as("/api/audit?limit=2", &admin.access).await).await;
    let cursor = page["next_cursor"].as_str().expect("cursor");
    let next = json(server.get_as(&format!("/api/audit?limit=2&cursor={cursor}"), &admin.access).await).await;
    assert!(next["items"][0]["seq"].as_i64() < page["items"][1]["seq"].as_i64().map(|s| s + 1));

    // The reseller's admin sees its subtree only: not the root administrator's logins.
    let scoped = json(server.get_as("/api/audit?limit=1000", &ra.access).await).await;
    let scoped = scoped["items"].as_array().expect("items");
    assert!(!scoped.is_empty());
    assert!(
        scoped.iter().all(|e| e["actor_id"] != admin.user_id.as_str() || e["action"] != "auth.login"),
        "{scoped:?}"
    );
    assert!(scoped.iter().any(|e| e["action"] == "user.create"));
    // A member without audit.read is refused.
    assert_eq!(server.get_as("/api/audit", &m.access).await.status(), 403);

    // JSON Lines export.
    let export = server.get_as("/api/audit/export", &admin.access).await;
    assert_eq!(export.headers()["content-type"], "application/x-ndjson");
    let text = export.text().await.expect("text");
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.len(), items.len());

    // Intact chain; the database refuses edits; an edit behind its back is detected.
    let verify = site.cli(&["admin", "audit", "verify"]);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("intact"));
    let db = oppidum_store::Db::connect(&site.effective_database_url(), &Default::default()).await.expect("db");
    let refused = db.query("UPDATE audit_log SET outcome = 'success' WHERE seq = 2").execute().await;
    assert!(refused.is_err(), "the audit log accepted an update");
    let refused = db.query("DELETE FROM audit_log WHERE seq = 2").execute().await;
    assert!(refused.is_err(), "the audit log accepted a delete");
    let disable = match backend {
        Backend::Sqlite => "DROP TRIGGER audit_log_no_update",
        Backend::Postgres => "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
    };
    db.query(disable).execute().await.expect("disable trigger");
    db.query("UPDATE audit_log SET outcome = 'success' WHERE outcome = 'failure'").execute().await.expect("tamper");
    db.close().await;
    let verify = site.cli(&["admin", "audit", "verify"]);
    assert!(!verify.status.success());
    assert!(
        String::from_utf8_lossy(&verify.stderr).contains("tampered at entry"),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}
both!(audit_records_scopes_and_detects_tampering);
