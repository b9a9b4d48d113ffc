//! The libraries Redis gives scripts beyond Lua's own: `bit` (LuaBitOp's
//! functions on 32-bit integers) and `cjson` (JSON, with lua-cjson's
//! choices: `cjson.null` for JSON's null, an empty table encoded as `{}`,
//! numbers as Lua writes them, `/` escaped). `cmsgpack` and `struct` are
//! not provided (docs/commands.md, "Scripting").

use std::fmt::Write;

use mlua::{LightUserData, Lua, Table, Value, Variadic};

use super::failure::lua_failure;

/// How deep `cjson` nests, at most (lua-cjson's default).
const JSON_DEPTH: usize = 1000;

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

/// `cjson`: `encode`, `decode` and `null`.
pub(super) fn cjson(lua: &Lua) -> mlua::Result<Table> {
    let cjson = lua.create_table()?;
    cjson.raw_set(
        "encode",
        lua.create_function(|lua, value: Value| {
            let mut out = String::new();
            encode(lua, &value, 0, &mut out).map_err(|e| lua_failure(lua, e))?;
            lua.create_string(out)
        })?,
    )?;
    cjson.raw_set(
        "decode",
        lua.create_function(|lua, text: mlua::LuaString| {
            if text.as_bytes().len() > JSON_BYTES {
                return Err(lua_failure(
                    lua,
                    format!("Cannot decode more than {} MiB of JSON", JSON_BYTES >> 20),
                ));
            }
            let parsed: serde_json::Value = serde_json::from_slice(&text.as_bytes())
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
        return Err("Cannot serialise, excessive nesting (1001)".into());
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
