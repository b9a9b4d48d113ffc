//! SCAN loops over a store that changes between calls and during them:
//! every key that stays put for the whole loop is answered exactly once
//! (Redis promises at least once; the store's windows do not overlap),
//! MATCH and TYPE included, and nothing is answered that was never there.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::command::{Reply, table};
use crate::value::{ListValue, Value, stored};

const NOW: u64 = 1_700_000_000_000;

fn store() -> Store {
    Store::new(StoreConfig {
        max_items: 100_000,
        max_bytes: None,
        shards: 4,
        tombstone_grace_ms: 60_000,
    })
}

/// Key `i`: every third one shares the hash tag `{t}` (one position for
/// all of them), so a window holds several keys at one position.
fn key(i: u32) -> Vec<u8> {
    if i % 3 == 0 {
        format!("{{t}}k{i}").into_bytes()
    } else {
        format!("k{i}").into_bytes()
    }
}

/// Key `i`'s value: a string, or a list for every fourth key.
fn entry(i: u32, version: u64) -> Entry {
    let value = if i % 4 == 0 {
        let list: ListValue = [Bytes::from_static(b"x")].into_iter().collect();
        Bytes::from(stored::to_stored(&Value::List(list)))
    } else {
        Bytes::from_static(b"v")
    };
    Entry {
        value,
        expires_at_ms: None,
        version: Version {
            millis: version,
            counter: 0,
            origin: 1,
        },
    }
}

/// One `SCAN cursor COUNT count [MATCH m] [TYPE t]` call: the next cursor
/// and the keys.
fn scan(store: &Store, cursor: &str, count: usize, filters: &[&str]) -> (String, Vec<Vec<u8>>) {
    scan_at(store, NOW, cursor, count, filters)
}

/// [`scan`] at `now`.
fn scan_at(
    store: &Store,
    now: u64,
    cursor: &str,
    count: usize,
    filters: &[&str],
) -> (String, Vec<Vec<u8>>) {
    let count = count.to_string();
    let args: Vec<Bytes> = ["SCAN", cursor, "COUNT", &count]
        .iter()
        .chain(filters)
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect();
    let command = table::parse(&args).expect("SCAN parses");
    let mut rng = StdRng::seed_from_u64(0);
    let Some(Reply::Array(parts)) = store.execute_everywhere(&command, now, &mut rng) else {
        panic!("SCAN answers an array");
    };
    let [Reply::Bulk(next), Reply::Array(keys)] = &parts[..] else {
        panic!("SCAN answers a cursor and keys: {parts:?}");
    };
    let keys = keys
        .iter()
        .map(|k| match k {
            Reply::Bulk(k) => k.to_vec(),
            other => panic!("a key: {other:?}"),
        })
        .collect();
    (String::from_utf8_lossy(next).into_owned(), keys)
}

/// Whether key `i` passes the filters `scan_filters(which)` sends.
fn passes(i: u32, which: u8) -> bool {
    match which {
        0 => true,
        // MATCH k1*: the untagged keys from 1.
        1 => i % 3 != 0 && key(i).starts_with(b"k1"),
        // TYPE list.
        2 => i % 4 == 0,
        // Both.
        _ => i % 3 != 0 && key(i).starts_with(b"k1") && i % 4 == 0,
    }
}

fn scan_filters(which: u8) -> &'static [&'static str] {
    match which {
        0 => &[],
        1 => &["MATCH", "k1*"],
        2 => &["TYPE", "list"],
        _ => &["MATCH", "k1*", "TYPE", "list"],
    }
}

