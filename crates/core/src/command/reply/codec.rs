//! Replies between processes: a key's leader executes a command and the
//! master that asked writes the reply to its client in RESP2, RESP3 or
//! JSON. RESP3 text would lose [`Reply::Pairs`] (nested in RESP3, flat in
//! RESP2) and error variants, so replies travel in this form:
//!
//! ```text
//! replies = version u8 (= 1), u32 count, count × reply
//! reply   = tag u8, then by tag:
//!   0 status  u32 len + UTF-8      1 error   u32 len + UTF-8 (its whole line)
//!   2 integer i64                  3 bulk    u32 len + bytes
//!   4 null                         5 null array
//!   6 array   u32 n, n × reply     7 map     u32 n, n × (reply, reply)
//!   8 set     u32 n, n × reply     9 pairs   u32 n, n × (reply, reply)
//!   10 double f64 bits             11 boolean u8 (0 or 1)
//! ```
//!
//! Integers are little endian. Decoding is total (never a panic), a count
//! is checked against the bytes left before anything is reserved, and
//! nesting deeper than [`MAX_DEPTH`] is refused. An error decodes as
//! [`CommandError::Relayed`], whose text is the original's line.

use std::borrow::Cow;

use bytes::Bytes;

use super::Reply;
use crate::codec::{Cursor, Short};
use crate::command::CommandError;

/// The format version [`encode`] writes.
pub const VERSION: u8 = 1;

/// Deepest nesting decoded: a script's reply (at most 100 levels,
/// `script::convert`) inside EXEC's array, with room to spare.
pub const MAX_DEPTH: usize = 128;

/// Why bytes are not replies.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A version this build does not read.
    #[error("unknown reply encoding version {0}")]
    Version(u8),
    /// Truncated, malformed or too deep.
    #[error("malformed replies: {0}")]
    Malformed(&'static str),
}

impl From<Short> for DecodeError {
    fn from(short: Short) -> Self {
        match short {
            Short::Truncated(what) | Short::Malformed(what) => DecodeError::Malformed(what),
        }
    }
}

/// Appends the encoding of `replies` to `out`.
pub fn encode(replies: &[Reply], out: &mut Vec<u8>) {
    out.push(VERSION);
    put_len(out, replies.len());
    for reply in replies {
        put_reply(out, reply);
    }
}

/// Decodes replies encoded by [`encode`] (the whole of `data`). Bulk
/// strings share `data`'s buffer rather than copying out of it: a master
/// decodes a GET's value only to write it to its client.
pub fn decode(data: &Bytes) -> Result<Vec<Reply>, DecodeError> {
    let mut c = Cursor::new(data);
    let version = c.u8("version")?;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let replies = list(&mut Decoder { c: &mut c, data }, 0)?;
    if c.remaining() != 0 {
        return Err(DecodeError::Malformed("bytes after the replies"));
    }
    Ok(replies)
}

