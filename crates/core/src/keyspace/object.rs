//! OBJECT: how Redis 7.0 would hold a value, with its default settings;
//! and MEMORY USAGE: the bytes a key counts for here.
//!
//! distcache keeps its own layouts, so ENCODING is worked out from the
//! value as it is now: what Redis reports for a value built by plain
//! writes. Redis's conversions are one-way (a hash that once held a long
//! value stays `hashtable` after it is gone; a string changed by APPEND or
//! SETRANGE stays `raw`); that history is not kept here, and a value that
//! went through it answers its compact name (docs/commands.md, "OBJECT").

use bytes::Bytes;

use super::{Exec, Result, misrouted};
use crate::command::number::parse_i64;
use crate::command::{Command, CommandError, ObjectSub, Reply};
use crate::value::{HashValue, SetValue, Value, ZSetValue};

/// Redis's defaults: `set-max-intset-entries`, `hash-max-listpack-entries`
/// and `-value`, `zset-max-listpack-entries` and `-value`, and the longest
/// string held in one allocation with its object (`embstr`).
const INTSET_MAX_ENTRIES: usize = 512;
const HASH_LISTPACK_MAX_ENTRIES: usize = crate::value::HASH_LISTPACK_MAX_FIELDS;
const HASH_LISTPACK_MAX_VALUE: usize = 64;
const ZSET_LISTPACK_MAX_ENTRIES: usize = 128;
const ZSET_LISTPACK_MAX_VALUE: usize = 64;
const EMBSTR_MAX_BYTES: usize = 44;

/// Integers below this are Redis's shared objects: one object, referenced
/// by every key that holds the number.
const SHARED_INTEGERS: i64 = 10_000;
/// The reference count Redis reports for a shared object.
const SHARED_REFCOUNT: i64 = i32::MAX as i64;

const HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

const MEMORY_HELP: &[&str] = &[
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "USAGE <key> [SAMPLES <count>]",
    "    Return the bytes <key> and its value count for against CACHE_MAX_BYTES on",
    "    each replica (SAMPLES is accepted: every element is counted).",
    "HELP",
    "    Prints this help.",
];

impl Exec<'_> {
    pub(super) fn object_command(&mut self, c: &Command) -> Result<Reply> {
        let (key, sub) = match c {
            Command::ObjectHelp => {
                return Ok(Reply::Array(
                    HELP.iter().map(|l| Reply::Status((*l).into())).collect(),
                ));
            }
            Command::MemoryUsage { key } => {
                return Ok(self.entry(key).map_or(Reply::Null, |e| {
                    Reply::Integer((key.len() + e.value.heap_bytes()) as i64)
                }));
            }
            Command::MemoryOther("memory|help") => {
                return Ok(Reply::Array(
                    MEMORY_HELP
                        .iter()
                        .map(|l| Reply::Status((*l).into()))
                        .collect(),
                ));
            }
            Command::MemoryOther(full) => {
                return Err(CommandError::Relayed(format!(
                    "ERR MEMORY {} is not supported: a master holds no data, and each auxiliary's \
                     memory is in INFO memory and the metrics (/metrics)",
                    full.trim_start_matches("memory|").to_ascii_uppercase()
                )));
            }
            Command::Object { key, sub } => (key, *sub),
            other => return Err(misrouted(other)),
        };
        // A missing key is nil whatever was asked, as in Redis.
        let Some(value) = self.entry(key).map(|e| &e.value) else {
            return Ok(Reply::Null);
        };
        match sub {
            ObjectSub::Encoding => Ok(Reply::bulk(encoding(value).as_bytes())),
            ObjectSub::RefCount => Ok(Reply::Integer(match value {
                Value::Str(s) if shared_integer(&s.bytes) => SHARED_REFCOUNT,
                _ => 1,
            })),
            // The words Redis answers under an LRU policy, which is
            // distcache's (CONFIG GET maxmemory-policy: allkeys-lru).
            ObjectSub::Freq => Err(CommandError::Other(
                "An LFU maxmemory policy is not selected, access frequency not tracked. Please \
                 note that when switching between policies at runtime LRU and LFU data will \
                 take some time to adjust.",
            )),
            ObjectSub::IdleTime => Err(CommandError::Other(
                "OBJECT IDLETIME is not supported: distcache's LRU keeps the order in which keys \
                 were used, not the times",
            )),
        }
    }
}

