//! The frame format, and its encoder and decoder.
//!
//! Every frame, in both directions:
//!
//! ```text
//! u32 length of what follows (little endian), up to MAX_FRAME_BYTES:
//!     at least 9 for a response, 17 for a request
//! u64 request id (a response echoes its request's id)
//! u8  opcode
//! u64 epoch (requests only; see below)
//! ... payload, by opcode
//! ```
//!
//! A request carries, right after its opcode, the epoch of the cluster map
//! its sender routed it by. An auxiliary remembers the highest epoch it has
//! seen and refuses a data request with an older one ([`Response::StaleEpoch`]).
//! Epoch [`UNFENCED`] (0) means "not routed by a map": peers handing keys
//! over, backup and restore, tools, `Ping` and `Hello`. A `Ping` with an epoch
//! announces it. Responses carry no epoch.
//!
//! Integers are little endian. A key is `u16 len + bytes`; a value is
//! `u32 len + bytes`; a version is `u64 millis, u32 counter, u32 origin`;
//! an expiry is `u64` Unix milliseconds with 0 meaning none. An entry is
//! `value, expiry, version`. A count is a `u32`, at most [`MAX_BATCH_ITEMS`].
//!
//! Requests and responses have separate opcode spaces; responses have the
//! high bit set so that a frame sent the wrong way is refused at once.
//!
//! | opcode | request    | payload (after the epoch)                 |
//! |--------|------------|-------------------------------------------|
//! | `0x01` | `Ping`     | none                                      |
//! | `0x02` | `Hello`    | secret (`u32 len + bytes`)                |
//! | `0x03` | `Get`      | key                                       |
//! | `0x04` | `Set`      | key, entry                                |
//! | `0x05` | `Delete`   | key, version                              |
//! | `0x06` | `GetMany`  | count, count × key                        |
//! | `0x07` | `SetMany`  | count, count × (key, entry)               |
//! | `0x08` | `DeleteMany` | count, count × (key, version)           |
//! | `0x09` | `Execute`  | optional version, `u64` value limit, count, count × command (count, count × value) |
//! | `0x0A` | `ApplyChanges` | version, count, count × changes       |
//! | `0x0B` | `CountKeys` | count, count × position range            |
//! | `0x0C` | `Execute`, keys only | as `0x09`                       |
//! | `0x0D` | `NoteExpired` | key, version                          |
//! | `0x0E` | `Execute`, watched | `u8` effects (`1`) or keys only (`0`), as `0x09`, count, count × (key, watched) |
//! | `0x0F` | `Adopt`    | key, slot (live or deleted), count, count × version |
//!
//! | opcode | response      | payload                                          |
//! |--------|---------------|--------------------------------------------------|
//! | `0x81` | `Pong`        | none                                             |
//! | `0x82` | `Ok`          | none                                             |
//! | `0x83` | `Value`       | entry                                            |
//! | `0x84` | `NotFound`    | none                                             |
//! | `0x85` | `Written`     | write status                                     |
//! | `0x86` | `Deleted`     | delete status                                    |
//! | `0x87` | `Values`      | count, count × slot                              |
//! | `0x88` | `WrittenMany` | count, count × write status                      |
//! | `0x89` | `Tombstone`   | version                                          |
//! | `0x8A` | `StaleEpoch`  | `u64` the newest epoch the auxiliary has seen    |
//! | `0x8B` | `Executed`    | optional version, replies (value), count, count × changes |
//! | `0x8C` | `Applied`     | count, count × apply status                      |
//! | `0x8D` | `Counted`     | `u64` the live keys counted                      |
//! | `0x8E` | `WatchFailed` | none                                             |
//! | `0xFF` | `Error`       | code (`u16 len` + UTF-8), message (`u32 len` + UTF-8) |
//!
//! A write status is a `u8`: `0` stored, `1` stale followed by the version
//! held, `2` expired, `3` too large. A delete status is a `u8`: `0` deleted,
//! `1` not found, `2` stale followed by the version held. A slot of `Values`
//! is a `u8`: `0` absent, `1` followed by an entry, `2` deleted followed by
//! the tombstone's version. Stale answers and tombstones carry versions so
//! that a master learns of every newer version it meets (see
//! `distcache_core::version`).
//!
//! Commands (`Execute`, `ApplyChanges`): an optional version is a `u8` (`0`
//! none, `1` followed by a version). A command is its argument vector, each
//! argument a value. Changes are one key's: key, optional base version, and
//! the encoded effects as a value (`distcache_core::keyspace::effect::encoding`).
//! Replies are a value holding `distcache_core::command::reply::codec`'s
//! bytes. An apply status is a `u8`: `0` applied, `1` stale followed by the
//! version held, `2` diverged, `3` too large. `Execute` is refused as stale
//! or too large with `Written`. `Execute` sent as `0x0C` (keys only, for
//! keys with no other replica) is answered with changes whose effects are
//! empty: the master needs the changed keys (its near cache), not what to
//! apply elsewhere.
//!
//! `Execute` with watched keys (EXEC after WATCH) is sent as `0x0E`, with
//! what each key showed when it was watched: a `u8`, `0` absent, `1` live
//! followed by its version, `2` deleted followed by the tombstone's
//! version (`distcache_core::store::Watched`). The auxiliary answers
//! `WatchFailed` when one of them changed since, having run nothing. An
//! auxiliary from before it closes the connection (unknown opcode): its
//! masters must be upgraded after it (docs/deployment.md, "Upgrades").
//!
//! `Adopt` (a master copying a command's result after the map moved while
//! it ran) stores the slot's entry or delete only if the key holds nothing,
//! the slot's own version or one of the versions listed; otherwise it
//! answers `Written` stale with the version held and changes nothing. An
//! auxiliary from before it closes the connection.
//!
//! `NoteExpired` (a handoff's source to each target, before its first
//! copies) names the highest key that expired at the sender and the
//! version it held; the receiver stamps commands above it and stores
//! nothing. An auxiliary from before it closes the connection.
//!
//! A position range (`CountKeys`) is `u64 first, u64 last`, both included
//! (`distcache_core::ring::PositionRange`); the ranges of one request are
//! sorted and disjoint (each starts after the previous one's last), which
//! the decoder checks, so the auxiliary can binary-search them.
//!
//! # Decoding
//!
//! Decoding is total: any byte string yields "need more bytes", one frame, or
//! a [`FrameError`], never a panic. A declared length over
//! [`MAX_FRAME_BYTES`] is refused as soon as its four bytes arrive, and every
//! count is checked against the bytes that remain before anything is
//! allocated for it, so a hostile length cannot make the decoder allocate
//! more than the frame it actually sent. A payload must be consumed exactly:
//! trailing bytes, unknown tags and non-UTF-8 error text are malformed.
//!
//! Keys and values are zero-copy slices of the read buffer. A slice keeps the
//! whole buffer allocation it came from alive, so whatever keeps a value for
//! long should copy it (distcache's store does: it copies every value into
//! the item's own buffer).

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use distcache_core::ring::PositionRange;
use distcache_core::store::Watched;
use distcache_core::{Entry, Lookup, Version};

/// The largest frame accepted (64 MiB): a batch of values at the limit.
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// The most items in one `GetMany`, `SetMany`, `Values` or `WrittenMany`.
///
/// Bounds what a decoder allocates for one frame to about the frame's own
/// size (a `Values` slot takes one byte on the wire but 64 in memory).
pub const MAX_BATCH_ITEMS: usize = 1 << 20;

/// The bytes of the length prefix.
const LEN_BYTES: usize = 4;
/// The smallest length a frame can declare: its id and opcode.
const MIN_FRAME_LEN: usize = 8 + 1;
/// A request's epoch, between its opcode and its payload.
const EPOCH_BYTES: usize = 8;

/// The epoch of a request that was not routed by a cluster map (peers
/// handing keys over, backup and restore, tools, `Hello`, a plain `Ping`):
/// an auxiliary serves it without comparing epochs.
pub const UNFENCED: u64 = 0;
/// A version on the wire.
const VERSION_BYTES: usize = 8 + 4 + 4;
/// A position range on the wire: its first and last positions.
const RANGE_BYTES: usize = 8 + 8;
/// The smallest encoded key: an empty one.
const MIN_KEY_BYTES: usize = 2;
/// The smallest encoded entry: an empty value, expiry and version.
const MIN_ENTRY_BYTES: usize = 4 + 8 + VERSION_BYTES;

/// Well-known [`Response::Error`] codes.
pub mod error_code {
    /// The connection has not presented the cluster secret, or presented a
    /// wrong one.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// The peer sent bytes that are not a frame; the connection is closed.
    pub const BAD_FRAME: &str = "bad_frame";
    /// The answer would not fit in one frame.
    pub const TOO_LARGE: &str = "too_large";
    /// The request is well-formed but not acceptable (e.g. an invalid key).
    pub const BAD_REQUEST: &str = "bad_request";
    /// The auxiliary (re)started and no master has answered its
    /// registration yet: it serves no request routed by a map until then
    /// (a map from before its restart may have led its keys elsewhere).
    pub const NOT_REGISTERED: &str = "not_registered";
}

