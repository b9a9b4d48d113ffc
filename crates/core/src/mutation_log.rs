//! The mutation log: every write, delete and forget an auxiliary applies,
//! as self-checking records appended to a file between snapshots, so that a
//! restart replays what the last snapshot missed.
//!
//! # Contract
//!
//! - **Files.** A log is a sequence of generations, one file each. A file
//!   starts with a header (magic number, format version, its generation) and
//!   holds records appended one after the other. A snapshot records the
//!   generation started just before its copy began; older generations are
//!   covered by it and may be deleted once it is on disk.
//! - **Records** carry their length and a CRC-32 of their body, so a record
//!   cut short by a crash (a *torn tail*) or damaged on disk is detected, and
//!   reading stops there: everything before it is used, nothing after it is
//!   trusted. [`read`] never panics and never allocates what the input's
//!   lengths ask for.
//! - **Replay is idempotent.** Every record carries the version it was
//!   applied at and the store keeps the higher version, so replaying a
//!   record the snapshot already holds changes nothing. That is what lets
//!   the snapshot's copy run while writes continue into the new generation.
//! - **Changes, not values, for commands on collections.** A command that
//!   changes a few elements of a large value is logged as its effects (the
//!   ops its replicas receive) over the version it changed (the *base*),
//!   not as the whole value: a push onto a list of 100,000 elements logs a
//!   few dozen bytes. It is logged so only when that is the smaller record
//!   and its ops leave the expiry alone (so a base that has expired by
//!   replay time means the result has too: the record then acts as an
//!   expired write). Replay applies such a record only over its base, as a
//!   replica does. Records replay in order over the snapshot they follow,
//!   which holds the base, something newer (the record is stale), or
//!   nothing: the key was dropped without a tombstone (handed off,
//!   evicted) before the snapshot's copy, and the record is skipped, as
//!   the key is gone. A key held at another version is damage: counted
//!   and skipped.
//! - **Order.** A mutation is applied to the store, then appended. A
//!   mutation appended to a generation older than a snapshot's was therefore
//!   applied before that snapshot's copy began, and is in it.
//!
//! Writing, syncing and rotating files is the server's job; this module only
//! encodes and decodes.
//!
//! # Layout (integers little-endian; `entry` and `key_version` as in
//! `crate::codec`)
//!
//! ```text
//! header   magic [8] = "\xD5DCMLOG\n", version u16 = 2, flags u16 = 0,
//!          generation u64, crc u32: CRC-32 of the 20 bytes before it
//! record*  body_len u32 (>= 1), crc u32: CRC-32 of the body,
//!          body: kind u8, then
//!            0x01 set      entry
//!            0x02 delete   key_version (a tombstone at that version)
//!            0x03 forget   key_version (drop the entry only if it still has
//!                          exactly that version; no tombstone)
//!            0x04 changes  key_version (the changes' version),
//!                          flags u8 (bit 0: a base follows, bit 1: an
//!                          expiry follows; other bits 0),
//!                          [base: millis u64, counter u32, origin u32],
//!                          [expires_at_ms u64: the result's expiry],
//!                          ops: the rest of the body, as
//!                          `keyspace::effect::encoding::encode_ops` writes
//!                          them (each op's own length and CRC)
//! ```
//!
//! Version 1 files (no `changes` records) still replay; a `changes` record
//! in one is damage.

use std::io;

use thiserror::Error;

use bytes::Bytes;

use crate::codec::{self, Cursor, Short};
use crate::keyspace::effect::encoding as effect_encoding;
use crate::store::{ApplyOutcome, DeleteOutcome, EntryRef, KeyChanges, SetOutcome, Store};
use crate::version::Version;

/// The magic number that starts every log file.
pub const MAGIC: [u8; 8] = *b"\xD5DCMLOG\n";
/// This build's log format version (it also reads version 1).
pub const VERSION: u16 = 2;
/// The oldest log format version this build reads.
pub const OLDEST_VERSION: u16 = 1;
/// Bytes of a file's header.
pub const HEADER_LEN: usize = 24;
/// Bytes before a record's body.
pub const RECORD_HEAD_LEN: usize = 8;
/// The longest body a record can have: a set with the longest key and the
/// largest value a store takes (under 2 GiB, see `store::item`); a
/// changes record is written only when smaller than the set it stands
/// for. A longer length field is damage, whatever follows it. (A damaged
/// length that still fits reads as a torn tail: the file's last record
/// seems cut.)
pub const MAX_BODY_LEN: usize = 1 + 2 + 65_535 + 4 + (i32::MAX as usize) + 16 + 1 + 8;

const KIND_SET: u8 = 0x01;
const KIND_DELETE: u8 = 0x02;
const KIND_FORGET: u8 = 0x03;
const KIND_CHANGES: u8 = 0x04;

