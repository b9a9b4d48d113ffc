//! `Store::count_in_ranges` against a model: a map of the keys written,
//! deleted and expired, filtered by position.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::keyspace::key_position;
use crate::ring::PositionRange;

const NOW: u64 = 1_700_000_000_000;

fn store() -> Store {
    Store::new(StoreConfig {
        max_items: 100_000,
        max_bytes: None,
        shards: 4,
        tombstone_grace_ms: 60_000,
    })
}

fn version(millis: u64) -> Version {
    Version {
        millis,
        counter: 0,
        origin: 1,
    }
}

fn entry(expires_at_ms: Option<u64>, millis: u64) -> Entry {
    Entry {
        value: Bytes::from_static(b"v"),
        expires_at_ms,
        version: version(millis),
    }
}

/// Sorted, disjoint ranges from cut points: every other piece between
/// consecutive cuts (the first starting at 0 or not), ending at
/// `u64::MAX` when the last piece is taken.
fn ranges_from(mut cuts: Vec<u64>, take_first: bool) -> Vec<PositionRange> {
    cuts.sort_unstable();
    cuts.dedup();
    let mut starts = vec![0];
    starts.extend(cuts.iter().copied().filter(|&c| c > 0));
    let mut ranges = Vec::new();
    for (i, &first) in starts.iter().enumerate() {
        let last = starts.get(i + 1).map_or(u64::MAX, |next| next - 1);
        if (i % 2 == 0) == take_first {
            ranges.push(PositionRange { first, last });
        }
    }
    ranges
}

#[derive(Clone, Debug)]
enum Op {
    /// Write key `i`, expiring `ttl` ms after NOW (`None`: never).
    Set(u16, Option<u64>),
    Delete(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u16..64, proptest::option::of(1u64..20)).prop_map(|(i, ttl)| Op::Set(i, ttl)),
        1 => (0u16..64).prop_map(Op::Delete),
    ]
}

fn key(i: u16) -> Vec<u8> {
    format!("key:{i}").into_bytes()
}

/// A place where ranges start or end: anywhere, or at a key's position or
/// either side of it, so that keys sit on the ranges' edges.
fn cut() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        (0u16..64, 0u64..3)
            .prop_map(|(i, side)| key_position(&key(i)).wrapping_add(side).wrapping_sub(1)),
    ]
}

proptest! {
    /// The count is the model's live keys in the ranges: deleted keys
    /// (tombstones) and keys expired by the time of counting are left out.
    #[test]
    fn counts_the_live_keys_in_the_ranges(
        ops in proptest::collection::vec(op(), 0..120),
        cuts in proptest::collection::vec(cut(), 0..8),
        take_first in any::<bool>(),
        later in 0u64..25,
    ) {
        let store = store();
        let mut model: BTreeMap<Vec<u8>, Option<u64>> = BTreeMap::new();
        for (step, op) in ops.iter().enumerate() {
            let millis = step as u64 + 1;
            match *op {
                Op::Set(i, ttl) => {
                    let expires = ttl.map(|t| NOW + t);
                    store.set(&key(i), entry(expires, millis), NOW);
                    model.insert(key(i), expires);
                }
                Op::Delete(i) => {
                    store.delete(&key(i), version(millis), NOW);
                    model.remove(&key(i));
                }
            }
        }
        let at = NOW + later;
        let ranges = ranges_from(cuts, take_first);
        let expected = model
            .iter()
            .filter(|(_, expires)| expires.is_none_or(|e| e > at))
            .filter(|(k, _)| ranges.iter().any(|r| r.contains(key_position(k))))
            .count() as u64;
        prop_assert_eq!(store.count_in_ranges(&ranges, at), expected);
    }
}

#[test]
fn ranges_that_tile_the_space_count_every_live_key_once() {
    let store = store();
    for i in 0..500u16 {
        // Every fifth key expires before the count.
        let expires = (i % 5 == 0).then_some(NOW + 1);
        store.set(&key(i), entry(expires, 1), NOW);
    }
    let cuts: Vec<u64> = (1..40).map(|i| i * (u64::MAX / 40)).collect();
    let even = ranges_from(cuts.clone(), true);
    let odd = ranges_from(cuts, false);
    let at = NOW + 1;
    assert_eq!(
        store.count_in_ranges(&even, at) + store.count_in_ranges(&odd, at),
        400
    );
    let all = [PositionRange {
        first: 0,
        last: u64::MAX,
    }];
    assert_eq!(store.count_in_ranges(&all, at), 400);
    assert_eq!(store.count_in_ranges(&all, NOW), 500);
    assert_eq!(store.count_in_ranges(&[], NOW), 0);
}
