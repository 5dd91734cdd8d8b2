//! The `oppidum` binary: parses the command line and runs the chosen command.

use std::process::ExitCode;

use clap::Parser;
use oppidum_server::cli::Cli;

fn main() -> ExitCode {
    // The only TLS crypto provider we ship; reqwest and the S3 client need one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    oppidum_server::commands::run(cli)
}
