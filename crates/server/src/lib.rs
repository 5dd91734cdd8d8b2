//! The Oppidum server: configuration loading, wiring of the domains, the HTTP server and the
//! command-line interface. The binary in `main.rs` only parses arguments and calls [`commands::run`].

pub mod app;
mod apps_cli;
pub mod build_info;
pub mod cli;
pub mod commands;
pub mod http;
pub mod jobs;
pub mod serve;
pub mod settings;
pub mod telemetry;
