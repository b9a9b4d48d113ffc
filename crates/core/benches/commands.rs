//! A push onto a long list against a push onto an empty one, through the
//! store as an auxiliary runs it: the figures quoted in docs/performance.md
//! ("Commands on the store") and docs/backups.md (the changes records).
//! Not a test: run it with `cargo bench -p distcache-core --bench commands`
//! (add `-- N` for another list length than 100,000).
//!
//! Three cases, each `RPUSH key x` one at a time:
//!
//! - empty: onto a key that holds nothing (a new one each push);
//! - short: onto one of 1,000 existing lists of a few elements (at most
//!   100 by the last round): an existing key, like the long list;
//! - long: onto one list of N elements (N to N + pushes);
//! - whole value: what a push onto the long list cost before the store kept
//!   collections decoded, done by hand: decode the stored list, push,
//!   encode it, and log the whole value.
//!
//! For each: the leader's time per push (`Store::execute`, the executor
//! included), a replica's (`Store::apply_changes` of the shipped ops) and
//! the mutation log bytes per push (what `record` is given, appended as
//! the log appends it).

use std::time::{Duration, Instant};

use bytes::Bytes;
use distcache_core::command::table;
use distcache_core::keyspace::{Keyspace, Outcome};
use distcache_core::mutation_log::{self, Mutation};
use distcache_core::store::{ApplyOutcome, Executed};
use distcache_core::value::{ListValue, Value, stored};
use distcache_core::{Entry, Store, StoreConfig, Version};
use rand::SeedableRng;
use rand::rngs::StdRng;

const NOW: u64 = 1_700_000_000_000;
/// Pushes timed per case and round.
const PUSHES: usize = 20_000;
const ROUNDS: usize = 5;

fn version(n: u64) -> Version {
    Version {
        millis: NOW + n,
        counter: 0,
        origin: 1,
    }
}

fn store() -> Store {
    Store::new(StoreConfig {
        max_items: 1_000_000,
        ..StoreConfig::default()
    })
}

fn push_on(ks: &mut Keyspace, key: &[u8]) -> Outcome {
    let args = [
        Bytes::from_static(b"RPUSH"),
        Bytes::copy_from_slice(key),
        Bytes::from_static(b"x"),
    ];
    let command = table::parse(&args).expect("RPUSH parses");
    let mut rng = StdRng::seed_from_u64(0);
    ks.execute(&command, NOW, &mut rng)
}

/// A stored list of `n` 14-byte elements under `key`, on `stores`.
fn seed_list(stores: &[&Store], key: &[u8], n: usize) {
    let list: ListValue = (0..n)
        .map(|i| Bytes::from(format!("element-{i:06}")))
        .collect();
    let entry = Entry {
        value: Bytes::from(stored::to_stored(&Value::List(list))),
        expires_at_ms: None,
        version: version(0),
    };
    for store in stores {
        store.set(key, entry.clone(), NOW);
    }
}

/// Per push: leader time, replica time, log bytes.
struct Figures {
    leader: Duration,
    replica: Duration,
    log_bytes: f64,
}

/// `PUSHES` pushes through a leader and a replica; `key_of(i)` names the
/// key of push `i`. Versions continue from `*next`.
fn run_pushes(
    leader: &Store,
    replica: &Store,
    next: &mut u64,
    key_of: impl Fn(usize) -> Vec<u8>,
) -> Figures {
    let mut leader_time = Duration::ZERO;
    let mut replica_time = Duration::ZERO;
    let mut log = Vec::new();
    for i in 0..PUSHES {
        *next += 1;
        let at = version(*next);
        let key = Bytes::from(key_of(i));
        let started = Instant::now();
        let executed = leader.execute(
            std::slice::from_ref(&key),
            Some(at),
            NOW,
            usize::MAX,
            &|| true,
            |ks| Some(push_on(ks, &key)),
            &mut |m| mutation_log::append(&mut log, m).expect("a record"),
        );
        leader_time += started.elapsed();
        let Executed::Ran { changes, .. } = executed else {
            panic!("the push did not run: {executed:?}");
        };
        let started = Instant::now();
        let applied = replica.apply_changes(&changes, at, NOW, usize::MAX, &mut |_| {});
        replica_time += started.elapsed();
        assert!(applied.iter().all(|a| *a == ApplyOutcome::Applied));
    }
    Figures {
        leader: leader_time / PUSHES as u32,
        replica: replica_time / PUSHES as u32,
        log_bytes: log.len() as f64 / PUSHES as f64,
    }
}

