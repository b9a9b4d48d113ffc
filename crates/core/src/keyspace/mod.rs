//! A single node's keyspace and the executor of commands over it: keys →
//! (typed value, expiry), Redis's semantics, the clock and the randomness
//! given by the caller.
//!
//! # Contract
//!
//! - [`Keyspace::execute`] runs one command at `now_ms` and returns its
//!   reply and the [`Effect`]s it had. Every change goes through
//!   [`Keyspace::apply_effect`], the very function a replica calls with
//!   the shipped effects, so a replica that applies a leader's effects in
//!   order holds the same keyspace (a property the differential tests
//!   check after every command).
//! - A store that keeps entries its own way (the auxiliaries' LRU store)
//!   replays effects with [`apply_to_slot`], one key's `Option<Entry>` at
//!   a time: the same function `apply_effect` uses.
//! - Expiry is absolute (Unix milliseconds). An expired key is gone for
//!   every command from `now_ms` on; it is removed when touched (or by
//!   [`Keyspace::remove_expired`]), never shipped as an effect: replicas
//!   reach the same verdict from the same expiry.
//! - Keys are kept in buckets ordered by the key's xxh3 hash, which (halved,
//!   [`scan_cursor`]) is also SCAN's cursor: a cursor is a position in the
//!   hash space, the same on
//!   every node and across rebalancing, so a later distributed SCAN can
//!   walk the auxiliaries in hash order and a key that stays put for the
//!   whole scan is returned at least once.
//! - MULTI/EXEC queueing is per connection: see [`Session`].

mod bits;
pub mod effect;
mod geo;
mod hashes;
mod hll;
mod keys;
mod lists;
mod object;
mod session;
mod sets;
mod sort;
mod streams;
mod strings;
mod zsets;

use std::collections::BTreeMap;

use bytes::Bytes;
use rand::RngCore;

pub use effect::{Effect, EffectError, EffectOp, Undo, apply_to_slot, apply_undoable};
pub use session::Session;
pub use strings::LCS_MAX_TABLE_BYTES;

use crate::command::{Command, CommandError, Reply};
use crate::value::Value;

/// What a key holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// When it expires, Unix milliseconds.
    pub expire_at_ms: Option<u64>,
}

/// The result of executing one command.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// What to answer.
    pub reply: Reply,
    /// What changed, in order; empty for reads and refused writes.
    pub effects: Vec<Effect>,
}

/// Keys of one node.
#[derive(Clone, Debug, Default)]
pub struct Keyspace {
    /// Keys by their hash; a bucket holds the (rare) keys sharing a hash.
    buckets: BTreeMap<u64, Vec<(Bytes, Entry)>>,
    len: usize,
    /// What takes back each change since [`Keyspace::keep_undo`], oldest
    /// first; `None` when not kept.
    undo: Option<Vec<(Bytes, Undo)>>,
    /// The largest string a command may grow (`MAX_VALUE_BYTES`, when the
    /// caller bounds values): past it the command answers OOM before it
    /// allocates, and a script is stopped at the command that passed it.
    value_limit: Option<usize>,
}

/// The position of a key in the hash space: its bucket and SCAN's order.
pub fn key_position(key: &[u8]) -> u64 {
    crate::ring::placement_hash(key)
}

/// SCAN's cursor for the keys at `position`: the position halved, so that
/// every cursor fits in a signed 64-bit integer. Redis's cursors are
/// unsigned, but some clients read them as signed (phpredis 5, Debian 12's,
/// parses a `long`): there a cursor past 2^63 turns into 2^63-1 and the
/// scan never ends. Keys whose positions differ only in the last bit share
/// a cursor, and a scan answers them together.
pub fn scan_cursor(position: u64) -> u64 {
    position >> 1
}

/// The first key position SCAN's `cursor` covers ([`scan_cursor`]'s
/// inverse; a cursor no scan answers, past 2^63-1, covers the last one).
pub fn scan_start(cursor: u64) -> u64 {
    cursor.saturating_mul(2)
}

impl Keyspace {
    /// An empty keyspace.
    pub fn new() -> Keyspace {
        Keyspace::default()
    }

    /// Bounds values at `bytes` (see the field): SETBIT, SETRANGE,
    /// APPEND and BITFIELD refuse to grow a string past it, and a script's
    /// commands stop it there.
    pub fn limit_values(&mut self, bytes: usize) {
        self.value_limit = Some(bytes);
    }

    /// The bound [`Keyspace::limit_values`] set.
    pub fn value_limit(&self) -> Option<usize> {
        self.value_limit
    }