/// The bytes [`encode`] writes for `reply` among others: what one reply
/// adds to a batch's answer.
pub fn encoded_len(reply: &Reply) -> usize {
    let list = |items: &[Reply]| 5 + items.iter().map(encoded_len).sum::<usize>();
    let pairs = |pairs: &[(Reply, Reply)]| {
        5 + pairs
            .iter()
            .map(|(k, v)| encoded_len(k) + encoded_len(v))
            .sum::<usize>()
    };
    match reply {
        Reply::Status(s) => 5 + s.len(),
        Reply::Error(e) => 5 + e.to_string().len(),
        Reply::Integer(_) | Reply::Double(_) => 9,
        Reply::Bulk(b) => 5 + b.len(),
        Reply::DoubleText(t) => 5 + t.len(),
        Reply::Null | Reply::NullArray => 1,
        Reply::Boolean(_) => 2,
        Reply::Array(items) | Reply::Set(items) => list(items),
        Reply::Map(p) | Reply::Pairs(p) | Reply::Keyed(p) => pairs(p),
    }
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    // A reply is built from one node's values, each far below 4 GiB.
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

fn put_pairs(out: &mut Vec<u8>, tag: u8, pairs: &[(Reply, Reply)]) {
    out.push(tag);
    put_len(out, pairs.len());
    for (k, v) in pairs {
        put_reply(out, k);
        put_reply(out, v);
    }
}

fn put_list(out: &mut Vec<u8>, tag: u8, items: &[Reply]) {
    out.push(tag);
    put_len(out, items.len());
    for item in items {
        put_reply(out, item);
    }
}

fn put_reply(out: &mut Vec<u8>, reply: &Reply) {
    match reply {
        Reply::Status(s) => {
            out.push(0);
            put_bytes(out, s.as_bytes());
        }
        Reply::Error(e) => {
            out.push(1);
            put_bytes(out, e.to_string().as_bytes());
        }
        Reply::Integer(n) => {
            out.push(2);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Reply::Bulk(b) => {
            out.push(3);
            put_bytes(out, b);
        }
        Reply::Null => out.push(4),
        Reply::NullArray => out.push(5),
        Reply::Array(items) => put_list(out, 6, items),
        Reply::Map(pairs) => put_pairs(out, 7, pairs),
        Reply::Set(items) => put_list(out, 8, items),
        Reply::Pairs(pairs) => put_pairs(out, 9, pairs),
        Reply::Keyed(pairs) => put_pairs(out, 12, pairs),
        Reply::Double(d) => {
            out.push(10);
            out.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        Reply::Boolean(b) => {
            out.push(11);
            out.push(u8::from(*b));
        }
        Reply::DoubleText(t) => {
            out.push(13);
            put_bytes(out, t.as_bytes());
        }
    }
}

/// A count of items at least `min_bytes` each, checked against what is left.
fn count(c: &mut Cursor<'_>, min_bytes: usize) -> Result<usize, DecodeError> {
    let n = c.u32("count")? as usize;
    if n > c.remaining() / min_bytes {
        return Err(DecodeError::Malformed("count larger than the bytes left"));
    }
    Ok(n)
}

/// A cursor over the bytes being decoded, and those bytes, which bulk
/// strings are sliced from.
struct Decoder<'a, 'b> {
    c: &'a mut Cursor<'b>,
    data: &'b Bytes,
}

fn text<'b>(c: &mut Cursor<'b>) -> Result<&'b str, DecodeError> {
    let len = c.u32("text length")? as usize;
    let bytes = c.take(len, "text")?;
    std::str::from_utf8(bytes).map_err(|_| DecodeError::Malformed("text is not UTF-8"))
}

fn list(d: &mut Decoder<'_, '_>, depth: usize) -> Result<Vec<Reply>, DecodeError> {
    let n = count(d.c, 1)?;
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        items.push(reply(d, depth)?);
    }
    Ok(items)
}

fn pairs(d: &mut Decoder<'_, '_>, depth: usize) -> Result<Vec<(Reply, Reply)>, DecodeError> {
    let n = count(d.c, 2)?;
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        items.push((reply(d, depth)?, reply(d, depth)?));
    }
    Ok(items)
}

