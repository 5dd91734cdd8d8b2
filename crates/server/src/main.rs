//! The `oppidum` binary: parses the command line and runs the chosen command.

use std::process::ExitCode;

use clap::Parser;
use oppidum_server::cli::Cli;

/// mimalloc instead of glibc's allocator: a profile of authenticated GETs spent a fifth of the
/// server's time in glibc `malloc`/`free` (arenas contended between the runtime's and the
/// database's threads).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // The only TLS crypto provider we ship; reqwest and the S3 client need one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    oppidum_server::commands::run(cli)
}