    /// Keys held, expired ones not yet removed included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No key held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entry of `key`, whether or not it has expired.
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.buckets
            .get(&key_position(key))?
            .iter()
            .find(|(k, _)| k.as_ref() == key)
            .map(|(_, e)| e)
    }

    fn insert(&mut self, key: Bytes, entry: Entry) {
        let bucket = self.buckets.entry(key_position(&key)).or_default();
        match bucket.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = entry,
            None => {
                bucket.push((key, entry));
                self.len += 1;
            }
        }
    }

    fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let pos = key_position(key);
        let bucket = self.buckets.get_mut(&pos)?;
        let i = bucket.iter().position(|(k, _)| k.as_ref() == key)?;
        let (_, entry) = bucket.swap_remove(i);
        if bucket.is_empty() {
            self.buckets.remove(&pos);
        }
        self.len -= 1;
        Some(entry)
    }

    /// Puts `entry` under `key`, replacing what it held. For a store that
    /// lends a few keys to the executor (see `Store::execute`).
    pub fn put(&mut self, key: Bytes, entry: Entry) {
        self.insert(key, entry);
    }

    /// Removes `key` and gives back what it held, expired or not.
    pub fn take(&mut self, key: &[u8]) -> Option<Entry> {
        self.remove(key)
    }

    /// Every key and entry, in hash order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Entry)> {
        self.buckets.values().flatten().map(|(k, e)| (k, e))
    }

    /// Keys in hash-space order from `position` on, each with its position
    /// (expired ones included). SCAN pages through this; a distributed
    /// SCAN can walk the ring's arcs through it on each arc's owner, its
    /// cursor a position that means the same on every node.
    pub fn iter_from(&self, position: u64) -> impl Iterator<Item = (u64, &Bytes, &Entry)> {
        self.buckets
            .range(position..)
            .flat_map(|(&pos, bucket)| bucket.iter().map(move |(k, e)| (pos, k, e)))
    }

    /// Removes every key expired at `now_ms`; returns how many.
    pub fn remove_expired(&mut self, now_ms: u64) -> usize {
        let expired: Vec<Bytes> = self
            .iter()
            .filter(|(_, e)| is_expired(e, now_ms))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            self.remove(k);
        }
        expired.len()
    }

    /// Applies one effect (a replica's whole job). An error means this
    /// keyspace has diverged from the leader's for that key.
    pub fn apply_effect(&mut self, effect: &Effect) -> std::result::Result<(), EffectError> {
        // The key's entry is taken out of its bucket and put back there,
        // the bucket staying in the map meanwhile: most effects change a
        // key that exists, and that spares the map a removal and an
        // insertion (and the bucket a free and an allocation) each.
        let position = key_position(&effect.key);
        let bucket = self.buckets.entry(position).or_default();
        let (held, mut slot) = match bucket.iter().position(|(k, _)| *k == effect.key) {
            Some(i) => {
                let (key, entry) = bucket.swap_remove(i);
                (Some(key), Some(entry))
            }
            None => (None, None),
        };
        let applied = match self.undo.as_mut() {
            Some(journal) => effect::apply_undoable(&mut slot, &effect.op)
                .map(|undo| journal.push((effect.key.clone(), undo))),
            None => effect::apply_to_slot(&mut slot, &effect.op),
        };
        match (held, slot) {
            (Some(key), Some(entry)) => bucket.push((key, entry)),
            (None, Some(entry)) => {
                bucket.push((effect.key.clone(), entry));
                self.len += 1;
            }
            (Some(_), None) => self.len -= 1,
            (None, None) => {}
        }
        if bucket.is_empty() {
            self.buckets.remove(&position);
        }
        applied
    }

    /// Keeps, from now on, what takes back each change, so that
    /// [`Keyspace::undo`] can restore this keyspace as it is now. The
    /// journal costs about what the changes do (see
    /// [`effect::apply_undoable`]): a store that lends its values to a
    /// command uses it to refuse the command afterwards without having
    /// copied them.
    pub fn keep_undo(&mut self) {
        self.undo = Some(Vec::new());
    }

    /// Takes back every change since [`Keyspace::keep_undo`], newest first,
    /// and stops keeping them. Keys removed because they had expired are
    /// not brought back (a store lends only live keys).
    pub fn undo(&mut self) {
        let Some(journal) = self.undo.take() else {
            return;
        };
        for (key, undo) in journal.into_iter().rev() {
            let mut slot = self.remove(&key);
            undo.apply(&mut slot);
            if let Some(entry) = slot {
                self.insert(key, entry);
            }
        }
    }

    /// Whether two keyspaces hold the same keys, values and expiries
    /// (bucket order aside).
    pub fn same_as(&self, other: &Keyspace) -> bool {
        self.len == other.len && self.iter().all(|(k, e)| other.get(k) == Some(e))
    }

    /// Executes one command. MULTI, EXEC and DISCARD belong to a
    /// [`Session`]; given here they answer as they would outside one.
    pub fn execute(&mut self, command: &Command, now_ms: u64, rng: &mut dyn RngCore) -> Outcome {
        let mut effects = Vec::new();
        let reply = self.execute_into(command, now_ms, rng, &mut effects);
        Outcome { reply, effects }
    }

    /// [`Keyspace::execute`], its effects appended to `effects`: a batch
    /// of commands collects them all in one vector.
    pub fn execute_into(
        &mut self,
        command: &Command,
        now_ms: u64,
        rng: &mut dyn RngCore,
        effects: &mut Vec<Effect>,
    ) -> Reply {
        let mut x = Exec {
            ks: self,
            now: now_ms,
            rng,
            effects,
        };
        x.run(command).unwrap_or_else(Reply::Error)
    }
}

