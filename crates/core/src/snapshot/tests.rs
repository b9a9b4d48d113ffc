//! Unit and property tests of the snapshot format: round trips, order and
//! capacity on restore, every damage case, a frozen v1 file, and a fuzz of
//! the decoder over arbitrary bytes and over mutations of valid snapshots.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::store::StoreConfig;
use crate::version::Version;

const NOW: u64 = 1_700_000_000_000;

fn entry(value: &str, n: u32, expires_at_ms: Option<u64>) -> Entry {
    Entry {
        value: Bytes::copy_from_slice(value.as_bytes()),
        expires_at_ms,
        version: Version {
            millis: NOW - 1000,
            counter: n,
            origin: 7,
        },
    }
}

fn store(max_items: usize, shards: usize) -> Store {
    Store::new(StoreConfig {
        max_items,
        shards,
        ..StoreConfig::default()
    })
}

fn snapshot_of(store: &Store, now: u64) -> Vec<u8> {
    let entries = store.export(now);
    let (bytes, size) = encode(
        Vec::new(),
        "aux-1",
        now,
        store.shard_count() as u32,
        entries.iter().map(|(k, e)| (k.as_ref(), e)),
    )
    .expect("encoding into a Vec cannot fail");
    assert_eq!(size, bytes.len() as u64);
    bytes
}

fn origin(log_generation: u64) -> Origin<'static> {
    Origin {
        node_id: "aux-1",
        created_at_ms: NOW,
        shard_count: 4,
        log_generation,
    }
}

/// A snapshot of `n` keys, every fourth of them deleted (a tombstone).
fn sample(n: u32) -> Vec<u8> {
    let s = store(1000, 4);
    for i in 0..n {
        let ttl = (i % 3 == 0).then_some(NOW + 60_000 + u64::from(i));
        let key = format!("key-{i}");
        s.set(key.as_bytes(), entry(&format!("\"v{i}\""), i, ttl), NOW);
        if i % 4 == 1 {
            s.delete(key.as_bytes(), tombstone_version(i), NOW);
        }
    }
    write_encoded(Vec::new(), origin(5), &encode_store(&s, NOW))
        .expect("encoding into a Vec cannot fail")
        .0
}

fn tombstone_version(n: u32) -> Version {
    Version {
        millis: NOW - 500,
        counter: n,
        origin: 7,
    }
}

#[test]
fn an_empty_store_round_trips() {
    let bytes = snapshot_of(&store(10, 4), NOW);
    let snap = decode(&bytes).expect("valid");
    assert_eq!(snap.header.node_id, "aux-1");
    assert_eq!(snap.header.created_at_ms, NOW);
    assert_eq!(snap.header.entry_count, 0);
    assert_eq!(snap.header.shard_count, 4);
    assert!(snap.entries.is_empty());
}

#[test]
fn entries_round_trip_with_versions_and_expiries_in_lru_order() {
    let s = store(100, 1);
    for i in 0..50u32 {
        let ttl = (i % 2 == 0).then_some(NOW + 10_000);
        s.set(
            format!("k{i}").as_bytes(),
            entry(&i.to_string(), i, ttl),
            NOW,
        );
    }
    // Touch a few so the LRU order differs from insertion order.
    for i in [3u32, 10, 0] {
        s.get(format!("k{i}").as_bytes(), NOW);
    }
    let before = s.export(NOW);
    let snap = decode(&snapshot_of(&s, NOW)).expect("valid");
    let restored = store(100, 1);
    let counts = snap.restore_into(&restored, NOW);
    assert_eq!(counts.restored, 50);
    assert_eq!(restored.export(NOW), before, "same entries, same LRU order");
}

#[test]
fn a_store_encoded_shard_by_shard_decodes_to_its_export() {
    let s = store(5000, 8);
    for i in 0..3000u32 {
        let ttl = (i % 2 == 0).then_some(NOW + 10_000);
        s.set(
            format!("k{i}").as_bytes(),
            entry(&"v".repeat(i as usize % 90), i, ttl),
            NOW,
        );
    }
    let encoded = encode_store(&s, NOW);
    assert_eq!(encoded.len(), 3000);
    let (bytes, size) = write_encoded(
        Vec::new(),
        Origin {
            shard_count: 8,
            ..origin(0)
        },
        &encoded,
    )
    .expect("encode");
    assert_eq!(size, bytes.len() as u64);
    assert!(bytes.len() > 130_000, "several blocks");
    let snap = decode(&bytes).expect("valid");
    let export = s.export(NOW);
    let decoded: Vec<(Bytes, Entry)> = snap.entries.into_iter().map(|e| (e.key, e.entry)).collect();
    assert_eq!(decoded, export);
    // The same bytes as the entry-by-entry writer.
    assert_eq!(bytes, snapshot_of(&s, NOW));
}

