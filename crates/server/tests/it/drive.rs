//! Drive over HTTP: upload, versions, ranges, conditional requests, names, tenancy.

use reqwest::Method;
use serde_json::json;

use crate::both;
use crate::harness::{Backend, Site, json};

const PASSWORD: &str = "correct horse battery staple";

/// Deterministic pseudo-random bytes (xorshift) for test files.
pub(crate) fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

async fn drive_files_round_trip_with_versions_and_tenancy(backend: Backend) {
    let site = Site::new(backend).await;
    site.create_admin("root@example.org", PASSWORD);
    let server = site.start().await;
    let admin = server.login("root@example.org", PASSWORD).await;
    let root =
        json(server.get_as("/api/auth/me", &admin.access).await).await["org"]["id"].as_str().expect("org").to_owned();
    for email in ["a@example.org", "b@example.org"] {
        let r = server
            .post_json(
                "/api/users",
                Some(&admin.access),
                json!({"email": email, "name": email, "password": PASSWORD, "org_id": root}),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let a = server.login("a@example.org", PASSWORD).await;
    let b = server.login("b@example.org", PASSWORD).await;

    let folder = server.post_json("/api/drive/folders", Some(&a.access), json!({"name": "Reports"})).await;
    assert_eq!(folder.status(), 201);
    let folder = json(folder).await["id"].as_str().expect("id").to_owned();
    for bad in ["..", "a/b", "x\\\\y"] {
        let r = server.post_json("/api/drive/folders", Some(&a.access), json!({"name": bad})).await;
        assert_eq!(json(r).await["code"], "invalid_name", "{bad}");
    }
    let dup = server.post_json("/api/drive/folders", Some(&a.access), json!({"name": "Reports"})).await;
    assert_eq!(json(dup).await["code"], "name_taken");
    // Uploads validate names the same way, before reading the body.
    for bad in ["..", "a%2Fb", "%00x"] {
        let r = server
            .client
            .put(server.url(&format!("/api/drive/upload?name={bad}")))
            .bearer_auth(&a.access)
            .body("x")
            .send()
            .await
            .expect("upload");
        assert_eq!(json(r).await["code"], "invalid_name", "{bad}");
    }
    let missing_parent = server
        .client
        .put(server.url(&format!("/api/drive/upload?parent={}&name=x", uuid::Uuid::now_v7())))
        .bearer_auth(&a.access)
        .body("x")
        .send()
        .await
        .expect("upload");
    assert_eq!(missing_parent.status(), 404);

    let v1 = content(2_500_000, 1);
    let up = server
        .client
        .put(server.url(&format!("/api/drive/upload?parent={folder}&name=q3.bin")))
        .bearer_auth(&a.access)
        .body(v1.clone())
        .send()
        .await
        .expect("upload");
    assert_eq!(up.status(), 201);
    let etag1 = up.headers()["etag"].to_str().expect("etag").to_owned();
    assert_eq!(etag1, format!("\"{}\"", &blake3::hash(&v1).to_hex()[..32]));
    let file = json(up).await["id"].as_str().expect("id").to_owned();

    let got = server.get_as(&format!("/api/drive/files/{file}/content"), &a.access).await;
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.expect("body").to_vec(), v1);
    let part = server
        .client
        .get(server.url(&format!("/api/drive/files/{file}/content")))
        .bearer_auth(&a.access)
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], format!("bytes 1000-1999/{}", v1.len()));
    assert_eq!(part.bytes().await.expect("body").to_vec(), v1[1000..2000].to_vec());
    let unsatisfiable = server
        .client
        .get(server.url(&format!("/api/drive/files/{file}/content")))
        .bearer_auth(&a.access)
        .header("range", "bytes=99999999-")
        .send()
        .await
        .expect("range");
    assert_eq!(unsatisfiable.status(), 416);
    let cached = server
        .client
        .get(server.url(&format!("/api/drive/files/{file}/content")))
        .bearer_auth(&a.access)
        .header("if-none-match", &etag1)
        .send()
        .await
        .expect("304");
    assert_eq!(cached.status(), 304);

    // A new version, guarded by If-Match.
    let mut v2 = v1.clone();
    v2[1_234_567] ^= 0xff;
    let stale = server
        .client
        .put(server.url(&format!("/api/drive/upload?parent={folder}&name=q3.bin")))
        .bearer_auth(&a.access)
        .header("if-match", "\"not-the-etag\"")
        .body(v2.clone())
        .send()
        .await
        .expect("upload");
    assert_eq!(stale.status(), 412);
    assert_eq!(json(stale).await["code"], "etag_mismatch");
    let up2 = server
        .client
        .put(server.url(&format!("/api/drive/upload?parent={folder}&name=q3.bin")))
        .bearer_auth(&a.access)
        .header("if-match", &etag1)
        .body(v2.clone())
        .send()
        .await
        .expect("upload");
    assert_eq!(up2.status(), 200);
    let versions = json(server.get_as(&format!("/api/drive/files/{file}/versions"), &a.access).await).await;
    let versions = versions.as_array().expect("versions");
    assert_eq!(versions.len(), 2);
    let first = versions[1]["id"].as_str().expect("id");
    let old = server.get_as(&format!("/api/drive/files/{file}/content?version={first}"), &a.access).await;
    assert_eq!(old.bytes().await.expect("body").to_vec(), v1, "old version intact");
    let now = server.get_as(&format!("/api/drive/files/{file}/content"), &a.access).await;
    assert_eq!(now.bytes().await.expect("body").to_vec(), v2);
    // Restoring the first version makes it current as a third version.
    let restored = server
        .send(Method::POST, &format!("/api/drive/files/{file}/versions/{first}/restore"), Some(&a.access), None)
        .await;
    assert_eq!(restored.status(), 200);
    assert_eq!(restored.headers()["etag"].to_str().expect("etag"), etag1);
    let now = server.get_as(&format!("/api/drive/files/{file}/content"), &a.access).await;
    assert_eq!(now.bytes().await.expect("body").to_vec(), v1);
    let versions = json(server.get_as(&format!("/api/drive/files/{file}/versions"), &a.access).await).await;
    assert_eq!(versions.as_array().expect("versions").len(), 3);
    let foreign = server
        .send(Method::POST, &format!("/api/drive/files/{file}/versions/{first}/restore"), Some(&b.access), None)
        .await;
    assert_eq!(foreign.status(), 404);

    // Another user sees none of it.
    for path in [
        format!("/api/drive/files/{file}"),
        format!("/api/drive/files/{file}/content"),
        format!("/api/drive/files/{file}/versions"),
        format!("/api/drive/files?parent={folder}"),
    ] {
        assert_eq!(server.get_as(&path, &b.access).await.status(), 404, "{path}");
    }
    let into_foreign = server
        .client
        .put(server.url(&format!("/api/drive/upload?parent={folder}&name=x")))
        .bearer_auth(&b.access)
        .body("x")
        .send()
        .await
        .expect("upload");
    assert_eq!(into_foreign.status(), 404);
    assert_eq!(
        server.send(Method::DELETE, &format!("/api/drive/files/{file}"), Some(&b.access), None).await.status(),
        404
    );
    assert!(
        json(server.get_as("/api/drive/files", &b.access).await).await["items"].as_array().expect("list").is_empty()
    );

    // Rename, then trash.
    let renamed = server
        .send(Method::PATCH, &format!("/api/drive/files/{file}"), Some(&a.access), Some(json!({"name": "Q3.bin"})))
        .await;
    assert_eq!(json(renamed).await["name"], "Q3.bin");
    let moved_into_self = server
        .send(Method::PATCH, &format!("/api/drive/files/{folder}"), Some(&a.access), Some(json!({"parent_id": folder})))
        .await;
    assert_eq!(json(moved_into_self).await["code"], "invalid_move");
    assert_eq!(
        server.send(Method::DELETE, &format!("/api/drive/files/{file}"), Some(&a.access), None).await.status(),
        204
    );
    assert_eq!(server.get_as(&format!("/api/drive/files/{file}"), &a.access).await.status(), 404);
}
both!(drive_files_round_trip_with_versions_and_tenancy);

