//! `distcache restore [--backup ID] [--url URL]`: asks a master to restore a
//! cluster backup (`POST /restore`) and prints its answer as JSON. On a
//! terminal, a progress bar follows the restore (`GET /restore`, polled);
//! otherwise nothing but the answer is printed, so scripts can parse it.
//!
//! The restore runs on the master, from the master's `BACKUP_DIR`: point
//! `--url` at one master rather than a load balancer, so the progress
//! comes from the master doing the work.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};

use crate::client::UrlArgs;

/// Arguments of `restore`.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup's id (a directory in the master's BACKUP_DIR) [default: the latest]
    #[arg(long)]
    pub backup: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub url: UrlArgs,
}

const FAILED: u8 = 2;

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("distcache: {message}");
    ExitCode::from(FAILED)
}

/// Runs the verb.
pub async fn run(args: RestoreArgs) -> ExitCode {
    let base = args.url.url.trim_end_matches('/').to_string();
    let url = format!("{base}/restore");
    let body = match &args.backup {
        Some(id) => json!({"backup": id}),
        None => json!({}),
    };
    // A restore of a large backup takes a while: no overall timeout.
    let http = match args
        .url
        .client_builder()
        .and_then(|b| b.build().map_err(|e| e.to_string()))
    {
        Ok(http) => http,
        Err(e) => return fail(e),
    };
    let request = http.post(&url).json(&body).send();
    let bar = std::io::stderr()
        .is_terminal()
        .then(|| progress_bar(http.clone(), format!("{base}/restore")));
    let result = request.await;
    if let Some((bar, poller)) = bar {
        poller.abort();
        bar.finish_and_clear();
    }
    let resp = match result {
        Ok(resp) => resp,
        Err(e) => return fail(format!("cannot reach {url}: {e}")),
    };
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if status.is_success() {
        println!(
            "{}",
            serde_json::to_string_pretty(&answer).unwrap_or_default()
        );
        ExitCode::SUCCESS
    } else {
        let message = answer["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| answer.to_string());
        fail(format!("{status}: {message}"))
    }
}

/// A bar on stderr fed by polling the master's restore progress.
fn progress_bar(
    http: reqwest::Client,
    url: String,
) -> (indicatif::ProgressBar, tokio::task::JoinHandle<()>) {
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "restoring {msg} [{bar:40}] {pos}/{len} keys ({eta} left)",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let shown = bar.clone();
    let poller = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let Ok(resp) = http.get(&url).timeout(Duration::from_secs(2)).send().await else {
                continue;
            };
            let Ok(p) = resp.json::<Value>().await else {
                continue;
            };
            if p["running"] == json!(true) {
                shown.set_message(p["backup"].as_str().unwrap_or("").to_string());
                shown.set_length(p["total"].as_u64().unwrap_or(0));
                shown.set_position(p["done"].as_u64().unwrap_or(0));
            }
        }
    });
    (bar, poller)
}