/// Whether Redis would hold this set as an intset: its members in
/// ascending numeric order, which SMEMBERS and SSCAN answer.
pub(super) fn is_intset(s: &SetValue) -> bool {
    s.len() <= INTSET_MAX_ENTRIES && s.iter().all(|m| is_integer(m))
}

/// Whether Redis would hold this hash as a listpack: its fields in the
/// order they were added, which HSCAN answers whole.
pub(super) fn is_listpack_hash(h: &HashValue) -> bool {
    h.len() <= HASH_LISTPACK_MAX_ENTRIES
        && h.iter()
            .all(|(f, v)| f.len() <= HASH_LISTPACK_MAX_VALUE && v.len() <= HASH_LISTPACK_MAX_VALUE)
}

/// Whether Redis would hold this sorted set as a listpack: its members in
/// score order, which ZSCAN answers whole.
pub(super) fn is_listpack_zset(z: &ZSetValue) -> bool {
    z.len() <= ZSET_LISTPACK_MAX_ENTRIES
        && z.iter().all(|(m, _)| m.len() <= ZSET_LISTPACK_MAX_VALUE)
}

/// A set's members in the order Redis answers them for an intset
/// (ascending numbers), or `None` when Redis would not hold it as one.
pub(super) fn intset_order(s: &SetValue) -> Option<Vec<&Bytes>> {
    if s.len() > INTSET_MAX_ENTRIES {
        return None;
    }
    let mut members = s
        .iter()
        .map(|m| integer(m).map(|n| (n, m)))
        .collect::<Option<Vec<(i64, &Bytes)>>>()?;
    members.sort_unstable_by_key(|(n, _)| *n);
    Some(members.into_iter().map(|(_, m)| m).collect())
}

/// A string Redis holds as an integer: a 64-bit number written as Redis
/// writes it (no sign but `-`, no leading zero, not `-0`).
fn is_integer(b: &[u8]) -> bool {
    integer(b).is_some()
}

/// The number a string Redis holds as an integer stands for
/// ([`is_integer`]).
fn integer(b: &[u8]) -> Option<i64> {
    if b.len() > 20 {
        return None;
    }
    parse_i64(b).filter(|n| n.to_string().as_bytes() == b)
}

fn shared_integer(b: &[u8]) -> bool {
    is_integer(b) && parse_i64(b).is_some_and(|n| (0..SHARED_INTEGERS).contains(&n))
}

/// Redis 7.0's encoding name for a value like this one built by plain
/// writes.
fn encoding(value: &Value) -> &'static str {
    match value {
        // A HyperLogLog is edited in place: Redis holds it `raw`.
        Value::Str(s) if s.bytes.starts_with(b"HYLL") => "raw",
        Value::Str(s) if is_integer(&s.bytes) => "int",
        Value::Str(s) if s.bytes.len() <= EMBSTR_MAX_BYTES => "embstr",
        Value::Str(_) => "raw",
        Value::List(_) => "quicklist",
        Value::Set(s) if is_intset(s) => "intset",
        Value::Set(_) => "hashtable",
        Value::Hash(h) if is_listpack_hash(h) => "listpack",
        Value::Hash(_) => "hashtable",
        Value::ZSet(z) if is_listpack_zset(z) => "listpack",
        Value::ZSet(_) => "skiplist",
        Value::Stream(_) => "stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_those_redis_keeps_as_integers() {
        for yes in [
            "0",
            "1",
            "-1",
            "9999",
            "10000",
            "9223372036854775807",
            "-9223372036854775808",
        ] {
            assert!(is_integer(yes.as_bytes()), "{yes}");
        }
        for no in [
            "",
            "007",
            "-0",
            "+1",
            " 1",
            "1 ",
            "1.5",
            "0x10",
            "1e3",
            "9223372036854775808",
        ] {
            assert!(!is_integer(no.as_bytes()), "{no}");
        }
        assert!(shared_integer(b"9999") && !shared_integer(b"10000") && !shared_integer(b"-1"));
    }
}