async fn drive_trash_restore_purge_and_usage(backend: Backend) {
    let site = Site::new(backend).await;
    site.create_admin("root@example.org", PASSWORD);
    let server = site.start().await;
    let a = server.login("root@example.org", PASSWORD).await;
    let data = content(1_500_000, 9);
    let upload = |name: &'static str| {
        let req = server
            .client
            .put(server.url(&format!("/api/drive/upload?name={name}")))
            .bearer_auth(&a.access)
            .body(data.clone());
        async move { json(req.send().await.expect("upload")).await["id"].as_str().expect("id").to_owned() }
    };
    let one = upload("one.bin").await;
    let _two = upload("two.bin").await;
    // A copy costs no stored bytes, and survives the original's purge.
    let copy =
        server.post_json(&format!("/api/drive/files/{one}/copy"), Some(&a.access), json!({"name": "copy.bin"})).await;
    assert_eq!(copy.status(), 201);
    let copy = json(copy).await["id"].as_str().expect("id").to_owned();
    let dup =
        server.post_json(&format!("/api/drive/files/{one}/copy"), Some(&a.access), json!({"name": "copy.bin"})).await;
    assert_eq!(json(dup).await["code"], "name_taken");
    let usage = json(server.get_as("/api/drive/usage", &a.access).await).await;
    assert_eq!(usage["stored_bytes"], 1_500_000);
    assert_eq!(
        server.send(Method::DELETE, &format!("/api/drive/files/{copy}"), Some(&a.access), None).await.status(),
        204
    );
    assert_eq!(
        server.send(Method::DELETE, &format!("/api/drive/trash/{copy}"), Some(&a.access), None).await.status(),
        204
    );
    // Two identical files: logical bytes count both, stored bytes once.
    let usage = json(server.get_as("/api/drive/usage", &a.access).await).await;
    assert_eq!(usage["logical_bytes"], 3_000_000);
    assert_eq!(usage["stored_bytes"], 1_500_000);
    assert_eq!(usage["dedup_ratio"], 2.0);

    assert_eq!(
        server.send(Method::DELETE, &format!("/api/drive/files/{one}"), Some(&a.access), None).await.status(),
        204
    );
    let trash = json(server.get_as("/api/drive/trash", &a.access).await).await;
    assert_eq!(trash.as_array().expect("trash").len(), 1);
    let restored = server.send(Method::POST, &format!("/api/drive/trash/{one}/restore"), Some(&a.access), None).await;
    assert_eq!(restored.status(), 200);
    assert_eq!(
        server.get_as(&format!("/api/drive/files/{one}/content"), &a.access).await.bytes().await.expect("b").len(),
        1_500_000
    );
    assert_eq!(
        server.send(Method::DELETE, &format!("/api/drive/files/{one}"), Some(&a.access), None).await.status(),
        204
    );
    // Purge needs the node in the trash, and only in your own drive.
    let other = server
        .post_json("/api/users", Some(&a.access), json!({"email": "o@example.org", "name": "O", "password": PASSWORD, "org_id": json(server.get_as("/api/auth/me", &a.access).await).await["org"]["id"]}))
        .await;
    assert_eq!(other.status(), 201);
    let o = server.login("o@example.org", PASSWORD).await;
    assert_eq!(
        server.send(Method::DELETE, &format!("/api/drive/trash/{one}"), Some(&o.access), None).await.status(),
        404
    );
    assert_eq!(
        server.send(Method::POST, &format!("/api/drive/trash/{one}/restore"), Some(&o.access), None).await.status(),
        404
    );
    assert_eq!(
        server.send(Method::DELETE, &format!("/api/drive/trash/{one}"), Some(&a.access), None).await.status(),
        204
    );
    assert!(json(server.get_as("/api/drive/trash", &a.access).await).await.as_array().expect("trash").is_empty());
    let usage = json(server.get_as("/api/drive/usage", &a.access).await).await;
    assert_eq!(usage["logical_bytes"], 1_500_000);
    assert_eq!(usage["stored_bytes"], 1_500_000, "the other file still uses the chunks");
}
both!(drive_trash_restore_purge_and_usage);

