//! Which copies move when the ring changes: a pure planner that each
//! auxiliary runs over its own keys.
//!
//! A handoff goes from the ring whose copies are in place (`from`, the
//! master's committed ring; `None` when nothing is known to be in place) to
//! the ring that should hold them (`to`). For every key it holds, a node
//! asks [`HandoffPlan::for_entry`] where to send its copy and whether to drop
//! it once every target has it:
//!
//! - A key whose replica set did not change does not move.
//! - A node that leaves a key's replica set sends it to the key's new
//!   replicas, then drops it: so a key is dropped at its old home only after
//!   its new owners have it.
//! - A node that stays in the set sends the key to the new replicas only if
//!   no leaving holder can (it died), and only if it is the first live old
//!   replica that stays: so each new replica receives one copy.
//! - A node holding a key it did not own in `from` (a leftover write, or a
//!   node back from the dead with old data) offers its copy to the key's
//!   replicas in `to`, where versions decide, and keeps it only if it owns
//!   the key in `to`.
//! - With `from` unknown every holder offers its copy to every other replica
//!   in `to` (a full re-placement, `POST /rebalance`).
//!
//! Tombstones follow the same rules, except that a node never sends a
//! tombstone for a key it did not own, and tombstones are never dropped
//! early (they expire on their own).

use crate::ring::{MAX_REPLICAS, ReplicaSet, Ring};

/// Where one copy goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Action {
    /// Indices into `to.members()` of the nodes to send the copy to.
    pub targets: Targets,
    /// Drop the local copy once every target acknowledged it.
    pub drop_after: bool,
}

/// Up to [`MAX_REPLICAS`] member indices of the `to` ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Targets {
    ids: [u32; MAX_REPLICAS],
    len: u8,
}

