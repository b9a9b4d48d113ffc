//! Consistent hashing: where a key lives.
//!
//! - The hash of a key is xxh3-64 of its bytes ([`key_hash`]), or of its
//!   hash tag when it has one (`{...}`, as in Redis Cluster: [`hash_tag`],
//!   [`placement_hash`]). Every process, version and platform must agree on
//!   it forever, so it is pinned by golden tests; never `std`'s
//!   `DefaultHasher`, ahash or foldhash for placement.
//! - Each member gets `vnodes` points: `key_hash("{member}#{i}")` for i in
//!   0..vnodes. The points are kept as one sorted `Vec<(hash, member index)>`;
//!   ties (two equal hashes) are broken by member index so the order is total.
//! - A key's replicas are the first `n` distinct members clockwise from its
//!   hash (the first point whose hash is >= the key's hash, wrapping past
//!   `u64::MAX` to the first point); the first of them is the key's leader.
//!   Point `p` therefore leads the arc from the previous point (exclusive) to
//!   `p` (inclusive).
//! - The ring is a pure function of the member set (order and duplicates in
//!   the input do not matter), so every master that sees the same members
//!   computes the same placement; its [`epoch`](Ring::epoch) is a hash of the
//!   sorted member set.
//!
//! Adding a member only takes arcs for the new member's points, and removing
//! one only hands its arcs to the next points clockwise: about `1/N` of the
//! keys move, and only to (or from) the member that changed.

use std::fmt::Write as _;

/// The most replicas a key can have.
pub const MAX_REPLICAS: usize = 8;

/// Ring points per member unless configured otherwise.
///
/// Why 1200: with `v` points a member's share of the hash space has a
/// relative spread of about `1/sqrt(v)`, and DESIGN asks for a max/mean leader
/// share of at most 1.10 at every member count from 3 to 100. Measured with
/// exact shares ([`Ring::shares`]) over all 98 member counts, for ids
/// `aux-{i}` and for ids `127.0.0.1:{3001+i}`:
///
/// | points per member | worst max/mean         |
/// |-------------------|------------------------|
/// | 10 (seed default) | 2.23 (46 members)      |
/// | 1024              | 1.15 (80 members)      |
/// | 1184              | 1.101 (fails)          |
/// | **1200**          | **1.094** (77 members) |
/// | 2048              | 1.07                   |
///
/// 1185 is the smallest passing value, and every value from there to 2100
/// passes too, so 1200 is the smallest round one; other id schemes checked
/// (`node-{i}`, `localhost:{port}`, `aux{i}.cache.svc:3000`) also stay under
/// 1.10 at it. The cost: 100 members are 120,000 points of 16 bytes (under
/// 2 MiB), and a lookup is a binary search of about 17 steps.
/// `ring_balance_at_default_vnodes_for_3_to_100_members` keeps this true.
pub const DEFAULT_VIRTUAL_NODES: u32 = 1200;

/// The most points per member; larger settings are clamped to it so a
/// configuration typo cannot make the ring exhaust memory.
pub const MAX_VIRTUAL_NODES: u32 = 1 << 16;

/// xxh3-64 of the bytes: the hash of ring points and of placement.
pub fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// The part of a key that decides where it lives, as Redis Cluster's hash
/// tags: when the key holds a `{` followed later by a `}` with at least one
/// byte between them, those bytes (`user:{42}:a` and `user:{42}:b` both
/// place by `42`, so commands over both can run on one node); otherwise the
/// whole key. Only the first `{` counts: `a{}{b}` places as itself.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        let rest = &key[open + 1..];
        if let Some(close) = rest.iter().position(|&b| b == b'}') {
            if close > 0 {
                return &rest[..close];
            }
        }
    }
    key
}

/// How many slots Redis Cluster divides keys into.
pub const CLUSTER_SLOTS: u16 = 16384;

