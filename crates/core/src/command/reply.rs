//! What a command answers, modelled on RESP3, and how it is written in each
//! protocol.
//!
//! | variant | RESP3 | RESP2 | JSON (`POST /`, Upstash's convention) |
//! |---|---|---|---|
//! | `Status` | `+OK` | same | `{"result":"OK"}` (base64 under `Upstash-Encoding: base64`, except `OK`) |
//! | `Error` | `-ERR ...` | same | `{"error":"ERR ..."}` (status 400) |
//! | `Integer` | `:n` | same | number |
//! | `Bulk` | `$len` bytes | same | string, U+FFFD for bytes that are not UTF-8 (base64 under `Upstash-Encoding: base64`) |
//! | `Null` | `_` | `$-1` (null bulk) | `null` |
//! | `NullArray` | `_` | `*-1` (null array) | `null` |
//! | `Array` | `*n` | same | array |
//! | `Map` | `%n` key value... | flat `*2n` array | flat array, as RESP2 |
//! | `Set` | `~n` | `*n` | array |
//! | `Pairs` | `*n` of 2-element arrays | flat `*2n` array | flat array, as RESP2 |
//! | `Keyed` | `%n` key value... | `*n` of 2-element arrays | array of 2-element arrays, as RESP2 |
//! | `Double` | `,1.5` | bulk `"1.5"` (`%.17g`) | string, as RESP2 (base64 under the header) |
//! | `DoubleText` | `,` and its text | bulk of its text | string, as RESP2 |
//! | `Boolean` | `#t` / `#f` | `:1` / `:0` | 1 / 0 |
//!
//! `Pairs` exists because Redis answers ZRANGE WITHSCORES, HRANDFIELD
//! WITHVALUES and friends with an array of pairs in RESP3 but a flat array
//! in RESP2: the shape, not only the types, depends on the protocol.
//! JSON follows RESP2 throughout because Upstash's SDKs expect its shapes;
//! the master's HTTP front end writes it (`distcache_server`'s
//! `master::command_api::json`).

pub mod codec;

use std::borrow::Cow;

use bytes::Bytes;

use super::error::CommandError;
use super::number::format_double;

/// A reply, independent of the protocol it will be written in.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// A simple string (`OK`, `QUEUED`, a type name).
    Status(Cow<'static, str>),
    /// An error.
    Error(CommandError),
    /// A 64-bit integer.
    Integer(i64),
    /// A binary-safe string.
    Bulk(Bytes),
    /// Nothing, where a single value was expected.
    Null,
    /// Nothing, where an array was expected (differs from `Null` in RESP2 only).
    NullArray,
    /// An ordered array.
    Array(Vec<Reply>),
    /// Key/value pairs.
    Map(Vec<(Reply, Reply)>),
    /// Unordered distinct elements.
    Set(Vec<Reply>),
    /// Pairs that RESP3 nests and RESP2 flattens (see the module's table).
    Pairs(Vec<(Reply, Reply)>),
    /// Key/value pairs that RESP3 writes as a map and RESP2 as an array
    /// of pairs: XREAD's streams and their entries.
    Keyed(Vec<(Reply, Reply)>),
    /// A double.
    Double(f64),
    /// A double written as the command formats it (GEOPOS's coordinates,
    /// with 17 decimals), not as `%.17g`.
    DoubleText(String),
    /// A boolean.
    Boolean(bool),
}

/// The protocol a reply is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// RESP2, every client's default.
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

impl Reply {
    /// `+OK`.
    pub const OK: Reply = Reply::Status(Cow::Borrowed("OK"));

