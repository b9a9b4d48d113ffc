//! The libraries Redis gives scripts beyond Lua's own: `bit` (LuaBitOp's
//! functions on 32-bit integers), `cjson` (JSON, with lua-cjson's
//! choices: `cjson.null` for JSON's null, an empty table encoded as `{}`,
//! numbers as Lua writes them, `/` escaped) and `cmsgpack` (MessagePack as
//! lua-cmsgpack writes it). `struct` is not provided (docs/commands.md,
//! "Scripting").

use std::fmt::Write;

use mlua::{LightUserData, Lua, Table, Value, Variadic};

use super::failure::lua_failure;

/// How deep `cjson` and `cmsgpack` nest, at most, reading or writing:
/// each level is a Rust call, and the thread's stack must hold them all
/// (lua-cjson allows 1000).
const JSON_DEPTH: usize = 128;

/// The most JSON `cjson` writes or reads at once: its Rust-side buffers
/// are outside the Lua VM's memory limit.
const JSON_BYTES: usize = 32 << 20;

/// `bit`.
pub(super) fn bit(lua: &Lua) -> mlua::Result<Table> {
    let bit = lua.create_table()?;
    type Op = fn(&[i32]) -> i32;
    let ops: [(&'static str, usize, Op); 11] = [
        ("tobit", 1, |x| x[0]),
        ("bnot", 1, |x| !x[0]),
        ("band", 0, |x| x.iter().fold(-1, |a, b| a & b)),
        ("bor", 0, |x| x.iter().fold(0, |a, b| a | b)),
        ("bxor", 0, |x| x.iter().fold(0, |a, b| a ^ b)),
        ("lshift", 2, |x| ((x[0] as u32) << (x[1] & 31)) as i32),
        ("rshift", 2, |x| ((x[0] as u32) >> (x[1] & 31)) as i32),
        ("arshift", 2, |x| x[0] >> (x[1] & 31)),
        ("rol", 2, |x| {
            (x[0] as u32).rotate_left((x[1] & 31) as u32) as i32
        }),
        ("ror", 2, |x| {
            (x[0] as u32).rotate_right((x[1] & 31) as u32) as i32
        }),
        ("bswap", 1, |x| x[0].swap_bytes()),
    ];
    for (name, arity, op) in ops {
        bit.raw_set(
            name,
            lua.create_function(move |lua, values: Variadic<Value>| {
                // The folds take one argument or more; the others exactly theirs.
                let n = if arity == 0 {
                    values.len().max(1)
                } else {
                    arity
                };
                let mut x = Vec::with_capacity(n);
                for i in 0..n {
                    x.push(tobit(number_arg(lua, &values, i, name)?));
                }
                Ok(f64::from(op(&x)))
            })?,
        )?;
    }
    bit.raw_set(
        "tohex",
        lua.create_function(|lua, values: Variadic<Value>| {
            let x = tobit(number_arg(lua, &values, 0, "tohex")?);
            let n = match values.get(1) {
                None | Some(Value::Nil) => 8,
                Some(_) => tobit(number_arg(lua, &values, 1, "tohex")?),
            };
            let digits = n.unsigned_abs().min(8) as usize;
            let hex = if n < 0 {
                format!("{:08X}", x as u32)
            } else {
                format!("{:08x}", x as u32)
            };
            Ok(hex[8 - digits..].to_string())
        })?,
    )?;
    Ok(bit)
}

/// Argument `i` (from 0) of the library function `name`, a number, or
/// Lua's error for it.
fn number_arg(lua: &Lua, values: &[Value], i: usize, name: &str) -> mlua::Result<f64> {
    let got = match values.get(i) {
        Some(Value::Integer(n)) => return Ok(*n as f64),
        Some(Value::Number(n)) => return Ok(*n),
        Some(v @ Value::String(_)) => match lua.coerce_number(v.clone())? {
            Some(n) => return Ok(n),
            None => "string",
        },
        Some(v) => v.type_name(),
        None => "no value",
    };
    Err(lua_failure(
        lua,
        format!(
            "bad argument #{} to '{name}' (number expected, got {got})",
            i + 1
        ),
    ))
}

/// A Lua number as LuaBitOp reads it: rounded, then taken modulo 2^32.
fn tobit(x: f64) -> i32 {
    if !x.is_finite() {
        return 0;
    }
    x.round_ties_even().rem_euclid(4_294_967_296.0) as u64 as u32 as i32
}

/// Argument `i` (from 0) of the library function `name`, a string (a
/// number as Lua writes it), or Lua's error for it.
fn string_arg(lua: &Lua, values: &[Value], i: usize, name: &str) -> mlua::Result<Vec<u8>> {
    let got = match values.get(i) {
        Some(v @ (Value::String(_) | Value::Integer(_) | Value::Number(_))) => {
            if let Some(s) = lua.coerce_string(v.clone())? {
                return Ok(s.as_bytes().to_vec());
            }
            v.type_name()
        }
        Some(v) => v.type_name(),
        None => "no value",
    };
    Err(lua_failure(
        lua,
        format!(
            "bad argument #{} to '{name}' (string expected, got {got})",
            i + 1
        ),
    ))
}

/// `cjson`: `encode`, `decode` and `null`.
pub(super) fn cjson(lua: &Lua) -> mlua::Result<Table> {
    let cjson = lua.create_table()?;
    cjson.raw_set(
        "encode",
        lua.create_function(|lua, values: Variadic<Value>| {
            let [value] = values.as_slice() else {
                return Err(lua_failure(
                    lua,
                    "bad argument #1 to 'encode' (expected 1 argument)",
                ));
            };
            let mut out = String::new();
            encode(lua, value, 0, &mut out).map_err(|e| lua_failure(lua, e))?;
            lua.create_string(out)
        })?,
    )?;
    cjson.raw_set(
        "decode",
        lua.create_function(|lua, values: Variadic<Value>| {
            if values.len() != 1 {
                return Err(lua_failure(
                    lua,
                    "bad argument #1 to 'decode' (expected 1 argument)",
                ));
            }
            let text = string_arg(lua, &values, 0, "decode")?;
            if text.len() > JSON_BYTES {
                return Err(lua_failure(
                    lua,
                    format!("Cannot decode more than {} MiB of JSON", JSON_BYTES >> 20),
                ));
            }
            let parsed: serde_json::Value = serde_json::from_slice(&text)
                .map_err(|e| lua_failure(lua, format!("Expected a JSON value: {e}")))?;
            decode(lua, &parsed)
        })?,
    )?;
    cjson.raw_set("null", null())?;
    Ok(cjson)
}

/// `cjson.null`: a light userdata holding NULL, as lua-cjson's.
fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

fn encode(lua: &Lua, value: &Value, depth: usize, out: &mut String) -> Result<(), String> {
    if depth > JSON_DEPTH {
        return Err(format!(
            "Cannot serialise, excessive nesting ({})",
            JSON_DEPTH + 1
        ));
    }
    if out.len() > JSON_BYTES {
        return Err(format!(
            "Cannot serialise: more than {} MiB of JSON",
            JSON_BYTES >> 20
        ));
    }
    match value {
        Value::Nil => out.push_str("null"),
        Value::LightUserData(p) if p.0.is_null() => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Integer(_) | Value::Number(_) => out.push_str(&number(lua, value)?),
        Value::String(s) => string(&s.as_bytes(), out),
        Value::Table(t) => encode_table(lua, t, depth, out)?,
        other => {
            return Err(format!(
                "Cannot serialise {}: type not supported",
                other.type_name()
            ));
        }
    }
    Ok(())
}

/// A number as Lua writes it (`%.14g`); NaN and the infinities are not
/// JSON.
fn number(lua: &Lua, value: &Value) -> Result<String, String> {
    let n = match value {
        Value::Integer(i) => *i as f64,
        Value::Number(n) => *n,
        _ => unreachable!("called for numbers"),
    };
    if !n.is_finite() {
        return Err("Cannot serialise number: must not be NaN or Inf".into());
    }
    match lua.coerce_string(Value::Number(n)) {
        Ok(Some(s)) => Ok(s.to_string_lossy()),
        _ => Err("Cannot serialise number".into()),
    }
}

fn string(bytes: &[u8], out: &mut String) {
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '/' => out.push_str("\\/"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        // lua-cjson copies bytes that are not UTF-8 as they are; a Rust
        // string cannot hold them, so they become U+FFFD.
        if !chunk.invalid().is_empty() {
            out.push('\u{FFFD}');
        }
    }
    out.push('"');
}

/// A table is an array when every key is a positive integer and it is
/// not too sparse (lua-cjson's default: past index 10, at least half the
/// slots used); the holes are `null`. An empty table is `{}`.
fn encode_table(lua: &Lua, t: &Table, depth: usize, out: &mut String) -> Result<(), String> {
    let mut entries = Vec::new();
    let mut max_index = 0usize;
    let mut all_indexes = true;
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair.map_err(|e| e.to_string())?;
        match &k {
            Value::Integer(i) if *i >= 1 => max_index = max_index.max(*i as usize),
            Value::Number(n) if *n >= 1.0 && n.fract() == 0.0 => {
                max_index = max_index.max(*n as usize)
            }
            _ => all_indexes = false,
        }
        entries.push((k, v));
    }
    if entries.is_empty() {
        out.push_str("{}");
        return Ok(());
    }
    if all_indexes {
        if max_index > 10 && max_index > entries.len() * 2 {
            return Err("Cannot serialise table: excessively sparse array".into());
        }
        out.push('[');
        for i in 1..=max_index {
            if i > 1 {
                out.push(',');
            }
            let v = t.raw_get::<Value>(i).map_err(|e| e.to_string())?;
            encode(lua, &v, depth + 1, out)?;
        }
        out.push(']');
        return Ok(());
    }
    out.push('{');
    for (n, (k, v)) in entries.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        match k {
            Value::String(s) => string(&s.as_bytes(), out),
            Value::Integer(_) | Value::Number(_) => {
                string(number(lua, k)?.as_bytes(), out);
            }
            _ => return Err("Cannot serialise table: table key must be a number or string".into()),
        }
        out.push(':');
        encode(lua, v, depth + 1, out)?;
    }
    out.push('}');
    Ok(())
}

