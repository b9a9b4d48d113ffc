//! Unit tests of the store: one behaviour each, through the public API, with
//! a look at the internals only where the behaviour is about them (purge
//! order, bounded indexes).

use super::*;

const NOW: u64 = 1_700_000_000_000;
const GRACE: u64 = 1_000;

fn v(millis: u64) -> Version {
    Version {
        millis,
        counter: 0,
        origin: 0,
    }
}

fn entry(value: &str, version: u64) -> Entry {
    Entry {
        value: Bytes::copy_from_slice(value.as_bytes()),
        expires_at_ms: None,
        version: v(version),
    }
}

fn expiring(value: &str, version: u64, at: u64) -> Entry {
    Entry {
        expires_at_ms: Some(at),
        ..entry(value, version)
    }
}

fn store(max_items: usize, max_bytes: Option<u64>, shards: usize) -> Store {
    Store::new(StoreConfig {
        max_items,
        max_bytes,
        shards,
        tombstone_grace_ms: GRACE,
    })
}

/// The exported keys as strings, in export order.
fn keys(store: &Store, now: u64) -> Vec<String> {
    store
        .export(now)
        .into_iter()
        .map(|(key, _)| String::from_utf8(key.to_vec()).unwrap())
        .collect()
}

fn set_all(store: &Store, names: &[&str], version: u64) {
    for name in names {
        assert_eq!(
            store.set(name.as_bytes(), entry(name, version), NOW),
            SetOutcome::Stored
        );
    }
}

#[test]
fn lru_evicts_the_least_recently_used_and_a_get_counts_as_a_use() {
    let store = store(3, None, 1);
    set_all(&store, &["a", "b", "c"], 1);
    assert!(store.get(b"a", NOW).is_some());
    set_all(&store, &["d"], 1);
    assert_eq!(keys(&store, NOW), ["c", "a", "d"]);
    assert_eq!(store.stats().evictions, 1);
    // A rewrite is a use too.
    assert_eq!(store.set(b"c", entry("c2", 2), NOW), SetOutcome::Stored);
    set_all(&store, &["e"], 1);
    assert_eq!(keys(&store, NOW), ["d", "c", "e"]);
}

#[test]
fn peek_is_not_a_use() {
    let store = store(2, None, 1);
    set_all(&store, &["a", "b"], 1);
    assert_eq!(store.peek(b"a", NOW), Some(entry("a", 1)));
    set_all(&store, &["c"], 1);
    assert_eq!(keys(&store, NOW), ["b", "c"]);
    let stats = store.stats();
    assert_eq!((stats.hits, stats.misses), (0, 0));
}

#[test]
fn capacity_by_items_is_exact_with_one_shard() {
    let store = store(5, None, 1);
    for i in 0..20 {
        store.set(format!("k{i:02}").as_bytes(), entry("x", 1), NOW);
    }
    assert_eq!(store.len(), 5);
    assert_eq!(keys(&store, NOW), ["k15", "k16", "k17", "k18", "k19"]);
    assert_eq!(store.stats().evictions, 15);
}

#[test]
fn capacity_by_bytes_evicts_until_the_new_item_fits() {
    let store = store(100, Some(20), 1);
    for key in ["k1", "k2", "k3", "k4"] {
        store.set(key.as_bytes(), entry("abc", 1), NOW); // 5 bytes each
    }
    assert_eq!(store.stats().bytes, 20);
    store.set(b"k5", entry("12345678", 1), NOW); // 10 bytes: two must go
    assert_eq!(keys(&store, NOW), ["k3", "k4", "k5"]);
    let stats = store.stats();
    assert_eq!((stats.bytes, stats.items, stats.evictions), (20, 3, 2));
}

#[test]
fn growing_an_item_evicts_others_but_never_itself() {
    let store = store(100, Some(20), 1);
    for key in ["a", "b", "c", "d"] {
        store.set(key.as_bytes(), entry("1234", 1), NOW); // 5 bytes each
    }
    // "a" is the least recently used, yet growing it evicts b instead.
    store.set(b"a", entry("123456789", 2), NOW); // 10 bytes
    assert_eq!(keys(&store, NOW), ["c", "d", "a"]);
    assert_eq!(store.stats().bytes, 20);
    // Exactly the whole share.
    store.set(b"a", entry(&"x".repeat(19), 3), NOW);
    assert_eq!(keys(&store, NOW), ["a"]);
    assert_eq!(store.stats().bytes, 20);
}

