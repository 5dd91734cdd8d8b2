//! WebDAV end to end: the litmus suite and rclone against a real server, authentication, tenancy
//! (other users, other organizations, traversal), organization drives, quotas, and locks that
//! hold across two nodes. litmus and rclone are real clients (Debian packages); CI requires them
//! (`OPPIDUM_TEST_REQUIRE_DAV_CLIENTS=1`), elsewhere their tests are skipped with a message.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::both;
use crate::harness::{Backend, Site, TestServer, json};

const PASSWORD: &str = "correct horse battery staple";

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).expect("method")
}

/// Whether the client program runs here; fails instead of skipping when CI requires it.
fn client_available(program: &str, test: &str) -> bool {
    let ok = Command::new(program).arg("--help").output().is_ok();
    if !ok {
        let required = std::env::var("OPPIDUM_TEST_REQUIRE_DAV_CLIENTS").as_deref() == Ok("1");
        assert!(!required, "{test}: `{program}` is required (apt-get install {program})");
        eprintln!("SKIPPED {test}: `{program}` is not installed");
    }
    ok
}

/// An app password with the `dav` scope for the signed-in user.
async fn app_password(server: &TestServer, token: &str) -> String {
    let r = server.post_json("/api/auth/app-passwords", Some(token), json!({"name": "dav", "scopes": ["dav"]})).await;
    assert_eq!(r.status(), 201);
    json(r).await["password"].as_str().expect("password").to_owned()
}

/// A server with an administrator and two users (`a@`, `b@`) in the root organization.
async fn two_users(site: &Site) -> (TestServer, String) {
    site.create_admin("root@example.org", PASSWORD);
    let server = site.start().await;
    let admin = server.login("root@example.org", PASSWORD).await;
    let root =
        json(server.get_as("/api/auth/me", &admin.access).await).await["org"]["id"].as_str().expect("org").to_owned();
    for email in ["a@example.org", "b@example.org"] {
        let body = json!({"email": email, "name": email, "password": PASSWORD, "org_id": root, "role": "member"});
        assert_eq!(server.post_json("/api/users", Some(&admin.access), body).await.status(), 201);
    }
    (server, root)
}

async fn dav(
    server: &TestServer,
    verb: &str,
    path: &str,
    auth: (&str, &str),
    headers: &[(&str, &str)],
    body: &'static str,
) -> reqwest::Response {
    let mut request = server.client.request(method(verb), server.url(path)).basic_auth(auth.0, Some(auth.1));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(body).send().await.expect("request")
}

async fn dav_litmus_suite_passes(backend: Backend) {
    if !client_available("litmus", "dav_litmus_suite_passes") {
        return;
    }
    let site = Site::new(backend).await;
    let (server, _) = two_users(&site).await;
    let a = server.login("a@example.org", PASSWORD).await;
    let password = app_password(&server, &a.access).await;
    let url = server.url("/dav/files/a%40example.org/");
    // litmus writes debug.log into its working directory: a temporary one.
    let scratch = tempfile::tempdir().expect("dir");
    let run = tokio::process::Command::new("litmus")
        .args([url.as_str(), "a@example.org", password.as_str()])
        .current_dir(scratch.path())
        .output();
    let output =
        tokio::time::timeout(Duration::from_secs(600), run).await.expect("litmus finished").expect("litmus ran");
    let report = String::from_utf8_lossy(&output.stdout);
    for suite in ["basic", "copymove", "props", "locks", "http"] {
        assert!(report.contains(&format!("<- summary for `{suite}'")), "{suite} did not run:\n{report}");
    }
    assert!(output.status.success() && !report.contains("FAIL"), "litmus failed:\n{report}\n{}", server.log());
}
both!(dav_litmus_suite_passes);

