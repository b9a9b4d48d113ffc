//! Property tests of an item's buffer encoding (see `item`), on its own and
//! through the store: long keys and values, counters past `u16::MAX`,
//! millis near `u64::MAX`, with and without expiry.

use std::collections::HashMap;

use proptest::prelude::*;

use super::item::{Item, MAX_KEY_LEN, MAX_VALUE_LEN};
use super::model_tests::config;
use super::*;

const NOW: u64 = 1_700_000_000_000;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

/// Values short and long: most are small, some cross 65,535.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![3 => bytes(200), 1 => bytes(70_000)]
}

/// Versions with the fields at and around the encoding's edges: counters
/// kept in the node (below 65,535) and in the buffer (65,535 and up).
fn version() -> impl Strategy<Value = Version> {
    let millis = prop_oneof![0..10u64, u64::MAX - 10..=u64::MAX, any::<u64>()];
    let counter = prop_oneof![
        0..4u32,
        65_530..65_540u32,
        u32::MAX - 2..=u32::MAX,
        any::<u32>()
    ];
    (millis, counter, any::<u32>()).prop_map(|(millis, counter, origin)| Version {
        millis,
        counter,
        origin,
    })
}

/// An expiry after [`NOW`] (so that the store keeps the entry), or none.
fn expiry() -> impl Strategy<Value = Option<u64>> {
    prop::option::of(prop_oneof![
        NOW + 1..NOW + 10,
        u64::MAX - 10..=u64::MAX,
        NOW + 1..=u64::MAX
    ])
}

fn entry() -> impl Strategy<Value = Entry> {
    (value(), expiry(), version()).prop_map(|(value, expires_at_ms, version)| Entry {
        value: Bytes::from(value),
        expires_at_ms,
        version,
    })
}

#[derive(Clone, Debug)]
enum Op {
    /// Set a key (by index into the case's keys) to an entry.
    Set(usize, Entry),
    /// Remove a key if it holds exactly the version (no tombstone).
    Remove(usize),
}

fn op(keys: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..keys, entry()).prop_map(|(k, e)| Op::Set(k, e)),
        1 => (0..keys).prop_map(Op::Remove),
    ]
}

/// Distinct keys of 0 to 2,000 bytes.
fn keys() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::hash_set(prop_oneof![bytes(16), bytes(2_000)], 1..5)
        .prop_map(|keys| keys.into_iter().collect())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn an_item_gives_back_what_it_was_given(
        key in bytes(2_000),
        value in value(),
        version in version(),
        expires_at in prop_oneof![Just(0u64), 1..10u64, any::<u64>(), Just(u64::MAX)],
    ) {
        let item = Item::new(&key, &value, version, expires_at).expect("fits");
        let parts = item.parts();
        prop_assert_eq!(parts.key, &key[..]);
        prop_assert_eq!(parts.value, &value[..]);
        prop_assert_eq!(parts.version, version);
        prop_assert_eq!(parts.expires_at, expires_at);
        prop_assert_eq!(item.key(), &key[..]);
        prop_assert_eq!(item.version(), version);
        prop_assert_eq!(item.expires_at(), expires_at);
        prop_assert_eq!(item.size(), (key.len() + value.len()) as u64);
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn the_store_gives_back_what_it_was_given(
        keys in keys(),
        shards in 1..4usize,
        ops in prop::collection::vec(op(5), 1..24),
    ) {
        let store = Store::new(StoreConfig {
            max_items: 100,
            max_bytes: None,
            shards,
            tombstone_grace_ms: 1_000,
        });
        let mut model: HashMap<Vec<u8>, Entry> = HashMap::new();
        for op in ops {
            match op {
                Op::Set(k, entry) => {
                    let key = &keys[k % keys.len()];
                    let expected = match model.get(key) {
                        Some(held) if entry.version <= held.version => SetOutcome::Stale {
                            held: held.version,
                        },
                        _ => SetOutcome::Stored,
                    };
                    prop_assert_eq!(store.set(key, entry.clone(), NOW), expected);
                    if expected == SetOutcome::Stored {
                        model.insert(key.clone(), entry);
                    }
                }
                Op::Remove(k) => {
                    let key = &keys[k % keys.len()];
                    let held = model.get(key).map(|e| e.version);
                    // The wrong version first: nothing happens.
                    let wrong = held.map_or(Version::ZERO, |v| Version {
                        origin: v.origin.wrapping_add(1),
                        ..v
                    });
                    prop_assert!(!store.remove_if_version(key, wrong));
                    if let Some(version) = held {
                        prop_assert!(store.remove_if_version(key, version));
                        model.remove(key);
                    }
                }
            }
            for key in &keys {
                prop_assert_eq!(store.peek(key, NOW), model.get(key).cloned());
            }
            let stats = store.stats();
            prop_assert_eq!(stats.items, model.len() as u64);
            prop_assert_eq!(
                stats.bytes,
                model.iter().map(|(k, e)| (k.len() + e.value.len()) as u64).sum::<u64>()
            );
            let mut lent = 0;
            for shard in 0..shards {
                store.for_each_in_shard(shard, NOW, |key, entry| {
                    assert_eq!(Some(&entry.to_entry()), model.get(key));
                    lent += 1;
                });
            }
            prop_assert_eq!(lent, model.len());
        }
        // Dropping the store frees every buffer (checked under valgrind or
        // Miri; here it must at least not crash).
        drop(store);
    }
}

