//! The command table: every command distcache accepts, declared once.
//! Lookup, arity checks, the role a token needs, key positions (for routing
//! and for RESP's `COMMAND INFO`), the flags and tips clients read, the
//! parser, and `docs/commands.md` all come from these rows.

use std::iter::StepBy;
use std::ops::Range;
use std::sync::LazyLock;

use bytes::Bytes;

use super::by_name::ByName;
use super::command::Command;
use super::error::CommandError;
use super::parse::{self as p, Parser};
use super::{geo, sort, stream};

/// Flags, as RESP's `COMMAND` reports them, plus Redis 7's command tips.
pub mod flags {
    /// May modify the keyspace.
    pub const WRITE: u32 = 1 << 0;
    /// Never modifies the keyspace.
    pub const READONLY: u32 = 1 << 1;
    /// May grow memory use: refused when the node is out of memory.
    pub const DENYOOM: u32 = 1 << 2;
    /// O(1) or O(log n): never a slow command.
    pub const FAST: u32 = 1 << 3;
    /// Needs the admin role (FLUSHALL, FLUSHDB).
    pub const ADMIN: u32 = 1 << 4;
    /// Allowed while loading; part of the transaction machinery.
    pub const TRANSACTION: u32 = 1 << 5;
    /// Tip `nondeterministic_output`: the reply depends on randomness (or,
    /// for TTL and PTTL, on the clock).
    pub const RANDOM_OUTPUT: u32 = 1 << 6;
    /// Tip `nondeterministic_output_order`: the reply's elements are a set
    /// in an unspecified order.
    pub const UNORDERED_OUTPUT: u32 = 1 << 7;
    /// Pub/Sub: answered by the master the client is connected to, never
    /// by the keyspace (Redis's `pubsub` flag, with `loading` and `stale`).
    pub const PUBSUB: u32 = 1 << 8;
    /// Needs the write role though it changes no key: PUBLISH, which
    /// reaches every subscriber of the cluster.
    pub const WRITE_ROLE: u32 = 1 << 9;
    /// Changes what the connection receives (SUBSCRIBE and its family):
    /// Redis's `noscript`, and allowed in RESP2's subscribed mode.
    pub const SUBSCRIPTION: u32 = 1 << 10;
    /// May block its connection until a key has something (BLPOP and its
    /// family): a RESP connection waits; inside MULTI and over HTTP it
    /// answers at once, as on a timeout.
    pub const BLOCKING: u32 = 1 << 11;
    /// EVAL, EVALSHA, their read-only forms and SCRIPT: Redis's
    /// `noscript` and `@scripting`. The master handles them itself (the
    /// script cache, EVALSHA's lookup), so a pipeline runs each alone.
    pub const SCRIPTING: u32 = 1 << 12;
    /// A container of subcommands (XGROUP, XINFO): `COMMAND INFO`
    /// reports it without keys or access flags, as Redis does for its
    /// containers, though its key (at 2) routes it and its access
    /// decides the role and the path like any command's.
    pub const CONTAINER: u32 = 1 << 13;
    /// Redis files it as a read, but it may change its key (PFCOUNT
    /// caches the count in the HyperLogLog): routed as a write here, it
    /// needs only the read role and `COMMAND INFO` reports it `readonly`
    /// (Redis's `may_replicate`); a read-only script may not call it, as
    /// in Redis 7.0.
    pub const MAY_REPLICATE: u32 = 1 << 14;
}

use flags::*;

/// The role a bearer token (or RESP `AUTH`) must hold to run a command, as
/// in the REST API: admin ⊇ write ⊇ read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads.
    Read,
    /// Writes.
    Write,
    /// Administration.
    Admin,
}

impl Role {
    /// The role's name in token files and messages: `read`, `write`, `admin`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

/// The Redis documentation group a command belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// Strings and counters.
    String,
    /// Commands on keys of any type.
    Generic,
    /// Hashes.
    Hash,
    /// Lists.
    List,
    /// Sets.
    Set,
    /// Sorted sets.
    SortedSet,
    /// MULTI/EXEC.
    Transactions,
    /// The server as a whole (FLUSHALL, FLUSHDB).
    Server,
    /// Publish and subscribe.
    PubSub,
    /// Lua scripts.
    Scripting,
    /// Strings as arrays of bits.
    Bitmap,
    /// Streams.
    Stream,
    /// Geospatial indexes.
    Geo,
    /// HyperLogLogs.
    HyperLogLog,
}

impl Group {
    /// Redis's name for the group.
    pub fn name(self) -> &'static str {
        match self {
            Group::String => "string",
            Group::Generic => "generic",
            Group::Hash => "hash",
            Group::List => "list",
            Group::Set => "set",
            Group::SortedSet => "sorted-set",
            Group::Transactions => "transactions",
            Group::Server => "server",
            Group::PubSub => "pubsub",
            Group::Scripting => "scripting",
            Group::Bitmap => "bitmap",
            Group::Stream => "stream",
            Group::Geo => "geo",
            Group::HyperLogLog => "hyperloglog",
        }
    }
}

/// Where the keys are in the argument vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySpec {
    /// No key.
    None,
    /// Redis's legacy (first, last, step): `last` negative counts from the
    /// end (-1 is the last argument).
    Range {
        /// Index of the first key.
        first: usize,
        /// Index of the last key; negative from the end.
        last: i32,
        /// Distance between keys.
        step: usize,
    },
    /// `numkeys key...` with the count at `at` (SINTERCARD).
    NumKeys {
        /// Index of the count.
        at: usize,
    },
    /// A destination key at 1, then `numkeys key...` with the count at
    /// `at` (ZUNIONSTORE).
    StoreNumKeys {
        /// Index of the count.
        at: usize,
    },
    /// The first half of what follows the word STREAMS (XREAD,
    /// XREADGROUP).
    Streams,
    /// The key at 1, and the key after each STORE or STOREDIST from
    /// `options_at` on (GEORADIUS, GEORADIUSBYMEMBER).
    GeoStore {
        /// Where the options start.
        options_at: usize,
    },
    /// The key at 1, and the last STORE's key (SORT).
    Sort,
    /// Shard channels from 1 to `last` (SSUBSCRIBE, SPUBLISH): never keys
    /// of the keyspace, but shown where keys would be, as Redis shows them
    /// (a `not_key` key spec), so that a cluster client sends them by
    /// their slot.
    Channels {
        /// Index of the last channel; negative from the end.
        last: i32,
    },
}

