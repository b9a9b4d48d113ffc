//! A [`Reply`] as JSON, in the RESP2 shapes Upstash's SDKs expect (the
//! table in `distcache_core::command::reply`).
//!
//! Strings: a bulk string is binary, JSON text is Unicode. Without
//! `Upstash-Encoding: base64`, bytes that are not UTF-8 are replaced by
//! U+FFFD, one per invalid sequence (what Upstash's own server does, and
//! what a JSON client can show); with it, every string (bulk, status,
//! double) is the base64 of its exact bytes, except the status `OK`, which
//! Upstash sends as it is and its SDKs take as it is. Error messages are
//! never encoded.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use distcache_core::command::Reply;
use distcache_core::command::number::format_double;

/// How strings are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// JSON strings, lossy where the bytes are not UTF-8.
    Text,
    /// Base64 of the bytes (`Upstash-Encoding: base64`).
    Base64,
}

/// Appends `reply` as a JSON value to `out`.
pub fn write_value(reply: &Reply, encoding: Encoding, out: &mut Vec<u8>) {
    match reply {
        Reply::Status(s) if encoding == Encoding::Base64 && s != "OK" => {
            base64_string(s.as_bytes(), out)
        }
        Reply::Status(s) => text_string(s, out),
        // Inside an array only (EXEC's answer); at the top the caller
        // writes `{"error": ...}`.
        Reply::Error(e) => text_string(&e.to_string(), out),
        Reply::Integer(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Reply::Bulk(b) => bytes_string(b, encoding, out),
        Reply::Double(d) => bytes_string(format_double(*d).as_bytes(), encoding, out),
        Reply::DoubleText(t) => bytes_string(t.as_bytes(), encoding, out),
        Reply::Null | Reply::NullArray => out.extend_from_slice(b"null"),
        Reply::Boolean(b) => out.push(if *b { b'1' } else { b'0' }),
        Reply::Array(items) | Reply::Set(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, encoding, out);
            }
            out.push(b']');
        }
        Reply::Keyed(pairs) => {
            out.push(b'[');
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'[');
                write_value(k, encoding, out);
                out.push(b',');
                write_value(v, encoding, out);
                out.push(b']');
            }
            out.push(b']');
        }
        Reply::Map(pairs) | Reply::Pairs(pairs) => {
            out.push(b'[');
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(k, encoding, out);
                out.push(b',');
                write_value(v, encoding, out);
            }
            out.push(b']');
        }
    }
}

/// Appends `{"result": ...}`, or `{"error": "..."}` for an error reply.
pub fn write_answer(reply: &Reply, encoding: Encoding, out: &mut Vec<u8>) {
    if let Reply::Error(e) = reply {
        out.extend_from_slice(b"{\"error\":");
        text_string(&e.to_string(), out);
    } else {
        out.extend_from_slice(b"{\"result\":");
        write_value(reply, encoding, out);
    }
    out.push(b'}');
}

/// `{"error": "..."}` for a message.
pub fn error_body(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 12);
    out.extend_from_slice(b"{\"error\":");
    text_string(message, &mut out);
    out.push(b'}');
    out
}

fn bytes_string(bytes: &[u8], encoding: Encoding, out: &mut Vec<u8>) {
    match encoding {
        Encoding::Base64 => base64_string(bytes, out),
        Encoding::Text => text_string(&String::from_utf8_lossy(bytes), out),
    }
}

fn base64_string(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    out.extend_from_slice(STANDARD.encode(bytes).as_bytes());
    out.push(b'"');
}

fn text_string(text: &str, out: &mut Vec<u8>) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use distcache_core::command::CommandError;

    fn json(reply: &Reply, encoding: Encoding) -> String {
        let mut out = Vec::new();
        write_answer(reply, encoding, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn every_variant_has_its_resp2_shape() {
        use Encoding::Text;
        assert_eq!(json(&Reply::OK, Text), r#"{"result":"OK"}"#);
        assert_eq!(json(&Reply::Integer(-5), Text), r#"{"result":-5}"#);
        assert_eq!(json(&bulk("a\"b\n"), Text), r#"{"result":"a\"b\n"}"#);
        assert_eq!(json(&Reply::Null, Text), r#"{"result":null}"#);
        assert_eq!(json(&Reply::NullArray, Text), r#"{"result":null}"#);
        assert_eq!(json(&Reply::Double(1.5), Text), r#"{"result":"1.5"}"#);
        assert_eq!(json(&Reply::Boolean(true), Text), r#"{"result":1}"#);
        assert_eq!(json(&Reply::Boolean(false), Text), r#"{"result":0}"#);
        let pairs = vec![(bulk("f"), bulk("v")), (bulk("g"), Reply::Integer(2))];
        assert_eq!(
            json(&Reply::Map(pairs.clone()), Text),
            r#"{"result":["f","v","g",2]}"#
        );
        assert_eq!(
            json(&Reply::Pairs(pairs), Text),
            r#"{"result":["f","v","g",2]}"#
        );
        assert_eq!(
            json(&Reply::Set(vec![bulk("x"), Reply::Array(vec![])]), Text),
            r#"{"result":["x",[]]}"#
        );
        assert_eq!(
            json(&Reply::Error(CommandError::WrongType), Text),
            r#"{"error":"WRONGTYPE Operation against a key holding the wrong kind of value"}"#
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_are_replaced_in_text() {
        let reply = Reply::Bulk(Bytes::from_static(b"a\xffb\xc3"));
        assert_eq!(
            json(&reply, Encoding::Text),
            "{\"result\":\"a\u{fffd}b\u{fffd}\"}"
        );
    }

    #[test]
    fn base64_encodes_every_string_but_ok_and_errors() {
        use Encoding::Base64;
        assert_eq!(json(&Reply::OK, Base64), r#"{"result":"OK"}"#);
        assert_eq!(
            json(&Reply::Status("string".into()), Base64),
            r#"{"result":"c3RyaW5n"}"#
        );
        assert_eq!(
            json(&Reply::Bulk(Bytes::from_static(b"\xff\x00")), Base64),
            r#"{"result":"/wA="}"#
        );
        assert_eq!(json(&bulk("OK"), Base64), r#"{"result":"T0s="}"#);
        assert_eq!(json(&Reply::Double(2.5), Base64), r#"{"result":"Mi41"}"#);
        assert_eq!(
            json(&Reply::Array(vec![bulk(""), Reply::Integer(1)]), Base64),
            r#"{"result":["",1]}"#
        );
        assert_eq!(
            json(&Reply::Error(CommandError::Syntax), Base64),
            r#"{"error":"ERR syntax error"}"#
        );
    }
}
