//! `distcache stats`: the master's `GET /stats` as a table for people, or
//! as JSON with `--json`. Exit code 0 when the master answered, 2 otherwise.

use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use crate::client::UrlArgs;

/// Arguments of `stats`.
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Print the master's JSON answer instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub url: UrlArgs,
}

/// `distcache stats`.
pub async fn run(args: StatsArgs) -> ExitCode {
    let url = format!("{}/stats", args.url.url.trim_end_matches('/'));
    let client = match args.url.client() {
        Ok(client) => client,
        Err(e) => return fail(e),
    };
    let body = match client.get(&url).send().await {
        Ok(resp) if resp.status().is_success() => match resp.json::<Value>().await {
            Ok(body) => body,
            Err(e) => return fail(format!("unreadable answer from {url}: {e}")),
        },
        Ok(resp) => return fail(format!("{url}: status {}", resp.status())),
        Err(e) => return fail(format!("cannot reach {url}: {e}")),
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
    } else {
        print!("{}", render(&body));
    }
    ExitCode::SUCCESS
}

fn fail(message: String) -> ExitCode {
    eprintln!("distcache: {message}");
    ExitCode::from(2)
}

/// `n` bytes with a binary unit, to three significant figures.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn ratio(v: &Value) -> String {
    v.as_f64()
        .map(|r| format!("{:.1}%", r * 100.0))
        .unwrap_or_else(|| "-".into())
}

fn count(v: &Value) -> String {
    v.as_u64()
        .map(|n| n.to_string())
        .unwrap_or_else(|| "-".into())
}

fn fill(v: &Value, capacity: &Value) -> String {
    match (v.as_u64(), capacity.as_u64()) {
        (Some(n), Some(c)) if c > 0 => format!("{:.0}%", n as f64 * 100.0 / c as f64),
        _ => "-".into(),
    }
}

/// The table `distcache stats` prints for a `/stats` answer.
pub fn render(body: &Value) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let line = |out: &mut String, cols: [&str; 8]| {
        let _ = writeln!(
            out,
            "{:<20} {:<8} {:>10} {:>6} {:>11} {:>6} {:>8} {:>10}",
            cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7]
        );
    };
    line(
        &mut out,
        [
            "NODE",
            "STATE",
            "ITEMS",
            "FULL",
            "BYTES",
            "FULL",
            "HIT%",
            "EVICTIONS",
        ],
    );
    let nodes = body["nodes"].as_array().cloned().unwrap_or_default();
    for n in &nodes {
        let state = match n["answered"].as_bool() {
            Some(false) => format!("{}*", n["state"].as_str().unwrap_or("?")),
            _ => n["state"].as_str().unwrap_or("?").to_string(),
        };
        line(
            &mut out,
            [
                n["id"].as_str().unwrap_or("?"),
                &state,
                &count(&n["items"]),
                &fill(&n["items"], &n["capacity_items"]),
                &human_bytes(n["bytes"].as_u64().unwrap_or(0)),
                &fill(&n["bytes"], &n["capacity_bytes"]),
                &ratio(&n["hit_ratio"]),
                &count(&n["evictions"]),
            ],
        );
    }
    let t = &body["totals"];
    line(
        &mut out,
        [
            "TOTAL (copies)",
            &format!("{}/{} up", count(&t["nodes_up"]), count(&t["nodes"])),
            &count(&t["items"]),
            "",
            &human_bytes(t["bytes"].as_u64().unwrap_or(0)),
            "",
            &ratio(&t["hit_ratio"]),
            &count(&t["evictions"]),
        ],
    );
    let _ = writeln!(
        out,
        "master {}, ring epoch {} with {} members{}",
        body["master"].as_str().unwrap_or("?"),
        count(&body["ring_epoch"]),
        count(&body["ring_members"]),
        if body["rebalancing"] == Value::Bool(true) {
            ", rebalancing"
        } else {
            ""
        }
    );
    if nodes.iter().any(|n| n["answered"] == Value::Bool(false)) {
        let _ = writeln!(
            out,
            "* did not answer now: sizes from the last health check, no counters"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bytes_are_shown_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }

    #[test]
    fn the_table_shows_each_node_and_marks_silent_ones() {
        let body = json!({
            "master": "m1", "ring_epoch": 255, "ring_members": 1, "rebalancing": false,
            "nodes": [
                {"id": "aux-1", "state": "up", "answered": true, "items": 50,
                 "capacity_items": 100, "bytes": 2048, "capacity_bytes": null,
                 "hit_ratio": 0.75, "evictions": 3},
                {"id": "aux-2", "state": "down", "answered": false, "items": 7,
                 "bytes": 10, "hit_ratio": null, "evictions": null}
            ],
            "totals": {"nodes": 2, "nodes_up": 1, "items": 57, "bytes": 2058,
                       "hit_ratio": 0.75, "evictions": 3}
        });
        let text = render(&body);
        let aux1 = text
            .lines()
            .find(|l| l.starts_with("aux-1"))
            .expect("aux-1 row");
        let cells: Vec<&str> = aux1.split_whitespace().collect();
        assert_eq!(
            cells,
            ["aux-1", "up", "50", "50%", "2.0", "KiB", "-", "75.0%", "3"],
            "{text}"
        );
        let aux2 = text
            .lines()
            .find(|l| l.starts_with("aux-2"))
            .expect("aux-2 row");
        assert!(aux2.contains("down*"), "{aux2}");
        assert!(text.contains("1/2 up"), "{text}");
        assert!(text.contains("did not answer"), "{text}");
    }
}
