//! Snapshots: a store's live entries as one self-checking byte string, so
//! that an auxiliary can be restarted (or a cluster rebuilt) with its data.
//!
//! # Contract
//!
//! - **Format.** A magic number and a format version, a header (node id,
//!   creation time, counts, shard count, the mutation log generation it
//!   covers), entries in blocks (key, value, version, absolute expiry) in the
//!   order they are to be restored, then tombstones (key, delete version),
//!   and checksums (CRC-32) over the header, over each block and over the
//!   whole file. Today's layout is in [`v2`]; today's version is [`v3`]
//!   (v2's layout, values in their stored form).
//! - **Tombstones.** A key deleted within the store's tombstone grace is
//!   saved as its delete version and restored as a tombstone (with a fresh
//!   grace), so that after a restart an older copy of the key, offered by a
//!   peer's handoff or a restore, is still refused.
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
pub mod v2;
pub mod v3;
mod writer;

pub use error::SnapshotError;
pub use writer::{EncodedEntries, SnapshotWriter};

use bytes::Bytes;

use crate::codec;

use crate::store::{DeleteOutcome, EXPIRED_LONG_AGO_MS, Entry, EntryRef, SetOutcome, Store};
use crate::version::Version;

/// The newest format version this build writes and reads.
pub const CURRENT_VERSION: u16 = v3::VERSION;

/// Who wrote a snapshot, when, and how much it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The writing node's id.
    pub node_id: String,
    /// When the snapshot was taken, Unix milliseconds.
    pub created_at_ms: u64,
    /// Entries in the snapshot.
    pub entry_count: u64,
    /// Tombstones in the snapshot (0 before format v2).
    pub tombstone_count: u64,
    /// The mutation log generation started when the snapshot's copy began:
    /// every older generation is covered by the snapshot, and replay starts
    /// here (0 before format v2: replay every generation).
    pub log_generation: u64,
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
    /// Keys deleted within the tombstone grace, with their delete versions.
    pub tombstones: Vec<(Bytes, Version)>,
}

/// What [`Snapshot::restore_into`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestoreCounts {
    /// Entries now in the store (before any later eviction by this restore).
    pub restored: u64,
    /// Entries that expired since the snapshot was written, skipped.
    pub expired: u64,
    /// Shards' expired-version floors read (items that had expired before
    /// the snapshot was written, carried for their versions alone, see
    /// [`encode_store`]): not keys, so not counted in `expired`.
    pub floors: u64,
    /// Entries the store already held at an equal or newer version.
    pub stale: u64,
    /// Entries larger than the store's byte share, refused.
    pub too_large: u64,
    /// Tombstones restored (keys deleted before the snapshot).
    pub tombstones: u64,
    /// Items the store evicted to stay within capacity while filling.
    pub evicted: u64,
}

/// Checks the magic number and the version, and gives the version.
fn format_version(data: &[u8]) -> Result<u16, SnapshotError> {
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
    match u16::from_le_bytes([data[8], data[9]]) {
        0 => Err(SnapshotError::UnknownVersion { found: 0 }),
        found if found > CURRENT_VERSION => Err(SnapshotError::NewerVersion {
            found,
            supported: CURRENT_VERSION,
        }),
        found => Ok(found),
    }
}

/// Checks a snapshot of any supported format version in full, then calls
/// `f` with each entry in file order and returns the header. A damaged
/// snapshot gives an error before `f` is called at all.
pub fn visit(
    data: &[u8],
    mut f: impl FnMut(&[u8], Entry),
) -> Result<SnapshotHeader, SnapshotError> {
    visit_ref(data, |key, entry| f(key, entry.to_entry()))
}