/// Request opcodes.
mod req_op {
    pub const PING: u8 = 0x01;
    pub const HELLO: u8 = 0x02;
    pub const GET: u8 = 0x03;
    pub const SET: u8 = 0x04;
    pub const DELETE: u8 = 0x05;
    pub const GET_MANY: u8 = 0x06;
    pub const SET_MANY: u8 = 0x07;
    pub const DELETE_MANY: u8 = 0x08;
    pub const EXECUTE: u8 = 0x09;
    pub const APPLY_CHANGES: u8 = 0x0A;
    pub const COUNT_KEYS: u8 = 0x0B;
    /// `Execute` whose answer leaves out the changes' effects.
    pub const EXECUTE_KEYS_ONLY: u8 = 0x0C;
    pub const NOTE_EXPIRED: u8 = 0x0D;
    /// `Execute` with watched keys (EXEC after WATCH).
    pub const EXECUTE_WATCHED: u8 = 0x0E;
    pub const ADOPT: u8 = 0x0F;
    /// Every request opcode: they are numbered without gaps, and a new one
    /// extends this range.
    pub const ALL: std::ops::RangeInclusive<u8> = PING..=ADOPT;
}

/// Response opcodes.
mod resp_op {
    pub const PONG: u8 = 0x81;
    pub const OK: u8 = 0x82;
    pub const VALUE: u8 = 0x83;
    pub const NOT_FOUND: u8 = 0x84;
    pub const WRITTEN: u8 = 0x85;
    pub const DELETED: u8 = 0x86;
    pub const VALUES: u8 = 0x87;
    pub const WRITTEN_MANY: u8 = 0x88;
    pub const TOMBSTONE: u8 = 0x89;
    pub const STALE_EPOCH: u8 = 0x8A;
    pub const EXECUTED: u8 = 0x8B;
    pub const APPLIED: u8 = 0x8C;
    pub const COUNTED: u8 = 0x8D;
    pub const WATCH_FAILED: u8 = 0x8E;
    pub const ERROR: u8 = 0xFF;
}

/// One entry carried with its key, for batch writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyedEntry {
    /// The key's bytes (valid UTF-8, checked by the master).
    pub key: Bytes,
    /// Value, expiry and version.
    pub entry: Entry,
}

/// The changes a command made to one key, as shipped to its replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShippedChanges {
    /// The key.
    pub key: Bytes,
    /// The version the leader held before (`None`: no live entry).
    pub base: Option<Version>,
    /// The effects, encoded.
    pub ops: Bytes,
}

/// What applying one key's changes did (the slots of [`Response::Applied`]).
pub use distcache_core::store::ApplyOutcome as ApplyStatus;

/// What a master (or a peer auxiliary) asks of an auxiliary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Liveness check; answered with [`Response::Pong`]. Sent at an epoch
    /// above [`UNFENCED`], it announces that epoch: the auxiliary raises the
    /// highest epoch it has seen to it (never lowers it).
    Ping,
    /// Presents the cluster secret; answered with `Ok` or an error.
    Hello {
        /// The cluster secret (empty when none is configured).
        secret: Bytes,
    },
    /// Read one key.
    Get {
        /// The key.
        key: Bytes,
    },
    /// Write one key at a version.
    Set {
        /// The key.
        key: Bytes,
        /// Value, expiry and version.
        entry: Entry,
    },
    /// Delete one key at a version.
    Delete {
        /// The key.
        key: Bytes,
        /// The delete's version.
        version: Version,
    },
    /// Read many keys.
    GetMany {
        /// The keys.
        keys: Vec<Bytes>,
    },
    /// Write many keys, each at its own version.
    SetMany {
        /// The entries.
        entries: Vec<KeyedEntry>,
    },
    /// Delete many keys, each at its own version (deletes that follow keys
    /// when they move); answered with `Ok`.
    DeleteMany {
        /// The keys and their delete versions.
        keys: Vec<(Bytes, Version)>,
    },
    /// Run commands (one, or a transaction's) atomically at their keys'
    /// leader; answered with `Executed`, or `Written` stale / too large.
    Execute {
        /// The version the changes are stamped with; `None` for reads.
        version: Option<Version>,
        /// The largest value (in stored bytes) the commands may leave.
        max_value_bytes: u64,
        /// The argument vectors: shared, so that a master keeps them
        /// without a copy for a second attempt (a newer map, the next
        /// replica for a read).
        commands: Arc<[Vec<Bytes>]>,
        /// Whether the answer's changes carry their effects, encoded for
        /// the keys' other replicas to apply. Without (a write whose keys
        /// have no other replica), each change names its key and base
        /// version only, which spares encoding, sending and decoding a copy
        /// of every value written.
        ship_effects: bool,
        /// EXEC after WATCH: keys and what each showed when watched. If
        /// any shows something else now, nothing runs and the answer is
        /// `WatchFailed`. Empty for any other command.
        watched: Vec<(Bytes, Watched)>,
    },
    /// Apply a leader's changes at a version; answered with `Applied`.
    ApplyChanges {
        /// The version the leader stamped them with.
        version: Version,
        /// The changes, per key.
        changes: Vec<ShippedChanges>,
    },
    /// Count the live keys (unexpired, not deleted) whose position is in
    /// one of `ranges`, copying none (the cluster's DBSIZE, where each
    /// auxiliary counts the keys it leads); answered with `Counted`.
    CountKeys {
        /// Sorted and disjoint.
        ranges: Vec<PositionRange>,
    },
    /// Store `copy` of `key` (an entry, or a delete at its version) only
    /// over a history it continues: the key holds nothing, `copy`'s own
    /// version, or one of `over` (`distcache_core::store::Store::adopt`).
    /// Answered with `Written`: `Stored` (or the outcome a `Set` would
    /// have, for a delete `Deleted`), or `Stale` with the version held when
    /// the key holds another one, having changed nothing.
    Adopt {
        /// The key.
        key: Bytes,
        /// The copy: [`Lookup::Live`] or [`Lookup::Deleted`], never
        /// `Absent`.
        copy: Lookup,
        /// The versions the copy may replace.
        over: Vec<Version>,
    },
    /// `key` held `version` until it expired at the sender: commands the
    /// receiver leads are stamped above it from now on (the expired floor
    /// a handoff carries, see docs/replication.md); stores nothing and
    /// deletes nothing. Answered with `Ok`.
    NoteExpired {
        /// The key that expired.
        key: Bytes,
        /// The version it held.
        version: Version,
    },
}

impl Request {
    /// A short, stable name for logs and metrics (`"get"`, `"set_many"`...).
    pub fn name(&self) -> &'static str {
        match self {
            Request::Ping => "ping",
            Request::Hello { .. } => "hello",
            Request::Get { .. } => "get",
            Request::Set { .. } => "set",
            Request::Delete { .. } => "delete",
            Request::GetMany { .. } => "get_many",
            Request::SetMany { .. } => "set_many",
            Request::DeleteMany { .. } => "delete_many",
            Request::Execute { .. } => "execute",
            Request::ApplyChanges { .. } => "apply_changes",
            Request::CountKeys { .. } => "count_keys",
            Request::NoteExpired { .. } => "note_expired",
            Request::Adopt { .. } => "adopt",
        }
    }
}

/// A decoded request frame: the request with its id and epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestFrame {
    /// The request id; the answer echoes it.
    pub id: u64,
    /// The epoch of the cluster map the sender routed by; [`UNFENCED`] when
    /// it routed by none.
    pub epoch: u64,
    /// The request.
    pub request: Request,
}

/// Outcome of one write: the answer to `Set` ([`Response::Written`]) and each
/// slot of the answer to `SetMany` ([`Response::WrittenMany`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteStatus {
    /// Applied.
    Stored,
    /// A version at least as high, `held`, was already there; nothing
    /// changed.
    Stale {
        /// The version the auxiliary holds for the key (value or tombstone).
        held: Version,
    },
    /// Already expired; not stored (it acted as a delete at its version).
    Expired,
    /// Too large for the store.
    TooLarge,
}

impl WriteStatus {
    fn wire_size(&self) -> usize {
        match self {
            WriteStatus::Stale { .. } => 1 + VERSION_BYTES,
            _ => 1,
        }
    }

    fn put(&self, buf: &mut BytesMut) {
        match self {
            WriteStatus::Stored => buf.put_u8(0),
            WriteStatus::Stale { held } => {
                buf.put_u8(1);
                put_version(held, buf);
            }
            WriteStatus::Expired => buf.put_u8(2),
            WriteStatus::TooLarge => buf.put_u8(3),
        }
    }

    fn read(r: &mut Reader) -> Result<WriteStatus, FrameError> {
        match r.u8()? {
            0 => Ok(WriteStatus::Stored),
            1 => Ok(WriteStatus::Stale { held: r.version()? }),
            2 => Ok(WriteStatus::Expired),
            3 => Ok(WriteStatus::TooLarge),
            _ => Err(FrameError::Malformed("unknown write status")),
        }
    }
}

/// Outcome of one delete: the answer to `Delete` ([`Response::Deleted`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteStatus {
    /// A live entry was removed; a tombstone holds the delete's version.
    Deleted,
    /// No live entry was held; a tombstone holds the delete's version (or a
    /// higher one it already had).
    NotFound,
    /// A live entry with a version at least as high, `held`, is there;
    /// nothing changed.
    Stale {
        /// The live entry's version.
        held: Version,
    },
}

impl DeleteStatus {
    fn wire_size(&self) -> usize {
        match self {
            DeleteStatus::Stale { .. } => 1 + VERSION_BYTES,
            _ => 1,
        }
    }