/// `changes` flag: a base version follows.
const CHANGES_BASE: u8 = 0x01;
/// `changes` flag: an expiry follows.
const CHANGES_EXPIRES: u8 = 0x02;

/// One mutation, as applied to a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation<'a> {
    /// A write of `entry` to `key`.
    Set {
        /// The key.
        key: &'a [u8],
        /// Value, expiry and version.
        entry: EntryRef<'a>,
    },
    /// A delete of `key` at `version`, leaving a tombstone.
    Delete {
        /// The key.
        key: &'a [u8],
        /// The delete's version.
        version: Version,
    },
    /// `key`'s copy at exactly `version` was dropped (handed to its new
    /// owners); no tombstone.
    Forget {
        /// The key.
        key: &'a [u8],
        /// The version of the copy dropped.
        version: Version,
    },
    /// A command's changes to `key`, made at `version` over `base`, as
    /// its replicas apply them ([`Store::apply_changes`]).
    Changes {
        /// The key.
        key: &'a [u8],
        /// The changes' version.
        version: Version,
        /// The version the key held before (`None`: no live entry).
        base: Option<Version>,
        /// The resulting value's expiry, which the ops leave as it was.
        expires_at_ms: Option<u64>,
        /// The ops, as `keyspace::effect::encoding::encode_ops` wrote them.
        ops: &'a [u8],
    },
}

impl Mutation<'_> {
    /// Applies this mutation to `store` as the live path did.
    pub fn apply(&self, store: &Store, now_ms: u64) -> Applied {
        match *self {
            Mutation::Set { key, entry } => match store.set_ref(key, entry, now_ms) {
                SetOutcome::Stored => Applied::Changed,
                SetOutcome::Stale { .. } => Applied::Stale,
                SetOutcome::Expired => Applied::Expired,
                SetOutcome::TooLarge => Applied::TooLarge,
            },
            Mutation::Delete { key, version } => match store.delete(key, version, now_ms) {
                DeleteOutcome::Deleted | DeleteOutcome::NotFound => Applied::Changed,
                DeleteOutcome::Stale { .. } => Applied::Stale,
            },
            Mutation::Forget { key, version } => {
                if store.remove_if_version(key, version) {
                    Applied::Changed
                } else {
                    Applied::Stale
                }
            }
            Mutation::Changes {
                key,
                version,
                base,
                expires_at_ms,
                ops,
            } => {
                if expires_at_ms.is_some_and(|at| at <= now_ms) {
                    // As a whole-value write that arrives expired: a delete
                    // at its version, unless something newer is held.
                    return match store.delete(key, version, now_ms) {
                        DeleteOutcome::Deleted | DeleteOutcome::NotFound => Applied::Expired,
                        DeleteOutcome::Stale { .. } => Applied::Stale,
                    };
                }
                let Ok(ops) = effect_encoding::decode_ops(key, ops) else {
                    return Applied::Diverged;
                };
                let changes = [KeyChanges {
                    key: Bytes::copy_from_slice(key),
                    base,
                    ops,
                }];
                let applied =
                    store.apply_changes(&changes, version, now_ms, usize::MAX, &mut |_| {});
                match applied.first() {
                    Some(ApplyOutcome::Applied) => Applied::Changed,
                    Some(ApplyOutcome::Stale { .. }) => Applied::Stale,
                    Some(ApplyOutcome::TooLarge) => Applied::TooLarge,
                    Some(ApplyOutcome::Diverged) | None => {
                        if store.peek(key, now_ms).is_none() {
                            Applied::BaseGone
                        } else {
                            Applied::Diverged
                        }
                    }
                }
            }
        }
    }
}

/// What applying one replayed mutation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The store changed (or a tombstone was recorded).
    Changed,
    /// The store already held something as new or newer.
    Stale,
    /// A write whose expiry has passed.
    Expired,
    /// A write larger than the store's byte share.
    TooLarge,
    /// Changes to a key the store does not hold: it was dropped without a
    /// tombstone (handed off, evicted) before the snapshot's copy. Nothing
    /// to do, as the key is gone.
    BaseGone,
    /// Changes to a key held at another version than their base (or that
    /// do not fit it): damage, since records replay in order over their
    /// snapshot.
    Diverged,
}

