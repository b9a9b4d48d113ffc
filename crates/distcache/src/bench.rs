//! `distcache bench`: a load generator. PLACEHOLDER, being written.

use std::process::ExitCode;

/// Options of `distcache bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {}

/// Runs the benchmark.
pub async fn run(args: BenchArgs) -> ExitCode {
    let _ = args;
    eprintln!("distcache bench is not built yet");
    ExitCode::from(2)
}
