//! Replies to Lua values and back, as Redis converts them.
//!
//! A command's reply, as `redis.call` hands it to the script (RESP2 unless
//! the script asked for 3 with `redis.setresp(3)`):
//!
//! | reply | RESP2 | RESP3 |
//! |---|---|---|
//! | integer | number | number |
//! | bulk | string | string |
//! | status | `{ok = text}` | same |
//! | error | `{err = text}` (`redis.pcall`; `redis.call` raises it) | same |
//! | null | `false` | `nil` |
//! | array | sequence | sequence |
//! | map | flat sequence | `{map = {k = v}}` |
//! | set | sequence | `{set = {m = true}}` |
//! | double | string | `{double = n}` |
//! | boolean | 1 or 0 | `true` or `false` |
//!
//! A script's value, as the client gets it: a number is an integer (cut
//! toward zero), a string a bulk, `true` 1, `false` and `nil` null (but
//! after `redis.setresp(3)` a boolean is a boolean: `true` and `false`); a
//! table with a string `err` an error, with a string `ok` a status, with
//! `double`, `map` or `set` those replies, and any other table an array
//! of its elements up to the first `nil`.

use std::borrow::Cow;

use bytes::Bytes;
use mlua::{Lua, Table, Value};

use crate::command::number::format_double;
use crate::command::table::one_line;
use crate::command::{CommandError, Reply};

/// How deep a script's value may nest: deeper, the script answers an
/// error (Redis stops at its Lua stack's limit, about as deep). Below the
/// depth the internal protocol carries (`reply::codec::MAX_DEPTH`).
const MAX_DEPTH: usize = 100;

/// How large a script's reply may be: half the largest frame between a
/// master and an auxiliary, so that it always fits one.
const MAX_REPLY_BYTES: usize = 32 << 20;

/// `reply` as a script sees it.
pub(super) fn to_lua(lua: &Lua, reply: &Reply, resp3: bool) -> mlua::Result<Value> {
    Ok(match reply {
        Reply::Status(text) => field(lua, "ok", lua.create_string(text.as_bytes())?)?,
        Reply::Error(e) => field(lua, "err", lua.create_string(e.to_string())?)?,
        Reply::Integer(n) => Value::Number(*n as f64),
        Reply::Bulk(b) => Value::String(lua.create_string(b)?),
        Reply::Null | Reply::NullArray if resp3 => Value::Nil,
        Reply::Null | Reply::NullArray => Value::Boolean(false),
        Reply::Array(items) => sequence(lua, items.iter(), resp3)?,
        Reply::Set(items) if resp3 => {
            let members = lua.create_table()?;
            for item in items {
                members.raw_set(to_lua(lua, item, resp3)?, true)?;
            }
            field(lua, "set", members)?
        }
        Reply::Set(items) => sequence(lua, items.iter(), resp3)?,
        Reply::Map(pairs) | Reply::Keyed(pairs) if resp3 => {
            let map = lua.create_table()?;
            for (k, v) in pairs {
                map.raw_set(to_lua(lua, k, resp3)?, to_lua(lua, v, resp3)?)?;
            }
            field(lua, "map", map)?
        }
        // RESP2 nests a stream reply's pairs too.
        Reply::Pairs(pairs) if resp3 => nested_pairs(lua, pairs, resp3)?,
        Reply::Keyed(pairs) => nested_pairs(lua, pairs, resp3)?,
        Reply::Map(pairs) | Reply::Pairs(pairs) => {
            sequence(lua, pairs.iter().flat_map(|(k, v)| [k, v]), resp3)?
        }
        Reply::Double(d) if resp3 => field(lua, "double", *d)?,
        Reply::DoubleText(t) if resp3 => field(lua, "double", t.parse::<f64>().unwrap_or(0.0))?,
        Reply::DoubleText(t) => Value::String(lua.create_string(t)?),
        Reply::Double(d) => Value::String(lua.create_string(format_double(*d))?),
        Reply::Boolean(b) if resp3 => Value::Boolean(*b),
        Reply::Boolean(b) => Value::Number(f64::from(u8::from(*b))),
    })
}

/// Pairs as a sequence of two-element sequences.
fn nested_pairs(lua: &Lua, pairs: &[(Reply, Reply)], resp3: bool) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(pairs.len(), 0)?;
    for (i, (k, v)) in pairs.iter().enumerate() {
        let pair = lua.create_table_with_capacity(2, 0)?;
        pair.raw_seti(1, to_lua(lua, k, resp3)?)?;
        pair.raw_seti(2, to_lua(lua, v, resp3)?)?;
        t.raw_seti(i + 1, pair)?;
    }
    Ok(Value::Table(t))
}

/// `{name = value}`.
fn field(lua: &Lua, name: &str, value: impl mlua::IntoLua) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(0, 1)?;
    t.raw_set(name, value)?;
    Ok(Value::Table(t))
}

