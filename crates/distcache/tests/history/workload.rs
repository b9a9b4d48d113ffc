//! The history check's workload, shared by the tests that put a cluster
//! through faults while it runs (`proc_history.rs`, `root_history_partition.rs`).
//!
//! Writers own disjoint sets of keys and write or delete each key one
//! operation at a time, each through a master picked at random; readers read
//! any key through any master. Every operation is recorded; at the end every
//! key is read through every master and the whole history goes to the
//! checker (`checker.rs`).

// Each test crate that includes this uses only part of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::checker::{self, Effect, Kind, Op, Outcome};
use crate::common::{Lcg, encode};

const KEYS: usize = 48;
const WRITERS: usize = 4;
const READERS: usize = 2;

/// What the clients share with the test's thread.
pub struct Shared {
    /// Masters' base URLs.
    pub urls: Vec<String>,
    /// Masters that are up: clients pick among these, as a load balancer
    /// would skip a dead one.
    pub masters_up: Vec<AtomicBool>,
    /// Every operation, appended as it ends.
    pub history: Mutex<Vec<Op>>,
    /// Bumped at every change of phase.
    pub phase: AtomicUsize,
    /// Whether the current phase allows no client error.
    pub strict: AtomicBool,
    /// Client errors in strict phases.
    pub errors: Mutex<Vec<String>>,
    /// Client errors in the other phases (faults), by master.
    pub tolerated: Mutex<Vec<usize>>,
    /// When each phase began (the first when the workload started), so
    /// that an anomaly can be placed in its phase.
    pub phase_starts: Mutex<Vec<Instant>>,
    pub stop: AtomicBool,
}

impl Shared {
    fn pick_master(&self, rng: &mut Lcg) -> usize {
        loop {
            let m = rng.next() as usize % self.urls.len();
            if self.masters_up[m].load(Ordering::SeqCst) {
                return m;
            }
        }
    }

    /// Enters a new phase; `strict` phases allow no client error.
    pub fn enter(&self, strict: bool) {
        self.strict.store(strict, Ordering::SeqCst);
        self.phase.fetch_add(1, Ordering::SeqCst);
        self.phase_starts.lock().unwrap().push(Instant::now());
    }

    /// "phase N, +M ms": where in the run `at` falls.
    pub fn place(&self, at: Instant) -> String {
        let starts = self.phase_starts.lock().unwrap();
        let phase = starts.iter().rposition(|&s| s <= at).unwrap_or(0);
        format!(
            "phase {phase}, +{} ms",
            at.saturating_duration_since(starts[phase]).as_millis()
        )
    }
}

/// One request: its outcome and, for a read, what it saw.
pub fn send(
    http: &reqwest::blocking::Client,
    url: &str,
    key: &str,
    kind: Kind,
) -> (Outcome, Kind, String) {
    let path = format!("{url}/data/{}", encode(key));
    let result = match kind {
        Kind::Write(v) => http
            .post(format!("{url}/data"))
            .json(&json!({"key": key, "value": v}))
            .send(),
        Kind::Delete => http.delete(&path).send(),
        Kind::Read(_) => http.get(&path).send(),
    };
    let resp = match result {
        Ok(resp) => resp,
        Err(e) => return (Outcome::Unknown, kind, e.to_string()),
    };
    let status = resp.status().as_u16();
    let body = resp.text().unwrap_or_default();
    let outcome = match (kind, status) {
        (_, 200) | (Kind::Delete | Kind::Read(_), 404) => Outcome::Ok,
        (_, 500..) => Outcome::Unknown,
        _ => Outcome::Failed,
    };
    let kind = match (kind, status) {
        (Kind::Read(_), 200) => {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            match v["value"].as_i64() {
                Some(n) => Kind::Read(Effect::Value(n)),
                None => return (Outcome::Failed, kind, format!("odd answer {body}")),
            }
        }
        (Kind::Read(_), _) => Kind::Read(Effect::Absent),
        (kind, _) => kind,
    };
    (outcome, kind, format!("{status} {body}"))
}

/// Runs `kind` on `key` through a random live master and records it.
fn run_op(shared: &Shared, http: &reqwest::blocking::Client, rng: &mut Lcg, key: &str, kind: Kind) {
    let master = shared.pick_master(rng);
    let phase = shared.phase.load(Ordering::SeqCst);
    let strict = shared.strict.load(Ordering::SeqCst);
    let start = Instant::now();
    let (outcome, kind, answer) = send(http, &shared.urls[master], key, kind);
    let end = Instant::now();
    let strict = strict && shared.phase.load(Ordering::SeqCst) == phase;
    if outcome != Outcome::Ok {
        if strict {
            shared.errors.lock().unwrap().push(format!(
                "{kind:?} {key} through master {}: {answer} (phase {phase})",
                master + 1
            ));
        } else {
            shared.tolerated.lock().unwrap()[master] += 1;
        }
    }
    shared.history.lock().unwrap().push(Op {
        key: key.to_string(),
        kind,
        start,
        end,
        outcome,
        master,
    });
}