impl KeySpec {
    /// Whether the keys are found by a count among the arguments (Redis's
    /// `movablekeys`).
    pub fn movable(&self) -> bool {
        matches!(
            self,
            KeySpec::NumKeys { .. }
                | KeySpec::StoreNumKeys { .. }
                | KeySpec::Streams
                | KeySpec::GeoStore { .. }
                | KeySpec::Sort
        )
    }
}

/// The positions of a command's keys, first to last
/// ([`CommandSpec::key_positions`]).
#[derive(Clone, Debug)]
pub struct KeyPositions {
    /// A destination key before the others.
    first: Option<usize>,
    /// The others.
    rest: StepBy<Range<usize>>,
    /// Keys found one by one (GEORADIUS's STORE keys); empty otherwise.
    listed: std::vec::IntoIter<usize>,
}

impl Iterator for KeyPositions {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        self.first
            .take()
            .or_else(|| self.rest.next())
            .or_else(|| self.listed.next())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (low, high) = self.rest.size_hint();
        let first = usize::from(self.first.is_some()) + self.listed.len();
        (low + first, high.map(|h| h + first))
    }
}

/// One command.
#[derive(Clone, Copy)]
pub struct CommandSpec {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis's arity: exactly `n` arguments (name included) when positive,
    /// at least `-n` when negative.
    pub arity: i32,
    /// Bits of [`flags`].
    pub flags: u32,
    /// Its group.
    pub group: Group,
    /// Its keys.
    pub keys: KeySpec,
    /// Its parser.
    pub parse: Parser,
    /// One line for the documentation.
    pub summary: &'static str,
}

impl std::fmt::Debug for CommandSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandSpec")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl CommandSpec {
    /// The role needed: admin if flagged so, write for writes, else read.
    pub fn role(&self) -> Role {
        if self.flags & ADMIN != 0 {
            Role::Admin
        } else if self.flags & (WRITE | WRITE_ROLE) != 0 && self.flags & MAY_REPLICATE == 0 {
            Role::Write
        } else {
            Role::Read
        }
    }

    /// Whether `flag` (one of [`flags`]) is set.
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// Whether `argc` arguments (name included) pass the arity check.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = i64::try_from(argc).unwrap_or(i64::MAX);
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    /// The indexes of the keys in `args` (which passed the arity check).
    pub fn key_indexes(&self, args: &[Bytes]) -> Vec<usize> {
        self.key_positions(args).collect()
    }

    /// [`CommandSpec::key_indexes`] without collecting them: routing looks
    /// at every pipelined command's keys.
    pub fn key_positions(&self, args: &[Bytes]) -> KeyPositions {
        let numkeys = |at: usize| {
            let n = args
                .get(at)
                .and_then(|a| super::number::parse_i64(a))
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(0);
            (at + 1, (at + 1).saturating_add(n).min(args.len()), 1)
        };
        let mut first = None;
        let mut listed = Vec::new();
        let (start, end, step) = match self.keys {
            KeySpec::None | KeySpec::Channels { .. } => (0, 0, 1),
            KeySpec::Range { first, last, step } => {
                let last = if last < 0 {
                    args.len() as i64 + i64::from(last)
                } else {
                    i64::from(last)
                };
                let last = usize::try_from(last)
                    .unwrap_or(0)
                    .min(args.len().saturating_sub(1));
                (first, last + 1, step.max(1))
            }
            KeySpec::NumKeys { at } => numkeys(at),
            KeySpec::StoreNumKeys { at } => {
                first = (args.len() > 1).then_some(1);
                numkeys(at)
            }
            KeySpec::Streams => {
                let keys = super::stream::read_keys(args);
                (keys.start, keys.end, 1)
            }
            KeySpec::GeoStore { options_at } => {
                listed = super::geo::radius_keys(args, options_at);
                (0, 0, 1)
            }
            KeySpec::Sort => {
                listed.extend(sort::store_key(args));
                (1, 2.min(args.len()), 1)
            }
        };
        KeyPositions {
            first,
            rest: (start..end).step_by(step),
            listed: listed.into_iter(),
        }
    }

    /// Redis's (first, last, step) for `COMMAND INFO` (0, 0, 0 when the keys
    /// are found another way, as Redis reports for numkeys commands).
    pub fn legacy_key_range(&self) -> (i64, i64, i64) {
        if self.has(CONTAINER) {
            return (0, 0, 0);
        }
        match self.keys {
            KeySpec::Range { first, last, step } => (first as i64, i64::from(last), step as i64),
            KeySpec::Channels { last } => (1, i64::from(last), 1),
            KeySpec::None | KeySpec::NumKeys { .. } | KeySpec::Streams => (0, 0, 0),
            KeySpec::GeoStore { .. } | KeySpec::Sort => (1, 1, 1),
            // The destination; the others are found by their count.
            KeySpec::StoreNumKeys { .. } => (1, 1, 1),
        }
    }
}

const fn range(first: usize, last: i32, step: usize) -> KeySpec {
    KeySpec::Range { first, last, step }
}
const ONE: KeySpec = range(1, 1, 1);
const ALL: KeySpec = range(1, -1, 1);
const TWO: KeySpec = range(1, 2, 1);

const W: u32 = WRITE;
const R: u32 = READONLY;

macro_rules! c {
    ($name:literal, $arity:literal, $flags:expr, $group:ident, $keys:expr, $parse:expr, $summary:literal) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
            group: Group::$group,
            keys: $keys,
            parse: $parse,
            summary: $summary,
        }
    };
}