/// What a push onto the long list cost when the store held its stored
/// bytes: decode them, push, encode the result, log the whole value.
fn whole_value_push(stored_bytes: &mut Vec<u8>, at: Version) -> usize {
    let mut value = stored::from_stored(stored_bytes).expect("decodes");
    let Value::List(list) = &mut value else {
        unreachable!("a list")
    };
    list.push(false, Bytes::from_static(b"x"));
    *stored_bytes = stored::to_stored(&value);
    let mut log = Vec::new();
    let entry = Entry {
        value: Bytes::new(),
        expires_at_ms: None,
        version: at,
    };
    let mut view = entry.view();
    view.value = stored_bytes;
    mutation_log::append(
        &mut log,
        &Mutation::Set {
            key: b"long",
            entry: view,
        },
    )
    .expect("a record");
    log.len()
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let leader = store();
    let replica = store();
    seed_list(&[&leader, &replica], b"long", n);
    let mut next = 0u64;
    let mut best: Option<[Figures; 3]> = None;
    for round in 0..ROUNDS {
        let empty = run_pushes(&leader, &replica, &mut next, |i| {
            format!("empty-{round}-{i}").into_bytes()
        });
        let short = run_pushes(&leader, &replica, &mut next, |i| {
            format!("short-{}", i % 1_000).into_bytes()
        });
        let long = run_pushes(&leader, &replica, &mut next, |_| b"long".to_vec());
        let total = |f: &[Figures; 3]| f.iter().map(|f| f.leader + f.replica).sum::<Duration>();
        let figures = [empty, short, long];
        if best.as_ref().is_none_or(|b| total(&figures) < total(b)) {
            best = Some(figures);
        }
    }
    let [empty, short, long] = best.expect("at least one round");

    // The old path, a few hundred pushes: each one is O(n).
    let list: ListValue = (0..n)
        .map(|i| Bytes::from(format!("element-{i:06}")))
        .collect();
    let mut stored_bytes = stored::to_stored(&Value::List(list));
    let whole_pushes = 200;
    let started = Instant::now();
    let mut whole_log = 0;
    for i in 0..whole_pushes {
        whole_log += whole_value_push(&mut stored_bytes, version(i));
    }
    let whole = started.elapsed() / whole_pushes as u32;

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("RPUSH of one element, {PUSHES} pushes per case, best of {ROUNDS} rounds:");
    println!(
        "  onto an empty list:        leader {:.2} µs, replica {:.2} µs, log {:.0} bytes/push",
        us(empty.leader),
        us(empty.replica),
        empty.log_bytes
    );
    println!(
        "  onto a short list:         leader {:.2} µs, replica {:.2} µs, log {:.0} bytes/push",
        us(short.leader),
        us(short.replica),
        short.log_bytes
    );
    println!(
        "  onto a list of {n}:     leader {:.2} µs, replica {:.2} µs, log {:.0} bytes/push ({n} to {} elements)",
        us(long.leader),
        us(long.replica),
        long.log_bytes,
        n + PUSHES,
    );
    for (name, base) in [("empty", &empty), ("short", &short)] {
        println!(
            "  ratio long/{name}:          leader {:.2}×, replica {:.2}×, log {:.2}×",
            long.leader.as_secs_f64() / base.leader.as_secs_f64(),
            long.replica.as_secs_f64() / base.replica.as_secs_f64(),
            long.log_bytes / base.log_bytes
        );
    }
    println!(
        "  whole value (before):      {:.0} µs and {} log bytes per push onto a list of {n}",
        us(whole),
        whole_log / whole_pushes as usize
    );
}