#[test]
fn a_key_longer_than_an_item_can_hold_is_too_large() {
    let store = Store::new(StoreConfig {
        shards: 1,
        ..StoreConfig::default()
    });
    let entry = Entry {
        value: Bytes::from_static(b"v"),
        expires_at_ms: None,
        version: Version {
            millis: 1,
            counter: 0,
            origin: 0,
        },
    };
    let longest = vec![b'k'; MAX_STORED_KEY_BYTES];
    assert_eq!(MAX_STORED_KEY_BYTES, 65_535);
    assert_eq!(store.set(&longest, entry.clone(), NOW), SetOutcome::Stored);
    assert_eq!(store.get(&longest, NOW), Some(entry.clone()));

    let too_long = vec![b'k'; MAX_STORED_KEY_BYTES + 1];
    assert_eq!(
        store.set(&too_long, entry.clone(), NOW),
        SetOutcome::TooLarge
    );
    assert_eq!(store.get(&too_long, NOW), None);
    let stats = store.stats();
    assert_eq!((stats.items, stats.bytes), (1, 65_536));
}

#[test]
fn the_limits_of_an_item_are_its_length_fields() {
    assert!(Item::fits(MAX_KEY_LEN, 0));
    assert!(!Item::fits(MAX_KEY_LEN + 1, 0));
    assert_eq!(MAX_VALUE_LEN, (1 << 31) - 1);
    assert_eq!(MAX_STORED_VALUE_BYTES, MAX_VALUE_LEN);
    #[cfg(target_pointer_width = "64")]
    assert!(Item::fits(MAX_KEY_LEN, MAX_VALUE_LEN));
    assert!(!Item::fits(0, MAX_VALUE_LEN + 1));
    assert!(!Item::fits(0, usize::MAX));
    assert!(Item::new(&[0; MAX_KEY_LEN + 1], b"", Version::ZERO, 0).is_none());
}

#[test]
fn an_item_is_24_bytes_and_so_is_an_optional_one() {
    #[cfg(target_pointer_width = "64")]
    {
        assert_eq!(std::mem::size_of::<Item>(), 24);
        assert_eq!(std::mem::size_of::<Option<Item>>(), 24);
    }
}

/// The edges of the encoding: counters on both sides of the sentinel,
/// expiries 0, 1 and the largest, empty keys and values; a replace across
/// the two counter encodings keeps the byte count exact.
#[test]
fn counter_and_expiry_edges_round_trip_and_replace_keeps_bytes_exact() {
    for counter in [0u32, 65_534, 65_535, 65_536, u32::MAX] {
        for exp in [0u64, 1, u64::MAX] {
            for (k, v) in [
                (&b""[..], &b""[..]),
                (&b"k"[..], &b""[..]),
                (&b""[..], &b"v"[..]),
            ] {
                let ver = Version {
                    millis: u64::MAX,
                    counter,
                    origin: u32::MAX,
                };
                let it = Item::new(k, v, ver, exp).unwrap();
                let p = it.parts();
                assert_eq!((p.key, p.value, p.version, p.expires_at), (k, v, ver, exp));
                assert_eq!(it.version(), ver);
            }
        }
    }
    // Replace across encodings keeps accounting exact.
    let store = Store::new(StoreConfig {
        shards: 1,
        max_items: 10,
        max_bytes: Some(10),
        tombstone_grace_ms: 1,
    });
    let e = |c: u32, v: &'static [u8], exp: Option<u64>| Entry {
        value: Bytes::from_static(v),
        expires_at_ms: exp,
        version: Version {
            millis: 1,
            counter: c,
            origin: 0,
        },
    };
    assert_eq!(
        store.set(b"k", e(65_535, b"abcd", Some(NOW + 5)), NOW),
        SetOutcome::Stored
    );
    assert_eq!(
        store.set(b"k", e(65_536, b"", None), NOW),
        SetOutcome::Stored
    );
    assert_eq!(store.stats().bytes, 1);
    assert_eq!(
        store.set(b"k", e(65_535, b"x", None), NOW),
        SetOutcome::Stale {
            held: e(65_536, b"", None).version
        }
    );
    assert_eq!(
        store.set(b"k", e(u32::MAX, b"123456789", Some(NOW + 1)), NOW),
        SetOutcome::Stored
    );
    assert_eq!(store.stats().bytes, 10);
    assert_eq!(store.get(b"k", NOW + 1), None);
    assert_eq!(store.stats().bytes, 0);
    assert_eq!(store.set(b"", e(1, b"", None), NOW), SetOutcome::Stored);
    assert_eq!(store.get(b"", NOW).unwrap().value.len(), 0);
}