/// A deterministic mixed dataset: many small files, some larger, an empty one, nested folders,
/// names with spaces, accents and punctuation.
fn dataset(root: &Path) -> usize {
    let mut seed = 0x2545_f491_u64;
    let mut bytes = |len: usize| {
        seed += 1;
        crate::drive::content(len, seed)
    };
    let mut files = Vec::new();
    for i in 0..40 {
        files.push((format!("small/file-{i:02}.txt"), bytes(100 + i * 97)));
    }
    for (i, name) in
        ["Ünïcode é.txt", "with space.md", "semi;colon,comma.csv", "percent%20.bin", "a+b=c.dat"].iter().enumerate()
    {
        files.push((format!("names/{name}"), bytes(1000 * (i + 1))));
    }
    files.push(("deep/er/and/deeper/leaf.bin".into(), bytes(70_000)));
    files.push(("empty.txt".into(), Vec::new()));
    let video = bytes(6 << 20);
    files.push(("large/video.bin".into(), video.clone()));
    files.push(("large/copy-of-video.bin".into(), video));
    for (name, content) in &files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
    }
    files.len()
}

fn rclone(args: &[&str], remote_url: &str, user: &str, obscured: &str) -> std::process::Output {
    Command::new("rclone")
        .args(args)
        .args(["--config", "/dev/null", "--retries", "1", "--low-level-retries", "1"])
        .env("RCLONE_CONFIG_OPP_TYPE", "webdav")
        .env("RCLONE_CONFIG_OPP_URL", remote_url)
        .env("RCLONE_CONFIG_OPP_VENDOR", "other")
        .env("RCLONE_CONFIG_OPP_USER", user)
        .env("RCLONE_CONFIG_OPP_PASS", obscured)
        .output()
        .expect("rclone ran")
}

async fn dav_rclone_copies_up_and_down_identically(backend: Backend) {
    if !client_available("rclone", "dav_rclone_copies_up_and_down_identically") {
        return;
    }
    let site = Site::new(backend).await;
    let (server, _) = two_users(&site).await;
    let a = server.login("a@example.org", PASSWORD).await;
    let password = app_password(&server, &a.access).await;
    let obscured = Command::new("rclone").args(["obscure", &password]).output().expect("obscure");
    let obscured = String::from_utf8_lossy(&obscured.stdout).trim().to_owned();
    let work = tempfile::tempdir().expect("tempdir");
    let (up, down) = (work.path().join("up"), work.path().join("down"));
    let count = dataset(&up);
    let url = server.url("/dav/files/a%40example.org/");
    let (up_s, down_s) = (up.to_string_lossy().into_owned(), down.to_string_lossy().into_owned());
    let blocking = tokio::task::spawn_blocking(move || {
        let copy = rclone(&["copy", &up_s, "opp:backup"], &url, "a@example.org", &obscured);
        assert!(copy.status.success(), "rclone copy up: {}", String::from_utf8_lossy(&copy.stderr));
        let check = rclone(&["check", "--download", &up_s, "opp:backup"], &url, "a@example.org", &obscured);
        assert!(check.status.success(), "rclone check: {}", String::from_utf8_lossy(&check.stderr));
        let back = rclone(&["copy", "opp:backup", &down_s], &url, "a@example.org", &obscured);
        assert!(back.status.success(), "rclone copy down: {}", String::from_utf8_lossy(&back.stderr));
    });
    blocking.await.expect("rclone steps");
    let mut compared = 0;
    let mut stack = vec![up.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path.strip_prefix(&up).expect("relative");
            let original = std::fs::read(&path).expect("original");
            let copy = std::fs::read(down.join(relative)).unwrap_or_else(|_| panic!("{} missing", relative.display()));
            assert_eq!(blake3::hash(&original), blake3::hash(&copy), "{} differs", relative.display());
            compared += 1;
        }
    }
    assert_eq!(compared, count);
    // The two identical large files were stored once.
    let usage = json(server.get_as("/api/drive/usage", &a.access).await).await;
    let stored = usage["stored_bytes"].as_i64().expect("stored");
    let logical = usage["logical_bytes"].as_i64().expect("logical");
    assert!(stored < logical - (5 << 20), "no deduplication: {usage}");
}
both!(dav_rclone_copies_up_and_down_identically);