#[test]
fn collections_kept_decoded_round_trip_through_a_snapshot() {
    use crate::value::{HashValue, ListValue, Score, Value, ZSetValue, stored};
    let s = store(100, 4);
    let list: ListValue = (0..500).map(|i| Bytes::from(format!("e{i}"))).collect();
    let mut hash = HashValue::new();
    hash.insert(Bytes::from_static(b"f"), Bytes::from_static(b"v"));
    let zset: ZSetValue = [(Bytes::from_static(b"m"), Score::new(1.5).unwrap())]
        .into_iter()
        .collect();
    let values = [
        ("list", Value::List(list)),
        ("hash", Value::Hash(hash)),
        ("zset", Value::ZSet(zset)),
        ("string", Value::string(b"plain".to_vec())),
    ];
    for (i, (key, value)) in values.iter().enumerate() {
        let mut e = entry("", i as u32, (i % 2 == 0).then_some(NOW + 10_000));
        e.value = Bytes::from(stored::to_stored(value));
        assert_eq!(s.set(key.as_bytes(), e, NOW), SetOutcome::Stored);
    }
    let encoded = encode_store(&s, NOW);
    let (bytes, _) = write_encoded(Vec::new(), origin(0), &encoded).expect("encode");
    let restored = store(100, 4);
    restore_bytes(&bytes, &restored, NOW).expect("valid");
    assert_eq!(restored.export(NOW), s.export(NOW));
    assert_eq!(restored.stats().bytes, s.stats().bytes, "charged alike");
    for (key, value) in &values {
        let held = restored.get(key.as_bytes(), NOW).unwrap();
        assert_eq!(&stored::from_stored(&held.value).unwrap(), value);
    }
}

#[test]
fn restore_bytes_inserts_nothing_from_a_damaged_snapshot() {
    let bytes = sample(200);
    let good = store(1000, 4);
    let (header, counts) = restore_bytes(&bytes, &good, NOW).expect("valid");
    // Every fourth key was deleted: 150 entries, 50 tombstones.
    assert_eq!((header.entry_count, counts.restored), (150, 150));
    assert_eq!((header.tombstone_count, counts.tombstones), (50, 50));
    let mut damaged = bytes.clone();
    let last = damaged.len() - 10;
    damaged[last] ^= 1; // in the last block: earlier blocks are fine
    let target = store(1000, 4);
    assert!(restore_bytes(&damaged, &target, NOW).is_err());
    assert!(
        target.is_empty(),
        "not one entry of a damaged snapshot is loaded"
    );
}

#[test]
fn restore_skips_expired_entries() {
    let s = store(100, 2);
    s.set(b"soon", entry("1", 1, Some(NOW + 1_000)), NOW);
    s.set(b"later", entry("2", 2, Some(NOW + 100_000)), NOW);
    s.set(b"never", entry("3", 3, None), NOW);
    let snap = decode(&snapshot_of(&s, NOW)).expect("valid");
    let restored = store(100, 2);
    let counts = snap.restore_into(&restored, NOW + 5_000);
    assert_eq!((counts.restored, counts.expired, counts.floors), (2, 1, 0));
    assert!(restored.peek(b"soon", NOW + 5_000).is_none());
    assert_eq!(
        restored
            .peek(b"later", NOW + 5_000)
            .map(|e| e.expires_at_ms),
        Some(Some(NOW + 100_000)),
        "the absolute expiry is kept"
    );
}

#[test]
fn restore_honours_capacity_keeping_the_most_recently_used() {
    let s = store(10, 1);
    for i in 0..10u32 {
        s.set(format!("k{i}").as_bytes(), entry("x", i, None), NOW);
    }
    s.get(b"k0", NOW); // k0 is now the most recently used
    let snap = decode(&snapshot_of(&s, NOW)).expect("valid");
    let small = store(3, 1);
    let counts = snap.restore_into(&small, NOW);
    assert_eq!(counts.evicted, 7);
    let kept: Vec<Bytes> = small.export(NOW).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        kept,
        vec![Bytes::from("k8"), Bytes::from("k9"), Bytes::from("k0")]
    );
}