/// Every command, sorted by name (a test keeps it so: lookup is a binary search).
#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    c!("append", 3, W | DENYOOM | FAST, String, ONE, |a| Ok(Command::Append { key: a[1].clone(), value: a[2].clone() }), "Appends to a string"),
    c!("bitcount", -2, R, Bitmap, ONE, p::bitcount, "Counts the set bits of a string, or of a range of its bytes or bits"),
    c!("bitfield", -2, W | DENYOOM, Bitmap, ONE, p::bitfield, "Reads, writes and increments integers of any width at any bit offset"),
    c!("bitfield_ro", -2, R | FAST, Bitmap, ONE, p::bitfield_ro, "BITFIELD with GET only"),
    c!("bitop", -4, W | DENYOOM, Bitmap, range(2, -1, 1), p::bitop, "AND, OR, XOR or NOT of strings into a key"),
    c!("bitpos", -3, R, Bitmap, ONE, p::bitpos, "The first bit set to 1 or 0, in a string or a range"),
    c!("blmove", 6, W | DENYOOM | BLOCKING, List, TWO, p::blmove, "LMOVE, waiting for an element"),
    c!("blmpop", -5, W | BLOCKING, List, KeySpec::NumKeys { at: 2 }, p::blmpop, "LMPOP, waiting for an element"),
    c!("blpop", -3, W | BLOCKING, List, range(1, -2, 1), p::blpop, "Pops from the head of the first non-empty list, waiting for one"),
    c!("brpop", -3, W | BLOCKING, List, range(1, -2, 1), p::brpop, "Pops from the tail of the first non-empty list, waiting for one"),
    c!("brpoplpush", 4, W | DENYOOM | BLOCKING, List, TWO, p::brpoplpush, "RPOPLPUSH, waiting for an element"),
    c!("bzmpop", -5, W | BLOCKING, SortedSet, KeySpec::NumKeys { at: 2 }, p::bzmpop, "ZMPOP, waiting for a member"),
    c!("bzpopmax", -3, W | FAST | BLOCKING, SortedSet, range(1, -2, 1), p::bzpopmax, "Pops the highest-scored member of the first non-empty sorted set, waiting for one"),
    c!("bzpopmin", -3, W | FAST | BLOCKING, SortedSet, range(1, -2, 1), p::bzpopmin, "Pops the lowest-scored member of the first non-empty sorted set, waiting for one"),
    c!("copy", -3, W | DENYOOM, Generic, TWO, p::copy, "Copies a key's value and TTL to another key"),
    c!("dbsize", 1, R | FAST, Generic, KeySpec::None, |_| Ok(Command::DbSize), "Number of keys"),
    c!("decr", 2, W | DENYOOM | FAST, String, ONE, |a| Ok(Command::IncrBy { key: a[1].clone(), by: -1 }), "Decrements an integer by one"),
    c!("decrby", 3, W | DENYOOM | FAST, String, ONE, p::decrby, "Decrements an integer"),
    c!("del", -2, W, Generic, ALL, |a| Ok(Command::Del { keys: p::keys_from(a, 1) }), "Deletes keys"),
    c!("discard", 1, TRANSACTION | FAST, Transactions, KeySpec::None, |_| Ok(Command::Discard), "Drops the queued transaction"),
    c!("eval", -3, W | SCRIPTING, Scripting, KeySpec::NumKeys { at: 2 }, p::eval, "Runs a Lua script over its declared keys, where they live"),
    c!("eval_ro", -3, R | SCRIPTING, Scripting, KeySpec::NumKeys { at: 2 }, p::eval_ro, "EVAL for a script that only reads"),
    c!("evalsha", -3, W | SCRIPTING, Scripting, KeySpec::NumKeys { at: 2 }, p::evalsha, "EVAL of a script known by its SHA1"),
    c!("evalsha_ro", -3, R | SCRIPTING, Scripting, KeySpec::NumKeys { at: 2 }, p::evalsha_ro, "EVALSHA for a script that only reads"),
    c!("exec", 1, TRANSACTION, Transactions, KeySpec::None, |_| Ok(Command::Exec), "Runs the queued transaction"),
    c!("exists", -2, R | FAST, Generic, ALL, |a| Ok(Command::Exists { keys: p::keys_from(a, 1) }), "Counts the keys that exist"),
    c!("expire", -3, W | FAST, Generic, ONE, p::expire, "Sets a TTL in seconds"),
    c!("expireat", -3, W | FAST, Generic, ONE, p::expireat, "Sets an expiry as a Unix time in seconds"),
    c!("expiretime", 2, R | FAST, Generic, ONE, |a| Ok(Command::ExpireTime { key: a[1].clone(), ms: false }), "Expiry as a Unix time in seconds"),
    c!("flushall", -1, W | ADMIN, Server, KeySpec::None, p::flush, "Deletes every key of the cluster (admin; ASYNC and SYNC accepted)"),
    c!("flushdb", -1, W | ADMIN, Server, KeySpec::None, p::flush, "Deletes every key of the cluster, as FLUSHALL (database 0 is the only one)"),
    c!("geoadd", -5, W | DENYOOM, Geo, ONE, geo::geoadd, "Adds points (longitude, latitude, member) to a geospatial index"),
    c!("geodist", -4, R, Geo, ONE, geo::geodist, "The distance between two members"),
    c!("geohash", -2, R, Geo, ONE, geo::geohash, "Members' positions as standard geohash strings"),
    c!("geopos", -2, R, Geo, ONE, geo::geopos, "Members' longitudes and latitudes"),
    c!("georadius", -6, W | DENYOOM, Geo, KeySpec::GeoStore { options_at: 6 }, geo::georadius, "Members within a radius of a point, or stored (STORE)"),
    c!("georadius_ro", -6, R, Geo, ONE, geo::georadius_ro, "GEORADIUS without STORE"),
    c!("georadiusbymember", -5, W | DENYOOM, Geo, KeySpec::GeoStore { options_at: 5 }, geo::georadiusbymember, "Members within a radius of a member, or stored (STORE)"),
    c!("georadiusbymember_ro", -5, R, Geo, ONE, geo::georadiusbymember_ro, "GEORADIUSBYMEMBER without STORE"),
    c!("geosearch", -7, R, Geo, ONE, geo::geosearch, "Members within a radius or a box of a point or a member"),
    c!("geosearchstore", -8, W | DENYOOM, Geo, TWO, geo::geosearchstore, "GEOSEARCH into a sorted set"),
    c!("get", 2, R | FAST, String, ONE, |a| Ok(Command::Get { key: a[1].clone() }), "Gets a string"),
    c!("getbit", 3, R | FAST, Bitmap, ONE, p::getbit, "The bit at an offset"),
    c!("getdel", 2, W | FAST, String, ONE, |a| Ok(Command::GetDel { key: a[1].clone() }), "Gets a string and deletes the key"),
    c!("getex", -2, W | FAST, String, ONE, p::getex, "Gets a string and changes its TTL"),
    c!("getrange", 4, R, String, ONE, |a| Ok(Command::GetRange { key: a[1].clone(), start: p::int_arg(&a[2])?, end: p::int_arg(&a[3])? }), "A substring"),
    c!("getset", 3, W | DENYOOM | FAST, String, ONE, p::getset, "Sets a string, answering the old one"),
    c!("hdel", -3, W | FAST, Hash, ONE, |a| Ok(Command::HDel { key: a[1].clone(), fields: p::keys_from(a, 2) }), "Deletes hash fields"),
    c!("hexists", 3, R | FAST, Hash, ONE, |a| Ok(Command::HExists { key: a[1].clone(), field: a[2].clone() }), "Whether a hash field exists"),
    c!("hget", 3, R | FAST, Hash, ONE, |a| Ok(Command::HGet { key: a[1].clone(), field: a[2].clone() }), "A hash field's value"),
    c!("hgetall", 2, R | UNORDERED_OUTPUT, Hash, ONE, |a| Ok(Command::HGetAll { key: a[1].clone() }), "Every field and value"),
    c!("hincrby", 4, W | DENYOOM | FAST, Hash, ONE, p::hincrby, "Increments an integer field"),
    c!("hincrbyfloat", 4, W | DENYOOM | FAST, Hash, ONE, |a| Ok(Command::HIncrByFloat { key: a[1].clone(), field: a[2].clone(), by: a[3].clone() }), "Increments a float field"),
    c!("hkeys", 2, R | UNORDERED_OUTPUT, Hash, ONE, |a| Ok(Command::HKeys { key: a[1].clone() }), "Every field"),
    c!("hlen", 2, R | FAST, Hash, ONE, |a| Ok(Command::HLen { key: a[1].clone() }), "Number of fields"),
    c!("hmget", -3, R | FAST, Hash, ONE, |a| Ok(Command::HMGet { key: a[1].clone(), fields: p::keys_from(a, 2) }), "Values of several fields"),
    c!("hmset", -4, W | DENYOOM | FAST, Hash, ONE, p::hmset, "Sets fields (answers OK)"),
    c!("hrandfield", -2, R | RANDOM_OUTPUT, Hash, ONE, p::hrandfield, "Random fields"),
    c!("hscan", -3, R | RANDOM_OUTPUT, Hash, ONE, |a| { let (key, cursor, opts) = p::key_scan(a)?; Ok(Command::HScan { key, cursor, opts }) }, "Iterates fields and values"),
    c!("hset", -4, W | DENYOOM | FAST, Hash, ONE, p::hset, "Sets fields"),
    c!("hsetnx", 4, W | DENYOOM | FAST, Hash, ONE, |a| Ok(Command::HSetNx { key: a[1].clone(), field: a[2].clone(), value: a[3].clone() }), "Sets a field if it is new"),
    c!("hstrlen", 3, R | FAST, Hash, ONE, |a| Ok(Command::HStrLen { key: a[1].clone(), field: a[2].clone() }), "Length of a field's value"),
    c!("hvals", 2, R | UNORDERED_OUTPUT, Hash, ONE, |a| Ok(Command::HVals { key: a[1].clone() }), "Every value"),
    c!("incr", 2, W | DENYOOM | FAST, String, ONE, |a| Ok(Command::IncrBy { key: a[1].clone(), by: 1 }), "Increments an integer by one"),
    c!("incrby", 3, W | DENYOOM | FAST, String, ONE, p::incrby, "Increments an integer"),
    c!("incrbyfloat", 3, W | DENYOOM | FAST, String, ONE, |a| Ok(Command::IncrByFloat { key: a[1].clone(), by: a[2].clone() }), "Increments a float"),
    c!("keys", 2, R | UNORDERED_OUTPUT, Generic, KeySpec::None, |a| Ok(Command::Keys { pattern: a[1].clone() }), "Keys matching a pattern"),
    c!("lcs", -3, R, String, TWO, p::lcs, "The longest common subsequence of two strings, its length or where it matches"),
    c!("lindex", 3, R, List, ONE, |a| Ok(Command::LIndex { key: a[1].clone(), index: p::int_arg(&a[2]) }), "An element by index"),
    c!("linsert", 5, W | DENYOOM, List, ONE, p::linsert, "Inserts before or after an element"),
    c!("llen", 2, R | FAST, List, ONE, |a| Ok(Command::LLen { key: a[1].clone() }), "Length of a list"),
    c!("lmove", 5, W | DENYOOM, List, TWO, p::lmove, "Pops from one list and pushes onto another"),
    c!("lmpop", -4, W, List, KeySpec::NumKeys { at: 1 }, p::lmpop, "Pops from the first non-empty list"),
    c!("lpop", -2, W | FAST, List, ONE, p::lpop, "Pops from the head"),
    c!("lpos", -3, R, List, ONE, p::lpos, "Positions of matching elements"),
    c!("lpush", -3, W | DENYOOM | FAST, List, ONE, |a| Ok(Command::Push { key: a[1].clone(), front: true, only_if_exists: false, elements: p::keys_from(a, 2) }), "Pushes onto the head"),
    c!("lpushx", -3, W | DENYOOM | FAST, List, ONE, |a| Ok(Command::Push { key: a[1].clone(), front: true, only_if_exists: true, elements: p::keys_from(a, 2) }), "Pushes onto the head of an existing list"),
    c!("lrange", 4, R, List, ONE, |a| Ok(Command::LRange { key: a[1].clone(), start: p::int_arg(&a[2])?, stop: p::int_arg(&a[3])? }), "A range of elements"),
    c!("lrem", 4, W, List, ONE, |a| Ok(Command::LRem { key: a[1].clone(), count: p::int_arg(&a[2])?, element: a[3].clone() }), "Removes matching elements"),
    c!("lset", 4, W | DENYOOM, List, ONE, |a| Ok(Command::LSet { key: a[1].clone(), index: p::int_arg(&a[2]), element: a[3].clone() }), "Replaces an element by index"),
    c!("ltrim", 4, W, List, ONE, |a| Ok(Command::LTrim { key: a[1].clone(), start: p::int_arg(&a[2])?, stop: p::int_arg(&a[3])? }), "Keeps only a range"),
    c!("memory", -2, R | CONTAINER, Server, range(2, 2, 1), p::memory, "USAGE: the bytes a key and its value count for on each replica; DOCTOR, STATS, MALLOC-STATS and PURGE refused"),
    c!("mget", -2, R | FAST, String, ALL, |a| Ok(Command::MGet { keys: p::keys_from(a, 1) }), "Gets several strings"),
    c!("mset", -3, W | DENYOOM, String, range(1, -1, 2), p::mset, "Sets several strings"),
    c!("msetnx", -3, W | DENYOOM, String, range(1, -1, 2), p::msetnx, "Sets several strings if none exists"),
    c!("multi", 1, TRANSACTION | FAST, Transactions, KeySpec::None, |_| Ok(Command::Multi), "Starts queueing a transaction"),
    c!("object", -2, R | CONTAINER, Generic, range(2, 2, 1), p::object, "How a value would be held in Redis (ENCODING), its references (REFCOUNT); FREQ and IDLETIME refused"),
    c!("persist", 2, W | FAST, Generic, ONE, |a| Ok(Command::Persist { key: a[1].clone() }), "Removes the TTL"),
    c!("pexpire", -3, W | FAST, Generic, ONE, p::pexpire, "Sets a TTL in milliseconds"),
    c!("pexpireat", -3, W | FAST, Generic, ONE, p::pexpireat, "Sets an expiry as a Unix time in milliseconds"),
    c!("pexpiretime", 2, R | FAST, Generic, ONE, |a| Ok(Command::ExpireTime { key: a[1].clone(), ms: true }), "Expiry as a Unix time in milliseconds"),
    c!("pfadd", -2, W | DENYOOM | FAST, HyperLogLog, ONE, |a| Ok(Command::PfAdd { key: a[1].clone(), elements: a[2..].to_vec() }), "Adds elements to a HyperLogLog"),
    c!("pfcount", -2, W | MAY_REPLICATE, HyperLogLog, ALL, |a| Ok(Command::PfCount { keys: a[1..].to_vec() }), "The estimated number of distinct elements of HyperLogLogs"),
    c!("pfmerge", -2, W | DENYOOM, HyperLogLog, ALL, |a| Ok(Command::PfMerge { dest: a[1].clone(), sources: a[2..].to_vec() }), "Merges HyperLogLogs into one"),
    c!("psetex", 4, W | DENYOOM, String, ONE, p::psetex, "Sets a string with a TTL in milliseconds"),
    c!("psubscribe", -2, PUBSUB | SUBSCRIPTION, PubSub, KeySpec::None, |_| Ok(Command::PubSub), "Subscribes the connection to channels matching glob patterns (RESP)"),
    c!("pttl", 2, R | FAST | RANDOM_OUTPUT, Generic, ONE, |a| Ok(Command::Ttl { key: a[1].clone(), ms: true }), "TTL in milliseconds"),
    c!("publish", 3, PUBSUB | WRITE_ROLE | FAST, PubSub, KeySpec::None, |_| Ok(Command::PubSub), "Sends a message to every subscriber of a channel, on every master"),
    c!("pubsub", -2, PUBSUB, PubSub, KeySpec::None, |_| Ok(Command::PubSub), "This master's subscriptions: CHANNELS, NUMSUB, NUMPAT, SHARDCHANNELS, SHARDNUMSUB, HELP"),
    c!("punsubscribe", -1, PUBSUB | SUBSCRIPTION, PubSub, KeySpec::None, |_| Ok(Command::PubSub), "Unsubscribes the connection from patterns, or from all (RESP)"),
    c!("randomkey", 1, R | RANDOM_OUTPUT, Generic, KeySpec::None, |_| Ok(Command::RandomKey), "A random key"),
    c!("rename", 3, W, Generic, TWO, |a| Ok(Command::Rename { src: a[1].clone(), dst: a[2].clone(), nx: false }), "Renames a key"),
    c!("renamenx", 3, W | FAST, Generic, TWO, |a| Ok(Command::Rename { src: a[1].clone(), dst: a[2].clone(), nx: true }), "Renames a key if the new name is free"),
    c!("rpop", -2, W | FAST, List, ONE, p::rpop, "Pops from the tail"),
    c!("rpoplpush", 3, W | DENYOOM, List, TWO, |a| Ok(Command::LMove { src: a[1].clone(), dst: a[2].clone(), from_front: false, to_front: true }), "Pops from a tail, pushes onto a head"),
    c!("rpush", -3, W | DENYOOM | FAST, List, ONE, |a| Ok(Command::Push { key: a[1].clone(), front: false, only_if_exists: false, elements: p::keys_from(a, 2) }), "Pushes onto the tail"),
    c!("rpushx", -3, W | DENYOOM | FAST, List, ONE, |a| Ok(Command::Push { key: a[1].clone(), front: false, only_if_exists: true, elements: p::keys_from(a, 2) }), "Pushes onto the tail of an existing list"),
    c!("sadd", -3, W | DENYOOM | FAST, Set, ONE, |a| Ok(Command::SAdd { key: a[1].clone(), members: p::keys_from(a, 2) }), "Adds members"),
    c!("scan", -2, R | RANDOM_OUTPUT, Generic, KeySpec::None, p::scan, "Iterates keys"),
    c!("scard", 2, R | FAST, Set, ONE, |a| Ok(Command::SCard { key: a[1].clone() }), "Number of members"),
    c!("script", -2, WRITE_ROLE | SCRIPTING, Scripting, KeySpec::None, p::script, "Loads, finds and drops the scripts EVALSHA runs (LOAD, EXISTS, FLUSH, KILL, HELP)"),
    c!("sdiff", -2, R | UNORDERED_OUTPUT, Set, ALL, p::sdiff, "Members of the first set in none of the others"),
    c!("sdiffstore", -3, W | DENYOOM, Set, ALL, p::sdiffstore, "SDIFF into a key"),
    c!("set", -3, W | DENYOOM, String, ONE, p::set, "Sets a string"),
    c!("setbit", 4, W | DENYOOM, Bitmap, ONE, p::setbit, "Sets or clears the bit at an offset, growing the string"),
    c!("setex", 4, W | DENYOOM, String, ONE, p::setex, "Sets a string with a TTL in seconds"),
    c!("setnx", 3, W | DENYOOM | FAST, String, ONE, |a| Ok(Command::SetNx { key: a[1].clone(), value: a[2].clone() }), "Sets a string if the key is free"),
    c!("setrange", 4, W | DENYOOM, String, ONE, p::setrange, "Overwrites part of a string"),
    c!("sinter", -2, R | UNORDERED_OUTPUT, Set, ALL, p::sinter, "Members in every set"),
    c!("sintercard", -3, R, Set, KeySpec::NumKeys { at: 1 }, p::sintercard, "Size of the intersection"),
    c!("sinterstore", -3, W | DENYOOM, Set, ALL, p::sinterstore, "SINTER into a key"),
    c!("sismember", 3, R | FAST, Set, ONE, |a| Ok(Command::SIsMember { key: a[1].clone(), member: a[2].clone() }), "Whether a member is in the set"),
    c!("smembers", 2, R | UNORDERED_OUTPUT, Set, ONE, |a| Ok(Command::SMembers { key: a[1].clone() }), "Every member"),
    c!("smismember", -3, R | FAST, Set, ONE, |a| Ok(Command::SMIsMember { key: a[1].clone(), members: p::keys_from(a, 2) }), "Whether each member is in the set"),
    c!("smove", 4, W | FAST, Set, TWO, |a| Ok(Command::SMove { src: a[1].clone(), dst: a[2].clone(), member: a[3].clone() }), "Moves a member between sets"),
    c!("sort", -2, W | DENYOOM, Generic, KeySpec::Sort, sort::sort, "Sorts a list, set or sorted set by number or bytes, or stores the result (STORE); BY patterns and GET refused, as in Redis Cluster"),
    c!("sort_ro", -2, R, Generic, KeySpec::Sort, sort::sort_ro, "SORT without STORE"),
    c!("spop", -2, W | FAST | RANDOM_OUTPUT, Set, ONE, p::spop, "Removes random members"),
    c!("spublish", 3, PUBSUB | WRITE_ROLE | FAST, PubSub, KeySpec::Channels { last: 1 }, |_| Ok(Command::PubSub), "Sends a message to every subscriber of a shard channel, on every master"),
    c!("srandmember", -2, R | RANDOM_OUTPUT, Set, ONE, p::srandmember, "Random members"),
    c!("srem", -3, W | FAST, Set, ONE, |a| Ok(Command::SRem { key: a[1].clone(), members: p::keys_from(a, 2) }), "Removes members"),
    c!("sscan", -3, R | RANDOM_OUTPUT, Set, ONE, |a| { let (key, cursor, opts) = p::key_scan(a)?; Ok(Command::SScan { key, cursor, opts }) }, "Iterates members"),
    c!("ssubscribe", -2, PUBSUB | SUBSCRIPTION, PubSub, KeySpec::Channels { last: -1 }, |_| Ok(Command::PubSub), "Subscribes the connection to shard channels (RESP)"),
    c!("strlen", 2, R | FAST, String, ONE, |a| Ok(Command::StrLen { key: a[1].clone() }), "Length of a string"),
    c!("subscribe", -2, PUBSUB | SUBSCRIPTION, PubSub, KeySpec::None, |_| Ok(Command::PubSub), "Subscribes the connection to channels (RESP)"),
    c!("substr", 4, R, String, ONE, |a| Ok(Command::GetRange { key: a[1].clone(), start: p::int_arg(&a[2])?, end: p::int_arg(&a[3])? }), "GETRANGE under its old name"),
    c!("sunion", -2, R | UNORDERED_OUTPUT, Set, ALL, p::sunion, "Members in any set"),
    c!("sunionstore", -3, W | DENYOOM, Set, ALL, p::sunionstore, "SUNION into a key"),
    c!("sunsubscribe", -1, PUBSUB | SUBSCRIPTION, PubSub, KeySpec::Channels { last: -1 }, |_| Ok(Command::PubSub), "Unsubscribes the connection from shard channels, or from all (RESP)"),
    c!("touch", -2, R | FAST, Generic, ALL, |a| Ok(Command::Touch { keys: p::keys_from(a, 1) }), "Counts existing keys, marking them used"),
    c!("ttl", 2, R | FAST | RANDOM_OUTPUT, Generic, ONE, |a| Ok(Command::Ttl { key: a[1].clone(), ms: false }), "TTL in seconds"),
    c!("type", 2, R | FAST, Generic, ONE, |a| Ok(Command::Type { key: a[1].clone() }), "The type of a key's value"),
    c!("unlink", -2, W | FAST, Generic, ALL, |a| Ok(Command::Del { keys: p::keys_from(a, 1) }), "Deletes keys"),
    c!("unsubscribe", -1, PUBSUB | SUBSCRIPTION, PubSub, KeySpec::None, |_| Ok(Command::PubSub), "Unsubscribes the connection from channels, or from all (RESP)"),
    c!("unwatch", 1, TRANSACTION | FAST, Transactions, KeySpec::None, |_| Ok(Command::Unwatch), "Forgets every watched key"),
    c!("watch", -2, TRANSACTION | FAST, Transactions, ALL, |a| Ok(Command::Watch { keys: p::keys_from(a, 1) }), "Watches keys: EXEC then runs nothing if any changed"),
    c!("xack", -4, W | FAST, Stream, ONE, stream::xack, "Acknowledges entries a consumer group delivered"),
    c!("xadd", -5, W | DENYOOM | FAST | RANDOM_OUTPUT, Stream, ONE, stream::xadd, "Adds an entry to a stream, trimming it if asked"),
    c!("xautoclaim", -6, W | FAST | RANDOM_OUTPUT, Stream, ONE, stream::xautoclaim, "Claims pending entries idle long enough, scanning from a cursor"),
    c!("xclaim", -6, W | FAST | RANDOM_OUTPUT, Stream, ONE, stream::xclaim, "Gives pending entries to another consumer"),
    c!("xdel", -3, W | FAST, Stream, ONE, stream::xdel, "Deletes entries of a stream"),
    c!("xgroup", -2, W | CONTAINER, Stream, range(2, 2, 1), stream::xgroup, "Creates, moves and destroys consumer groups and their consumers"),
    c!("xinfo", -2, R | CONTAINER, Stream, range(2, 2, 1), stream::xinfo, "A stream's, its groups' or a group's consumers' state"),
    c!("xlen", 2, R | FAST, Stream, ONE, stream::xlen, "The number of entries in a stream"),
    c!("xpending", -3, R | RANDOM_OUTPUT, Stream, ONE, stream::xpending, "A consumer group's entries delivered and not acknowledged"),
    c!("xrange", -4, R, Stream, ONE, stream::xrange, "Entries in a range of IDs"),
    c!("xread", -4, R | BLOCKING, Stream, KeySpec::Streams, stream::xread, "Entries above given IDs in streams, waiting for some if asked"),
    c!("xreadgroup", -7, W | BLOCKING, Stream, KeySpec::Streams, stream::xreadgroup, "Entries for a consumer of a group: new ones, or its pending ones"),
    c!("xrevrange", -4, R, Stream, ONE, stream::xrevrange, "Entries in a range of IDs, highest first"),
    c!("xsetid", -3, W | DENYOOM | FAST, Stream, ONE, stream::xsetid, "Sets a stream's last ID and counters"),
    c!("xtrim", -4, W | RANDOM_OUTPUT, Stream, ONE, stream::xtrim, "Trims a stream to a length or a lowest ID"),
    c!("zadd", -4, W | DENYOOM | FAST, SortedSet, ONE, p::zadd, "Adds members or changes scores"),
    c!("zcard", 2, R | FAST, SortedSet, ONE, |a| Ok(Command::ZCard { key: a[1].clone() }), "Number of members"),
    c!("zcount", 4, R | FAST, SortedSet, ONE, p::zcount, "Members within a score range"),
    c!("zdiff", -3, R, SortedSet, KeySpec::NumKeys { at: 1 }, p::zdiff, "Members of the first sorted set in none of the others"),
    c!("zdiffstore", -4, W | DENYOOM, SortedSet, KeySpec::StoreNumKeys { at: 2 }, p::zdiffstore, "ZDIFF into a key"),
    c!("zincrby", 4, W | DENYOOM | FAST, SortedSet, ONE, p::zincrby, "Increments a member's score"),
    c!("zinter", -3, R, SortedSet, KeySpec::NumKeys { at: 1 }, p::zinter, "Members in every sorted set, scores combined"),
    c!("zintercard", -3, R, SortedSet, KeySpec::NumKeys { at: 1 }, p::zintercard, "Size of the intersection of sorted sets"),
    c!("zinterstore", -4, W | DENYOOM, SortedSet, KeySpec::StoreNumKeys { at: 2 }, p::zinterstore, "ZINTER into a key"),
    c!("zlexcount", 4, R | FAST, SortedSet, ONE, p::zlexcount, "Members within a lexicographic range"),
    c!("zmpop", -4, W, SortedSet, KeySpec::NumKeys { at: 1 }, p::zmpop, "Pops from the first non-empty sorted set"),
    c!("zmscore", -3, R | FAST, SortedSet, ONE, |a| Ok(Command::ZMScore { key: a[1].clone(), members: p::keys_from(a, 2) }), "Scores of several members"),
    c!("zpopmax", -2, W | FAST, SortedSet, ONE, p::zpopmax, "Removes the highest-scored members"),
    c!("zpopmin", -2, W | FAST, SortedSet, ONE, p::zpopmin, "Removes the lowest-scored members"),
    c!("zrandmember", -2, R | RANDOM_OUTPUT, SortedSet, ONE, p::zrandmember, "Random members"),
    c!("zrange", -4, R, SortedSet, ONE, p::zrange, "Members by rank, score or member"),
    c!("zrangebylex", -4, R, SortedSet, ONE, p::zrangebylex, "Members by lexicographic range"),
    c!("zrangebyscore", -4, R, SortedSet, ONE, p::zrangebyscore, "Members by score range"),
    c!("zrangestore", -5, W | DENYOOM, SortedSet, TWO, p::zrangestore, "ZRANGE into a key"),
    c!("zrank", 3, R | FAST, SortedSet, ONE, |a| Ok(Command::ZRank { key: a[1].clone(), member: a[2].clone(), rev: false }), "Rank, lowest score first"),
    c!("zrem", -3, W | FAST, SortedSet, ONE, |a| Ok(Command::ZRem { key: a[1].clone(), members: p::keys_from(a, 2) }), "Removes members"),
    c!("zremrangebylex", 4, W, SortedSet, ONE, p::zremrangebylex, "Removes a lexicographic range"),
    c!("zremrangebyrank", 4, W, SortedSet, ONE, p::zremrangebyrank, "Removes a range of ranks"),
    c!("zremrangebyscore", 4, W, SortedSet, ONE, p::zremrangebyscore, "Removes a score range"),
    c!("zrevrange", -4, R, SortedSet, ONE, p::zrevrange, "Members by rank, highest first"),
    c!("zrevrangebylex", -4, R, SortedSet, ONE, p::zrevrangebylex, "Members by lexicographic range, highest first"),
    c!("zrevrangebyscore", -4, R, SortedSet, ONE, p::zrevrangebyscore, "Members by score range, highest first"),
    c!("zrevrank", 3, R | FAST, SortedSet, ONE, |a| Ok(Command::ZRank { key: a[1].clone(), member: a[2].clone(), rev: true }), "Rank, highest score first"),
    c!("zscan", -3, R | RANDOM_OUTPUT, SortedSet, ONE, |a| { let (key, cursor, opts) = p::key_scan(a)?; Ok(Command::ZScan { key, cursor, opts }) }, "Iterates members and scores"),
    c!("zscore", 3, R | FAST, SortedSet, ONE, |a| Ok(Command::ZScore { key: a[1].clone(), member: a[2].clone() }), "A member's score"),
    c!("zunion", -3, R, SortedSet, KeySpec::NumKeys { at: 1 }, p::zunion, "Members in any sorted set, scores combined"),
    c!("zunionstore", -4, W | DENYOOM, SortedSet, KeySpec::StoreNumKeys { at: 2 }, p::zunionstore, "ZUNION into a key"),
];

