//! GET and plain SET run on the store itself: the commands a cache sees
//! most, and the ones that need the executor least.
//!
//! [`Store::execute`] lends each key's value to the executor (a string is
//! decoded from its stored form), runs the commands on the keyspace, and
//! writes the changed keys back; a SET pays for decoding the value it is
//! about to replace, an undo journal, and three copies of the value it
//! writes. [`Store::execute_plain`] runs a batch of GETs and SETs without
//! options on the stored strings directly, and must give what
//! [`Store::execute`] gives for it: the same replies, version, changes,
//! log records, hits and misses. It takes the same locks and stamps the
//! same version ([`stamp`]), checks the same limits in the same order, and
//! hands the batch back untouched (`None`, nothing counted) when a key
//! holds anything but a plain string, for the executor to answer
//! (WRONGTYPE, JSON text stored through `/data`).

use bytes::Bytes;

use super::commands::{Executed, KeyChanges, stamp};
use super::shard::Held;
use super::{EntryRef, SetOutcome};
use super::{Store, hash_key};
use crate::command::reply::codec as reply_codec;
use crate::command::{Command, Cond, Reply, SetExpiry};
use crate::keyspace::EffectOp;
use crate::mutation_log::Mutation;
use crate::value::{Value, stored};
use crate::version::Version;

/// A command [`Store::execute_plain`] runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Plain<'a> {
    /// `GET key`.
    Get(&'a Bytes),
    /// `SET key value`, with no option.
    Set(&'a Bytes, &'a Bytes),
}

impl<'a> Plain<'a> {
    /// `command` as a plain one, if it is one.
    pub fn of(command: &'a Command) -> Option<Plain<'a>> {
        match command {
            Command::Get { key } => Some(Plain::Get(key)),
            Command::Set {
                key,
                value,
                cond: Cond::Always,
                expiry: SetExpiry::Clear,
                get: false,
            } => Some(Plain::Set(key, value)),
            _ => None,
        }
    }

    /// Every command of a batch as a plain one, or `None` when one is
    /// not plain or did not parse.
    pub fn all<E>(commands: &'a [Result<Command, E>]) -> Option<Vec<Plain<'a>>> {
        every(commands.iter().map(|c| c.as_ref().ok().and_then(Plain::of)))
    }

    fn key(self) -> &'a Bytes {
        match self {
            Plain::Get(key) | Plain::Set(key, _) => key,
        }
    }
}

/// Every item, or `None` at the first missing one; sized once (collecting
/// into `Option<Vec<_>>` grows the vector step by step, for every batch).
fn every<T>(items: impl ExactSizeIterator<Item = Option<T>>) -> Option<Vec<T>> {
    let mut all = Vec::with_capacity(items.len());
    for item in items {
        all.push(item?);
    }
    Some(all)
}

/// A key of the batch as it runs: its hash, its live item before the
/// batch (slot and version), and the value the batch last set it to.
#[derive(Clone, Copy)]
struct KeyState<'a> {
    hash: u64,
    live: Option<(u32, Version)>,
    set: Option<&'a Bytes>,
}