#[test]
fn restore_never_replaces_a_newer_version() {
    let s = store(10, 1);
    s.set(b"k", entry("old", 1, None), NOW);
    let snap = decode(&snapshot_of(&s, NOW)).expect("valid");
    let live = store(10, 1);
    live.set(b"k", entry("new", 2, None), NOW);
    let counts = snap.restore_into(&live, NOW);
    assert_eq!(counts.stale, 1);
    assert_eq!(
        live.peek(b"k", NOW).map(|e| e.value),
        Some(Bytes::from("new"))
    );
}

#[test]
fn every_truncation_is_refused() {
    let bytes = sample(40);
    for len in 0..bytes.len() {
        let err = decode(&bytes[..len]).expect_err("truncated");
        assert!(
            matches!(
                err,
                SnapshotError::Truncated { .. } | SnapshotError::Checksum { .. }
            ),
            "length {len}: {err}"
        );
    }
}

#[test]
fn every_single_bit_flip_is_refused() {
    let bytes = sample(12);
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut damaged = bytes.clone();
            damaged[i] ^= 1 << bit;
            assert!(decode(&damaged).is_err(), "bit {bit} of byte {i} flipped");
        }
    }
}

#[test]
fn wrong_magic_newer_and_unknown_versions_are_named() {
    let mut bytes = sample(3);
    let mut wrong = bytes.clone();
    wrong[0] = b'X';
    assert_eq!(decode(&wrong), Err(SnapshotError::BadMagic));
    assert_eq!(decode(b"{\"json\":1}"), Err(SnapshotError::BadMagic));
    assert_eq!(
        decode(b""),
        Err(SnapshotError::Truncated {
            offset: 0,
            expected: "the format version"
        })
    );
    bytes[8..10].copy_from_slice(&4u16.to_le_bytes());
    assert_eq!(
        decode(&bytes),
        Err(SnapshotError::NewerVersion {
            found: 4,
            supported: 3
        })
    );
    bytes[8..10].copy_from_slice(&0u16.to_le_bytes());
    assert_eq!(
        decode(&bytes),
        Err(SnapshotError::UnknownVersion { found: 0 })
    );
}

#[test]
fn bytes_after_the_end_are_refused() {
    let mut bytes = sample(3);
    bytes.push(0);
    assert!(matches!(
        decode(&bytes),
        Err(SnapshotError::Malformed { .. })
    ));
}

#[test]
fn the_writer_checks_the_announced_count() {
    let header = SnapshotHeader {
        node_id: "n".into(),
        created_at_ms: NOW,
        entry_count: 1,
        tombstone_count: 1,
        log_generation: 0,
        shard_count: 1,
    };
    let w = SnapshotWriter::new(Vec::new(), &header).expect("header");
    assert!(w.finish().is_err(), "fewer entries than announced");
    let mut w = SnapshotWriter::new(Vec::new(), &header).expect("header");
    w.push(b"a", &entry("1", 1, None)).expect("one entry");
    assert!(
        w.push(b"b", &entry("1", 1, None)).is_err(),
        "more than announced"
    );
    assert!(w.finish().is_err(), "the announced tombstone is missing");
    let mut w = SnapshotWriter::new(Vec::new(), &header).expect("header");
    w.push_tombstone(b"t", tombstone_version(1))
        .expect("one tombstone");
    assert!(
        w.push(b"a", &entry("1", 1, None)).is_err(),
        "entries after tombstones"
    );
    assert!(w.push_tombstone(b"u", tombstone_version(2)).is_err());
}

/// A v1 file written when the format was frozen. It must decode to the same
/// snapshot forever; if this test fails, the v1 decoder was changed.
#[test]
fn a_frozen_v1_file_still_decodes() {
    let bytes = include_bytes!("testdata/v1.snap");
    let snap = decode(bytes).expect("the v1 file decodes");
    assert_eq!(
        snap.header,
        SnapshotHeader {
            node_id: "aux-frozen".into(),
            created_at_ms: 1_700_000_000_000,
            entry_count: 2,
            tombstone_count: 0,
            log_generation: 0,
            shard_count: 1,
        }
    );
    assert_eq!(snap.entries[0].key, Bytes::from("a"));
    assert_eq!(snap.entries[0].entry, frozen_entries()[0].1);
    assert_eq!(snap.entries[1].key, Bytes::from("key/2"));
    assert_eq!(snap.entries[1].entry, frozen_entries()[1].1);
}