async fn dav_authentication_and_tenancy(backend: Backend) {
    let site = Site::new(backend).await;
    let (server, _) = two_users(&site).await;
    let a = server.login("a@example.org", PASSWORD).await;
    let b = server.login("b@example.org", PASSWORD).await;
    let pa = app_password(&server, &a.access).await;
    let pb = app_password(&server, &b.access).await;
    let auth_a = ("a@example.org", pa.as_str());
    let auth_b = ("b@example.org", pb.as_str());

    // No credentials, a wrong password, the account password: 401 with a Basic challenge.
    let anonymous = server.client.request(method("PROPFIND"), server.url("/dav/files/a@example.org/")).send().await;
    let anonymous = anonymous.expect("request");
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers()["www-authenticate"].to_str().expect("header").starts_with("Basic"));
    for wrong in ["nope", PASSWORD] {
        let r = dav(&server, "PROPFIND", "/dav/files/a@example.org/", ("a@example.org", wrong), &[], "").await;
        assert_eq!(r.status(), 401, "{wrong}");
    }
    // An app password without the dav scope is refused.
    let mail_only =
        server.post_json("/api/auth/app-passwords", Some(&a.access), json!({"name": "mail", "scopes": ["mail"]})).await;
    let mail_only = json(mail_only).await["password"].as_str().expect("password").to_owned();
    let r = dav(&server, "PROPFIND", "/dav/files/a@example.org/", ("a@example.org", &mail_only), &[], "").await;
    assert_eq!(r.status(), 401);
    assert_eq!(json(r).await["code"], "scope_denied");

    // A writes a file; by email URL, by user id URL and with a bearer token it is there.
    let r = dav(&server, "PUT", "/dav/files/a@example.org/secret.txt", auth_a, &[], "a's secret").await;
    assert_eq!(r.status(), 201);
    let r = dav(&server, "GET", &format!("/dav/files/{}/secret.txt", a.user_id), auth_a, &[], "").await;
    assert_eq!(r.text().await.expect("body"), "a's secret");
    let bearer = server
        .client
        .get(server.url("/dav/files/a%40example.org/secret.txt"))
        .bearer_auth(&a.access)
        .send()
        .await
        .expect("request");
    assert_eq!(bearer.status(), 200);

    // B never reaches A's drive: by email, by id, through `..`, encoded slashes or dots.
    let attempts = [
        "/dav/files/a@example.org/".to_owned(),
        "/dav/files/a%40example.org/secret.txt".to_owned(),
        format!("/dav/files/{}/secret.txt", a.user_id),
        "/dav/files/b@example.org/../a@example.org/secret.txt".to_owned(),
        "/dav/files/b@example.org/%2E%2E/a@example.org/secret.txt".to_owned(),
        "/dav/files/b@example.org/..%2Fa@example.org%2Fsecret.txt".to_owned(),
        "/dav/files/b@example.org%2F..%2Fa@example.org/secret.txt".to_owned(),
        format!("/dav/orgs/{}/", uuid::Uuid::now_v7()),
    ];
    for path in &attempts {
        for verb in ["GET", "PROPFIND", "DELETE"] {
            let r = dav(&server, verb, path, auth_b, &[("depth", "1")], "").await;
            assert!(matches!(r.status().as_u16(), 400 | 403 | 404), "{verb} {path}: {}", r.status());
            let text = r.text().await.expect("body");
            assert!(!text.contains("a's secret") && !text.contains("secret.txt"), "{verb} {path} leaked: {text}");
        }
    }
    // COPY or MOVE into A's drive from B's is refused, and so is a Destination on the drive top.
    let r = dav(&server, "PUT", "/dav/files/b@example.org/mine.txt", auth_b, &[], "b's").await;
    assert_eq!(r.status(), 201);
    let into_a = server.url("/dav/files/a%40example.org/stolen.txt");
    let top = server.url("/dav/files/b%40example.org/");
    for destination in [into_a.as_str(), top.as_str()] {
        for verb in ["COPY", "MOVE"] {
            let r =
                dav(&server, verb, "/dav/files/b@example.org/mine.txt", auth_b, &[("destination", destination)], "")
                    .await;
            assert!(r.status().is_client_error() || r.status() == 502, "{verb} → {destination}: {}", r.status());
        }
    }
    // Names that look like links or escapes are plain names in B's drive, or refused.
    for path in [
        "/dav/files/b@example.org/..%5Ca@example.org%5Csecret.txt",
        "/dav/files/b@example.org/link%20-%3E%20..%2F..%2Fa@example.org",
        "/dav/files/b@example.org/~a@example.org",
        "/dav/files/b@example.org/...",
    ] {
        let r = dav(&server, "PUT", path, auth_b, &[], "overwrite?").await;
        assert!(matches!(r.status().as_u16(), 201 | 400 | 403 | 404), "PUT {path}: {}", r.status());
    }
    let listing = dav(&server, "PROPFIND", "/dav/files/a@example.org/", auth_a, &[("depth", "1")], "").await;
    let listing = listing.text().await.expect("body");
    assert!(!listing.contains("stolen") && !listing.contains("mine.txt"), "{listing}");
    assert_eq!(listing.matches("<D:response>").count(), 2, "only the top and secret.txt: {listing}");
    // A's file is untouched and B's drive still has B's file only.
    let r = dav(&server, "GET", "/dav/files/a@example.org/secret.txt", auth_a, &[], "").await;
    assert_eq!(r.text().await.expect("body"), "a's secret");
}
both!(dav_authentication_and_tenancy);

