//! Tests of the mutation log: round trips, every truncation and bit flip,
//! zero-filled and corrupt tails, and the property that a snapshot plus the
//! log generations from its own on rebuild the store exactly, even when the
//! snapshot's copy runs shard by shard while mutations continue.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::snapshot::{self, Origin};
use crate::store::{Entry, StoreConfig};

const NOW: u64 = 1_700_000_000_000;

fn version(counter: u32) -> Version {
    Version {
        millis: NOW,
        counter,
        origin: 1,
    }
}

fn entry(value: &str, counter: u32, expires_at_ms: Option<u64>) -> Entry {
    Entry {
        value: Bytes::copy_from_slice(value.as_bytes()),
        expires_at_ms,
        version: version(counter),
    }
}

/// The ops of a push of `x` onto `key`, encoded as a `changes` record
/// holds them.
fn push_ops(key: &[u8]) -> Vec<u8> {
    let mut ops = Vec::new();
    effect_encoding::encode_ops(
        &Bytes::copy_from_slice(key),
        &[crate::keyspace::EffectOp::Push {
            front: false,
            elements: vec![Bytes::from_static(b"x")],
        }],
        &mut ops,
    );
    ops
}

/// A log of generation 7 holding a set, a delete, a forget and the
/// changes of a push, and the offsets where each record ends.
fn sample() -> (Vec<u8>, Vec<usize>) {
    let mut log = header(7).to_vec();
    let mut ends = Vec::new();
    let e = entry("\"v\"", 1, Some(NOW + 60_000));
    let ops = push_ops(b"d");
    for m in [
        Mutation::Set {
            key: b"a",
            entry: e.view(),
        },
        Mutation::Delete {
            key: b"b",
            version: version(2),
        },
        Mutation::Forget {
            key: b"c",
            version: version(3),
        },
        Mutation::Changes {
            key: b"d",
            version: version(5),
            base: Some(version(4)),
            expires_at_ms: Some(NOW + 60_000),
            ops: &ops,
        },
    ] {
        append(&mut log, &m).unwrap();
        ends.push(log.len());
    }
    (log, ends)
}

fn keys_read(data: &[u8]) -> Result<(Vec<Vec<u8>>, LogRead), LogFileError> {
    let mut keys = Vec::new();
    let read = read(data, |m| {
        keys.push(match m {
            Mutation::Set { key, .. }
            | Mutation::Delete { key, .. }
            | Mutation::Forget { key, .. }
            | Mutation::Changes { key, .. } => key.to_vec(),
        })
    })?;
    Ok((keys, read))
}

#[test]
fn records_read_back_in_order_with_their_generation() {
    let (log, ends) = sample();
    let mut seen = Vec::new();
    let read = read(&log, |m| seen.push(format!("{m:?}"))).unwrap();
    assert_eq!(read.generation, 7);
    assert_eq!(read.records, 4);
    assert_eq!(read.valid_len, *ends.last().unwrap() as u64);
    assert_eq!(read.damage, None);
    assert!(seen[0].contains("Set") && seen[1].contains("Delete") && seen[2].contains("Forget"));
    assert!(seen[3].contains("Changes"));
}

#[test]
fn an_empty_log_is_just_its_header() {
    let read = read(&header(3), |_| panic!("no records")).unwrap();
    assert_eq!((read.generation, read.records, read.damage), (3, 0, None));
}

#[test]
fn every_truncation_keeps_the_whole_records_before_it_and_calls_the_rest_a_torn_tail() {
    let (log, ends) = sample();
    for len in 0..log.len() {
        let cut = &log[..len];
        match keys_read(cut) {
            Err(LogFileError::Truncated { .. }) => assert!(len < HEADER_LEN),
            Err(e) => panic!("cut at {len}: {e}"),
            Ok((keys, read)) => {
                let whole = ends.iter().filter(|&&end| end <= len).count();
                assert_eq!(keys.len(), whole, "cut at {len}");
                let at_boundary = len == HEADER_LEN || ends.contains(&len);
                match read.damage {
                    None => assert!(at_boundary, "cut at {len} not reported"),
                    Some(d) => {
                        assert!(!at_boundary);
                        assert_eq!(d.kind, DamageKind::TornTail, "cut at {len}: {d:?}");
                        assert_eq!(d.offset, read.valid_len);
                    }
                }
            }
        }
    }
}