/// The entries `testdata/v1.snap` was written from, once, by the v1
/// encoder; the file is never regenerated.
fn frozen_entries() -> Vec<(&'static [u8], Entry)> {
    vec![
        (
            b"a",
            Entry {
                value: Bytes::from("\"first\""),
                expires_at_ms: None,
                version: Version {
                    millis: 1_699_999_999_000,
                    counter: 1,
                    origin: 0xdead_beef,
                },
            },
        ),
        (
            b"key/2",
            Entry {
                value: Bytes::from("{\"n\":2}"),
                expires_at_ms: Some(1_700_000_060_000),
                version: Version {
                    millis: 1_699_999_999_500,
                    counter: 0,
                    origin: 42,
                },
            },
        ),
    ]
}

/// Key, value, expiry and (millis, counter, origin).
type RawEntry = (Vec<u8>, Vec<u8>, Option<u64>, (u64, u32, u32));

fn arb_entries() -> impl Strategy<Value = Vec<RawEntry>> {
    proptest::collection::vec(
        (
            proptest::collection::vec(any::<u8>(), 1..24),
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::option::of(any::<u64>()),
            (any::<u64>(), any::<u32>(), any::<u32>()),
        ),
        0..40,
    )
}

fn encode_arb(entries: &[RawEntry]) -> Vec<u8> {
    let list: Vec<(Vec<u8>, Entry)> = entries
        .iter()
        .map(|(k, v, exp, (millis, counter, origin))| {
            (
                k.clone(),
                Entry {
                    value: Bytes::copy_from_slice(v),
                    expires_at_ms: *exp,
                    version: Version {
                        millis: *millis,
                        counter: *counter,
                        origin: *origin,
                    },
                },
            )
        })
        .collect();
    encode(
        Vec::new(),
        "fuzz-node",
        NOW,
        16,
        list.iter().map(|(k, e)| (k.as_slice(), e)),
    )
    .expect("encode")
    .0
}

/// Ways to damage a valid snapshot.
#[derive(Clone, Debug)]
enum Mutation {
    FlipBits(Vec<(usize, u8)>),
    Truncate(usize),
    Insert(usize, u8),
    Remove(usize),
    Overwrite(usize, Vec<u8>),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        proptest::collection::vec((any::<usize>(), 1u8..=255), 1..5).prop_map(Mutation::FlipBits),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(i, b)| Mutation::Overwrite(i, b)),
    ]
}

fn apply(bytes: &[u8], m: &Mutation) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let n = out.len();
    match m {
        Mutation::FlipBits(flips) => {
            for &(i, mask) in flips {
                out[i % n] ^= mask;
            }
        }
        Mutation::Truncate(len) => out.truncate(len % n),
        Mutation::Insert(i, b) => out.insert(i % (n + 1), *b),
        Mutation::Remove(i) => {
            out.remove(i % n);
        }
        Mutation::Overwrite(i, b) => {
            let start = i % n;
            for (j, byte) in b.iter().enumerate() {
                if start + j < n {
                    out[start + j] = *byte;
                }
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the entries, the decoder gives them back exactly.
    #[test]
    fn any_entries_round_trip(entries in arb_entries()) {
        let bytes = encode_arb(&entries);
        let snap = decode(&bytes).expect("valid");
        prop_assert_eq!(snap.entries.len(), entries.len());
        for (got, (k, v, exp, (millis, counter, origin))) in snap.entries.iter().zip(&entries) {
            prop_assert_eq!(got.key.as_ref(), k.as_slice());
            prop_assert_eq!(got.entry.value.as_ref(), v.as_slice());
            prop_assert_eq!(got.entry.expires_at_ms, *exp);
            prop_assert_eq!(got.entry.version, Version { millis: *millis, counter: *counter, origin: *origin });
        }
    }

    /// Fuzz: arbitrary bytes never panic, and whatever is accepted is
    /// consistent (as many entries as the header announced).
    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..2048), with_magic in any::<bool>()) {
        if with_magic && bytes.len() >= 10 {
            bytes[..8].copy_from_slice(&v1::MAGIC);
            bytes[8..10].copy_from_slice(&1u16.to_le_bytes());
        }
        if let Ok(snap) = decode(&bytes) {
            prop_assert_eq!(snap.entries.len() as u64, snap.header.entry_count);
        }
    }

    /// Fuzz: any damage to a valid snapshot is refused, never accepted.
    #[test]
    fn damaged_snapshots_are_refused(entries in arb_entries(), mutation in arb_mutation()) {
        let bytes = encode_arb(&entries);
        let damaged = apply(&bytes, &mutation);
        prop_assume!(damaged != bytes);
        prop_assert!(decode(&damaged).is_err(), "accepted after {:?}", mutation);
    }
}

