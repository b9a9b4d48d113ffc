//! Consistent hashing. STUB: to be implemented (see the module contract below).
//!
//! - The hash of a key is xxh3-64 of its bytes ([`key_hash`]), pinned forever
//!   by golden tests.
//! - Each member gets `vnodes` points: `key_hash("{member}#{i}")` for i in
//!   0..vnodes.
//! - A key's replicas are the first `n` distinct members clockwise from its
//!   hash (the first point whose hash is >= the key's hash, wrapping); the
//!   first of them is the key's leader.
//! - The ring is a pure function of the member set (order and duplicates in
//!   the input do not matter); its epoch is a hash of the sorted member set.

/// The most replicas a key can have.
pub const MAX_REPLICAS: usize = 8;

/// Ring points per member unless configured otherwise.
pub const DEFAULT_VIRTUAL_NODES: u32 = 1024;

/// xxh3-64 of the key's bytes: the position of a key on the ring.
pub fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// Up to [`MAX_REPLICAS`] member indices (into [`Ring::members`]), leader first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaSet {
    ids: [u32; MAX_REPLICAS],
    len: u8,
}

impl ReplicaSet {
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
    /// True when the ring was empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// An immutable hash ring over a set of member ids.
#[derive(Clone, Debug)]
pub struct Ring {
    members: Vec<String>,
}

impl Ring {
    /// Builds the ring for `members` (deduplicated and sorted) with `vnodes`
    /// points each.
    pub fn new<I, S>(members: I, vnodes: u32) -> Ring
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let _ = (members.into_iter().map(Into::into).count(), vnodes);
        todo!()
    }
    /// The members, sorted.
    pub fn members(&self) -> &[String] {
        &self.members
    }
    /// Index of a member in [`Ring::members`].
    pub fn index_of(&self, member: &str) -> Option<u32> {
        let _ = member;
        todo!()
    }
    /// Points per member.
    pub fn vnodes(&self) -> u32 {
        todo!()
    }
    /// A hash of the sorted member set; equal rings have equal epochs.
    pub fn epoch(&self) -> u64 {
        todo!()
    }
    /// True with no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
    /// The first `n` (at most [`MAX_REPLICAS`], at most the member count)
    /// distinct members clockwise from the key's hash, leader first.
    pub fn replicas_for(&self, key: &[u8], n: usize) -> ReplicaSet {
        let _ = (key, n);
        todo!()
    }
    /// Same as [`Ring::replicas_for`] for a precomputed [`key_hash`].
    pub fn replicas_for_hash(&self, hash: u64, n: usize) -> ReplicaSet {
        let _ = (hash, n);
        todo!()
    }
    /// Each member's share (0..=1) of the hash space as leader, in
    /// [`Ring::members`] order; the shares sum to 1 (or the list is empty).
    pub fn shares(&self) -> Vec<f64> {
        todo!()
    }
}