    fn put(&self, buf: &mut BytesMut) {
        match self {
            DeleteStatus::Deleted => buf.put_u8(0),
            DeleteStatus::NotFound => buf.put_u8(1),
            DeleteStatus::Stale { held } => {
                buf.put_u8(2);
                put_version(held, buf);
            }
        }
    }

    fn read(r: &mut Reader) -> Result<DeleteStatus, FrameError> {
        match r.u8()? {
            0 => Ok(DeleteStatus::Deleted),
            1 => Ok(DeleteStatus::NotFound),
            2 => Ok(DeleteStatus::Stale { held: r.version()? }),
            _ => Err(FrameError::Malformed("unknown delete status")),
        }
    }
}

/// An auxiliary's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// Answer to `Ping`.
    Pong,
    /// Generic success (e.g. `Hello`).
    Ok,
    /// A found value.
    Value(Entry),
    /// The key is not held, and no delete of it is remembered.
    NotFound,
    /// The key is not held: it was deleted at this version (a tombstone
    /// within its grace).
    Tombstone(Version),
    /// Answer to `Set`.
    Written(WriteStatus),
    /// Answer to `Delete`.
    Deleted(DeleteStatus),
    /// Answer to `GetMany`: one slot per requested key, in order.
    Values(Vec<Lookup>),
    /// Answer to `SetMany`: one status per entry, in order.
    WrittenMany(Vec<WriteStatus>),
    /// Answer to `Execute`: the version the changes were written at, the
    /// replies, encoded, and the changes made.
    Executed {
        /// The version the leader wrote the changes at (`None` for reads):
        /// the one asked for, or the first above what the keys held.
        version: Option<Version>,
        /// The replies, in `distcache_core::command::reply::codec`'s form.
        replies: Bytes,
        /// The changes, per key, for the other replicas.
        changes: Vec<ShippedChanges>,
    },
    /// Answer to `ApplyChanges`: one status per key, in order.
    Applied(Vec<ApplyStatus>),
    /// Answer to `CountKeys`.
    Counted {
        /// The live keys in the ranges.
        keys: u64,
    },
    /// Answer to `Execute` with watched keys when one of them changed
    /// since it was watched: nothing ran, nothing changed.
    WatchFailed,
    /// Refusal of a data request routed by an older cluster map than one
    /// the auxiliary has already seen; nothing was read or changed. The
    /// sender should catch up to `current` and route again.
    StaleEpoch {
        /// The newest epoch the auxiliary has seen.
        current: u64,
    },
    /// The request failed.
    Error {
        /// Machine-readable code, e.g. `unauthorized`, `bad_request` (see
        /// [`error_code`]).
        code: String,
        /// For people.
        message: String,
    },
}