/// The Redis Cluster slot of a key: CRC16 (XMODEM) of its [`hash_tag`],
/// modulo [`CLUSTER_SLOTS`]. Placement never uses it (the ring does);
/// `CLUSTER KEYSLOT` reports it, and cluster clients compute the same
/// number to group their keys, so it must be Redis's to the bit.
pub fn cluster_slot(key: &[u8]) -> u16 {
    const XMODEM: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM);
    XMODEM.checksum(hash_tag(key)) % CLUSTER_SLOTS
}

/// The position of a key on the ring: [`key_hash`] of its [`hash_tag`]
/// (of the whole key when it has no tag, so untagged keys place as they
/// always did).
pub fn placement_hash(key: &[u8]) -> u64 {
    key_hash(hash_tag(key))
}

/// Up to [`MAX_REPLICAS`] member indices (into [`Ring::members`]), leader first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaSet {
    ids: [u32; MAX_REPLICAS],
    len: u8,
}

impl ReplicaSet {
    const EMPTY: ReplicaSet = ReplicaSet {
        ids: [0; MAX_REPLICAS],
        len: 0,
    };

    /// The member indices, leader first.
    pub fn as_slice(&self) -> &[u32] {
        &self.ids[..self.len as usize]
    }
    /// The leader, if the ring had any member.
    pub fn leader(&self) -> Option<u32> {
        self.as_slice().first().copied()
    }
    /// How many replicas.
    pub fn len(&self) -> usize {
        self.len as usize
    }
    /// True when the ring was empty (or no replicas were asked for).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// True when `member` (an index into [`Ring::members`]) is one of the
    /// replicas.
    pub fn contains(&self, member: u32) -> bool {
        self.as_slice().contains(&member)
    }
}

impl Default for ReplicaSet {
    fn default() -> Self {
        ReplicaSet::EMPTY
    }
}

/// An immutable hash ring over a set of member ids.
#[derive(Clone, Debug)]
pub struct Ring {
    members: Vec<String>,
    /// Sorted by hash, then member index.
    points: Vec<(u64, u32)>,
    vnodes: u32,
    epoch: u64,
}

impl Ring {
    /// Builds the ring for `members` (deduplicated and sorted) with `vnodes`
    /// points each.
    ///
    /// `vnodes` is clamped to `1..=`[`MAX_VIRTUAL_NODES`] so that every member
    /// owns at least one point; [`Ring::vnodes`] reports the value used.
    pub fn new<I, S>(members: I, vnodes: u32) -> Ring
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut members: Vec<String> = members.into_iter().map(Into::into).collect();
        members.sort_unstable();
        members.dedup();
        let vnodes = vnodes.clamp(1, MAX_VIRTUAL_NODES);

        let mut points = Vec::with_capacity(members.len().saturating_mul(vnodes as usize));
        let mut label = String::new();
        for (index, member) in members.iter().enumerate() {
            // Cannot truncate: 2^32 members would need 64 GiB of points first.
            let index = index as u32;
            for i in 0..vnodes {
                label.clear();
                // Writing to a String cannot fail.
                let _ = write!(label, "{member}#{i}");
                points.push((key_hash(label.as_bytes()), index));
            }
        }
        // Tuples order by hash, then member index: a total order, so equal
        // member sets give identical point lists.
        points.sort_unstable();

