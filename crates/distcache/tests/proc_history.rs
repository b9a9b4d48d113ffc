//! The history check: a Jepsen-style workload through every master while
//! the cluster goes through faults, with every operation recorded and the
//! whole history checked afterwards (see `history/checker.rs`).
//!
//! The workload (`history/workload.rs`): writers own disjoint sets of keys
//! and write or delete each key one operation at a time, each through a
//! master picked at random; readers read any key through any master.
//! Meanwhile an auxiliary joins, one leaves
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
#[path = "history/workload.rs"]
mod workload;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Cluster, Spec, wait_until};
use nix::sys::signal::Signal;
use workload::{Workload, live_masters};

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
    let workload = Workload::start((0..c.masters.len()).map(|m| c.url(m, "")).collect());
    let shared = workload.shared.clone();
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
    workload.finish_and_check();
}