async fn dav_organization_drives_follow_roles(backend: Backend) {
    let site = Site::new(backend).await.with("OPPIDUM_DRIVE__ORG_QUOTA", "4KiB");
    let (server, root) = two_users(&site).await;
    let admin = server.login("root@example.org", PASSWORD).await;
    let create = |name: &str| json!({"parent_id": root, "name": name, "kind": "team"});
    let team = json(server.post_json("/api/orgs", Some(&admin.access), create("Team")).await).await;
    let team = team["id"].as_str().expect("team").to_owned();
    let other = json(server.post_json("/api/orgs", Some(&admin.access), create("Other")).await).await;
    let other = other["id"].as_str().expect("other").to_owned();
    // c is a member of Team, g a guest of Team, o a member of Other. (Members of the root
    // organization, like a and b, hold their role in every organization below it.)
    for (email, org, role) in
        [("c@example.org", &team, "member"), ("g@example.org", &team, "guest"), ("o@example.org", &other, "member")]
    {
        let body = json!({"email": email, "name": email, "password": PASSWORD, "org_id": org, "role": role});
        assert_eq!(server.post_json("/api/users", Some(&admin.access), body).await.status(), 201);
    }
    let c = server.login("c@example.org", PASSWORD).await;
    let g = server.login("g@example.org", PASSWORD).await;
    let upload = |token: String, drive: String, name: &'static str| {
        let request = server
            .client
            .put(server.url(&format!("/api/drive/upload?drive={drive}&name={name}")))
            .bearer_auth(token)
            .body(name);
        async move { request.send().await.expect("request") }
    };
    // The member writes to the team drive, the guest may only read it.
    let r = upload(c.access.clone(), format!("org:{team}"), "plan.txt").await;
    assert_eq!(r.status(), 201);
    let r = upload(g.access.clone(), format!("org:{team}"), "guest.txt").await;
    assert_eq!(r.status(), 403);
    assert_eq!(json(r).await["code"], "read_only");
    let listing =
        json(server.get_as(&format!("/api/drive/files?drive=org:{team}"), &g.access).await).await["items"].clone();
    assert_eq!(listing[0]["name"], "plan.txt", "{listing}");
    // Another organization's drive does not exist for them, by API or WebDAV.
    for token in [&c.access, &g.access] {
        let r = server.get_as(&format!("/api/drive/files?drive=org:{other}"), token).await;
        assert_eq!(r.status(), 404);
    }
    // The organization's quota, not the member's, bounds its drive.
    let big = server
        .client
        .put(server.url(&format!("/api/drive/upload?drive=org:{team}&name=big.bin")))
        .bearer_auth(&c.access)
        .body(vec![0u8; 8 * 1024])
        .send()
        .await
        .expect("request");
    assert_eq!(big.status(), 507);
    assert_eq!(upload(c.access.clone(), "me".into(), "mine.bin").await.status(), 201);
    let r = upload(c.access.clone(), "org:not-a-uuid".into(), "x.txt").await;
    assert_eq!(json(r).await["code"], "unknown_drive");
    // Over WebDAV, with app passwords.
    let pc = app_password(&server, &c.access).await;
    let pg = app_password(&server, &g.access).await;
    let team_path = format!("/dav/orgs/{team}/plan.txt");
    let r = dav(&server, "GET", &team_path, ("g@example.org", &pg), &[], "").await;
    assert_eq!(r.text().await.expect("body"), "plan.txt");
    let r = dav(&server, "PUT", &format!("/dav/orgs/{team}/by-guest.txt"), ("g@example.org", &pg), &[], "x").await;
    assert_eq!(r.status(), 403);
    let r = dav(&server, "PUT", &format!("/dav/orgs/{team}/by-member.txt"), ("c@example.org", &pc), &[], "x").await;
    assert_eq!(r.status(), 201);
    let r =
        dav(&server, "PROPFIND", &format!("/dav/orgs/{other}/"), ("c@example.org", &pc), &[("depth", "1")], "").await;
    assert_eq!(r.status(), 404);
    // A node id of the team drive is not reachable for someone outside it, by any route.
    let o = server.login("o@example.org", PASSWORD).await;
    let plan = listing[0]["id"].as_str().expect("id");
    for path in [
        format!("/api/drive/files/{plan}"),
        format!("/api/drive/files/{plan}/content"),
        format!("/api/drive/files/{plan}/versions"),
        format!("/api/drive/files?parent={plan}"),
    ] {
        assert_eq!(server.get_as(&path, &o.access).await.status(), 404, "{path}");
    }
    for (verb, path, body) in [
        (Method::PATCH, format!("/api/drive/files/{plan}"), Some(json!({"name": "mine.txt"}))),
        (Method::DELETE, format!("/api/drive/files/{plan}"), None),
        (Method::POST, format!("/api/drive/files/{plan}/copy"), Some(json!({}))),
    ] {
        assert_eq!(server.send(verb.clone(), &path, Some(&o.access), body).await.status(), 404, "{verb} {path}");
    }
    // Copying into the team drive from outside is refused too.
    let own = upload(o.access.clone(), "me".into(), "own.txt").await;
    let own = json(own).await["id"].as_str().expect("id").to_owned();
    let r =
        server.post_json(&format!("/api/drive/files/{own}/copy?drive=org:{team}"), Some(&o.access), json!({})).await;
    assert_eq!(r.status(), 404);
    // A plain member of the root organization does not reach the team's drive below it: only
    // administrative permissions cover the subtree.
    let b = server.login("b@example.org", PASSWORD).await;
    assert_eq!(server.get_as(&format!("/api/drive/files/{plan}/content"), &b.access).await.status(), 404);
    // Nor over WebDAV, at either depth, while the team's guest lists it.
    let pb = app_password(&server, &b.access).await;
    for depth in ["0", "1"] {
        let path = format!("/dav/orgs/{team}/");
        assert_eq!(
            dav(&server, "PROPFIND", &path, ("b@example.org", &pb), &[("depth", depth)], "").await.status(),
            404
        );
    }
    let r =
        dav(&server, "PROPFIND", &format!("/dav/orgs/{team}/"), ("g@example.org", &pg), &[("depth", "1")], "").await;
    assert_eq!(r.status(), 207);
    assert!(r.text().await.expect("body").contains(&format!("<D:href>/dav/orgs/{team}/plan.txt</D:href>")));
}
both!(dav_organization_drives_follow_roles);