/// A value past `MAX_VALUE_BYTES`: the words a master answers for one.
pub fn value_too_large() -> CommandError {
    CommandError::Relayed(
        "OOM the value would exceed MAX_VALUE_BYTES or the node's share of CACHE_MAX_BYTES".into(),
    )
}

fn is_expired(entry: &Entry, now_ms: u64) -> bool {
    entry.expire_at_ms.is_some_and(|at| at <= now_ms)
}

type Result<T> = std::result::Result<T, CommandError>;

/// One command's execution: the keyspace, the time, the dice, and the
/// effects so far.
pub(crate) struct Exec<'a> {
    ks: &'a mut Keyspace,
    now: u64,
    rng: &'a mut dyn RngCore,
    effects: &'a mut Vec<Effect>,
}

impl Exec<'_> {
    /// The live entry of `key`, removing it first if it has expired.
    fn entry(&mut self, key: &[u8]) -> Option<&Entry> {
        if self.ks.get(key).is_some_and(|e| is_expired(e, self.now)) {
            self.ks.remove(key);
        }
        self.ks.get(key)
    }

    fn exists(&mut self, key: &[u8]) -> bool {
        self.entry(key).is_some()
    }

    /// Records and applies one effect.
    fn emit(&mut self, key: &Bytes, op: EffectOp) {
        let effect = Effect {
            key: key.clone(),
            op,
        };
        if let Err(e) = self.ks.apply_effect(&effect) {
            // The executor checks types before it emits; reaching this is a bug.
            debug_assert!(false, "executor emitted an effect that does not fit: {e}");
        }
        self.effects.push(effect);
    }

    /// A STORE's result (SINTERSTORE, SORT ... STORE...): `dst` replaced
    /// by `value`, its TTL dropped, or deleted when the result is empty
    /// (`None`), as Redis does; the reply is the result's size, `n`.
    fn store_result(&mut self, dst: &Bytes, value: Option<Value>, n: usize) -> Reply {
        match value {
            None => {
                if self.exists(dst) {
                    self.emit(dst, EffectOp::Delete);
                }
            }
            Some(value) => self.emit(
                dst,
                EffectOp::Put {
                    value,
                    expire_at_ms: None,
                },
            ),
        }
        Reply::Integer(n as i64)
    }

    /// `Ok` if a string of `len` bytes fits the keyspace's value limit;
    /// else the error the master answers for a value too large.
    fn fits(&self, len: usize) -> Result<()> {
        match self.ks.value_limit {
            Some(limit) if len + 1 > limit => Err(value_too_large()),
            _ => Ok(()),
        }
    }

    fn random_index(&mut self, len: usize) -> usize {
        use rand::Rng;
        self.rng.random_range(0..len)
    }

    fn run(&mut self, c: &Command) -> Result<Reply> {
        use Command as C;
        match c {
            C::Multi | C::Exec | C::Discard => session::outside(c),
            // A session answers WATCH and UNWATCH; here they were queued
            // inside MULTI, where Redis refuses WATCH and UNWATCH is a
            // no-op (EXEC forgot the watches before running it).
            C::Watch { .. } => Err(CommandError::NotInMulti("WATCH")),
            C::Unwatch => Ok(Reply::OK),
            C::PubSub => Err(CommandError::Other(
                "Pub/Sub commands are answered by the master, not the keyspace",
            )),
            C::Eval(eval) => Ok(crate::script::run(
                eval,
                &mut *self.ks,
                self.now,
                &mut *self.rng,
                &mut *self.effects,
            )),
            C::Script(_) => Err(CommandError::Other(
                "SCRIPT is answered by the master, not the keyspace",
            )),
            C::Get { .. }
            | C::Set { .. }
            | C::SetNx { .. }
            | C::GetDel { .. }
            | C::GetEx { .. }
            | C::MGet { .. }
            | C::MSet { .. }
            | C::Append { .. }
            | C::StrLen { .. }
            | C::GetRange { .. }
            | C::Lcs { .. }
            | C::SetRange { .. }
            | C::IncrBy { .. }
            | C::IncrByFloat { .. } => self.string_command(c),
            C::SetBit { .. }
            | C::GetBit { .. }
            | C::BitCount { .. }
            | C::BitPos { .. }
            | C::BitOp { .. }
            | C::BitField { .. } => self.bit_command(c),
            C::Del { .. }
            | C::Exists { .. }
            | C::Type { .. }
            | C::Touch { .. }
            | C::Expire { .. }
            | C::Ttl { .. }
            | C::ExpireTime { .. }
            | C::Persist { .. }
            | C::Rename { .. }
            | C::Copy { .. }
            | C::Keys { .. }
            | C::DbSize
            | C::FlushAll
            | C::RandomKey
            | C::Scan { .. } => self.key_command(c),
            C::Sort { .. } => self.sort_command(c),
            C::Object { .. } | C::ObjectHelp | C::MemoryUsage { .. } | C::MemoryOther(_) => {
                self.object_command(c)
            }
            C::HSet { .. }
            | C::HSetNx { .. }
            | C::HGet { .. }
            | C::HMGet { .. }
            | C::HDel { .. }
            | C::HExists { .. }
            | C::HLen { .. }
            | C::HKeys { .. }
            | C::HVals { .. }
            | C::HGetAll { .. }
            | C::HIncrBy { .. }
            | C::HIncrByFloat { .. }
            | C::HStrLen { .. }
            | C::HRandField { .. }
            | C::HScan { .. } => self.hash_command(c),
            C::Push { .. }
            | C::Pop { .. }
            | C::LLen { .. }
            | C::LRange { .. }
            | C::LIndex { .. }
            | C::LSet { .. }
            | C::LInsert { .. }
            | C::LRem { .. }
            | C::LTrim { .. }
            | C::LPos { .. }
            | C::LMove { .. }
            | C::LMPop { .. }
            | C::BPop { .. }
            | C::BLMove { .. }
            | C::BLMPop { .. } => self.list_command(c),
            C::SAdd { .. }
            | C::SRem { .. }
            | C::SMembers { .. }
            | C::SIsMember { .. }
            | C::SMIsMember { .. }
            | C::SCard { .. }
            | C::SPop { .. }
            | C::SRandMember { .. }
            | C::SMove { .. }
            | C::SetAlgebra { .. }
            | C::SInterCard { .. }
            | C::SScan { .. } => self.set_command(c),
            C::ZAdd { .. }
            | C::ZRem { .. }
            | C::ZScore { .. }
            | C::ZMScore { .. }
            | C::ZIncrBy { .. }
            | C::ZCard { .. }
            | C::ZCount { .. }
            | C::ZLexCount { .. }
            | C::ZRank { .. }
            | C::ZRange { .. }
            | C::ZPop { .. }
            | C::ZRandMember { .. }
            | C::ZRemRange { .. }
            | C::ZScan { .. }
            | C::ZMPop { .. }
            | C::ZAlgebra { .. }
            | C::ZRangeStore { .. }
            | C::BZPop { .. }
            | C::BZMPop { .. } => self.zset_command(c),
            C::Stream(stream) => self.stream_command(stream),
            C::Geo(geo) => self.geo_command(geo),
            C::PfAdd { .. } | C::PfCount { .. } | C::PfMerge { .. } => self.hll_command(c),
        }
    }
}

