//! HTTP benchmark: starts the real `oppidum` binary on SQLite in a temporary directory and prints
//! cold-start time, idle memory, and requests/s with p50/p99 latency for `GET /healthz` and
//! `GET /api/version` under a bounded concurrent load (keep-alive HTTP/1.1 clients on loopback).
//! Figures only: nothing here fails on timing.
//!
//! Knobs (environment): `BENCH_CONNECTIONS` (64), `BENCH_REQUESTS` (200000 per endpoint),
//! `BENCH_SECONDS` (10 per endpoint, whichever comes first), `BENCH_COLD_STARTS` (5).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(18080)
}

struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a server in a fresh directory; returns it and the time until `/healthz` answered.
async fn start() -> (Server, Duration) {
    start_with(&[]).await
}

async fn start_with(env: &[(&str, &str)]) -> (Server, Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_oppidum"))
        .arg("serve")
        .current_dir(dir.path())
        .env("OPPIDUM_HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .env("OPPIDUM_LOG__LEVEL", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn oppidum");
    let server = Server { child, port, _dir: dir };
    loop {
        if let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)).await
            && get(&mut conn, "/healthz").await.is_some()
        {
            return (server, started.elapsed());
        }
        assert!(started.elapsed() < Duration::from_secs(30), "server did not start");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// One keep-alive GET; returns the status code.
async fn get(conn: &mut TcpStream, path: &str) -> Option<u16> {
    request(conn, "GET", path, "", "").await.map(|(status, _)| status)
}

/// One keep-alive request with extra header lines and a JSON body; returns status and body.
async fn request(conn: &mut TcpStream, method: &str, path: &str, headers: &str, body: &str) -> Option<(u16, Vec<u8>)> {
    let request = if body.is_empty() {
        format!("{method} {path} HTTP/1.1\r\nHost: bench\r\n{headers}\r\n")
    } else {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: bench\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    conn.write_all(request.as_bytes()).await.ok()?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0_u8; 4096];
    loop {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status = head.get(9..12)?.parse().ok()?;
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = conn.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some((status, buf[end + 4..end + 4 + length].to_vec()));
        }
    }
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[index]) / 1_000.0
}

async fn load(port: u16, path: &'static str, headers: &str, connections: u64, requests: u64, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let per_connection = requests / connections;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let headers = headers.to_owned();
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(per_connection as usize);
            let mut errors = 0_u64;
            let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)).await else { return (latencies, 1) };
            let _ = conn.set_nodelay(true);
            for _ in 0..per_connection {
                if Instant::now() > deadline {
                    break;
                }
                let sent = Instant::now();
                match request(&mut conn, "GET", path, &headers, "").await.map(|(s, _)| s) {
                    Some(200) => latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX)),
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        });
    }
    let mut all = Vec::new();
    let mut errors = 0;
    while let Some(Ok((latencies, failed))) = tasks.join_next().await {
        all.extend(latencies);
        errors += failed;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    println!(
        "GET {path:<14} {:>9.0} req/s   p50 {:>6.3} ms   p99 {:>6.3} ms   ({} requests, {errors} errors, {connections} connections, {elapsed:.1} s)",
        all.len() as f64 / elapsed,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        all.len(),
    );
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let connections = env_or("BENCH_CONNECTIONS", 64).max(1);
    let requests = env_or("BENCH_REQUESTS", 200_000);
    let seconds = env_or("BENCH_SECONDS", 10);
    let cold_starts = env_or("BENCH_COLD_STARTS", 5).max(1);

    println!("oppidum HTTP benchmark (SQLite, local disk, loopback; client and server share the machine)");
    let mut starts = Vec::new();
    for _ in 0..cold_starts {
        let (server, took) = start().await;
        starts.push(took);
        drop(server);
    }
    starts.sort();
    println!(
        "cold start (fresh data directory, migrations included): median {:.0} ms, max {:.0} ms over {cold_starts} runs",
        starts[starts.len() / 2].as_secs_f64() * 1_000.0,
        starts[starts.len() - 1].as_secs_f64() * 1_000.0
    );

    let (server, _) = start().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = server.child.id();
    println!("idle RSS: {:.1} MiB", rss_kib(pid, "VmRSS:") as f64 / 1024.0);
    for path in ["/healthz", "/api/version"] {
        load(server.port, path, "", connections, requests, seconds).await;
    }
    println!("peak RSS under load: {:.1} MiB", rss_kib(pid, "VmHWM:") as f64 / 1024.0);
    drop(server);
    identity(connections, requests, seconds).await;
    drive(env_or("BENCH_UPLOAD_MIB", 1024)).await;
}

