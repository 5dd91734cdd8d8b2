//! `oppidum serve`: binds, serves, runs job workers and the event listener, and shuts down
//! gracefully on SIGTERM/SIGINT — stop accepting, let in-flight requests and jobs finish within
//! `http.shutdown_timeout_secs`, close the database, exit 0.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use oppidum_core::config::Config;
use oppidum_store::jobs::{Workers, WorkersConfig};
use tokio_util::sync::CancellationToken;

use crate::app::{self, AppState};

/// Runs the server until a shutdown signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let metrics = crate::telemetry::init_metrics()?;
    let listen: SocketAddr = config.http.listen.parse().context("http.listen")?;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let state = app::build(config, Some(metrics)).await?;
    let local = listener.local_addr()?;
    tracing::info!(
        address = %local,
        database = state.db.backend().name(),
        blobs = state.blobs.backend(),
        node = %state.node,
        "oppidum {} listening on http://{local}",
        crate::build_info::BUILD.version
    );

    announce_bootstrap(&state).await?;
    match state.mailer.schedule_pending().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(count = n, "scheduled delivery of queued mail"),
        Err(err) => tracing::warn!(error = %err, "could not schedule queued mail"),
    }

    let stop = CancellationToken::new();
    tokio::spawn(watch_signals(stop.clone()));
    let background = CancellationToken::new();
    let listener_task = state.bus.spawn_listener(background.clone());
    let invalidation = state.identity.spawn_invalidation();
    let grace = Duration::from_secs(state.config.http.shutdown_timeout_secs);
    let workers = spawn_workers(&state, background.clone(), grace);
    tokio::spawn(collect_garbage(state.clone(), background.clone()));

    let router = crate::http::router(state.clone());
    let draining = {
        let state = state.clone();
        let stop = stop.clone();
        async move {
            stop.cancelled().await;
            state.start_draining();
            tracing::info!("shutting down: finishing in-flight requests");
        }
    };
    // Without TCP_NODELAY, a response's last small segment waits for the client's delayed ACK
    // (Nagle's algorithm): about 40 ms per response on Linux.
    let listener = listener.tap_io(|stream| {
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(draining)
        .into_future();
    let server = tokio::spawn(server);
    stop.cancelled().await;
    match tokio::time::timeout(grace, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(err))) => tracing::error!(error = %err, "server error"),
        Ok(Err(err)) => tracing::error!(error = %err, "server task failed"),
        Err(_) => tracing::warn!(seconds = grace.as_secs(), "in-flight requests did not finish in time"),
    }
    background.cancel();
    if let Some(workers) = workers {
        let _ = workers.await;
    }
    if let Some(task) = listener_task {
        let _ = task.await;
    }
    if let Some(task) = invalidation {
        task.abort();
    }
    state.db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Hourly: drive retention (expired trash, old versions), then drive chunks no version
/// references (after a day's grace, which covers uploads in progress), and idle rate-limit
/// entries.
async fn collect_garbage(state: AppState, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3_600)) => {}
        }
        state.identity.shrink_limits();
        match state.drive.enforce_retention(chrono::Utc::now()).await {
            Ok(done) if done.purged_nodes + done.deleted_versions > 0 => tracing::info!(
                purged = done.purged_nodes,
                versions = done.deleted_versions,
                "drive retention removed expired trash and versions"
            ),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "drive retention failed"),
        }
        match state.drive.content().collect_garbage(chrono::Duration::hours(24)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(chunks = n, "collected unreferenced drive chunks"),
            Err(err) => tracing::warn!(error = %err, "drive garbage collection failed"),
        }
    }
}

/// Prints a one-time token to create the first administrator, when there is none yet.
async fn announce_bootstrap(state: &AppState) -> anyhow::Result<()> {
    if let Some(token) = state.identity.bootstrap_token().await? {
        let base = state.config.public_url.clone().unwrap_or_else(|| format!("http://{}", state.config.http.listen));
        tracing::warn!("no administrator exists yet: create one with the bootstrap token printed on standard output");
        println!(
            "\nNo administrator exists yet. Create the first one within 24 hours:\n\n  curl -X POST {base}/api/auth/bootstrap \\\n    -H 'content-type: application/json' \\\n    -d '{{\"token\": \"{token}\", \"email\": \"you@example.org\", \"name\": \"Your Name\", \"password\": \"a long passphrase\"}}'\n\nor run `oppidum admin create-user --instance-admin ...`.\n"
        );
    }
    Ok(())
}

fn spawn_workers(state: &AppState, stop: CancellationToken, grace: Duration) -> Option<tokio::task::JoinHandle<()>> {
    let jobs = &state.config.jobs;
    if !jobs.enabled {
        return None;
    }
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    let config = WorkersConfig {
        name: format!("{host}:{}:{}", std::process::id(), state.node.simple()),
        concurrency: jobs.concurrency,
        poll_interval: Duration::from_millis(jobs.poll_interval_ms),
        lease: Duration::from_secs(jobs.lease_secs),
        retention: Duration::from_secs(u64::from(jobs.retention_days) * 86_400),
    };
    let mut workers = Workers::new(state.queue.clone(), config);
    crate::jobs::register(&mut workers, jobs.diagnostic_kinds);
    if let Some(relay) = &state.config.mail.relay {
        match oppidum_mail::relay::Relay::new(relay) {
            Ok(relay) => {
                workers.register(
                    oppidum_mail::outbox::DELIVER_KIND,
                    oppidum_mail::relay::Deliver { mailer: state.mailer.clone(), relay },
                );
            }
            Err(err) => tracing::error!(error = %err, "the mail relay settings are unusable; mail stays in the outbox"),
        }
    }
    tracing::info!(kinds = ?workers.kinds(), concurrency = jobs.concurrency, "job workers started");
    Some(tokio::spawn(workers.run(stop, grace)))
}

async fn watch_signals(stop: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("received SIGTERM"),
            _ = int.recv() => tracing::info!("received SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    stop.cancel();
}
