//! Format version 2: v1 plus tombstones and the mutation log generation the
//! snapshot covers. Frozen: [`super::v3`] is today's format (this layout,
//! values in their stored form); v2 files keep decoding here.
//!
//! # Layout (integers little-endian; `entry` and `key_version` as in
//! `crate::codec`)
//!
//! ```text
//! preamble   magic [8] = "\xD5DCSNAP\n", version u16 = 2, flags u16 = 0
//! header     len u32, then len bytes:
//!              created_at_ms u64, entry_count u64, tombstone_count u64,
//!              log_generation u64, shard_count u32,
//!              node_id_len u16, node_id [node_id_len] (UTF-8)
//!            crc u32: CRC-32 of preamble, len and header bytes
//! block*     marker u8 (0x01: entries, 0x02: tombstones), count u32,
//!            payload_len u32, payload: count entries (0x01) or count
//!            key_versions (0x02)
//!            crc u32: CRC-32 of marker, count, payload_len and payload
//! end        marker u8 = 0xFE, total_entries u64, total_tombstones u64,
//!            crc u32: CRC-32 of every byte of the file before it
//! ```
//!
//! The block counts, the end's totals and the header's counts must agree,
//! and nothing may follow the end marker's checksum. Entries are in the
//! order they were written (least recently used first per shard); every
//! tombstone block follows the last entry block, so that restoring in file
//! order applies each delete after any older copy of its key.
//!
//! `log_generation`: the mutation log generation that was started when the
//! snapshot's copy began. Every mutation in older generations is in the
//! snapshot; replay starts at this generation.

use super::{SnapshotError, SnapshotHeader, Visitor};
use crate::codec::{Cursor, Short};
use crate::store::EntryRef;
use crate::version::Version;

pub use super::v1::{END_MARKER, MAGIC, MAX_NODE_ID_LEN, PREAMBLE_LEN};
/// This module's format version.
pub const VERSION: u16 = 2;
/// Marker of a block of entries.
pub const ENTRY_BLOCK: u8 = 0x01;
/// Marker of a block of tombstones.
pub const TOMBSTONE_BLOCK: u8 = 0x02;

fn malformed(offset: usize, reason: &'static str) -> SnapshotError {
    SnapshotError::Malformed {
        offset: offset as u64,
        reason,
    }
}

/// Reads a field of the file itself: running out is a truncated file.
fn field<T>(read: Result<T, Short>, data: &[u8]) -> Result<T, SnapshotError> {
    read.map_err(|short| match short {
        Short::Truncated(expected) => SnapshotError::Truncated {
            offset: data.len() as u64,
            expected,
        },
        Short::Malformed(reason) => malformed(0, reason),
    })
}

/// Reads a field inside a section whose length and checksum already held:
/// running out means the lengths inside disagree.
fn inside<T>(read: Result<T, Short>, at: usize, short: &'static str) -> Result<T, SnapshotError> {
    read.map_err(|s| match s {
        Short::Truncated(_) => malformed(at, short),
        Short::Malformed(reason) => malformed(at, reason),
    })
}

fn check_crc(
    data: &[u8],
    from: usize,
    cur: &mut Cursor<'_>,
    section: &'static str,
    verify: bool,
) -> Result<(), SnapshotError> {
    let offset = cur.pos();
    let stored = field(cur.u32("a checksum"), data)?;
    if verify && crc32fast::hash(&data[from..offset]) != stored {
        return Err(SnapshotError::Checksum {
            section,
            offset: offset as u64,
        });
    }
    Ok(())
}

/// Checks nothing and visits nothing: the first, verifying walk.
struct Nothing;