fn decode(lua: &Lua, value: &serde_json::Value) -> mlua::Result<Value> {
    use serde_json::Value as J;
    Ok(match value {
        J::Null => null(),
        J::Bool(b) => Value::Boolean(*b),
        J::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        J::String(s) => Value::String(lua.create_string(s)?),
        J::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_seti(i + 1, decode(lua, item)?)?;
            }
            Value::Table(t)
        }
        J::Object(fields) => {
            let t = lua.create_table_with_capacity(0, fields.len())?;
            for (k, v) in fields {
                t.raw_set(lua.create_string(k)?, decode(lua, v)?)?;
            }
            Value::Table(t)
        }
    })
}

/// How deep `cmsgpack.pack` nests tables; deeper ones pack as nil
/// (lua-cmsgpack's `LUACMSGPACK_MAX_NESTING`).
const MSGPACK_DEPTH: usize = 16;

/// `cmsgpack`: MessagePack as lua-cmsgpack writes and reads it. `pack`
/// takes any number of values and writes them one after another;
/// `unpack` reads every value back; `unpack_one` and `unpack_limit` read
/// one or `limit` from an offset and answer the next offset first (-1 at
/// the end).
pub(super) fn cmsgpack(lua: &Lua) -> mlua::Result<Table> {
    let cmsgpack = lua.create_table()?;
    cmsgpack.raw_set(
        "pack",
        lua.create_function(|lua, values: Variadic<Value>| {
            if values.is_empty() {
                return Err(lua_failure(
                    lua,
                    "bad argument #0 to 'pack' (MessagePack pack needs input.)",
                ));
            }
            let mut out = Vec::new();
            for value in values.iter() {
                pack(value, 0, &mut out);
                if out.len() > JSON_BYTES {
                    return Err(lua_failure(
                        lua,
                        format!("Cannot pack more than {} MiB", JSON_BYTES >> 20),
                    ));
                }
            }
            lua.create_string(out)
        })?,
    )?;
    cmsgpack.raw_set(
        "unpack",
        lua.create_function(|lua, values: Variadic<Value>| {
            let data = string_arg(lua, &values, 0, "unpack")?;
            let (_, values) = unpack_from(lua, &data, 0, usize::MAX)?;
            Ok(Variadic::from_iter(values))
        })?,
    )?;
    let limited = |lua: &Lua, values: &[Value], limit: usize, offset: usize, name: &str| {
        let bytes = string_arg(lua, values, 0, name)?;
        let offset = match values.get(offset) {
            None | Some(Value::Nil) => 0,
            Some(_) => number_arg(lua, values, offset, name)? as i64,
        };
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        if offset > bytes.len() {
            return Err(lua_failure(lua, "Start offset greater than input length."));
        }
        let (next, values) = unpack_from(lua, &bytes, offset, limit)?;
        let next = if next >= bytes.len() { -1 } else { next as i64 };
        Ok(Variadic::from_iter(
            std::iter::once(Value::Integer(next)).chain(values),
        ))
    };
    cmsgpack.raw_set(
        "unpack_one",
        lua.create_function(move |lua, values: Variadic<Value>| {
            limited(lua, &values, 1, 1, "unpack_one")
        })?,
    )?;
    cmsgpack.raw_set(
        "unpack_limit",
        lua.create_function(move |lua, values: Variadic<Value>| {
            let limit = number_arg(lua, &values, 1, "unpack_limit")? as i64;
            let limit = usize::try_from(limit).unwrap_or(0);
            let limit = if limit == 0 { usize::MAX } else { limit };
            limited(lua, &values, limit, 2, "unpack_limit")
        })?,
    )?;
    Ok(cmsgpack)
}