        let epoch = epoch_of(&members);
        Ring {
            members,
            points,
            vnodes,
            epoch,
        }
    }
    /// The members, sorted.
    pub fn members(&self) -> &[String] {
        &self.members
    }
    /// Index of a member in [`Ring::members`].
    pub fn index_of(&self, member: &str) -> Option<u32> {
        self.members
            .binary_search_by(|m| m.as_str().cmp(member))
            .ok()
            .map(|i| i as u32)
    }
    /// Points per member.
    pub fn vnodes(&self) -> u32 {
        self.vnodes
    }
    /// A hash of the sorted member set; equal rings have equal epochs.
    ///
    /// It is xxh3-64 of the sorted member ids joined by `'\n'`, and 0 for the
    /// empty ring. It deliberately ignores [`Ring::vnodes`]: it names the
    /// member set that masters must agree on, while `vnodes` is configuration
    /// that must be equal everywhere anyway. Member ids are node addresses,
    /// which hold no `'\n'`, so distinct member sets join to distinct text.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    /// True with no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
    /// The first `n` (at most [`MAX_REPLICAS`], at most the member count)
    /// distinct members clockwise from the key's hash, leader first.
    pub fn replicas_for(&self, key: &[u8], n: usize) -> ReplicaSet {
        self.replicas_for_hash(placement_hash(key), n)
    }
    /// Same as [`Ring::replicas_for`] for a precomputed [`placement_hash`].
    ///
    /// Allocation-free: one binary search, then a short walk clockwise.
    pub fn replicas_for_hash(&self, hash: u64, n: usize) -> ReplicaSet {
        let want = n.min(MAX_REPLICAS).min(self.members.len());
        let mut set = ReplicaSet::EMPTY;
        if want == 0 || self.points.is_empty() {
            return set;
        }
        let start = self.points.partition_point(|&(point, _)| point < hash);
        // `clockwise` starts at the first point >= hash; past its end the walk
        // wraps to the points before it.
        let (wrapped, clockwise) = self.points.split_at(start);
        for &(_, member) in clockwise.iter().chain(wrapped) {
            if !set.contains(member) {
                set.ids[set.len as usize] = member;
                set.len += 1;
                if set.len as usize == want {
                    break;
                }
            }
        }
        set
    }
    /// The replica set (`n` members, as [`Ring::replicas_for`]) of each arc
    /// of the ring, one per point: every key hashes into one of these arcs,
    /// so a property of every key's replicas is one of these sets'. Sets
    /// repeat.
    pub fn replica_sets(&self, n: usize) -> impl Iterator<Item = ReplicaSet> + '_ {
        self.points
            .iter()
            .map(move |&(hash, _)| self.replicas_for_hash(hash, n))
    }
    /// Each member's share (0..=1) of the hash space as leader, in
    /// [`Ring::members`] order; the shares sum to 1 (or the list is empty).
    ///
    /// Exact: point `p` leads the `p - previous` hashes after the previous
    /// point, and the first point also leads the wrap-around arc past the last
    /// one; the arcs are summed in `u128` and divided by 2^64 once.
    pub fn shares(&self) -> Vec<f64> {
        let mut arcs = vec![0u128; self.members.len()];
        let (Some(&(first, first_member)), Some(&(last, _))) =
            (self.points.first(), self.points.last())
        else {
            return Vec::new();
        };
        arcs[first_member as usize] += (1u128 << 64) - u128::from(last) + u128::from(first);
        for pair in self.points.windows(2) {
            let ((prev, _), (point, member)) = (pair[0], pair[1]);
            arcs[member as usize] += u128::from(point - prev);
        }
        const SPACE: f64 = 18_446_744_073_709_551_616.0; // 2^64
        arcs.into_iter().map(|arc| arc as f64 / SPACE).collect()
    }
}

/// Key positions (placement hashes) from `first` to `last`, both
/// included, so that one range can end at `u64::MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PositionRange {
    /// The first position in the range.
    pub first: u64,
    /// The last position in the range (at least `first`).
    pub last: u64,
}

impl PositionRange {
    /// True when `position` is in the range.
    pub fn contains(&self, position: u64) -> bool {
        self.first <= position && position <= self.last
    }
}

/// True when `position` is in one of `ranges`, which must be sorted and
/// disjoint (as [`Ring::leader_ranges`] gives them): a binary search.
pub fn ranges_contain(ranges: &[PositionRange], position: u64) -> bool {
    let at = ranges.partition_point(|range| range.last < position);
    ranges.get(at).is_some_and(|range| range.contains(position))
}

