//! Commands on the store: a key's leader runs a command over the entries
//! of its keys, and its replicas apply the changes it shipped.
//!
//! The executor ([`crate::keyspace`]) works on a [`Keyspace`]; here the
//! store lends it the command's keys, decoded from their stored form
//! ([`crate::value::stored`]), under the locks of their shards, and takes
//! back the keys the command changed, re-encoded, at the command's
//! version. The shards are locked in index order, so two commands over
//! the same shards never wait on each other in a cycle, and a command over
//! several keys is atomic: no other operation sees some of its changes
//! and not the others.
//!
//! Versions: a command that may change keys comes with the version the
//! master's clock gave it, and runs at the lowest version above both that
//! one and every version its keys hold (live or tombstone,
//! [`Version::above`]). The leader runs a key's commands one at a time, so
//! this order is the key's order: a command that starts after another was
//! acknowledged runs after it and gets a higher version, whatever the
//! masters' clocks say, and contention never sends a command back to be
//! stamped again. A replica applies a key's changes only when it holds the
//! version the leader held before them (the *base*): a replica that
//! missed an operation says so, and is repaired with the whole value.

use std::sync::MutexGuard;

use bytes::Bytes;

use super::shard::Shard;
use super::{EntryRef, Lookup, SetOutcome, Store, hash_key, shard_index};
use crate::command::glob::pattern_allows;
use crate::command::{Command, Reply, ScanOpts};
use crate::keyspace::{self, EffectOp, Keyspace, Outcome};
use crate::mutation_log::Mutation;
use crate::value::ValueType;
use crate::value::stored;
use crate::version::Version;

/// The changes a command made to one key, as its replicas apply them.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyChanges {
    /// The key.
    pub key: Bytes,
    /// The version the leader held before (`None`: no live entry).
    pub base: Option<Version>,
    /// The changes, in order.
    pub ops: Vec<EffectOp>,
}

/// What [`Store::execute`] did.
#[derive(Debug)]
pub enum Executed {
    /// The command ran: its outcome, the version its changes were written
    /// at (`None` for a read), and the changes per key (in the order the
    /// keys were first changed).
    Ran {
        /// The version the changes were written at.
        version: Option<Version>,
        /// The reply and the effects.
        outcome: Outcome,
        /// The effects grouped by key, each with its base version.
        changes: Vec<KeyChanges>,
    },
    /// A value the command would leave is larger than `max_value_bytes`
    /// or than the store can hold: nothing changed.
    TooLarge,
}

/// What applying one key's changes did on a replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Applied; the key now holds the changes' version.
    Applied,
    /// The key holds `held`, at least the changes' version (live or
    /// tombstone): a newer operation got here first; nothing changed.
    Stale {
        /// What the key holds.
        held: Version,
    },
    /// The key does not hold the base version (it missed an operation), or
    /// the changes do not fit what it holds: nothing changed; repair it
    /// with the whole value.
    Diverged,
    /// The resulting value does not fit in this store.
    TooLarge,
}

/// The shards a command's keys live in, locked in index order.
struct Locked<'a> {
    guards: Vec<(usize, MutexGuard<'a, Shard>)>,
}

impl Locked<'_> {
    fn shard(&mut self, hash: u64, shards: usize) -> &mut Shard {
        let index = shard_index(hash, shards);
        let at = self
            .guards
            .binary_search_by_key(&index, |(i, _)| *i)
            .unwrap_or_else(|_| unreachable!("every key's shard is locked"));
        &mut self.guards[at].1
    }
}

/// The held version of a lookup: live or deleted.
fn held_of(lookup: &Lookup) -> Option<Version> {
    lookup.version()
}

