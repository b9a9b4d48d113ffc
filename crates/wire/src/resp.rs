//! Requests in the Redis protocol (RESP), as clients send them: arrays of
//! bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`), or inline commands
//! typed into telnet (`GET k\r\n`). Replies are written by the command
//! layer (`distcache_core::command::Reply`).
//!
//! # Contract
//!
//! - [`parse_request`] takes the bytes a connection has read so far and
//!   either removes one whole request from the front and gives its
//!   arguments (each a view into the read buffer, not a copy), or leaves the
//!   buffer as it is and asks for more bytes, or refuses the input with the
//!   message Redis gives for it. A refusal is final: Redis answers it and
//!   closes the connection, as the caller must.
//! - Memory is bounded by [`RespLimits`]: a declared argument count or bulk
//!   length over the limits is refused as soon as its header is read, and a
//!   header or inline line with no end in sight is refused past
//!   [`RespLimits::max_inline_bytes`], so a client cannot make the server
//!   buffer more than one legal request.
//! - Parsing is total: any bytes give a request, a wait, or an error; never
//!   a panic.
//!
//! Inline commands are split as Redis's `sdssplitargs` does: blanks
//! separate arguments; `"..."` takes `\n \r \t \b \a \\ \"` and `\xHH`
//! escapes; `'...'` takes `\'`; a closing quote must be followed by a blank
//! or the end of the line. An empty line is no command (skipped, as Redis
//! does).

use bytes::{Buf, Bytes, BytesMut};
use smallvec::SmallVec;
use thiserror::Error;

/// Redis's `proto-max-bulk-len` default: the longest argument.
pub const DEFAULT_MAX_BULK_BYTES: usize = 512 * 1024 * 1024;
/// Redis's limit on the arguments of one request.
pub const DEFAULT_MAX_ARGS: usize = 1024 * 1024;
/// Redis's `PROTO_INLINE_MAX_SIZE`: the longest inline command or header
/// line.
pub const DEFAULT_MAX_INLINE_BYTES: usize = 64 * 1024;

/// How large a request may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RespLimits {
    /// Longest argument, in bytes.
    pub max_bulk_bytes: usize,
    /// Most arguments in one request.
    pub max_args: usize,
    /// Longest inline command, or header line (`*n`, `$n`), in bytes.
    pub max_inline_bytes: usize,
    /// A client that has not authenticated yet where authentication is
    /// required: as Redis, it may send at most [`BEFORE_AUTH_MAX_ARGS`]
    /// arguments of at most [`BEFORE_AUTH_MAX_BULK_BYTES`] each, so that
    /// nobody without a token makes the server hold megabytes.
    pub before_auth: bool,
}

/// Most arguments in one request before authentication (Redis's 10).
pub const BEFORE_AUTH_MAX_ARGS: i64 = 10;
/// Longest argument before authentication (Redis's 16 KiB).
pub const BEFORE_AUTH_MAX_BULK_BYTES: i64 = 16 * 1024;

impl Default for RespLimits {
    fn default() -> Self {
        RespLimits {
            max_bulk_bytes: DEFAULT_MAX_BULK_BYTES,
            max_args: DEFAULT_MAX_ARGS,
            max_inline_bytes: DEFAULT_MAX_INLINE_BYTES,
            before_auth: false,
        }
    }
}

/// Input that is not a request: answered with `-ERR Protocol error: ...`
/// (its [`Display`](std::fmt::Display)), then the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// An array header whose count is not a number or is too large.
    #[error("Protocol error: invalid multibulk length")]
    MultibulkLength,
    /// A bulk header whose length is not a number, negative or too large.
    #[error("Protocol error: invalid bulk length")]
    BulkLength,
    /// More arguments than a client may send before it authenticates.
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    /// A longer argument than a client may send before it authenticates.
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    /// Something else where a `$` bulk header belongs.
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedBulk(char),
    /// An array header line with no end within the inline limit.
    #[error("Protocol error: too big mbulk count string")]
    MultibulkHeaderTooLong,
    /// A bulk header line with no end within the inline limit.
    #[error("Protocol error: too big bulk count string")]
    BulkHeaderTooLong,
    /// An inline command with no end within the inline limit.
    #[error("Protocol error: too big inline request")]
    InlineTooLong,
    /// An inline command whose quotes do not close properly.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
}