#[derive(Clone, Debug)]
enum Change {
    Insert(u32),
    Delete(u32),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (0..400u32).prop_map(Change::Insert),
        (0..400u32).prop_map(Change::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_scan_loop_answers_every_key_that_stayed_put_exactly_once(
        initial in proptest::collection::btree_set(0..400u32, 0..300),
        count in 1..30usize,
        which in 0..4u8,
        changes in proptest::collection::vec(proptest::collection::vec(change(), 0..6), 0..400),
    ) {
        let store = store();
        let mut version = 1;
        for &i in &initial {
            store.set(&key(i), entry(i, version), NOW);
            version += 1;
        }
        // Keys that stay put: present at the start, never written or deleted.
        let mut put: BTreeSet<u32> = initial.clone();
        let mut ever: BTreeSet<Vec<u8>> = initial.iter().map(|&i| key(i)).collect();
        let mut answered: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
        let mut cursor = "0".to_string();
        let mut calls = changes.iter();
        loop {
            let (next, keys) = scan(&store, &cursor, count, scan_filters(which));
            for k in keys {
                *answered.entry(k).or_default() += 1;
            }
            cursor = next;
            if cursor == "0" {
                break;
            }
            for change in calls.next().into_iter().flatten() {
                version += 1;
                match *change {
                    Change::Insert(i) => {
                        store.set(&key(i), entry(i, version), NOW);
                        ever.insert(key(i));
                        put.remove(&i);
                    }
                    Change::Delete(i) => {
                        store.delete(&key(i), Version { millis: version, counter: 0, origin: 1 }, NOW);
                        put.remove(&i);
                    }
                }
            }
        }
        for &i in put.iter().filter(|&&i| passes(i, which)) {
            prop_assert_eq!(answered.get(&key(i)).copied(), Some(1), "key {}", i);
        }
        for k in answered.keys() {
            prop_assert!(ever.contains(k), "never written: {:?}", k);
            let i: u32 = std::str::from_utf8(k).unwrap().rsplit('k').next().unwrap().parse().unwrap();
            prop_assert!(passes(i, which), "filtered out: {:?}", k);
        }
    }
}

/// The same with a writer thread inserting and deleting other keys while
/// the loops run: the keys written before and never touched are each
/// answered once per loop.
#[test]
fn a_scan_loop_during_concurrent_writes_answers_every_untouched_key_once() {
    let store = store();
    let stay: Vec<u32> = (0..3_000).collect();
    for &i in &stay {
        store.set(&key(i), entry(i, 1), NOW);
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut n = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let i = 10_000 + (n % 5_000) as u32;
                if n % 3 == 2 {
                    let at = Version {
                        millis: 2 + n,
                        counter: 0,
                        origin: 2,
                    };
                    store.delete(&key(i), at, NOW);
                } else {
                    store.set(&key(i), entry(i, 2 + n), NOW);
                }
                n += 1;
            }
        });
        for (count, which) in [(10, 0), (100, 1), (7, 2), (1, 3)] {
            let mut answered: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
            let mut cursor = "0".to_string();
            loop {
                let (next, keys) = scan(&store, &cursor, count, scan_filters(which));
                for k in keys {
                    *answered.entry(k).or_default() += 1;
                }
                cursor = next;
                if cursor == "0" {
                    break;
                }
            }
            for &i in stay.iter().filter(|&&i| passes(i, which)) {
                assert_eq!(answered.get(&key(i)), Some(&1), "key {i}, COUNT {count}");
            }
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

#[derive(Clone, Debug)]
enum Op {
    /// SET key `i`, with a TTL of this many ms if any.
    Set(u32, Option<u64>),
    Delete(u32),
    /// RPUSH (makes or grows a list) or LPOP (empties a one-element list,
    /// which removes the key) through `Store::execute`.
    Push(u32),
    Pop(u32),
    /// GET at a later time: removes it if it expired.
    Get(u32),
    /// The background purge, this many ms later.
    Purge(u64),
    Scan,
    /// A command over two keys: RENAME, RPOPLPUSH or COPY.
    Two(u8, u32, u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..60u32, proptest::option::of(1..50u64)).prop_map(|(i, ttl)| Op::Set(i, ttl)),
        (0..60u32).prop_map(Op::Delete),
        (0..60u32).prop_map(Op::Push),
        (0..60u32).prop_map(Op::Pop),
        (0..60u32).prop_map(Op::Get),
        (0..60u64).prop_map(Op::Purge),
        Just(Op::Scan),
        (0..3u8, 0..60u32, 0..60u32).prop_map(|(c, i, j)| Op::Two(c, i, j)),
    ]
}