#[test]
fn an_item_larger_than_its_shard_share_is_too_large() {
    let store = store(100, Some(10), 1);
    store.set(b"k", entry("old", 1), NOW);
    assert_eq!(
        store.set(b"k", entry("0123456789", 2), NOW),
        SetOutcome::TooLarge
    );
    assert_eq!(store.get(b"k", NOW), Some(entry("old", 1)));
    assert_eq!(
        store.set(b"k", entry("012345678", 2), NOW),
        SetOutcome::Stored
    );

    // 4 shards share 100 bytes: 25 each, so 30 bytes never fit.
    let sharded = store_with_shares(100, Some(100), 4);
    assert_eq!(
        sharded.set(b"k", entry(&"x".repeat(29), 1), NOW),
        SetOutcome::TooLarge
    );
    assert_eq!(
        sharded.set(b"k", entry(&"x".repeat(24), 1), NOW),
        SetOutcome::Stored
    );
    assert_eq!(sharded.len(), 1);
}

fn store_with_shares(max_items: usize, max_bytes: Option<u64>, shards: usize) -> Store {
    let store = store(max_items, max_bytes, shards);
    let limits: Vec<(usize, u64)> = (0..shards).map(|i| store.lock(i).limits()).collect();
    let items: usize = limits.iter().map(|l| l.0).sum();
    assert_eq!(items, max_items.max(shards));
    if let Some(max_bytes) = max_bytes {
        assert_eq!(limits.iter().map(|l| l.1).sum::<u64>(), max_bytes);
    }
    store
}

#[test]
fn shares_add_up_to_the_limits() {
    let store = store_with_shares(1000, Some(1_000_003), 16);
    let shares: Vec<_> = (0..16).map(|i| store.lock(i).limits()).collect();
    assert_eq!(shares[0], (63, 62_501));
    assert_eq!(shares[7], (63, 62_500));
    assert_eq!(shares[8], (62, 62_500));
    // Fewer items than shards: every shard still holds one.
    store_with_shares(3, None, 8);
    store_with_shares(1, Some(1), 1);
}

#[test]
fn older_and_equal_versions_are_stale() {
    let store = store(10, None, 1);
    assert_eq!(store.set(b"k", entry("five", 5), NOW), SetOutcome::Stored);
    assert_eq!(
        store.set(b"k", entry("four", 4), NOW),
        SetOutcome::Stale { held: v(5) }
    );
    assert_eq!(
        store.set(b"k", entry("again", 5), NOW),
        SetOutcome::Stale { held: v(5) }
    );
    assert_eq!(store.get(b"k", NOW), Some(entry("five", 5)));
    // Counter and origin order versions within a millisecond.
    let mut newer = entry("six", 5);
    newer.version.counter = 1;
    assert_eq!(store.set(b"k", newer.clone(), NOW), SetOutcome::Stored);
    assert_eq!(store.get(b"k", NOW), Some(newer));
}

#[test]
fn a_tombstone_blocks_older_writes_and_lets_newer_ones_in() {
    let store = store(10, None, 1);
    store.set(b"k", entry("v5", 5), NOW);
    assert_eq!(store.delete(b"k", v(7), NOW), DeleteOutcome::Deleted);
    assert_eq!(store.get(b"k", NOW), None);
    assert_eq!(store.stats().tombstones, 1);
    assert_eq!(
        store.set(b"k", entry("v6", 6), NOW),
        SetOutcome::Stale { held: v(7) }
    );
    assert_eq!(
        store.set(b"k", entry("v7", 7), NOW),
        SetOutcome::Stale { held: v(7) }
    );
    assert_eq!(store.set(b"k", entry("v8", 8), NOW), SetOutcome::Stored);
    assert_eq!(store.get(b"k", NOW), Some(entry("v8", 8)));
    // The live entry now holds the version; the tombstone is gone.
    assert_eq!(store.stats().tombstones, 0);
    // Tombstones are not items.
    assert_eq!((store.stats().items, store.stats().evictions), (1, 0));
}

