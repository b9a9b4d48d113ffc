//! Commands that read and change a value (INCR, RPUSH) run at the key's
//! leader, one at a time, and reach the other replicas before they are
//! acknowledged: eight clients hammering one counter and one list through
//! every master lose nothing, and neither does a SIGKILL of the key's
//! leader in the middle (`REPLICAS=2`), whether the clients send one
//! command at a time or pipelines.
//!
//! What is checked, over the whole run:
//! - every acknowledged INCR answered a different number (two that saw the
//!   same value would mean one increment was lost or applied twice);
//! - the final counter is the acknowledged increments plus at most the
//!   failed ones (whose answer was lost: they may or may not have run);
//! - every acknowledged push is in the list exactly once, every element
//!   is a push that was sent, and the length is the acknowledged pushes
//!   plus at most the failed ones.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Cluster, Lcg, Spec};
use nix::sys::signal::{Signal, kill};
use serde_json::{Value, json};

const CLIENTS: usize = 8;
const COUNTER: &str = "hits";
const LIST: &str = "events";

/// What the clients saw.
#[derive(Default)]
struct Tally {
    /// Numbers acknowledged INCRs answered.
    incr_answers: Vec<i64>,
    incr_failed: usize,
    /// Elements whose RPUSH was acknowledged.
    pushed: Vec<String>,
    /// Elements whose RPUSH failed (may or may not be in the list).
    push_failed: Vec<String>,
}

fn command(http: &reqwest::blocking::Client, url: &str, args: &[&str]) -> Result<Value, String> {
    let resp = http
        .post(format!("{url}/"))
        .json(&json!(args))
        .timeout(Duration::from_secs(10))
        .send()
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let body: Value = resp.json().map_err(|e| e.to_string())?;
    match body.get("result") {
        Some(result) if status.is_success() => Ok(result.clone()),
        _ => Err(format!("{status}: {body}")),
    }
}

/// How the clients send their commands.
#[derive(Clone, Copy)]
enum Sending {
    /// One command per `POST /`.
    OneByOne,
    /// `POST /pipeline`s of this many INCRs and as many RPUSHes,
    /// alternated: the master sends each key's to its leader together.
    Pipelines(usize),
}

/// `POST /pipeline` of `commands`: each one's answer, or an error for all
/// when the request itself failed.
fn pipeline(
    http: &reqwest::blocking::Client,
    url: &str,
    commands: &[Vec<String>],
) -> Vec<Result<Value, String>> {
    let failed = |e: String| commands.iter().map(|_| Err(e.clone())).collect();
    let resp = match http
        .post(format!("{url}/pipeline"))
        .json(&json!(commands))
        .timeout(Duration::from_secs(10))
        .send()
    {
        Ok(resp) => resp,
        Err(e) => return failed(e.to_string()),
    };
    let status = resp.status();
    let body: Value = match resp.json() {
        Ok(body) => body,
        Err(e) => return failed(e.to_string()),
    };
    match body.as_array() {
        Some(answers) if status.is_success() && answers.len() == commands.len() => answers
            .iter()
            .map(|a| a.get("result").cloned().ok_or_else(|| a.to_string()))
            .collect(),
        _ => failed(format!("{status}: {body}")),
    }
}

fn run_clients(
    urls: Vec<String>,
    sending: Sending,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..CLIENTS)
        .map(|client| {
            let urls = urls.clone();
            let stop = stop.clone();
            let tally = tally.clone();
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::new();
                let mut rng = Lcg(client as u64 + 1);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let url = &urls[rng.next() as usize % urls.len()];
                    let Sending::Pipelines(pairs) = sending else {
                        if n % 2 == 0 {
                            let answer = command(&http, url, &["INCR", COUNTER]);
                            tally.lock().unwrap().incr(answer);
                        } else {
                            let element = format!("c{client}-{n}");
                            let answer = command(&http, url, &["RPUSH", LIST, &element]);
                            tally.lock().unwrap().push(element, answer);
                        }
                        n += 1;
                        continue;
                    };
                    let mut commands = Vec::new();
                    let mut elements = Vec::new();
                    for _ in 0..pairs {
                        let element = format!("c{client}-{n}");
                        n += 1;
                        commands.push(vec!["INCR".to_owned(), COUNTER.to_owned()]);
                        commands.push(vec!["RPUSH".to_owned(), LIST.to_owned(), element.clone()]);
                        elements.push(element);
                    }
                    let answers = pipeline(&http, url, &commands);
                    let mut t = tally.lock().unwrap();
                    let mut answers = answers.into_iter();
                    for element in elements {
                        t.incr(answers.next().expect("an INCR's answer"));
                        t.push(element, answers.next().expect("an RPUSH's answer"));
                    }
                }
            })
        })
        .collect()
}

