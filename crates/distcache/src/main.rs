//! `distcache`: one binary for every role. It parses the command line and
//! environment, sets up logging and signals, and hands over to the library
//! (`distcache-server`) or to the client verbs.

mod bench;
mod client;
mod healthcheck;
mod local;
mod restore;
mod stats;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use distcache_core::clock::system_clock;
use distcache_server::auxiliary::LEAVE_TIMEOUT;
use distcache_server::config::{AuxConfig, MasterConfig};
use distcache_server::shutdown::{SHUTDOWN_DEADLINE, Shutdown};
use distcache_server::{auxiliary, master};

/// A distributed in-memory cache: masters route keys by consistent hashing
/// to auxiliaries holding LRU caches with TTLs.
#[derive(Parser, Debug)]
#[command(name = "distcache", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a master: the public REST API, membership, health checks, routing
    Master(MasterConfig),
    /// Run an auxiliary: a storage node
    Aux(AuxConfig),
    /// Run a whole cluster (masters and auxiliaries) in one process on loopback
    Local(local::LocalArgs),
    /// Store a value: VALUE is JSON if it parses as JSON, else a string
    Set(client::SetArgs),
    /// Print a key's value as JSON (exit code 1 if missing)
    Get(client::KeyArgs),
    /// Delete a key (exit code 1 if missing)
    Del(client::KeyArgs),
    /// List the auxiliaries a master knows
    Nodes(client::UrlArgs),
    /// Per-node items, bytes, hit ratio and state (a master's GET /stats)
    Stats(stats::StatsArgs),
    /// Restore a cluster backup (the latest, or --backup ID) through a master
    Restore(restore::RestoreArgs),
    /// Load-test a cluster and report throughput and latency
    Bench(bench::BenchArgs),
    /// Exit 0 if the node at --url is healthy (for container health checks)
    Healthcheck(healthcheck::HealthcheckArgs),
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Triggers `shutdown` on SIGINT or SIGTERM, and ends the process if the
/// node has not stopped `deadline` later.
fn watch_signals(shutdown: Shutdown, deadline: std::time::Duration) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => tracing::info!("SIGINT: shutting down"),
            _ = term => tracing::info!("SIGTERM: shutting down"),
        }
        shutdown.trigger();
        tokio::time::sleep(deadline).await;
        tracing::error!("shutdown took longer than the deadline; exiting");
        std::process::exit(1);
    });
}

// The allocator is chosen at build time (docs/performance.md).
#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // Every HTTP client (reqwest with rustls) needs the crypto provider
    // installed first; `ring`, since aws-lc-rs would need cmake to build.
    distcache_server::security::tls::install_crypto_provider();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("distcache: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Master(config) => {
                serve(SHUTDOWN_DEADLINE, |shutdown| async move {
                    let config = config.validate()?;
                    let listener = master::bind(&config).await?;
                    Ok(master::run(config, listener, system_clock(), shutdown).await?)
                })
                .await
            }
            // An auxiliary first hands its keys over, then stops.
            Command::Aux(config) => {
                serve(LEAVE_TIMEOUT + SHUTDOWN_DEADLINE, |shutdown| async move {
                    let config = config.validate()?;
                    let listeners = auxiliary::AuxListeners::bind(&config).await?;
                    Ok(auxiliary::run(config, listeners, system_clock(), shutdown).await?)
                })
                .await
            }
            Command::Local(args) => {
                serve(SHUTDOWN_DEADLINE, |shutdown| local::run(args, shutdown)).await
            }
            Command::Set(args) => client::set(args).await,
            Command::Get(args) => client::get(args).await,
            Command::Del(args) => client::del(args).await,
            Command::Nodes(args) => client::nodes(args).await,
            Command::Stats(args) => stats::run(args).await,
            Command::Restore(args) => restore::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Healthcheck(args) => healthcheck::run(args).await,
        }
    })
}

/// Runs a server role with logging and signal handling; a start-up error
/// (bad setting, busy port) is printed and exits with status 2.
async fn serve<F, Fut>(deadline: std::time::Duration, role: F) -> ExitCode
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    init_logging();
    let shutdown = Shutdown::new();
    // Past the deadline, plus a moment for the last log lines, the process
    // ends anyway.
    watch_signals(
        shutdown.clone(),
        deadline + std::time::Duration::from_secs(2),
    );
    match role(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "distcache stopped with an error");
            eprintln!("distcache: {e:#}");
            ExitCode::from(2)
        }
    }
}
