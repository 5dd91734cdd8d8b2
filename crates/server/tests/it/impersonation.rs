//! Impersonation: who may, the `act` claim, audit with both identities, no chaining, exit.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Backend, Site, json};

const PASSWORD: &str = "correct horse battery staple";

fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("jwt");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("b64"))
        .expect("json")
}

async fn impersonation_is_scoped_audited_and_unchained(backend: Backend) {
    let site = Site::new(backend).await;
    let root_admin_id = site.create_admin("root@example.org", PASSWORD);
    let server = site.start().await;
    let admin = server.login("root@example.org", PASSWORD).await;
    let root =
        json(server.get_as("/api/auth/me", &admin.access).await).await["org"]["id"].as_str().expect("org").to_owned();
    let org = |name: &str, parent: &str| json!({"parent_id": parent, "name": name});
    let reseller = json(server.post_json("/api/orgs", Some(&admin.access), org("R", &root)).await).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let sibling = json(server.post_json("/api/orgs", Some(&admin.access), org("S", &root)).await).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let user = |email: &str, org: &str, role: &str| json!({"email": email, "name": email, "password": PASSWORD, "org_id": org, "role": role});
    for (email, org_id, role) in [
        ("owner@example.org", &reseller, "owner"),
        ("admin@example.org", &reseller, "admin"),
        ("c@example.org", &reseller, "member"),
        ("s@example.org", &sibling, "member"),
    ] {
        assert_eq!(server.post_json("/api/users", Some(&admin.access), user(email, org_id, role)).await.status(), 201);
    }
    let owner = server.login("owner@example.org", PASSWORD).await;
    let plain_admin = server.login("admin@example.org", PASSWORD).await;
    let c = server.login("c@example.org", PASSWORD).await;
    let s = server.login("s@example.org", PASSWORD).await;

    let imp = |token: &str, target: &str| {
        let token = token.to_owned();
        let body = json!({"user_id": target});
        let server = &server;
        async move { server.post_json("/api/auth/impersonate", Some(&token), body).await }
    };
    // Who may: owners (users.impersonate), within their subtree, never an instance administrator.
    assert_eq!(imp(&plain_admin.access, &c.user_id).await.status(), 403);
    assert_eq!(imp(&owner.access, &s.user_id).await.status(), 404);
    assert_eq!(imp(&owner.access, &root_admin_id).await.status(), 404);
    assert_eq!(json(imp(&owner.access, &owner.user_id).await).await["code"], "self_impersonation");

    let started = imp(&owner.access, &c.user_id).await;
    assert_eq!(started.status(), 200);
    let started = json(started).await;
    assert_eq!(started["expires_in"], 3600);
    let token = started["access_token"].as_str().expect("token").to_owned();
    let claims = claims(&token);
    assert_eq!(claims["sub"], c.user_id.as_str());
    assert_eq!(claims["act"]["sub"], owner.user_id.as_str());
    let me = json(server.get_as("/api/auth/me", &token).await).await;
    assert_eq!(me["user"]["email"], "c@example.org");

    // No chaining; no password change as the user.
    assert_eq!(json(imp(&token, &admin.user_id).await).await["code"], "no_chaining");
    let pw = server
        .post_json(
            "/api/auth/password",
            Some(&token),
            json!({"current_password": PASSWORD, "new_password": "something else entirely"}),
        )
        .await;
    assert_eq!(json(pw).await["code"], "impersonation_forbidden");

    // Actions taken are audited with both identities.
    let logout_other = server.send(Method::POST, "/api/auth/impersonate/exit", Some(&token), None).await;
    assert_eq!(logout_other.status(), 204);
    assert_eq!(server.get_as("/api/auth/me", &token).await.status(), 401);
    let audit = json(server.get_as("/api/audit?limit=1000", &admin.access).await).await;
    let items = audit["items"].as_array().expect("items");
    let started = items.iter().find(|e| e["action"] == "auth.impersonate").expect("start audited");
    assert_eq!(started["actor_id"], owner.user_id.as_str());
    assert_eq!(started["target_id"], c.user_id.as_str());
    let exited = items.iter().find(|e| e["action"] == "auth.impersonate_exit").expect("exit audited");
    assert_eq!(exited["actor_id"], c.user_id.as_str());
    assert_eq!(exited["impersonator_id"], owner.user_id.as_str());
    // The instance administrator may impersonate anyone.
    assert_eq!(imp(&admin.access, &s.user_id).await.status(), 200);
}
both!(impersonation_is_scoped_audited_and_unchained);