#[test]
fn tombstones_round_trip_and_refuse_older_copies_after_a_restore() {
    let bytes = sample(8);
    let snap = decode(&bytes).expect("valid");
    assert_eq!(snap.header.log_generation, 5);
    assert_eq!(snap.header.tombstone_count, 2);
    let mut deleted: Vec<_> = snap
        .tombstones
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    deleted.sort();
    assert_eq!(
        deleted,
        vec![
            (Bytes::from("key-1"), tombstone_version(1)),
            (Bytes::from("key-5"), tombstone_version(5)),
        ]
    );
    let restored = store(1000, 4);
    let (_, counts) = restore_bytes(&bytes, &restored, NOW).expect("valid");
    assert_eq!((counts.restored, counts.tombstones), (6, 2));
    assert_eq!(
        restored.lookup(b"key-1", NOW),
        crate::store::Lookup::Deleted(tombstone_version(1))
    );
    // The copy a peer still holds from before the delete is refused.
    assert!(matches!(
        restored.set(b"key-1", entry("old", 1, None), NOW),
        SetOutcome::Stale { .. }
    ));
}

#[test]
fn a_tombstone_older_than_the_restored_entry_does_not_delete_it() {
    let s = store(100, 1);
    s.delete(b"k", tombstone_version(1), NOW);
    let mut newer = entry("new", 1, None);
    newer.version.millis = NOW;
    let mut encoded = EncodedEntries::new();
    encoded.push(b"k", newer.view()).unwrap();
    encoded.push_tombstone(b"k", tombstone_version(1)).unwrap();
    let bytes = write_encoded(Vec::new(), origin(0), &encoded).unwrap().0;
    let restored = store(100, 1);
    let (_, counts) = restore_bytes(&bytes, &restored, NOW).unwrap();
    assert_eq!((counts.restored, counts.stale), (1, 1));
    assert_eq!(restored.get(b"k", NOW), Some(newer));
}

/// A v2 file written once, by the v2 encoder when v2 became today's format,
/// from [`frozen_entries`] and [`frozen_tombstone`] (node `aux-frozen`, log
/// generation 42); it is never regenerated. Like the v1 fixture, it must
/// decode to the same snapshot forever.
#[test]
fn a_frozen_v2_file_still_decodes() {
    let bytes = include_bytes!("testdata/v2.snap");
    let snap = decode(bytes).expect("the v2 file decodes");
    assert_eq!(
        snap.header,
        SnapshotHeader {
            node_id: "aux-frozen".into(),
            created_at_ms: 1_700_000_000_000,
            entry_count: 2,
            tombstone_count: 1,
            log_generation: 42,
            shard_count: 1,
        }
    );
    let entries: Vec<_> = snap
        .entries
        .iter()
        .map(|e| (&e.key[..], e.entry.clone()))
        .collect();
    let frozen: Vec<_> = frozen_entries().into_iter().collect();
    assert_eq!(entries, frozen);
    assert_eq!(
        snap.tombstones,
        vec![(Bytes::from("gone"), frozen_tombstone())]
    );
}

fn frozen_tombstone() -> Version {
    Version {
        millis: 1_700_000_000_123,
        counter: 4,
        origin: 2,
    }
}

/// The values of the frozen v3 file: one of each type, in their stored
/// form (key, value).
fn frozen_v3_values() -> Vec<(&'static [u8], crate::value::Value)> {
    use crate::value::{HashValue, ListValue, Score, SetValue, StrValue, Value, ZSetValue};
    let b = |s: &'static str| Bytes::from_static(s.as_bytes());
    let mut hash = HashValue::new();
    hash.insert(b("name"), b("Ada"));
    hash.insert(b("age"), b("36"));
    let list: ListValue = [b("a"), b("b"), b("a")].into_iter().collect();
    let set: SetValue = [b("x"), b("y")].into_iter().collect();
    let zset: ZSetValue = [
        (b("low"), Score::new(-1.5).unwrap()),
        (b("high"), Score::new(10.0).unwrap()),
    ]
    .into_iter()
    .collect();
    vec![
        (b"h", Value::Hash(hash)),
        (b"l", Value::List(list)),
        (b"s", Value::Set(set)),
        (b"z", Value::ZSet(zset)),
        (b"str", Value::string("plain \"text\"\0")),
        (
            b"json",
            Value::Str(StrValue {
                bytes: br#"{"n":[1,2.5,null],"ok":true}"#.to_vec(),
                json: true,
            }),
        ),
    ]
}

