//! `distcache`: one binary for every role. It parses the command line and
//! environment, sets up logging and signals, and hands over to the library
//! (`distcache-server`) or to the client verbs.

mod bench;
mod client;
mod healthcheck;
mod local;
mod restore;
mod stats;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
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
    Master(Box<MasterConfig>),
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
    /// Run one Redis command (`call HSET k f v`) through POST /, printing the
    /// reply as redis-cli does (exit code 1 if it answers an error)
    Call(client::CallArgs),
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
    let colour = log_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .init();
}

/// Whether log lines carry ANSI colour codes: only for a person at a
/// terminal. A log file, a pipe or a container's log collector gets plain
/// text, and `NO_COLOR` set to anything but the empty string turns colour
/// off everywhere (<https://no-color.org>).
fn log_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
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
    let matches = command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let given = Given(matches.subcommand().map(|(_, m)| m.clone()));
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
                    let listeners = master::MasterListeners::bind(&config)
                        .await
                        .map_err(|e| e.naming_setting(|s| given.name(s)))?;
                    Ok(master::run(config, listeners, system_clock(), shutdown).await?)
                })
                .await
            }
            // An auxiliary first hands its keys over, then stops.
            Command::Aux(config) => {
                serve(LEAVE_TIMEOUT + SHUTDOWN_DEADLINE, |shutdown| async move {
                    let config = config.validate()?;
                    let listeners = auxiliary::AuxListeners::bind(&config)
                        .await
                        .map_err(|e| e.naming_setting(|s| given.name(s)))?;
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
            Command::Call(args) => client::call(args).await,
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
        // One plain line, not a log line as well: both would go to stderr.
        Err(e) => {
            eprintln!("distcache: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The command line as clap parses it, with every environment variable's
/// value hidden from `--help`: clap would print `[env: PORT=]` for an unset
/// variable, which reads as "set to empty"; `[env: PORT]` names it only.
fn command() -> clap::Command {
    fn hide_env_values(cmd: clap::Command) -> clap::Command {
        cmd.mut_args(|arg| arg.hide_env_values(true))
            .mut_subcommands(hide_env_values)
    }
    hide_env_values(Cli::command())
}

/// How the settings of the subcommand were given, to name them in errors as
/// the operator wrote them.
struct Given(Option<ArgMatches>);

impl Given {
    /// The setting `env` (`PORT`) as it was given: its flag (`--port`) when
    /// on the command line, the variable when from the environment, and
    /// both ways to change it when the default applied.
    fn name(&self, env: &str) -> String {
        let id = env.to_ascii_lowercase();
        let flag = format!("--{}", id.replace('_', "-"));
        // `value_source` panics (in debug builds) on an id clap does not
        // know; `try_get_raw` answers an error instead.
        let source = self
            .0
            .as_ref()
            .filter(|m| m.try_get_raw(&id).is_ok())
            .and_then(|m| m.value_source(&id));
        match source {
            Some(ValueSource::CommandLine) => flag,
            Some(ValueSource::EnvVariable) => env.to_owned(),
            _ => format!("the default; set {flag} or {env}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_coloured_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(log_colour(true, None));
        assert!(!log_colour(false, None), "a file or a pipe gets plain text");
        assert!(!log_colour(true, Some(OsStr::new("1"))), "NO_COLOR=1");
        assert!(
            log_colour(true, Some(OsStr::new(""))),
            "an empty NO_COLOR does not count (no-color.org)"
        );
    }

    #[test]
    fn a_setting_is_named_as_it_was_given() {
        let given = |args: &[&str]| {
            let m = command()
                .try_get_matches_from(args)
                .expect("valid arguments");
            Given(m.subcommand().map(|(_, m)| m.clone()))
        };
        // A flag wins over the environment, whatever it holds.
        assert_eq!(
            given(&["distcache", "master", "--port", "9000"]).name("PORT"),
            "--port"
        );
        assert_eq!(
            given(&["distcache", "aux", "--data-port", "9000"]).name("DATA_PORT"),
            "--data-port"
        );
        if std::env::var_os("PORT").is_none() {
            assert_eq!(
                given(&["distcache", "master"]).name("PORT"),
                "the default; set --port or PORT"
            );
        }
        assert_eq!(Given(None).name("PORT"), "the default; set --port or PORT");
    }

    #[test]
    fn help_names_environment_variables_without_an_empty_value() {
        for sub in ["master", "aux", "local", "set", "bench", "stats"] {
            let mut cmd = command();
            let help = cmd
                .find_subcommand_mut(sub)
                .expect("a subcommand")
                .render_long_help()
                .to_string();
            assert!(help.contains("[env: "), "{sub} --help names its variables");
            assert!(
                !help.contains("=]"),
                "{sub} --help shows an env value:\n{help}"
            );
        }
    }
}
