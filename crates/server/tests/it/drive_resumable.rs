//! Resumable uploads: the tus protocol by hand (offsets, conflicts, limits, termination,
//! tenancy) and with a real tus client (the Python `tuspy` package) resuming an interrupted
//! upload.

use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both;
use crate::harness::{Backend, Site, TestServer, json};

const PASSWORD: &str = "correct horse battery staple";

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

async fn tus(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = server.client.request(method, server.url(path)).bearer_auth(token);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.body(body).send().await.expect("request")
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers().get(name).map(|v| v.to_str().expect("header").to_owned()).unwrap_or_default()
}

async fn drive_tus_uploads_resume_and_check_offsets(backend: Backend) {
    let site = Site::new(backend).await.with("OPPIDUM_DRIVE__USER_QUOTA", "8MiB");
    site.create_admin("root@example.org", PASSWORD);
    let server = site.start().await;
    let admin = server.login("root@example.org", PASSWORD).await;
    let me = json(server.get_as("/api/auth/me", &admin.access).await).await;
    let root = me["org"]["id"].as_str().expect("org").to_owned();
    let body = json!({"email": "b@x.org", "name": "b", "password": PASSWORD, "org_id": root, "role": "member"});
    assert_eq!(server.post_json("/api/users", Some(&admin.access), body).await.status(), 201);
    let b = server.login("b@x.org", PASSWORD).await;
    let token = admin.access.as_str();
    let v = ("tus-resumable", "1.0.0".to_owned());

    let options =
        server.client.request(Method::OPTIONS, server.url("/api/drive/uploads")).send().await.expect("options");
    assert_eq!(header(&options, "tus-version"), "1.0.0");
    assert!(header(&options, "tus-extension").contains("creation"));

    let data = content(3 * 1024 * 1024 + 17);
    let meta = format!("filename {},drive {}", b64("video.bin"), b64("me"));
    let length = ("upload-length", data.len().to_string());
    // The version header is required.
    let r = tus(&server, Method::POST, "/api/drive/uploads", token, std::slice::from_ref(&length), vec![]).await;
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    // Over the quota: refused before any byte.
    let huge = ("upload-length", (9u64 << 20).to_string());
    let r = tus(
        &server,
        Method::POST,
        "/api/drive/uploads",
        token,
        &[v.clone(), huge, ("upload-metadata", meta.clone())],
        vec![],
    )
    .await;
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    let bad_name = format!("filename {}", b64("../escape"));
    let r = tus(
        &server,
        Method::POST,
        "/api/drive/uploads",
        token,
        &[v.clone(), length.clone(), ("upload-metadata", bad_name)],
        vec![],
    )
    .await;
    assert_eq!(json(r).await["code"], "invalid_name");

    let r = tus(
        &server,
        Method::POST,
        "/api/drive/uploads",
        token,
        &[v.clone(), length.clone(), ("upload-metadata", meta.clone())],
        vec![],
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = header(&r, "location");
    assert!(location.starts_with("/api/drive/uploads/"), "{location}");
    assert!(!header(&r, "upload-expires").is_empty());

    let part = |offset: usize| {
        [
            v.clone(),
            ("upload-offset", offset.to_string()),
            ("content-type", "application/offset+octet-stream".to_owned()),
        ]
    };
    let half = data.len() / 2;
    // Wrong content type, wrong offset.
    let wrong_type = [v.clone(), ("upload-offset", "0".to_owned()), ("content-type", "text/plain".to_owned())];
    let r = tus(&server, Method::PATCH, &location, token, &wrong_type, data[..10].to_vec()).await;
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = tus(&server, Method::PATCH, &location, token, &part(5), data[5..10].to_vec()).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(json(r).await["code"], "offset_mismatch");
    // First half.
    let r = tus(&server, Method::PATCH, &location, token, &part(0), data[..half].to_vec()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "upload-offset"), half.to_string());
    let r = tus(&server, Method::HEAD, &location, token, std::slice::from_ref(&v), vec![]).await;
    assert_eq!(header(&r, "upload-offset"), half.to_string());
    assert_eq!(header(&r, "upload-length"), data.len().to_string());
    // Another user cannot see or feed it.
    assert_eq!(tus(&server, Method::HEAD, &location, &b.access, std::slice::from_ref(&v), vec![]).await.status(), 404);
    let r = tus(&server, Method::PATCH, &location, &b.access, &part(half), data[half..].to_vec()).await;
    assert_eq!(r.status(), 404);
    // More than announced: refused, nothing kept.
    let mut too_much = data[half..].to_vec();
    too_much.extend_from_slice(b"extra");
    let r = tus(&server, Method::PATCH, &location, token, &part(half), too_much).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = tus(&server, Method::HEAD, &location, token, std::slice::from_ref(&v), vec![]).await;
    assert_eq!(header(&r, "upload-offset"), half.to_string());
    // Nothing visible before the end.
    let files = json(server.get_as("/api/drive/files", token).await).await;
    assert_eq!(files["items"].as_array().map(Vec::len), Some(0), "{files}");
    // The rest completes the file.
    let r = tus(&server, Method::PATCH, &location, token, &part(half), data[half..].to_vec()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let id = header(&r, "oppidum-file-id");
    let stored = server.get_as(&format!("/api/drive/files/{id}/content"), token).await;
    assert_eq!(stored.bytes().await.expect("body").as_ref(), data.as_slice());
    assert_eq!(tus(&server, Method::HEAD, &location, token, std::slice::from_ref(&v), vec![]).await.status(), 404);

    // Termination.
    let r = tus(
        &server,
        Method::POST,
        "/api/drive/uploads",
        token,
        &[v.clone(), length, ("upload-metadata", meta)],
        vec![],
    )
    .await;
    let location = header(&r, "location");
    let r = tus(&server, Method::PATCH, &location, token, &part(0), data[..100].to_vec()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(tus(&server, Method::DELETE, &location, token, std::slice::from_ref(&v), vec![]).await.status(), 204);
    assert_eq!(tus(&server, Method::HEAD, &location, token, &[v], vec![]).await.status(), 404);
}
both!(drive_tus_uploads_resume_and_check_offsets);

/// tuspy (`pip install tuspy`), a tus client: uploads part of a file, stops, and a new client
/// resumes from the offset the server reports.
const TUSPY: &str = r#"
import os, sys
from tusclient import client
url, token, path = sys.argv[1], sys.argv[2], sys.argv[3]
tus = client.TusClient(url + "/api/drive/uploads", headers={"Authorization": "Bearer " + token})
first = tus.uploader(path, chunk_size=256 * 1024, metadata={"filename": "resumed.bin"})
first.upload_chunk()
first.upload_chunk()
# A new process would only know the upload's URL.
second = tus.uploader(path, chunk_size=256 * 1024, url=first.url)
assert second.offset == 512 * 1024, second.offset
second.upload()
print(first.url)
"#;

async fn drive_tus_client_resumes_an_interrupted_upload(backend: Backend) {
    let available = Command::new("python3").args(["-c", "import tusclient"]).status().is_ok_and(|s| s.success());
    if !available {
        assert!(std::env::var("OPPIDUM_TEST_REQUIRE_TUS").as_deref() != Ok("1"), "tuspy is required");
        eprintln!("SKIPPED drive_tus_client_resumes_an_interrupted_upload: pip install tuspy");
        return;
    }
    let site = Site::new(backend).await;
    site.create_admin("root@example.org", PASSWORD);
    let server = site.start().await;
    let admin = server.login("root@example.org", PASSWORD).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("source.bin");
    let data = content(2 * 1024 * 1024 + 999);
    std::fs::write(&path, &data).expect("write");
    let base = server.url("");
    let (token, file) = (admin.access.clone(), path.display().to_string());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3").args(["-c", TUSPY, base.trim_end_matches('/'), &token, &file]).output().expect("python")
    })
    .await
    .expect("tuspy");
    assert!(output.status.success(), "tuspy: {}\n{}", String::from_utf8_lossy(&output.stderr), server.log());
    let files = json(server.get_as("/api/drive/files", &admin.access).await).await;
    let id = files["items"][0]["id"].as_str().expect("uploaded").to_owned();
    assert_eq!(files["items"][0]["name"], "resumed.bin");
    let stored = server.get_as(&format!("/api/drive/files/{id}/content"), &admin.access).await;
    assert_eq!(stored.bytes().await.expect("body").as_ref(), data.as_slice());
}
both!(drive_tus_client_resumes_an_interrupted_upload);
