//! The command line: configuration checks, redaction, version.

use crate::harness::{Backend, Site};

#[tokio::test]
async fn config_check_lists_every_production_problem() {
    let mut site = Site::new(Backend::Sqlite).await;
    site.env.clear();
    let file = site.dir.path().join("oppidum.toml");
    std::fs::write(
        &file,
        r#"
mode = "production"
[cors]
allowed_origins = ["*"]
[secrets]
master_key = "too-short"
[blob]
backend = "memory"
"#,
    )
    .expect("write config");
    let out = site.cli(&["config", "check", "--config", file.to_str().expect("utf-8 path")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for problem in ["cors.allowed_origins", "public_url", "secrets.master_key", "blob.backend", "4 problem(s)"] {
        assert!(stderr.contains(problem), "missing {problem} in:\n{stderr}");
    }
    // `serve` refuses the same file with the same list.
    let serve = site.cli(&["serve", "--config", file.to_str().expect("utf-8 path")]);
    assert!(!serve.status.success());
    assert!(String::from_utf8_lossy(&serve.stderr).contains("cors.allowed_origins"));
}

#[tokio::test]
async fn config_check_accepts_defaults_and_print_redacts() {
    let site =
        Site::new(Backend::Sqlite).await.with("OPPIDUM_DATABASE__URL", "postgres://app:hunter2@db.internal/oppidum");
    let check = site.cli(&["config", "check"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let secret_file = site.dir.path().join("master.key");
    std::fs::write(&secret_file, "s".repeat(48)).expect("write");
    let site = site.with("OPPIDUM_SECRETS__MASTER_KEY_FILE", secret_file.to_str().expect("utf-8"));
    let print = site.cli(&["config", "print"]);
    assert!(print.status.success());
    let text = String::from_utf8_lossy(&print.stdout);
    assert!(text.contains("db.internal"), "{text}");
    assert!(!text.contains("hunter2"), "password leaked:\n{text}");
    assert!(!text.contains(&"s".repeat(48)), "secret leaked:\n{text}");
    assert!(text.contains("[redacted]"));
}

#[tokio::test]
async fn config_rejects_unknown_keys_and_bad_values() {
    let site =
        Site::new(Backend::Sqlite).await.with("OPPIDUM_HTTP__LISTEN", "nowhere").with("OPPIDUM_JOBS__CONCURRENCY", "0");
    let out = site.cli(&["config", "check"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("http.listen") && stderr.contains("jobs.concurrency"), "{stderr}");

    // An unknown key in the file is an error; in the environment (shared with the platform:
    // Kubernetes injects OPPIDUM_PORT for a Service named oppidum), a warning.
    let site = Site::new(Backend::Sqlite)
        .await
        .with("OPPIDUM_HTTP__LISTN", "127.0.0.1:1")
        .with("OPPIDUM_PORT", "tcp://10.0.0.1:80");
    let out = site.cli(&["config", "check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("OPPIDUM_HTTP__LISTN") && stderr.contains("OPPIDUM_PORT"), "{stderr}");
    let file = site.dir.path().join("oppidum.toml");
    std::fs::write(&file, "[http]\nlistn = \"127.0.0.1:1\"\n").expect("write");
    let out = site.cli(&["--config", file.to_str().expect("utf-8 path"), "config", "check"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("listn"));
}

#[tokio::test]
async fn version_prints_build_facts() {
    let site = Site::new(Backend::Sqlite).await;
    let out = site.cli(&["version"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("oppidum {}", env!("CARGO_PKG_VERSION"))));
}