/// A file's header for `generation`.
pub fn header(generation: u64) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[..8].copy_from_slice(&MAGIC);
    out[8..10].copy_from_slice(&VERSION.to_le_bytes());
    // Bytes 10..12: flags, zero.
    out[12..20].copy_from_slice(&generation.to_le_bytes());
    let crc = crc32fast::hash(&out[..20]);
    out[20..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Appends one record for `mutation` to `out`. A key or value a record
/// cannot hold is refused and nothing is appended.
pub fn append(out: &mut Vec<u8>, mutation: &Mutation<'_>) -> io::Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEAD_LEN]);
    let body = match *mutation {
        Mutation::Set { key, entry } => {
            out.push(KIND_SET);
            codec::put_entry(out, key, entry)
        }
        Mutation::Delete { key, version } => {
            out.push(KIND_DELETE);
            codec::put_key_version(out, key, version)
        }
        Mutation::Forget { key, version } => {
            out.push(KIND_FORGET);
            codec::put_key_version(out, key, version)
        }
        Mutation::Changes {
            key,
            version,
            base,
            expires_at_ms,
            ops,
        } => {
            out.push(KIND_CHANGES);
            codec::put_key_version(out, key, version).map(|()| {
                let flags = if base.is_some() { CHANGES_BASE } else { 0 }
                    | if expires_at_ms.is_some() {
                        CHANGES_EXPIRES
                    } else {
                        0
                    };
                out.push(flags);
                if let Some(base) = base {
                    codec::put_version(out, base);
                }
                if let Some(at) = expires_at_ms {
                    out.extend_from_slice(&at.to_le_bytes());
                }
                out.extend_from_slice(ops);
            })
        }
    };
    let len = body.and_then(|()| {
        u32::try_from(out.len() - start - RECORD_HEAD_LEN)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record too large"))
    });
    let len = match len {
        Ok(len) => len,
        Err(e) => {
            out.truncate(start);
            return Err(e);
        }
    };
    let crc = crc32fast::hash(&out[start + RECORD_HEAD_LEN..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// A log file that cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LogFileError {
    /// Shorter than a header.
    #[error("log file too short for its header ({len} bytes)")]
    Truncated {
        /// The file's length.
        len: usize,
    },
    /// Not a distcache mutation log.
    #[error("not a distcache mutation log: wrong magic number")]
    BadMagic,
    /// The header's checksum does not match.
    #[error("log header checksum mismatch")]
    HeaderChecksum,
    /// Written by a newer distcache.
    #[error(
        "log format version {found} is not one this build reads ({OLDEST_VERSION} to {VERSION})"
    )]
    UnknownVersion {
        /// The file's format version.
        found: u16,
    },
}

/// How a log's readable part ends, when it does not end at a record
/// boundary at the end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Where the first unusable record starts; everything before it was read.
    pub offset: u64,
    /// Whether that looks like a crash's torn tail or damage in the middle.
    pub kind: DamageKind,
    /// What was wrong with it.
    pub reason: &'static str,
}

/// See [`Damage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DamageKind {
    /// The last record is incomplete or zero-filled: what a crash while
    /// appending leaves. Expected, and cut.
    TornTail,
    /// A record with bytes after it fails its checks: the file was damaged.
    /// Records after it cannot be found reliably and are skipped.
    Corrupt,
}

/// What [`read`] found in one log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRead {
    /// The file's generation, from its header.
    pub generation: u64,
    /// Whole, checked records read.
    pub records: u64,
    /// Bytes up to the end of the last good record (the header included).
    pub valid_len: u64,
    /// Set when the file does not end right after its last good record.
    pub damage: Option<Damage>,
}