async fn drive_quota_refuses_before_storing(backend: Backend) {
    let site = Site::new(backend).await.with("OPPIDUM_DRIVE__USER_QUOTA", "3MiB");
    site.create_admin("root@example.org", PASSWORD);
    let server = site.start().await;
    let a = server.login("root@example.org", PASSWORD).await;
    let put = |name: &str, len: usize, seed: u64| {
        server
            .client
            .put(server.url(&format!("/api/drive/upload?name={name}")))
            .bearer_auth(&a.access)
            .body(content(len, seed))
            .send()
    };
    assert_eq!(put("a.bin", 2_000_000, 1).await.expect("upload").status(), 201);
    let over = put("b.bin", 2_000_000, 2).await.expect("upload");
    assert_eq!(over.status(), 507);
    assert_eq!(json(over).await["code"], "quota_exceeded");
    // Nothing of the refused file was stored or listed.
    let usage = json(server.get_as("/api/drive/usage", &a.access).await).await;
    assert_eq!(usage["logical_bytes"], 2_000_000);
    assert_eq!(
        json(server.get_as("/api/drive/files", &a.access).await).await["items"].as_array().expect("list").len(),
        1
    );
    assert_eq!(put("c.bin", 500_000, 3).await.expect("upload").status(), 201);
}
both!(drive_quota_refuses_before_storing);

