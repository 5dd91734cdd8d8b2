//! Fuzzing the WebDAV front end: random methods, paths, headers (`If`, `Depth`, `Destination`,
//! `Timeout`, `Lock-Token`, `Content-Range`) and XML bodies go through the real handler over a
//! real drive (SQLite, in-memory blobs). No request may panic or fail with an internal error.

use std::sync::Arc;

use axum::body::Body;
use chrono::Utc;
use http::{Method, Request};
use oppidum_core::config::DriveConfig;
use oppidum_core::principal::LoginName;
use oppidum_core::time::SystemClock;
use oppidum_store::Db;
use oppidum_store::blob::ObjectBlobStore;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tower::ServiceExt;
use uuid::Uuid;

use crate::testing::{NoOrgs, principal};
use crate::{ContentStore, Drive};

const METHODS: [&str; 13] = [
    "PROPFIND",
    "PROPPATCH",
    "LOCK",
    "UNLOCK",
    "MKCOL",
    "PUT",
    "GET",
    "HEAD",
    "COPY",
    "MOVE",
    "DELETE",
    "OPTIONS",
    "POST",
];
const NAMES: [&str; 10] = ["a", "b.txt", "dir", "..", ".", "%2F", "%00", "caf%C3%A9", "x%20y", "really-long-name"];
const IF_PARTS: [&str; 14] = [
    "(",
    ")",
    "<",
    ">",
    "[",
    "]",
    "\"",
    "Not ",
    "urn:uuid:1",
    "DAV:no-lock",
    "\"etag\"",
    " ",
    "<http://x/dav/files/u/a>",
    "W/",
];
const XML_PARTS: [&str; 16] = [
    "<?xml version=\"1.0\"?>",
    "<D:propfind xmlns:D=\"DAV:\">",
    "<D:propertyupdate xmlns:D=\"DAV:\">",
    "<D:lockinfo xmlns:D=\"DAV:\">",
    "<D:set><D:prop>",
    "<D:remove><D:prop>",
    "<Z:foo xmlns:Z=\"urn:z\">bar</Z:foo>",
    "<D:allprop/>",
    "<D:prop><D:getetag/><D:quota-used-bytes/></D:prop>",
    "<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>",
    "<D:owner><D:href>me</D:href></D:owner>",
    "</D:prop></D:set>",
    "</D:propfind>",
    "<unclosed",
    "&bogus;",
    "<!DOCTYPE x [<!ENTITY e \"e\">]>",
];

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

fn path(rng: &mut StdRng, prefix: &str) -> String {
    let depth = rng.random_range(0..4);
    let mut out = prefix.to_owned();
    for _ in 0..depth {
        out.push('/');
        out.push_str(pick(rng, &NAMES));
    }
    if rng.random_bool(0.3) {
        out.push('/');
    }
    out
}

fn joined(rng: &mut StdRng, parts: &[&str], max: usize) -> String {
    (0..rng.random_range(0..max)).map(|_| pick(rng, parts)).collect()
}

#[tokio::test]
async fn dav_fuzzed_requests_never_crash_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db =
        Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()), &Default::default()).await.expect("db");
    db.migrate().await.expect("migrate");
    let content = ContentStore::new(db.clone(), Arc::new(ObjectBlobStore::memory()), Arc::new(SystemClock));
    let drive = Drive::new(db, content, DriveConfig::default(), Arc::new(NoOrgs));
    let user = Uuid::now_v7();
    let prefix = format!("/dav/files/{user}");
    let router = super::router(drive);
    let mut rng = StdRng::seed_from_u64(Utc::now().timestamp_micros().unsigned_abs());
    let send = |method: &str, uri: String, headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let mut request = Request::builder().method(Method::from_bytes(method.as_bytes()).expect("method")).uri(uri);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let mut request = request.body(Body::from(body)).expect("request");
        request.extensions_mut().insert(principal(user));
        request.extensions_mut().insert(LoginName("u@example.org".into()));
        router.clone().oneshot(request)
    };
    // Something to find: folders and files at the names the fuzzer uses.
    for name in ["a", "dir", "dir/b.txt", "a/b.txt"] {
        let method = if name.ends_with(".txt") { "PUT" } else { "MKCOL" };
        send(method, format!("{prefix}/{name}"), vec![], b"content".to_vec()).await.expect("seed");
    }
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for round in 0..4000 {
        let method = pick(&mut rng, &METHODS);
        let uri = path(&mut rng, &prefix);
        let mut headers = Vec::new();
        if rng.random_bool(0.25) {
            headers.push(("if", joined(&mut rng, &IF_PARTS, 12)));
        }
        if rng.random_bool(0.4) {
            headers.push(("depth", pick(&mut rng, &["0", "1", "infinity", "2", "", "-1"]).to_owned()));
        }
        if rng.random_bool(0.4) {
            let base = pick(&mut rng, &[&prefix, "/dav/files/other", "http://h/dav/files/x"]).to_owned();
            let destination = path(&mut rng, &base);
            headers.push(("destination", destination));
        }
        if rng.random_bool(0.3) {
            headers.push(("overwrite", pick(&mut rng, &["T", "F", "x"]).to_owned()));
        }
        if rng.random_bool(0.3) {
            headers.push((
                "timeout",
                pick(&mut rng, &["Second-10", "Infinite", "Second-", "Second-99999999999999"]).into(),
            ));
        }
        if rng.random_bool(0.2) {
            headers.push(("lock-token", joined(&mut rng, &IF_PARTS, 4)));
        }
        if rng.random_bool(0.2) {
            headers.push(("content-range", pick(&mut rng, &["bytes 0-1/2", "bytes 5-1/*", "bytes */10", "x"]).into()));
        }
        let body = match method {
            "PUT" => (0..rng.random_range(0..256)).map(|_| rng.random()).collect(),
            "PROPFIND" | "PROPPATCH" | "LOCK" if rng.random_bool(0.8) => joined(&mut rng, &XML_PARTS, 10).into_bytes(),
            _ if rng.random_bool(0.05) => joined(&mut rng, &XML_PARTS, 4).into_bytes(),
            _ => Vec::new(),
        };
        let description = format!("round {round}: {method} {uri} {headers:?} {}", String::from_utf8_lossy(&body));
        let outcome = tokio::spawn(send(method, uri, headers, body)).await;
        let response = match outcome {
            Ok(response) => response.expect("response"),
            Err(panic) => panic!("{description}: {panic}"),
        };
        // 501 (unsupported method), 502 (destination on another server) and 507 are answers;
        // 500 would be a bug.
        assert_ne!(response.status(), 500, "{description}");
        *statuses.entry(response.status().as_u16()).or_default() += 1;
        axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("the body streams to its end");
    }
    eprintln!("statuses: {statuses:?}");
    let succeeded: usize = statuses.range(200..300).map(|(_, n)| n).sum();
    assert!(succeeded > 200, "too few requests got through to the file system: {statuses:?}");
}