impl Store {
    /// Runs `commands`, whose keys are `keys` (sorted, each once), as
    /// [`Store::execute`] would with the executor (see the module's
    /// overview), or answers `None`, having changed nothing, when the
    /// executor must: a SET without a version (a read's request), a key
    /// that holds something other than a plain string, or a command key
    /// not found in `keys`.
    ///
    /// The batch is refused whole ([`Executed::TooLarge`]) when a SET's
    /// value would be over `max_value_bytes` in its stored form or more
    /// than its shard can hold, or when the replies so far come to more
    /// than `max_reply_bytes` encoded (`usize::MAX` for no limit), as the
    /// auxiliary refuses a batch through the executor.
    ///
    /// `admitted` is asked once the keys' shards are locked, as by
    /// [`Store::execute`].
    ///
    /// Without `with_effects` the changes name each changed key and its
    /// base version but carry no effects: for keys with no other replica
    /// to ship them to, which spares a copy of every value written.
    #[allow(clippy::too_many_arguments)]
    pub fn execute_plain(
        &self,
        keys: &[Bytes],
        commands: &[Plain<'_>],
        version: Option<Version>,
        now_ms: u64,
        max_value_bytes: usize,
        max_reply_bytes: usize,
        with_effects: bool,
        admitted: &dyn Fn() -> bool,
        record: &mut dyn FnMut(&Mutation<'_>),
    ) -> Option<Executed> {
        if version.is_none() && commands.iter().any(|c| matches!(c, Plain::Set(..))) {
            return None;
        }
        // Each command's key, as its place in `keys` (sorted, each once).
        let at = every(commands.iter().map(|c| keys.binary_search(c.key()).ok()))?;
        let shards = self.shards.len();
        let mut locked = self.lock_keys(keys);
        if !admitted() {
            return Some(Executed::Refused);
        }
        // Before anything is counted: a batch handed back is counted by
        // the executor's run alone.
        for key in keys {
            let hash = hash_key(key);
            if !locked
                .shard(hash, shards)
                .holds_plain_or_nothing(hash, key, now_ms)
            {
                return None;
            }
        }
        let (version, found) = stamp(&mut locked, shards, keys, version, now_ms);
        let mut state: Vec<KeyState<'_>> = found
            .iter()
            .map(|&(_, hash, live)| KeyState {
                hash,
                live,
                set: None,
            })
            .collect();

        let mut replies = Vec::with_capacity(commands.len());
        let mut reply_bytes = 0usize;
        for (&command, &i) in commands.iter().zip(&at) {
            let KeyState { hash, live, set } = state[i];
            // The string the key holds, unless a SET of this batch replaced
            // it; anything but a plain string is the executor's to answer.
            let held = match (set, live) {
                (None, Some((slot, _))) => Some(locked.shard(hash, shards).plain_string(slot)?),
                _ => None,
            };
            let reply = match command {
                Plain::Get(_) => match (set, held) {
                    (Some(value), _) => Reply::Bulk(value.clone()),
                    (None, Some(bytes)) => Reply::Bulk(Bytes::copy_from_slice(bytes)),
                    (None, None) => Reply::Null,
                },
                Plain::Set(key, value) => {
                    let stored_len = 1 + value.len();
                    if stored_len > max_value_bytes
                        || !locked.shard(hash, shards).fits_string(key, stored_len)
                    {
                        return Some(Executed::TooLarge);
                    }
                    state[i].set = Some(value);
                    Reply::OK
                }
            };
            reply_bytes = reply_bytes.saturating_add(reply_codec::encoded_len(&reply));
            if reply_bytes > max_reply_bytes {
                return Some(Executed::TooLarge);
            }
            replies.push(reply);
        }
        let reply = Reply::Array(replies);
        let Some(version) = version else {
            return Some(Executed::Ran {
                version: None,
                reply,
                changes: Vec::new(),
            });
        };

        // The changes by key, in the order keys were first set, each with
        // the version it held before; `changed` has their places in `keys`.
        let mut changes: Vec<KeyChanges> = Vec::with_capacity(commands.len());
        let mut changed: Vec<usize> = Vec::with_capacity(commands.len());
        for (&command, &i) in commands.iter().zip(&at) {
            let Plain::Set(key, value) = command else {
                continue;
            };
            let c = match changed.iter().position(|&c| c == i) {
                Some(c) => c,
                None => {
                    changed.push(i);
                    changes.push(KeyChanges {
                        key: key.clone(),
                        base: state[i].live.map(|(_, held)| held),
                        ops: Vec::new(),
                    });
                    changes.len() - 1
                }
            };
            if with_effects {
                changes[c].ops.push(EffectOp::Put {
                    value: Value::string(value.to_vec()),
                    expire_at_ms: None,
                });
            }
        }
        let mut buffer = Vec::new();
        for (change, &i) in changes.iter().zip(&changed) {
            let KeyState {
                hash,
                set: Some(value),
                ..
            } = state[i]
            else {
                continue;
            };
            buffer.clear();
            buffer.push(stored::PLAIN_STRING);
            buffer.extend_from_slice(value);
            let key = change.key.as_ref();
            let outcome = locked.shard(hash, shards).store(
                hash,
                key,
                Held::Bytes(&buffer),
                version,
                None,
                now_ms,
            );
            debug_assert_eq!(outcome, SetOutcome::Stored, "checked before writing");
            record(&Mutation::Set {
                key,
                entry: EntryRef {
                    value: &buffer,
                    expires_at_ms: None,
                    version,
                },
            });
        }
        Some(Executed::Ran {
            version: Some(version),
            reply,
            changes,
        })
    }
}