#[test]
fn a_delete_keeps_the_higher_tombstone_and_is_stale_against_newer_entries() {
    let store = store(10, None, 1);
    assert_eq!(store.delete(b"gone", v(9), NOW), DeleteOutcome::NotFound);
    assert_eq!(store.delete(b"gone", v(4), NOW), DeleteOutcome::NotFound);
    assert_eq!(
        store.set(b"gone", entry("v8", 8), NOW),
        SetOutcome::Stale { held: v(9) }
    );
    assert_eq!(store.stats().tombstones, 1);

    store.set(b"k", entry("v5", 5), NOW);
    assert_eq!(
        store.delete(b"k", v(5), NOW),
        DeleteOutcome::Stale { held: v(5) }
    );
    assert_eq!(
        store.delete(b"k", v(4), NOW),
        DeleteOutcome::Stale { held: v(5) }
    );
    assert_eq!(store.get(b"k", NOW), Some(entry("v5", 5)));
    assert_eq!(store.stats().tombstones, 1);
}

#[test]
fn adopt_stores_a_copy_only_over_nothing_its_own_version_or_one_it_continues() {
    let s = store(100, None, 4);
    let copy = |version| Lookup::Live(entry("result", version));
    // Nothing at all: stored.
    assert_eq!(
        s.adopt(b"fresh", &copy(5), &[v(3)], NOW),
        Ok(Adopted::Set(SetOutcome::Stored))
    );
    // A version it continues (the command's base): stored over it, even
    // when that is not the only version named.
    assert_eq!(s.set(b"base", entry("before", 3), NOW), SetOutcome::Stored);
    assert_eq!(
        s.adopt(b"base", &copy(5), &[v(4), v(3)], NOW),
        Ok(Adopted::Set(SetOutcome::Stored))
    );
    assert_eq!(s.get(b"base", NOW).unwrap().value, "result");
    // Its own version: nothing to do, as a plain copy would say.
    assert_eq!(
        s.adopt(b"base", &copy(5), &[v(3)], NOW),
        Ok(Adopted::Set(SetOutcome::Stale { held: v(5) }))
    );
    // Another history, lower or higher: refused, and kept.
    for other in [4, 9] {
        let key = format!("other-{other}");
        assert_eq!(
            s.set(key.as_bytes(), entry("theirs", other), NOW),
            SetOutcome::Stored
        );
        assert_eq!(
            s.adopt(key.as_bytes(), &copy(5), &[v(3)], NOW),
            Err(v(other))
        );
        assert_eq!(s.get(key.as_bytes(), NOW).unwrap().value, "theirs");
    }
    // A tombstone counts as a history too; a delete is adopted like an
    // entry.
    assert!(matches!(
        s.delete(b"gone", v(4), NOW),
        DeleteOutcome::NotFound
    ));
    assert_eq!(s.adopt(b"gone", &copy(5), &[v(3)], NOW), Err(v(4)));
    assert_eq!(s.lookup(b"gone", NOW), Lookup::Deleted(v(4)));
    assert_eq!(
        s.adopt(b"base", &Lookup::Deleted(v(6)), &[v(5)], NOW),
        Ok(Adopted::Deleted(DeleteOutcome::Deleted))
    );
    assert_eq!(s.lookup(b"base", NOW), Lookup::Deleted(v(6)));
}

#[test]
fn a_tombstone_past_its_grace_lets_an_old_write_in() {
    let store = store(10, None, 1);
    assert_eq!(store.delete(b"k", v(10), NOW), DeleteOutcome::NotFound);
    assert_eq!(
        store.set(b"k", entry("old", 5), NOW + GRACE - 1),
        SetOutcome::Stale { held: v(10) }
    );
    assert_eq!(
        store.set(b"k", entry("old", 5), NOW + GRACE),
        SetOutcome::Stored
    );
    assert_eq!(store.get(b"k", NOW + GRACE), Some(entry("old", 5)));
    assert_eq!(store.stats().tombstones, 0);
}

#[test]
fn zero_grace_keeps_no_tombstones() {
    let store = Store::new(StoreConfig {
        max_items: 10,
        max_bytes: None,
        shards: 1,
        tombstone_grace_ms: 0,
    });
    store.set(b"k", entry("v5", 5), NOW);
    assert_eq!(store.delete(b"k", v(7), NOW), DeleteOutcome::Deleted);
    assert_eq!(store.stats().tombstones, 0);
    assert_eq!(store.set(b"k", entry("v6", 6), NOW), SetOutcome::Stored);
}