/// The members of `items` for which `keep` holds, each once, in the order
/// they first come: in time linear in their number (a command may name
/// 100,000 members; a scan of those kept so far would be quadratic).
pub(crate) fn distinct_kept(items: &[Bytes], keep: impl Fn(&Bytes) -> bool) -> Vec<Bytes> {
    let mut seen: std::collections::HashSet<&[u8]> =
        std::collections::HashSet::with_capacity(items.len());
    let mut kept = Vec::new();
    for m in items {
        if keep(m) && seen.insert(m.as_ref()) {
            kept.push(m.clone());
        }
    }
    kept
}

/// A command handed to the wrong family's executor: a bug in [`Exec::run`],
/// answered as an error rather than a panic.
fn misrouted(command: &Command) -> CommandError {
    debug_assert!(false, "misrouted command {command:?}");
    CommandError::Other("internal error: command routed to the wrong executor")
}

/// Redis's rule for a list/range index pair: negative counts from the end;
/// the result is the inclusive range within `0..len`, or `None` if empty.
pub(crate) fn clamp_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let mut start = if start < 0 {
        len.saturating_add(start)
    } else {
        start
    };
    let mut stop = if stop < 0 {
        len.saturating_add(stop)
    } else {
        stop
    };
    if start < 0 {
        start = 0;
    }
    if start > stop || start >= len {
        return None;
    }
    if stop >= len {
        stop = len - 1;
    }
    Some((start as usize, stop as usize))
}

#[cfg(test)]
mod tests;
