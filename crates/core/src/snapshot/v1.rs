//! Format version 1, frozen: this module must keep decoding every v1 file
//! ever written. A future format gets its own module (`v2.rs`) and the
//! dispatcher in `mod.rs` converts older versions into today's types; do not
//! change the layout or the checks here.
//!
//! # Layout (integers little-endian)
//!
//! ```text
//! preamble   magic [8] = "\xD5DCSNAP\n", version u16 = 1, flags u16 = 0
//! header     len u32, then len bytes:
//!              created_at_ms u64, entry_count u64, shard_count u32,
//!              node_id_len u16, node_id [node_id_len] (UTF-8)
//!            crc u32: CRC-32 of preamble, len and header bytes
//! block*     marker u8 = 0x01, count u32, payload_len u32,
//!            payload: count entries, each
//!              key_len u16 (>= 1), key, value_len u32, value,
//!              millis u64, counter u32, origin u32,
//!              flags u8 (bit 0: has expiry; other bits 0),
//!              [expires_at_ms u64 if bit 0]
//!            crc u32: CRC-32 of marker, count, payload_len and payload
//! end        marker u8 = 0xFE, total_entries u64,
//!            crc u32: CRC-32 of every byte of the file before it
//! ```
//!
//! The sum of block counts, `total_entries` and the header's `entry_count`
//! must agree, and nothing may follow the end marker's checksum. Entries are
//! in the order they were written (least recently used first per shard).

use super::{SnapshotError, SnapshotHeader};
use crate::store::{Entry, EntryRef};
use crate::version::Version;

/// The magic number that starts every snapshot, whatever its version.
pub const MAGIC: [u8; 8] = *b"\xD5DCSNAP\n";
/// This module's format version.
pub const VERSION: u16 = 1;
/// Marker of a block of entries.
pub const BLOCK_MARKER: u8 = 0x01;
/// Marker of the end section.
pub const END_MARKER: u8 = 0xFE;
/// Entry flag: an expiry follows.
pub const FLAG_EXPIRES: u8 = 0x01;
/// Bytes of magic, version and flags.
pub const PREAMBLE_LEN: usize = 12;
/// The smallest entry: a 1-byte key, empty value, no expiry.
pub const MIN_ENTRY_LEN: usize = 2 + 1 + 4 + 8 + 4 + 4 + 1;
/// Longest node id accepted in the header.
pub const MAX_NODE_ID_LEN: usize = 1024;

/// A bounds-checked reader over the snapshot's bytes.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, expected: &'static str) -> Result<&'a [u8], SnapshotError> {
        if self.data.len() - self.pos < n {
            return Err(SnapshotError::Truncated {
                offset: self.data.len() as u64,
                expected,
            });
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, SnapshotError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, SnapshotError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, SnapshotError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, SnapshotError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn offset(&self) -> u64 {
        self.pos as u64
    }
}

fn malformed(offset: u64, reason: &'static str) -> SnapshotError {
    SnapshotError::Malformed { offset, reason }
}

fn check_crc(
    data: &[u8],
    from: usize,
    cur: &mut Cursor<'_>,
    section: &'static str,
    verify: bool,
) -> Result<(), SnapshotError> {
    let offset = cur.offset();
    let stored = cur.u32("a checksum")?;
    if verify && crc32fast::hash(&data[from..offset as usize]) != stored {
        return Err(SnapshotError::Checksum { section, offset });
    }
    Ok(())
}

/// Checks a whole v1 snapshot, then calls `f` with each entry in file order
/// and returns the header. `f` is called only once every check passed: a
/// damaged snapshot gives an error and no entry at all. The caller has
/// checked the magic number and the version; this checks everything else.
pub fn visit(
    data: &[u8],
    mut f: impl FnMut(&[u8], Entry),
) -> Result<SnapshotHeader, SnapshotError> {
    visit_ref(data, |key, entry| f(key, entry.to_entry()))
}