/// [`COMMANDS`] by name, for [`lookup`].
static BY_NAME: LazyLock<ByName<CommandSpec>> =
    LazyLock::new(|| ByName::new(COMMANDS, |spec| spec.name));

/// The command named `name`, in any case.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    BY_NAME.get(name)
}

/// Finds the command, checks its arity: what Redis does when a command is
/// queued in MULTI, before any other check.
pub fn resolve(args: &[Bytes]) -> Result<&'static CommandSpec, CommandError> {
    let name = args.first().map(|b| b.as_ref()).unwrap_or_default();
    let spec = lookup(name).ok_or_else(|| unknown_command(args))?;
    if !spec.arity_ok(args.len()) {
        return Err(CommandError::WrongArity(spec.name));
    }
    if spec.has(CONTAINER) {
        // A subcommand's name and arity are checked here too, so that a
        // transaction refuses them while queueing, as Redis does.
        let sub = &args[1];
        let (arity, name) = stream::subcommand(spec.name, sub)
            .ok_or_else(|| stream::unknown_subcommand(sub, spec.name))?;
        let argc = i64::try_from(args.len()).unwrap_or(i64::MAX);
        let arity = i64::from(arity);
        if (arity >= 0 && argc != arity) || (arity < 0 && argc < -arity) {
            return Err(CommandError::WrongArity(name));
        }
    }
    Ok(spec)
}

