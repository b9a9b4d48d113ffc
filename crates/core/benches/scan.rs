//! SCAN, DBSIZE, RANDOMKEY and KEYS over one store of N keys, as an
//! auxiliary runs them (`Store::execute_everywhere`), and what keeping
//! the keys ordered for SCAN costs a write: the figures quoted in
//! docs/performance.md ("SCAN, DBSIZE, RANDOMKEY and KEYS on one node").
//! Not a test: run it with `cargo bench -p distcache-core --bench scan`
//! (add `-- N` for another key count than 200,000).
//!
//! - set: `Store::set` of N new keys (16-byte keys, 100-byte values) into
//!   an empty store, then N overwrites of the same keys; best of 5 rounds;
//! - scan: a client's loop of `SCAN cursor COUNT 100` from 0 back to 0,
//!   per call (stopped after 3 seconds when calls are slow, and counted
//!   per call over the calls made);
//! - DBSIZE, RANDOMKEY, `KEYS *`: per call;
//! - the cluster's DBSIZE on one auxiliary of four (`Store::count_in_ranges`
//!   over the ranges it leads, `Ring::leader_ranges` at the default ring
//!   points): per call; and the master's side, the ranges of every
//!   member (`Ring::leader_ranges`) for 4 and 100 members: once each;
//! - memory: resident memory (VmRSS, Linux) grown by filling a first
//!   store, per key, less the 116 bytes of key and value;
//! - the same SETs and the memory of the position index once a SCAN has
//!   run (the first SCAN builds it; from then on every write keeps it).

use std::time::{Duration, Instant};

use bytes::Bytes;
use distcache_core::command::{Reply, table};
use distcache_core::{DEFAULT_VIRTUAL_NODES, Entry, Ring, Store, StoreConfig, Version};
use rand::SeedableRng;
use rand::rngs::StdRng;

const NOW: u64 = 1_700_000_000_000;
const ROUNDS: usize = 5;
/// A slow scan loop is cut short after this long.
const SCAN_BUDGET: Duration = Duration::from_secs(3);

fn entry(n: u64) -> Entry {
    Entry {
        value: Bytes::from(vec![b'v'; 100]),
        expires_at_ms: None,
        version: Version {
            millis: NOW + n,
            counter: 0,
            origin: 1,
        },
    }
}

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:012}").into_bytes()
}

fn store(n: usize) -> Store {
    Store::new(StoreConfig {
        max_items: 2 * n,
        ..StoreConfig::default()
    })
}

fn run(store: &Store, args: &[&str], rng: &mut StdRng) -> Reply {
    let args: Vec<Bytes> = args
        .iter()
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect();
    let command = table::parse(&args).expect("the command parses");
    store
        .execute_everywhere(&command, NOW, rng)
        .expect("an every-node command")
}