/// Runs `line` on `keys` through `Store::execute` at `version`.
fn execute_on(store: &Store, keys: &[Bytes], line: &str, version: u64, now_ms: u64) {
    let args: Vec<Bytes> = line
        .split(' ')
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect();
    let command = table::parse(&args).expect("parses");
    store.execute(
        keys,
        Some(Version {
            millis: version,
            counter: 0,
            origin: 1,
        }),
        now_ms,
        usize::MAX,
        &|| true,
        |ks| Some(ks.execute(&command, now_ms, &mut StdRng::seed_from_u64(0))),
        &mut |_| {},
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Once SCAN has built a shard's position index, every way an item
    /// comes and goes (overwrite, delete, eviction by count and by bytes,
    /// lazy and background expiry, a collection command that lends its
    /// value or removes the key) keeps the index equal to the items, and a
    /// SCAN loop answers exactly the live keys, each once.
    #[test]
    fn the_position_index_follows_every_way_an_item_comes_and_goes(
        max_items in 5..40usize,
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        let store = Store::new(StoreConfig {
            max_items,
            max_bytes: Some(2_000),
            shards: 2,
            tombstone_grace_ms: 60_000,
        });
        scan(&store, "0", 10, &[]);
        let mut now = NOW;
        let mut version = 1;
        for op in ops {
            version += 1;
            match op {
                Op::Set(i, ttl) => {
                    let mut e = entry(i, version);
                    e.expires_at_ms = ttl.map(|t| now + t);
                    store.set(&key(i), e, now);
                }
                Op::Delete(i) => {
                    let at = Version { millis: version, counter: 0, origin: 1 };
                    store.delete(&key(i), at, now);
                }
                Op::Push(i) => {
                    let k = key(i);
                    let line = format!("RPUSH {} x", String::from_utf8_lossy(&k));
                    execute_on(&store, &[Bytes::copy_from_slice(&k)], &line, version, now);
                }
                Op::Pop(i) => {
                    let k = key(i);
                    let line = format!("LPOP {}", String::from_utf8_lossy(&k));
                    execute_on(&store, &[Bytes::copy_from_slice(&k)], &line, version, now);
                }
                Op::Two(c, i, j) => {
                    let (a, b) = (key(i), key(j));
                    let name = ["RENAME", "RPOPLPUSH", "COPY"][c as usize];
                    let line = format!(
                        "{name} {} {}",
                        String::from_utf8_lossy(&a),
                        String::from_utf8_lossy(&b)
                    );
                    execute_on(&store, &[Bytes::copy_from_slice(&a), Bytes::copy_from_slice(&b)], &line, version, now);
                }
                Op::Get(i) => {
                    now += 5;
                    store.get(&key(i), now);
                }
                Op::Purge(later) => {
                    now += later;
                    store.purge_expired(now, usize::MAX);
                }
                Op::Scan => {
                    scan(&store, "0", 3, &[]);
                }
            }
            for s in 0..store.shard_count() {
                prop_assert!(store.lock(s).positions_are_current(), "shard {} after {:?}", s, op);
            }
        }
        // A whole loop at the time of the last op.
        let mut live: Vec<Vec<u8>> = Vec::new();
        for s in 0..store.shard_count() {
            store.for_each_in_shard(s, now, |k, _| live.push(k.to_vec()));
        }
        live.sort();
        let mut answered = Vec::new();
        let mut cursor = "0".to_string();
        loop {
            let (next, keys) = scan_at(&store, now, &cursor, 4, &[]);
            answered.extend(keys);
            cursor = next;
            if cursor == "0" {
                break;
            }
        }
        answered.sort();
        prop_assert_eq!(answered, live);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// RANDOMKEY answers a live key whenever one exists (nil only when
    /// none is), never one that expired but is not reclaimed yet, and
    /// DBSIZE counts exactly the live keys.
    #[test]
    fn randomkey_and_dbsize_see_only_live_keys(
        keys in proptest::collection::btree_map(0..200u32, any::<bool>(), 0..40),
        seeds in proptest::collection::vec(any::<u64>(), 1..20),
    ) {
        let store = store();
        for (&i, &expires) in &keys {
            let mut e = entry(i, 1);
            e.expires_at_ms = expires.then_some(NOW + 1);
            store.set(&key(i), e, NOW);
        }
        let later = NOW + 5;
        let live: BTreeSet<Vec<u8>> = keys
            .iter()
            .filter(|(_, expires)| !**expires)
            .map(|(&i, _)| key(i))
            .collect();
        let parse = |line: &str| {
            let args: Vec<Bytes> = line.split(' ').map(|a| Bytes::copy_from_slice(a.as_bytes())).collect();
            table::parse(&args).expect("parses")
        };
        for seed in seeds {
            let mut rng = StdRng::seed_from_u64(seed);
            match store.execute_everywhere(&parse("RANDOMKEY"), later, &mut rng) {
                Some(Reply::Bulk(k)) => prop_assert!(live.contains(k.as_ref()), "{:?}", k),
                Some(Reply::Null) => prop_assert!(live.is_empty()),
                other => panic!("{other:?}"),
            }
        }
        let mut rng = StdRng::seed_from_u64(0);
        let size = store.execute_everywhere(&parse("DBSIZE"), later, &mut rng);
        prop_assert_eq!(size, Some(Reply::Integer(live.len() as i64)));
    }
}
