//! Virus scanning against a real ClamAV daemon (`clamd`, Debian package `clamav-daemon`). The
//! daemon runs with a one-line signature database matching the EICAR test file (the official
//! databases need a download). CI requires it (`OPPIDUM_TEST_REQUIRE_CLAMD=1`); elsewhere the
//! test is skipped with a message when clamd is not installed.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::both;
use crate::harness::{Backend, Site, TestServer, json};

const PASSWORD: &str = "correct horse battery staple";
/// The EICAR anti-virus test file: harmless, detected by every scanner.
const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// A clamd process on a free loopback port, stopped when dropped.
struct Clamd {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Clamd {
    fn available(test: &str) -> bool {
        let ok = Command::new("clamd").arg("--version").output().is_ok_and(|o| o.status.success());
        if !ok {
            let required = std::env::var("OPPIDUM_TEST_REQUIRE_CLAMD").as_deref() == Ok("1");
            assert!(!required, "{test}: clamd is required (apt-get install clamav-daemon)");
            eprintln!("SKIPPED {test}: clamd is not installed");
        }
        ok
    }

    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("db");
        std::fs::create_dir(&db).expect("db dir");
        let md5 = format!("{:x}", md5_of(EICAR.as_bytes()));
        std::fs::write(db.join("oppidum-test.hdb"), format!("{md5}:{}:Oppidum-Test-EICAR\n", EICAR.len()))
            .expect("signature");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let config = dir.path().join("clamd.conf");
        // As root, clamd would switch to its own user, who cannot read this directory.
        let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").expect("proc")) == 0;
        let user = if root { "User root\n" } else { "" };
        std::fs::write(
            &config,
            format!(
                "Foreground yes\nDatabaseDirectory {}\nTCPSocket {port}\nTCPAddr 127.0.0.1\nLogFile {}\n{user}",
                db.display(),
                dir.path().join("clamd.log").display()
            ),
        )
        .expect("config");
        let child = Command::new("clamd")
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clamd");
        let clamd = Self { child, port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !clamd.pong().await {
            assert!(Instant::now() < deadline, "clamd did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        clamd
    }

    async fn pong(&self) -> bool {
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else { return false };
        if stream.write_all(b"zPING\0").await.is_err() {
            return false;
        }
        let mut reply = [0u8; 8];
        matches!(stream.read(&mut reply).await, Ok(n) if reply[..n].starts_with(b"PONG"))
    }

    fn address(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// MD5, for clamd's hash signature format only.
fn md5_of(data: &[u8]) -> u128 {
    let output = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(data)?;
            child.wait_with_output()
        })
        .expect("md5sum");
    let hex = String::from_utf8_lossy(&output.stdout);
    u128::from_str_radix(hex.split_whitespace().next().expect("hash"), 16).expect("hex")
}

async fn upload(server: &TestServer, token: &str, name: &str, body: &'static str) -> reqwest::Response {
    let url = server.url(&format!("/api/drive/upload?name={name}"));
    server.client.put(url).bearer_auth(token).body(body).send().await.expect("request")
}

async fn drive_antivirus_refuses_infected_uploads(backend: Backend) {
    if !Clamd::available("drive_antivirus_refuses_infected_uploads") {
        return;
    }
    let mut clamd = Clamd::start().await;
    let site = Site::new(backend).await.with("OPPIDUM_DRIVE__ANTIVIRUS__ADDRESS", &clamd.address());
    site.create_admin("root@example.org", PASSWORD);
    let mut server = site.start().await;
    let admin = server.login("root@example.org", PASSWORD).await;

    // EICAR is refused with 422 and nothing is stored; clean files pass.
    let r = upload(&server, &admin.access, "eicar.com", EICAR).await;
    assert_eq!(r.status(), 422);
    assert_eq!(json(r).await["code"], "virus_detected");
    let r = upload(&server, &admin.access, "clean.txt", "nothing to see").await;
    assert_eq!(r.status(), 201);
    let listing = json(server.get_as("/api/drive/files", &admin.access).await).await["items"].clone();
    assert_eq!(listing.as_array().map(Vec::len), Some(1), "{listing}");
    let usage = json(server.get_as("/api/drive/usage", &admin.access).await).await;
    assert_eq!(usage["versions_bytes"], 14, "{usage}");
    // A new version that is infected does not replace the clean one.
    let r = upload(&server, &admin.access, "clean.txt", EICAR).await;
    assert_eq!(r.status(), 422);
    let id = listing[0]["id"].as_str().expect("id");
    let content = server.get_as(&format!("/api/drive/files/{id}/content"), &admin.access).await;
    assert_eq!(content.text().await.expect("body"), "nothing to see");
    // WebDAV uploads are scanned too.
    let r =
        server.post_json("/api/auth/app-passwords", Some(&admin.access), json!({"name": "d", "scopes": ["dav"]})).await;
    let app = json(r).await["password"].as_str().expect("password").to_owned();
    let put = server
        .client
        .request(Method::PUT, server.url("/dav/files/root%40example.org/eicar.txt"))
        .basic_auth("root@example.org", Some(&app))
        .body(EICAR)
        .send()
        .await
        .expect("request");
    assert_eq!(put.status(), 403);
    let listing = json(server.get_as("/api/drive/files", &admin.access).await).await["items"].clone();
    assert_eq!(listing.as_array().map(Vec::len), Some(1), "{listing}");

    // clamd down: required (the default) refuses; not required accepts, with a warning.
    clamd.stop();
    let r = upload(&server, &admin.access, "later.txt", "fine").await;
    assert_eq!(r.status(), 503);
    assert_eq!(json(r).await["code"], "antivirus_unavailable");
    server.terminate();
    server.wait_exit(Duration::from_secs(15)).await.expect("stopped");
    let degraded = site.with("OPPIDUM_DRIVE__ANTIVIRUS__REQUIRED", "false");
    let server = degraded.start().await;
    let admin = server.login("root@example.org", PASSWORD).await;
    let r = upload(&server, &admin.access, "later.txt", "fine").await;
    assert_eq!(r.status(), 201);
    assert!(server.log().contains("without a virus scan"), "{}", server.log());
}
both!(drive_antivirus_refuses_infected_uploads);