fn frozen_v3_entry(i: usize, value: &crate::value::Value) -> Entry {
    Entry {
        value: Bytes::from(crate::value::stored::to_stored(value)),
        expires_at_ms: (i % 2 == 1).then_some(1_700_000_600_000 + i as u64),
        version: Version {
            millis: 1_700_000_000_000 + i as u64,
            counter: i as u32,
            origin: 7,
        },
    }
}

/// A v3 file written once, by the v3 encoder when v3 became today's format
/// (`FREEZE_V3=1` wrote it; never regenerated): a hash, a list, a set, a
/// sorted set, a plain string and a JSON value, and a tombstone. It must
/// decode to exactly those values forever.
#[test]
fn a_frozen_v3_file_decodes_to_a_value_of_every_type() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/snapshot/testdata/v3.snap");
    if std::env::var_os("FREEZE_V3").is_some() {
        let header = SnapshotHeader {
            node_id: "aux-frozen-v3".into(),
            created_at_ms: 1_700_000_000_000,
            entry_count: 6,
            tombstone_count: 1,
            log_generation: 7,
            shard_count: 1,
        };
        let mut w = SnapshotWriter::new(Vec::new(), &header).unwrap();
        for (i, (key, value)) in frozen_v3_values().iter().enumerate() {
            w.push(key, &frozen_v3_entry(i, value)).unwrap();
        }
        w.push_tombstone(b"gone", frozen_tombstone()).unwrap();
        std::fs::write(path, w.finish().unwrap().0).unwrap();
    }
    let bytes = include_bytes!("testdata/v3.snap");
    assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 3);
    let snap = decode(bytes).expect("the v3 file decodes");
    assert_eq!(snap.header.node_id, "aux-frozen-v3");
    assert_eq!(
        (snap.header.entry_count, snap.header.tombstone_count),
        (6, 1)
    );
    assert_eq!(snap.header.log_generation, 7);
    let expected = frozen_v3_values();
    assert_eq!(snap.entries.len(), expected.len());
    for (i, (got, (key, value))) in snap.entries.iter().zip(&expected).enumerate() {
        assert_eq!(&got.key[..], *key);
        let decoded = crate::value::stored::from_stored(&got.entry.value).unwrap();
        assert_eq!(&decoded, value, "{}", String::from_utf8_lossy(key));
        let mut frozen = frozen_v3_entry(i, value);
        frozen.value = got.entry.value.clone();
        assert_eq!(got.entry, frozen);
    }
    assert_eq!(
        snap.tombstones,
        vec![(Bytes::from("gone"), frozen_tombstone())]
    );
}

#[test]
fn today_s_snapshots_are_written_as_v3() {
    let (bytes, _) = encode(Vec::new(), "n", 1, 1, std::iter::empty()).unwrap();
    assert_eq!(CURRENT_VERSION, 3);
    assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 3);
}

/// A store with one live key and one that expired: its snapshot carries
/// the expired floor as a second entry, but counts one key, and a reader
/// tells the floor apart (expired when written).
#[test]
fn the_expired_floor_is_an_entry_but_no_key() {
    let s = store(100, 4);
    s.set(b"live", entry("v", 1, None), NOW);
    s.set(b"gone", entry("v", 2, Some(NOW + 10)), NOW);
    assert!(s.get(b"gone", NOW + 20).is_none(), "expired and removed");
    let encoded = encode_store(&s, NOW + 20);
    assert_eq!((encoded.len(), encoded.keys()), (2, 1));
    let mut origin = origin(0);
    origin.created_at_ms = NOW + 20;
    let (bytes, _) = write_encoded(Vec::new(), origin, &encoded).expect("into a Vec");
    let snap = decode(&bytes).expect("decodes");
    let keys: Vec<&[u8]> = snap
        .entries
        .iter()
        .filter(|e| !snap.expired_when_written(e))
        .map(|e| e.key.as_ref())
        .collect();
    assert_eq!(keys, [b"live".as_ref()]);
    // Restored, the floor is counted as what it is, not as a key that
    // expired since (the start-up log reports both).
    let target = store(100, 4);
    let (_, counts) = restore_bytes(&bytes, &target, NOW + 30).expect("restores");
    assert_eq!((counts.restored, counts.expired, counts.floors), (1, 0, 1));
}
