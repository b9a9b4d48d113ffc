//! Frame format. STUB: to be implemented.
//!
//! Every frame, in both directions:
//!
//! ```text
//! u32 length of what follows (little endian), at most MAX_FRAME_BYTES
//! u64 request id (a response echoes its request's id)
//! u8  opcode
//! ... payload, by opcode
//! ```
//!
//! Integers are little endian. A key is `u16 len + bytes`; a value is
//! `u32 len + bytes`; a version is `u64 millis, u32 counter, u32 origin`;
//! an expiry is `u64` Unix milliseconds with 0 meaning none.

use bytes::{Bytes, BytesMut};
use distcache_core::{Entry, Version};

/// The largest frame accepted (64 MiB): a batch of values at the limit.
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// One entry carried with its key, for batch writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyedEntry {
    /// The key's bytes (valid UTF-8, checked by the master).
    pub key: Bytes,
    /// Value, expiry and version.
    pub entry: Entry,
}

/// What a master (or a peer auxiliary) asks of an auxiliary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Liveness check; answered with [`Response::Pong`].
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
}

/// Outcome of one write inside [`Response::SetMany`] or [`Response::Set`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteStatus {
    /// Applied.
    Stored,
    /// A version at least as high was already there.
    Stale,
    /// Already expired; not stored.
    Expired,
    /// Too large for the store.
    TooLarge,
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
    /// The key is not held.
    NotFound,
    /// Answer to `Set`.
    Written(WriteStatus),
    /// Answer to `Delete`: whether a live entry was removed, or `stale`.
    Deleted {
        /// A live entry was removed.
        existed: bool,
        /// The store holds an equal or higher version; nothing changed.
        stale: bool,
    },
    /// Answer to `GetMany`: one slot per requested key, in order.
    Values(Vec<Option<Entry>>),
    /// Answer to `SetMany`: one status per entry, in order.
    WrittenMany(Vec<WriteStatus>),
    /// The request failed.
    Error {
        /// Machine-readable code, e.g. `unauthorized`, `bad_request`.
        code: String,
        /// For people.
        message: String,
    },
}

/// Why bytes did not decode as a frame.
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

/// Appends one request frame with id `id` to `buf`.
pub fn encode_request(id: u64, req: &Request, buf: &mut BytesMut) {
    let _ = (id, req, buf);
    todo!()
}

/// Appends one response frame with id `id` to `buf`.
pub fn encode_response(id: u64, resp: &Response, buf: &mut BytesMut) {
    let _ = (id, resp, buf);
    todo!()
}

/// Splits one complete request frame off the front of `buf` if one is there:
/// `Ok(None)` = need more bytes. Values are zero-copy slices of `buf`.
pub fn decode_request(buf: &mut BytesMut) -> Result<Option<(u64, Request)>, FrameError> {
    let _ = buf;
    todo!()
}

/// Same as [`decode_request`] for responses.
pub fn decode_response(buf: &mut BytesMut) -> Result<Option<(u64, Response)>, FrameError> {
    let _ = buf;
    todo!()
}