impl Response {
    /// A [`Response::Error`] with `code` (see [`error_code`]) and `message`.
    pub fn error(code: impl Into<String>, message: impl Into<String>) -> Response {
        Response::Error {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// Why bytes did not decode as a frame (or a value could not be framed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame declares a length over [`MAX_FRAME_BYTES`].
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Declared length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Unknown opcode.
    #[error("unknown opcode {0:#04x}")]
    UnknownOpcode(u8),
    /// The payload is shorter or longer than its fields say, or malformed.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/// Appends one request frame with id `id`, routed at `epoch`, to `buf`.
///
/// # Panics
///
/// If the request cannot be framed (see [`try_encode_request`]). Keys and
/// values a master accepted always can; code that frames unchecked input
/// calls [`try_encode_request`].
pub fn encode_request(id: u64, epoch: u64, req: &Request, buf: &mut BytesMut) {
    if let Err(e) = try_encode_request(id, epoch, req, buf) {
        panic!("request cannot be framed: {e}");
    }
}

/// Appends one response frame with id `id` to `buf`.
///
/// # Panics
///
/// If the response cannot be framed (see [`try_encode_response`]).
pub fn encode_response(id: u64, resp: &Response, buf: &mut BytesMut) {
    if let Err(e) = try_encode_response(id, resp, buf) {
        panic!("response cannot be framed: {e}");
    }
}

/// Appends one request frame with id `id`, routed at `epoch` (see the
/// module docs), to `buf`, or leaves `buf` untouched and says why the request
/// does not fit: a key over 65535 bytes, a batch over [`MAX_BATCH_ITEMS`], or
/// a frame over [`MAX_FRAME_BYTES`].
pub fn try_encode_request(
    id: u64,
    epoch: u64,
    req: &Request,
    buf: &mut BytesMut,
) -> Result<(), FrameError> {
    // Measure first, so that nothing is written unless it all fits.
    let body = match req {
        Request::Ping => 0,
        Request::Hello { secret } => value_size(secret)?,
        Request::Get { key } => key_size(key)?,
        Request::Set { key, entry } => key_size(key)?.saturating_add(entry_size(entry)?),
        Request::Delete { key, .. } | Request::NoteExpired { key, .. } => {
            key_size(key)?.saturating_add(VERSION_BYTES)
        }
        Request::GetMany { keys } => {
            check_count(keys.len())?;
            keys.iter()
                .try_fold(4usize, |n, k| Ok(n.saturating_add(key_size(k)?)))?
        }
        Request::SetMany { entries } => {
            check_count(entries.len())?;
            entries.iter().try_fold(4usize, |n, e| {
                Ok(n.saturating_add(key_size(&e.key)?)
                    .saturating_add(entry_size(&e.entry)?))
            })?
        }
        Request::DeleteMany { keys } => {
            check_count(keys.len())?;
            keys.iter().try_fold(4usize, |n, (k, _)| {
                Ok(n.saturating_add(key_size(k)?).saturating_add(VERSION_BYTES))
            })?
        }
        Request::Execute {
            version,
            commands,
            watched,
            ..
        } => {
            check_count(commands.len())?;
            let body = commands.iter().try_fold(
                opt_version_size(version).saturating_add(8 + 4),
                |n, args| {
                    check_count(args.len())?;
                    args.iter().try_fold(n.saturating_add(4), |n, a| {
                        Ok(n.saturating_add(value_size(a)?))
                    })
                },
            )?;
            if watched.is_empty() {
                body
            } else {
                check_count(watched.len())?;
                watched
                    .iter()
                    .try_fold(body.saturating_add(1 + 4), |n, (k, w)| {
                        Ok(n.saturating_add(key_size(k)?)
                            .saturating_add(watched_size(w)))
                    })?
            }
        }
        Request::ApplyChanges { changes, .. } => {
            check_count(changes.len())?;
            changes.iter().try_fold(VERSION_BYTES + 4, |n, c| {
                Ok(n.saturating_add(changes_size(c)?))
            })?
        }
        Request::Adopt { key, copy, over } => {
            check_count(over.len())?;
            if matches!(copy, Lookup::Absent) {
                return Err(FrameError::Malformed("nothing to adopt"));
            }
            key_size(key)?
                .saturating_add(slot_size(copy)?)
                .saturating_add(4 + over.len().saturating_mul(VERSION_BYTES))
        }
        Request::CountKeys { ranges } => {
            check_count(ranges.len())?;
            if !ranges_in_order(ranges) {
                return Err(FrameError::Malformed(
                    "position ranges not sorted and disjoint",
                ));
            }
            ranges.len().saturating_mul(RANGE_BYTES).saturating_add(4)
        }
    };
    let opcode = match req {
        Request::Ping => req_op::PING,
        Request::Hello { .. } => req_op::HELLO,
        Request::Get { .. } => req_op::GET,
        Request::Set { .. } => req_op::SET,
        Request::Delete { .. } => req_op::DELETE,
        Request::GetMany { .. } => req_op::GET_MANY,
        Request::SetMany { .. } => req_op::SET_MANY,
        Request::DeleteMany { .. } => req_op::DELETE_MANY,
        Request::Execute { watched, .. } if !watched.is_empty() => req_op::EXECUTE_WATCHED,
        Request::Execute {
            ship_effects: true, ..
        } => req_op::EXECUTE,
        Request::Execute {
            ship_effects: false,
            ..
        } => req_op::EXECUTE_KEYS_ONLY,
        Request::ApplyChanges { .. } => req_op::APPLY_CHANGES,
        Request::CountKeys { .. } => req_op::COUNT_KEYS,
        Request::NoteExpired { .. } => req_op::NOTE_EXPIRED,
        Request::Adopt { .. } => req_op::ADOPT,
    };
    let payload = EPOCH_BYTES.saturating_add(body);
    let start = put_header(id, opcode, payload, buf)?;
    buf.put_u64_le(epoch);
    match req {
        Request::Ping => {}
        Request::Hello { secret } => put_value(secret, buf),
        Request::Get { key } => put_key(key, buf),
        Request::Set { key, entry } => {
            put_key(key, buf);
            put_entry(entry, buf);
        }
        Request::Delete { key, version } | Request::NoteExpired { key, version } => {
            put_key(key, buf);
            put_version(version, buf);
        }
        Request::Adopt { key, copy, over } => {
            put_key(key, buf);
            put_slot(copy, buf);
            put_count(over.len(), buf);
            for version in over {
                put_version(version, buf);
            }
        }
        Request::GetMany { keys } => {
            put_count(keys.len(), buf);
            for key in keys {
                put_key(key, buf);
            }
        }
        Request::SetMany { entries } => {
            put_count(entries.len(), buf);
            for e in entries {
                put_key(&e.key, buf);
                put_entry(&e.entry, buf);
            }
        }
        Request::DeleteMany { keys } => {
            put_count(keys.len(), buf);
            for (key, version) in keys {
                put_key(key, buf);
                put_version(version, buf);
            }
        }
        Request::Execute {
            version,
            max_value_bytes,
            commands,
            ship_effects,
            watched,
        } => {
            if !watched.is_empty() {
                buf.put_u8(u8::from(*ship_effects));
            }
            put_opt_version(version, buf);
            buf.put_u64_le(*max_value_bytes);
            put_count(commands.len(), buf);
            for args in commands.iter() {
                put_count(args.len(), buf);
                for arg in args {
                    put_value(arg, buf);
                }
            }
            if !watched.is_empty() {
                put_count(watched.len(), buf);
                for (key, seen) in watched {
                    put_key(key, buf);
                    put_watched(seen, buf);
                }
            }
        }
        Request::ApplyChanges { version, changes } => {
            put_version(version, buf);
            put_count(changes.len(), buf);
            for c in changes {
                put_changes(c, buf);
            }
        }
        Request::CountKeys { ranges } => {
            put_count(ranges.len(), buf);
            for range in ranges {
                buf.put_u64_le(range.first);
                buf.put_u64_le(range.last);
            }
        }
    }
    debug_assert_eq!(buf.len() - start, LEN_BYTES + MIN_FRAME_LEN + payload);
    Ok(())
}

/// Appends one response frame with id `id` to `buf`, or leaves `buf`
/// untouched and says why the response does not fit (see
/// [`try_encode_request`]; an error code is at most 65535 bytes).
pub fn try_encode_response(id: u64, resp: &Response, buf: &mut BytesMut) -> Result<(), FrameError> {
    let payload = match resp {
        Response::Pong | Response::Ok | Response::NotFound | Response::WatchFailed => 0,
        Response::Value(entry) => entry_size(entry)?,
        Response::Tombstone(_) => VERSION_BYTES,
        Response::StaleEpoch { .. } => EPOCH_BYTES,
        Response::Written(status) => status.wire_size(),
        Response::Deleted(status) => status.wire_size(),
        Response::Values(slots) => {
            check_count(slots.len())?;
            slots
                .iter()
                .try_fold(4usize, |n, slot| Ok(n.saturating_add(slot_size(slot)?)))?
        }
        Response::WrittenMany(statuses) => {
            check_count(statuses.len())?;
            statuses
                .iter()
                .fold(4usize, |n, status| n.saturating_add(status.wire_size()))
        }
        Response::Executed {
            version,
            replies,
            changes,
        } => {
            check_count(changes.len())?;
            changes.iter().try_fold(
                value_size(replies)?.saturating_add(4 + opt_version_size(version)),
                |n, c| Ok(n.saturating_add(changes_size(c)?)),
            )?
        }
        Response::Applied(statuses) => {
            check_count(statuses.len())?;
            statuses.iter().fold(4usize, |n, status| {
                n.saturating_add(apply_status_size(status))
            })
        }
        Response::Counted { .. } => 8,
        Response::Error { code, message } => {
            if code.len() > usize::from(u16::MAX) {
                return Err(FrameError::Malformed("error code longer than 65535 bytes"));
            }
            (2 + code.len()).saturating_add(value_size(message.as_bytes())?)
        }
    };
    let opcode = match resp {
        Response::Pong => resp_op::PONG,
        Response::Ok => resp_op::OK,
        Response::Value(_) => resp_op::VALUE,
        Response::NotFound => resp_op::NOT_FOUND,
        Response::Tombstone(_) => resp_op::TOMBSTONE,
        Response::StaleEpoch { .. } => resp_op::STALE_EPOCH,
        Response::Written(_) => resp_op::WRITTEN,
        Response::Deleted { .. } => resp_op::DELETED,
        Response::Values(_) => resp_op::VALUES,
        Response::WrittenMany(_) => resp_op::WRITTEN_MANY,
        Response::Executed { .. } => resp_op::EXECUTED,
        Response::Applied(_) => resp_op::APPLIED,
        Response::Counted { .. } => resp_op::COUNTED,
        Response::WatchFailed => resp_op::WATCH_FAILED,
        Response::Error { .. } => resp_op::ERROR,
    };
    let start = put_header(id, opcode, payload, buf)?;
    match resp {
        Response::Pong | Response::Ok | Response::NotFound | Response::WatchFailed => {}
        Response::Value(entry) => put_entry(entry, buf),
        Response::Tombstone(version) => put_version(version, buf),
        Response::StaleEpoch { current } => buf.put_u64_le(*current),
        Response::Written(status) => status.put(buf),
        Response::Deleted(status) => status.put(buf),
        Response::Values(slots) => {
            put_count(slots.len(), buf);
            for slot in slots {
                put_slot(slot, buf);
            }
        }
        Response::WrittenMany(statuses) => {
            put_count(statuses.len(), buf);
            for status in statuses {
                status.put(buf);
            }
        }
        Response::Executed {
            version,
            replies,
            changes,
        } => {
            put_opt_version(version, buf);
            put_value(replies, buf);
            put_count(changes.len(), buf);
            for c in changes {
                put_changes(c, buf);
            }
        }
        Response::Applied(statuses) => {
            put_count(statuses.len(), buf);
            for status in statuses {
                put_apply_status(status, buf);
            }
        }
        Response::Counted { keys } => buf.put_u64_le(*keys),
        Response::Error { code, message } => {
            // Length checked above.
            buf.put_u16_le(code.len() as u16);
            buf.put_slice(code.as_bytes());
            put_value(message.as_bytes(), buf);
        }
    }
    debug_assert_eq!(buf.len() - start, LEN_BYTES + MIN_FRAME_LEN + payload);
    Ok(())
}

fn key_size(key: &[u8]) -> Result<usize, FrameError> {
    if key.len() > usize::from(u16::MAX) {
        return Err(FrameError::Malformed("key longer than 65535 bytes"));
    }
    Ok(2 + key.len())
}

fn value_size(value: &[u8]) -> Result<usize, FrameError> {
    // Anything this long is over MAX_FRAME_BYTES too, but the width check
    // keeps the `as u32` below honest on its own.
    if u32::try_from(value.len()).is_err() {
        return Err(FrameError::TooLarge {
            len: value.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    Ok(4usize.saturating_add(value.len()))
}

/// A value slot's size: its tag and what follows.
fn slot_size(slot: &Lookup) -> Result<usize, FrameError> {
    Ok(match slot {
        Lookup::Absent => 1,
        Lookup::Live(entry) => entry_size(entry)?.saturating_add(1),
        Lookup::Deleted(_) => 1 + VERSION_BYTES,
    })
}

fn entry_size(entry: &Entry) -> Result<usize, FrameError> {
    Ok(value_size(&entry.value)?.saturating_add(8 + VERSION_BYTES))
}

fn opt_version_size(version: &Option<Version>) -> usize {
    1 + if version.is_some() { VERSION_BYTES } else { 0 }
}

fn changes_size(c: &ShippedChanges) -> Result<usize, FrameError> {
    Ok(key_size(&c.key)?
        .saturating_add(opt_version_size(&c.base))
        .saturating_add(value_size(&c.ops)?))
}

fn apply_status_size(status: &ApplyStatus) -> usize {
    match status {
        ApplyStatus::Stale { .. } => 1 + VERSION_BYTES,
        _ => 1,
    }
}

fn watched_size(seen: &Watched) -> usize {
    match seen {
        Watched::Absent => 1,
        Watched::Live(_) | Watched::Deleted(_) => 1 + VERSION_BYTES,
    }
}

fn put_watched(seen: &Watched, buf: &mut BytesMut) {
    match seen {
        Watched::Absent => buf.put_u8(0),
        Watched::Live(version) => {
            buf.put_u8(1);
            put_version(version, buf);
        }
        Watched::Deleted(version) => {
            buf.put_u8(2);
            put_version(version, buf);
        }
    }
}

fn put_opt_version(version: &Option<Version>, buf: &mut BytesMut) {
    match version {
        None => buf.put_u8(0),
        Some(v) => {
            buf.put_u8(1);
            put_version(v, buf);
        }
    }
}

fn put_changes(c: &ShippedChanges, buf: &mut BytesMut) {
    put_key(&c.key, buf);
    put_opt_version(&c.base, buf);
    put_value(&c.ops, buf);
}

fn put_apply_status(status: &ApplyStatus, buf: &mut BytesMut) {
    match status {
        ApplyStatus::Applied => buf.put_u8(0),
        ApplyStatus::Stale { held } => {
            buf.put_u8(1);
            put_version(held, buf);
        }
        ApplyStatus::Diverged => buf.put_u8(2),
        ApplyStatus::TooLarge => buf.put_u8(3),
    }
}

fn check_count(count: usize) -> Result<(), FrameError> {
    if count > MAX_BATCH_ITEMS {
        return Err(FrameError::Malformed(
            "batch of more than MAX_BATCH_ITEMS items",
        ));
    }
    Ok(())
}

/// Writes the length prefix, id and opcode after checking the frame's size;
/// returns where the frame starts in `buf`.
fn put_header(
    id: u64,
    opcode: u8,
    payload: usize,
    buf: &mut BytesMut,
) -> Result<usize, FrameError> {
    let len = MIN_FRAME_LEN.saturating_add(payload);
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_BYTES,
        });
    }
    let start = buf.len();
    buf.reserve(LEN_BYTES + len);
    // len <= MAX_FRAME_BYTES < u32::MAX
    buf.put_u32_le(len as u32);
    buf.put_u64_le(id);
    buf.put_u8(opcode);
    Ok(start)
}

fn put_key(key: &[u8], buf: &mut BytesMut) {
    // Width checked by key_size before anything was written.
    buf.put_u16_le(key.len() as u16);
    buf.put_slice(key);
}

fn put_value(value: &[u8], buf: &mut BytesMut) {
    // Width checked by value_size before anything was written.
    buf.put_u32_le(value.len() as u32);
    buf.put_slice(value);
}

fn put_count(count: usize, buf: &mut BytesMut) {
    // count <= MAX_BATCH_ITEMS, checked before anything was written.
    buf.put_u32_le(count as u32);
}

fn put_version(version: &Version, buf: &mut BytesMut) {
    buf.put_u64_le(version.millis);
    buf.put_u32_le(version.counter);
    buf.put_u32_le(version.origin);
}

fn put_slot(slot: &Lookup, buf: &mut BytesMut) {
    match slot {
        Lookup::Absent => buf.put_u8(0),
        Lookup::Live(entry) => {
            buf.put_u8(1);
            put_entry(entry, buf);
        }
        Lookup::Deleted(version) => {
            buf.put_u8(2);
            put_version(version, buf);
        }
    }
}

fn put_entry(entry: &Entry, buf: &mut BytesMut) {
    put_value(&entry.value, buf);
    // 0 means "never"; an expiry at the epoch itself is sent as 1 ms after
    // it, which is just as long past, so it cannot turn into "never".
    buf.put_u64_le(match entry.expires_at_ms {
        None => 0,
        Some(at) => at.max(1),
    });
    put_version(&entry.version, buf);
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/// Splits one complete request frame off the front of `buf` if one is there:
/// `Ok(None)` = need more bytes. Values are zero-copy slices of `buf`.
///
/// On `Ok(None)` and on [`FrameError::TooLarge`] `buf` is left as it was; on
/// other errors the bad frame has been taken off. Either way a connection
/// that sees an error should be closed.
pub fn decode_request(buf: &mut BytesMut) -> Result<Option<RequestFrame>, FrameError> {
    let Some((id, opcode, mut r)) = split_frame(buf)? else {
        return Ok(None);
    };
    // An unknown opcode is reported as such even when the epoch is missing.
    if !req_op::ALL.contains(&opcode) {
        return Err(FrameError::UnknownOpcode(opcode));
    }
    let epoch = r.u64()?;
    let request = match opcode {
        req_op::PING => Request::Ping,
        req_op::HELLO => Request::Hello { secret: r.value()? },
        req_op::GET => Request::Get { key: r.key()? },
        req_op::SET => Request::Set {
            key: r.key()?,
            entry: r.entry()?,
        },
        req_op::DELETE => Request::Delete {
            key: r.key()?,
            version: r.version()?,
        },
        req_op::NOTE_EXPIRED => Request::NoteExpired {
            key: r.key()?,
            version: r.version()?,
        },
        req_op::ADOPT => {
            let key = r.key()?;
            let copy = match r.slot()? {
                Lookup::Absent => return Err(FrameError::Malformed("nothing to adopt")),
                copy => copy,
            };
            let count = r.count(VERSION_BYTES)?;
            let mut over = Vec::with_capacity(count);
            for _ in 0..count {
                over.push(r.version()?);
            }
            Request::Adopt { key, copy, over }
        }
        req_op::GET_MANY => {
            let count = r.count(MIN_KEY_BYTES)?;
            let mut keys = Vec::with_capacity(count);
            for _ in 0..count {
                keys.push(r.key()?);
            }
            Request::GetMany { keys }
        }
        req_op::SET_MANY => {
            let count = r.count(MIN_KEY_BYTES + MIN_ENTRY_BYTES)?;
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                entries.push(KeyedEntry {
                    key: r.key()?,
                    entry: r.entry()?,
                });
            }
            Request::SetMany { entries }
        }
        req_op::DELETE_MANY => {
            let count = r.count(MIN_KEY_BYTES + VERSION_BYTES)?;
            let mut keys = Vec::with_capacity(count);
            for _ in 0..count {
                keys.push((r.key()?, r.version()?));
            }
            Request::DeleteMany { keys }
        }
        req_op::EXECUTE | req_op::EXECUTE_KEYS_ONLY | req_op::EXECUTE_WATCHED => {
            let ship_effects = match opcode {
                req_op::EXECUTE_WATCHED => match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(FrameError::Malformed("unknown effects flag")),
                },
                _ => opcode == req_op::EXECUTE,
            };
            let version = r.opt_version()?;
            let max_value_bytes = r.u64()?;
            let count = r.count(4)?;
            let mut commands = Vec::with_capacity(count);
            for _ in 0..count {
                let argc = r.count(4)?;
                let mut args = Vec::with_capacity(argc);
                for _ in 0..argc {
                    args.push(r.value()?);
                }
                commands.push(args);
            }
            let mut watched = Vec::new();
            if opcode == req_op::EXECUTE_WATCHED {
                let count = r.count(MIN_KEY_BYTES + 1)?;
                if count == 0 {
                    // Sent as 0x09 or 0x0C: one encoding per request.
                    return Err(FrameError::Malformed(
                        "a watched execute without watched keys",
                    ));
                }
                watched.reserve(count);
                for _ in 0..count {
                    let key = r.key()?;
                    let seen = match r.u8()? {
                        0 => Watched::Absent,
                        1 => Watched::Live(r.version()?),
                        2 => Watched::Deleted(r.version()?),
                        _ => return Err(FrameError::Malformed("unknown watched tag")),
                    };
                    watched.push((key, seen));
                }
            }
            Request::Execute {
                version,
                max_value_bytes,
                commands: commands.into(),
                ship_effects,
                watched,
            }
        }
        req_op::APPLY_CHANGES => {
            let version = r.version()?;
            let count = r.count(MIN_KEY_BYTES + 1 + 4)?;
            let mut changes = Vec::with_capacity(count);
            for _ in 0..count {
                changes.push(r.changes()?);
            }
            Request::ApplyChanges { version, changes }
        }
        req_op::COUNT_KEYS => {
            let count = r.count(RANGE_BYTES)?;
            let mut ranges = Vec::with_capacity(count);
            for _ in 0..count {
                ranges.push(PositionRange {
                    first: r.u64()?,
                    last: r.u64()?,
                });
            }
            if !ranges_in_order(&ranges) {
                return Err(FrameError::Malformed(
                    "position ranges not sorted and disjoint",
                ));
            }
            Request::CountKeys { ranges }
        }
        other => return Err(FrameError::UnknownOpcode(other)),
    };
    r.finish()?;
    Ok(Some(RequestFrame { id, epoch, request }))
}

/// Same as [`decode_request`] for responses.
pub fn decode_response(buf: &mut BytesMut) -> Result<Option<(u64, Response)>, FrameError> {
    let Some((id, opcode, mut r)) = split_frame(buf)? else {
        return Ok(None);
    };
    let resp = match opcode {
        resp_op::PONG => Response::Pong,
        resp_op::OK => Response::Ok,
        resp_op::VALUE => Response::Value(r.entry()?),
        resp_op::NOT_FOUND => Response::NotFound,
        resp_op::TOMBSTONE => Response::Tombstone(r.version()?),
        resp_op::STALE_EPOCH => Response::StaleEpoch { current: r.u64()? },
        resp_op::WRITTEN => Response::Written(WriteStatus::read(&mut r)?),
        resp_op::DELETED => Response::Deleted(DeleteStatus::read(&mut r)?),
        resp_op::VALUES => {
            let count = r.count(1)?;
            let mut slots = Vec::with_capacity(count);
            for _ in 0..count {
                slots.push(r.slot()?);
            }
            Response::Values(slots)
        }
        resp_op::WRITTEN_MANY => {
            let count = r.count(1)?;
            let mut statuses = Vec::with_capacity(count);
            for _ in 0..count {
                statuses.push(WriteStatus::read(&mut r)?);
            }
            Response::WrittenMany(statuses)
        }
        resp_op::EXECUTED => {
            let version = r.opt_version()?;
            let replies = r.value()?;
            let count = r.count(MIN_KEY_BYTES + 1 + 4)?;
            let mut changes = Vec::with_capacity(count);
            for _ in 0..count {
                changes.push(r.changes()?);
            }
            Response::Executed {
                version,
                replies,
                changes,
            }
        }
        resp_op::APPLIED => {
            let count = r.count(1)?;
            let mut statuses = Vec::with_capacity(count);
            for _ in 0..count {
                statuses.push(match r.u8()? {
                    0 => ApplyStatus::Applied,
                    1 => ApplyStatus::Stale { held: r.version()? },
                    2 => ApplyStatus::Diverged,
                    3 => ApplyStatus::TooLarge,
                    _ => return Err(FrameError::Malformed("unknown apply status")),
                });
            }
            Response::Applied(statuses)
        }
        resp_op::COUNTED => Response::Counted { keys: r.u64()? },
        resp_op::WATCH_FAILED => Response::WatchFailed,
        resp_op::ERROR => {
            let code_len = usize::from(r.u16()?);
            let code = r.utf8(code_len)?;
            let message_len = r.len32()?;
            let message = r.utf8(message_len)?;
            Response::Error { code, message }
        }
        other => return Err(FrameError::UnknownOpcode(other)),
    };
    r.finish()?;
    Ok(Some((id, resp)))
}

/// True when each range is non-empty and starts after the previous one's
/// last position: what `CountKeys` promises its auxiliary.
fn ranges_in_order(ranges: &[PositionRange]) -> bool {
    ranges.iter().all(|range| range.first <= range.last)
        && ranges.windows(2).all(|pair| pair[0].last < pair[1].first)
}

/// Takes one whole frame off `buf`: its id, opcode and a reader over its
/// payload. `Ok(None)` leaves `buf` untouched.
fn split_frame(buf: &mut BytesMut) -> Result<Option<(u64, u8, Reader)>, FrameError> {
    let Some(prefix) = buf.get(..LEN_BYTES) else {
        return Ok(None);
    };
    let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    // Refuse an oversized frame before waiting for (or buffering) its bytes.
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_BYTES,
        });
    }
    if len < MIN_FRAME_LEN {
        return Err(FrameError::Malformed(
            "frame shorter than its id and opcode",
        ));
    }
    if buf.len() - LEN_BYTES < len {
        return Ok(None);
    }
    let mut frame = buf.split_to(LEN_BYTES + len).freeze();
    frame.advance(LEN_BYTES);
    let id = frame.get_u64_le();
    let opcode = frame.get_u8();
    Ok(Some((id, opcode, Reader { rest: frame })))
}

