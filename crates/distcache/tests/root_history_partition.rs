//! The history check (see `proc_history.rs`) through the fault it cannot make
//! with signals: one master cut off from one auxiliary only, for a few
//! seconds (4 s, or 2 s past the leader's verdict), while the other masters still reach that auxiliary and each
//! other, and the auxiliary still reaches every master.
//!
//! Each master runs in a network namespace of its own, all on one private
//! LAN with the host, where the auxiliaries run, each on an address of its
//! own (`common/netns.rs`, [`Lan`]); the cut is a blackhole route to that
//! one auxiliary's address in that one master's namespace. Needs root and
//! iproute2 (`ip`), as on CI.
//!
//! Two cases, as the cut master's role makes them differ:
//!
//! - the map's Raft leader: it judges the auxiliary down, the map drops it
//!   and its keys move to the others; healed, it is judged up and rejoins;
//! - a follower: the leader still sees the auxiliary up and the map does
//!   not change; the follower's writes and deletes of that auxiliary's keys
//!   fail (503, recorded as of unknown outcome), its reads fall back to the
//!   other replica.
//!
//! Either way: no acknowledged write lost, no delete undone, no stale read,
//! and no client error before the cut or once it has healed and settled.

#[path = "history/checker.rs"]
mod checker;
mod common;
#[path = "history/workload.rs"]
mod workload;

use std::time::{Duration, Instant};

use common::netns::Lan;
use common::{Cluster, NetnsHost, Spec, wait_until};
use workload::Workload;

const MASTERS: usize = 3;
const AUXILIARIES: usize = 4;
/// The auxiliary cut off (an index into the auxiliaries, from 0).
const CUT_AUX: usize = 1;
/// How long a follower stays cut off.
const CUT_FOR: Duration = Duration::from_secs(4);
/// How long the leader stays cut off once it has judged the auxiliary down.
const CUT_AFTER_VERDICT: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Leader,
    Follower,
}

/// 3 masters, each in its namespace of `lan`, and 4 auxiliaries on the
/// host's addresses of it (REPLICAS=2), settled; with the auxiliaries' ids.
fn start_on(lan: &Lan) -> (Cluster, Vec<String>) {
    let mut c = Cluster::start(Spec {
        masters: MASTERS,
        auxiliaries: 0,
        replicas: 2,
        master_hosts: (0..MASTERS)
            .map(|m| NetnsHost {
                netns: lan.master_netns(m).to_string(),
                ip: lan.master_ip(m),
            })
            .collect(),
        ..Spec::default()
    });
    let ids: Vec<String> = (1..=AUXILIARIES).map(|a| format!("aux-{a}")).collect();
    for (a, id) in ids.iter().enumerate() {
        // Bound to one address, it advertises that address (HTTP and data).
        c.add_aux_with(id, &[("BIND_ADDR".into(), lan.aux_ip(a))]);
    }
    c.wait_for_up(AUXILIARIES);
    c.wait_settled(&ids.iter().map(String::as_str).collect::<Vec<_>>());
    (c, ids)
}

