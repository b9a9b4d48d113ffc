//! The history check: a Jepsen-style workload through every master while
//! the cluster goes through faults, with every operation recorded and the
//! whole history checked afterwards (see `history/checker.rs`).
//!
//! Writers own disjoint sets of keys and write or delete each key one
//! operation at a time, each through a master picked at random; readers read
//! any key through any master. Meanwhile an auxiliary joins, one leaves
//! gracefully, one is paused (SIGSTOP) and resumed, one is SIGKILLed, the
//! master that leads the cluster map is SIGKILLed (another auxiliary joins
//! while it is gone) and restarted, another master is paused, and one
//! master's clock runs 1.5 s ahead of the others'. The check: no
//! acknowledged write lost, no delete undone, no read older than an
//! operation acknowledged before it began, and no client error while
//! nothing failed (steady state, a join, a graceful leave).

#[path = "history/checker.rs"]
mod checker;
mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use checker::{Effect, Kind, Op, Outcome};
use common::{Cluster, Lcg, Spec, encode, wait_until};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

const KEYS: usize = 48;
const WRITERS: usize = 4;
const READERS: usize = 2;

/// What the clients share with the test's thread.
struct Shared {
    /// Masters' base URLs.
    urls: Vec<String>,
    /// Masters that are up: clients pick among these, as a load balancer
    /// would skip a dead one.
    masters_up: Vec<AtomicBool>,
    /// Every operation, appended as it ends.
    history: Mutex<Vec<Op>>,
    /// Bumped at every change of phase.
    phase: AtomicUsize,
    /// Whether the current phase allows no client error.
    strict: AtomicBool,
    /// Client errors in strict phases.
    errors: Mutex<Vec<String>>,
    stop: AtomicBool,
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
    fn enter(&self, strict: bool) {
        self.strict.store(strict, Ordering::SeqCst);
        self.phase.fetch_add(1, Ordering::SeqCst);
    }
}

/// One request: its outcome and, for a read, what it saw.
fn send(
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
    if outcome != Outcome::Ok && strict {
        shared.errors.lock().unwrap().push(format!(
            "{kind:?} {key} through master {}: {answer} (phase {phase})",
            master + 1
        ));
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
fn live_masters(shared: &Shared) -> Vec<usize> {
    (0..shared.urls.len())
        .filter(|&m| shared.masters_up[m].load(Ordering::SeqCst))
        .collect()
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[test]
fn no_lost_write_no_undone_delete_no_stale_read_through_faults() {
    // Master 2's clock runs 1.5 s ahead of master 1's: order must come
    // from the operations, not from the clocks.
    let mut c = Cluster::start(Spec {
        masters: 3,
        auxiliaries: 5,
        replicas: 2,
        master_env_each: vec![Vec::new(), vec![("CLOCK_OFFSET_MS".into(), "1500".into())]],
        ..Spec::default()
    });
    let all = ["aux-1", "aux-2", "aux-3", "aux-4", "aux-5"];
    c.wait_settled(&all);
    let shared = Arc::new(Shared {
        urls: (0..c.masters.len()).map(|m| c.url(m, "")).collect(),
        masters_up: (0..c.masters.len())
            .map(|_| AtomicBool::new(true))
            .collect(),
        history: Mutex::new(Vec::new()),
        phase: AtomicUsize::new(0),
        strict: AtomicBool::new(true),
        errors: Mutex::new(Vec::new()),
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
    let pause = || std::thread::sleep(Duration::from_millis(700));
    pause();

    eprintln!("history: a join");
    shared.enter(true);
    c.add_aux("aux-6");
    c.wait_for_up(6);
    c.wait_settled(&["aux-1", "aux-2", "aux-3", "aux-4", "aux-5", "aux-6"]);
    pause();

    eprintln!("history: a graceful leave");
    shared.enter(true);
    let resp = c.http.delete(c.url(1, "/nodes/aux-2")).send().unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text());
    c.wait_settled(&["aux-1", "aux-3", "aux-4", "aux-5", "aux-6"]);
    pause();

    eprintln!("history: an auxiliary paused for 4 s, then resumed");
    shared.enter(false);
    c.aux("aux-3").proc.signal(Signal::SIGSTOP);
    std::thread::sleep(Duration::from_secs(4));
    c.aux("aux-3").proc.signal(Signal::SIGCONT);
    c.wait_settled(&["aux-1", "aux-3", "aux-4", "aux-5", "aux-6"]);
    pause();

    eprintln!("history: an auxiliary SIGKILLed");
    shared.enter(false);
    c.aux("aux-4").proc.kill();
    c.wait_settled(&["aux-1", "aux-3", "aux-5", "aux-6"]);
    pause();

    eprintln!(
        "history: the map's leader SIGKILLed, an auxiliary joins meanwhile, the leader restarted"
    );
    shared.enter(false);
    let leader = c.map_leader();
    shared.masters_up[leader].store(false, Ordering::SeqCst);
    c.masters[leader].proc.kill();
    // The two others elect a new leader and go on changing the map.
    c.add_aux("aux-7");
    c.wait_settled_through(
        &live_masters(&shared),
        &["aux-1", "aux-3", "aux-5", "aux-6", "aux-7"],
    );
    c.masters[leader].proc.restart();
    let url = c.url(leader, "/health");
    wait_until(
        Duration::from_secs(30),
        "the restarted master answers",
        || c.http.get(&url).send().is_ok(),
    );
    c.wait_settled(&["aux-1", "aux-3", "aux-5", "aux-6", "aux-7"]);
    shared.masters_up[leader].store(true, Ordering::SeqCst);
    pause();

    eprintln!("history: a master paused (cut off from the others) for 3 s");
    shared.enter(false);
    let paused = (c.map_leader() + 1) % c.masters.len();
    shared.masters_up[paused].store(false, Ordering::SeqCst);
    c.masters[paused].proc.signal(Signal::SIGSTOP);
    std::thread::sleep(Duration::from_secs(3));
    c.masters[paused].proc.signal(Signal::SIGCONT);
    shared.masters_up[paused].store(true, Ordering::SeqCst);
    pause();

    eprintln!("history: steady again");
    shared.enter(true);
    pause();
    shared.stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().unwrap();
    }
    let finished = Instant::now();

    // The final reads: every key through every master.
    let http = client();
    for k in 0..KEYS {
        let key = format!("h{k}");
        for m in 0..c.masters.len() {
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
    eprintln!(
        "history: {} operations; {report}; client errors while nothing failed: {}",
        history.len(),
        errors.len()
    );
    let shown: Vec<String> = report
        .anomalies
        .iter()
        .take(10)
        .map(|a| a.to_string())
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