async fn dav_quota_and_properties(backend: Backend) {
    let site = Site::new(backend).await.with("OPPIDUM_DRIVE__USER_QUOTA", "64KiB");
    let (server, _) = two_users(&site).await;
    let a = server.login("a@example.org", PASSWORD).await;
    let pa = app_password(&server, &a.access).await;
    let auth = ("a@example.org", pa.as_str());
    let big = server
        .client
        .put(server.url("/dav/files/a@example.org/big.bin"))
        .basic_auth(auth.0, Some(auth.1))
        .body(vec![7u8; 100 * 1024])
        .send()
        .await
        .expect("request");
    assert_eq!(big.status(), 507);
    let r = dav(&server, "PROPFIND", "/dav/files/a@example.org/big.bin", auth, &[("depth", "0")], "").await;
    assert_eq!(r.status(), 404, "nothing was stored");
    let propfind = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:quota-available-bytes/><D:quota-used-bytes/></D:prop></D:propfind>"#;
    let r = dav(&server, "PROPFIND", "/dav/files/a@example.org/", auth, &[("depth", "0")], propfind).await;
    let text = r.text().await.expect("body");
    assert!(text.contains("quota-available-bytes>65536<"), "{text}");
    // Dead properties persist, move with the file and are copied with it.
    let r = dav(&server, "PUT", "/dav/files/a@example.org/note.txt", auth, &[], "hello").await;
    assert_eq!(r.status(), 201);
    let patch = r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x-test"><D:set><D:prop><Z:colour>teal</Z:colour></D:prop></D:set></D:propertyupdate>"#;
    let r = dav(&server, "PROPPATCH", "/dav/files/a@example.org/note.txt", auth, &[], patch).await;
    assert_eq!(r.status(), 207);
    let destination = server.url("/dav/files/a%40example.org/moved.txt");
    let r = dav(&server, "MOVE", "/dav/files/a@example.org/note.txt", auth, &[("destination", &destination)], "").await;
    assert_eq!(r.status(), 201);
    let copy = server.url("/dav/files/a%40example.org/copied.txt");
    let r = dav(&server, "COPY", "/dav/files/a@example.org/moved.txt", auth, &[("destination", &copy)], "").await;
    assert_eq!(r.status(), 201);
    let get = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><Z:colour xmlns:Z="urn:x-test"/></D:prop></D:propfind>"#;
    for name in ["moved.txt", "copied.txt"] {
        let r =
            dav(&server, "PROPFIND", &format!("/dav/files/a@example.org/{name}"), auth, &[("depth", "0")], get).await;
        let text = r.text().await.expect("body");
        assert!(text.contains(">teal<"), "{name}: {text}");
    }
    // Deleting goes to the trash, where the JSON API finds it.
    let r = dav(&server, "DELETE", "/dav/files/a@example.org/moved.txt", auth, &[], "").await;
    assert_eq!(r.status(), 204);
    let trash = json(server.get_as("/api/drive/trash", &a.access).await).await;
    assert_eq!(trash[0]["name"], "moved.txt", "{trash}");
}
both!(dav_quota_and_properties);

