//! Properties of the ring that DESIGN promises: an even spread at the default
//! number of points, minimal key movement when a member joins or leaves, and
//! replica sets that are distinct, leader first and a pure function of the
//! member set.
//!
//! Everything here is deterministic (the hash is fixed and the sample keys
//! are `key-{i}`), except the proptest cases, which only check invariants.

use distcache_core::{
    DEFAULT_VIRTUAL_NODES, MAX_REPLICAS, ReplicaSet, Ring, key_hash, placement_hash,
};
use proptest::prelude::*;
use proptest::sample::Index;

/// The member counts the movement tests run at.
const MOVEMENT_SIZES: [usize; 9] = [3, 4, 5, 8, 10, 16, 32, 50, 100];

fn aux_ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("aux-{i}")).collect()
}

fn ip_ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("127.0.0.1:{}", 3001 + i)).collect()
}

/// A naming scheme for member ids: its name, and the first `n` ids.
type IdScheme = (&'static str, fn(usize) -> Vec<String>);

/// The two naming schemes every spread and movement check runs with.
const SCHEMES: [IdScheme; 2] = [("aux", aux_ids), ("ip", ip_ids)];

/// Hashes of the sample keys `key-0`, `key-1`, ...
fn sample_hashes(count: usize) -> Vec<u64> {
    (0..count)
        .map(|i| key_hash(format!("key-{i}").as_bytes()))
        .collect()
}

/// Member ids of a replica set, leader first. Ids, not indices: indices are
/// positions in one ring's sorted member list and shift between rings.
fn names(ring: &Ring, set: ReplicaSet) -> Vec<&str> {
    set.as_slice()
        .iter()
        .map(|&i| ring.members()[i as usize].as_str())
        .collect()
}

fn leader(ring: &Ring, hash: u64) -> &str {
    let index = ring
        .replicas_for_hash(hash, 1)
        .leader()
        .expect("non-empty ring");
    &ring.members()[index as usize]
}

fn max_over_mean(values: &[f64]) -> f64 {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    values.iter().copied().fold(f64::MIN, f64::max) / mean
}

/// The documented points of `ids` (`key_hash("{id}#{i}")` for i below
/// `vnodes`), sorted, tagged with the id's position in `ids`.
///
/// Building all 98 rings of the balance check takes seconds in a debug build
/// (sorting is most of it), so that check builds the points of 100 members
/// once and takes the first `n` members' points for each `n`, which is the
/// ring of those `n` members. `ring_shares_match_the_documented_points` ties
/// this model to [`Ring`].
fn model_points(ids: &[String], vnodes: u32) -> Vec<(u64, u32)> {
    let mut points: Vec<(u64, u32)> = ids
        .iter()
        .zip(0u32..)
        .flat_map(|(id, index)| {
            (0..vnodes).map(move |i| (key_hash(format!("{id}#{i}").as_bytes()), index))
        })
        .collect();
    points.sort_unstable();
    points
}

/// Exact leader shares of the members at positions `0..n`, computed from the
/// points of those members alone.
fn model_shares(points: &[(u64, u32)], n: usize) -> Vec<f64> {
    let mut arcs = vec![0u128; n];
    // (first point, its member) and the previous point, once one is seen.
    let mut first: Option<(u64, usize)> = None;
    let mut previous = 0;
    for &(point, index) in points {
        let index = index as usize;
        if index >= n {
            continue;
        }
        if first.is_none() {
            first = Some((point, index));
        } else {
            arcs[index] += u128::from(point - previous);
        }
        previous = point;
    }
    let Some((first, first_index)) = first else {
        return Vec::new();
    };
    // The wrap-around arc, past the last point and up to the first.
    arcs[first_index] += (1u128 << 64) - u128::from(previous) + u128::from(first);
    arcs.into_iter()
        .map(|arc| arc as f64 / 18_446_744_073_709_551_616.0)
        .collect()
}

#[test]
fn ring_shares_match_the_documented_points() {
    for (scheme, ids) in SCHEMES {
        let ids = ids(100);
        for vnodes in [1, 10, DEFAULT_VIRTUAL_NODES] {
            let points = model_points(&ids, vnodes);
            for n in [1, 3, 10, 37, 100] {
                let ring = Ring::new(ids[..n].iter().rev().cloned(), vnodes);
                let model = model_shares(&points, n);
                // Ring shares are in sorted-id order; the model's in `ids` order.
                for (id, share) in ring.members().iter().zip(ring.shares()) {
                    let position = ids.iter().position(|i| i == id).expect("known id");
                    assert_eq!(
                        share, model[position],
                        "{scheme}, {n} members, {vnodes} vnodes"
                    );
                }
            }
        }
    }
}

#[test]
fn ring_points_lead_their_own_hash_and_the_arc_before_it() {
    // A key whose hash equals a point belongs to that point's member (the
    // first point >= the hash), and so does the hash just before it.
    let ring = Ring::new(aux_ids(5), 10);
    for id in ring.members() {
        for i in 0..10 {
            let point = key_hash(format!("{id}#{i}").as_bytes());
            assert_eq!(leader(&ring, point), id, "point {i} of {id}");
            assert_eq!(
                leader(&ring, point.wrapping_sub(1)),
                id,
                "before point {i} of {id}"
            );
        }
    }
}

#[test]
fn ring_balance_at_default_vnodes_for_3_to_100_members() {
    for (scheme, ids) in SCHEMES {
        let points = model_points(&ids(100), DEFAULT_VIRTUAL_NODES);
        for n in 3..=100 {
            let shares = model_shares(&points, n);
            assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            let ratio = max_over_mean(&shares);
            assert!(
                ratio <= 1.10,
                "{scheme} ids, {n} members: max/mean leader share {ratio:.4} > 1.10"
            );
        }
    }
}

#[test]
fn ring_sampled_leader_counts_are_balanced_and_match_shares() {
    let hashes = sample_hashes(100_000);
    for (scheme, ids) in SCHEMES {
        for n in [3, 5, 10, 20, 50] {
            let ring = Ring::new(ids(n), DEFAULT_VIRTUAL_NODES);
            let mut counts = vec![0.0; n];
            for &hash in &hashes {
                let index = ring.replicas_for_hash(hash, 1).leader().expect("leader");
                counts[index as usize] += 1.0;
            }
            let ratio = max_over_mean(&counts);
            assert!(
                ratio <= 1.15,
                "{scheme} ids, {n} members: sampled max/mean {ratio:.4} > 1.15"
            );
            // The exact shares predict the sample: within 5 standard
            // deviations of a binomial draw for every member.
            let total = hashes.len() as f64;
            for (share, count) in ring.shares().into_iter().zip(counts) {
                let sigma = (share * (1.0 - share) / total).sqrt();
                let seen = count / total;
                assert!(
                    (seen - share).abs() <= 5.0 * sigma,
                    "{scheme} ids, {n} members: share {share:.5}, sampled {seen:.5}"
                );
            }
        }
    }
}

#[test]
fn ring_adding_a_member_moves_only_its_share_of_keys_to_it() {
    let hashes = sample_hashes(100_000);
    for (scheme, ids) in SCHEMES {
        for n in MOVEMENT_SIZES {
            let before = Ring::new(ids(n), DEFAULT_VIRTUAL_NODES);
            let all = ids(n + 1);
            let added = all[n].as_str();
            let after = Ring::new(all.clone(), DEFAULT_VIRTUAL_NODES);
            let mut moved = 0;
            for &hash in &hashes {
                let (old, new) = (leader(&before, hash), leader(&after, hash));
                if old != new {
                    assert_eq!(new, added, "{scheme}, {n}+1: a key moved to an old member");
                    moved += 1;
                }
            }
            let fraction = moved as f64 / hashes.len() as f64;
            let bound = 1.2 / (n + 1) as f64;
            assert!(
                fraction <= bound,
                "{scheme}, {n}+1 members: {fraction:.4} of keys moved, bound {bound:.4}"
            );
        }
    }
}

#[test]
fn ring_removing_a_member_moves_only_its_keys() {
    let hashes = sample_hashes(100_000);
    for (scheme, ids) in SCHEMES {
        for n in MOVEMENT_SIZES {
            let all = ids(n);
            let removed = all[n / 2].clone();
            let before = Ring::new(all.clone(), DEFAULT_VIRTUAL_NODES);
            let after = Ring::new(
                all.into_iter().filter(|id| *id != removed),
                DEFAULT_VIRTUAL_NODES,
            );
            let mut moved = 0;
            for &hash in &hashes {
                let (old, new) = (leader(&before, hash), leader(&after, hash));
                if old != new {
                    assert_eq!(
                        old, removed,
                        "{scheme}, {n}-1: a surviving leader lost a key"
                    );
                    moved += 1;
                } else {
                    assert_ne!(old, removed);
                }
            }
            let fraction = moved as f64 / hashes.len() as f64;
            let bound = 1.2 / n as f64;
            assert!(
                fraction <= bound,
                "{scheme}, {n}-1 members: {fraction:.4} of keys moved, bound {bound:.4}"
            );
        }
    }
}

#[test]
fn ring_replica_sets_of_two_change_little_when_a_member_joins() {
    let hashes = sample_hashes(50_000);
    for (scheme, ids) in SCHEMES {
        for n in MOVEMENT_SIZES {
            let before = Ring::new(ids(n), DEFAULT_VIRTUAL_NODES);
            let all = ids(n + 1);
            let added = all[n].as_str();
            let after = Ring::new(all.clone(), DEFAULT_VIRTUAL_NODES);
            let mut changed = 0;
            for &hash in &hashes {
                let mut old = names(&before, before.replicas_for_hash(hash, 2));
                let mut new = names(&after, after.replicas_for_hash(hash, 2));
                old.sort_unstable();
                new.sort_unstable();
                if old != new {
                    // The newcomer displaced exactly one old replica.
                    assert!(
                        new.contains(&added),
                        "{scheme}, {n}+1: set changed without it"
                    );
                    assert_eq!(old.iter().filter(|id| new.contains(id)).count(), 1);
                    changed += 1;
                }
            }
            let fraction = changed as f64 / hashes.len() as f64;
            let bound = 1.2 * 2.0 / (n + 1) as f64;
            assert!(
                fraction <= bound,
                "{scheme}, {n}+1 members: {fraction:.4} of replica sets changed, bound {bound:.4}"
            );
        }
    }
}

#[test]
fn ring_is_independent_of_member_order_and_duplicates_at_default_vnodes() {
    let ids = aux_ids(20);
    let sorted = Ring::new(ids.clone(), DEFAULT_VIRTUAL_NODES);
    let mut scrambled = ids.clone();
    scrambled.reverse();
    scrambled.extend(ids.iter().step_by(3).cloned());
    let scrambled = Ring::new(scrambled, DEFAULT_VIRTUAL_NODES);
    assert_eq!(sorted.members(), scrambled.members());
    assert_eq!(sorted.epoch(), scrambled.epoch());
    assert_eq!(sorted.shares(), scrambled.shares());
    for hash in sample_hashes(10_000) {
        assert_eq!(
            sorted.replicas_for_hash(hash, 3),
            scrambled.replicas_for_hash(hash, 3)
        );
    }
}

/// Small member sets with short ids, so that rings overlap and collide a lot.
fn member_ids() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[a-c]{1,2}(-[0-9])?", 0..10)
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..40)
}