#[test]
fn an_expired_entry_is_never_returned_and_a_get_counts_it() {
    let store = store(10, None, 1);
    store.set(b"k", expiring("x", 1, NOW + 10), NOW);
    assert_eq!(store.get(b"k", NOW + 9), Some(expiring("x", 1, NOW + 10)));
    assert_eq!(store.peek(b"k", NOW + 10), None);
    assert!(store.export(NOW + 10).is_empty());
    let mut seen = 0;
    store.for_each_in_shard(0, NOW + 10, |_, _| seen += 1);
    assert_eq!(seen, 0);
    // Not reclaimed by looking.
    assert_eq!(store.stats().items, 1);
    assert_eq!(store.get(b"k", NOW + 10), None);
    let stats = store.stats();
    assert_eq!(
        (
            stats.items,
            stats.bytes,
            stats.hits,
            stats.misses,
            stats.expirations
        ),
        (0, 0, 1, 1, 1)
    );
}

#[test]
fn an_expired_entry_is_a_delete_at_its_version() {
    let store = store(10, None, 1);
    store.set(b"k", expiring("v10", 10, NOW + 10), NOW);
    // Older than the expired entry: the value it replaced, from a replica
    // that missed it or from a restore, must not come back.
    assert_eq!(
        store.set(b"k", entry("v3", 3), NOW + 10),
        SetOutcome::Stale { held: v(10) }
    );
    assert_eq!(store.get(b"k", NOW + 10), None);
    assert_eq!(store.lookup(b"k", NOW + 10), Lookup::Deleted(v(10)));
    assert_eq!(store.stats().expirations, 1);
    // Newer: stored.
    assert_eq!(
        store.set(b"k", entry("v11", 11), NOW + 10),
        SetOutcome::Stored
    );
    assert_eq!(store.get(b"k", NOW + 10), Some(entry("v11", 11)));

    // A delete that finds it expired keeps the higher version.
    store.set(b"j", expiring("v10", 10, NOW + 10), NOW);
    assert_eq!(store.delete(b"j", v(2), NOW + 10), DeleteOutcome::NotFound);
    assert_eq!(
        store.set(b"j", entry("v2", 2), NOW + 10),
        SetOutcome::Stale { held: v(10) }
    );
    assert_eq!(store.stats().expirations, 2);

    // Reclaimed by the sweep, or by a handoff's purge of its shard: the
    // same tombstone.
    store.set(b"p", expiring("v10", 10, NOW + 10), NOW);
    store.set(b"q", expiring("v10", 10, NOW + 10), NOW);
    assert_eq!(store.purge_expired(NOW + 10, 100), 2);
    assert_eq!(
        store.set(b"p", entry("v9", 9), NOW + 10),
        SetOutcome::Stale { held: v(10) }
    );
    store.set(b"r", expiring("v10", 10, NOW + 10), NOW);
    assert_eq!(store.purge_expired_in_shard(0, NOW + 10), 1);
    let mut tombstones = Vec::new();
    store.for_each_tombstone_in_shard(0, NOW + 10, |k, version| {
        tombstones.push((k.to_vec(), version))
    });
    assert!(
        tombstones.contains(&(b"r".to_vec(), v(10))),
        "{tombstones:?}"
    );
    assert_eq!(store.purge_expired_in_shard(99, NOW + 10), 0);
}

#[test]
fn an_already_expired_write_is_refused_and_acts_as_a_delete() {
    let store = store(10, None, 1);
    store.set(b"k", entry("v1", 1), NOW);
    assert_eq!(
        store.set(b"k", expiring("v3", 3, NOW), NOW),
        SetOutcome::Expired
    );
    assert_eq!(store.get(b"k", NOW), None);
    let stats = store.stats();
    assert_eq!(
        (stats.items, stats.tombstones, stats.expirations),
        (0, 1, 0)
    );
    // A late write older than the expired one cannot bring the key back...
    assert_eq!(
        store.set(b"k", entry("v2", 2), NOW),
        SetOutcome::Stale { held: v(3) }
    );
    // ...a newer one can.
    assert_eq!(store.set(b"k", entry("v4", 4), NOW), SetOutcome::Stored);

    // A stale expired write changes nothing.
    assert_eq!(
        store.set(b"k", expiring("v3", 3, NOW - 1), NOW),
        SetOutcome::Stale { held: v(4) }
    );
    assert_eq!(store.get(b"k", NOW), Some(entry("v4", 4)));
}