/// The positions of XREAD's and XREADGROUP's keys in `args`.
pub fn stream_keys(args: &[Bytes]) -> std::ops::Range<usize> {
    stream::read_keys(args)
}

/// Resolves and parses an argument vector into a command.
pub fn parse(args: &[Bytes]) -> Result<Command, CommandError> {
    let spec = resolve(args)?;
    (spec.parse)(args)
}

/// Redis's wording for an unknown command: the name, then the arguments,
/// each quoted and followed by a space, while the list is under 128 bytes,
/// each cut to what is left of the 128. Redis prints them with C's `%s`,
/// so each stops at a NUL byte, and it turns CR and LF into spaces so that
/// the error stays one line.
fn unknown_command(args: &[Bytes]) -> CommandError {
    fn c_string(b: &[u8], max: usize) -> String {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len()).min(max);
        one_line(&String::from_utf8_lossy(&b[..end]))
    }
    let name = c_string(args.first().map(|b| b.as_ref()).unwrap_or_default(), 128);
    let mut shown = String::new();
    for arg in args.iter().skip(1) {
        if shown.len() >= 128 {
            break;
        }
        let room = 128 - shown.len();
        shown.push('\'');
        shown.push_str(&c_string(arg, room));
        shown.push_str("' ");
    }
    CommandError::UnknownCommand { name, args: shown }
}

