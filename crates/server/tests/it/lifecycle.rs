//! Process lifecycle: graceful shutdown with a request in flight, migrations and the guard against
//! a database from a newer version.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::both;
use crate::harness::{Backend, Site};

async fn sigterm_finishes_in_flight_request(backend: Backend) {
    let site = Site::new(backend).await;
    let mut server = site.start().await;
    let body = br#"{"csp-report": {"document-uri": "https://x.example/"}}"#;
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
    let head = format!(
        "POST /api/csp-report HTTP/1.1\r\nHost: test\r\nContent-Type: application/csp-report\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(&body[..10]).await.expect("write part");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let signalled = Instant::now();
    server.terminate();
    // The request is still in flight: the server waits for the rest of the body.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(server.wait_exit(Duration::from_millis(1)).await.is_none(), "exited with a request in flight");
    stream.write_all(&body[10..]).await.expect("write rest");
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 204"), "in-flight request not completed: {response}");

    let status = server.wait_exit(Duration::from_secs(5)).await.expect("exits within 5 s");
    assert!(status.success(), "exit status {status}\n{}", server.log());
    assert!(signalled.elapsed() < Duration::from_secs(5));
    assert!(server.log().contains("received SIGTERM"));
}
both!(sigterm_finishes_in_flight_request);

async fn refuses_database_from_newer_version(backend: Backend) {
    let site = Site::new(backend).await;
    let out = site.cli(&["migrate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied: 1"));
    let again = site.cli(&["migrate"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("up to date"));

    // Pretend a newer oppidum migrated this database.
    let db = oppidum_store::Db::connect(&site.effective_database_url(), &Default::default()).await.expect("db");
    let future = match backend {
        Backend::Sqlite => {
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99990101000000, 'from the future', 1, x'00', 0)"
        }
        Backend::Postgres => {
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99990101000000, 'from the future', true, '\\x00', 0)"
        }
    };
    db.query(future).execute().await.expect("insert");
    db.close().await;

    let err = site.try_start().await.err().expect("refuses to start");
    assert!(err.contains("newer than this binary"), "{err}");
    let status = site.cli(&["migrate", "--status"]);
    assert!(!status.status.success());
}
both!(refuses_database_from_newer_version);

async fn migrate_on_start_can_be_disabled(backend: Backend) {
    let site = Site::new(backend).await.with("OPPIDUM_DATABASE__MIGRATE_ON_START", "false");
    let err = site.try_start().await.err().expect("refuses an unmigrated database");
    assert!(err.contains("oppidum migrate"), "{err}");
    assert!(site.cli(&["migrate"]).status.success());
    let server = site.start().await;
    assert_eq!(server.get("/readyz").await.status(), 200);
}
both!(migrate_on_start_can_be_disabled);

#[tokio::test]
async fn state_survives_restart() {
    let site = Site::new(Backend::Sqlite).await;
    let mut server = site.start().await;
    let secret = std::fs::read_to_string(site.data_dir().join("secrets/master.key")).expect("secret generated");
    server.terminate();
    assert!(server.wait_exit(Duration::from_secs(5)).await.expect("exits").success());
    let _server = site.start().await;
    let again = std::fs::read_to_string(site.data_dir().join("secrets/master.key")).expect("secret kept");
    assert_eq!(secret, again, "the generated secret changed on restart");
}

#[tokio::test]
async fn slow_request_times_out_with_json_error() {
    let site = Site::new(Backend::Sqlite).await.with("OPPIDUM_HTTP__REQUEST_TIMEOUT_SECS", "1");
    let server = site.start().await;
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
    // Promise a body and never send it.
    let head = "POST /api/csp-report HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\nX-Request-Id: slow-1\r\n\r\n{";
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut response = vec![0_u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut response)).await;
    let n = read.expect("answered within 5 s").expect("read");
    let response = String::from_utf8_lossy(&response[..n]);
    assert!(response.starts_with("HTTP/1.1 504"), "{response}");
    assert!(response.contains(r#""code":"request_timeout""#), "{response}");
    assert!(response.contains(r#""trace_id":"slow-1""#), "{response}");
}

/// A node started before its PostgreSQL (a cluster coming up) waits for it, logging each attempt,
/// instead of exiting: the database becomes reachable 6 s after the start (past the first
/// attempt's 5 s connection timeout), through a TCP relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_waits_for_a_database_that_comes_up_late() {
    if oppidum_store::testing::postgres_admin_url("start_waits_for_a_database_that_comes_up_late").is_none() {
        return;
    }
    let mut site = Site::new(Backend::Postgres).await;
    let real = site.database_url.clone().expect("postgres url");
    let (head, rest) = real.split_once('@').expect("user@host");
    let (authority, database) = rest.split_once('/').expect("host/db");
    let relay_port = crate::harness::free_port();
    site.database_url = Some(format!("{head}@127.0.0.1:{relay_port}/{database}"));
    let target = authority.to_owned();
    let relay = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(6)).await;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", relay_port)).await.expect("bind relay");
        loop {
            let (mut inbound, _) = listener.accept().await.expect("accept");
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let server = site.start().await;
    assert_eq!(server.get("/readyz").await.status(), 200);
    assert!(server.log().contains("does not answer yet; retrying"), "{}", server.log());
    relay.abort();
}
