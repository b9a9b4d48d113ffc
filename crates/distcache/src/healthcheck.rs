//! `distcache healthcheck`. PLACEHOLDER, being written.

use std::process::ExitCode;

/// Options of `distcache healthcheck`.
#[derive(clap::Args, Debug)]
pub struct HealthcheckArgs {}

/// Checks a node's health.
pub async fn run(args: HealthcheckArgs) -> ExitCode {
    let _ = args;
    eprintln!("distcache healthcheck is not built yet");
    ExitCode::from(2)
}
