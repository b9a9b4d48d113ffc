//! An order-statistics tree for sorted sets: a treap (a binary search tree
//! kept balanced by random heap priorities) whose nodes know the size of
//! their subtree, so that rank (ZRANK) and select (ZRANGE by index) take
//! O(log n) expected, like Redis's skiplist.
//!
//! Nodes live in one vector and link by index (safe Rust, no pointers),
//! freed slots are reused. Priorities come from a counter run through
//! SplitMix64: pseudo-random whatever the members are (so no sequence of
//! members can unbalance the tree), yet the same on every node for the same
//! history, with no hidden source of randomness. The shape never shows in
//! any answer; only the order does.

use std::cmp::Ordering;

use super::zset::Ranked;

const NIL: u32 = u32::MAX;

#[derive(Clone, Debug)]
struct Node {
    item: Ranked,
    priority: u64,
    left: u32,
    right: u32,
    size: u32,
}

/// Elements in order, with rank and select.
#[derive(Clone, Debug)]
pub(super) struct RankedTree {
    nodes: Vec<Node>,
    free: Vec<u32>,
    root: u32,
    inserted: u64,
}

impl Default for RankedTree {
    fn default() -> RankedTree {
        RankedTree {
            nodes: Vec::new(),
            free: Vec::new(),
            root: NIL,
            inserted: 0,
        }
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl RankedTree {
    /// Elements held.
    pub(super) fn len(&self) -> usize {
        self.size(self.root) as usize
    }

    fn size(&self, t: u32) -> u32 {
        if t == NIL {
            0
        } else {
            self.nodes[t as usize].size
        }
    }

    fn update(&mut self, t: u32) {
        let n = &self.nodes[t as usize];
        let size = 1 + self.size(n.left) + self.size(n.right);
        self.nodes[t as usize].size = size;
    }

    /// Splits `t` into the elements `< key` and those `>= key`.
    fn split(&mut self, t: u32, key: &Ranked) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        if self.nodes[t as usize].item < *key {
            let (l, r) = self.split(self.nodes[t as usize].right, key);
            self.nodes[t as usize].right = l;
            self.update(t);
            (t, r)
        } else {
            let (l, r) = self.split(self.nodes[t as usize].left, key);
            self.nodes[t as usize].left = r;
            self.update(t);
            (l, t)
        }
    }

    /// Joins two trees, every element of `a` below every element of `b`.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].priority > self.nodes[b as usize].priority {
            let r = self.merge(self.nodes[a as usize].right, b);
            self.nodes[a as usize].right = r;
            self.update(a);
            a
        } else {
            let l = self.merge(a, self.nodes[b as usize].left);
            self.nodes[b as usize].left = l;
            self.update(b);
            b
        }
    }

    /// Detaches the smallest element of `t`: (that node, the rest).
    fn pop_min(&mut self, t: u32) -> (u32, u32) {
        let left = self.nodes[t as usize].left;
        if left == NIL {
            let rest = self.nodes[t as usize].right;
            self.nodes[t as usize].right = NIL;
            self.update(t);
            return (t, rest);
        }
        let (min, rest) = self.pop_min(left);
        self.nodes[t as usize].left = rest;
        self.update(t);
        (min, t)
    }

    /// Adds `item`, which must not be held already.
    pub(super) fn insert(&mut self, item: Ranked) {
        self.inserted += 1;
        let node = Node {
            item,
            priority: splitmix64(self.inserted),
            left: NIL,
            right: NIL,
            size: 1,
        };
        let n = match self.free.pop() {
            Some(slot) => {
                self.nodes[slot as usize] = node;
                slot
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        let key = self.nodes[n as usize].item.clone();
        let (l, r) = self.split(self.root, &key);
        let l = self.merge(l, n);
        self.root = self.merge(l, r);
    }

    /// Removes `key`; true if it was held.
    pub(super) fn remove(&mut self, key: &Ranked) -> bool {
        let (l, r) = self.split(self.root, key);
        if r == NIL {
            self.root = l;
            return false;
        }
        let (min, rest) = self.pop_min(r);
        if self.nodes[min as usize].item == *key {
            // Drop the member's bytes now rather than when the slot is reused.
            self.nodes[min as usize].item.member = bytes::Bytes::new();
            self.free.push(min);
            self.root = self.merge(l, rest);
            true
        } else {
            let r = self.merge(min, rest);
            self.root = self.merge(l, r);
            false
        }
    }

    /// How many elements come first in order while `before` holds (it must
    /// hold for a prefix of the order and not after).
    pub(super) fn count_while(&self, before: impl Fn(&Ranked) -> bool) -> usize {
        let (mut t, mut n) = (self.root, 0usize);
        while t != NIL {
            let node = &self.nodes[t as usize];
            if before(&node.item) {
                n += self.size(node.left) as usize + 1;
                t = node.right;
            } else {
                t = node.left;
            }
        }
        n
    }

    /// How many elements are below `key`.
    pub(super) fn rank(&self, key: &Ranked) -> usize {
        self.count_while(|item| item.cmp(key) == Ordering::Less)
    }

    /// The element of rank `k` (0-based).
    pub(super) fn get(&self, mut k: usize) -> Option<&Ranked> {
        let mut t = self.root;
        while t != NIL {
            let node = &self.nodes[t as usize];
            let left = self.size(node.left) as usize;
            match k.cmp(&left) {
                Ordering::Less => t = node.left,
                Ordering::Equal => return Some(&node.item),
                Ordering::Greater => {
                    k -= left + 1;
                    t = node.right;
                }
            }
        }
        None
    }

    /// The elements of ranks `from..to`, in order (and reversible).
    pub(super) fn range(&self, from: usize, to: usize) -> impl DoubleEndedIterator<Item = &Ranked> {
        (from..to.min(self.len())).filter_map(move |k| self.get(k))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::value::Score;

    fn ranked(score: i8, member: u8) -> Ranked {
        Ranked {
            score: Score::new(f64::from(score)).unwrap(),
            member: Bytes::from(vec![member]),
        }
    }

    proptest! {
        /// The tree agrees with an ordered set on every operation.
        #[test]
        fn agrees_with_an_ordered_set(ops in proptest::collection::vec((any::<bool>(), -4i8..4, 0u8..6), 1..300)) {
            let mut tree = RankedTree::default();
            let mut model = BTreeSet::new();
            for (add, score, member) in ops {
                let item = ranked(score, member);
                if add {
                    if model.insert(item.clone()) {
                        tree.insert(item);
                    }
                } else {
                    prop_assert_eq!(tree.remove(&item), model.remove(&item));
                }
                prop_assert_eq!(tree.len(), model.len());
            }
            let in_order: Vec<&Ranked> = tree.range(0, tree.len()).collect();
            prop_assert_eq!(in_order, model.iter().collect::<Vec<_>>());
            for (i, item) in model.iter().enumerate() {
                prop_assert_eq!(tree.rank(item), i);
                prop_assert_eq!(tree.get(i), Some(item));
            }
            let below_zero = model.iter().filter(|r| r.score.get() < 0.0).count();
            prop_assert_eq!(tree.count_while(|r| r.score.get() < 0.0), below_zero);
        }
    }

    #[test]
    fn stays_shallow_for_members_inserted_in_order() {
        let mut tree = RankedTree::default();
        for i in 0..100_000u32 {
            tree.insert(Ranked {
                score: Score::new(f64::from(i)).unwrap(),
                member: Bytes::new(),
            });
        }
        fn depth(tree: &RankedTree, t: u32) -> usize {
            if t == NIL {
                0
            } else {
                let n = &tree.nodes[t as usize];
                1 + depth(tree, n.left).max(depth(tree, n.right))
            }
        }
        // log2(100,000) is 17; a treap's expected depth is about 2.5 times that.
        assert!(depth(&tree, tree.root) < 80);
        assert_eq!(
            tree.rank(&Ranked {
                score: Score::new(500.0).unwrap(),
                member: Bytes::new()
            }),
            500
        );
    }
}