#[test]
fn purge_reclaims_expired_entries_without_reads_and_respects_its_budget() {
    let store = store(100, None, 1);
    // Inserted in reverse expiry order, so LRU order is not expiry order.
    for i in (1..=10u64).rev() {
        store.set(
            format!("t{i:02}").as_bytes(),
            expiring("x", 1, NOW + i),
            NOW,
        );
    }
    set_all(&store, &["p1", "p2", "p3", "p4", "p5"], 1);
    assert_eq!(store.purge_expired(NOW + 5, 3), 3);
    let left = store.lock(0).raw_keys();
    for gone in ["t01", "t02", "t03"] {
        assert!(
            !left.contains(&gone.as_bytes().to_vec()),
            "{gone} not purged"
        );
    }
    assert_eq!(store.len(), 12);
    assert_eq!(store.purge_expired(NOW + 5, 100), 2);
    assert_eq!(store.purge_expired(NOW + 5, 100), 0);
    assert_eq!(store.purge_expired(NOW + 5, 0), 0);
    let stats = store.stats();
    assert_eq!(
        (stats.items, stats.expirations, stats.hits, stats.misses),
        (10, 5, 0, 0)
    );
    assert_eq!(keys(&store, NOW + 5).len(), 10);
    // Rewriting an entry moves its expiry: the old record must not purge it.
    store.set(b"t10", expiring("y", 2, NOW + 100), NOW + 5);
    assert_eq!(store.purge_expired(NOW + 50, 100), 4);
    assert_eq!(
        store.get(b"t10", NOW + 50),
        Some(expiring("y", 2, NOW + 100))
    );
}

#[test]
fn purge_spreads_its_budget_over_the_shards() {
    let store = store(10_000, None, 4);
    for i in 0..400 {
        store.set(format!("k{i}").as_bytes(), expiring("x", 1, NOW + 1), NOW);
    }
    let before: Vec<usize> = (0..4).map(|s| store.lock(s).len()).collect();
    assert!(before.iter().all(|&n| n > 20), "{before:?}");
    assert_eq!(store.purge_expired(NOW + 1, 8), 8);
    let after: Vec<usize> = (0..4).map(|s| store.lock(s).len()).collect();
    for s in 0..4 {
        assert_eq!(
            before[s] - after[s],
            2,
            "shard {s}: {before:?} -> {after:?}"
        );
    }
    // With one unit per call, successive calls start at successive shards.
    for _ in 0..4 {
        assert_eq!(store.purge_expired(NOW + 1, 1), 1);
    }
    let last: Vec<usize> = (0..4).map(|s| store.lock(s).len()).collect();
    for s in 0..4 {
        assert_eq!(after[s] - last[s], 1, "shard {s}: {after:?} -> {last:?}");
    }
    // A large budget empties every shard.
    assert_eq!(store.purge_expired(NOW + 1, 1000), 400 - 12);
    assert!(store.is_empty());
}

#[test]
fn purge_drops_tombstones_after_their_grace() {
    let store = store(10, None, 3);
    for i in 0..50 {
        store.delete(format!("k{i}").as_bytes(), v(1), NOW);
    }
    assert_eq!(store.stats().tombstones, 50);
    assert_eq!(store.purge_expired(NOW + GRACE - 1, 100), 0);
    assert_eq!(store.stats().tombstones, 50);
    // Tombstones are not counted in the answer, and have a budget of their own.
    assert_eq!(store.purge_expired(NOW + GRACE, 20), 0);
    assert_eq!(store.stats().tombstones, 30);
    store.purge_expired(NOW + GRACE, 100);
    assert_eq!(store.stats().tombstones, 0);
}

