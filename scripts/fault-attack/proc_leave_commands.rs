//! Commands (INCR, RPUSH) through every master while auxiliaries join and
//! leave gracefully (SIGTERM): a graceful leave must lose no acknowledged
//! increment or push, and no two acknowledged INCRs may answer the same
//! number. Found by the fault attack (scripts/fault-attack/): on main at
//! c878184 a leave during such load lost acknowledged increments and pushes,
//! and INCRs answered numbers already answered (once, the whole counter went
//! back to 1).
//!
//! The checks are those of `proc_commands_concurrency.rs`.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Cluster, Lcg, Spec};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

const CLIENTS: usize = 16;
/// Counters and lists: enough that every leave moves some of them.
const KEYS: usize = 12;

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
#[allow(dead_code)]
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
    tallies: Arc<Vec<Mutex<Tally>>>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..CLIENTS)
        .map(|client| {
            let urls = urls.clone();
            let stop = stop.clone();
            let tallies = tallies.clone();
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::new();
                let mut rng = Lcg(client as u64 + 1);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let url = &urls[rng.next() as usize % urls.len()];
                    let key = rng.next() as usize % KEYS;
                    let tally = &tallies[key];
                    let (counter, list) = (format!("hits-{key}"), format!("events-{key}"));
                    let Sending::Pipelines(pairs) = sending else {
                        if n % 2 == 0 {
                            let answer = command(&http, url, &["INCR", &counter]);
                            tally.lock().unwrap().incr(answer);
                        } else {
                            let element = format!("c{client}-{n}");
                            let answer = command(&http, url, &["RPUSH", &list, &element]);
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
                        commands.push(vec!["INCR".to_owned(), counter.clone()]);
                        commands.push(vec!["RPUSH".to_owned(), list.clone(), element.clone()]);
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

fn check(c: &Cluster, key: usize, tally: &Tally) {
    let (counter_key, list_key) = (format!("hits-{key}"), format!("events-{key}"));
    let http = reqwest::blocking::Client::new();
    let url = c.url(0, "");
    let answers: HashSet<i64> = tally.incr_answers.iter().copied().collect();
    assert_eq!(
        answers.len(),
        tally.incr_answers.len(),
        "{counter_key}: two acknowledged INCRs answered the same number"
    );
    let counter: i64 = command(&http, &url, &["GET", &counter_key])
        .expect("GET the counter")
        .as_str()
        .expect("a string")
        .parse()
        .expect("a number");
    let acked = tally.incr_answers.len() as i64;
    assert!(
        counter >= acked && counter <= acked + tally.incr_failed as i64,
        "{counter_key} = {counter}: {acked} acknowledged increments, {} failed",
        tally.incr_failed
    );
    if let Some(&highest) = tally.incr_answers.iter().max() {
        assert!(
            highest <= counter,
            "an INCR answered {highest}, above the final {counter}"
        );
    }
    let list = command(&http, &url, &["LRANGE", &list_key, "0", "-1"]).expect("LRANGE");
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
            "acknowledged push {element} in {list_key}"
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
        "{counter_key} {counter} ({acked} acknowledged, {} failed); list of {} ({} acknowledged, {} failed)",
        tally.incr_failed,
        list.len(),
        tally.pushed.len(),
        tally.push_failed.len()
    );
}

fn settled(c: &Cluster, members: &[String]) {
    let members: Vec<&str> = members.iter().map(String::as_str).collect();
    c.wait_settled(&members);
}

#[test]
fn joins_and_graceful_leaves_under_commands_through_every_master_lose_nothing() {
    let mut c = Cluster::start(Spec {
        masters: 3,
        auxiliaries: 4,
        replicas: 2,
        ..Spec::default()
    });
    let mut members: Vec<String> = (1..=4).map(|i| format!("aux-{i}")).collect();
    settled(&c, &members);
    let stop = Arc::new(AtomicBool::new(false));
    let tallies: Arc<Vec<Mutex<Tally>>> =
        Arc::new((0..KEYS).map(|_| Mutex::new(Tally::default())).collect());
    let urls = (0..c.masters.len()).map(|m| c.url(m, "")).collect();
    let clients = run_clients(urls, Sending::OneByOne, stop.clone(), tallies.clone());
    for k in 1..=4 {
        std::thread::sleep(Duration::from_millis(1500));
        if std::env::var_os("NO_CHANGE").is_some() {
            continue;
        }
        let joining = format!("aux-{}", k + 4);
        eprintln!("join {joining}");
        c.add_aux(&joining);
        members.push(joining);
        settled(&c, &members);
        std::thread::sleep(Duration::from_millis(1500));
        let leaving = format!("aux-{k}");
        eprintln!("SIGTERM {leaving}: a graceful leave");
        if std::env::var_os("JOIN_ONLY").is_some() {
            continue;
        }
        if std::env::var_os("LEAVE_BY_DELETE").is_some() {
            let resp = c
                .http
                .delete(c.url(0, &format!("/nodes/{leaving}")))
                .send()
                .unwrap();
            assert_eq!(resp.status(), 200, "{:?}", resp.text());
        } else {
            c.aux(&leaving).proc.signal(Signal::SIGTERM);
        }
        members.retain(|m| *m != leaving);
        settled(&c, &members);
    }
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let mut acked = 0;
    for (key, tally) in tallies.iter().enumerate() {
        let tally = tally.lock().unwrap();
        acked += tally.incr_answers.len();
        check(&c, key, &tally);
    }
    assert!(acked > 100, "the clients got work done");
}