/// Streams a large upload and download through the drive, reporting throughput and how much the
/// server's memory grew (it must not grow with the file size).
async fn drive(mib: u64) {
    let (server, _) = start_with(&[("OPPIDUM_IDENTITY__MFA_ENFORCEMENT", "false")]).await;
    create_admin(&server, "drive@example.org");
    let mut conn = TcpStream::connect(("127.0.0.1", server.port)).await.expect("connect");
    let login = format!(r#"{{"email":"drive@example.org","password":"{PASSWORD}"}}"#);
    let (_, body) = request(&mut conn, "POST", "/api/auth/login", "", &login).await.expect("login");
    let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let token = body["access_token"].as_str().expect("token").to_owned();
    let pid = server.child.id();
    let before = rss_kib(pid, "VmRSS:");

    let total = mib * 1024 * 1024;
    let mut upload = TcpStream::connect(("127.0.0.1", server.port)).await.expect("connect");
    let head = format!(
        "PUT /api/drive/upload?name=big.bin HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {total}\r\n\r\n"
    );
    upload.write_all(head.as_bytes()).await.expect("head");
    let started = Instant::now();
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let mut buf = vec![0_u8; 1024 * 1024];
    for _ in 0..mib {
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x >> 24) as u8;
        }
        upload.write_all(&buf).await.expect("body");
    }
    let mut response = vec![0_u8; 64 * 1024];
    let n = upload.read(&mut response).await.unwrap_or(0);
    let up_secs = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&response[..n]).to_string();
    let id = text.split("\"id\":\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or_default().to_owned();
    let peak_up = rss_kib(pid, "VmHWM:");

    let mut download = TcpStream::connect(("127.0.0.1", server.port)).await.expect("connect");
    let head =
        format!("GET /api/drive/files/{id}/content HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\r\n");
    download.write_all(head.as_bytes()).await.expect("head");
    let started = Instant::now();
    let mut received = 0_u64;
    let mut chunk = vec![0_u8; 1024 * 1024];
    while received < total {
        match download.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => received += n as u64,
        }
    }
    let down_secs = started.elapsed().as_secs_f64();
    let peak = rss_kib(pid, "VmHWM:");
    println!(
        "drive upload {mib} MiB: {:.0} MiB/s; download: {:.0} MiB/s ({} bytes); RSS {:.1} MiB before, peak {:.1} MiB after upload, {:.1} MiB after download",
        mib as f64 / up_secs,
        mib as f64 / down_secs,
        received,
        before as f64 / 1024.0,
        peak_up as f64 / 1024.0,
        peak as f64 / 1024.0,
    );
}

const PASSWORD: &str = "bench password 123";

/// Creates an instance administrator in the server's data directory with the CLI.
fn create_admin(server: &Server, email: &str) {
    let mut create = Command::new(env!("CARGO_BIN_EXE_oppidum"))
        .args(["admin", "create-user", "--email", email, "--instance-admin", "--password-stdin"])
        .current_dir(server._dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("create user");
    {
        use std::io::Write;
        let mut stdin = create.stdin.take().expect("stdin");
        let _ = writeln!(stdin, "{PASSWORD}");
    }
    let _ = create.wait();
}

/// Authenticated requests and logins (Argon2id), rate limits off.
async fn identity(connections: u64, requests: u64, seconds: u64) {
    let (server, _) = start_with(&[
        ("OPPIDUM_IDENTITY__RATE_LIMITS__LOGIN_PER_ACCOUNT", "0"),
        ("OPPIDUM_IDENTITY__RATE_LIMITS__LOGIN_PER_IP", "0"),
        ("OPPIDUM_IDENTITY__MFA_ENFORCEMENT", "false"),
    ])
    .await;
    create_admin(&server, "bench@example.org");
    let login_body = format!(r#"{{"email":"bench@example.org","password":"{PASSWORD}"}}"#);
    let mut conn = TcpStream::connect(("127.0.0.1", server.port)).await.expect("connect");
    let (_, body) = request(&mut conn, "POST", "/api/auth/login", "", &login_body).await.expect("login");
    let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let token = body["access_token"].as_str().expect("token").to_owned();
    let auth = format!("Authorization: Bearer {token}\r\n");
    load(server.port, "/api/auth/me", &auth, connections, requests, seconds).await;

    // Logins per second: Argon2id (19 MiB, t=2) on the blocking pool, 8 concurrent clients.
    let logins = 200_u64.min(requests);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let body = login_body.clone();
        let port = server.port;
        tasks.spawn(async move {
            let mut ok = 0_u64;
            let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)).await else { return 0 };
            for _ in 0..logins / 8 {
                if let Some((200, _)) = request(&mut conn, "POST", "/api/auth/login", "", &body).await {
                    ok += 1;
                }
            }
            ok
        });
    }
    let mut ok = 0;
    while let Some(Ok(n)) = tasks.join_next().await {
        ok += n;
    }
    println!(
        "POST /api/auth/login   {:>9.1} logins/s ({ok} logins, 8 clients)",
        ok as f64 / started.elapsed().as_secs_f64()
    );

    // /api/auth/me latency on one connection, idle and during a login storm.
    let idle = sample(server.port, &auth, 2_000).await;
    let storm_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut storm = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let body = login_body.clone();
        let port = server.port;
        let stop = storm_stop.clone();
        storm.spawn(async move {
            let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)).await else { return };
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                let _ = request(&mut conn, "POST", "/api/auth/login", "", &body).await;
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let busy = sample(server.port, &auth, 2_000).await;
    storm_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    while storm.join_next().await.is_some() {}
    println!(
        "GET /api/auth/me p99: idle {:.3} ms, during a login storm (8 clients) {:.3} ms ({:.2}x)",
        idle,
        busy,
        busy / idle.max(0.001)
    );
}

/// p99 latency in ms of `count` sequential authenticated requests on one connection.
async fn sample(port: u16, auth: &str, count: usize) -> f64 {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        let sent = Instant::now();
        if let Some((200, _)) = request(&mut conn, "GET", "/api/auth/me", auth, "").await {
            latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
        }
    }
    latencies.sort_unstable();
    percentile(&latencies, 0.99)
}