/// [`visit`], lending each entry's value from `data` instead of copying it.
pub fn visit_ref(
    data: &[u8],
    f: impl FnMut(&[u8], EntryRef<'_>),
) -> Result<SnapshotHeader, SnapshotError> {
    walk(data, true, |_, _| {})?;
    // Everything checked: the second walk cannot fail, and skips the
    // checksums it already verified.
    walk(data, false, f)
}

fn walk(
    data: &[u8],
    verify: bool,
    mut f: impl FnMut(&[u8], EntryRef<'_>),
) -> Result<SnapshotHeader, SnapshotError> {
    // Lengths are only ever used through the bounds-checked cursor, and a
    // block's entries are parsed only after its checksum matched, so a
    // damaged length fails as a truncation or a checksum, never a panic.
    if data.len() < PREAMBLE_LEN + 4 {
        return Err(SnapshotError::Truncated {
            offset: data.len() as u64,
            expected: "the preamble",
        });
    }
    let mut cur = Cursor { data, pos: 0 };
    cur.take(8, "the magic number")?;
    cur.u16("the format version")?;
    if cur.u16("the flags")? != 0 {
        return Err(malformed(10, "unknown preamble flags"));
    }

    // Header.
    let header_len = cur.u32("the header length")? as usize;
    let header_start = cur.pos;
    let body = cur.take(header_len, "the header")?;
    check_crc(data, 0, &mut cur, "header", verify)?;
    let mut h = Cursor { data: body, pos: 0 };
    let short = |_| malformed(header_start as u64, "header shorter than its fields");
    let created_at_ms = h.u64("created_at_ms").map_err(short)?;
    let entry_count = h.u64("entry_count").map_err(short)?;
    let shard_count = h.u32("shard_count").map_err(short)?;
    let id_len = h.u16("node_id_len").map_err(short)? as usize;
    if id_len > MAX_NODE_ID_LEN {
        return Err(malformed(header_start as u64, "node id too long"));
    }
    let id = h.take(id_len, "node_id").map_err(short)?;
    if h.pos != body.len() {
        return Err(malformed(
            header_start as u64,
            "header longer than its fields",
        ));
    }
    let node_id = std::str::from_utf8(id)
        .map_err(|_| malformed(header_start as u64, "node id is not UTF-8"))?
        .to_string();

    let mut seen: u64 = 0;
    loop {
        let section_start = cur.pos;
        match cur.u8("a block or the end marker")? {
            BLOCK_MARKER => {
                let count = cur.u32("a block's entry count")? as usize;
                let payload_len = cur.u32("a block's length")? as usize;
                let payload_start = cur.pos;
                let payload = cur.take(payload_len, "a block's entries")?;
                check_crc(data, section_start, &mut cur, "block", verify)?;
                let mut p = Cursor {
                    data: payload,
                    pos: 0,
                };
                let at = |p: &Cursor<'_>| (payload_start + p.pos) as u64;
                for _ in 0..count {
                    let bad = |_| malformed(payload_start as u64, "block shorter than its entries");
                    let key_len = p.u16("key_len").map_err(bad)? as usize;
                    if key_len == 0 {
                        return Err(malformed(at(&p), "empty key"));
                    }
                    let key = p.take(key_len, "key").map_err(bad)?;
                    let value_len = p.u32("value_len").map_err(bad)? as usize;
                    let value = p.take(value_len, "value").map_err(bad)?;
                    let millis = p.u64("millis").map_err(bad)?;
                    let counter = p.u32("counter").map_err(bad)?;
                    let origin = p.u32("origin").map_err(bad)?;
                    let flags = p.u8("flags").map_err(bad)?;
                    if flags & !FLAG_EXPIRES != 0 {
                        return Err(malformed(at(&p), "unknown entry flags"));
                    }
                    let expires_at_ms = if flags & FLAG_EXPIRES != 0 {
                        Some(p.u64("expires_at_ms").map_err(bad)?)
                    } else {
                        None
                    };
                    seen += 1;
                    if !verify {
                        f(
                            key,
                            EntryRef {
                                value,
                                expires_at_ms,
                                version: Version {
                                    millis,
                                    counter,
                                    origin,
                                },
                            },
                        );
                    }
                }
                if p.pos != payload.len() {
                    return Err(malformed(at(&p), "block longer than its entries"));
                }
            }
            END_MARKER => {
                let total = cur.u64("the entry total")?;
                check_crc(data, 0, &mut cur, "file", verify)?;
                if cur.pos != data.len() {
                    return Err(malformed(cur.offset(), "bytes after the end"));
                }
                if total != seen || entry_count != total {
                    return Err(malformed(section_start as u64, "entry counts disagree"));
                }
                // v1 held no tombstones and knew no mutation log: replay
                // after it starts at the first generation.
                return Ok(SnapshotHeader {
                    node_id,
                    created_at_ms,
                    entry_count,
                    tombstone_count: 0,
                    log_generation: 0,
                    shard_count,
                });
            }
            _ => return Err(malformed(section_start as u64, "unknown section marker")),
        }
    }
}