#[test]
fn every_single_bit_flip_is_caught() {
    let (log, ends) = sample();
    for byte in 0..log.len() {
        for bit in 0..8 {
            let mut bad = log.clone();
            bad[byte] ^= 1 << bit;
            match keys_read(&bad) {
                Err(_) => assert!(byte < HEADER_LEN, "flip at {byte}.{bit} refused the file"),
                Ok((keys, read)) => {
                    assert!(byte >= HEADER_LEN, "header flip at {byte}.{bit} accepted");
                    // The damaged record and everything after it are dropped;
                    // the records before it are read as written.
                    let before = ends.iter().filter(|&&end| end <= byte).count();
                    assert_eq!(keys.len(), before, "flip at {byte}.{bit}");
                    assert!(read.damage.is_some(), "flip at {byte}.{bit} not reported");
                }
            }
        }
    }
}

#[test]
fn damage_in_the_middle_is_corrupt_and_a_zero_filled_tail_is_torn() {
    let (log, ends) = sample();
    let mut middle = log.clone();
    middle[ends[0] + RECORD_HEAD_LEN + 2] ^= 0xFF;
    let (keys, read) = keys_read(&middle).unwrap();
    assert_eq!(keys, [b"a".to_vec()]);
    let damage = read.damage.unwrap();
    assert_eq!(
        (damage.kind, damage.offset),
        (DamageKind::Corrupt, ends[0] as u64)
    );

    let mut zeros = log.clone();
    zeros.extend_from_slice(&[0; 4096]);
    let (keys, read) = keys_read(&zeros).unwrap();
    assert_eq!(keys.len(), 4);
    assert_eq!(read.damage.unwrap().kind, DamageKind::TornTail);
}

#[test]
fn a_length_no_record_can_have_is_corrupt_not_a_torn_tail() {
    let (log, ends) = sample();
    let mut bad = log.clone();
    // The high bits of the second record's length.
    bad[ends[0] + 3] = 0xFF;
    let (keys, read) = keys_read(&bad).unwrap();
    assert_eq!(keys.len(), 1);
    let damage = read.damage.unwrap();
    assert_eq!(
        (damage.kind, damage.offset),
        (DamageKind::Corrupt, ends[0] as u64)
    );
}

#[test]
fn foreign_and_newer_files_are_refused_whole() {
    let (log, _) = sample();
    assert_eq!(
        keys_read(b"not a log at all, clearly").unwrap_err(),
        LogFileError::BadMagic
    );
    let mut newer = log.clone();
    newer[8..10].copy_from_slice(&3u16.to_le_bytes());
    let crc = crc32fast::hash(&newer[..20]);
    newer[20..24].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        keys_read(&newer).unwrap_err(),
        LogFileError::UnknownVersion { found: 3 }
    );
    let snap = crate::snapshot::encode(Vec::new(), "n", NOW, 1, std::iter::empty())
        .unwrap()
        .0;
    assert_eq!(keys_read(&snap).unwrap_err(), LogFileError::BadMagic);
}

#[test]
fn a_record_that_cannot_hold_its_key_appends_nothing() {
    let mut out = header(1).to_vec();
    let e = entry("v", 1, None);
    let long = vec![b'k'; 70_000];
    assert!(
        append(
            &mut out,
            &Mutation::Set {
                key: &long,
                entry: e.view()
            }
        )
        .is_err()
    );
    assert!(
        append(
            &mut out,
            &Mutation::Delete {
                key: b"",
                version: version(1)
            }
        )
        .is_err()
    );
    assert_eq!(out, header(1));
}

#[test]
fn a_version_1_file_replays_and_a_changes_record_in_one_is_damage() {
    let (log, ends) = sample();
    let mut old = log[..ends[2]].to_vec();
    old[8..10].copy_from_slice(&1u16.to_le_bytes());
    let crc = crc32fast::hash(&old[..20]);
    old[20..24].copy_from_slice(&crc.to_le_bytes());
    let (keys, read) = keys_read(&old).unwrap();
    assert_eq!((keys.len(), read.damage), (3, None));
    old.extend_from_slice(&log[ends[2]..]);
    let (keys, read) = keys_read(&old).unwrap();
    assert_eq!(keys.len(), 3);
    let damage = read.damage.unwrap();
    assert_eq!(
        (damage.kind, damage.offset, damage.reason),
        (DamageKind::Corrupt, ends[2] as u64, "unknown record kind")
    );
}