/// PROPFIND of depth 0 and 1 in each form (allprop, prop, propname), with dead properties, locks,
/// names needing escapes, bad bodies, and another user's drive.
async fn dav_listings_answer_every_kind_of_propfind(backend: Backend) {
    let site = Site::new(backend).await;
    let (server, _) = two_users(&site).await;
    let a = server.login("a@example.org", PASSWORD).await;
    let pa = app_password(&server, &a.access).await;
    let auth = ("a@example.org", pa.as_str());
    let base = "/dav/files/a@example.org/docs";
    assert_eq!(dav(&server, "MKCOL", base, auth, &[], "").await.status(), 201);
    assert_eq!(dav(&server, "MKCOL", &format!("{base}/sub"), auth, &[], "").await.status(), 201);
    for name in ["a%20b.txt", "%C3%A9%26.txt"] {
        assert_eq!(dav(&server, "PUT", &format!("{base}/{name}"), auth, &[], "hello").await.status(), 201);
    }
    let patch = r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x-test"><D:set><D:prop><Z:colour>teal &amp; blue</Z:colour></D:prop></D:set></D:propertyupdate>"#;
    assert_eq!(dav(&server, "PROPPATCH", &format!("{base}/a%20b.txt"), auth, &[], patch).await.status(), 207);
    let lock = r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>tester</D:owner></D:lockinfo>"#;
    let r = dav(&server, "LOCK", &format!("{base}/%C3%A9%26.txt"), auth, &[("timeout", "Second-600")], lock).await;
    assert_eq!(r.status(), 200);
    let token = r.headers()["lock-token"].to_str().expect("token").trim_matches(['<', '>']).to_owned();

    let r = dav(&server, "PROPFIND", base, auth, &[("depth", "1")], "").await;
    assert_eq!(r.status(), 207);
    assert_eq!(r.headers()["content-location"], "/dav/files/a%40example.org/docs/", "a collection's URL ends in /");
    let text = r.text().await.expect("body");
    assert_eq!(text.matches("<D:response>").count(), 4, "{text}");
    for href in ["docs/", "docs/sub/", "docs/a%20b.txt", "docs/%C3%A9%26.txt"] {
        assert!(text.contains(&format!("<D:href>/dav/files/a%40example.org/{href}</D:href>")), "{href}: {text}");
    }
    assert!(text.contains("<D:resourcetype><D:collection/></D:resourcetype>"), "{text}");
    assert!(text.contains("<D:getcontentlength>5</D:getcontentlength>"), "{text}");
    assert!(text.contains("<D:getcontenttype>text/plain</D:getcontenttype>"), "{text}");
    assert!(text.contains("<D:getetag>\""), "ETags are quoted: {text}");
    assert!(text.contains(">teal &amp; blue</"), "dead properties come with allprop: {text}");
    assert_eq!(text.matches("<D:activelock>").count(), 1, "one file is locked: {text}");
    assert!(text.contains(&format!("<D:locktoken><D:href>{token}</D:href></D:locktoken>")), "{text}");
    assert!(text.contains("<D:lockroot><D:href>/dav/files/a%40example.org/docs/%C3%A9%26.txt</D:href>"), "{text}");

    let ask = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:x-test"><D:prop><D:getetag/><Z:colour/><Z:missing/></D:prop></D:propfind>"#;
    let r = dav(&server, "PROPFIND", &format!("{base}/a%20b.txt"), auth, &[("depth", "0")], ask).await;
    let text = r.text().await.expect("body");
    assert_eq!(text.matches("<D:response>").count(), 1, "{text}");
    assert!(text.contains("teal &amp; blue"), "{text}");
    assert!(
        text.contains("<missing xmlns=\"urn:x-test\"/></D:prop><D:status>HTTP/1.1 404 Not Found</D:status>"),
        "{text}"
    );

    // A dead property in the DAV: namespace (displayname) is found when asked for by name.
    let title = r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>Notes</D:displayname></D:prop></D:set></D:propertyupdate>"#;
    assert_eq!(dav(&server, "PROPPATCH", &format!("{base}/a%20b.txt"), auth, &[], title).await.status(), 207);
    let ask = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:displayname/></D:prop></D:propfind>"#;
    let r = dav(&server, "PROPFIND", &format!("{base}/a%20b.txt"), auth, &[("depth", "0")], ask).await;
    let text = r.text().await.expect("body");
    assert!(text.contains(">Notes</") && !text.contains("404"), "{text}");

    let names = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>"#;
    let r = dav(&server, "PROPFIND", &format!("{base}/a%20b.txt"), auth, &[("depth", "0")], names).await;
    let text = r.text().await.expect("body");
    assert!(text.contains("<D:getetag/>") && text.contains("colour") && !text.contains("teal"), "{text}");

    for (body, status) in [("<D:propfind xmlns:D=\"DAV:\"><D:prop>", 400), ("<propfind/>", 400)] {
        let r = dav(&server, "PROPFIND", base, auth, &[("depth", "1")], body).await;
        assert_eq!(r.status(), status, "{body}");
    }
    let huge: &'static str = Box::leak(
        format!("<D:propfind xmlns:D=\"DAV:\"><D:prop>{}</D:prop></D:propfind>", "<D:getetag/>".repeat(8000))
            .into_boxed_str(),
    );
    assert_eq!(dav(&server, "PROPFIND", base, auth, &[("depth", "1")], huge).await.status(), 413);
    assert_eq!(dav(&server, "PROPFIND", &format!("{base}/nothing"), auth, &[("depth", "0")], "").await.status(), 404);

    // Another user sees no such drive, whatever the depth.
    let b = server.login("b@example.org", PASSWORD).await;
    let pb = app_password(&server, &b.access).await;
    for depth in ["0", "1"] {
        let r = dav(&server, "PROPFIND", base, ("b@example.org", pb.as_str()), &[("depth", depth)], "").await;
        assert_eq!(r.status(), 404);
    }
}
both!(dav_listings_answer_every_kind_of_propfind);

