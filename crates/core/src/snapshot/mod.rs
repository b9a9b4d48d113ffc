//! Snapshots: a store's live entries as one self-checking byte string, so
//! that an auxiliary can be restarted (or a cluster rebuilt) with its data.
//!
//! # Contract
//!
//! - **Format.** A magic number and a format version, a header (node id,
//!   creation time, entry count, shard count), entries in blocks (key,
//!   value, version, absolute expiry) in the order they are to be restored,
//!   and checksums (CRC-32) over the header, over each block and over the
//!   whole file. Today's layout is in [`v1`].
//! - **Versions.** Every format version ever written keeps a frozen decoder
//!   module (`v1`, later `v2`...); [`decode`] reads the version and calls the
//!   matching one, so a file written today still loads after the format
//!   changes. A version newer than this build is refused, never guessed at.
//! - **Decoding is total.** Any bytes give either a snapshot whose every
//!   checksum, length and count agrees, or a [`SnapshotError`]; never a
//!   panic, never a partial snapshot, never an allocation the input's
//!   lengths ask for beyond what the input could hold.
//! - **Order.** [`Store::export`] gives entries least recently used first
//!   per shard; [`Snapshot::restore_into`] inserts them in file order, so a
//!   store with the same shard count gets back each shard's LRU order, and
//!   capacity (items, bytes) is enforced by the store as it fills, evicting
//!   the least recently used first.
//!
//! Writing a file durably (temporary file, fsync, rename, fsync of the
//! directory) is the server's job; this module only encodes and decodes.

mod error;
pub mod v1;
mod writer;

pub use error::SnapshotError;
pub use writer::SnapshotWriter;

use bytes::Bytes;

use crate::store::{Entry, SetOutcome, Store};

/// The newest format version this build writes and reads.
pub const CURRENT_VERSION: u16 = v1::VERSION;

/// Who wrote a snapshot, when, and how much it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The writing node's id.
    pub node_id: String,
    /// When the snapshot was taken, Unix milliseconds.
    pub created_at_ms: u64,
    /// Entries in the snapshot.
    pub entry_count: u64,
    /// Shards of the store it was taken from (restoring into a store with
    /// the same count keeps the exact per-shard LRU order).
    pub shard_count: u32,
}

/// One entry of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// The key's bytes.
    pub key: Bytes,
    /// Value, expiry and version.
    pub entry: Entry,
}

/// A decoded, fully checked snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The header.
    pub header: SnapshotHeader,
    /// The entries, in restore order.
    pub entries: Vec<SnapshotEntry>,
}

/// What [`Snapshot::restore_into`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestoreCounts {
    /// Entries now in the store (before any later eviction by this restore).
    pub restored: u64,
    /// Entries already expired at restore time, skipped.
    pub expired: u64,
    /// Entries the store already held at an equal or newer version.
    pub stale: u64,
    /// Entries larger than the store's byte share, refused.
    pub too_large: u64,
    /// Items the store evicted to stay within capacity while filling.
    pub evicted: u64,
}

/// Decodes a snapshot of any supported format version.
pub fn decode(data: &[u8]) -> Result<Snapshot, SnapshotError> {
    let magic_len = v1::MAGIC.len().min(data.len());
    if data[..magic_len] != v1::MAGIC[..magic_len] {
        return Err(SnapshotError::BadMagic);
    }
    if data.len() < v1::MAGIC.len() + 2 {
        return Err(SnapshotError::Truncated {
            offset: data.len() as u64,
            expected: "the format version",
        });
    }
    let version = u16::from_le_bytes([data[8], data[9]]);
    match version {
        v1::VERSION => v1::decode(data),
        0 => Err(SnapshotError::UnknownVersion { found: version }),
        found => Err(SnapshotError::NewerVersion {
            found,
            supported: CURRENT_VERSION,
        }),
    }
}

/// Encodes `entries` (in restore order) as a snapshot in today's format.
/// The header's `entry_count` is taken from `entries`.
pub fn encode<'a, W: std::io::Write>(
    out: W,
    node_id: &str,
    created_at_ms: u64,
    shard_count: u32,
    entries: impl ExactSizeIterator<Item = (&'a [u8], &'a Entry)>,
) -> std::io::Result<(W, u64)> {
    let header = SnapshotHeader {
        node_id: node_id.to_string(),
        created_at_ms,
        entry_count: entries.len() as u64,
        shard_count,
    };
    let mut writer = SnapshotWriter::new(out, &header)?;
    for (key, entry) in entries {
        writer.push(key, entry)?;
    }
    writer.finish()
}

impl Snapshot {
    /// Inserts the entries into `store` in file order, skipping those expired
    /// at `now_ms`. The store's versions decide against anything it already
    /// holds, and its capacity evicts the least recently used as it fills.
    pub fn restore_into(self, store: &Store, now_ms: u64) -> RestoreCounts {
        let evictions_before = store.stats().evictions;
        let mut counts = RestoreCounts::default();
        for SnapshotEntry { key, entry } in self.entries {
            if entry.expires_at_ms.is_some_and(|at| at <= now_ms) {
                counts.expired += 1;
                continue;
            }
            match store.set(&key, entry, now_ms) {
                SetOutcome::Stored => counts.restored += 1,
                SetOutcome::Stale => counts.stale += 1,
                SetOutcome::Expired => counts.expired += 1,
                SetOutcome::TooLarge => counts.too_large += 1,
            }
        }
        counts.evicted = store.stats().evictions - evictions_before;
        counts
    }
}

#[cfg(test)]
mod tests;
