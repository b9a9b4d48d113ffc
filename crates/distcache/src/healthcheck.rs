//! `distcache healthcheck`: one `GET {url}/health` with a short timeout, for
//! container health checks and Kubernetes exec probes (slim images have no
//! curl). Exit 0 when the node answers 200, 1 otherwise; one line of output
//! either way, which Docker keeps in `docker inspect`.
//!
//! The default URL is `http://127.0.0.1:$PORT`: the image runs both roles
//! and each container sets `PORT` for its role, so the same command in the
//! image's `HEALTHCHECK` checks a master (8000) or an auxiliary (3001).
//! When `TLS_CERT` is set (a master serving TLS) the default URL is
//! `https://`, and the certificate is not verified: the probe only asks
//! whether this host's process answers.

use std::process::ExitCode;
use std::time::Duration;

use distcache_server::config::DEFAULT_MASTER_PORT;
use reqwest::StatusCode;

/// Options of `distcache healthcheck`.
#[derive(clap::Args, Debug)]
pub struct HealthcheckArgs {
    /// Base URL of the node [default: http://127.0.0.1:$PORT, PORT defaulting to 8000]
    #[arg(long)]
    pub url: Option<String>,

    /// Longest wait for the answer, in milliseconds
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,

    /// Liveness: count a 503 (a master with no auxiliary up, which is
    /// serving but not ready) as alive too
    #[arg(long)]
    pub live: bool,
}

const HEALTHY: u8 = 0;
const UNHEALTHY: u8 = 1;

/// The URL checked when `--url` is not given: this host, the role's port.
fn default_url(port: Option<String>) -> String {
    let port = port
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_MASTER_PORT.to_string());
    format!("http://127.0.0.1:{}", port.trim())
}

/// Checks a node's health; see the module docs for the exit codes.
pub async fn run(args: HealthcheckArgs) -> ExitCode {
    // A master with TLS_CERT serves https only. The probe sends nothing
    // secret and checks this very host, so it skips certificate checks
    // (the certificate rarely names 127.0.0.1).
    let tls = std::env::var("TLS_CERT").is_ok_and(|v| !v.trim().is_empty());
    let base = args.url.unwrap_or_else(|| {
        let url = default_url(std::env::var("PORT").ok());
        if tls {
            url.replacen("http://", "https://", 1)
        } else {
            url
        }
    });
    let url = format!("{}/health", base.trim_end_matches('/'));
    distcache_server::security::tls::install_crypto_provider();
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_millis(args.timeout_ms))
        .tls_danger_accept_invalid_certs(true)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            println!("unhealthy: {url}: cannot build an HTTP client: {e}");
            return ExitCode::from(UNHEALTHY);
        }
    };
    match client.get(&url).send().await {
        Ok(resp) if resp.status() == StatusCode::OK => {
            println!("healthy: {url}: 200");
            ExitCode::from(HEALTHY)
        }
        Ok(resp) if args.live && resp.status() == StatusCode::SERVICE_UNAVAILABLE => {
            println!("alive: {url}: 503 (serving, not ready)");
            ExitCode::from(HEALTHY)
        }
        Ok(resp) => {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            let body: String = body.chars().take(200).collect();
            println!("unhealthy: {url}: {status}: {}", body.trim());
            ExitCode::from(UNHEALTHY)
        }
        Err(e) => {
            let why = if e.is_timeout() {
                format!("no answer within {} ms", args.timeout_ms)
            } else {
                error_chain(&e)
            };
            println!("unhealthy: {url}: {why}");
            ExitCode::from(UNHEALTHY)
        }
    }
}

/// An error and its causes, `a: b: c` (reqwest's own message alone says
/// only "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_url_follows_port() {
        assert_eq!(default_url(None), "http://127.0.0.1:8000");
        assert_eq!(default_url(Some("3001".into())), "http://127.0.0.1:3001");
        assert_eq!(default_url(Some(" ".into())), "http://127.0.0.1:8000");
    }
}