impl Targets {
    fn push(&mut self, id: u32) {
        if (self.len as usize) < MAX_REPLICAS {
            self.ids[self.len as usize] = id;
            self.len += 1;
        }
    }
    /// The indices.
    pub fn as_slice(&self) -> &[u32] {
        &self.ids[..self.len as usize]
    }
    /// True when the copy goes nowhere.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One node's view of a handoff.
#[derive(Clone, Copy, Debug)]
pub struct HandoffPlan<'a> {
    from: Option<(&'a Ring, usize)>,
    to: &'a Ring,
    to_replicas: usize,
    me: &'a str,
    me_in_to: Option<u32>,
    sources: &'a [String],
}

impl<'a> HandoffPlan<'a> {
    /// A plan for node `me` moving copies from `from` (ring and replica
    /// count; `None` = unknown) to `to`. `sources` are the nodes that hold
    /// copies and can send them (the live members of `from`), sorted.
    pub fn new(
        from: Option<(&'a Ring, usize)>,
        to: (&'a Ring, usize),
        me: &'a str,
        sources: &'a [String],
    ) -> Self {
        HandoffPlan {
            from,
            to: to.0,
            to_replicas: to.1,
            me,
            me_in_to: to.0.index_of(me),
            sources,
        }
    }

    fn is_source(&self, id: &str) -> bool {
        self.sources
            .binary_search_by(|s| s.as_str().cmp(id))
            .is_ok()
    }

    /// Members of `to`'s replica set that are not in `from`'s (by id).
    fn newcomers(&self, from: &Ring, from_set: &ReplicaSet, to_set: &ReplicaSet) -> Targets {
        let mut out = Targets::default();
        for &t in to_set.as_slice() {
            let id = &self.to.members()[t as usize];
            let was_owner = from_set
                .as_slice()
                .iter()
                .any(|&f| from.members()[f as usize] == *id);
            if !was_owner {
                out.push(t);
            }
        }
        out
    }

    fn all_but_me(&self, to_set: &ReplicaSet) -> Targets {
        let mut out = Targets::default();
        for &t in to_set.as_slice() {
            if Some(t) != self.me_in_to {
                out.push(t);
            }
        }
        out
    }

    /// What to do with this node's live copy of `key`.
    pub fn for_entry(&self, key: &[u8]) -> Action {
        self.plan(key, true)
    }

    /// Where to send this node's tombstone for `key` (never dropped early).
    pub fn for_tombstone(&self, key: &[u8]) -> Targets {
        self.plan(key, false).targets
    }

    fn plan(&self, key: &[u8], live: bool) -> Action {
        let to_set = self.to.replicas_for(key, self.to_replicas);
        let me_in_to_set = self
            .me_in_to
            .is_some_and(|me| to_set.as_slice().contains(&me));
        let Some((from, from_replicas)) = self.from else {
            return Action {
                targets: self.all_but_me(&to_set),
                drop_after: live && !me_in_to_set,
            };
        };
        let from_set = from.replicas_for(key, from_replicas);
        let owners: Vec<&str> = from_set
            .as_slice()
            .iter()
            .map(|&f| from.members()[f as usize].as_str())
            .collect();
        let in_to = |id: &str| {
            to_set
                .as_slice()
                .iter()
                .any(|&t| self.to.members()[t as usize] == id)
        };
        if !owners.contains(&self.me) {
            // Not an owner before: offer the copy, versions decide.
            return Action {
                targets: if live {
                    self.all_but_me(&to_set)
                } else {
                    Targets::default()
                },
                drop_after: live && !me_in_to_set,
            };
        }
        let newcomers = self.newcomers(from, &from_set, &to_set);
        if !me_in_to_set {
            // Leaving this key's set: hand it over, then drop it.
            return Action {
                targets: newcomers,
                drop_after: live,
            };
        }
        // Staying: send only if no leaving owner can, and this node is the
        // first live owner that stays.
        let leaver_can_send = owners.iter().any(|o| !in_to(o) && self.is_source(o));
        let designated = owners
            .iter()
            .find(|o| in_to(o) && self.is_source(o))
            .is_some_and(|o| *o == self.me);
        Action {
            targets: if !leaver_can_send && designated {
                newcomers
            } else {
                Targets::default()
            },
            drop_after: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use proptest::prelude::*;

    use super::*;

    fn ring(ids: &[&str]) -> Ring {
        Ring::new(ids.iter().copied(), 64)
    }

    fn ids(v: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    fn owner_ids(r: &Ring, key: &[u8], n: usize) -> BTreeSet<String> {
        r.replicas_for(key, n)
            .as_slice()
            .iter()
            .map(|&i| r.members()[i as usize].clone())
            .collect()
    }

    /// Runs a handoff over `keys`, where `holders` hold copies, `sources`
    /// are the nodes that can act. Returns, per key, the nodes holding it
    /// afterwards and the number of copies sent.
    fn simulate(
        from: Option<(&Ring, usize)>,
        to: (&Ring, usize),
        holders: &HashMap<Vec<u8>, BTreeSet<String>>,
        sources: &[String],
    ) -> (HashMap<Vec<u8>, BTreeSet<String>>, usize) {
        let mut after = HashMap::new();
        let mut sent = 0;
        for (key, hs) in holders {
            let mut now: BTreeSet<String> = hs.clone();
            for h in hs {
                if !sources.contains(h) {
                    continue;
                }
                let action = HandoffPlan::new(from, to, h, sources).for_entry(key);
                for &t in action.targets.as_slice() {
                    sent += 1;
                    now.insert(to.0.members()[t as usize].clone());
                }
                if action.drop_after {
                    now.remove(h);
                }
            }
            after.insert(key.clone(), now);
        }
        (after, sent)
    }

    fn keys(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("key-{i}").into_bytes()).collect()
    }

    #[test]
    fn a_join_moves_each_changed_key_once_and_leaves_no_copy_behind() {
        let old = ring(&["a", "b", "c"]);
        let new = ring(&["a", "b", "c", "d"]);
        let holders: HashMap<_, _> = keys(2000)
            .into_iter()
            .map(|k| {
                let o = owner_ids(&old, &k, 2);
                (k, o)
            })
            .collect();
        let sources = ids(&["a", "b", "c"]);
        let (after, sent) = simulate(Some((&old, 2)), (&new, 2), &holders, &sources);
        let mut changed = 0;
        for (k, hs) in &after {
            assert_eq!(
                *hs,
                owner_ids(&new, k, 2),
                "key {:?}",
                String::from_utf8_lossy(k)
            );
            if owner_ids(&old, k, 2) != owner_ids(&new, k, 2) {
                changed += 1;
            }
        }
        assert_eq!(sent, changed, "one copy per changed key");
        assert!(changed < 2000 * 6 / 10, "{changed}");
    }

    #[test]
    fn a_leaving_node_hands_over_everything() {
        let old = ring(&["a", "b", "c", "d"]);
        let new = ring(&["a", "b", "c"]);
        for r in [1, 2, 3] {
            let holders: HashMap<_, _> = keys(1000)
                .into_iter()
                .map(|k| {
                    let o = owner_ids(&old, &k, r);
                    (k, o)
                })
                .collect();
            // The leaver is alive and a source.
            let sources = ids(&["a", "b", "c", "d"]);
            let (after, _) = simulate(Some((&old, r)), (&new, r), &holders, &sources);
            for (k, hs) in &after {
                assert_eq!(*hs, owner_ids(&new, k, r), "r={r}");
            }
        }
    }

    #[test]
    fn after_a_death_the_survivors_restore_every_replica() {
        let old = ring(&["a", "b", "c", "d"]);
        let new = ring(&["a", "b", "c"]);
        let holders: HashMap<_, _> = keys(1000)
            .into_iter()
            .map(|k| {
                let mut o = owner_ids(&old, &k, 2);
                o.remove("d"); // its copies died with it
                (k, o)
            })
            .collect();
        let sources = ids(&["a", "b", "c"]);
        let (after, sent) = simulate(Some((&old, 2)), (&new, 2), &holders, &sources);
        let lost: usize = keys(1000)
            .iter()
            .filter(|k| owner_ids(&old, k, 2).contains("d"))
            .count();
        for (k, hs) in &after {
            assert_eq!(*hs, owner_ids(&new, k, 2));
        }
        assert_eq!(sent, lost, "one copy per key that lost a replica");
    }

    #[test]
    fn an_unknown_from_ring_replaces_every_copy() {
        let new = ring(&["a", "b", "c"]);
        // Copies scattered anywhere.
        let holders: HashMap<_, _> = keys(500)
            .into_iter()
            .enumerate()
            .map(|(i, k)| {
                let h: BTreeSet<String> = [["a", "b", "c"][i % 3].to_string()].into();
                (k, h)
            })
            .collect();
        let sources = ids(&["a", "b", "c"]);
        let (after, _) = simulate(None, (&new, 2), &holders, &sources);
        for (k, hs) in &after {
            assert_eq!(*hs, owner_ids(&new, k, 2));
        }
    }

    #[test]
    fn tombstones_follow_the_key_but_are_never_dropped_or_sent_by_non_owners() {
        let old = ring(&["a", "b", "c"]);
        let new = ring(&["a", "b", "c", "d"]);
        let sources = ids(&["a", "b", "c"]);
        let mut reached_d = 0;
        for k in keys(500) {
            for h in owner_ids(&old, &k, 2) {
                let plan = HandoffPlan::new(Some((&old, 2)), (&new, 2), &h, &sources);
                let entry = plan.for_entry(&k);
                assert_eq!(plan.for_tombstone(&k), entry.targets);
                reached_d += entry
                    .targets
                    .as_slice()
                    .iter()
                    .filter(|&&t| new.members()[t as usize] == "d")
                    .count();
            }
            // "d" owned nothing in the old ring: it never sends tombstones.
            let plan = HandoffPlan::new(Some((&old, 2)), (&new, 2), "d", &sources);
            assert!(plan.for_tombstone(&k).is_empty());
        }
        assert!(reached_d > 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any change of membership (joins, graceful leaves, deaths) ends
        /// with every key held by exactly its new replica set, as long as
        /// one of its holders survived.
        #[test]
        fn any_membership_change_ends_with_exactly_the_new_owners(
            old_mask in 1u16..(1 << 8),
            new_mask in 1u16..(1 << 8),
            dead_mask in 0u16..(1 << 8),
            r_old in 1usize..4,
            r_new in 1usize..4,
        ) {
            let names: Vec<String> = (0..8).map(|i| format!("n{i}")).collect();
            let pick = |m: u16| -> Vec<String> { names.iter().enumerate().filter(|(i, _)| m & (1 << i) != 0).map(|(_, n)| n.clone()).collect() };
            let old_members = pick(old_mask);
            // Dead nodes are old members that are not in the new ring.
            let dead: Vec<String> = pick(dead_mask & old_mask & !new_mask);
            let old = Ring::new(old_members.clone(), 32);
            let new = Ring::new(pick(new_mask), 32);
            let mut sources: Vec<String> = old_members.iter().filter(|m| !dead.contains(m)).cloned().collect();
            sources.sort();
            let mut holders = HashMap::new();
            for k in keys(200) {
                let mut o = owner_ids(&old, &k, r_old);
                for d in &dead { o.remove(d); }
                holders.insert(k, o);
            }
            let (after, _) = simulate(Some((&old, r_old)), (&new, r_new), &holders, &sources);
            for (k, hs) in &after {
                if holders[k].is_empty() {
                    continue; // every copy died
                }
                prop_assert_eq!(hs, &owner_ids(&new, k, r_new));
            }
        }
    }
}