impl Ring {
    /// For each member (in [`Ring::members`] order), the positions whose
    /// keys it leads when only the members for which `live` answers true
    /// hold keys: those where it is the first live one of the key's `n`
    /// replicas ([`Ring::replicas_for_hash`]). Each list is sorted and
    /// disjoint, adjacent arcs joined; together they cover every position
    /// exactly once. `None` when some position has no live replica (then
    /// no member is that position's leader), and for an empty ring.
    ///
    /// Point `p` leads the arc from the previous point (exclusive) to `p`
    /// (inclusive); the first point also leads the arc that wraps past the
    /// last point to `u64::MAX`, which is why it is handled at both ends.
    pub fn leader_ranges(
        &self,
        n: usize,
        live: impl Fn(u32) -> bool,
    ) -> Option<Vec<Vec<PositionRange>>> {
        let (&(first, _), &(last, _)) = (self.points.first()?, self.points.last()?);
        let leader = |point: u64| {
            let set = self.replicas_for_hash(point, n);
            set.as_slice().iter().copied().find(|&member| live(member))
        };
        let mut ranges: Vec<Vec<PositionRange>> = vec![Vec::new(); self.members.len()];
        let mut add = |member: u32, range: PositionRange| {
            let owned = &mut ranges[member as usize];
            match owned.last_mut() {
                Some(previous) if previous.last.checked_add(1) == Some(range.first) => {
                    previous.last = range.last;
                }
                _ => owned.push(range),
            }
        };
        let wrap_leader = leader(first)?;
        add(
            wrap_leader,
            PositionRange {
                first: 0,
                last: first,
            },
        );
        for pair in self.points.windows(2) {
            let ((previous, _), (point, _)) = (pair[0], pair[1]);
            // Equal points: the first of them leads, the others lead nothing.
            if point > previous {
                let range = PositionRange {
                    first: previous + 1,
                    last: point,
                };
                add(leader(point)?, range);
            }
        }
        if last < u64::MAX {
            let range = PositionRange {
                first: last + 1,
                last: u64::MAX,
            };
            add(wrap_leader, range);
        }
        Some(ranges)
    }
}