#[test]
fn a_changes_record_whose_ops_do_not_parse_is_corrupt() {
    let mut log = header(1).to_vec();
    let mut ops = push_ops(b"d");
    // Past the op's length word, with its CRC left stale; the record's own
    // CRC (computed by `append`) is good, so only the op's check sees it.
    ops[8] ^= 0x40;
    let changes = Mutation::Changes {
        key: b"d",
        version: version(2),
        base: Some(version(1)),
        expires_at_ms: None,
        ops: &ops,
    };
    append(&mut log, &changes).unwrap();
    append(
        &mut log,
        &Mutation::Delete {
            key: b"e",
            version: version(3),
        },
    )
    .unwrap();
    let (keys, read) = keys_read(&log).unwrap();
    assert!(keys.is_empty());
    let damage = read.damage.unwrap();
    assert_eq!(
        (damage.kind, damage.reason),
        (DamageKind::Corrupt, "record's ops malformed")
    );
}

#[test]
fn changes_apply_over_their_base_and_are_damage_over_another_version() {
    let store = Store::new(StoreConfig::default());
    let list = crate::value::Value::List([Bytes::from_static(b"a")].into_iter().collect());
    let base = Entry {
        value: Bytes::from(crate::value::stored::to_stored(&list)),
        expires_at_ms: None,
        version: version(4),
    };
    let ops = push_ops(b"d");
    let changes = |base_version| Mutation::Changes {
        key: b"d",
        version: version(5),
        base: Some(version(base_version)),
        expires_at_ms: None,
        ops: &ops,
    };
    // No key: it was dropped (handed off, evicted) since; skipped.
    assert_eq!(changes(4).apply(&store, NOW), Applied::BaseGone);
    assert!(store.get(b"d", NOW).is_none());
    store.set(b"d", base.clone(), NOW);
    // Another base: damage, and the value stays.
    assert_eq!(changes(3).apply(&store, NOW), Applied::Diverged);
    assert_eq!(store.get(b"d", NOW).unwrap(), base);
    // Its base: applied; again: stale.
    assert_eq!(changes(4).apply(&store, NOW), Applied::Changed);
    assert_eq!(changes(4).apply(&store, NOW), Applied::Stale);
    let pushed = crate::value::Value::List(
        [Bytes::from_static(b"a"), Bytes::from_static(b"x")]
            .into_iter()
            .collect(),
    );
    let held = store.get(b"d", NOW).unwrap();
    assert_eq!(
        held.value,
        Bytes::from(crate::value::stored::to_stored(&pushed))
    );
    assert_eq!(held.version, version(5));
}

#[test]
fn changes_whose_expiry_has_passed_act_as_an_expired_write() {
    let store = Store::new(StoreConfig::default());
    let ops = push_ops(b"d");
    let expired = Mutation::Changes {
        key: b"d",
        version: version(5),
        base: Some(version(4)),
        expires_at_ms: Some(NOW - 1),
        ops: &ops,
    };
    assert_eq!(expired.apply(&store, NOW), Applied::Expired);
    assert_eq!(
        store.lookup(b"d", NOW),
        crate::store::Lookup::Deleted(version(5))
    );
}

#[test]
fn replay_applies_in_order_and_counts_what_it_did() {
    let store = Store::new(StoreConfig::default());
    // The forget finds the older copy it names gone: stale.
    store.set(b"c", entry("old", 9, None), NOW);
    let (log, _) = sample();
    let (read, counts) = replay(&log, &store, NOW).unwrap();
    assert_eq!(read.records, 4);
    assert_eq!(
        counts,
        ReplayCounts {
            records: 4,
            applied: 2,
            stale: 1,
            expired: 0,
            too_large: 0,
            // The push's key, `d`, is not there.
            base_gone: 1,
            diverged: 0,
        }
    );
    assert_eq!(
        store.get(b"a", NOW).unwrap().value,
        Bytes::from_static(b"\"v\"")
    );
    assert_eq!(
        store.lookup(b"b", NOW),
        crate::store::Lookup::Deleted(version(2))
    );
    // Replaying again changes nothing.
    let (_, again) = replay(&log, &store, NOW).unwrap();
    assert_eq!(again.applied, 1, "only the delete re-records its tombstone");
    assert_eq!(store.len(), 2);
}