fn sequence<'r>(
    lua: &Lua,
    items: impl Iterator<Item = &'r Reply>,
    resp3: bool,
) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    for (i, item) in items.enumerate() {
        t.raw_seti(i + 1, to_lua(lua, item, resp3)?)?;
    }
    Ok(Value::Table(t))
}

/// A script's value as its reply (`resp3`: the script last asked for
/// RESP3 with `redis.setresp(3)`). A value nested past [`MAX_DEPTH`], or
/// larger than [`MAX_REPLY_BYTES`], answers an error instead: the reply
/// must fit the frame that carries it back to the master.
pub(super) fn to_reply(value: &Value, resp3: bool) -> Reply {
    let mut budget = MAX_REPLY_BYTES;
    match reply_at(value, 0, resp3, &mut budget) {
        Ok(reply) => reply,
        Err(TooBig::Deep) => Reply::Error(CommandError::Relayed(format!(
            "ERR reached lua stack limit: the script's reply nests more than {MAX_DEPTH} levels deep"
        ))),
        Err(TooBig::Large) => Reply::Error(CommandError::Relayed(format!(
            "ERR the script's reply is larger than {} MiB",
            MAX_REPLY_BYTES >> 20
        ))),
    }
}

/// Why a script's value cannot be its reply.
enum TooBig {
    Deep,
    Large,
}

/// Takes `n` bytes from `budget` (each element counts 16 besides its
/// bytes, about what it costs on the wire and in memory).
fn spend(budget: &mut usize, n: usize) -> Result<(), TooBig> {
    *budget = budget.checked_sub(n + 16).ok_or(TooBig::Large)?;
    Ok(())
}

fn reply_at(value: &Value, depth: usize, resp3: bool, budget: &mut usize) -> Result<Reply, TooBig> {
    Ok(match value {
        Value::Boolean(b) if resp3 => {
            spend(budget, 0)?;
            Reply::Boolean(*b)
        }
        Value::String(s) => {
            let bytes = s.as_bytes();
            spend(budget, bytes.len())?;
            Reply::Bulk(Bytes::copy_from_slice(&bytes))
        }
        Value::Table(_) if depth >= MAX_DEPTH => return Err(TooBig::Deep),
        Value::Table(t) => table_reply(t, depth, resp3, budget)?,
        other => {
            spend(budget, 0)?;
            match other {
                Value::Boolean(true) => Reply::Integer(1),
                Value::Integer(n) => Reply::Integer(*n),
                Value::Number(n) => Reply::Integer(truncated(*n)),
                _ => Reply::Null,
            }
        }
    })
}

/// A Lua number as Redis's integer: cut toward zero; what does not fit
/// (infinities, NaN, 1e20) is `i64::MIN`, as Redis's C cast gives on the
/// machines it runs on.
fn truncated(n: f64) -> i64 {
    if n.is_finite() && n > -9.223_372_036_854_776e18 && n < 9.223_372_036_854_776e18 {
        n.trunc() as i64
    } else {
        i64::MIN
    }
}

fn table_reply(t: &Table, depth: usize, resp3: bool, budget: &mut usize) -> Result<Reply, TooBig> {
    let text = |name: &str| match t.raw_get::<Value>(name) {
        Ok(Value::String(s)) => Some(s.to_string_lossy()),
        _ => None,
    };
    spend(budget, 0)?;
    if let Some(err) = text("err") {
        return Ok(Reply::Error(CommandError::Relayed(one_line(&err))));
    }
    if let Some(ok) = text("ok") {
        return Ok(Reply::Status(Cow::Owned(one_line(&ok))));
    }
    match t.raw_get::<Value>("double") {
        Ok(Value::Number(d)) => return Ok(Reply::Double(d)),
        Ok(Value::Integer(d)) => return Ok(Reply::Double(d as f64)),
        _ => {}
    }
    let deeper = |v: &Value, budget: &mut usize| reply_at(v, depth + 1, resp3, budget);
    if let Ok(Value::Table(map)) = t.raw_get::<Value>("map") {
        let mut pairs = Vec::new();
        for (k, v) in map.pairs::<Value, Value>().filter_map(Result::ok) {
            pairs.push((deeper(&k, budget)?, deeper(&v, budget)?));
        }
        return Ok(Reply::Map(pairs));
    }
    if let Ok(Value::Table(set)) = t.raw_get::<Value>("set") {
        let mut members = Vec::new();
        for (k, _) in set.pairs::<Value, Value>().filter_map(Result::ok) {
            members.push(deeper(&k, budget)?);
        }
        return Ok(Reply::Set(members));
    }
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(deeper(&v, budget)?),
        }
    }
    Ok(Reply::Array(items))
}
