//! Logs and metrics: a tracing subscriber (JSON in production, human-readable in development) and
//! the Prometheus recorder behind `/metrics`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use oppidum_core::config::{Config, LogFormat, Mode};
use tracing_subscriber::EnvFilter;

/// Installs the global log subscriber. Logs go to stderr.
pub fn init_logging(config: &Config) {
    let filter = EnvFilter::try_new(&config.log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match config.log.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => config.mode == Mode::Production,
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let result = if json {
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init()
    } else {
        builder.compact().try_init()
    };
    // Already installed (tests calling twice): keep the first.
    let _ = result;
}

/// Latency buckets, in seconds, for every `*_seconds` histogram.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Installs the global metrics recorder and returns the handle that renders it.
pub fn init_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)?
        .install_recorder()?;
    let build = crate::build_info::BUILD;
    metrics::gauge!("oppidum_build_info", "version" => build.version, "commit" => build.commit, "rustc" => build.rustc)
        .set(1.0);
    Ok(handle)
}
