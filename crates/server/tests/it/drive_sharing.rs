//! Sharing with users and organizations, public links (passwords, expiry, download limits,
//! revocation, file drops) and content-type sniffing, end to end.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Backend, Session, Site, TestServer, json};

const PASSWORD: &str = "correct horse battery staple";

struct World {
    /// Holds the server's directory: dropping it would delete the data under the running server.
    _site: Site,
    server: TestServer,
    a: Session,
    b: Session,
    c: Session,
    d: Session,
    group: String,
}

/// a and b in "Staff"; c in the group "Designers" (below Staff: its members can see it); d in
/// "Elsewhere".
async fn world(backend: Backend) -> World {
    let site = Site::new(backend).await;
    site.create_admin("root@example.org", PASSWORD);
    let server = site.start().await;
    let admin = server.login("root@example.org", PASSWORD).await;
    let root = server.current_org(&admin.access).await;
    let staff = server.create_org(&admin.access, &root, "Staff", "team").await;
    let group = server.create_org(&admin.access, &staff, "Designers", "group").await;
    let elsewhere = server.create_org(&admin.access, &root, "Elsewhere", "team").await;
    for (email, org) in [("a@x.org", &staff), ("b@x.org", &staff), ("c@x.org", &group), ("d@x.org", &elsewhere)] {
        server.create_user(&admin.access, email, PASSWORD, org, "member").await;
    }
    // a also belongs to the group it shares with: a plain member of Staff does not see the
    // organizations below Staff.
    let joined = server
        .post_json(
            &format!("/api/orgs/{group}/members"),
            Some(&admin.access),
            json!({"email": "a@x.org", "role": "member"}),
        )
        .await;
    assert!(joined.status().is_success(), "{}", joined.status());
    let a = server.login("a@x.org", PASSWORD).await;
    let b = server.login("b@x.org", PASSWORD).await;
    let c = server.login("c@x.org", PASSWORD).await;
    let d = server.login("d@x.org", PASSWORD).await;
    World { _site: site, server, a, b, c, d, group }
}

async fn upload(server: &TestServer, token: &str, query: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
    server
        .client
        .put(server.url(&format!("/api/drive/upload?{query}")))
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .expect("request")
}

fn id(value: &Value) -> String {
    value["id"].as_str().expect("id").to_owned()
}

async fn status(server: &TestServer, method: Method, path: &str, token: &str, body: Option<Value>) -> u16 {
    let code = server.send(method.clone(), path, Some(token), body).await.status().as_u16();
    assert_ne!(code, 500, "{method} {path}\n{}", server.log());
    code
}