    /// A bulk string copied from `bytes`.
    pub fn bulk(bytes: &[u8]) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(bytes))
    }

    /// A bulk string if present, else `Null`.
    pub fn bulk_or_null(bytes: Option<&[u8]>) -> Reply {
        bytes.map_or(Reply::Null, Reply::bulk)
    }

    /// Whether this reply is an error.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends this reply, written in `protocol`, to `out`.
    pub fn write_resp(&self, protocol: Protocol, out: &mut Vec<u8>) {
        let resp3 = protocol == Protocol::Resp3;
        match self {
            Reply::Status(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(e) => line(out, b'-', e.to_string().as_bytes()),
            Reply::Integer(n) => header(out, b':', *n),
            Reply::Bulk(b) => bulk(out, b),
            Reply::Null if resp3 => out.extend_from_slice(b"_\r\n"),
            Reply::NullArray if resp3 => out.extend_from_slice(b"_\r\n"),
            Reply::Null => out.extend_from_slice(b"$-1\r\n"),
            Reply::NullArray => out.extend_from_slice(b"*-1\r\n"),
            Reply::Array(items) => {
                header(out, b'*', items.len());
                for item in items {
                    item.write_resp(protocol, out);
                }
            }
            Reply::Set(items) => {
                header(out, if resp3 { b'~' } else { b'*' }, items.len());
                for item in items {
                    item.write_resp(protocol, out);
                }
            }
            Reply::Map(pairs) => {
                if resp3 {
                    header(out, b'%', pairs.len());
                } else {
                    header(out, b'*', pairs.len() * 2);
                }
                for (k, v) in pairs {
                    k.write_resp(protocol, out);
                    v.write_resp(protocol, out);
                }
            }
            Reply::Keyed(pairs) => {
                header(out, if resp3 { b'%' } else { b'*' }, pairs.len());
                for (k, v) in pairs {
                    if !resp3 {
                        out.extend_from_slice(b"*2\r\n");
                    }
                    k.write_resp(protocol, out);
                    v.write_resp(protocol, out);
                }
            }
            Reply::Pairs(pairs) => {
                if resp3 {
                    header(out, b'*', pairs.len());
                } else {
                    header(out, b'*', pairs.len() * 2);
                }
                for (k, v) in pairs {
                    if resp3 {
                        out.extend_from_slice(b"*2\r\n");
                    }
                    k.write_resp(protocol, out);
                    v.write_resp(protocol, out);
                }
            }
            Reply::DoubleText(t) if resp3 => line(out, b',', t.as_bytes()),
            Reply::DoubleText(t) => bulk(out, t.as_bytes()),
            Reply::Double(d) if resp3 => line(out, b',', format_double(*d).as_bytes()),
            Reply::Double(d) => bulk(out, format_double(*d).as_bytes()),
            Reply::Boolean(b) if resp3 => {
                out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" })
            }
            Reply::Boolean(b) => out.extend_from_slice(if *b { b":1\r\n" } else { b":0\r\n" }),
        }
    }
}

impl From<CommandError> for Reply {
    fn from(e: CommandError) -> Reply {
        Reply::Error(e)
    }
}

fn line(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    out.push(kind);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    header(out, b'$', b.len());
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// A line of `kind` and a number (a length, a count, an integer), written
/// without a heap copy of its digits: every bulk reply has one.
fn header(out: &mut Vec<u8>, kind: u8, n: impl TryInto<i64>) {
    // Lengths and counts are far below i64::MAX.
    let n: i64 = n.try_into().unwrap_or(i64::MAX);
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        at -= 1;
        digits[at] = b'-';
    }
    line(out, kind, &digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_headers_are_written_as_decimal_text() {
        let cases = [0, 1, 9, 10, 99, 100, -1, -10, 1234567, i64::MAX, i64::MIN];
        for n in cases {
            let mut out = Vec::new();
            header(&mut out, b':', n);
            assert_eq!(out, format!(":{n}\r\n").into_bytes());
        }
        let mut out = Vec::new();
        header(&mut out, b'*', usize::MAX);
        assert_eq!(out, format!("*{}\r\n", i64::MAX).into_bytes());
    }

    #[test]
    fn replies_write_redis_headers() {
        let mut out = Vec::new();
        Reply::Integer(-42).write_resp(Protocol::Resp2, &mut out);
        Reply::bulk(b"hello").write_resp(Protocol::Resp2, &mut out);
        Reply::Array(vec![Reply::Integer(7); 12]).write_resp(Protocol::Resp2, &mut out);
        let mut expected = b":-42\r\n$5\r\nhello\r\n*12\r\n".to_vec();
        for _ in 0..12 {
            expected.extend_from_slice(b":7\r\n");
        }
        assert_eq!(out, expected);
    }
}