/// Reads a payload's fields, checking each length against what remains.
struct Reader {
    rest: Bytes,
}

impl Reader {
    fn need(&self, n: usize) -> Result<(), FrameError> {
        if self.rest.len() < n {
            return Err(FrameError::Malformed("payload shorter than its fields"));
        }
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        self.need(1)?;
        Ok(self.rest.get_u8())
    }

    fn u16(&mut self) -> Result<u16, FrameError> {
        self.need(2)?;
        Ok(self.rest.get_u16_le())
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        self.need(4)?;
        Ok(self.rest.get_u32_le())
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        self.need(8)?;
        Ok(self.rest.get_u64_le())
    }

    fn len32(&mut self) -> Result<usize, FrameError> {
        usize::try_from(self.u32()?)
            .map_err(|_| FrameError::Malformed("length beyond the address space"))
    }

    fn bytes(&mut self, n: usize) -> Result<Bytes, FrameError> {
        self.need(n)?;
        Ok(self.rest.split_to(n))
    }

    fn key(&mut self) -> Result<Bytes, FrameError> {
        let n = usize::from(self.u16()?);
        self.bytes(n)
    }

    fn value(&mut self) -> Result<Bytes, FrameError> {
        let n = self.len32()?;
        self.bytes(n)
    }

    fn version(&mut self) -> Result<Version, FrameError> {
        self.need(VERSION_BYTES)?;
        Ok(Version {
            millis: self.rest.get_u64_le(),
            counter: self.rest.get_u32_le(),
            origin: self.rest.get_u32_le(),
        })
    }

