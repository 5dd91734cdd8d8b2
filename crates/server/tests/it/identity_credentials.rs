//! API keys (bearer, fixed permissions on one subtree) and app passwords (never accepted by the
//! JSON API).

use reqwest::Method;
use serde_json::json;

use crate::both;
use crate::harness::{Backend, Site, json};

const PASSWORD: &str = "correct horse battery staple";

async fn api_keys_are_scoped_and_revocable(backend: Backend) {
    let site = Site::new(backend).await;
    site.create_admin("root@example.org", PASSWORD);
    let server = site.start().await;
    let admin = server.login("root@example.org", PASSWORD).await;
    let root =
        json(server.get_as("/api/auth/me", &admin.access).await).await["org"]["id"].as_str().expect("root").to_owned();
    let mk = |name: &str| json!({"parent_id": root, "name": name});
    let reseller = json(server.post_json("/api/orgs", Some(&admin.access), mk("R")).await).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let sibling = json(server.post_json("/api/orgs", Some(&admin.access), mk("S")).await).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for (email, org) in [("ra@example.org", &reseller), ("sa@example.org", &sibling)] {
        let resp = server
            .post_json(
                "/api/users",
                Some(&admin.access),
                json!({"email": email, "name": email, "password": PASSWORD, "org_id": org, "role": "admin"}),
            )
            .await;
        assert_eq!(resp.status(), 201);
    }
    let ra = server.login("ra@example.org", PASSWORD).await;
    let sa = server.login("sa@example.org", PASSWORD).await;

    let too_much = server
        .post_json(
            &format!("/api/orgs/{reseller}/api-keys"),
            Some(&ra.access),
            json!({"name": "ci", "permissions": ["users.impersonate"]}),
        )
        .await;
    assert_eq!(json(too_much).await["code"], "privilege_escalation");
    let created = server
        .post_json(
            &format!("/api/orgs/{reseller}/api-keys"),
            Some(&ra.access),
            json!({"name": "sync bot", "permissions": ["users.read", "orgs.read"]}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created = json(created).await;
    let key = created["key"].as_str().expect("key shown once").to_owned();
    assert!(key.starts_with("oak_"));
    let key_id = created["id"].as_str().expect("id").to_owned();

    // The key reads its subtree with its permissions, nothing more.
    let users = server.get_as("/api/users", &key).await;
    assert_eq!(users.status(), 200);
    let emails: Vec<String> = json(users).await["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|u| u["email"].as_str().expect("e").to_owned())
        .collect();
    assert_eq!(emails, vec!["ra@example.org".to_owned()]);
    assert_eq!(server.get_as(&format!("/api/orgs/{sibling}"), &key).await.status(), 404);
    assert_eq!(server.get_as(&format!("/api/orgs/{root}"), &key).await.status(), 404);
    let write = server.post_json("/api/orgs", Some(&key), json!({"parent_id": reseller, "name": "x"})).await;
    assert_eq!(write.status(), 403);
    let tampered = format!("{}x", &key[..key.len() - 1]);
    assert_eq!(json(server.get_as("/api/users", &tampered).await).await["code"], "invalid_token");

    // Listing never shows the secret; another tenant sees nothing; deletion revokes.
    let listed = json(server.get_as(&format!("/api/orgs/{reseller}/api-keys"), &ra.access).await).await;
    assert_eq!(listed.as_array().expect("list").len(), 1);
    assert!(listed[0].get("key").is_none() && listed[0].get("secret_hash").is_none());
    assert_eq!(server.get_as(&format!("/api/orgs/{reseller}/api-keys"), &sa.access).await.status(), 404);
    let foreign =
        server.send(Method::DELETE, &format!("/api/orgs/{reseller}/api-keys/{key_id}"), Some(&sa.access), None).await;
    assert_eq!(foreign.status(), 404);
    let deleted =
        server.send(Method::DELETE, &format!("/api/orgs/{reseller}/api-keys/{key_id}"), Some(&ra.access), None).await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(server.get_as("/api/users", &key).await.status(), 401);
}
both!(api_keys_are_scoped_and_revocable);

async fn app_passwords_are_shown_once_and_not_api_credentials(backend: Backend) {
    let site = Site::new(backend).await;
    site.create_admin("root@example.org", PASSWORD);
    let server = site.start().await;
    let admin = server.login("root@example.org", PASSWORD).await;
    let created = server
        .post_json(
            "/api/auth/app-passwords",
            Some(&admin.access),
            json!({"name": "Thunderbird", "scopes": ["dav", "mail"]}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created = json(created).await;
    let password = created["password"].as_str().expect("shown once").to_owned();
    let listed = json(server.get_as("/api/auth/app-passwords", &admin.access).await).await;
    assert_eq!(listed[0]["name"], "Thunderbird");
    assert!(listed[0].get("password").is_none() && listed[0].get("secret_hash").is_none());
    // HTTP Basic with an app password is for protocol endpoints only.
    let basic = server
        .client
        .get(server.url("/api/auth/me"))
        .basic_auth("root@example.org", Some(&password))
        .send()
        .await
        .expect("req");
    assert_eq!(basic.status(), 401);
    let bad_scope = server
        .post_json("/api/auth/app-passwords", Some(&admin.access), json!({"name": "x", "scopes": ["everything"]}))
        .await;
    assert_eq!(json(bad_scope).await["code"], "invalid_scopes");
    // Another user cannot delete it.
    let id = created["id"].as_str().expect("id");
    let other = server
        .post_json("/api/users", Some(&admin.access), json!({"email": "o@example.org", "name": "O", "password": PASSWORD, "org_id": json(server.get_as("/api/auth/me", &admin.access).await).await["org"]["id"]}))
        .await;
    assert_eq!(other.status(), 201);
    let o = server.login("o@example.org", PASSWORD).await;
    assert_eq!(
        server.send(Method::DELETE, &format!("/api/auth/app-passwords/{id}"), Some(&o.access), None).await.status(),
        404
    );
    assert_eq!(
        server.send(Method::DELETE, &format!("/api/auth/app-passwords/{id}"), Some(&admin.access), None).await.status(),
        204
    );
}
both!(app_passwords_are_shown_once_and_not_api_credentials);