fn writer(shared: Arc<Shared>, w: usize) {
    let http = client();
    let mut rng = Lcg(w as u64 + 11);
    let mut next_value = (w as i64 + 1) * 1_000_000_000;
    let own: Vec<usize> = (0..KEYS).filter(|k| k % WRITERS == w).collect();
    while !shared.stop.load(Ordering::Relaxed) {
        let key = format!("h{}", own[rng.next() as usize % own.len()]);
        let roll = rng.next() % 100;
        let kind = if roll < 55 {
            next_value += 1;
            Kind::Write(next_value)
        } else if roll < 75 {
            Kind::Delete
        } else {
            Kind::Read(Effect::Absent)
        };
        run_op(&shared, &http, &mut rng, &key, kind);
    }
}

fn reader(shared: Arc<Shared>, r: usize) {
    let http = client();
    let mut rng = Lcg(r as u64 + 101);
    while !shared.stop.load(Ordering::Relaxed) {
        let key = format!("h{}", rng.next() as usize % KEYS);
        run_op(&shared, &http, &mut rng, &key, Kind::Read(Effect::Absent));
    }
}

/// The masters the clients may use now.
pub fn live_masters(shared: &Shared) -> Vec<usize> {
    (0..shared.urls.len())
        .filter(|&m| shared.masters_up[m].load(Ordering::SeqCst))
        .collect()
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The clients at work, and what they recorded.
pub struct Workload {
    pub shared: Arc<Shared>,
    clients: Vec<JoinHandle<()>>,
}

impl Workload {
    /// Starts the writers and readers on the masters at `urls`, in a strict
    /// phase (no client error allowed).
    pub fn start(urls: Vec<String>) -> Workload {
        let masters = urls.len();
        let shared = Arc::new(Shared {
            urls,
            masters_up: (0..masters).map(|_| AtomicBool::new(true)).collect(),
            history: Mutex::new(Vec::new()),
            phase: AtomicUsize::new(0),
            strict: AtomicBool::new(true),
            errors: Mutex::new(Vec::new()),
            tolerated: Mutex::new(vec![0; masters]),
            phase_starts: Mutex::new(vec![Instant::now()]),
            stop: AtomicBool::new(false),
        });
        let mut clients = Vec::new();
        for w in 0..WRITERS {
            let shared = shared.clone();
            clients.push(std::thread::spawn(move || writer(shared, w)));
        }
        for r in 0..READERS {
            let shared = shared.clone();
            clients.push(std::thread::spawn(move || reader(shared, r)));
        }
        Workload { shared, clients }
    }

    /// Stops the clients, reads every key through every master, checks the
    /// whole history and prints the figures; panics on any anomaly, on any
    /// client error in a strict phase, or if too few reads were checked.
    /// Waits until the clients have made `n` reads that answered, `limit`
    /// at most: the check needs enough of them to prove anything, and a
    /// busy machine fits fewer into a test's fixed phases.
    pub fn wait_for_reads(&self, n: usize, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            let reads = self
                .shared
                .history
                .lock()
                .unwrap()
                .iter()
                .filter(|op| op.outcome == Outcome::Ok && matches!(op.kind, Kind::Read(_)))
                .count();
            if reads >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn finish_and_check(self) {
        let shared = self.shared;
        shared.stop.store(true, Ordering::SeqCst);
        for client in self.clients {
            client.join().unwrap();
        }
        let finished = Instant::now();

        // The final reads: every key through every master.
        let http = client();
        for k in 0..KEYS {
            let key = format!("h{k}");
            for m in 0..shared.urls.len() {
                let start = Instant::now();
                let (outcome, kind, answer) =
                    send(&http, &shared.urls[m], &key, Kind::Read(Effect::Absent));
                assert_eq!(outcome, Outcome::Ok, "final read of {key}: {answer}");
                shared.history.lock().unwrap().push(Op {
                    key: key.clone(),
                    kind,
                    start,
                    end: Instant::now(),
                    outcome,
                    master: m,
                });
            }
        }

        let history = shared.history.lock().unwrap();
        let report = checker::check(&history, finished);
        let errors = shared.errors.lock().unwrap();
        let tolerated = shared.tolerated.lock().unwrap();
        eprintln!(
            "history: {} operations; {report}; client errors while nothing failed: {}, during faults: {} (by master: {:?})",
            history.len(),
            errors.len(),
            tolerated.iter().sum::<usize>(),
            *tolerated
        );
        let shown: Vec<String> = report
            .anomalies
            .iter()
            .take(10)
            .map(|a| {
                format!(
                    "{a} (read from {} to {})",
                    shared.place(a.read.start),
                    shared.place(a.read.end)
                )
            })
            .collect();
        assert!(
            report.anomalies.is_empty(),
            "{} anomalies, the first ones:\n{}",
            report.anomalies.len(),
            shown.join("\n")
        );
        assert!(
            errors.is_empty(),
            "{} client errors while nothing failed, the first ones:\n{}",
            errors.len(),
            errors[..errors.len().min(10)].join("\n")
        );
        assert!(report.reads_checked > 1000, "too few reads: {report}");
    }
}