    fn opt_version(&mut self) -> Result<Option<Version>, FrameError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.version()?)),
            _ => Err(FrameError::Malformed("unknown optional version tag")),
        }
    }

    fn changes(&mut self) -> Result<ShippedChanges, FrameError> {
        Ok(ShippedChanges {
            key: self.key()?,
            base: self.opt_version()?,
            ops: self.value()?,
        })
    }

    /// A value slot: `0` absent, `1` an entry, `2` a delete's version.
    fn slot(&mut self) -> Result<Lookup, FrameError> {
        Ok(match self.u8()? {
            0 => Lookup::Absent,
            1 => Lookup::Live(self.entry()?),
            2 => Lookup::Deleted(self.version()?),
            _ => return Err(FrameError::Malformed("unknown value slot tag")),
        })
    }

    fn entry(&mut self) -> Result<Entry, FrameError> {
        let value = self.value()?;
        let expires_at_ms = match self.u64()? {
            0 => None,
            at => Some(at),
        };
        let version = self.version()?;
        Ok(Entry {
            value,
            expires_at_ms,
            version,
        })
    }

    /// A batch count, refused unless `count` items of at least
    /// `min_item_bytes` each fit in what remains: callers allocate `count`
    /// slots right after.
    fn count(&mut self, min_item_bytes: usize) -> Result<usize, FrameError> {
        let count = self.len32()?;
        if count > MAX_BATCH_ITEMS {
            return Err(FrameError::Malformed(
                "batch of more than MAX_BATCH_ITEMS items",
            ));
        }
        if count > self.rest.len() / min_item_bytes {
            return Err(FrameError::Malformed(
                "count larger than the payload can hold",
            ));
        }
        Ok(count)
    }

    fn utf8(&mut self, n: usize) -> Result<String, FrameError> {
        let bytes = self.bytes(n)?;
        match std::str::from_utf8(&bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(FrameError::Malformed("error text is not UTF-8")),
        }
    }

    fn finish(self) -> Result<(), FrameError> {
        if !self.rest.is_empty() {
            return Err(FrameError::Malformed("trailing bytes after the payload"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(n: u64) -> Version {
        Version {
            millis: 1_700_000_000_000 + n,
            counter: n as u32,
            origin: 0xdead_beef,
        }
    }

    fn entry(value: &'static [u8], expires_at_ms: Option<u64>) -> Entry {
        Entry {
            value: Bytes::from_static(value),
            expires_at_ms,
            version: version(7),
        }
    }

    fn all_requests() -> Vec<Request> {
        vec![
            Request::Ping,
            Request::Hello {
                secret: Bytes::from_static(b"s3cret"),
            },
            Request::Hello {
                secret: Bytes::new(),
            },
            Request::Get {
                key: Bytes::from_static("clé/😀?x".as_bytes()),
            },
            Request::Get { key: Bytes::new() },
            Request::Set {
                key: Bytes::from_static(b"k"),
                entry: entry(b"{\"a\":1}", None),
            },
            Request::Set {
                key: Bytes::from_static(b"k"),
                entry: entry(b"", Some(u64::MAX)),
            },
            Request::Delete {
                key: Bytes::from_static(b"gone"),
                version: version(3),
            },
            Request::NoteExpired {
                key: Bytes::from_static(b"expired"),
                version: version(4),
            },
            Request::GetMany { keys: vec![] },
            Request::GetMany {
                keys: vec![
                    Bytes::from_static(b"a"),
                    Bytes::new(),
                    Bytes::from_static(b"ccc"),
                ],
            },
            Request::SetMany { entries: vec![] },
            Request::DeleteMany { keys: vec![] },
            Request::DeleteMany {
                keys: vec![
                    (Bytes::from_static(b"gone"), version(9)),
                    (Bytes::from_static(b"\xff"), version(1)),
                ],
            },
            Request::SetMany {
                entries: vec![
                    KeyedEntry {
                        key: Bytes::from_static(b"a"),
                        entry: entry(b"1", Some(1_800_000_000_000)),
                    },
                    KeyedEntry {
                        key: Bytes::from_static(b"b"),
                        entry: entry(b"2", None),
                    },
                ],
            },
            Request::CountKeys { ranges: vec![] },
            Request::CountKeys {
                ranges: vec![
                    PositionRange { first: 0, last: 0 },
                    PositionRange { first: 1, last: 9 },
                    PositionRange {
                        first: u64::MAX,
                        last: u64::MAX,
                    },
                ],
            },
        ]
    }

    fn all_responses() -> Vec<Response> {
        vec![
            Response::Pong,
            Response::Ok,
            Response::Value(entry(b"\"v\"", Some(42))),
            Response::Value(entry(b"null", None)),
            Response::NotFound,
            Response::Written(WriteStatus::Stored),
            Response::Written(WriteStatus::Stale { held: version(7) }),
            Response::Written(WriteStatus::Expired),
            Response::Written(WriteStatus::TooLarge),
            Response::Deleted(DeleteStatus::Deleted),
            Response::Deleted(DeleteStatus::NotFound),
            Response::Deleted(DeleteStatus::Stale { held: version(9) }),
            Response::Tombstone(version(11)),
            Response::StaleEpoch { current: 0 },
            Response::StaleEpoch { current: 5 },
            Response::StaleEpoch { current: u64::MAX },
            Response::Values(vec![]),
            Response::Values(vec![
                Lookup::Absent,
                Lookup::Live(entry(b"x", None)),
                Lookup::Deleted(version(3)),
                Lookup::Live(entry(b"y", Some(9))),
            ]),
            Response::WrittenMany(vec![]),
            Response::WrittenMany(vec![
                WriteStatus::Stored,
                WriteStatus::Stale { held: version(5) },
                WriteStatus::Expired,
                WriteStatus::TooLarge,
            ]),
            Response::Counted { keys: 0 },
            Response::Counted { keys: u64::MAX },
            Response::error("unauthorized", "wrong secret"),
            Response::error("", ""),
            Response::error("bad_request", "clé invalide: 鍵 ✗ 😀"),
        ]
    }

    fn frame_of(id: u64, epoch: u64, request: Request) -> Option<RequestFrame> {
        Some(RequestFrame { id, epoch, request })
    }

    #[test]
    fn every_request_round_trips_at_every_kind_of_epoch() {
        for epoch in [UNFENCED, 1, 7, u64::MAX] {
            for (i, req) in all_requests().into_iter().enumerate() {
                let id = u64::MAX - i as u64;
                let mut buf = BytesMut::new();
                encode_request(id, epoch, &req, &mut buf);
                assert_eq!(decode_request(&mut buf), Ok(frame_of(id, epoch, req)));
                assert!(buf.is_empty());
            }
        }
    }

    #[test]
    fn the_epoch_sits_right_after_the_opcode() {
        let mut buf = BytesMut::new();
        encode_request(3, 0x0102_0304_0506_0708, &Request::Ping, &mut buf);
        assert_eq!(
            &buf[..],
            &[
                17,
                0,
                0,
                0, // length: id, opcode, epoch
                3,
                0,
                0,
                0,
                0,
                0,
                0,
                0, // id
                req_op::PING,
                8,
                7,
                6,
                5,
                4,
                3,
                2,
                1, // epoch
            ]
        );
        // Responses carry none: a Pong is its id and opcode.
        let mut buf = BytesMut::new();
        encode_response(3, &Response::Pong, &mut buf);
        assert_eq!(buf.len(), LEN_BYTES + MIN_FRAME_LEN);
        let mut buf = BytesMut::new();
        encode_response(3, &Response::StaleEpoch { current: 9 }, &mut buf);
        assert_eq!(
            &buf[LEN_BYTES + MIN_FRAME_LEN - 1..],
            &[0x8A, 9, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn count_keys_and_counted_byte_for_byte() {
        let ranges = vec![
            PositionRange { first: 1, last: 2 },
            PositionRange {
                first: 0x0300,
                last: u64::MAX,
            },
        ];
        let mut buf = BytesMut::new();
        encode_request(3, 4, &Request::CountKeys { ranges }, &mut buf);
        let mut expected = vec![8 + 1 + 8 + 4 + 2 * 16, 0, 0, 0];
        expected.extend_from_slice(&3u64.to_le_bytes());
        expected.push(0x0B);
        expected.extend_from_slice(&4u64.to_le_bytes());
        expected.extend_from_slice(&[2, 0, 0, 0]);
        expected.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[0, 3, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[0xff; 8]);
        assert_eq!(&buf[..], &expected[..]);

        let mut buf = BytesMut::new();
        encode_response(3, &Response::Counted { keys: 0x0102 }, &mut buf);
        assert_eq!(
            &buf[LEN_BYTES + MIN_FRAME_LEN - 1..],
            &[0x8D, 2, 1, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn execute_keys_only_differs_from_execute_in_its_opcode_alone() {
        let execute = |ship_effects| Request::Execute {
            version: None,
            max_value_bytes: 7,
            commands: vec![vec![Bytes::from_static(b"GET"), Bytes::from_static(b"k")]].into(),
            ship_effects,
            watched: Vec::new(),
        };
        let mut expected = vec![8 + 1 + 8 + 1 + 8 + 4 + 4 + (4 + 3) + (4 + 1), 0, 0, 0];
        expected.extend_from_slice(&3u64.to_le_bytes());
        expected.push(0x09);
        expected.extend_from_slice(&4u64.to_le_bytes());
        expected.push(0);
        expected.extend_from_slice(&7u64.to_le_bytes());
        expected.extend_from_slice(&[1, 0, 0, 0, 2, 0, 0, 0]);
        expected.extend_from_slice(&[3, 0, 0, 0, b'G', b'E', b'T', 1, 0, 0, 0, b'k']);
        for (ship_effects, opcode) in [(true, 0x09), (false, 0x0C)] {
            let mut buf = BytesMut::new();
            encode_request(3, 4, &execute(ship_effects), &mut buf);
            expected[LEN_BYTES + 8] = opcode;
            assert_eq!(&buf[..], &expected[..], "ship_effects: {ship_effects}");
            assert_eq!(
                decode_request(&mut buf).unwrap(),
                frame_of(3, 4, execute(ship_effects))
            );
        }
    }

    #[test]
    fn execute_with_watched_keys_is_0x0e_with_the_effects_flag_first_and_the_keys_last() {
        let v = Version {
            millis: 1,
            counter: 2,
            origin: 3,
        };
        let execute = |ship_effects| Request::Execute {
            version: None,
            max_value_bytes: 7,
            commands: vec![vec![Bytes::from_static(b"GET"), Bytes::from_static(b"k")]].into(),
            ship_effects,
            watched: vec![
                (Bytes::from_static(b"a"), Watched::Absent),
                (Bytes::from_static(b"b"), Watched::Live(v)),
                (Bytes::from_static(b"c"), Watched::Deleted(v)),
            ],
        };
        let watched_bytes = 4 + (2 + 1 + 1) + 2 * (2 + 1 + 1 + VERSION_BYTES);
        let payload = 8 + 1 + 1 + 8 + 4 + 4 + (4 + 3) + (4 + 1) + watched_bytes;
        let mut expected = vec![8 + 1 + payload as u8, 0, 0, 0];
        expected.extend_from_slice(&3u64.to_le_bytes());
        expected.push(0x0E);
        expected.extend_from_slice(&4u64.to_le_bytes());
        expected.push(1);
        expected.push(0);
        expected.extend_from_slice(&7u64.to_le_bytes());
        expected.extend_from_slice(&[1, 0, 0, 0, 2, 0, 0, 0]);
        expected.extend_from_slice(&[3, 0, 0, 0, b'G', b'E', b'T', 1, 0, 0, 0, b'k']);
        expected.extend_from_slice(&[3, 0, 0, 0]);
        expected.extend_from_slice(&[1, 0, b'a', 0]);
        let version = [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0];
        expected.extend_from_slice(&[1, 0, b'b', 1]);
        expected.extend_from_slice(&version);
        expected.extend_from_slice(&[1, 0, b'c', 2]);
        expected.extend_from_slice(&version);
        for ship_effects in [true, false] {
            let mut buf = BytesMut::new();
            encode_request(3, 4, &execute(ship_effects), &mut buf);
            expected[LEN_BYTES + 8 + 1 + 8] = u8::from(ship_effects);
            assert_eq!(&buf[..], &expected[..], "ship_effects: {ship_effects}");
            assert_eq!(
                decode_request(&mut buf).unwrap(),
                frame_of(3, 4, execute(ship_effects))
            );
        }
        // One encoding per request: no watched keys is 0x09 or 0x0C.
        let mut empty = expected[..LEN_BYTES + 8 + 1 + 8 + 1 + 1 + 8 + 4 + 4 + 7 + 5].to_vec();
        empty.extend_from_slice(&[0, 0, 0, 0]);
        let len = (empty.len() - LEN_BYTES) as u32;
        empty[..LEN_BYTES].copy_from_slice(&len.to_le_bytes());
        assert!(matches!(
            decode_request(&mut BytesMut::from(&empty[..])),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn watch_failed_is_0x8e_with_no_payload() {
        let mut buf = BytesMut::new();
        encode_response(3, &Response::WatchFailed, &mut buf);
        assert_eq!(&buf[LEN_BYTES + MIN_FRAME_LEN - 1..], &[0x8E]);
        assert_eq!(
            decode_response(&mut buf).unwrap(),
            Some((3, Response::WatchFailed))
        );
    }

    #[test]
    fn count_keys_with_ranges_out_of_order_is_refused_both_ways() {
        let r = |first, last| PositionRange { first, last };
        for ranges in [
            vec![r(5, 4)],
            vec![r(0, 5), r(5, 9)],
            vec![r(6, 9), r(0, 5)],
        ] {
            let request = Request::CountKeys {
                ranges: ranges.clone(),
            };
            let mut buf = BytesMut::new();
            assert!(matches!(
                try_encode_request(1, 1, &request, &mut buf),
                Err(FrameError::Malformed(_))
            ));
            assert!(buf.is_empty());
            // The same bytes framed by hand.
            let mut payload = 1u64.to_le_bytes().to_vec();
            payload.extend_from_slice(&(ranges.len() as u32).to_le_bytes());
            for range in &ranges {
                payload.extend_from_slice(&range.first.to_le_bytes());
                payload.extend_from_slice(&range.last.to_le_bytes());
            }
            let mut frame = BytesMut::new();
            frame.put_u32_le((MIN_FRAME_LEN + payload.len()) as u32);
            frame.put_u64_le(1);
            frame.put_u8(0x0B);
            frame.put_slice(&payload);
            assert!(matches!(
                decode_request(&mut frame),
                Err(FrameError::Malformed(_))
            ));
        }
    }

    #[test]
    fn a_request_without_its_whole_epoch_is_malformed() {
        for epoch_bytes in 0..EPOCH_BYTES {
            let mut buf = BytesMut::new();
            buf.put_u32_le((MIN_FRAME_LEN + epoch_bytes) as u32);
            buf.put_u64_le(1);
            buf.put_u8(req_op::PING);
            buf.put_bytes(0, epoch_bytes);
            assert!(matches!(
                decode_request(&mut buf),
                Err(FrameError::Malformed(_))
            ));
            assert!(buf.is_empty(), "the bad frame is taken off");
        }
    }

    #[test]
    fn every_response_round_trips() {
        for (i, resp) in all_responses().into_iter().enumerate() {
            let id = i as u64;
            let mut buf = BytesMut::new();
            encode_response(id, &resp, &mut buf);
            assert_eq!(decode_response(&mut buf), Ok(Some((id, resp))));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn expiry_at_the_epoch_stays_expired() {
        let mut buf = BytesMut::new();
        encode_response(1, &Response::Value(entry(b"v", Some(0))), &mut buf);
        let Ok(Some((_, Response::Value(e)))) = decode_response(&mut buf) else {
            panic!("did not decode");
        };
        assert_eq!(e.expires_at_ms, Some(1));
    }

    #[test]
    fn byte_by_byte_yields_none_until_complete() {
        let mut whole = BytesMut::new();
        let req = Request::SetMany {
            entries: vec![KeyedEntry {
                key: Bytes::from_static(b"key"),
                entry: entry(b"value", Some(5)),
            }],
        };
        encode_request(9, 4, &req, &mut whole);
        let mut buf = BytesMut::new();
        for (i, byte) in whole.iter().enumerate() {
            buf.put_u8(*byte);
            let got = decode_request(&mut buf);
            if i + 1 < whole.len() {
                assert_eq!(got, Ok(None), "after {} bytes", i + 1);
                assert_eq!(buf.len(), i + 1, "an incomplete frame must stay buffered");
            } else {
                assert_eq!(got, Ok(frame_of(9, 4, req.clone())));
            }
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn two_frames_in_one_buffer_decode_in_order() {
        let mut buf = BytesMut::new();
        encode_response(1, &Response::Pong, &mut buf);
        encode_response(
            2,
            &Response::Values(vec![Lookup::Absent, Lookup::Live(entry(b"v", None))]),
            &mut buf,
        );
        buf.put_slice(&[3, 0]); // the start of a third frame
        assert_eq!(decode_response(&mut buf), Ok(Some((1, Response::Pong))));
        assert!(
            matches!(decode_response(&mut buf), Ok(Some((2, Response::Values(v)))) if v.len() == 2)
        );
        assert_eq!(decode_response(&mut buf), Ok(None));
        assert_eq!(&buf[..], &[3, 0]);
    }

    #[test]
    fn decoded_values_are_slices_of_the_frame() {
        let mut buf = BytesMut::new();
        encode_request(
            1,
            UNFENCED,
            &Request::Set {
                key: Bytes::from_static(b"key"),
                entry: entry(b"value", None),
            },
            &mut buf,
        );
        let range = buf.as_ptr_range();
        let Ok(Some(RequestFrame {
            request: Request::Set { key, entry },
            ..
        })) = decode_request(&mut buf)
        else {
            panic!("did not decode");
        };
        assert!(range.contains(&key.as_ptr()));
        assert!(range.contains(&entry.value.as_ptr()));
    }

    #[test]
    fn frame_of_exactly_the_limit_round_trips_and_one_more_byte_does_not() {
        // Set payload: epoch (8) + key (2) + value (4 + n) + expiry (8) +
        // version (16).
        let n = MAX_FRAME_BYTES - MIN_FRAME_LEN - EPOCH_BYTES - 2 - 4 - 8 - VERSION_BYTES;
        let req = Request::Set {
            key: Bytes::new(),
            entry: Entry {
                value: Bytes::from(vec![0xAB; n]),
                expires_at_ms: None,
                version: version(1),
            },
        };
        let mut buf = BytesMut::new();
        encode_request(5, 6, &req, &mut buf);
        assert_eq!(buf.len(), LEN_BYTES + MAX_FRAME_BYTES);
        assert_eq!(decode_request(&mut buf), Ok(frame_of(5, 6, req)));

        let over = Request::Set {
            key: Bytes::new(),
            entry: Entry {
                value: Bytes::from(vec![0xAB; n + 1]),
                expires_at_ms: None,
                version: version(1),
            },
        };
        let mut buf = BytesMut::from(&b"untouched"[..]);
        assert_eq!(
            try_encode_request(5, 6, &over, &mut buf),
            Err(FrameError::TooLarge {
                len: MAX_FRAME_BYTES + 1,
                max: MAX_FRAME_BYTES
            })
        );
        assert_eq!(&buf[..], b"untouched");
    }

    #[test]
    fn oversized_length_is_refused_before_the_bytes_arrive() {
        let mut buf = BytesMut::new();
        buf.put_u32_le(MAX_FRAME_BYTES as u32 + 1);
        assert_eq!(
            decode_request(&mut buf),
            Err(FrameError::TooLarge {
                len: MAX_FRAME_BYTES + 1,
                max: MAX_FRAME_BYTES
            })
        );
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            decode_response(&mut buf),
            Err(FrameError::TooLarge { .. })
        ));
        // A length at the limit is merely incomplete.
        let mut buf = BytesMut::new();
        buf.put_u32_le(MAX_FRAME_BYTES as u32);
        assert_eq!(decode_response(&mut buf), Ok(None));
    }

    #[test]
    fn malformed_frames_are_errors() {
        fn frame(opcode: u8, payload: &[u8]) -> BytesMut {
            let mut buf = BytesMut::new();
            buf.put_u32_le((MIN_FRAME_LEN + payload.len()) as u32);
            buf.put_u64_le(1);
            buf.put_u8(opcode);
            buf.put_slice(payload);
            buf
        }
        /// A request frame at epoch 5 (the epoch is well-formed).
        fn request(opcode: u8, payload: &[u8]) -> BytesMut {
            let mut with_epoch = 5u64.to_le_bytes().to_vec();
            with_epoch.extend_from_slice(payload);
            frame(opcode, &with_epoch)
        }
        let short = BytesMut::from(&[8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..]);
        assert!(matches!(
            decode_request(&mut short.clone()),
            Err(FrameError::Malformed(_))
        ));
        // Trailing bytes after a Ping, and after a Get's key.
        assert!(matches!(
            decode_request(&mut request(0x01, &[0])),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            decode_request(&mut request(0x03, &[1, 0, b'k', b'!'])),
            Err(FrameError::Malformed(_))
        ));
        // A key longer than the payload.
        assert!(matches!(
            decode_request(&mut request(0x03, &[9, 0, b'k'])),
            Err(FrameError::Malformed(_))
        ));
        // Opcodes of the other direction and unknown ones.
        assert_eq!(
            decode_request(&mut request(0x81, &[])),
            Err(FrameError::UnknownOpcode(0x81))
        );
        assert_eq!(
            decode_response(&mut frame(0x01, &[])),
            Err(FrameError::UnknownOpcode(0x01))
        );
        assert_eq!(
            decode_response(&mut frame(0x00, &[])),
            Err(FrameError::UnknownOpcode(0x00))
        );
        // A stale-epoch answer with a short or an overlong epoch.
        assert!(matches!(
            decode_response(&mut frame(0x8A, &[1, 2, 3])),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            decode_response(&mut frame(0x8A, &[0; 9])),
            Err(FrameError::Malformed(_))
        ));
        // Unknown status, delete flags and slot tags.
        assert!(matches!(
            decode_response(&mut frame(0x85, &[4])),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            decode_response(&mut frame(0x86, &[4])),
            Err(FrameError::Malformed(_))
        ));
        let mut slot = vec![1, 0, 0, 0, 2];
        slot.extend_from_slice(&[0; MIN_ENTRY_BYTES]);
        assert!(matches!(
            decode_response(&mut frame(0x87, &slot)),
            Err(FrameError::Malformed(_))
        ));
        slot[4] = 1;
        assert!(matches!(
            decode_response(&mut frame(0x87, &slot)),
            Ok(Some(_))
        ));
        // A count that the payload cannot hold, and one over the batch limit.
        assert!(matches!(
            decode_request(&mut request(0x06, &[0xff, 0xff, 0xff, 0xff, 0, 0])),
            Err(FrameError::Malformed(_))
        ));
        let mut many = vec![0u8; 4 + MAX_BATCH_ITEMS + 1];
        many[..4].copy_from_slice(&(MAX_BATCH_ITEMS as u32 + 1).to_le_bytes());
        assert!(matches!(
            decode_response(&mut frame(0x88, &many)),
            Err(FrameError::Malformed(_))
        ));
        // Error text that is not UTF-8, in the code and in the message.
        assert!(matches!(
            decode_response(&mut frame(0xff, &[1, 0, 0xc3, 0, 0, 0, 0])),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            decode_response(&mut frame(0xff, &[0, 0, 2, 0, 0, 0, 0xe2, 0x82])),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn batches_over_the_item_limit_are_not_encoded() {
        let req = Request::GetMany {
            keys: vec![Bytes::new(); MAX_BATCH_ITEMS + 1],
        };
        let mut buf = BytesMut::new();
        assert!(matches!(
            try_encode_request(1, UNFENCED, &req, &mut buf),
            Err(FrameError::Malformed(_))
        ));
        assert!(buf.is_empty());
        let resp = Response::WrittenMany(vec![WriteStatus::Stored; MAX_BATCH_ITEMS]);
        try_encode_response(1, &resp, &mut buf).unwrap();
        assert_eq!(decode_response(&mut buf), Ok(Some((1, resp))));
    }

    #[test]
    fn keys_over_u16_are_not_encoded() {
        let req = Request::Get {
            key: Bytes::from(vec![b'k'; 65_536]),
        };
        let mut buf = BytesMut::new();
        assert!(matches!(
            try_encode_request(1, UNFENCED, &req, &mut buf),
            Err(FrameError::Malformed(_))
        ));
        assert!(buf.is_empty());
        let req = Request::Get {
            key: Bytes::from(vec![b'k'; 65_535]),
        };
        encode_request(1, UNFENCED, &req, &mut buf);
        assert_eq!(decode_request(&mut buf), Ok(frame_of(1, UNFENCED, req)));
    }
}