async fn drive_shares_reach_only_the_shared_subtree(backend: Backend) {
    let World { _site: _keep, server, a, b, c, d, group } = world(backend).await;
    let folder = json(server.post_json("/api/drive/folders", Some(&a.access), json!({"name": "Plans"})).await).await;
    let folder = id(&folder);
    let inside = json(upload(&server, &a.access, &format!("parent={folder}&name=q3.txt"), "q3 plan").await).await;
    let private = json(upload(&server, &a.access, "name=diary.txt", "private").await).await;
    let (inside, private) = (id(&inside), id(&private));

    // Before any share: nothing.
    assert_eq!(status(&server, Method::GET, &format!("/api/drive/files/{inside}/content"), &b.access, None).await, 404);
    // a shares the folder with b (by email), read-only.
    let share = server
        .post_json(
            &format!("/api/drive/files/{folder}/shares"),
            Some(&a.access),
            json!({"email": "b@x.org", "access": "read"}),
        )
        .await;
    assert_eq!(share.status(), 201);
    let share = json(share).await;
    let shared = json(server.get_as("/api/drive/shared", &b.access).await).await;
    assert_eq!(shared[0]["node"]["name"], "Plans", "{shared}");
    assert_eq!(shared[0]["access"], "read");
    let listing =
        json(server.get_as(&format!("/api/drive/files?parent={folder}"), &b.access).await).await["items"].clone();
    assert_eq!(listing[0]["name"], "q3.txt");
    let content = server.get_as(&format!("/api/drive/files/{inside}/content"), &b.access).await;
    assert_eq!(content.text().await.expect("body"), "q3 plan");
    // Read-only: no upload, rename, delete, share, link.
    let r = upload(&server, &b.access, &format!("parent={folder}&name=b.txt"), "b").await;
    assert_eq!(json(r).await["code"], "read_only");
    assert_eq!(status(&server, Method::DELETE, &format!("/api/drive/files/{inside}"), &b.access, None).await, 403);
    let reshare = json!({"email": "d@x.org", "access": "read"});
    let path = format!("/api/drive/files/{folder}/shares");
    assert_eq!(status(&server, Method::POST, &path, &b.access, Some(reshare)).await, 403);
    let path = format!("/api/drive/files/{folder}/links");
    assert_eq!(status(&server, Method::POST, &path, &b.access, Some(json!({}))).await, 403);
    // Nothing outside the shared folder.
    for path in [format!("/api/drive/files/{private}"), format!("/api/drive/files/{private}/content")] {
        assert_eq!(status(&server, Method::GET, &path, &b.access, None).await, 404, "{path}");
    }
    // Write access: b adds a file, but cannot move things out of the shared folder.
    let upgrade = json!({"user_id": b.user_id, "access": "write"});
    let r = server.post_json(&format!("/api/drive/files/{folder}/shares"), Some(&a.access), upgrade).await;
    assert_eq!(json(r).await["access"], "write");
    let r = upload(&server, &b.access, &format!("parent={folder}&name=b.txt"), "from b").await;
    assert_eq!(r.status(), 201);
    let path = format!("/api/drive/files/{inside}");
    assert_eq!(status(&server, Method::PATCH, &path, &b.access, Some(json!({"to_root": true}))).await, 404);
    let path = format!("/api/drive/files/{inside}");
    assert_eq!(status(&server, Method::PATCH, &path, &b.access, Some(json!({"parent_id": private}))).await, 404);
    // b's own drive does not get a's folder, and a's top level stays a's.
    let own = json(server.get_as("/api/drive/files", &b.access).await).await["items"].clone();
    assert_eq!(own.as_array().map(Vec::len), Some(0), "{own}");

    // Shared with the group: its member c reads it, d (elsewhere) does not.
    let r = server
        .post_json(
            &format!("/api/drive/files/{inside}/shares"),
            Some(&a.access),
            json!({"org_id": group, "access": "read"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let shared = json(server.get_as("/api/drive/shared", &c.access).await).await;
    assert_eq!(shared[0]["node"]["name"], "q3.txt", "{shared}");
    assert_eq!(status(&server, Method::GET, &format!("/api/drive/files/{inside}/content"), &c.access, None).await, 200);
    assert_eq!(status(&server, Method::GET, &format!("/api/drive/files/{inside}/content"), &d.access, None).await, 404);
    let shared = json(server.get_as("/api/drive/shared", &d.access).await).await;
    assert_eq!(shared.as_array().map(Vec::len), Some(0), "{shared}");
    // Bad shares.
    let path = format!("/api/drive/files/{folder}/shares");
    for (body, code) in [
        (json!({"email": "nobody@x.org", "access": "read"}), "user_not_found"),
        (json!({"email": "b@x.org", "access": "own"}), "invalid_share"),
        (json!({"email": "b@x.org", "org_id": group, "access": "read"}), "invalid_share"),
        (json!({"user_id": a.user_id, "access": "read"}), "invalid_share"),
    ] {
        assert_eq!(json(server.post_json(&path, Some(&a.access), body).await).await["code"], code);
    }
    // Ending the share ends the access at once.
    let share_id = id(&share);
    assert_eq!(status(&server, Method::DELETE, &format!("/api/drive/shares/{share_id}"), &d.access, None).await, 404);
    assert_eq!(status(&server, Method::DELETE, &format!("/api/drive/shares/{share_id}"), &a.access, None).await, 204);
    assert_eq!(status(&server, Method::GET, &format!("/api/drive/files?parent={folder}"), &b.access, None).await, 404);
}
both!(drive_shares_reach_only_the_shared_subtree);

async fn public(server: &TestServer, path: &str, password: Option<&str>) -> reqwest::Response {
    let mut request = server.client.get(server.url(path));
    if let Some(password) = password {
        request = request.header("x-link-password", password);
    }
    request.send().await.expect("request")
}

async fn drive_public_links_expire_count_and_drop(backend: Backend) {
    let World { _site: _keep, server, a, b, .. } = world(backend).await;
    let file = id(&json(upload(&server, &a.access, "name=brochure.pdf", "%PDF-1.7 brochure").await).await);
    let folder =
        id(&json(server.post_json("/api/drive/folders", Some(&a.access), json!({"name": "Public"})).await).await);
    let inner = id(&json(upload(&server, &a.access, &format!("parent={folder}&name=inner.txt"), "inner").await).await);
    let outside = id(&json(upload(&server, &a.access, "name=secret.txt", "secret").await).await);

    // A file link with a password and two downloads.
    let body = json!({"password": "open sesame", "max_downloads": 2});
    let created = server.post_json(&format!("/api/drive/files/{file}/links"), Some(&a.access), body).await;
    assert_eq!(created.status(), 201);
    let created = json(created).await;
    let path = created["path"].as_str().expect("path").to_owned();
    assert!(created.get("password_hash").is_none());
    for wrong in [None, Some("wrong password")] {
        let r = public(&server, &path, wrong).await;
        assert_eq!(r.status(), 401);
        assert_eq!(json(r).await["code"], "link_password_required");
    }
    for _ in 0..2 {
        let r = public(&server, &path, Some("open sesame")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/pdf");
        assert!(r.headers()["content-disposition"].to_str().expect("cd").starts_with("attachment"));
        assert_eq!(r.text().await.expect("body"), "%PDF-1.7 brochure");
    }
    let r = public(&server, &path, Some("open sesame")).await;
    assert_eq!(r.status(), 410);
    assert_eq!(json(r).await["code"], "link_expired");
    // Guessing a link's password is slowed down: after 10 wrong ones even the right one waits.
    let guarded = server
        .post_json(&format!("/api/drive/files/{file}/links"), Some(&a.access), json!({"password": "long passphrase"}))
        .await;
    let guarded = json(guarded).await["path"].as_str().expect("path").to_owned();
    for _ in 0..10 {
        assert_eq!(public(&server, &guarded, Some("guess")).await.status(), 401);
    }
    let r = public(&server, &guarded, Some("long passphrase")).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let links = json(server.get_as(&format!("/api/drive/files/{file}/links"), &a.access).await).await;
    let limited = links.as_array().and_then(|all| all.iter().find(|l| l["max_downloads"] == 2)).expect("the link");
    assert_eq!(limited["download_count"], 2, "{links}");

    // A folder link lists the folder and serves what is in it, nothing else.
    let created =
        json(server.post_json(&format!("/api/drive/files/{folder}/links"), Some(&a.access), json!({})).await).await;
    let path = created["path"].as_str().expect("path").to_owned();
    let listing = json(public(&server, &path, None).await).await;
    assert_eq!(listing["entries"][0]["name"], "inner.txt", "{listing}");
    assert_eq!(public(&server, &format!("{path}/files/{inner}"), None).await.text().await.expect("body"), "inner");
    assert_eq!(public(&server, &format!("{path}/files/{outside}"), None).await.status(), 404);
    assert_eq!(public(&server, &format!("{path}/folders/{folder}"), None).await.status(), 200);
    // Only managers revoke, and revocation is immediate.
    let link_id = id(&created);
    assert_eq!(status(&server, Method::DELETE, &format!("/api/drive/links/{link_id}"), &b.access, None).await, 404);
    assert_eq!(status(&server, Method::DELETE, &format!("/api/drive/links/{link_id}"), &a.access, None).await, 204);
    assert_eq!(public(&server, &path, None).await.status(), 404);

    // Expiry.
    let past = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    let r =
        server.post_json(&format!("/api/drive/files/{file}/links"), Some(&a.access), json!({"expires_at": past})).await;
    assert_eq!(json(r).await["code"], "invalid_link");
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let created = json(
        server.post_json(&format!("/api/drive/files/{file}/links"), Some(&a.access), json!({"expires_at": soon})).await,
    )
    .await;
    let path = created["path"].as_str().expect("path").to_owned();
    assert_eq!(public(&server, &path, None).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(public(&server, &path, None).await.status(), 410);

    // A file drop: uploads land in the folder, never replace, and nothing is shown.
    let drop = json!({"mode": "upload"});
    let r = server.post_json(&format!("/api/drive/files/{file}/links"), Some(&a.access), drop.clone()).await;
    assert_eq!(json(r).await["code"], "invalid_link", "files cannot be drops");
    let created =
        json(server.post_json(&format!("/api/drive/files/{folder}/links"), Some(&a.access), drop).await).await;
    let path = created["path"].as_str().expect("path").to_owned();
    for expected in ["inner (2).txt", "inner (3).txt"] {
        let r = server.client.put(server.url(&format!("{path}/upload?name=inner.txt"))).body("dropped").send().await;
        let r = r.expect("request");
        assert_eq!(r.status(), 201);
        let name = json(r).await["name"].as_str().expect("name").to_owned();
        assert_eq!(name, expected);
    }
    let shown = json(public(&server, &path, None).await).await;
    assert!(shown["entries"].is_null(), "{shown}");
    assert_eq!(public(&server, &format!("{path}/files/{inner}"), None).await.status(), 404);
    let listing =
        json(server.get_as(&format!("/api/drive/files?parent={folder}"), &a.access).await).await["items"].clone();
    assert_eq!(listing.as_array().map(Vec::len), Some(3), "{listing}");
    let original = server.get_as(&format!("/api/drive/files/{inner}/content"), &a.access).await;
    assert_eq!(original.text().await.expect("body"), "inner", "the drop replaced nothing");

    // Tokens that do not exist, or try to be paths.
    for bad in ["/s/nope", "/s/..%2F..%2Fapi", "/s/%00", &format!("/s/{}", "x".repeat(300))] {
        assert!(matches!(public(&server, bad, None).await.status().as_u16(), 400 | 404), "{bad}");
    }
}
both!(drive_public_links_expire_count_and_drop);

async fn drive_sniffs_content_types(backend: Backend) {
    let World { _site: _keep, server, a, .. } = world(backend).await;
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("photo.txt", png, "image/png"),
        ("page.png", b"<!DOCTYPE html><script>alert(1)</script>".to_vec(), "text/html"),
        ("notes.md", "# Notes é".as_bytes().to_vec(), "text/markdown"),
    ];
    for (name, bytes, expected) in cases {
        let node = json(upload(&server, &a.access, &format!("name={name}"), bytes).await).await;
        assert_eq!(node["content_type"], expected, "{name}");
        let r = server.get_as(&format!("/api/drive/files/{}/content", id(&node)), &a.access).await;
        assert_eq!(r.headers()["content-type"], expected);
        let disposition = r.headers().get("content-disposition").map(|v| v.to_str().expect("cd").to_owned());
        assert_eq!(disposition.is_some(), expected == "text/html", "{name}: {disposition:?}");
    }
}
both!(drive_sniffs_content_types);