#[test]
fn expiry_and_tombstone_indexes_stay_bounded_under_rewrites() {
    let store = store(100, None, 1);
    for round in 1..=2_000u64 {
        for key in ["a", "b", "c"] {
            store.set(key.as_bytes(), expiring("x", round, NOW + round), NOW);
            store.delete(b"d", v(round), NOW + round);
        }
    }
    let (records, tracked, slab, queue) = store.lock(0).index_sizes();
    assert_eq!(tracked, 3);
    assert!(
        records <= 2 * tracked + expiry::STALE_SLACK,
        "{records} records"
    );
    assert!(queue <= 2 + expiry::STALE_SLACK, "{queue} queue records");
    assert_eq!(slab, 3);
    // Removed items are not tracked and their records are dropped in time.
    for key in ["a", "b", "c"] {
        assert!(store.remove_if_version(key.as_bytes(), v(2_000)));
    }
    assert_eq!(store.lock(0).index_sizes().1, 0);
    for i in 0..200u64 {
        store.set(format!("n{i}").as_bytes(), entry("x", 1), NOW);
        store.set(b"ttl", expiring("x", i + 10_000, NOW + 5 + i), NOW);
    }
    let (records, tracked, _, _) = store.lock(0).index_sizes();
    assert!(
        records <= 2 * tracked + expiry::STALE_SLACK,
        "{records} records"
    );
}

#[test]
fn remove_if_version_removes_only_that_version() {
    let store = store(10, None, 1);
    store.set(b"k", entry("v5", 5), NOW);
    assert!(!store.remove_if_version(b"k", v(4)));
    assert!(!store.remove_if_version(b"k", v(6)));
    assert!(!store.remove_if_version(b"absent", v(5)));
    assert_eq!(store.len(), 1);
    assert!(store.remove_if_version(b"k", v(5)));
    assert!(store.is_empty());
    let stats = store.stats();
    assert_eq!(
        (stats.tombstones, stats.evictions, stats.expirations),
        (0, 0, 0)
    );
    // No tombstone: an older write is welcome.
    assert_eq!(store.set(b"k", entry("v1", 1), NOW), SetOutcome::Stored);
}

#[test]
fn for_each_and_export_go_least_recent_first_and_skip_expired() {
    let store = store(10, None, 1);
    set_all(&store, &["a", "b"], 1);
    store.set(b"short", expiring("x", 1, NOW + 1), NOW);
    set_all(&store, &["c"], 1);
    store.get(b"a", NOW);
    let mut seen = Vec::new();
    store.for_each_in_shard(0, NOW + 1, |key, entry| {
        seen.push((String::from_utf8(key.to_vec()).unwrap(), entry.to_entry()));
    });
    assert_eq!(
        seen,
        [
            ("b".to_owned(), entry("b", 1)),
            ("c".to_owned(), entry("c", 1)),
            ("a".to_owned(), entry("a", 1)),
        ]
    );
    assert_eq!(keys(&store, NOW), ["b", "short", "c", "a"]);
    assert_eq!(keys(&store, NOW + 1), ["b", "c", "a"]);
    // Neither changed the order nor counted anything.
    assert_eq!(keys(&store, NOW), ["b", "short", "c", "a"]);
    assert_eq!(store.stats().hits, 1);
    // A shard that does not exist has no entries.
    store.for_each_in_shard(1, NOW, |_, _| panic!("no such shard"));
}

#[test]
fn export_round_trip_reproduces_each_shard_lru_order() {
    let original = store(200, Some(4_000), 4);
    for i in 0..300u64 {
        let value = "v".repeat((i % 17) as usize);
        let e = if i % 3 == 0 {
            expiring(&value, i, NOW + 1_000 + i)
        } else {
            entry(&value, i)
        };
        original.set(format!("key-{i}").as_bytes(), e, NOW);
        if i % 5 == 0 {
            original.get(format!("key-{}", i / 2).as_bytes(), NOW);
        }
    }
    let exported = original.export(NOW);
    assert_eq!(exported.len(), original.len());
    let copy = store(200, Some(4_000), 4);
    for (key, e) in &exported {
        assert_eq!(copy.set(key, e.clone(), NOW), SetOutcome::Stored);
    }
    assert_eq!(copy.export(NOW), exported);
    for shard in 0..4 {
        let mut a = Vec::new();
        let mut b = Vec::new();
        original.for_each_in_shard(shard, NOW, |key, _| a.push(key.to_vec()));
        copy.for_each_in_shard(shard, NOW, |key, _| b.push(key.to_vec()));
        assert_eq!(a, b, "shard {shard}");
        assert!(a.iter().all(|key| original.shard_for(key) == shard));
    }
}