impl Store {
    fn lock_keys<'a>(&'a self, keys: &[&[u8]]) -> Locked<'a> {
        let mut indexes: Vec<usize> = keys
            .iter()
            .map(|k| shard_index(hash_key(k), self.shards.len()))
            .collect();
        indexes.sort_unstable();
        indexes.dedup();
        Locked {
            guards: indexes.into_iter().map(|i| (i, self.lock(i))).collect(),
        }
    }

    /// Runs `run` over the entries of `keys` (every key the command may
    /// read or change) at `now_ms`.
    ///
    /// With `version` `None` the command only reads: nothing is written
    /// back. With a version, every key it changed is written back at the
    /// first version above it and above every version the keys hold (a key
    /// it emptied is deleted, leaving a tombstone), unless a resulting
    /// value is larger than `max_value_bytes` ([`Executed::TooLarge`],
    /// nothing changes). A stored value that does
    /// not decode is read as absent: the command's write replaces it.
    /// Each write back is passed to `record` (for the mutation log) while
    /// the keys' shards are still locked.
    pub fn execute(
        &self,
        keys: &[&[u8]],
        version: Option<Version>,
        now_ms: u64,
        max_value_bytes: usize,
        run: impl FnOnce(&mut Keyspace) -> Outcome,
        record: &mut dyn FnMut(&Mutation<'_>),
    ) -> Executed {
        let shards = self.shards.len();
        let mut locked = self.lock_keys(keys);
        let mut ks = Keyspace::new();
        let mut held = Vec::with_capacity(keys.len());
        let mut version = version;
        for &key in keys {
            let hash = hash_key(key);
            let lookup = locked.shard(hash, shards).lookup(hash, key, now_ms);
            let version_held = held_of(&lookup);
            if let (Some(v), Some(h)) = (version, version_held) {
                version = Some(v.above(h));
            }
            if let Lookup::Live(entry) = lookup
                && let Ok(value) = stored::from_stored(&entry.value)
            {
                ks.put(
                    Bytes::copy_from_slice(key),
                    keyspace::Entry {
                        value,
                        expire_at_ms: entry.expires_at_ms,
                    },
                );
            }
            held.push((key, version_held.filter(|_| ks.get(key).is_some())));
        }
        let outcome = run(&mut ks);
        let Some(version) = version else {
            debug_assert!(outcome.effects.is_empty(), "a read emitted effects");
            return Executed::Ran {
                version: None,
                outcome,
                changes: Vec::new(),
            };
        };
        let changes = group(&outcome, |key| {
            held.iter()
                .find(|(k, _)| *k == key)
                .and_then(|(_, base)| *base)
        });
        // Encode and check every result before writing any: all or nothing.
        let mut results = Vec::with_capacity(changes.len());
        for change in &changes {
            let result = ks
                .get(&change.key)
                .map(|entry| (stored::to_stored(&entry.value), entry.expire_at_ms));
            if let Some((value, _)) = &result {
                let hash = hash_key(&change.key);
                if value.len() > max_value_bytes
                    || !locked.shard(hash, shards).fits(&change.key, value.len())
                {
                    return Executed::TooLarge;
                }
            }
            results.push(result);
        }
        for (change, result) in changes.iter().zip(results) {
            let hash = hash_key(&change.key);
            let shard = locked.shard(hash, shards);
            write_back(shard, hash, &change.key, result, version, now_ms, record);
        }
        Executed::Ran {
            version: Some(version),
            outcome,
            changes,
        }
    }

    /// Applies the changes a key's leader made at `version`, key by key
    /// (each key's outcome in order). The keys' shards are locked together,
    /// so a reader sees all of them or none. Each write is passed to
    /// `record`, as in [`Store::execute`].
    pub fn apply_changes(
        &self,
        changes: &[KeyChanges],
        version: Version,
        now_ms: u64,
        max_value_bytes: usize,
        record: &mut dyn FnMut(&Mutation<'_>),
    ) -> Vec<ApplyOutcome> {
        let shards = self.shards.len();
        let keys: Vec<&[u8]> = changes.iter().map(|c| c.key.as_ref()).collect();
        let mut locked = self.lock_keys(&keys);
        changes
            .iter()
            .map(|change| {
                let hash = hash_key(&change.key);
                let shard = locked.shard(hash, shards);
                apply_one(
                    shard,
                    hash,
                    change,
                    version,
                    now_ms,
                    max_value_bytes,
                    record,
                )
            })
            .collect()
    }
}

/// Groups an outcome's effects by key, in the order keys were first
/// changed, each with the version the key held before.
fn group(outcome: &Outcome, base_of: impl Fn(&[u8]) -> Option<Version>) -> Vec<KeyChanges> {
    let mut changes: Vec<KeyChanges> = Vec::new();
    for effect in &outcome.effects {
        match changes.iter_mut().find(|c| c.key == effect.key) {
            Some(change) => change.ops.push(effect.op.clone()),
            None => changes.push(KeyChanges {
                key: effect.key.clone(),
                base: base_of(&effect.key),
                ops: vec![effect.op.clone()],
            }),
        }
    }
    changes
}

/// Writes a key's new state at `version`: its stored value and expiry, or
/// a delete.
fn write_back(
    shard: &mut Shard,
    hash: u64,
    key: &[u8],
    result: Option<(Vec<u8>, Option<u64>)>,
    version: Version,
    now_ms: u64,
    record: &mut dyn FnMut(&Mutation<'_>),
) {
    match result {
        Some((value, expires_at_ms)) => {
            let entry = EntryRef {
                value: &value,
                expires_at_ms,
                version,
            };
            let outcome = shard.set(hash, key, entry, now_ms);
            debug_assert!(
                matches!(outcome, SetOutcome::Stored | SetOutcome::Expired),
                "checked before writing: {outcome:?}"
            );
            record(&Mutation::Set { key, entry });
        }
        None => {
            shard.delete(hash, key, version, now_ms);
            record(&Mutation::Delete { key, version });
        }
    }
}

fn apply_one(
    shard: &mut Shard,
    hash: u64,
    change: &KeyChanges,
    version: Version,
    now_ms: u64,
    max_value_bytes: usize,
    record: &mut dyn FnMut(&Mutation<'_>),
) -> ApplyOutcome {
    let lookup = shard.lookup(hash, &change.key, now_ms);
    if let Some(held) = held_of(&lookup)
        && held >= version
    {
        return ApplyOutcome::Stale { held };
    }
    let live = match lookup {
        Lookup::Live(entry) => Some(entry),
        Lookup::Deleted(_) | Lookup::Absent => None,
    };
    if live.as_ref().map(|e| e.version) != change.base {
        return ApplyOutcome::Diverged;
    }
    let mut slot = match live {
        Some(entry) => match stored::from_stored(&entry.value) {
            Ok(value) => Some(keyspace::Entry {
                value,
                expire_at_ms: entry.expires_at_ms,
            }),
            Err(_) => return ApplyOutcome::Diverged,
        },
        None => None,
    };
    for op in &change.ops {
        if keyspace::apply_to_slot(&mut slot, op).is_err() {
            return ApplyOutcome::Diverged;
        }
    }
    let result = slot.map(|entry| (stored::to_stored(&entry.value), entry.expire_at_ms));
    if let Some((value, _)) = &result
        && (value.len() > max_value_bytes || !shard.fits(&change.key, value.len()))
    {
        return ApplyOutcome::TooLarge;
    }
    write_back(shard, hash, &change.key, result, version, now_ms, record);
    ApplyOutcome::Applied
}

impl Store {
    /// Runs KEYS, SCAN, DBSIZE or RANDOMKEY over every live key of this
    /// store; `None` for any other command. Costs a walk over every key
    /// (the store is not ordered by key hash): KEYS and DBSIZE do that in
    /// Redis too, SCAN does it here once per call (docs/commands.md).
    pub fn execute_everywhere(
        &self,
        command: &Command,
        now_ms: u64,
        rng: &mut dyn rand::RngCore,
    ) -> Option<Reply> {
        let keys_here = || {
            let mut keys = Vec::with_capacity(self.len());
            for shard in 0..self.shard_count() {
                self.for_each_in_shard(shard, now_ms, |key, entry| {
                    keys.push((
                        keyspace::key_position(key),
                        Bytes::copy_from_slice(key),
                        stored::value_type(entry.value),
                    ));
                });
            }
            keys
        };
        Some(match command {
            Command::Keys { pattern } => Reply::Array(
                keys_here()
                    .into_iter()
                    .filter(|(_, key, _)| pattern_allows(pattern, key))
                    .map(|(_, key, _)| Reply::Bulk(key))
                    .collect(),
            ),
            Command::DbSize => Reply::Integer(keys_here().len() as i64),
            Command::RandomKey => {
                let keys = keys_here();
                if keys.is_empty() {
                    Reply::Null
                } else {
                    let pick = (rng.next_u64() % keys.len() as u64) as usize;
                    Reply::Bulk(keys[pick].1.clone())
                }
            }
            Command::Scan { cursor, opts } => {
                let mut keys: Vec<_> = keys_here()
                    .into_iter()
                    .filter(|(position, _, _)| position >= cursor)
                    .collect();
                keys.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
                scan_window(&keys, opts)
            }
            _ => return None,
        })
    }
}

/// SCAN over keys sorted by position from the cursor on: as the keyspace's
/// SCAN, COUNT counts positions visited, and the next cursor is the first
/// position not visited (0 at the end).
fn scan_window(keys: &[(u64, Bytes, Option<ValueType>)], opts: &ScanOpts) -> Reply {
    let type_filter = opts.type_name.as_ref().map(|t| ValueType::from_name(t));
    let mut found = Vec::new();
    let mut next = 0;
    let mut visited = 0;
    let mut last = None;
    for (position, key, value_type) in keys {
        if last != Some(*position) {
            if visited == opts.count {
                next = *position;
                break;
            }
            visited += 1;
            last = Some(*position);
        }
        let type_ok = match type_filter {
            None => true,
            Some(None) => false,
            Some(Some(t)) => *value_type == Some(t),
        };
        if type_ok && opts.pattern.as_ref().is_none_or(|p| pattern_allows(p, key)) {
            found.push(Reply::Bulk(key.clone()));
        }
    }
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(next.to_string())),
        Reply::Array(found),
    ])
}
