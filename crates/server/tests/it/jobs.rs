//! The durable job queue across real processes: a job whose worker is killed runs again after its
//! lease expires, exactly once; two servers on one PostgreSQL never run the same job twice.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::both;
use crate::harness::{Backend, Site, eventually};

fn diag_site(site: Site) -> Site {
    site.with("OPPIDUM_JOBS__DIAGNOSTIC_KINDS", "true")
        .with("OPPIDUM_JOBS__LEASE_SECS", "5")
        .with("OPPIDUM_JOBS__POLL_INTERVAL_MS", "200")
}

fn enqueue(site: &Site, kind: &str, payload: &str) -> String {
    let out = site.cli(&["jobs", "enqueue", kind, "--payload", payload]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn show(site: &Site, id: &str) -> serde_json::Value {
    let out = site.cli(&["jobs", "show", id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

fn outcomes(job: &serde_json::Value) -> Vec<String> {
    job["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["outcome"].as_str().unwrap_or("running").to_owned())
        .collect()
}

async fn killed_worker_job_runs_again_once(backend: Backend) {
    let site = diag_site(Site::new(backend).await);
    let mut first = site.start().await;
    let id = enqueue(&site, "diag.sleep", r#"{"ms": 2500}"#);
    let running = eventually(Duration::from_secs(10), || async {
        (show(&site, &id)["job"]["status"] == "running").then_some(())
    })
    .await;
    assert!(running.is_some(), "the job was never leased\n{}", first.log());
    first.kill_hard();

    let second = site.start().await;
    let done = eventually(Duration::from_secs(30), || async {
        let job = show(&site, &id);
        (job["job"]["status"] == "done").then_some(job)
    })
    .await
    .unwrap_or_else(|| panic!("the job never completed\n{}", second.log()));
    assert_eq!(outcomes(&done), vec!["lease_expired", "succeeded"]);
    assert_eq!(done["job"]["attempts"], 2);

    // And it stays done: no third run.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let later = show(&site, &id);
    assert_eq!(outcomes(&later), vec!["lease_expired", "succeeded"]);
}
both!(killed_worker_job_runs_again_once);

async fn failing_job_is_retried_then_dead_lettered(backend: Backend) {
    let site = diag_site(Site::new(backend).await);
    let _server = site.start().await;
    let out = site.cli(&["jobs", "enqueue", "diag.fail", "--payload", r#"{"message": "boom"}"#, "--max-attempts", "1"]);
    assert!(out.status.success());
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let dead = eventually(Duration::from_secs(10), || async {
        let job = show(&site, &id);
        (job["job"]["status"] == "dead").then_some(job)
    })
    .await
    .expect("dead-lettered");
    assert_eq!(dead["job"]["last_error"], "boom");
    assert_eq!(outcomes(&dead), vec!["failed"]);
    let list = site.cli(&["jobs", "list", "--status", "dead"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains(&id));
    let metrics = _server.get("/metrics").await.text().await.expect("metrics");
    assert!(metrics.contains(r#"oppidum_jobs{status="dead"} 1"#), "{metrics}");
}
both!(failing_job_is_retried_then_dead_lettered);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_share_the_queue() {
    if oppidum_store::testing::postgres_admin_url("two_servers_on_one_postgres_share_the_queue").is_none() {
        return;
    }
    let site = diag_site(Site::new(Backend::Postgres).await).with("OPPIDUM_JOBS__CONCURRENCY", "3");
    let a = site.start().await;
    let b = site.start().await;
    let db = oppidum_store::Db::connect(&site.effective_database_url(), &Default::default()).await.expect("db");
    let queue = oppidum_store::jobs::JobQueue::new(
        db.clone(),
        std::sync::Arc::new(oppidum_core::time::SystemClock),
        oppidum_store::EventBus::new(uuid::Uuid::now_v7(), db.pg_pool().cloned()),
        3,
    );
    let total = 48;
    let mut ids = HashSet::new();
    for _ in 0..total {
        let job = oppidum_store::jobs::NewJob::new("diag.sleep", serde_json::json!({ "ms": 40 }));
        ids.insert(queue.enqueue(job).await.expect("enqueue").expect("id"));
    }
    let finished = eventually(Duration::from_secs(30), || async {
        let stats = queue.stats().await.expect("stats");
        (stats.done == total).then_some(())
    })
    .await;
    assert!(finished.is_some(), "jobs did not finish\nA:\n{}\nB:\n{}", a.log(), b.log());

    let mut runs_by_node: HashMap<String, usize> = HashMap::new();
    for id in &ids {
        let attempts = queue.attempts(*id).await.expect("attempts");
        assert_eq!(attempts.len(), 1, "job {id} ran {} times", attempts.len());
        assert_eq!(attempts[0].outcome.as_deref(), Some("succeeded"));
        let node = attempts[0].worker.split('#').next().unwrap_or_default().to_owned();
        *runs_by_node.entry(node).or_default() += 1;
    }
    assert_eq!(runs_by_node.len(), 2, "both servers should have worked: {runs_by_node:?}");
    db.close().await;
}