/// Runs the workload on 3 masters and 4 auxiliaries (REPLICAS=2) and cuts
/// the master in `role` off from one auxiliary: a follower for
/// [`CUT_FOR`], the leader until it has judged the auxiliary down and
/// [`CUT_AFTER_VERDICT`] more.
fn one_master_cut_off_from_one_auxiliary(role: Role) {
    // Declared before the cluster, so dropped after its processes.
    let lan = Lan::create(MASTERS, AUXILIARIES);
    let (c, ids) = start_on(&lan);
    let all: Vec<&str> = ids.iter().map(String::as_str).collect();

    let workload = Workload::start((0..MASTERS).map(|m| c.url(m, "")).collect());
    let shared = workload.shared.clone();
    let pause = || std::thread::sleep(Duration::from_millis(700));
    eprintln!("history: steady");
    pause();

    let leader = c.map_leader();
    let cut = match role {
        Role::Leader => leader,
        Role::Follower => (leader + 1) % MASTERS,
    };
    let others: Vec<usize> = (0..MASTERS).filter(|&m| m != cut).collect();
    let aux_id = ids[CUT_AUX].as_str();
    let aux_ip = lan.aux_ip(CUT_AUX);
    eprintln!(
        "history: master {} ({role:?}) cut off from {aux_id}",
        cut + 1
    );
    shared.enter(false);
    lan.cut(cut, &aux_ip);
    let down = || c.node_state(others[0], aux_id).as_deref() == Some("down");
    match role {
        Role::Leader => {
            // Its probes time out on the connections it holds (up to
            // REQUEST_TIMEOUT_MS each, FAILS_BEFORE_DOWN of them), so the
            // verdict takes a few seconds: wait for it, as the map applied
            // by another master shows it, then let keys move meanwhile.
            wait_until(
                Duration::from_secs(30),
                &format!("the leader, cut off from {aux_id}, judges it down"),
                down,
            );
            std::thread::sleep(CUT_AFTER_VERDICT);
        }
        Role::Follower => {
            // The leader still reaches the auxiliary: the map never changes.
            let until = Instant::now() + CUT_FOR;
            while Instant::now() < until {
                assert!(
                    !down(),
                    "{aux_id} judged down though only a follower is cut off from it"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    lan.heal(cut, &aux_ip);
    eprintln!("history: healed; waiting for the cluster to settle");
    c.wait_for_up(AUXILIARIES);
    c.wait_settled(&all);
    pause();

    eprintln!("history: steady again");
    shared.enter(true);
    pause();
    pause();
    let tolerated = shared.tolerated.lock().unwrap().clone();
    workload.finish_and_check();

    if role == Role::Follower {
        // The fault did what it was meant to.
        assert!(
            tolerated[cut] > 0,
            "no write through master {} failed while it was cut off from {aux_id}",
            cut + 1
        );
    }
}

#[test]
fn the_map_leader_cut_off_from_one_auxiliary_loses_no_write_and_serves_no_stale_read() {
    one_master_cut_off_from_one_auxiliary(Role::Leader);
}

#[test]
fn a_follower_cut_off_from_one_auxiliary_loses_no_write_and_serves_no_stale_read() {
    one_master_cut_off_from_one_auxiliary(Role::Follower);
}

/// One master and one auxiliary split off together from the rest: the
/// cut master reaches that auxiliary only, the other masters reach every
/// auxiliary but that one. The majority judges the auxiliary down and
/// moves its keys on, while the cut master could still read them there,
/// older than what the majority writes. Its lease lapses before the
/// majority routes around the auxiliary (which it cannot tell of the new
/// map), so it answers 503 instead: no stale read, no lost write, no
/// undone delete.
#[test]
fn a_master_split_off_with_an_auxiliary_serves_no_stale_read() {
    split_off_with_an_auxiliary(Role::Follower);
}

/// As above with the map's Raft leader split off. It keeps believing it
/// leads, and from where it is every other auxiliary looks down; those
/// verdicts must never reach the map, neither while it is cut off nor
/// through the new leader once the split heals: the majority's
/// auxiliaries stay up throughout.
#[test]
fn the_map_leader_split_off_with_an_auxiliary_never_has_the_others_judged_down() {
    split_off_with_an_auxiliary(Role::Leader);
}

fn split_off_with_an_auxiliary(role: Role) {
    let lan = Lan::create(MASTERS, AUXILIARIES);
    let (c, ids) = start_on(&lan);
    let all: Vec<&str> = ids.iter().map(String::as_str).collect();

    let workload = Workload::start((0..MASTERS).map(|m| c.url(m, "")).collect());
    let shared = workload.shared.clone();
    let pause = || std::thread::sleep(Duration::from_millis(700));
    pause();

    let cut = match role {
        Role::Leader => c.map_leader(),
        Role::Follower => (c.map_leader() + 1) % MASTERS,
    };
    let others: Vec<usize> = (0..MASTERS).filter(|&m| m != cut).collect();
    let aux_id = ids[CUT_AUX].as_str();
    // Every route the split takes: (master, address it no longer reaches).
    let mut routes = Vec::new();
    for &o in &others {
        routes.push((cut, lan.master_ip(o)));
        routes.push((o, lan.master_ip(cut)));
        routes.push((o, lan.aux_ip(CUT_AUX)));
    }
    for a in (0..AUXILIARIES).filter(|&a| a != CUT_AUX) {
        routes.push((cut, lan.aux_ip(a)));
    }
    // The auxiliaries the majority reaches, as the majority's masters see
    // them, noted whenever one is not up.
    let majority_side: Vec<&str> = all.iter().copied().filter(|id| *id != aux_id).collect();
    let mut judged_down: Vec<String> = Vec::new();
    let mut watch = |what: &str| {
        for &o in &others {
            for id in &majority_side {
                let state = c.node_state(o, id);
                if state.as_deref() != Some("up") {
                    judged_down.push(format!("{what}: master {} sees {id} {state:?}", o + 1));
                }
            }
        }
    };
    eprintln!(
        "history: master {} ({role:?}) split off with {aux_id}",
        cut + 1
    );
    shared.enter(false);
    for (m, addr) in &routes {
        lan.cut(*m, addr);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.node_state(others[0], aux_id).as_deref() != Some("down") {
        assert!(
            Instant::now() < deadline,
            "the majority never judged {aux_id} down"
        );
        watch("split");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Past the lease the majority waits out, and long enough for writes
    // to the auxiliary's keys to land elsewhere.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        watch("split");
        std::thread::sleep(Duration::from_millis(100));
    }
    let refusals = common::metric_value(
        &c.get_text(cut, "/metrics"),
        "distcache_lease_refusals_total",
    );
    for (m, addr) in &routes {
        lan.heal(*m, addr);
    }
    eprintln!("history: healed; waiting for the cluster to settle");
    // A deposed leader's verdicts came in within moments of the heal.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        watch("healed");
        std::thread::sleep(Duration::from_millis(50));
    }
    c.wait_for_up(AUXILIARIES);
    c.wait_settled(&all);
    // The cut master's own view looked settled all along (the map it kept
    // had every auxiliary up): it is back once it has caught up with the
    // others' map and holds a lease again.
    wait_until(
        Duration::from_secs(60),
        &format!("master {} caught up, with a lease", cut + 1),
        || {
            let health = c.health(cut);
            health["map"]["lease"] == true
                && health["ring_epoch"] == c.health(others[0])["ring_epoch"]
        },
    );
    c.wait_settled(&all);
    pause();
    shared.enter(true);
    pause();
    pause();
    workload.finish_and_check();
    // The lease did what it was meant to.
    assert!(
        refusals > Some(0.0),
        "master {} refused nothing while split off: {refusals:?}",
        cut + 1
    );
    assert!(
        judged_down.is_empty(),
        "auxiliaries the majority reached were judged down: {judged_down:#?}"
    );
}
