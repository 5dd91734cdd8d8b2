//! The shared test server: one builder, the database picked per test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The database engine a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs an `async fn(Backend)` test once per database engine.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::harness::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if oppidum_store::testing::postgres_admin_url(stringify!($name)).is_some() {
                    super::$name($crate::harness::Backend::Postgres).await;
                }
            }
        }
    };
}

/// Where a test server keeps its state; survives restarts of the process.
#[derive(Debug)]
pub struct Site {
    pub dir: tempfile::TempDir,
    /// `None` for the default SQLite file in the data directory.
    pub database_url: Option<String>,
    pub env: Vec<(String, String)>,
}

impl Site {
    /// A fresh site: empty directory and, on PostgreSQL, an empty database.
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let database_url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let admin = oppidum_store::testing::postgres_admin_url("site").expect("postgres configured");
                Some(oppidum_store::testing::create_postgres_database(&admin).await)
            }
        };
        // Second factors are tested on their own; elsewhere administrators sign in with a password.
        let env = vec![("OPPIDUM_IDENTITY__MFA_ENFORCEMENT".to_owned(), "false".to_owned())];
        Self { dir, database_url, env }
    }

    /// Adds an `OPPIDUM_…` setting for every process of this site.
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The database URL the server uses.
    pub fn effective_database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir().join("oppidum.db").display()))
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_oppidum"));
        cmd.args(args).current_dir(self.dir.path()).env_remove("OPPIDUM_CONFIG");
        cmd.env("OPPIDUM_DATA_DIR", self.data_dir());
        if let Some(url) = &self.database_url {
            cmd.env("OPPIDUM_DATABASE__URL", url);
        }
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        cmd
    }

    /// Runs a CLI command of the binary against this site.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run oppidum")
    }

    /// Runs a CLI command with `input` on standard input.
    pub fn cli_with_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run oppidum");
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
        child.wait_with_output().expect("wait")
    }

    /// Creates an instance administrator with the CLI; returns the user id.
    pub fn create_admin(&self, email: &str, password: &str) -> String {
        let out = self.cli_with_stdin(
            &["admin", "create-user", "--email", email, "--instance-admin", "--password-stdin"],
            &format!("{password}\n"),
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Starts a server process; panics with its log if it does not become healthy.
    pub async fn start(&self) -> TestServer {
        self.try_start().await.unwrap_or_else(|log| panic!("server did not start:\n{log}"))
    }

    /// Starts a server process; `Err` holds its log when it exits or never answers.
    pub async fn try_start(&self) -> Result<TestServer, String> {
        let port = free_port();
        let log_path = self.dir.path().join(format!("server-{port}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut cmd = self.command(&["serve"]);
        cmd.env("OPPIDUM_HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .env("OPPIDUM_LOG__FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        let child = cmd.spawn().expect("spawn oppidum");
        // reqwest needs a TLS crypto provider installed, even for plain HTTP.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut server = TestServer {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            log_path,
            client: reqwest::Client::builder().no_proxy().build().expect("client"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = server.try_exit_status() {
                return Err(format!("exited with {status}\n{}", server.log()));
            }
            if let Ok(resp) = server.client.get(server.url("/healthz")).send().await
                && resp.status().is_success()
            {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(server.log());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// A running `oppidum serve`; killed when dropped.
pub struct TestServer {
    child: Option<Child>,
    pub base: String,
    pub log_path: PathBuf,
    pub client: reqwest::Client,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or_default()
    }

    pub fn log(&self) -> String {
        read_to_string(&self.log_path)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().expect("kill");
        assert!(status.success());
    }

    /// Kills the process at once (SIGKILL), like a crash.
    pub fn kill_hard(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits for the process to exit, up to `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.try_exit_status() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill_hard();
    }
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn read_to_string(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Parses a JSON body.
pub async fn json(resp: reqwest::Response) -> serde_json::Value {
    resp.json().await.expect("json body")
}

/// Polls `check` until it returns `Some`, up to `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A signed-in client.
#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    pub refresh: String,
    pub user_id: String,
}

impl TestServer {
    /// Signs in; panics unless it succeeds.
    pub async fn login(&self, email: &str, password: &str) -> Session {
        let resp =
            self.post_json("/api/auth/login", None, serde_json::json!({"email": email, "password": password})).await;
        assert_eq!(resp.status(), 200, "login failed");
        let body = json(resp).await;
        Session {
            access: body["access_token"].as_str().expect("access").to_owned(),
            refresh: body["refresh_token"].as_str().expect("refresh").to_owned(),
            user_id: body["user"]["id"].as_str().expect("id").to_owned(),
        }
    }

    /// The organization `token` acts in.
    pub async fn current_org(&self, token: &str) -> String {
        let me = json(self.get_as("/api/auth/me", token).await).await;
        me["org"]["id"].as_str().expect("org").to_owned()
    }

    /// Creates an organization below `parent` as `token`; returns its id.
    pub async fn create_org(&self, token: &str, parent: &str, name: &str, kind: &str) -> String {
        let body = serde_json::json!({"parent_id": parent, "name": name, "kind": kind});
        let resp = self.post_json("/api/orgs", Some(token), body).await;
        assert_eq!(resp.status(), 201, "creating organization {name}");
        json(resp).await["id"].as_str().expect("id").to_owned()
    }

    /// Creates a user (named after its email) in `org` with `role` as `token`.
    pub async fn create_user(&self, token: &str, email: &str, password: &str, org: &str, role: &str) {
        let body =
            serde_json::json!({"email": email, "name": email, "password": password, "org_id": org, "role": role});
        assert_eq!(self.post_json("/api/users", Some(token), body).await.status(), 201, "creating user {email}");
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: serde_json::Value) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, token, Some(body)).await
    }

    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, Some(token), None).await
    }

    /// Any request, with an optional bearer token and JSON body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.expect("request")
    }
}

/// A real SMTP server (Python aiosmtpd) storing what it receives in a maildir, as the relay.
pub struct SmtpPeer {
    child: Option<Child>,
    pub port: u16,
    pub maildir: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpPeer {
    /// Whether aiosmtpd is installed; CI requires it (`OPPIDUM_TEST_REQUIRE_SMTP=1`).
    pub fn available(test: &str) -> bool {
        let ok = Command::new("python3").args(["-c", "import aiosmtpd"]).status().is_ok_and(|s| s.success());
        if !ok {
            assert!(std::env::var("OPPIDUM_TEST_REQUIRE_SMTP").as_deref() != Ok("1"), "{test}: aiosmtpd is required");
            eprintln!("SKIPPED {test}: pip install aiosmtpd");
        }
        ok
    }

    /// A port for a peer that is not started yet.
    pub fn reserve() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let maildir = dir.path().join("maildir");
        Self { child: None, port: free_port(), maildir, _dir: dir }
    }

    pub async fn start(&mut self) {
        let child = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{}", self.port),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&self.maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("aiosmtpd did not start");
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every message received so far, raw, in arrival order.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) {
                for entry in entries.flatten() {
                    let modified = entry.metadata().and_then(|m| m.modified()).ok();
                    out.push((modified, std::fs::read_to_string(entry.path()).unwrap_or_default()));
                }
            }
        }
        out.sort_by_key(|(modified, _)| *modified);
        out.into_iter().map(|(_, text)| text).collect()
    }

    /// Settings that make a site relay through this peer.
    pub fn relay_env(&self, site: Site) -> Site {
        site.with("OPPIDUM_MAIL__RELAY__HOST", "127.0.0.1")
            .with("OPPIDUM_MAIL__RELAY__PORT", &self.port.to_string())
            .with("OPPIDUM_MAIL__RELAY__TLS", "none")
            .with("OPPIDUM_MAIL__RELAY__TIMEOUT_SECS", "5")
    }
}

impl Drop for SmtpPeer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl SmtpPeer {
    /// The raw messages sent to `address` (matched in the `To:` header), oldest first.
    pub fn messages_to(&self, address: &str) -> Vec<String> {
        self.messages()
            .into_iter()
            .filter(|m| m.lines().take_while(|l| !l.is_empty()).any(|l| l.starts_with("To:") && l.contains(address)))
            .collect()
    }

    /// Waits for a message to `address` containing a link token (`oat_…`), and returns it.
    pub async fn token_for(&self, address: &str, already: usize) -> String {
        for _ in 0..200 {
            let messages = self.messages_to(address);
            if messages.len() > already
                && let Some(token) = messages.last().and_then(|m| extract_token(m))
            {
                return token;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no mail with a token reached {address}: {:?}", self.messages());
    }
}

/// The first `oat_…` token in a raw message (quoted-printable soft breaks undone).
pub fn extract_token(raw: &str) -> Option<String> {
    let text = raw.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
    let start = text.find("token=oat_")? + "token=".len();
    let token: String =
        text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect();
    Some(token)
}