impl Visitor for Nothing {
    fn entry(&mut self, _: &[u8], _: EntryRef<'_>) {}
    fn tombstone(&mut self, _: &[u8], _: Version) {}
}

/// Checks a whole v2 snapshot, then calls `visitor` with each entry and
/// tombstone in file order and returns the header. Nothing is visited
/// unless every check passed. The caller has checked the magic number and
/// the version.
pub(super) fn visit(
    data: &[u8],
    visitor: &mut impl Visitor,
) -> Result<SnapshotHeader, SnapshotError> {
    walk(data, true, &mut Nothing)?;
    // Everything checked: the second walk cannot fail, and skips the
    // checksums it already verified.
    walk(data, false, visitor)
}

fn walk(
    data: &[u8],
    verify: bool,
    visitor: &mut impl Visitor,
) -> Result<SnapshotHeader, SnapshotError> {
    // Records of a block are parsed only after its checksum matched, so a
    // damaged length fails as a truncation or a checksum, never a panic.
    let mut cur = Cursor::new(data);
    field(cur.take(8, "the magic number"), data)?;
    field(cur.u16("the format version"), data)?;
    if field(cur.u16("the flags"), data)? != 0 {
        return Err(malformed(10, "unknown preamble flags"));
    }

    let header_len = field(cur.u32("the header length"), data)? as usize;
    let header_start = cur.pos();
    let body = field(cur.take(header_len, "the header"), data)?;
    check_crc(data, 0, &mut cur, "header", verify)?;
    let short = "header shorter than its fields";
    let mut h = Cursor::new(body);
    let created_at_ms = inside(h.u64("created_at_ms"), header_start, short)?;
    let entry_count = inside(h.u64("entry_count"), header_start, short)?;
    let tombstone_count = inside(h.u64("tombstone_count"), header_start, short)?;
    let log_generation = inside(h.u64("log_generation"), header_start, short)?;
    let shard_count = inside(h.u32("shard_count"), header_start, short)?;
    let id_len = inside(h.u16("node_id_len"), header_start, short)? as usize;
    if id_len > MAX_NODE_ID_LEN {
        return Err(malformed(header_start, "node id too long"));
    }
    let id = inside(h.take(id_len, "node_id"), header_start, short)?;
    if h.remaining() != 0 {
        return Err(malformed(header_start, "header longer than its fields"));
    }
    let node_id = std::str::from_utf8(id)
        .map_err(|_| malformed(header_start, "node id is not UTF-8"))?
        .to_string();

    let (mut entries, mut tombstones) = (0u64, 0u64);
    loop {
        let section_start = cur.pos();
        let marker = field(cur.u8("a block or the end marker"), data)?;
        match marker {
            ENTRY_BLOCK | TOMBSTONE_BLOCK => {
                if marker == ENTRY_BLOCK && tombstones > 0 {
                    return Err(malformed(section_start, "entries after tombstones"));
                }
                let count = field(cur.u32("a block's record count"), data)?;
                let payload_len = field(cur.u32("a block's length"), data)? as usize;
                let payload_start = cur.pos();
                let payload = field(cur.take(payload_len, "a block's records"), data)?;
                check_crc(data, section_start, &mut cur, "block", verify)?;
                let mut p = Cursor::new(payload);
                let short = "block shorter than its records";
                for _ in 0..count {
                    let at = payload_start + p.pos();
                    if marker == ENTRY_BLOCK {
                        let (key, entry) = inside(p.entry(), at, short)?;
                        entries += 1;
                        visitor.entry(key, entry);
                    } else {
                        let (key, version) = inside(p.key_version(), at, short)?;
                        tombstones += 1;
                        visitor.tombstone(key, version);
                    }
                }
                if p.remaining() != 0 {
                    return Err(malformed(
                        payload_start + p.pos(),
                        "block longer than its records",
                    ));
                }
            }
            END_MARKER => {
                let total_entries = field(cur.u64("the entry total"), data)?;
                let total_tombstones = field(cur.u64("the tombstone total"), data)?;
                check_crc(data, 0, &mut cur, "file", verify)?;
                if cur.remaining() != 0 {
                    return Err(malformed(cur.pos(), "bytes after the end"));
                }
                if (total_entries, total_tombstones) != (entries, tombstones)
                    || (entry_count, tombstone_count) != (entries, tombstones)
                {
                    return Err(malformed(section_start, "record counts disagree"));
                }
                return Ok(SnapshotHeader {
                    node_id,
                    created_at_ms,
                    entry_count,
                    tombstone_count,
                    log_generation,
                    shard_count,
                });
            }
            _ => return Err(malformed(section_start, "unknown section marker")),
        }
    }
}