proptest! {
    #[test]
    fn ring_is_independent_of_member_order_and_duplicates(
        (ids, shuffled) in member_ids().prop_flat_map(|ids| (Just(ids.clone()), Just(ids).prop_shuffle())),
        duplicates in any::<Index>(),
        vnodes in 1u32..48,
        keys in prop::collection::vec(key(), 1..16),
        n in 0usize..10,
    ) {
        let mut scrambled = shuffled.clone();
        if !shuffled.is_empty() {
            let take = duplicates.index(shuffled.len() + 1);
            scrambled.extend(shuffled[..take].iter().cloned());
        }
        let a = Ring::new(ids, vnodes);
        let b = Ring::new(scrambled, vnodes);
        prop_assert_eq!(a.members(), b.members());
        prop_assert_eq!(a.epoch(), b.epoch());
        prop_assert_eq!(a.shares(), b.shares());
        for key in &keys {
            prop_assert_eq!(a.replicas_for(key, n), b.replicas_for(key, n));
        }
    }

    #[test]
    fn ring_replicas_are_distinct_leader_first_and_sized(
        ids in member_ids(),
        vnodes in 1u32..48,
        key in key(),
        n in 0usize..12,
    ) {
        let ring = Ring::new(ids, vnodes);
        let set = ring.replicas_for(&key, n);
        let members = ring.members().len();
        prop_assert_eq!(set.len(), n.min(MAX_REPLICAS).min(members));
        prop_assert_eq!(set.is_empty(), set.as_slice().is_empty());
        let mut distinct = set.as_slice().to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        prop_assert_eq!(distinct.len(), set.len());
        prop_assert!(set.as_slice().iter().all(|&i| (i as usize) < members));
        prop_assert_eq!(ring.replicas_for_hash(placement_hash(&key), n), set);
        // The leader is the one-replica answer, and fewer replicas are a
        // prefix of more: the order is the clockwise walk.
        if n >= 1 {
            prop_assert_eq!(set.leader(), ring.replicas_for(&key, 1).leader());
        }
        for fewer in 0..n {
            let prefix = ring.replicas_for(&key, fewer);
            prop_assert_eq!(prefix.as_slice(), &set.as_slice()[..prefix.len()]);
        }
    }

    #[test]
    fn ring_removing_a_non_leader_keeps_the_leader(
        ids in member_ids(),
        vnodes in 1u32..48,
        key in key(),
        victim in any::<Index>(),
        n in 1usize..MAX_REPLICAS,
    ) {
        let ring = Ring::new(ids, vnodes);
        prop_assume!(ring.members().len() >= 2);
        let victim = victim.index(ring.members().len()) as u32;
        let set = ring.replicas_for(&key, n);
        prop_assume!(set.leader() != Some(victim));
        let removed = ring.members()[victim as usize].clone();
        let smaller = Ring::new(
            ring.members().iter().filter(|id| **id != removed).cloned(),
            vnodes,
        );
        let old = names(&ring, set);
        let new = names(&smaller, smaller.replicas_for(&key, n));
        prop_assert_eq!(old[0], new[0]);
        if !set.contains(victim) {
            // Removing a member outside the replica set changes nothing.
            prop_assert_eq!(old, new);
        }
    }

    #[test]
    fn keys_sharing_a_hash_tag_share_their_replicas(
        ids in member_ids(),
        vnodes in 1u32..48,
        tag in "[a-z0-9:]{1,12}",
        before in "[a-z0-9:}]{0,8}",
        after in "[a-z0-9:{}]{0,8}",
        n in 1usize..MAX_REPLICAS,
    ) {
        let ring = Ring::new(ids, vnodes);
        let tagged = format!("{before}{{{tag}}}{after}");
        prop_assert_eq!(
            names(&ring, ring.replicas_for(tagged.as_bytes(), n)),
            names(&ring, ring.replicas_for(tag.as_bytes(), n))
        );
    }
}