/// [`visit`], lending each entry's value from `data` instead of copying it
/// (the store copies what it keeps anyway).
pub fn visit_ref(
    data: &[u8],
    f: impl FnMut(&[u8], EntryRef<'_>),
) -> Result<SnapshotHeader, SnapshotError> {
    struct EntriesOnly<F>(F);
    impl<F: FnMut(&[u8], EntryRef<'_>)> Visitor for EntriesOnly<F> {
        fn entry(&mut self, key: &[u8], entry: EntryRef<'_>) {
            (self.0)(key, entry)
        }
        fn tombstone(&mut self, _: &[u8], _: Version) {}
    }
    visit_records(data, &mut EntriesOnly(f))
}

/// What [`visit_records`] calls for each record of a snapshot, in file
/// order: every entry, then every tombstone.
pub trait Visitor {
    /// An entry, lent from the snapshot's bytes.
    fn entry(&mut self, key: &[u8], entry: EntryRef<'_>);
    /// A tombstone: `key` was deleted at `version`.
    fn tombstone(&mut self, key: &[u8], version: Version);
}

/// Checks a snapshot of any supported format version in full, then calls
/// `visitor` with each record in file order and returns the header. A
/// damaged snapshot gives an error before anything is visited.
pub fn visit_records(
    data: &[u8],
    visitor: &mut impl Visitor,
) -> Result<SnapshotHeader, SnapshotError> {
    // Each version dispatches to its frozen module.
    match format_version(data)? {
        v1::VERSION => v1::visit_ref(data, |key, entry| visitor.entry(key, entry)),
        v2::VERSION => v2::visit(data, visitor),
        _ => v3::visit(data, visitor),
    }
}

/// Decodes a snapshot of any supported format version.
pub fn decode(data: &[u8]) -> Result<Snapshot, SnapshotError> {
    struct Collect(Vec<SnapshotEntry>, Vec<(Bytes, Version)>);
    impl Visitor for Collect {
        fn entry(&mut self, key: &[u8], entry: EntryRef<'_>) {
            self.0.push(SnapshotEntry {
                key: Bytes::copy_from_slice(key),
                entry: entry.to_entry(),
            });
        }
        fn tombstone(&mut self, key: &[u8], version: Version) {
            self.1.push((Bytes::copy_from_slice(key), version));
        }
    }
    format_version(data)?;
    // Never reserve more than the data could hold.
    let capacity = (data.len() / codec::MIN_ENTRY_LEN).min(1 << 20);
    let mut records = Collect(Vec::with_capacity(capacity), Vec::new());
    let header = visit_records(data, &mut records)?;
    Ok(Snapshot {
        header,
        entries: records.0,
        tombstones: records.1,
    })
}

/// Checks a snapshot in full, then inserts its entries into `store` in file
/// order, as [`Snapshot::restore_into`] does, without holding the decoded
/// entries in memory: the fast path of an auxiliary's start.
pub fn restore_bytes(
    data: &[u8],
    store: &Store,
    now_ms: u64,
) -> Result<(SnapshotHeader, RestoreCounts), SnapshotError> {
    let mut restorer = Restorer::new(store, now_ms);
    let header = visit_records(data, &mut restorer)?;
    Ok((header, restorer.finish()))
}

/// Inserts entries into a store, counting what happened.
struct Restorer<'a> {
    store: &'a Store,
    now_ms: u64,
    evictions_before: u64,
    counts: RestoreCounts,
}

impl Visitor for Restorer<'_> {
    fn entry(&mut self, key: &[u8], entry: EntryRef<'_>) {
        self.add(key, entry);
    }
    fn tombstone(&mut self, key: &[u8], version: Version) {
        self.add_tombstone(key, version);
    }
}

impl<'a> Restorer<'a> {
    fn new(store: &'a Store, now_ms: u64) -> Self {
        Restorer {
            store,
            now_ms,
            evictions_before: store.stats().evictions,
            counts: RestoreCounts::default(),
        }
    }

    fn add(&mut self, key: &[u8], entry: EntryRef<'_>) {
        if entry.expires_at_ms.is_some_and(|at| at <= self.now_ms) {
            // Not restored, but a replica whose clock is behind may still
            // hold it: commands are stamped above it (no tombstone: it
            // was not deleted, and a snapshot carries every shard's
            // highest expired item this way, see `encode_store`).
            self.store.note_expired(key, entry.version);
            if entry.expires_at_ms == Some(EXPIRED_LONG_AGO_MS) {
                self.counts.floors += 1;
            } else {
                self.counts.expired += 1;
            }
            return;
        }
        match self.store.set_ref(key, entry, self.now_ms) {
            SetOutcome::Stored => self.counts.restored += 1,
            SetOutcome::Stale { .. } => self.counts.stale += 1,
            SetOutcome::Expired => self.counts.expired += 1,
            SetOutcome::TooLarge => self.counts.too_large += 1,
        }
    }