async fn drive_listings_sort_and_page(backend: Backend) {
    let site = Site::new(backend).await;
    site.create_admin("root@example.org", PASSWORD);
    let server = site.start().await;
    let admin = server.login("root@example.org", PASSWORD).await;
    for name in ["zeta", "alpha", "mid"] {
        let r = server.post_json("/api/drive/folders", Some(&admin.access), json!({"name": name})).await;
        assert_eq!(r.status(), 201);
    }
    for (i, name) in ["b.txt", "a.txt", "e.txt", "c.txt", "d.txt", "g.txt", "f.txt"].iter().enumerate() {
        let url = server.url(&format!("/api/drive/upload?name={name}"));
        let r = server.client.put(url).bearer_auth(&admin.access).body(vec![b'x'; 10 * (i + 1)]).send().await;
        assert_eq!(r.expect("upload").status(), 201);
    }
    let walk = |query: &'static str| {
        let server = &server;
        let token = admin.access.clone();
        async move {
            let mut names = Vec::new();
            let mut cursor: Option<String> = None;
            let mut pages = 0;
            loop {
                let mut path = format!("/api/drive/files?limit=4&{query}");
                if let Some(c) = &cursor {
                    path.push_str(&format!("&cursor={c}"));
                }
                let page = json(server.get_as(&path, &token).await).await;
                pages += 1;
                for item in page["items"].as_array().expect("items") {
                    names.push(item["name"].as_str().expect("name").to_owned());
                }
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
                assert!(pages < 10, "runaway paging");
            }
            (names, pages)
        }
    };
    let (names, pages) = walk("sort=name").await;
    assert_eq!(pages, 3);
    assert_eq!(names, ["alpha", "mid", "zeta", "a.txt", "b.txt", "c.txt", "d.txt", "e.txt", "f.txt", "g.txt"]);
    let (names, _) = walk("sort=name&order=desc").await;
    assert_eq!(names, ["zeta", "mid", "alpha", "g.txt", "f.txt", "e.txt", "d.txt", "c.txt", "b.txt", "a.txt"]);
    let (names, _) = walk("sort=size&order=desc").await;
    assert_eq!(&names[3..], ["f.txt", "g.txt", "d.txt", "c.txt", "e.txt", "a.txt", "b.txt"]);
    let (names, _) = walk("sort=updated").await;
    assert_eq!(&names[3..], ["b.txt", "a.txt", "e.txt", "c.txt", "d.txt", "g.txt", "f.txt"]);
    // Cursors are opaque and checked; a bad sort is a clear error.
    for bad in ["cursor=nope", "cursor=eyJyIjoxLCJ2IjoiJyBPUiAxPTEgLS0iLCJpIjoibm90LWEtdXVpZCJ9", "sort=colour"] {
        let r = server.get_as(&format!("/api/drive/files?{bad}"), &admin.access).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
}
both!(drive_listings_sort_and_page);

async fn drive_concurrent_uploads_are_capped(backend: Backend) {
    use futures::SinkExt;
    let site = Site::new(backend).await.with("OPPIDUM_DRIVE__MAX_CONCURRENT_UPLOADS", "1");
    site.create_admin("root@example.org", PASSWORD);
    let server = site.start().await;
    let admin = server.login("root@example.org", PASSWORD).await;
    // A slow upload holds the only slot while its body trickles in. (Whether the server has
    // started it when the second one arrives is up to timing: try again until it has.)
    let mut refused = None;
    for attempt in 0..20 {
        let (mut feed, body) = futures::channel::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
        let slow = server
            .client
            .put(server.url(&format!("/api/drive/upload?name=slow-{attempt}.bin")))
            .bearer_auth(&admin.access)
            .body(reqwest::Body::wrap_stream(body))
            .send();
        let slow = tokio::spawn(slow);
        feed.send(Ok(vec![1u8; 1000])).await.expect("feed");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let fast = server
            .client
            .put(server.url("/api/drive/upload?name=fast.bin"))
            .bearer_auth(&admin.access)
            .body("fast")
            .send()
            .await
            .expect("request");
        let status = fast.status();
        if status == 429 {
            refused = Some(fast);
        }
        // The slow upload finishes (or was the one refused); either way its slot is free again.
        drop(feed);
        let slow = slow.await.expect("join").expect("slow upload").status();
        if refused.is_some() {
            assert_eq!(slow, 201);
            break;
        }
    }
    let refused = refused.expect("a second upload is refused while the first runs");
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(json(refused).await["code"], "too_many_uploads");
    let r = server.client.put(server.url("/api/drive/upload?name=after.bin")).bearer_auth(&admin.access).body("ok");
    assert_eq!(r.send().await.expect("request").status().as_u16(), 201);
}
both!(drive_concurrent_uploads_are_capped);
