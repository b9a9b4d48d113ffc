//! Commands that read and change a value (INCR, RPUSH) run at the key's
//! leader, one at a time, and reach the other replicas before they are
//! acknowledged: eight clients hammering one counter and one list through
//! every master lose nothing, and neither does a SIGKILL of the key's
//! leader in the middle (`REPLICAS=2`).
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
use distcache_core::Ring;
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

fn run_clients(
    urls: Vec<String>,
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
                    if n % 2 == 0 {
                        let answer = command(&http, url, &["INCR", COUNTER]);
                        let mut t = tally.lock().unwrap();
                        match answer.ok().and_then(|v| v.as_i64()) {
                            Some(v) => t.incr_answers.push(v),
                            None => t.incr_failed += 1,
                        }
                    } else {
                        let element = format!("c{client}-{n}");
                        let answer = command(&http, url, &["RPUSH", LIST, &element]);
                        let mut t = tally.lock().unwrap();
                        match answer {
                            Ok(v) if v.as_i64().is_some() => t.pushed.push(element),
                            _ => t.push_failed.push(element),
                        }
                    }
                    n += 1;
                }
            })
        })
        .collect()
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
    let clients = run_clients(urls, stop.clone(), tally.clone());
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
    let mut c = cluster();
    let ring: Value = c.get_json(0, "/ring");
    let members: Vec<String> = ring["committed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    let vnodes = ring["virtual_nodes"].as_u64().unwrap() as u32;
    let placement = Ring::new(members.clone(), vnodes);
    let counter_leader =
        members[placement.replicas_for(COUNTER.as_bytes(), 2).as_slice()[0] as usize].clone();

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let urls = (0..c.masters.len()).map(|m| c.url(m, "")).collect();
    let clients = run_clients(urls, stop.clone(), tally.clone());
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