    fn add_tombstone(&mut self, key: &[u8], version: Version) {
        match self.store.delete(key, version, self.now_ms) {
            DeleteOutcome::Deleted | DeleteOutcome::NotFound => self.counts.tombstones += 1,
            DeleteOutcome::Stale { .. } => self.counts.stale += 1,
        }
    }

    fn finish(mut self) -> RestoreCounts {
        self.counts.evicted = self
            .store
            .stats()
            .evictions
            .saturating_sub(self.evictions_before);
        self.counts
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
        tombstone_count: 0,
        log_generation: 0,
        shard_count,
    };
    let mut writer = SnapshotWriter::new(out, &header)?;
    for (key, entry) in entries {
        writer.push(key, entry)?;
    }
    writer.finish()
}

/// Encodes a whole store, one shard at a time: each shard's lock is held
/// only while its entries (least recently used first) and its tombstones
/// are encoded into memory, never while writing. After each shard's
/// tombstones comes its highest expired item, if any, as an expired entry
/// ([`Store::for_each_expired_in_shard`]): every reader skips it, and this
/// one raises the floor for commands' versions with it, so the floor
/// survives a restart without a new format version. Records a snapshot cannot
/// hold are skipped (none can reach a store through the API). Returns the
/// encoded records, ready for [`SnapshotWriter::push_encoded`].
pub fn encode_store(store: &Store, now_ms: u64) -> EncodedEntries {
    let mut encoded = EncodedEntries::new();
    for shard in 0..store.shard_count() {
        // Entries that expired go out as their tombstones.
        store.purge_expired_in_shard(shard, now_ms);
        store.for_each_in_shard(shard, now_ms, |key, entry| {
            let _ = encoded.push(key, entry);
        });
        store.for_each_tombstone_in_shard(shard, now_ms, |key, version| {
            let _ = encoded.push_tombstone(key, version);
        });
        // After the items: one that expires in between is in the floor.
        store.for_each_expired_in_shard(shard, |key, entry| {
            let _ = encoded.push_floor(key, entry);
        });
    }
    encoded
}

/// Where a snapshot comes from: its header's fields other than the counts.
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    /// The writing node's id.
    pub node_id: &'a str,
    /// When the copy was taken, Unix milliseconds.
    pub created_at_ms: u64,
    /// Shards of the store copied.
    pub shard_count: u32,
    /// The mutation log generation started just before the copy began (0
    /// when the node keeps no log).
    pub log_generation: u64,
}

/// Writes a snapshot of `encoded` (from [`encode_store`]) to `out`;
/// returns the output and the snapshot's size.
pub fn write_encoded<W: std::io::Write>(
    out: W,
    origin: Origin<'_>,
    encoded: &EncodedEntries,
) -> std::io::Result<(W, u64)> {
    let header = SnapshotHeader {
        node_id: origin.node_id.to_string(),
        created_at_ms: origin.created_at_ms,
        entry_count: encoded.len(),
        tombstone_count: encoded.tombstones(),
        log_generation: origin.log_generation,
        shard_count: origin.shard_count,
    };
    let mut writer = SnapshotWriter::new(out, &header)?;
    writer.push_encoded(encoded)?;
    writer.finish()
}

impl Snapshot {
    /// Whether `entry` had expired when the snapshot was written: no key
    /// of the snapshot but a shard's expired-version floor
    /// ([`encode_store`] writes no other expired entry). Whoever counts
    /// keys or entries leaves it out.
    pub fn expired_when_written(&self, entry: &SnapshotEntry) -> bool {
        entry
            .entry
            .expires_at_ms
            .is_some_and(|at| at <= self.header.created_at_ms)
    }

    /// Inserts the entries into `store` in file order, skipping those expired
    /// at `now_ms`. The store's versions decide against anything it already
    /// holds, and its capacity evicts the least recently used as it fills.
    pub fn restore_into(self, store: &Store, now_ms: u64) -> RestoreCounts {
        let mut restorer = Restorer::new(store, now_ms);
        for SnapshotEntry { key, entry } in self.entries {
            restorer.add(&key, entry.view());
        }
        for (key, version) in self.tombstones {
            restorer.add_tombstone(&key, version);
        }
        restorer.finish()
    }
}

#[cfg(test)]
mod tests;
