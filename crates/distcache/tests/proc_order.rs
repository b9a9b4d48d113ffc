//! Real-time order across masters, through real processes: an operation
//! that starts after another one on the same key was acknowledged is the one
//! whose effect stays, whichever masters took the two and whatever their
//! clocks say.
//!
//! Each check is a pair on a fresh key: the first operation through one
//! master, and as soon as its answer arrives, the second through the other.
//! Then both masters are asked for the key, and must both show the second
//! operation's effect. Three kinds of pairs (write then write, write then
//! delete, delete then write), both orders of masters, many pairs at once,
//! with the clocks in step and with one master's clock two seconds ahead or
//! behind (`CLOCK_OFFSET_MS`, a test setting).

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Cluster, Spec};
use serde_json::{Value, json};

/// Pairs of each kind and order of masters.
const PAIRS: usize = 2000;
/// Threads issuing pairs at once.
const THREADS: usize = 8;

#[derive(Clone, Copy, Debug)]
enum Kind {
    WriteThenWrite,
    WriteThenDelete,
    DeleteThenWrite,
}

const KINDS: [Kind; 3] = [
    Kind::WriteThenWrite,
    Kind::WriteThenDelete,
    Kind::DeleteThenWrite,
];

/// What went wrong with one pair, if anything.
fn check_pair(c: &Cluster, kind: Kind, first: usize, second: usize, key: &str) -> Option<String> {
    // A status, with the error's code when there is one, so that a failure
    // says why (a timeout under load reads differently from a fencing).
    let status = |resp: reqwest::blocking::Response| {
        let code = resp.status().as_u16();
        if code == 200 {
            return "200".to_string();
        }
        let body: Value = resp.json().unwrap_or(Value::Null);
        format!("{code} {}", body["error"]["code"].as_str().unwrap_or("?"))
    };
    let expected = match kind {
        Kind::WriteThenWrite => {
            let a = status(c.set(first, key, json!("first")));
            let b = status(c.set(second, key, json!("second")));
            if (a.as_str(), b.as_str()) != ("200", "200") {
                return Some(format!("answers {a}, {b}"));
            }
            Some(json!("second"))
        }
        Kind::WriteThenDelete => {
            let a = status(c.set(first, key, json!("first")));
            // The write was acknowledged, so the delete must find the key.
            let b = status(c.delete(second, key));
            if (a.as_str(), b.as_str()) != ("200", "200") {
                return Some(format!("answers {a}, {b}"));
            }
            None
        }
        Kind::DeleteThenWrite => {
            let setup = status(c.set(first, key, json!("doomed")));
            let a = status(c.delete(first, key));
            let b = status(c.set(second, key, json!("second")));
            if (setup.as_str(), a.as_str(), b.as_str()) != ("200", "200", "200") {
                return Some(format!("answers {setup}, {a}, {b}"));
            }
            Some(json!("second"))
        }
    };
    for master in [first, second] {
        let seen: Option<Value> = c.value(master, key);
        if seen != expected {
            return Some(format!(
                "master {} reads {seen:?}, expected {expected:?}",
                master + 1
            ));
        }
    }
    None
}

/// Runs every kind of pair in both orders of masters and returns the
/// anomalies, each with its pair.
fn run_pairs(c: &Cluster, label: &str) -> Vec<String> {
    let anomalies = Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    let jobs: Vec<(Kind, usize, usize)> = KINDS
        .iter()
        .flat_map(|&kind| [(kind, 1, 0), (kind, 0, 1)])
        .collect();
    let total = jobs.len() * PAIRS;
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        break;
                    }
                    let (kind, first, second) = jobs[n % jobs.len()];
                    let key = format!("{label}-{n}");
                    if let Some(what) = check_pair(c, kind, first, second, &key) {
                        anomalies.lock().unwrap().push(format!(
                            "{kind:?} master {} then master {}, key {key}: {what}",
                            first + 1,
                            second + 1
                        ));
                    }
                }
            });
        }
    });
    let anomalies = anomalies.into_inner().unwrap();
    eprintln!(
        "{label}: {total} pairs ({PAIRS} of each kind and order), {} anomalies",
        anomalies.len()
    );
    anomalies
}

fn cluster_with_clock_offset(offset_ms: i64) -> Cluster {
    Cluster::start(Spec {
        masters: 2,
        auxiliaries: 5,
        replicas: 2,
        master_env_each: vec![
            vec![("CLOCK_OFFSET_MS".into(), offset_ms.to_string())],
            Vec::new(),
        ],
        ..Spec::default()
    })
}

fn assert_real_time_order(offset_ms: i64, label: &str) {
    let c = cluster_with_clock_offset(offset_ms);
    let anomalies = run_pairs(&c, label);
    assert!(
        anomalies.is_empty(),
        "{} of {} pairs lost their second operation; the first few:\n{}",
        anomalies.len(),
        KINDS.len() * 2 * PAIRS,
        anomalies[..anomalies.len().min(10)].join("\n")
    );
    // Re-stamping is what makes it work when the clocks disagree: a master
    // whose clock is behind met newer versions and moved past them.
    if offset_ms != 0 {
        let restamped: f64 = (0..2)
            .filter_map(|m| {
                common::metric_value(
                    &c.get_text(m, "/metrics"),
                    "distcache_writes_restamped_total",
                )
            })
            .sum();
        assert!(
            restamped > 0.0,
            "with one clock {offset_ms} ms off, some write must have been re-stamped"
        );
    }
}

#[test]
fn a_later_operation_through_another_master_wins_with_clocks_in_step() {
    assert_real_time_order(0, "in-step");
}

#[test]
fn a_later_operation_through_another_master_wins_with_one_clock_2s_ahead() {
    assert_real_time_order(2000, "ahead");
}

#[test]
fn a_later_operation_through_another_master_wins_with_one_clock_2s_behind() {
    assert_real_time_order(-2000, "behind");
}