/// A lock taken through one node holds on another (PostgreSQL only: two processes, one database).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dav_locks_hold_across_nodes() {
    if oppidum_store::testing::postgres_admin_url("dav_locks_hold_across_nodes").is_none() {
        return;
    }
    let site = Site::new(Backend::Postgres).await;
    let (one, _) = two_users(&site).await;
    let two = site.start().await;
    let a = one.login("a@example.org", PASSWORD).await;
    let pa = app_password(&one, &a.access).await;
    let auth = ("a@example.org", pa.as_str());
    let r = dav(&one, "PUT", "/dav/files/a@example.org/shared.odt", auth, &[], "v1").await;
    assert_eq!(r.status(), 201);
    let lock = r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>node one</D:owner></D:lockinfo>"#;
    let r = dav(&one, "LOCK", "/dav/files/a@example.org/shared.odt", auth, &[("timeout", "Second-600")], lock).await;
    assert_eq!(r.status(), 200);
    let token = r.headers()["lock-token"].to_str().expect("token").trim_matches(['<', '>']).to_owned();
    // Without the token, node two refuses the write; with it, accepts.
    let r = dav(&two, "PUT", "/dav/files/a@example.org/shared.odt", auth, &[], "v2").await;
    assert_eq!(r.status(), 423);
    let r = dav(&two, "LOCK", "/dav/files/a@example.org/shared.odt", auth, &[], lock).await;
    assert_eq!(r.status(), 423, "a second exclusive lock is refused");
    let condition = format!("(<{token}>)");
    let r = dav(&two, "PUT", "/dav/files/a@example.org/shared.odt", auth, &[("if", &condition)], "v2").await;
    assert_eq!(r.status(), 204);
    let unlock = format!("<{token}>");
    let r = dav(&two, "UNLOCK", "/dav/files/a@example.org/shared.odt", auth, &[("lock-token", &unlock)], "").await;
    assert_eq!(r.status(), 204);
    let r = dav(&one, "PUT", "/dav/files/a@example.org/shared.odt", auth, &[], "v3").await;
    assert_eq!(r.status(), 204);
}

/// A PUT whose connection drops halfway leaves no file and no version.
async fn dav_interrupted_put_leaves_nothing(backend: Backend) {
    use base64::Engine;
    use tokio::io::AsyncWriteExt;
    let site = Site::new(backend).await;
    let (server, _) = two_users(&site).await;
    let a = server.login("a@example.org", PASSWORD).await;
    let password = app_password(&server, &a.access).await;
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("a@example.org:{password}"));
    let mut socket = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
    let head = format!(
        "PUT /dav/files/a%40example.org/half.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {credentials}\r\n\
         Content-Length: 4000000\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.expect("head");
    socket.write_all(&vec![7u8; 1_500_000]).await.expect("half the body");
    drop(socket);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let r = dav(
        &server,
        "PROPFIND",
        "/dav/files/a@example.org/half.bin",
        ("a@example.org", &password),
        &[("depth", "0")],
        "",
    )
    .await;
    assert_eq!(r.status(), 404);
    let usage = json(server.get_as("/api/drive/usage", &a.access).await).await;
    assert_eq!(usage["versions_bytes"], 0, "{usage}");
}
both!(dav_interrupted_put_leaves_nothing);