proptest! {
    #[test]
    fn arbitrary_bytes_after_a_header_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut data = header(1).to_vec();
        data.extend_from_slice(&tail);
        let read = read(&data, |_| {}).unwrap();
        prop_assert!(read.valid_len as usize <= data.len());
        prop_assert_eq!(read.damage.is_none(), read.valid_len as usize == data.len());
    }
}

/// One step of the model run: a mutation of the store, or a step of a
/// snapshot (rotate to a new generation, copy one shard, finish).
#[derive(Clone, Debug)]
enum Step {
    Set {
        key: u8,
        value: u8,
        ttl: Option<u64>,
    },
    Delete {
        key: u8,
    },
    Forget {
        key: u8,
    },
    /// A command on a collection (or on whatever the key holds), through
    /// `Store::execute`, logged as it records: changes or whole values.
    Command {
        key: u8,
        op: u8,
        arg: u8,
    },
    StartSnapshot,
    CopyShard,
    FinishSnapshot,
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u8..12, any::<u8>(), proptest::option::of(0u64..5)).prop_map(|(key, value, ttl)| Step::Set { key, value, ttl }),
        3 => (0u8..12).prop_map(|key| Step::Delete { key }),
        1 => (0u8..12).prop_map(|key| Step::Forget { key }),
        8 => (0u8..12, 0u8..10, 0u8..4).prop_map(|(key, op, arg)| Step::Command { key, op, arg }),
        1 => Just(Step::StartSnapshot),
        2 => Just(Step::CopyShard),
        1 => Just(Step::FinishSnapshot),
    ]
}

/// The argument vector of a `Step::Command`.
fn command_args(key: u8, op: u8, arg: u8) -> Vec<Bytes> {
    let word = |w: &str| Bytes::copy_from_slice(w.as_bytes());
    let element = Bytes::from(vec![b'a' + arg; usize::from(arg) * 3]);
    let mut args = vec![Bytes::new(), Bytes::from(vec![key])];
    args[0] = word(match op {
        0 | 1 => "RPUSH",
        2 => "LPOP",
        3 => "HSET",
        4 => "HDEL",
        5 => "SADD",
        6 => "SREM",
        7 => "ZADD",
        8 => "EXPIRE",
        _ => "PERSIST",
    });
    match op {
        3 => args.extend([element, word("v")]),
        7 => args.extend([word(&arg.to_string()), element]),
        8 => args.push(word(&(u64::from(arg) * 1_000 + 2_000).to_string())),
        9 => {}
        2 => args.push(word(&arg.to_string())),
        _ => args.push(element),
    }
    args
}

/// Everything a store holds: live entries and tombstones by key.
fn contents(store: &Store, now: u64) -> (BTreeMap<Vec<u8>, Entry>, BTreeMap<Vec<u8>, Version>) {
    let live = store
        .export(now)
        .into_iter()
        .map(|(k, e)| (k.to_vec(), e))
        .collect();
    let mut dead = BTreeMap::new();
    for shard in 0..store.shard_count() {
        store.for_each_tombstone_in_shard(shard, now, |k, v| {
            dead.insert(k.to_vec(), v);
        });
    }
    (live, dead)
}