fn reply(d: &mut Decoder<'_, '_>, depth: usize) -> Result<Reply, DecodeError> {
    if depth >= MAX_DEPTH {
        return Err(DecodeError::Malformed("replies nested too deep"));
    }
    let c = &mut *d.c;
    Ok(match c.u8("tag")? {
        // The status of every SET, without a copy.
        0 => match text(c)? {
            "OK" => Reply::OK,
            status => Reply::Status(Cow::Owned(status.to_owned())),
        },
        1 => Reply::Error(CommandError::Relayed(text(c)?.to_owned())),
        2 => Reply::Integer(c.u64("integer")? as i64),
        3 => {
            let len = c.u32("bulk length")? as usize;
            Reply::Bulk(d.data.slice_ref(c.take(len, "bulk")?))
        }
        4 => Reply::Null,
        5 => Reply::NullArray,
        6 => Reply::Array(list(d, depth + 1)?),
        7 => Reply::Map(pairs(d, depth + 1)?),
        8 => Reply::Set(list(d, depth + 1)?),
        9 => Reply::Pairs(pairs(d, depth + 1)?),
        12 => Reply::Keyed(pairs(d, depth + 1)?),
        13 => Reply::DoubleText(text(c)?.to_owned()),
        10 => Reply::Double(f64::from_bits(c.u64("double")?)),
        11 => match c.u8("boolean")? {
            0 => Reply::Boolean(false),
            1 => Reply::Boolean(true),
            _ => return Err(DecodeError::Malformed("boolean other than 0 or 1")),
        },
        _ => return Err(DecodeError::Malformed("unknown reply tag")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Protocol;

    fn sample() -> Vec<Reply> {
        vec![
            Reply::OK,
            Reply::Error(CommandError::WrongType),
            Reply::Integer(i64::MIN),
            Reply::Bulk(Bytes::from_static(b"\x00bin\xff")),
            Reply::Null,
            Reply::NullArray,
            Reply::Array(vec![
                Reply::Integer(1),
                Reply::Pairs(vec![(Reply::bulk(b"m"), Reply::Double(-0.5))]),
                Reply::Keyed(vec![(Reply::bulk(b"s"), Reply::Array(Vec::new()))]),
                Reply::DoubleText("13.36138933897018433".into()),
            ]),
            Reply::Map(vec![(Reply::bulk(b"f"), Reply::bulk(b"v"))]),
            Reply::Set(vec![Reply::bulk(b"a")]),
            Reply::Double(f64::INFINITY),
            Reply::Boolean(true),
        ]
    }

    #[test]
    fn replies_round_trip_and_write_the_same_resp() {
        let mut bytes = Vec::new();
        encode(&sample(), &mut bytes);
        let back = decode(&Bytes::from(bytes)).unwrap();
        assert_eq!(back.len(), sample().len());
        for (a, b) in sample().iter().zip(&back) {
            for protocol in [Protocol::Resp2, Protocol::Resp3] {
                let (mut x, mut y) = (Vec::new(), Vec::new());
                a.write_resp(protocol, &mut x);
                b.write_resp(protocol, &mut y);
                assert_eq!(x, y, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn bulk_strings_share_the_decoded_buffer_and_statuses_keep_their_text() {
        let replies = vec![
            Reply::bulk(b"a value"),
            Reply::Status("QUEUED".into()),
            Reply::OK,
            Reply::Status("OKAY".into()),
        ];
        let mut bytes = Vec::new();
        encode(&replies, &mut bytes);
        let bytes = Bytes::from(bytes);
        let back = decode(&bytes).unwrap();
        assert_eq!(back, replies);
        let Reply::Bulk(value) = &back[0] else {
            panic!("{:?}", back[0]);
        };
        let inside = bytes.as_ptr_range();
        assert!(inside.contains(&value.as_ptr()), "the value was copied");
    }

    #[test]
    fn encoded_len_is_what_encode_writes() {
        let mut with_error = sample();
        with_error.push(Reply::Error(CommandError::WrongType));
        with_error.push(Reply::NullArray);
        with_error.push(Reply::Status("OK".into()));
        with_error.push(Reply::Integer(-7));
        for reply in &with_error {
            let mut bytes = Vec::new();
            encode(std::slice::from_ref(reply), &mut bytes);
            // The version byte and the count are the batch's, not the reply's.
            assert_eq!(encoded_len(reply), bytes.len() - 5, "{reply:?}");
        }
    }

    #[test]
    fn every_truncation_and_a_hostile_count_are_errors_not_panics() {
        let mut bytes = Vec::new();
        encode(&sample(), &mut bytes);
        let bytes = Bytes::from(bytes);
        for len in 0..bytes.len() {
            assert!(
                decode(&bytes.slice(..len)).is_err(),
                "prefix of {len} bytes"
            );
        }
        let hostile = Bytes::from_static(&[VERSION, 0xff, 0xff, 0xff, 0xff, 6]);
        assert!(decode(&hostile).is_err());
        let mut deep = vec![VERSION, 1, 0, 0, 0];
        for _ in 0..MAX_DEPTH + 1 {
            deep.extend_from_slice(&[6, 1, 0, 0, 0]);
        }
        deep.push(4);
        assert_eq!(
            decode(&Bytes::from(deep)),
            Err(DecodeError::Malformed("replies nested too deep"))
        );
    }
}
