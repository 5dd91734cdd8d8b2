//! The application state shared by every request and background task, and how it is built from
//! the configuration: database (migrated or checked), blob store, event bus, job queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use oppidum_core::config::SqliteSynchronous;
use oppidum_core::config::{BlobBackend, Config};
use oppidum_core::time::{Clock, SystemClock};
use oppidum_core::vault::Vault;
use oppidum_identity::Identity;
use oppidum_mail::Mailer;
use oppidum_store::blob::ObjectBlobStore;
use oppidum_store::db::{DbOptions, Synchronous};
use oppidum_store::jobs::JobQueue;
use oppidum_store::{BlobStore, Db, EventBus};
use uuid::Uuid;

/// Everything a handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub node: Uuid,
    pub db: Db,
    pub blobs: Arc<dyn BlobStore>,
    pub bus: EventBus,
    pub queue: JobQueue,
    pub identity: Identity,
    pub mailer: Mailer,
    pub drive: oppidum_drive::Drive,
    pub data: oppidum_data::DataApi,
    pub clock: Arc<dyn Clock>,
    pub metrics: Option<PrometheusHandle>,
    pub started: Instant,
    draining: AtomicBool,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Marks the server as shutting down: `/readyz` answers 503 from now on.
    pub fn start_draining(&self) {
        self.0.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::SeqCst)
    }
}

/// Opens the database as configured. A database that cannot be reached yet is tried again with
/// exponential backoff (0.5 s doubling up to 10 s) for `database.connect_retry_secs`, each failure
/// logged; errors that waiting cannot fix (a malformed URL, a refused password) end at once.
pub async fn connect_db(config: &Config) -> anyhow::Result<Db> {
    let options = DbOptions {
        max_connections: config.database.max_connections,
        busy_timeout: Duration::from_millis(config.database.busy_timeout_ms),
        synchronous: match config.database.synchronous {
            SqliteSynchronous::Normal => Synchronous::Normal,
            SqliteSynchronous::Full => Synchronous::Full,
        },
        ..DbOptions::default()
    };
    let url = config.database_url();
    let redacted = oppidum_core::config::DatabaseUrl::new(url.clone()).redacted();
    let deadline = Instant::now() + Duration::from_secs(config.database.connect_retry_secs);
    let mut delay = Duration::from_millis(500);
    let mut attempt = 1u32;
    loop {
        match Db::connect(&url, &options).await {
            Ok(db) => return Ok(db),
            Err(err) if err.is_unreachable() && Instant::now() + delay < deadline => {
                tracing::warn!(
                    attempt,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    error = %err,
                    "the database at {redacted} does not answer yet; retrying"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
                attempt += 1;
            }
            Err(err) => return Err(err).with_context(|| format!("cannot open the database at {redacted}")),
        }
    }
}

/// Opens the blob store as configured.
pub fn open_blobs(config: &Config) -> anyhow::Result<Arc<dyn BlobStore>> {
    Ok(match config.blob.backend {
        BlobBackend::Local => Arc::new(ObjectBlobStore::local(&config.blob_path())?),
        BlobBackend::S3 => Arc::new(ObjectBlobStore::s3(&config.blob.s3)?),
        BlobBackend::Memory => Arc::new(ObjectBlobStore::memory()),
    })
}

/// Builds the state: connects, migrates (or checks the schema), opens the blob store.
pub async fn build(config: Config, metrics: Option<PrometheusHandle>) -> anyhow::Result<AppState> {
    let db = connect_db(&config).await?;
    if config.database.migrate_on_start {
        let applied = db.migrate().await?;
        for (version, description) in applied {
            tracing::info!(version, description, "applied migration");
        }
    } else {
        db.check_schema().await?;
    }
    let blobs = open_blobs(&config)?;
    let node = Uuid::now_v7();
    let bus = EventBus::new(node, db.pg_pool().cloned());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let queue = JobQueue::new(db.clone(), clock.clone(), bus.clone(), config.jobs.max_attempts);
    let mailer = mailer(&config, &db, &queue, clock.clone());
    let identity = identity_service(&config, &db, clock.clone(), mailer.clone())?;
    identity.attach_events(bus.clone());
    identity.ensure_ready().await?;
    let content = oppidum_drive::ContentStore::new(db.clone(), blobs.clone(), clock.clone());
    let drive = oppidum_drive::Drive::new(db.clone(), content, config.drive.clone(), Arc::new(identity.clone()))
        .with_events(bus.clone());
    let data = data_api(&config, &db, Arc::new(identity.clone()), Arc::new(drive.clone()), bus.clone()).await?;
    Ok(AppState(Arc::new(Inner {
        config,
        node,
        db,
        blobs,
        bus,
        queue,
        identity,
        mailer,
        drive,
        data,
        clock,
        metrics,
        started: Instant::now(),
        draining: AtomicBool::new(false),
    })))
}

/// The identity service as configured. Needs `secrets.master_key` (set by `prepare_data_dir`).
pub fn identity_service(config: &Config, db: &Db, clock: Arc<dyn Clock>, mailer: Mailer) -> anyhow::Result<Identity> {
    let master = config.secrets.master_key.as_ref().context("secrets.master_key is not set")?;
    let previous: Vec<&str> = config.secrets.previous_master_keys.iter().map(|k| k.expose()).collect();
    let vault = Vault::with_previous(master.expose(), &previous);
    let base_url = config
        .identity
        .app_url
        .clone()
        .or_else(|| config.public_url.clone())
        .unwrap_or_else(|| format!("http://{}", config.http.listen));
    Ok(Identity::new(db.clone(), vault, clock, config.identity.clone(), config.token_issuer(), mailer, base_url))
}

/// The data API, serving the apps found in the apps directory.
pub async fn data_api(
    config: &Config,
    db: &Db,
    directory: Arc<dyn oppidum_core::Directory>,
    files: Arc<dyn oppidum_core::FileAccess>,
    bus: EventBus,
) -> anyhow::Result<oppidum_data::DataApi> {
    let master = config.secrets.master_key.as_ref().context("secrets.master_key is not set")?;
    let keys = oppidum_data::service::Keys {
        current: master.expose().to_owned(),
        previous: config.secrets.previous_master_keys.iter().map(|k| k.expose().to_owned()).collect(),
    };
    Ok(oppidum_data::DataApi::open(db.clone(), config.apps_path(), keys, directory, Some(files), Some(bus)).await)
}

/// The outbox as configured; in development, mail that cannot be delivered is printed to the log.
pub fn mailer(config: &Config, db: &Db, queue: &JobQueue, clock: Arc<dyn Clock>) -> Mailer {
    let development = config.mode == oppidum_core::config::Mode::Development;
    Mailer::new(db.clone(), queue.clone(), config.mail.clone(), clock, development)
}