impl Tally {
    fn incr(&mut self, answer: Result<Value, String>) {
        match answer.ok().and_then(|v| v.as_i64()) {
            Some(v) => self.incr_answers.push(v),
            None => self.incr_failed += 1,
        }
    }

    fn push(&mut self, element: String, answer: Result<Value, String>) {
        match answer {
            Ok(v) if v.as_i64().is_some() => self.pushed.push(element),
            _ => self.push_failed.push(element),
        }
    }
}

fn check(c: &Cluster, tally: &Tally) {
    let http = reqwest::blocking::Client::new();
    let url = c.url(0, "");
    let answers: HashSet<i64> = tally.incr_answers.iter().copied().collect();
    assert_eq!(
        answers.len(),
        tally.incr_answers.len(),
        "two acknowledged INCRs answered the same number"
    );
    let counter: i64 = command(&http, &url, &["GET", COUNTER])
        .expect("GET the counter")
        .as_str()
        .expect("a string")
        .parse()
        .expect("a number");
    let acked = tally.incr_answers.len() as i64;
    assert!(
        counter >= acked && counter <= acked + tally.incr_failed as i64,
        "counter {counter}: {acked} acknowledged increments, {} failed",
        tally.incr_failed
    );
    if let Some(&highest) = tally.incr_answers.iter().max() {
        assert!(
            highest <= counter,
            "an INCR answered {highest}, above the final {counter}"
        );
    }
    let list = command(&http, &url, &["LRANGE", LIST, "0", "-1"]).expect("LRANGE");
    let list: Vec<&str> = list
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_str().expect("strings"))
        .collect();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for element in &list {
        *seen.entry(element).or_default() += 1;
    }
    for element in &tally.pushed {
        assert_eq!(
            seen.get(element.as_str()),
            Some(&1),
            "acknowledged push {element} in the list"
        );
    }
    let failed: HashSet<&str> = tally.push_failed.iter().map(String::as_str).collect();
    for (element, count) in &seen {
        assert_eq!(*count, 1, "{element} pushed once, found {count} times");
        assert!(
            tally.pushed.iter().any(|p| p == element) || failed.contains(element),
            "{element} in the list was never pushed"
        );
    }
    eprintln!(
        "counter {counter} ({acked} acknowledged, {} failed); list of {} ({} acknowledged, {} failed)",
        tally.incr_failed,
        list.len(),
        tally.pushed.len(),
        tally.push_failed.len()
    );
}

fn cluster() -> Cluster {
    let c = Cluster::start(Spec {
        masters: 3,
        auxiliaries: 3,
        replicas: 2,
        ..Spec::default()
    });
    c.wait_settled(&["aux-1", "aux-2", "aux-3"]);
    c
}

#[test]
fn eight_clients_on_one_counter_and_one_list_through_every_master_lose_nothing() {
    let c = cluster();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let urls = (0..c.masters.len()).map(|m| c.url(m, "")).collect();
    let clients = run_clients(urls, Sending::OneByOne, stop.clone(), tally.clone());
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let tally = tally.lock().unwrap();
    assert!(tally.incr_answers.len() > 100, "the clients got work done");
    assert_eq!(
        tally.incr_failed + tally.push_failed.len(),
        0,
        "nothing failed with every node up"
    );
    check(&c, &tally);
}

#[test]
fn a_sigkill_of_the_keys_leader_midway_loses_no_acknowledged_increment_or_push() {
    sigkill_the_counters_leader_midway(Sending::OneByOne);
}

/// The same with each client sending pipelines of 4 INCRs and 4 RPUSHes:
/// a batch at a leader that dies answers each of its commands with an
/// error, and whatever it ran is still checked like any other write.
#[test]
fn pipelines_lose_no_acknowledged_increment_or_push_across_a_sigkill_of_the_leader() {
    sigkill_the_counters_leader_midway(Sending::Pipelines(4));
}

fn sigkill_the_counters_leader_midway(sending: Sending) {
    let mut c = cluster();
    let counter_leader = c.leader_of(COUNTER);

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let urls = (0..c.masters.len()).map(|m| c.url(m, "")).collect();
    let clients = run_clients(urls, sending, stop.clone(), tally.clone());
    std::thread::sleep(Duration::from_secs(2));
    eprintln!("SIGKILL {counter_leader}, the counter's leader");
    let aux = c.aux(&counter_leader);
    let _ = kill(aux.proc.pid(), Signal::SIGKILL);
    aux.proc.kill();
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let tally = tally.lock().unwrap();
    let acked_after = tally.incr_answers.len();
    assert!(acked_after > 100, "the clients got work done");
    check(&c, &tally);
}