fn pack(value: &Value, depth: usize, out: &mut Vec<u8>) {
    match value {
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(n) => pack_int(*n, out),
        Value::Number(n) => {
            // As lua-cmsgpack: an integer if a 64-bit integer holds it
            // exactly, else a float 32 if one holds it, else a float 64.
            if n.is_finite()
                && *n >= -9.223_372_036_854_776e18
                && *n < 9.223_372_036_854_776e18
                && n.fract() == 0.0
            {
                pack_int(*n as i64, out);
            } else if f64::from(*n as f32) == *n {
                out.push(0xca);
                out.extend_from_slice(&(*n as f32).to_be_bytes());
            } else {
                out.push(0xcb);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        Value::String(s) => {
            let bytes = s.as_bytes();
            let len = bytes.len();
            if len < 32 {
                out.push(0xa0 | len as u8);
            } else if len <= 0xff {
                out.extend_from_slice(&[0xd9, len as u8]);
            } else if len <= 0xffff {
                out.push(0xda);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                out.push(0xdb);
                out.extend_from_slice(&(len as u32).to_be_bytes());
            }
            out.extend_from_slice(&bytes);
        }
        Value::Table(t) if depth < MSGPACK_DEPTH => pack_table(t, depth, out),
        _ => out.push(0xc0),
    }
}

fn pack_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// A table is an array when its keys are exactly 1 to n (an empty table
/// is one); any other table is a map, its pairs in Lua's order.
fn pack_table(t: &Table, depth: usize, out: &mut Vec<u8>) {
    let pairs: Vec<(Value, Value)> = t.pairs::<Value, Value>().filter_map(Result::ok).collect();
    let mut max = 0.0f64;
    let array = pairs.iter().all(|(k, _)| {
        let n = match k {
            Value::Integer(i) => *i as f64,
            Value::Number(n) => *n,
            _ => return false,
        };
        max = max.max(n);
        n > 0.0 && n.fract() == 0.0
    }) && max == pairs.len() as f64;
    let header = |out: &mut Vec<u8>, small: u8, len: usize, mid: u8| {
        if len <= 15 {
            out.push(small | len as u8);
        } else if len <= 0xffff {
            out.push(mid);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(mid + 1);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    };
    if array {
        header(out, 0x90, pairs.len(), 0xdc);
        for i in 1..=pairs.len() {
            pack(&t.raw_get::<Value>(i).unwrap_or(Value::Nil), depth + 1, out);
        }
    } else {
        header(out, 0x80, pairs.len(), 0xde);
        for (k, v) in &pairs {
            pack(k, depth + 1, out);
            pack(v, depth + 1, out);
        }
    }
}

/// Up to `limit` values from `data` at `at`; the offset after them.
fn unpack_from(
    lua: &Lua,
    data: &[u8],
    mut at: usize,
    limit: usize,
) -> mlua::Result<(usize, Vec<Value>)> {
    let mut values = Vec::new();
    while at < data.len() && values.len() < limit {
        let (value, next) = unpack_one(lua, data, at, 0)?;
        values.push(value);
        at = next;
    }
    Ok((at, values))
}

fn unpack_one(lua: &Lua, data: &[u8], at: usize, depth: usize) -> mlua::Result<(Value, usize)> {
    let missing = || lua_failure(lua, "Missing bytes in input.");
    let bad = || lua_failure(lua, "Bad data format in input.");
    if depth > JSON_DEPTH {
        return Err(bad());
    }
    let take = |from: usize, n: usize| {
        from.checked_add(n)
            .and_then(|end| data.get(from..end))
            .ok_or_else(missing)
    };
    let be = |bytes: &[u8]| bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let tag = *data.get(at).ok_or_else(missing)?;
    let at = at + 1;
    let string = |len: usize, from: usize| -> mlua::Result<(Value, usize)> {
        Ok((
            Value::String(lua.create_string(take(from, len)?)?),
            from + len,
        ))
    };
    let number = |n: f64, next: usize| Ok((Value::Number(n), next));
    match tag {
        0x00..=0x7f => number(f64::from(tag), at),
        0xe0..=0xff => number(f64::from(tag as i8), at),
        0xc0 => Ok((Value::Nil, at)),
        0xc2 => Ok((Value::Boolean(false), at)),
        0xc3 => Ok((Value::Boolean(true), at)),
        0xcc..=0xcf => {
            let n = 1 << (tag - 0xcc);
            number(be(take(at, n)?) as f64, at + n)
        }
        0xd0..=0xd3 => {
            let n = 1 << (tag - 0xd0);
            let raw = be(take(at, n)?);
            let shift = 64 - 8 * n as u32;
            number(((raw << shift) as i64 >> shift) as f64, at + n)
        }
        0xca => {
            let bits = be(take(at, 4)?) as u32;
            number(f64::from(f32::from_bits(bits)), at + 4)
        }
        0xcb => number(f64::from_bits(be(take(at, 8)?)), at + 8),
        0xa0..=0xbf => string(usize::from(tag & 0x1f), at),
        0xd9 | 0xc4 => string(be(take(at, 1)?) as usize, at + 1),
        0xda | 0xc5 => string(be(take(at, 2)?) as usize, at + 2),
        0xdb | 0xc6 => string(be(take(at, 4)?) as usize, at + 4),
        0x80..=0x9f | 0xdc..=0xdf => {
            let (len, mut at) = match tag {
                0x80..=0x9f => (usize::from(tag & 0x0f), at),
                0xdc | 0xde => (be(take(at, 2)?) as usize, at + 2),
                _ => (be(take(at, 4)?) as usize, at + 4),
            };
            let map = matches!(tag, 0x80..=0x8f | 0xde | 0xdf);
            // Each element takes a byte at least: a count past the bytes
            // left is refused before anything is made.
            if len > data.len() - at.min(data.len()) {
                return Err(missing());
            }
            let t = lua.create_table()?;
            for i in 1..=len {
                let (value, next) = unpack_one(lua, data, at, depth + 1)?;
                at = next;
                if map {
                    let (v, next) = unpack_one(lua, data, at, depth + 1)?;
                    at = next;
                    if value != Value::Nil {
                        t.raw_set(value, v)?;
                    }
                } else {
                    t.raw_set(i, value)?;
                }
            }
            Ok((Value::Table(t), at))
        }
        _ => Err(bad()),
    }
}