#[test]
fn stats_sum_counters_and_gauges_over_shards() {
    let store = store(8, Some(1_000), 4);
    for i in 0..20 {
        store.set(format!("k{i:02}").as_bytes(), entry("val", 1), NOW);
    }
    let held_before = store.len() as u64;
    for i in 0..20 {
        store.get(format!("k{i:02}").as_bytes(), NOW);
    }
    store.delete(b"k19", v(2), NOW);
    store.delete(b"never", v(2), NOW);
    store.set(b"ttl", expiring("x", 1, NOW + 1), NOW);
    store.get(b"ttl", NOW + 1);
    let stats = store.stats();
    let held = store.export(NOW + 1);
    assert_eq!(stats.items, held.len() as u64);
    assert_eq!(stats.items, store.len() as u64);
    assert_eq!(
        stats.bytes,
        held.iter()
            .map(|(k, e)| (k.len() + e.value.len()) as u64)
            .sum::<u64>()
    );
    // Two deletes, and the expiry of `ttl`.
    assert_eq!(stats.tombstones, 3);
    assert_eq!(stats.hits + stats.misses, 21);
    assert_eq!(stats.hits, held_before);
    assert_eq!(stats.expirations, 1);
    // 21 writes into 8 slots; the two removed by delete and expiry were not evicted.
    assert_eq!(stats.evictions + stats.items + 2, 21);
}

#[test]
fn shard_choice_is_fixed_and_balanced() {
    let store = store(1_000, None, 16);
    // Pinned: a change here reshuffles shards between builds.
    let pinned: Vec<usize> = ["a", "user:42", "emoji 🦀", ""]
        .iter()
        .map(|key| store.shard_for(key.as_bytes()))
        .collect();
    assert_eq!(pinned, PINNED_SHARDS);
    let mut counts = [0usize; 16];
    for i in 0..16_000 {
        counts[store.shard_for(format!("key:{i}").as_bytes())] += 1;
    }
    assert!(
        counts.iter().all(|&n| (850..1150).contains(&n)),
        "{counts:?}"
    );
}

const PINNED_SHARDS: [usize; 4] = [5, 3, 3, 8];

#[test]
fn node_is_compact() {
    // Per-item overhead is a goal (see the module doc): grow it knowingly.
    #[cfg(target_pointer_width = "64")]
    assert_eq!(std::mem::size_of::<lru::Node>(), 32);
    assert_eq!(std::mem::align_of::<Mutex<Shard>>(), 128);
}

#[test]
fn odd_inputs_do_not_panic() {
    let store = store(1, Some(5), 1);
    assert_eq!(store.set(b"", entry("", 1), NOW), SetOutcome::Stored);
    assert_eq!(store.get(b"", NOW), Some(entry("", 1)));
    assert_eq!(
        store.set(b"k", expiring("x", 2, u64::MAX), u64::MAX - 1),
        SetOutcome::Stored
    );
    assert_eq!(
        store.delete(b"k", v(u64::MAX), u64::MAX - 1),
        DeleteOutcome::Deleted
    );
    assert_eq!(store.purge_expired(u64::MAX, usize::MAX), 0);
    assert_eq!(store.set(b"z", expiring("x", 9, 0), 0), SetOutcome::Expired);
}

#[test]
#[should_panic(expected = "max_items")]
fn new_refuses_zero_items() {
    store(0, None, 1);
}

#[test]
#[should_panic(expected = "shards")]
fn new_refuses_zero_shards() {
    store(1, None, 0);
}

#[test]
fn concurrent_writers_and_readers_keep_the_limits() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
    let store = store(64, Some(2_048), 8);
    std::thread::scope(|scope| {
        for thread in 0..4u64 {
            let store = &store;
            scope.spawn(move || {
                for i in 0..2_000u64 {
                    let key = format!("k{}", (i * 7 + thread) % 300);
                    match i % 4 {
                        0 | 1 => {
                            let e = expiring(&"v".repeat((i % 40) as usize), i, NOW + i % 50);
                            store.set(key.as_bytes(), e, NOW + i % 30);
                        }
                        2 => {
                            store.get(key.as_bytes(), NOW + i % 30);
                        }
                        _ => {
                            store.delete(key.as_bytes(), v(i), NOW);
                            store.purge_expired(NOW + 40, 3);
                        }
                    }
                }
            });
        }
    });
    let stats = store.stats();
    assert!(stats.items <= 64 && stats.bytes <= 2_048, "{stats:?}");
    store.purge_expired(NOW + 1_000, usize::MAX);
    assert!(store.is_empty());
}

