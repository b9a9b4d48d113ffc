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
//! | `Double` | `,1.5` | bulk `"1.5"` (`%.17g`) | string, as RESP2 (base64 under the header) |
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
    /// A double.
    Double(f64),
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
            Reply::Integer(n) => line(out, b':', n.to_string().as_bytes()),
            Reply::Bulk(b) => bulk(out, b),
            Reply::Null if resp3 => out.extend_from_slice(b"_\r\n"),
            Reply::NullArray if resp3 => out.extend_from_slice(b"_\r\n"),
            Reply::Null => out.extend_from_slice(b"$-1\r\n"),
            Reply::NullArray => out.extend_from_slice(b"*-1\r\n"),
            Reply::Array(items) => {
                line(out, b'*', items.len().to_string().as_bytes());
                for item in items {
                    item.write_resp(protocol, out);
                }
            }
            Reply::Set(items) => {
                line(
                    out,
                    if resp3 { b'~' } else { b'*' },
                    items.len().to_string().as_bytes(),
                );
                for item in items {
                    item.write_resp(protocol, out);
                }
            }
            Reply::Map(pairs) => {
                if resp3 {
                    line(out, b'%', pairs.len().to_string().as_bytes());
                } else {
                    line(out, b'*', (pairs.len() * 2).to_string().as_bytes());
                }
                for (k, v) in pairs {
                    k.write_resp(protocol, out);
                    v.write_resp(protocol, out);
                }
            }
            Reply::Pairs(pairs) => {
                if resp3 {
                    line(out, b'*', pairs.len().to_string().as_bytes());
                } else {
                    line(out, b'*', (pairs.len() * 2).to_string().as_bytes());
                }
                for (k, v) in pairs {
                    if resp3 {
                        out.extend_from_slice(b"*2\r\n");
                    }
                    k.write_resp(protocol, out);
                    v.write_resp(protocol, out);
                }
            }
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
    line(out, b'$', b.len().to_string().as_bytes());
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}