/// Reads one log file, calling `f` with each good record in order, up to the
/// first record that fails its checks (see [`Damage`]).
pub fn read(data: &[u8], mut f: impl FnMut(Mutation<'_>)) -> Result<LogRead, LogFileError> {
    if data.len() < HEADER_LEN {
        return Err(LogFileError::Truncated { len: data.len() });
    }
    if data[..8] != MAGIC {
        return Err(LogFileError::BadMagic);
    }
    if crc32fast::hash(&data[..20]).to_le_bytes() != data[20..24] {
        return Err(LogFileError::HeaderChecksum);
    }
    let found = u16::from_le_bytes([data[8], data[9]]);
    if !(OLDEST_VERSION..=VERSION).contains(&found) || data[10..12] != [0, 0] {
        return Err(LogFileError::UnknownVersion { found });
    }
    let mut generation = [0u8; 8];
    generation.copy_from_slice(&data[12..20]);
    let mut read = LogRead {
        generation: u64::from_le_bytes(generation),
        records: 0,
        valid_len: HEADER_LEN as u64,
        damage: None,
    };
    let mut pos = HEADER_LEN;
    while pos < data.len() {
        match record_at(data, pos, found) {
            Ok((mutation, next)) => {
                f(mutation);
                read.records += 1;
                pos = next;
                read.valid_len = pos as u64;
            }
            Err(damage) => {
                read.damage = Some(damage);
                break;
            }
        }
    }
    Ok(read)
}

/// The record at `pos` of a file of format `version`, and where the next
/// one starts.
fn record_at(data: &[u8], pos: usize, version: u16) -> Result<(Mutation<'_>, usize), Damage> {
    let rest = &data[pos..];
    let damage = |kind, reason| Damage {
        offset: pos as u64,
        kind,
        reason,
    };
    if rest.len() < RECORD_HEAD_LEN {
        return Err(damage(DamageKind::TornTail, "record header cut short"));
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if len == 0 {
        // Some file systems leave zeros past the last write after a crash.
        return Err(if rest.iter().all(|&b| b == 0) {
            damage(DamageKind::TornTail, "zero-filled tail")
        } else {
            damage(DamageKind::Corrupt, "empty record")
        });
    }
    if len > MAX_BODY_LEN {
        // No record is this long: a damaged length, not a cut.
        return Err(damage(
            DamageKind::Corrupt,
            "record length beyond any record",
        ));
    }
    let Some(body) = rest.get(RECORD_HEAD_LEN..RECORD_HEAD_LEN + len) else {
        return Err(damage(DamageKind::TornTail, "record body cut short"));
    };
    let end = pos + RECORD_HEAD_LEN + len;
    let at_end = end == data.len();
    if crc32fast::hash(body) != crc {
        return Err(if at_end {
            damage(DamageKind::TornTail, "last record's checksum mismatch")
        } else {
            damage(DamageKind::Corrupt, "record checksum mismatch")
        });
    }
    // A body whose checksum holds but does not parse was written wrong, not
    // torn: corrupt wherever it is.
    let corrupt = |_: Short| damage(DamageKind::Corrupt, "record body malformed");
    let mut cur = Cursor::new(&body[1..]);
    let mutation = match body[0] {
        KIND_SET => {
            let (key, entry) = cur.entry().map_err(corrupt)?;
            Mutation::Set { key, entry }
        }
        KIND_DELETE => {
            let (key, version) = cur.key_version().map_err(corrupt)?;
            Mutation::Delete { key, version }
        }
        KIND_FORGET => {
            let (key, version) = cur.key_version().map_err(corrupt)?;
            Mutation::Forget { key, version }
        }
        KIND_CHANGES if version >= 2 => {
            let mutation = changes(&mut cur).map_err(corrupt)?;
            let Mutation::Changes { key, ops, .. } = mutation else {
                unreachable!("`changes` reads a changes record")
            };
            // Checked here so that a malformed op is found where it lies,
            // as damage, and not when it fails to apply.
            if effect_encoding::decode_ops(key, ops).is_err() {
                return Err(damage(DamageKind::Corrupt, "record's ops malformed"));
            }
            mutation
        }
        _ => return Err(damage(DamageKind::Corrupt, "unknown record kind")),
    };
    if cur.remaining() != 0 {
        return Err(damage(DamageKind::Corrupt, "record longer than its fields"));
    }
    Ok((mutation, end))
}

/// The fields of a `changes` record after its kind byte.
fn changes<'a>(cur: &mut Cursor<'a>) -> Result<Mutation<'a>, Short> {
    let (key, version) = cur.key_version()?;
    let flags = cur.u8("changes flags")?;
    if flags & !(CHANGES_BASE | CHANGES_EXPIRES) != 0 {
        return Err(Short::Malformed("unknown changes flags"));
    }
    let base = if flags & CHANGES_BASE != 0 {
        Some(cur.version()?)
    } else {
        None
    };
    let expires_at_ms = if flags & CHANGES_EXPIRES != 0 {
        Some(cur.u64("changes expiry")?)
    } else {
        None
    };
    let ops = cur.take(cur.remaining(), "changes ops")?;
    Ok(Mutation::Changes {
        key,
        version,
        base,
        expires_at_ms,
        ops,
    })
}

/// What replaying one log file did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayCounts {
    /// Records read.
    pub records: u64,
    /// Records that changed the store.
    pub applied: u64,
    /// Records the store already held something as new or newer for.
    pub stale: u64,
    /// Writes whose expiry had passed.
    pub expired: u64,
    /// Writes larger than the store's byte share.
    pub too_large: u64,
    /// Changes to a key no longer held, skipped (see [`Applied::BaseGone`]).
    pub base_gone: u64,
    /// Changes to a key held at another version, skipped (damage).
    pub diverged: u64,
}

/// Replays one log file into `store`: every good record, in order.
pub fn replay(
    data: &[u8],
    store: &Store,
    now_ms: u64,
) -> Result<(LogRead, ReplayCounts), LogFileError> {
    let mut counts = ReplayCounts::default();
    let read = read(data, |mutation| {
        counts.records += 1;
        match mutation.apply(store, now_ms) {
            Applied::Changed => counts.applied += 1,
            Applied::Stale => counts.stale += 1,
            Applied::Expired => counts.expired += 1,
            Applied::TooLarge => counts.too_large += 1,
            Applied::BaseGone => counts.base_gone += 1,
            Applied::Diverged => counts.diverged += 1,
        }
    })?;
    Ok((read, counts))
}

#[cfg(test)]
mod tests;