/// The next cursor and the keys of a SCAN reply.
fn scan_reply(reply: Reply) -> (String, usize) {
    let Reply::Array(mut parts) = reply else {
        panic!("SCAN answers an array")
    };
    let (Some(Reply::Array(keys)), Some(Reply::Bulk(cursor))) = (parts.pop(), parts.pop()) else {
        panic!("SCAN answers a cursor and keys")
    };
    (String::from_utf8_lossy(&cursor).into_owned(), keys.len())
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    let keys: Vec<Vec<u8>> = (0..n).map(key).collect();

    let before = resident_bytes();
    let first = store(n);
    for (i, k) in keys.iter().enumerate() {
        first.set(k, entry(i as u64), NOW);
    }
    let grown = resident_bytes().saturating_sub(before);
    // The first SCAN builds the position index, kept from then on.
    let before_index = resident_bytes();
    run(
        &first,
        &["SCAN", "0", "COUNT", "1"],
        &mut StdRng::seed_from_u64(0),
    );
    let index_grown = resident_bytes().saturating_sub(before_index);
    drop(first);

    let mut insert = Duration::MAX;
    let mut overwrite = Duration::MAX;
    let mut filled = None;
    for _ in 0..ROUNDS {
        let s = store(n);
        let started = Instant::now();
        for (i, k) in keys.iter().enumerate() {
            s.set(k, entry(i as u64), NOW);
        }
        insert = insert.min(started.elapsed());
        let started = Instant::now();
        for (i, k) in keys.iter().enumerate() {
            s.set(k, entry((n + i) as u64), NOW);
        }
        overwrite = overwrite.min(started.elapsed());
        filled = Some(s);
    }
    let s = filled.expect("at least one round");
    // The same, in a store whose position index is kept (a SCAN ran).
    let mut insert_kept = Duration::MAX;
    let mut overwrite_kept = Duration::MAX;
    for _ in 0..ROUNDS {
        let kept = store(n);
        run(&kept, &["SCAN", "0"], &mut StdRng::seed_from_u64(0));
        let started = Instant::now();
        for (i, k) in keys.iter().enumerate() {
            kept.set(k, entry(i as u64), NOW);
        }
        insert_kept = insert_kept.min(started.elapsed());
        let started = Instant::now();
        for (i, k) in keys.iter().enumerate() {
            kept.set(k, entry((n + i) as u64), NOW);
        }
        overwrite_kept = overwrite_kept.min(started.elapsed());
    }
    let per_key = |d: Duration| d.as_secs_f64() * 1e9 / n as f64;
    println!("{n} keys of 16 bytes, values of 100 bytes, best of {ROUNDS} rounds:");
    println!("  SET of a new key:        {:.0} ns", per_key(insert));
    println!("  SET over an existing key: {:.0} ns", per_key(overwrite));
    println!(
        "  memory:                  {:.1} bytes per key beyond key and value",
        grown as f64 / n as f64 - 116.0
    );
    println!("once a SCAN has run (the position index kept):");
    println!("  SET of a new key:        {:.0} ns", per_key(insert_kept));
    println!(
        "  SET over an existing key: {:.0} ns",
        per_key(overwrite_kept)
    );
    println!(
        "  the index:               {:.1} bytes per key",
        index_grown as f64 / n as f64
    );

    let mut rng = StdRng::seed_from_u64(0);
    let mut cursor = "0".to_string();
    let mut calls = 0u32;
    let mut returned = 0;
    let started = Instant::now();
    loop {
        let (next, found) = scan_reply(run(&s, &["SCAN", &cursor, "COUNT", "100"], &mut rng));
        calls += 1;
        returned += found;
        cursor = next;
        if cursor == "0" || started.elapsed() > SCAN_BUDGET {
            break;
        }
    }
    let scan = started.elapsed();
    let complete = if cursor == "0" {
        "whole loop"
    } else {
        "cut short"
    };
    println!(
        "  SCAN COUNT 100:          {:.1} µs per call ({calls} calls, {returned} keys, {complete})",
        scan.as_secs_f64() * 1e6 / f64::from(calls)
    );

    for args in [&["DBSIZE"][..], &["RANDOMKEY"], &["KEYS", "*"]] {
        let calls = 20u32;
        let started = Instant::now();
        for _ in 0..calls {
            run(&s, args, &mut rng);
        }
        println!(
            "  {:<24} {:.1} µs per call",
            format!("{}:", args.join(" ")),
            started.elapsed().as_secs_f64() * 1e6 / f64::from(calls)
        );
    }

    let ring = Ring::new(["aux-1", "aux-2", "aux-3", "aux-4"], DEFAULT_VIRTUAL_NODES);
    let led = ring
        .leader_ranges(2, |_| true)
        .expect("every member is live")
        .swap_remove(0);
    let calls = 20u32;
    let started = Instant::now();
    let mut counted = 0;
    for _ in 0..calls {
        counted = s.count_in_ranges(&led, NOW);
    }
    println!(
        "  {:<24} {:.1} µs per call ({} ranges, {counted} keys led)",
        "counted by leader 1/4:",
        started.elapsed().as_secs_f64() * 1e6 / f64::from(calls),
        led.len(),
    );

    // What the master works out for each DBSIZE, by ring size.
    for members in [4, 100] {
        let ids: Vec<String> = (1..=members).map(|i| format!("aux-{i}")).collect();
        let ring = Ring::new(ids, DEFAULT_VIRTUAL_NODES);
        let started = Instant::now();
        let ranges = ring
            .leader_ranges(2, |_| true)
            .expect("every member is live");
        println!(
            "  {:<24} {:.1} µs ({} ranges)",
            format!("leader ranges of {members}:"),
            started.elapsed().as_secs_f64() * 1e6,
            ranges.iter().map(Vec::len).sum::<usize>(),
        );
    }
}

/// Resident memory of this process (0 where /proc is not there).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