/// xxh3-64 of the sorted, deduplicated member ids joined by `'\n'`; 0 when
/// there are none.
fn epoch_of(members: &[String]) -> u64 {
    if members.is_empty() {
        return 0;
    }
    key_hash(members.join("\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring with hand-placed points, to check the arithmetic at the edges.
    fn ring_with_points(members: &[&str], points: &[(u64, u32)]) -> Ring {
        let members: Vec<String> = members.iter().map(|m| m.to_string()).collect();
        let mut points = points.to_vec();
        points.sort_unstable();
        Ring {
            epoch: epoch_of(&members),
            members,
            points,
            vnodes: 1,
        }
    }

    fn ids(set: ReplicaSet) -> Vec<u32> {
        set.as_slice().to_vec()
    }

    /// Slots as redis-server 7.0.15 with `cluster-enabled yes` answers
    /// `CLUSTER KEYSLOT` for the same keys.
    #[test]
    fn cluster_slots_are_redis_clusters() {
        let vectors: &[(&[u8], u16)] = &[
            (b"foo", 12182),
            (b"bar", 5061),
            (b"{user1000}.following", 3443),
            (b"{user1000}.followers", 3443),
            (b"foo{}{bar}", 8363),
            (b"foo{{bar}}zap", 4015),
            (b"foo{bar}{zap}", 5061),
            (b"", 0),
            (b"123456789", 12739),
            (b"a{b", 13340),
            (b"{}", 15257),
            (b"}{x}", 16287),
            (b"\x00\xff{\x01}", 4129),
        ];
        for &(key, slot) in vectors {
            assert_eq!(
                cluster_slot(key),
                slot,
                "{:?}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn empty_ring_and_zero_replicas_give_empty_sets() {
        let empty = Ring::new(Vec::<String>::new(), DEFAULT_VIRTUAL_NODES);
        assert!(empty.is_empty());
        assert_eq!(empty.epoch(), 0);
        assert!(empty.shares().is_empty());
        assert_eq!(empty.index_of("aux-1"), None);
        for hash in [0, 1, u64::MAX] {
            assert!(empty.replicas_for_hash(hash, 3).is_empty());
        }
        assert_eq!(empty.replicas_for(b"k", 1).leader(), None);

        let ring = Ring::new(["aux-1", "aux-2"], 16);
        assert!(ring.replicas_for(b"k", 0).is_empty());
        assert_eq!(ring.replicas_for(b"k", 0), ReplicaSet::default());
        assert_eq!(ring.replicas_for(b"k", usize::MAX).len(), 2);
    }

    #[test]
    fn lookup_takes_the_first_point_at_or_after_the_hash_and_wraps() {
        let ring = ring_with_points(&["a", "b", "c"], &[(10, 0), (20, 1), (30, 2), (40, 0)]);
        assert_eq!(ids(ring.replicas_for_hash(0, 3)), [0, 1, 2]);
        assert_eq!(ids(ring.replicas_for_hash(10, 3)), [0, 1, 2]);
        assert_eq!(ids(ring.replicas_for_hash(11, 3)), [1, 2, 0]);
        assert_eq!(ids(ring.replicas_for_hash(20, 2)), [1, 2]);
        assert_eq!(ids(ring.replicas_for_hash(31, 3)), [0, 1, 2]);
        // Past the last point the walk wraps to the first one.
        assert_eq!(ids(ring.replicas_for_hash(41, 3)), [0, 1, 2]);
        assert_eq!(ids(ring.replicas_for_hash(u64::MAX, 3)), [0, 1, 2]);
        // A walk starting at the end wraps to find the remaining members.
        assert_eq!(ids(ring.replicas_for_hash(35, 3)), [0, 1, 2]);
        assert_eq!(ids(ring.replicas_for_hash(25, 3)), [2, 0, 1]);
    }

    #[test]
    fn equal_hashes_are_ordered_by_member_index() {
        let ring = ring_with_points(&["a", "b"], &[(7, 1), (7, 0)]);
        assert_eq!(ring.points, [(7, 0), (7, 1)]);
        assert_eq!(ids(ring.replicas_for_hash(7, 2)), [0, 1]);
        // The second of two equal points leads an empty arc.
        assert_eq!(ring.shares(), [1.0, 0.0]);
    }

    #[test]
    fn shares_are_exact_arcs_including_the_wrap() {
        const Q: u64 = 1 << 62; // a quarter of the hash space
        let ring = ring_with_points(&["a", "b", "c"], &[(Q, 1), (2 * Q, 2), (3 * Q, 1)]);
        // "b" leads (Q, 0] wrapped from 3Q plus (2Q, 3Q]; "c" leads (Q, 2Q].
        assert_eq!(ring.shares(), [0.0, 0.75, 0.25]);

        let single = ring_with_points(&["a"], &[(u64::MAX, 0)]);
        assert_eq!(single.shares(), [1.0]);
        let at_zero = ring_with_points(&["a", "b"], &[(0, 0), (u64::MAX, 1)]);
        // "a" leads only hash 0; "b" leads the other 2^64 - 1 hashes.
        let shares = at_zero.shares();
        assert_eq!(shares[0], 1.0 / 18_446_744_073_709_551_616.0);
        assert_eq!(shares[1], 1.0);
    }

    #[test]
    fn vnodes_are_clamped_so_every_member_has_a_point() {
        let ring = Ring::new(["aux-1", "aux-2"], 0);
        assert_eq!(ring.vnodes(), 1);
        assert_eq!(ring.points.len(), 2);
        assert_eq!(ring.replicas_for(b"k", 2).len(), 2);
        assert_eq!(Ring::new(["aux-1"], u32::MAX).vnodes(), MAX_VIRTUAL_NODES);
    }

    fn range(first: u64, last: u64) -> PositionRange {
        PositionRange { first, last }
    }

    #[test]
    fn leader_ranges_give_each_arc_to_its_first_live_replica() {
        let ring = ring_with_points(&["a", "b", "c"], &[(10, 0), (20, 1), (30, 2), (40, 0)]);
        // The arc past the last point wraps to the first point's member,
        // and joins the arc before it.
        assert_eq!(
            ring.leader_ranges(2, |_| true),
            Some(vec![
                vec![range(0, 10), range(31, u64::MAX)],
                vec![range(11, 20)],
                vec![range(21, 30)],
            ])
        );
        // With b down its arc goes to its next replica, c.
        assert_eq!(
            ring.leader_ranges(2, |m| m != 1),
            Some(vec![
                vec![range(0, 10), range(31, u64::MAX)],
                vec![],
                vec![range(11, 30)],
            ])
        );
        // With one copy per key, b's keys have no live replica.
        assert_eq!(ring.leader_ranges(1, |m| m != 1), None);
        assert_eq!(
            Ring::new(Vec::<String>::new(), 8).leader_ranges(2, |_| true),
            None
        );
    }

    #[test]
    fn leader_ranges_at_the_ends_of_the_hash_space() {
        // A point at 0 leads only 0 and the wrap; one at u64::MAX leaves no
        // wrap-around arc; equal points lead once.
        let ring = ring_with_points(&["a", "b"], &[(0, 1), (7, 0), (7, 1), (u64::MAX, 0)]);
        assert_eq!(
            ring.leader_ranges(1, |_| true),
            Some(vec![vec![range(1, u64::MAX)], vec![range(0, 0)]])
        );
        assert!(ranges_contain(&[range(0, 0), range(5, u64::MAX)], u64::MAX));
        assert!(!ranges_contain(&[range(0, 0), range(5, u64::MAX)], 4));
        assert!(!ranges_contain(&[], 0));
    }

    proptest::proptest! {
        /// Every position belongs to exactly one member's ranges, that of
        /// the first live replica of its key, wherever the points are.
        #[test]
        fn every_position_has_exactly_one_leader(
            points in proptest::collection::vec(
                (proptest::prop_oneof![
                    proptest::prelude::any::<u64>(),
                    0u64..4,
                    (u64::MAX - 3)..=u64::MAX,
                ], 0u32..4),
                1..24,
            ),
            down in proptest::collection::vec(proptest::prelude::any::<bool>(), 4),
            n in 1usize..4,
            probes in proptest::collection::vec(proptest::prelude::any::<u64>(), 0..32),
        ) {
            let ring = ring_with_points(&["a", "b", "c", "d"], &points);
            let live = |m: u32| !down[m as usize];
            let first_live = |position: u64| {
                ring.replicas_for_hash(position, n).as_slice().iter().copied().find(|&m| live(m))
            };
            let mut edges = vec![0, 1, u64::MAX - 1, u64::MAX];
            for &(p, _) in &points {
                edges.extend([p.wrapping_sub(1), p, p.wrapping_add(1)]);
            }
            let Some(ranges) = ring.leader_ranges(n, live) else {
                proptest::prop_assert!(edges.iter().any(|&p| first_live(p).is_none()));
                return Ok(());
            };
            let mut all: Vec<PositionRange> = ranges.iter().flatten().copied().collect();
            for owned in &ranges {
                proptest::prop_assert!(owned.windows(2).all(|w| w[0].last < w[1].first));
            }
            all.sort_unstable();
            // The ranges tile the hash space: no gap, no overlap.
            proptest::prop_assert_eq!(all.first().map(|r| r.first), Some(0));
            proptest::prop_assert_eq!(all.last().map(|r| r.last), Some(u64::MAX));
            for w in all.windows(2) {
                proptest::prop_assert_eq!(w[0].last.checked_add(1), Some(w[1].first));
            }
            for position in edges.into_iter().chain(probes) {
                let owners: Vec<u32> = (0..4u32)
                    .filter(|&m| ranges_contain(&ranges[m as usize], position))
                    .collect();
                proptest::prop_assert_eq!(owners, first_live(position).into_iter().collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn members_are_sorted_deduplicated_and_indexed() {
        let ring = Ring::new(["aux-2", "aux-10", "aux-1", "aux-2"], 8);
        assert_eq!(ring.members(), ["aux-1", "aux-10", "aux-2"]);
        assert_eq!(ring.vnodes(), 8);
        assert_eq!(ring.points.len(), 24);
        assert!(ring.points.is_sorted());
        assert_eq!(ring.index_of("aux-1"), Some(0));
        assert_eq!(ring.index_of("aux-2"), Some(2));
        assert_eq!(ring.index_of("aux-3"), None);
        assert_eq!(ring.epoch(), key_hash(b"aux-1\naux-10\naux-2"));
    }
}