#[test]
fn a_panicking_callback_leaves_the_shard_usable() {
    let store = store(10, None, 1);
    set_all(&store, &["a", "b"], 1);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.for_each_in_shard(0, NOW, |_, _| panic!("callback failed"));
    }));
    assert!(outcome.is_err());
    assert_eq!(store.get(b"a", NOW), Some(entry("a", 1)));
    assert_eq!(keys(&store, NOW), ["b", "a"]);
}

#[test]
fn tombstones_within_grace_are_listed_with_their_versions() {
    let store = Store::new(StoreConfig {
        shards: 1,
        tombstone_grace_ms: 1_000,
        ..StoreConfig::default()
    });
    let v = |n| Version {
        millis: n,
        counter: 0,
        origin: 1,
    };
    store.delete(b"gone", v(10), 100);
    store.delete(b"also", v(20), 600);
    let list = |now| {
        let mut seen = Vec::new();
        store.for_each_tombstone_in_shard(0, now, |k, ver| seen.push((k.to_vec(), ver)));
        seen.sort();
        seen
    };
    assert_eq!(
        list(500),
        vec![(b"also".to_vec(), v(20)), (b"gone".to_vec(), v(10))]
    );
    assert_eq!(
        list(1_100),
        vec![(b"also".to_vec(), v(20))],
        "the first is past its grace"
    );
    assert!(list(1_600).is_empty());
}

#[test]
fn lookup_tells_a_delete_from_a_key_never_seen() {
    let store = store(10, None, 1);
    assert_eq!(store.lookup(b"k", NOW), Lookup::Absent);
    store.set(b"k", entry("v5", 5), NOW);
    assert_eq!(store.lookup(b"k", NOW), Lookup::Live(entry("v5", 5)));
    store.delete(b"k", v(7), NOW);
    assert_eq!(store.lookup(b"k", NOW), Lookup::Deleted(v(7)));
    assert_eq!(store.lookup(b"k", NOW).version(), Some(v(7)));
    // A delete of a key never held still leaves its version behind.
    store.delete(b"never", v(3), NOW);
    assert_eq!(store.lookup(b"never", NOW), Lookup::Deleted(v(3)));
    // Past the grace the delete is forgotten.
    assert_eq!(store.lookup(b"k", NOW + GRACE), Lookup::Absent);
    // Lookups count hits and misses as `get` does.
    let stats = store.stats();
    assert_eq!((stats.hits, stats.misses), (1, 5));
}

#[test]
fn a_decoded_value_costs_its_table_entry() {
    // The side table's entry: a slot number and a `Value`, in a hashbrown
    // table (plus a control byte and the load factor's slack).
    // The figure is in the module's Memory section; a larger `Value`
    // should update it.
    let entry = std::mem::size_of::<(u32, crate::value::Value)>();
    assert!(entry <= 160, "{entry}");
}

#[test]
fn a_shard_holds_at_most_as_many_tombstones_as_items_and_forgets_the_oldest_first() {
    // A shard of 4 items still keeps the floor of 1,024 tombstones.
    let store = store(4, None, 1);
    let n = shard::MIN_TOMBSTONE_CAP as u64 + 10;
    for i in 0..n {
        store.delete(format!("d{i}").as_bytes(), v(5), NOW);
    }
    let stats = store.stats();
    assert_eq!(stats.tombstones, shard::MIN_TOMBSTONE_CAP as u64);
    assert_eq!(stats.tombstones_dropped_early, 10);
    // The newest still refuse an older write; the ten oldest are gone.
    for i in [10, n / 2, n - 1] {
        assert_eq!(
            store.set(format!("d{i}").as_bytes(), entry("old", 3), NOW),
            SetOutcome::Stale { held: v(5) },
            "d{i}"
        );
    }
    assert_eq!(store.set(b"d0", entry("old", 3), NOW), SetOutcome::Stored);
    // Expiries count alike.
    store.set(b"e", expiring("x", 9, NOW + 10), NOW);
    assert_eq!(store.get(b"e", NOW + 10), None);
    assert_eq!(store.lookup(b"e", NOW + 10), Lookup::Deleted(v(9)));
    assert_eq!(store.stats().tombstones, shard::MIN_TOMBSTONE_CAP as u64);
}