/// Removes one request from the front of `buf` and returns its arguments:
/// `Ok(Some(args))` with at least one argument, `Ok(None)` when `buf` does
/// not hold a whole request yet (nothing is removed), or the refusal.
/// Empty requests (`*0`, `*-1`, blank inline lines) are skipped.
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &RespLimits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    loop {
        if buf.is_empty() {
            return Ok(None);
        }
        let parsed = if buf[0] == b'*' {
            parse_multibulk(buf, limits)?
        } else {
            parse_inline(buf, limits)?
        };
        match parsed {
            Parsed::Incomplete => return Ok(None),
            Parsed::Skipped => continue,
            Parsed::Request(args) => return Ok(Some(args)),
        }
    }
}

enum Parsed {
    Incomplete,
    /// An empty request was consumed.
    Skipped,
    Request(Vec<Bytes>),
}

/// The line starting at `from` (without its `\r\n`) and where the next one
/// starts, or `None` when no `\n` has arrived yet.
fn line_at(buf: &[u8], from: usize) -> Option<(&[u8], usize)> {
    let newline = buf[from..].iter().position(|&b| b == b'\n')?;
    let end = from + newline;
    let line = &buf[from..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some((line, end + 1))
}

/// A decimal number as Redis's `string2ll` reads it: an optional `-`, digits
/// without a leading zero (`0` itself aside), nothing else, within `i64`.
/// Read digit by digit: every request has two or more of these headers.
fn number(digits: &[u8]) -> Option<i64> {
    let (negative, body) = match digits {
        [b'-', body @ ..] => (true, body),
        body => (false, body),
    };
    match body {
        [] => return None,
        [b'0'] if !negative => return Some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    let mut n: i64 = 0;
    for &d in body {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        // Negative numbers count down, so that i64::MIN fits.
        n = n.checked_mul(10)?;
        n = if negative {
            n.checked_sub(d)?
        } else {
            n.checked_add(d)?
        };
    }
    Some(n)
}

fn parse_multibulk(buf: &mut BytesMut, limits: &RespLimits) -> Result<Parsed, ProtocolError> {
    // First find where every part ends, without consuming anything.
    let Some((header, mut pos)) = line_at(buf, 1) else {
        return if buf.len() > limits.max_inline_bytes {
            Err(ProtocolError::MultibulkHeaderTooLong)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let count = number(header).ok_or(ProtocolError::MultibulkLength)?;
    if count > limits.max_args as i64 {
        return Err(ProtocolError::MultibulkLength);
    }
    if limits.before_auth && count > BEFORE_AUTH_MAX_ARGS {
        return Err(ProtocolError::UnauthenticatedMultibulkLength);
    }
    if count <= 0 {
        buf.advance(pos);
        return Ok(Parsed::Skipped);
    }
    // Where each argument starts and its length; on the stack for the
    // usual few (this runs for every request).
    let mut spans: SmallVec<[(usize, usize); 8]> = SmallVec::new();
    for _ in 0..count {
        if pos >= buf.len() {
            return Ok(Parsed::Incomplete);
        }
        if buf[pos] != b'$' {
            return Err(ProtocolError::ExpectedBulk(char::from(buf[pos])));
        }
        let Some((header, data)) = line_at(buf, pos + 1) else {
            return if buf.len() - pos > limits.max_inline_bytes {
                Err(ProtocolError::BulkHeaderTooLong)
            } else {
                Ok(Parsed::Incomplete)
            };
        };
        let len = number(header)
            .filter(|&n| n >= 0 && n as u64 <= limits.max_bulk_bytes as u64)
            .ok_or(ProtocolError::BulkLength)?;
        if limits.before_auth && len > BEFORE_AUTH_MAX_BULK_BYTES {
            return Err(ProtocolError::UnauthenticatedBulkLength);
        }
        let len = len as usize;
        // The payload and its `\r\n`.
        if buf.len() < data + len + 2 {
            return Ok(Parsed::Incomplete);
        }
        spans.push((data, len));
        pos = data + len + 2;
    }
    // Whole: cut the arguments out of the buffer without copying them.
    let mut whole = buf.split_to(pos).freeze();
    let mut taken = 0;
    let mut args = Vec::with_capacity(spans.len());
    for (start, len) in spans {
        whole.advance(start - taken);
        args.push(whole.split_to(len));
        taken = start + len;
    }
    Ok(Parsed::Request(args))
}

fn parse_inline(buf: &mut BytesMut, limits: &RespLimits) -> Result<Parsed, ProtocolError> {
    let Some((line, next)) = line_at(buf, 0) else {
        return if buf.len() > limits.max_inline_bytes {
            Err(ProtocolError::InlineTooLong)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    if line.len() > limits.max_inline_bytes {
        return Err(ProtocolError::InlineTooLong);
    }
    let args = split_args(line)?;
    buf.advance(next);
    if args.is_empty() {
        return Ok(Parsed::Skipped);
    }
    Ok(Parsed::Request(args))
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c)
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Splits an inline command line into arguments, as `sdssplitargs`.
fn split_args(line: &[u8]) -> Result<Vec<Bytes>, ProtocolError> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_blank(line[i]) {
            i += 1;
        }
        if i == line.len() {
            return Ok(args);
        }
        let mut arg = Vec::new();
        while let Some(&b) = line.get(i) {
            if is_blank(b) {
                break;
            }
            if b == b'"' || b == b'\'' {
                // A quote opens a quoted part of the argument, which its
                // closing quote ends.
                i = quoted(line, i + 1, b, &mut arg)?;
                break;
            }
            arg.push(b);
            i += 1;
        }
        args.push(Bytes::from(arg));
    }
}

/// Reads the quoted part that starts at `i`, after its opening `quote`, into
/// `arg`, and returns where the argument ends: after the closing quote,
/// which must be followed by a blank or the end of the line.
fn quoted(line: &[u8], mut i: usize, quote: u8, arg: &mut Vec<u8>) -> Result<usize, ProtocolError> {
    loop {
        let Some(&b) = line.get(i) else {
            return Err(ProtocolError::UnbalancedQuotes);
        };
        if b == quote {
            if line.get(i + 1).is_some_and(|&n| !is_blank(n)) {
                return Err(ProtocolError::UnbalancedQuotes);
            }
            return Ok(i + 1);
        }
        let (byte, used) = if b == b'\\' {
            escape(&line[i..], quote)
        } else {
            (b, 1)
        };
        arg.push(byte);
        i += used;
    }
}

/// The byte a backslash at the start of `rest` stands for inside `quote`s,
/// and how many bytes it takes: `"` knows `\n \r \t \b \a \xHH` and takes
/// any other escaped byte as itself; `'` knows only `\'`. A backslash that
/// escapes nothing is itself.
fn escape(rest: &[u8], quote: u8) -> (u8, usize) {
    let next = rest.get(1).copied();
    if quote == b'\'' {
        return if next == Some(b'\'') {
            (b'\'', 2)
        } else {
            (b'\\', 1)
        };
    }
    let hex = |k: usize| rest.get(k).copied().and_then(hex_value);
    match (next, hex(2), hex(3)) {
        (Some(b'x'), Some(hi), Some(lo)) => (hi * 16 + lo, 4),
        (Some(b'n'), ..) => (b'\n', 2),
        (Some(b'r'), ..) => (b'\r', 2),
        (Some(b't'), ..) => (b'\t', 2),
        (Some(b'b'), ..) => (0x08, 2),
        (Some(b'a'), ..) => (0x07, 2),
        (Some(other), ..) => (other, 2),
        (None, ..) => (b'\\', 1),
    }
}

#[cfg(test)]
mod tests;