/// A snapshot being copied shard by shard while mutations continue.
struct Copying {
    generation: u64,
    next_shard: usize,
    encoded: snapshot::EncodedEntries,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Replaying the latest finished snapshot plus every log generation from
    /// the one it names rebuilds exactly the store that ran the mutations
    /// (entries, versions, expiries and tombstones), however the snapshot's
    /// shard-by-shard copy interleaves with them.
    #[test]
    fn a_snapshot_plus_its_log_rebuilds_the_store(steps in proptest::collection::vec(arb_step(), 1..120)) {
        let config = StoreConfig { max_items: 10_000, shards: 4, ..StoreConfig::default() };
        let live = Store::new(config.clone());
        // Log generations by number, as files would be.
        let mut logs: BTreeMap<u64, Vec<u8>> = BTreeMap::from([(1, header(1).to_vec())]);
        let mut current = 1u64;
        let mut copying: Option<Copying> = None;
        let mut finished: Option<Vec<u8>> = None;
        let mut counter = 0u32;
        for (i, step) in steps.iter().enumerate() {
            // Each mutation is applied, then appended, as the server does.
            let now = NOW + i as u64;
            counter += 1;
            let mut log_it = |m: Mutation<'_>| {
                if m.apply(&live, now) != Applied::Stale {
                    append(logs.get_mut(&current).unwrap(), &m).unwrap();
                }
            };
            match *step {
                Step::Set { key, value, ttl } => {
                    let e = Entry {
                        value: Bytes::from(vec![value; usize::from(value % 5)]),
                        // Already expired (a write that deletes the older
                        // value, as the server logs it), or far enough out
                        // to hold at the final check.
                        expires_at_ms: ttl.map(|t| if t == 0 { NOW - 1 } else { NOW + 1_000_000 * t }),
                        version: version(counter),
                    };
                    log_it(Mutation::Set { key: &[key], entry: e.view() });
                }
                Step::Delete { key } => log_it(Mutation::Delete { key: &[key], version: version(counter) }),
                Step::Forget { key } => {
                    if let Some(held) = live.get(&[key], now) {
                        log_it(Mutation::Forget { key: &[key], version: held.version });
                    }
                }
                Step::Command { key, op, arg } => {
                    let args = command_args(key, op, arg);
                    let command = crate::command::table::parse(&args).unwrap();
                    let log = logs.get_mut(&current).unwrap();
                    let executed = live.execute(
                        &[Bytes::copy_from_slice(&[key])],
                        Some(version(counter)),
                        now,
                        usize::MAX,
                        &|| true,
                        |ks| {
                            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
                            Some(ks.execute(&command, now, &mut rng))
                        },
                        &mut |m| append(log, m).unwrap(),
                    );
                    let ran = matches!(executed, crate::store::Executed::Ran { .. });
                    prop_assert!(ran, "{:?}", executed);
                }
                Step::StartSnapshot if copying.is_none() => {
                    current += 1;
                    logs.insert(current, header(current).to_vec());
                    copying = Some(Copying { generation: current, next_shard: 0, encoded: snapshot::EncodedEntries::new() });
                }
                Step::CopyShard => {
                    if let Some(c) = copying.as_mut().filter(|c| c.next_shard < live.shard_count()) {
                        live.for_each_in_shard(c.next_shard, now, |k, e| c.encoded.push(k, e).unwrap());
                        live.for_each_tombstone_in_shard(c.next_shard, now, |k, v| c.encoded.push_tombstone(k, v).unwrap());
                        c.next_shard += 1;
                    }
                }
                Step::FinishSnapshot => {
                    if let Some(c) = copying.take_if(|c| c.next_shard == live.shard_count()) {
                        let origin = Origin { node_id: "aux", created_at_ms: now, shard_count: 4, log_generation: c.generation };
                        finished = Some(snapshot::write_encoded(Vec::new(), origin, &c.encoded).unwrap().0);
                        // Generations the snapshot covers are deleted.
                        logs.retain(|&g, _| g >= c.generation);
                    }
                }
                Step::StartSnapshot => {}
            }
        }
        let end = NOW + steps.len() as u64;
        let rebuilt = Store::new(config);
        let from = match &finished {
            Some(bytes) => snapshot::restore_bytes(bytes, &rebuilt, end).unwrap().0.log_generation,
            None => 0,
        };
        for (_, log) in logs.range(from..) {
            let (read, counts) = replay(log, &rebuilt, end).unwrap();
            prop_assert_eq!(read.damage, None);
            prop_assert_eq!(counts.diverged, 0);
        }
        prop_assert_eq!(contents(&rebuilt, end), contents(&live, end));
    }
}