/// `text` with CR and LF replaced by spaces, as Redis does for error
/// replies built from client input.
pub(crate) fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn the_table_is_sorted_and_names_are_unique_and_lower_case() {
        for pair in COMMANDS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
        for spec in COMMANDS {
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            assert!(spec.arity != 0);
        }
    }

    #[test]
    fn every_command_is_either_a_write_or_read_only_or_transactional_or_pubsub() {
        for spec in COMMANDS {
            let kinds = [
                spec.has(WRITE),
                spec.has(READONLY),
                spec.has(TRANSACTION),
                spec.has(PUBSUB),
                // SCRIPT: the master's script cache, no key.
                spec.name == "script",
            ];
            assert_eq!(kinds.iter().filter(|k| **k).count(), 1, "{}", spec.name);
        }
    }

    #[test]
    fn pubsub_roles_are_read_to_subscribe_and_write_to_publish() {
        for spec in COMMANDS.iter().filter(|s| s.has(PUBSUB)) {
            let want = if matches!(spec.name, "publish" | "spublish") {
                Role::Write
            } else {
                Role::Read
            };
            assert_eq!(spec.role(), want, "{}", spec.name);
        }
    }

    #[test]
    fn every_command_is_found_by_its_name_in_any_case_and_nothing_else_is() {
        for spec in COMMANDS {
            assert!(
                spec.name.len() <= super::super::by_name::MAX_NAME_BYTES,
                "{}",
                spec.name
            );
            for name in [spec.name.to_owned(), spec.name.to_ascii_uppercase()] {
                let found = lookup(name.as_bytes()).map(|s| s.name);
                assert_eq!(found, Some(spec.name));
            }
        }
        assert_eq!(lookup(b"GeT").map(|s| s.name), Some("get"));
        for name in [&b"nope"[..], b"", b"ge", b"gets", &[b'g'; 40]] {
            assert!(
                lookup(name).is_none(),
                "{:?}",
                String::from_utf8_lossy(name)
            );
        }
    }

    #[test]
    fn arity_errors_name_the_command_in_lower_case() {
        assert_eq!(
            parse(&argv(&["GET"])).unwrap_err().to_string(),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            parse(&argv(&["mset", "a", "1", "b"]))
                .unwrap_err()
                .to_string(),
            "ERR wrong number of arguments for 'mset' command"
        );
    }

    #[test]
    fn unknown_commands_quote_their_first_arguments() {
        assert_eq!(
            parse(&argv(&["foo", "a", "b c"])).unwrap_err().to_string(),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b c' "
        );
    }

    #[test]
    fn an_unknown_command_error_stays_on_one_line() {
        let args = vec![
            Bytes::from_static(b"fo\no"),
            Bytes::from_static(b"a\r\nb"),
            Bytes::from_static(b"c\0d"),
        ];
        assert_eq!(
            parse(&args).unwrap_err().to_string(),
            "ERR unknown command 'fo o', with args beginning with: 'a  b' 'c' "
        );
    }

    /// Every request an auxiliary runs is parsed into a `Command` and moved
    /// a few times: a rarely used variant must not make all of them
    /// bigger (ZRANGESTORE's range and the ZUNION family's options are
    /// boxed for that).
    #[test]
    fn a_command_is_no_larger_than_zrange() {
        assert!(
            std::mem::size_of::<Command>() <= 144,
            "{}",
            std::mem::size_of::<Command>()
        );
    }

    #[test]
    fn key_positions_follow_the_spec() {
        let mset = lookup(b"mset").unwrap();
        assert_eq!(
            mset.key_indexes(&argv(&["mset", "a", "1", "b", "2"])),
            vec![1, 3]
        );
        let card = lookup(b"sintercard").unwrap();
        assert_eq!(
            card.key_indexes(&argv(&["sintercard", "2", "a", "b", "LIMIT", "1"])),
            vec![2, 3]
        );
        // The destination, then the counted keys (not the count, not the
        // options); a count past the arguments stops at their end.
        let store = lookup(b"zunionstore").unwrap();
        assert_eq!(
            store.key_indexes(&argv(&[
                "zunionstore",
                "d",
                "2",
                "a",
                "b",
                "WEIGHTS",
                "1",
                "2"
            ])),
            vec![1, 3, 4]
        );
        assert_eq!(
            store.key_indexes(&argv(&["zunionstore", "d", "9", "a"])),
            vec![1, 3]
        );
        assert_eq!(store.legacy_key_range(), (1, 1, 1));
        assert!(store.keys.movable() && !lookup(b"zrangestore").unwrap().keys.movable());
        assert_eq!(
            lookup(b"lmpop")
                .unwrap()
                .key_indexes(&argv(&["lmpop", "2", "a", "b", "LEFT", "COUNT", "3"])),
            vec![2, 3]
        );
        assert_eq!(lookup(b"incr").unwrap().role(), Role::Write);
        assert_eq!(lookup(b"get").unwrap().role(), Role::Read);
        assert_eq!(lookup(b"flushall").unwrap().role(), Role::Admin);
        assert_eq!(lookup(b"flushdb").unwrap().role(), Role::Admin);
    }

    #[test]
    fn flushall_takes_async_or_sync_and_nothing_else() {
        for ok in [
            &["FLUSHALL"][..],
            &["flushall", "ASYNC"],
            &["FLUSHDB", "sync"],
        ] {
            assert!(matches!(parse(&argv(ok)), Ok(Command::FlushAll)), "{ok:?}");
        }
        for bad in [&["FLUSHALL", "now"][..], &["FLUSHDB", "ASYNC", "SYNC"]] {
            assert_eq!(
                parse(&argv(bad)).unwrap_err(),
                CommandError::Syntax,
                "{bad:?}"
            );
        }
    }
}
