//! The HTTP contract every endpoint shares: health, readiness, metrics, version, OpenAPI, the error
//! format with `trace_id`, request ids, body limits and security headers.

use crate::both;
use crate::harness::{Backend, Site, json};

async fn system_endpoints_answer(backend: Backend) {
    let site = Site::new(backend).await;
    let server = site.start().await;

    let health = server.get("/healthz").await;
    assert_eq!(health.status(), 200);
    assert_eq!(json(health).await["status"], "ok");

    let ready = server.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let ready = json(ready).await;
    assert_eq!(ready["database"]["ok"], true);
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(ready["database"]["info"]["backend"], expected);
    assert_eq!(ready["blob_store"]["ok"], true);
    assert_eq!(ready["queue"]["ok"], true);

    let version = json(server.get("/api/version").await).await;
    assert_eq!(version["name"], "oppidum");
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));

    let metrics = server.get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.expect("text");
    assert!(text.contains(r#"oppidum_http_requests_total{method="GET",route="/healthz",status="200"}"#), "{text}");
    assert!(text.contains("oppidum_http_request_duration_seconds_bucket"), "latency histogram missing");
    assert!(text.contains("oppidum_build_info"), "build info missing");
    assert!(text.contains("oppidum_db_pool_connections"), "pool gauge missing");
    assert!(text.contains(r#"oppidum_jobs{status="queued"}"#), "queue depth missing");
}
both!(system_endpoints_answer);

async fn errors_use_the_documented_shape(backend: Backend) {
    let site = Site::new(backend).await;
    let server = site.start().await;

    let resp = server.client.get(server.url("/no/such/route")).header("x-request-id", "client-id-42").send().await;
    let resp = resp.expect("request");
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-request-id"], "client-id-42");
    let body = json(resp).await;
    assert_eq!(body["code"], "not_found");
    assert_eq!(body["trace_id"], "client-id-42");
    assert!(body["message"].as_str().expect("message").contains("/no/such/route"));

    let resp = server.client.delete(server.url("/healthz")).send().await.expect("request");
    assert_eq!(resp.status(), 405);
    let request_id = resp.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    assert!(request_id.starts_with("req_"));
    let body = json(resp).await;
    assert_eq!(body["code"], "method_not_allowed");
    assert_eq!(body["trace_id"], request_id);

    // An unsafe client request id is replaced, not echoed.
    let resp = server.client.get(server.url("/healthz")).header("x-request-id", "a b").send().await.expect("req");
    assert_ne!(resp.headers()["x-request-id"], "a b");
}
both!(errors_use_the_documented_shape);

async fn bad_bodies_get_clear_errors(backend: Backend) {
    let site = Site::new(backend).await.with("OPPIDUM_HTTP__BODY_LIMIT", "64KiB");
    let server = site.start().await;
    let url = server.url("/api/csp-report");

    let resp = server
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"csp-report": {"document-uri": 17}}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 400);
    let body = json(resp).await;
    assert_eq!(body["code"], "invalid_request_body");
    assert_eq!(body["details"]["field"], "csp-report.document-uri");
    assert!(body["trace_id"].as_str().expect("trace id").starts_with("req_"));

    let resp = server.client.post(&url).header("content-type", "application/json").body("{oops").send().await;
    let body = json(resp.expect("request")).await;
    assert_eq!(body["code"], "invalid_request_body");

    let big = format!(r#"{{"csp-report": {{"document-uri": "{}"}}}}"#, "x".repeat(100 * 1024));
    let resp = server.client.post(&url).header("content-type", "application/json").body(big).send().await;
    let resp = resp.expect("request");
    assert_eq!(resp.status(), 413);
    assert_eq!(json(resp).await["code"], "request_body_too_large");

    let resp = server.client.post(&url).header("content-type", "text/plain").body("{}").send().await;
    assert_eq!(resp.expect("request").status(), 415);

    let report = r#"{"csp-report": {"document-uri": "https://x.example/", "effective-directive": "script-src-elem", "blocked-uri": "inline"}}"#;
    let resp = server.client.post(&url).header("content-type", "application/csp-report").body(report).send().await;
    assert_eq!(resp.expect("request").status(), 204);
    let metrics = server.get("/metrics").await.text().await.expect("text");
    assert!(metrics.contains(r#"oppidum_csp_reports_total{directive="script-src-elem"} 1"#), "{metrics}");
}
both!(bad_bodies_get_clear_errors);

#[tokio::test]
async fn security_headers_and_cors_follow_config() {
    let site = Site::new(Backend::Sqlite).await.with("OPPIDUM_CORS__ALLOWED_ORIGINS", r#"["https://app.example.org"]"#);
    let server = site.start().await;
    let resp = server.client.get(server.url("/healthz")).header("origin", "https://app.example.org").send().await;
    let resp = resp.expect("request");
    let headers = resp.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(headers["content-security-policy"].to_str().expect("ascii").contains("default-src 'none'"));
    assert_eq!(headers["access-control-allow-origin"], "https://app.example.org");

    let resp = server.client.get(server.url("/healthz")).header("origin", "https://evil.example").send().await;
    assert!(resp.expect("request").headers().get("access-control-allow-origin").is_none());

    let resp = server.client.get(server.url("/api/openapi.json")).header("accept-encoding", "gzip").send().await;
    assert_eq!(resp.expect("request").headers().get("content-encoding").map(|v| v.as_bytes()), Some(&b"gzip"[..]));
}

#[tokio::test]
async fn openapi_covers_every_json_route() {
    let site = Site::new(Backend::Sqlite).await;
    let server = site.start().await;
    let doc = json(server.get("/api/openapi.json").await).await;
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");
    for expected in ["/healthz", "/readyz", "/metrics", "/api/version", "/api/openapi.json", "/api/csp-report"] {
        assert!(paths.contains_key(expected), "{expected} is not documented");
    }
    // Every documented GET route exists: no 405, and no 404 from the router (a handler may say
    // that `{token}` names nothing).
    for (path, item) in paths {
        if item.get("get").is_some() {
            let resp = server.get(path).await;
            let status = resp.status();
            assert!(status != 405, "{path} is documented but answers {status}");
            if status == 404 {
                let message = json(resp).await["message"].as_str().unwrap_or_default().to_owned();
                assert!(!message.starts_with("There is no"), "{path} is documented but has no route: {message}");
            }
        }
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

async fn readiness_names_the_failed_dependency(backend: Backend) {
    let site = Site::new(backend).await;
    let server = site.start().await;
    assert_eq!(server.get("/readyz").await.status(), 200);
    // Break the blob store under the running server: its directory becomes a file.
    let blobs = site.data_dir().join("blobs");
    std::fs::remove_dir_all(&blobs).expect("remove blobs");
    std::fs::write(&blobs, b"not a directory").expect("write");
    let resp = server.get("/readyz").await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    let body = json(resp).await;
    assert_eq!(body["code"], "not_ready");
    assert_eq!(body["details"]["failed"], serde_json::json!(["blob_store"]));
    assert_eq!(body["details"]["checks"]["database"]["ok"], true);
    assert!(body["details"]["checks"]["blob_store"]["error"].is_string());
    assert_eq!(server.get("/healthz").await.status(), 200, "liveness does not depend on the blob store");
}
both!(readiness_names_the_failed_dependency);

/// Runs against a real S3-compatible server when `OPPIDUM_TEST_S3_ENDPOINT` is set (CI starts one).
#[tokio::test]
async fn s3_blob_backend_serves() {
    let Ok(endpoint) = std::env::var("OPPIDUM_TEST_S3_ENDPOINT") else {
        eprintln!("SKIPPED s3_blob_backend_serves: set OPPIDUM_TEST_S3_ENDPOINT to run it");
        return;
    };
    let s3 = oppidum_store::testing::s3_config(&endpoint);
    let site = Site::new(Backend::Sqlite)
        .await
        .with("OPPIDUM_BLOB__BACKEND", "s3")
        .with("OPPIDUM_BLOB__S3__BUCKET", &s3.bucket)
        .with("OPPIDUM_BLOB__S3__ENDPOINT", &endpoint)
        .with("OPPIDUM_BLOB__S3__ALLOW_HTTP", "true")
        .with("OPPIDUM_BLOB__S3__PREFIX", s3.prefix.as_deref().unwrap_or("t"))
        .with("OPPIDUM_BLOB__S3__ACCESS_KEY_ID", "testing")
        .with("OPPIDUM_BLOB__S3__SECRET_ACCESS_KEY", "testing-secret");
    let server = site.start().await;
    let body = json(server.get("/readyz").await).await;
    assert_eq!(body["blob_store"]["ok"], true, "{body}");
    assert_eq!(body["blob_store"]["info"]["backend"], "s3");
}

/// Every streamed response (the audit export, drive downloads, WebDAV GET) completes whole with
/// and without gzip: the export's stream was once polled again after its end under compression,
/// which dropped the connection after the headers.
async fn streamed_routes_complete_with_and_without_gzip(backend: Backend) {
    use std::io::Read;
    let site = Site::new(backend).await;
    site.create_admin("root@example.org", "correct horse battery staple");
    let server = site.start().await;
    let admin = server.login("root@example.org", "correct horse battery staple").await;
    let text: String = (0..40_000).map(|i| format!("line {i}\n")).collect();
    let up = server
        .client
        .put(server.url("/api/drive/upload?name=notes.txt"))
        .bearer_auth(&admin.access)
        .body(text.clone())
        .send()
        .await
        .expect("upload");
    assert_eq!(up.status(), 201);
    let file = json(up).await["id"].as_str().expect("id").to_owned();
    let routes = [
        ("/api/audit/export".to_owned(), None),
        (format!("/api/drive/files/{file}/content"), Some(text.as_str())),
        ("/dav/files/root%40example.org/notes.txt".to_owned(), Some(text.as_str())),
    ];
    for (path, expected) in &routes {
        let mut plain = Vec::new();
        for gzip in [false, true] {
            let mut request = server.client.get(server.url(path)).bearer_auth(&admin.access);
            if gzip {
                request = request.header("accept-encoding", "gzip");
            }
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), 200, "{path} gzip={gzip}");
            let compressed = response.headers().get("content-encoding").is_some_and(|v| v == "gzip");
            let body = response.bytes().await.unwrap_or_else(|err| panic!("{path} gzip={gzip}: body cut: {err}"));
            let body = if compressed {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out).expect("a whole gzip stream");
                out
            } else {
                body.to_vec()
            };
            if let Some(expected) = expected {
                assert_eq!(body, expected.as_bytes(), "{path} gzip={gzip}");
            }
            if gzip {
                assert!(!body.is_empty() && body == plain, "{path}: the gzip body differs");
            } else {
                plain = body;
            }
        }
    }
    assert!(!server.log().contains("panicked"), "{}", server.log());
}
both!(streamed_routes_complete_with_and_without_gzip);
