//! Commands on the store: a key's leader runs a command over the entries
//! of its keys, and its replicas apply the changes it shipped.
//!
//! The executor ([`crate::keyspace`]) works on a [`Keyspace`]; here the
//! store lends it the command's keys under the locks of their shards and
//! takes back the keys the command changed, at the command's version. A
//! collection is kept decoded in the store and moves into the keyspace and
//! back; a string is decoded from its stored form
//! ([`crate::value::stored`]) and stored again, which for a small string
//! costs less than keeping it decoded would. The shards are locked in index order, so two commands over
//! the same shards never wait on each other in a cycle, and a command over
//! several keys is atomic: no other operation sees some of its changes
//! and not the others.
//!
//! Versions: a command that may change keys comes with the version the
//! master's clock gave it, and runs at the lowest version above both that
//! one and every version its keys hold (live or tombstone) or held before
//! expiring here (a replica whose clock is behind may still hold that
//! item live), see [`Version::above`]. The leader runs a key's commands one at a time, so
//! this order is the key's order: a command that starts after another was
//! acknowledged runs after it and gets a higher version, whatever the
//! masters' clocks say, and contention never sends a command back to be
//! stamped again. A replica applies a key's changes only when it holds the
//! version the leader held before them (the *base*): a replica that
//! missed an operation says so, and is repaired with the whole value.

use std::sync::MutexGuard;

use bytes::Bytes;

use super::shard::{Held, Shard};
use super::{EntryRef, SetOutcome, Store, hash_key, shard_index};
use crate::command::glob::pattern_allows;
use crate::command::{Command, Reply, ScanOpts};
use crate::keyspace::effect::encoding as effect_encoding;
use crate::keyspace::{self, Effect, EffectOp, Keyspace, Outcome, scan_cursor, scan_start};
use crate::mutation_log::Mutation;
use crate::value::{ValueType, stored};
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
    /// The command ran: its reply, the version its changes were written
    /// at (`None` for a read), and its changes per key (in the order the
    /// keys were first changed).
    Ran {
        /// The version the changes were written at.
        version: Option<Version>,
        /// The reply.
        reply: Reply,
        /// The command's effects grouped by key, each with its base
        /// version.
        changes: Vec<KeyChanges>,
    },
    /// A value the command would leave is larger than `max_value_bytes`
    /// or than the store can hold: nothing changed.
    TooLarge,
    /// The caller's admission check failed once the keys were locked
    /// (the auxiliary's epoch fence moved past the request's): nothing was
    /// read or changed.
    Refused,
    /// A watched key changed since it was watched
    /// ([`Store::execute_watched`]): nothing ran.
    WatchFailed,
    /// The command changed a key it did not name among its keys: a
    /// command's key finder and its executor disagree, which is a bug.
    /// Nothing changed (the key's shard may not even be locked, and its
    /// replicas would not be told).
    Undeclared {
        /// The first such key.
        key: Bytes,
    },
}

/// What a client saw of a key when it watched it (WATCH), as a
/// [`super::Lookup`] shows it without the value. EXEC runs only if every
/// watched key still shows the same ([`Watched::still`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watched {
    /// A live item at this version.
    Live(Version),
    /// A tombstone within its grace, at this version.
    Deleted(Version),
    /// Nothing (never written, expired, evicted, or deleted past the
    /// grace).
    Absent,
}

impl Watched {
    /// What `lookup` shows of a key.
    pub fn of(lookup: &super::Lookup) -> Watched {
        match lookup {
            super::Lookup::Live(entry) => Watched::Live(entry.version),
            super::Lookup::Deleted(version) => Watched::Deleted(*version),
            super::Lookup::Absent => Watched::Absent,
        }
    }

    /// Whether a key that showed `self` when watched and shows `now` is
    /// unchanged. Every write or delete gives the key a higher version
    /// (`Version::above`), so a live item is unchanged only at the same
    /// version, and a key with no live item only while nothing newer than
    /// what it showed arrived: a tombstone whose grace ended (or a key
    /// never written) is not a change, a new tombstone is (SET then DEL).
    /// A live item that expired, or a key written since, is a change, as
    /// in Redis 7.
    pub fn still(self, now: Watched) -> bool {
        let gone = |w: Watched| match w {
            Watched::Deleted(v) => Some(v),
            _ => None,
        };
        match (self, now) {
            (Watched::Live(then), Watched::Live(now)) => then == now,
            (Watched::Live(_), _) | (_, Watched::Live(_)) => false,
            (then, now) => gone(now) <= gone(then),
        }
    }
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
pub(super) struct Locked<'a> {
    guards: Vec<(usize, MutexGuard<'a, Shard>)>,
}

impl Locked<'_> {
    pub(super) fn shard(&mut self, hash: u64, shards: usize) -> &mut Shard {
        let index = shard_index(hash, shards);
        let at = self
            .guards
            .binary_search_by_key(&index, |(i, _)| *i)
            .unwrap_or_else(|_| unreachable!("every key's shard is locked"));
        &mut self.guards[at].1
    }
}

impl Store {
    pub(super) fn lock_keys<'a, K: AsRef<[u8]>>(&'a self, keys: &[K]) -> Locked<'a> {
        let mut indexes: Vec<usize> = keys
            .iter()
            .map(|k| shard_index(hash_key(k.as_ref()), self.shards.len()))
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
    /// value is larger than `max_value_bytes` in its stored form, or `run`
    /// answers `None` (it refuses the batch: its answer would be too large
    /// to send, say) ([`Executed::TooLarge`], nothing changes). A
    /// stored value that does not decode is read as absent: the command's
    /// write replaces it. Each write back is passed to `record` (for the
    /// mutation log) while the keys' shards are still locked.
    ///
    /// `admitted` is asked once the keys' shards are locked, before
    /// anything is read: `false` answers [`Executed::Refused`]. The
    /// auxiliary checks its epoch fence there again, so that a command
    /// admitted just before another connection raised the fence either
    /// runs before that connection's read of the same keys (which then
    /// sees it) or not at all.
    ///
    /// Cost: a collection is lent to the command as the store keeps it,
    /// decoded, and taken back changed in place, so a command costs what
    /// it does to the elements it touches, not the size of the value. A
    /// refused command is taken back through the keyspace's undo journal
    /// ([`Keyspace::keep_undo`]), which costs about what the command did.
    #[allow(clippy::too_many_arguments)]
    pub fn execute(
        &self,
        keys: &[Bytes],
        version: Option<Version>,
        now_ms: u64,
        max_value_bytes: usize,
        admitted: &dyn Fn() -> bool,
        run: impl FnOnce(&mut Keyspace) -> Option<Outcome>,
        record: &mut dyn FnMut(&Mutation<'_>),
    ) -> Executed {
        self.execute_watched(
            keys,
            &[],
            version,
            now_ms,
            max_value_bytes,
            admitted,
            run,
            record,
        )
    }

    /// [`Store::execute`] after WATCH: `watched` are keys and what they
    /// showed when watched. Their shards are locked with the command's
    /// keys, and if any of them shows something else now
    /// ([`Watched::still`]), nothing runs and nothing changes
    /// ([`Executed::WatchFailed`]). The check and the run are one atomic
    /// step: no write lands between them.
    #[allow(clippy::too_many_arguments)]
    pub fn execute_watched(
        &self,
        keys: &[Bytes],
        watched: &[(Bytes, Watched)],
        version: Option<Version>,
        now_ms: u64,
        max_value_bytes: usize,
        admitted: &dyn Fn() -> bool,
        run: impl FnOnce(&mut Keyspace) -> Option<Outcome>,
        record: &mut dyn FnMut(&Mutation<'_>),
    ) -> Executed {
        let shards = self.shards.len();
        let mut locked = if watched.is_empty() {
            self.lock_keys(keys)
        } else {
            let mut all: Vec<&[u8]> = keys.iter().map(|k| k.as_ref()).collect();
            all.extend(watched.iter().map(|(k, _)| k.as_ref()));
            self.lock_keys(&all)
        };
        if !admitted() {
            return Executed::Refused;
        }
        let locked = &mut locked;
        for (key, then) in watched {
            let hash = hash_key(key);
            let shard = locked.shard(hash, shards);
            let now = match shard.live(hash, key, now_ms) {
                Some((_, version)) => Watched::Live(version),
                None => shard
                    .tombstone(hash, key, now_ms)
                    .map_or(Watched::Absent, Watched::Deleted),
            };
            if !then.still(now) {
                return Executed::WatchFailed;
            }
        }
        let (version, found) = stamp(locked, shards, keys, version, now_ms);
        let mut lending = Lending {
            ks: Keyspace::new(),
            slots: Vec::new(),
            locked,
            shards,
            settled: false,
        };
        // Each key's version and expiry before the command, when live.
        let mut bases: Vec<(&Bytes, Option<Base>)> = Vec::with_capacity(keys.len());
        for (key, hash, live) in found {
            if bases.iter().any(|(k, _)| *k == key) {
                continue;
            }
            let base = live.and_then(|(slot, held)| {
                let (value, expire_at_ms) = lending.locked.shard(hash, shards).lend(slot)?;
                // The caller's own key, shared rather than copied.
                let key = key.clone();
                lending.ks.put(
                    key.clone(),
                    keyspace::Entry {
                        value,
                        expire_at_ms,
                    },
                );
                lending.slots.push((key, hash, slot));
                Some(Base {
                    version: held,
                    expires_at_ms: expire_at_ms,
                })
            });
            bases.push((key, base));
        }
        if version.is_some() {
            lending.ks.keep_undo();
        }
        let Some(outcome) = run(&mut lending.ks) else {
            // The guard takes the command back and returns what it lent.
            return Executed::TooLarge;
        };
        let Some(version) = version else {
            debug_assert!(outcome.effects.is_empty(), "a read emitted effects");
            lending.give_back(|_| true);
            return Executed::Ran {
                version: None,
                reply: outcome.reply,
                changes: Vec::new(),
            };
        };
        let base_of = |key: &[u8]| {
            bases
                .iter()
                .find(|(k, _)| k.as_ref() == key)
                .and_then(|(_, base)| *base)
        };
        let Outcome { reply, effects } = outcome;
        if let Some(stray) = effects
            .iter()
            .find(|e| !bases.iter().any(|(k, _)| **k == e.key))
        {
            // The guard takes the command back and returns what it lent.
            return Executed::Undeclared {
                key: stray.key.clone(),
            };
        }
        let changes = group(effects, |key| base_of(key).map(|b| b.version));
        // Check every result before writing any: all or nothing.
        for change in &changes {
            let hash = hash_key(&change.key);
            if let Some(entry) = lending.ks.get(&change.key)
                && (stored::limited_len(&entry.value) > max_value_bytes
                    || !lending
                        .locked
                        .shard(hash, shards)
                        .fits(&change.key, &entry.value))
            {
                // The guard takes the command back and returns what it lent.
                return Executed::TooLarge;
            }
        }
        // Unchanged values go back first: writing a changed key may evict
        // others, and a lent value's slot must still be its own when it
        // comes back.
        lending.give_back(|key| !changes.iter().any(|c| c.key == key));
        lending.settled = true;
        for change in &changes {
            let hash = hash_key(&change.key);
            let result = lending.ks.take(&change.key);
            let shard = lending.locked.shard(hash, shards);
            let written = Written {
                change,
                base_expires_at_ms: base_of(&change.key).and_then(|b| b.expires_at_ms),
                result,
            };
            write_back(shard, hash, written, version, now_ms, record);
        }
        Executed::Ran {
            version: Some(version),
            reply,
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

/// Each key's hash and live item (slot and version; a hit or a miss
/// counted, the item marked used), and the version the command runs at:
/// the lowest above `version` and every version the keys hold, live, as
/// a tombstone, or expired here (`None` for a read).
pub(super) fn stamp<'k>(
    locked: &mut Locked<'_>,
    shards: usize,
    keys: &'k [Bytes],
    mut version: Option<Version>,
    now_ms: u64,
) -> (Option<Version>, Vec<Found<'k>>) {
    let mut found = Vec::with_capacity(keys.len());
    for key in keys {
        let hash = hash_key(key);
        let shard = locked.shard(hash, shards);
        // An item that has expired here may still be live at a replica
        // whose clock is behind: stamping above its version too makes
        // that replica see a base it lacks (and be repaired) instead of
        // a newer version (and be left as it is).
        let expired = shard.expired_version(hash, key);
        let live = shard.live(hash, key, now_ms);
        let held = live
            .map(|(_, v)| v)
            .or_else(|| shard.tombstone(hash, key, now_ms))
            .max(expired);
        if let (Some(v), Some(h)) = (version, held) {
            version = Some(v.above(h));
        }
        found.push((key, hash, live));
    }
    (version, found)
}

/// A key of a command, its hash, and its live item's slot and version.
pub(super) type Found<'k> = (&'k Bytes, u64, Option<(u32, Version)>);

/// Groups a command's effects by key, in the order keys were first
/// changed, each with the version the key held before.
fn group(effects: Vec<Effect>, base_of: impl Fn(&[u8]) -> Option<Version>) -> Vec<KeyChanges> {
    let mut changes: Vec<KeyChanges> = Vec::new();
    for Effect { key, op } in effects {
        match changes.iter_mut().find(|c| c.key == key) {
            Some(change) => change.ops.push(op),
            None => changes.push(KeyChanges {
                base: base_of(&key),
                key,
                ops: vec![op],
            }),
        }
    }
    changes
}

/// The keyspace a command runs on, with the values it borrowed from the
/// store (by key, hash and slot), under the keys' locks. A guard: unless
/// the command settles (its changes are about to be written back), the
/// keyspace is taken back through its journal and every borrowed value
/// returns to its slot, whether the command was refused, read only, or
/// its executor panicked. No key is ever left holding the empty stand-in
/// of a value that is out.
struct Lending<'s, 'a> {
    ks: Keyspace,
    slots: Vec<(Bytes, u64, u32)>,
    locked: &'s mut Locked<'a>,
    shards: usize,
    /// Set once the changed values belong to the write back.
    settled: bool,
}

impl Lending<'_, '_> {
    /// Gives back, as the keyspace holds them, the values of the keys
    /// `which` selects (unchanged ones, or all after an undo).
    fn give_back(&mut self, which: impl Fn(&[u8]) -> bool) {
        let (ks, locked, shards) = (&mut self.ks, &mut *self.locked, self.shards);
        self.slots.retain(|(key, hash, slot)| {
            if !which(key) {
                return true;
            }
            if let Some(entry) = ks.take(key) {
                locked.shard(*hash, shards).put_back(*slot, entry.value);
            }
            false
        });
    }
}

impl Drop for Lending<'_, '_> {
    fn drop(&mut self) {
        if !self.settled {
            self.ks.undo();
            self.give_back(|_| true);
        }
    }
}

/// What a key held before a command: its version and expiry.
#[derive(Clone, Copy)]
struct Base {
    version: Version,
    expires_at_ms: Option<u64>,
}

/// A key a command changed: the changes, the expiry it had before, and
/// what it holds after (`None`: deleted).
struct Written<'a> {
    change: &'a KeyChanges,
    base_expires_at_ms: Option<u64>,
    result: Option<keyspace::Entry>,
}

/// Writes a key's new state at `version`: its value and expiry, or a
/// delete; and records it for the mutation log, as the changes when they
/// make the smaller record (see [`logged_ops`]), else as the whole value.
fn write_back(
    shard: &mut Shard,
    hash: u64,
    written: Written<'_>,
    version: Version,
    now_ms: u64,
    record: &mut dyn FnMut(&Mutation<'_>),
) {
    let Written {
        change,
        base_expires_at_ms,
        result,
    } = written;
    let key = change.key.as_ref();
    let Some(entry) = result else {
        shard.delete(hash, key, version, now_ms);
        record(&Mutation::Delete { key, version });
        return;
    };
    let expires_at_ms = entry.expire_at_ms;
    let ops = logged_ops(change, base_expires_at_ms, &entry);
    let whole = ops.is_none().then(|| stored::to_stored(&entry.value));
    let mut buffer = Vec::new();
    let held = match &whole {
        // A string is kept as its stored form, which the log's record
        // already is: no second copy of it.
        Some(bytes) if !stored::is_collection(&entry.value) => Held::Bytes(bytes),
        _ => Held::from_value(entry.value, &mut buffer),
    };
    let outcome = shard.store(hash, key, held, version, expires_at_ms, now_ms);
    debug_assert!(
        matches!(outcome, SetOutcome::Stored | SetOutcome::Expired),
        "checked before writing: {outcome:?}"
    );
    match (&ops, &whole) {
        (Some(ops), _) => record(&Mutation::Changes {
            key,
            version,
            base: change.base,
            expires_at_ms,
            ops,
        }),
        (None, Some(value)) => record(&Mutation::Set {
            key,
            entry: EntryRef {
                value,
                expires_at_ms,
                version,
            },
        }),
        (None, None) => unreachable!("one of the two is always made"),
    }
}

/// The encoded ops of `change` when the log should record them rather
/// than the whole value `result`: they are smaller (a push onto a long
/// list, not a SET of a short string), and replay can apply them. Replay
/// applies them only over their base, so there must be one, and the key
/// must keep the base's expiry: a base that has expired by replay time is
/// not restored, and then the result must count as expired too.
fn logged_ops(
    change: &KeyChanges,
    base_expires_at_ms: Option<u64>,
    result: &keyspace::Entry,
) -> Option<Vec<u8>> {
    // A whole value in the ops (SET, a STORE) makes them no smaller.
    let puts = change
        .ops
        .iter()
        .any(|op| matches!(op, EffectOp::Put { .. }));
    if puts || change.base.is_none() || result.expire_at_ms != base_expires_at_ms {
        return None;
    }
    let whole = stored::stored_len(&result.value);
    let mut ops = Vec::new();
    effect_encoding::encode_ops(&change.key, &change.ops, &mut ops);
    (ops.len() < whole).then_some(ops)
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
    let live = shard.live(hash, &change.key, now_ms);
    let held = live
        .map(|(_, v)| v)
        .or_else(|| shard.tombstone(hash, &change.key, now_ms));
    if let Some(held) = held
        && held >= version
    {
        return ApplyOutcome::Stale { held };
    }
    if live.map(|(_, v)| v) != change.base {
        return ApplyOutcome::Diverged;
    }
    let lent_slot = live.map(|(slot, _)| slot);
    let mut slot = match lent_slot {
        Some(at) => match shard.lend(at) {
            Some((value, expire_at_ms)) => Some(keyspace::Entry {
                value,
                expire_at_ms,
            }),
            None => return ApplyOutcome::Diverged,
        },
        None => None,
    };
    let base_expires_at_ms = slot.as_ref().and_then(|e| e.expire_at_ms);
    // What takes the ops back if they do not fit, as in `execute`.
    let mut undo = Vec::with_capacity(change.ops.len());
    let mut refused = None;
    for op in &change.ops {
        match keyspace::apply_undoable(&mut slot, op) {
            Ok(step) => undo.push(step),
            Err(_) => {
                refused = Some(ApplyOutcome::Diverged);
                break;
            }
        }
    }
    if refused.is_none()
        && let Some(entry) = &slot
        && (stored::limited_len(&entry.value) > max_value_bytes
            || !shard.fits(&change.key, &entry.value))
    {
        refused = Some(ApplyOutcome::TooLarge);
    }
    if let Some(outcome) = refused {
        for step in undo.into_iter().rev() {
            step.apply(&mut slot);
        }
        if let (Some(at), Some(entry)) = (lent_slot, slot) {
            shard.put_back(at, entry.value);
        }
        return outcome;
    }
    let written = Written {
        change,
        base_expires_at_ms,
        result: slot,
    };
    write_back(shard, hash, written, version, now_ms, record);
    ApplyOutcome::Applied
}

impl Store {
    /// FLUSHALL on this store: deletes every live key, each at the first
    /// version above both `version` (the flush's, from the master's clock)
    /// and the version it holds ([`Version::above`]), so each leaves a
    /// tombstone that no older copy (a replica's, a late handoff's) can
    /// overwrite, and the flush is never undone. Each delete is passed to
    /// `record` (for the mutation log) under its shard's lock. Answers how
    /// many keys it deleted. Shards are flushed one after another: a write
    /// that lands in a shard already flushed is kept, as a write ordered
    /// after the flush.
    pub fn flush_all(
        &self,
        version: Version,
        now_ms: u64,
        record: &mut dyn FnMut(&Mutation<'_>),
    ) -> usize {
        let mut deleted = 0;
        for index in 0..self.shards.len() {
            let mut shard = self.lock(index);
            let mut held = Vec::new();
            shard.for_each(now_ms, |key, entry| {
                held.push((Bytes::copy_from_slice(key), entry.version));
            });
            for (key, held) in held {
                let at = version.above(held);
                let outcome = shard.delete(hash_key(&key), &key, at, now_ms);
                if !matches!(outcome, super::DeleteOutcome::Stale { .. }) {
                    record(&Mutation::Delete {
                        key: &key,
                        version: at,
                    });
                    deleted += 1;
                }
            }
        }
        deleted
    }

    /// Runs KEYS, SCAN, DBSIZE or RANDOMKEY over the live keys of this
    /// store; `None` for any other command. Shards are visited one after
    /// another, each under its lock. Costs (docs/commands.md):
    ///
    /// - KEYS walks every key, as in Redis, and copies only the keys it
    ///   answers with;
    /// - SCAN visits, in each shard, its keys in the window from the cursor
    ///   (each shard keeps its keys ordered by position), about COUNT per
    ///   shard, not the whole store;
    /// - DBSIZE sums the shards' counts, reclaiming due items first;
    /// - RANDOMKEY looks up one position per shard.
    pub fn execute_everywhere(
        &self,
        command: &Command,
        now_ms: u64,
        rng: &mut dyn rand::RngCore,
    ) -> Option<Reply> {
        Some(match command {
            Command::Keys { pattern } => {
                let mut found = Vec::new();
                for index in 0..self.shards.len() {
                    self.lock(index).for_each_key(now_ms, |key, _| {
                        if pattern_allows(pattern, key) {
                            found.push(Reply::Bulk(Bytes::copy_from_slice(key)));
                        }
                    });
                }
                Reply::Array(found)
            }
            Command::DbSize => {
                let live: usize = (0..self.shards.len())
                    .map(|index| self.lock(index).live_len(now_ms))
                    .sum();
                Reply::Integer(live as i64)
            }
            Command::RandomKey => self
                .random_key(now_ms, rng)
                .map_or(Reply::Null, Reply::Bulk),
            Command::Scan { cursor, opts } => self.scan(*cursor, opts, now_ms),
            _ => return None,
        })
    }

    /// SCAN from `cursor`: as the keyspace's SCAN, COUNT counts cursors
    /// ([`keyspace::scan_cursor`]: positions halved) visited, and the next
    /// cursor is the first one not visited (0 at the end).
    ///
    /// Two passes over the shards. The first finds where the window ends:
    /// the (COUNT + 1)th distinct cursor from the start over all
    /// shards, which is among each shard's first COUNT + 1 (a shard with
    /// COUNT cursors below it would make it the (COUNT + 2)th), so each
    /// shard is asked for those and no more. The second copies the keys in
    /// the window that pass MATCH and TYPE. A key that stays put from one
    /// call to the next is answered by exactly one of them: the windows of
    /// a loop do not overlap and leave no gap. A key written into the
    /// window between the passes is answered too (COUNT is a hint, in
    /// Redis as here); one deleted between them is not.
    fn scan(&self, cursor: u64, opts: &ScanOpts, now_ms: u64) -> Reply {
        let wanted = opts.count.saturating_add(1);
        let mut cursors = Vec::new();
        for index in 0..self.shards.len() {
            let mut taken = 0;
            let mut last = None;
            self.lock(index).for_each_from_position(
                scan_start(cursor),
                None,
                now_ms,
                |position, _, _| {
                    let at = scan_cursor(position);
                    if last != Some(at) {
                        if taken == wanted {
                            return false;
                        }
                        taken += 1;
                        last = Some(at);
                        cursors.push(at);
                    }
                    true
                },
            );
        }
        cursors.sort_unstable();
        cursors.dedup();
        let until = cursors.get(opts.count).copied();

        let type_filter = opts.type_name.as_ref().map(|t| ValueType::from_name(t));
        let mut found = Vec::new();
        for index in 0..self.shards.len() {
            self.lock(index).for_each_from_position(
                scan_start(cursor),
                until.map(scan_start),
                now_ms,
                |position, key, value_type| {
                    let type_ok = match type_filter {
                        None => true,
                        Some(None) => false,
                        Some(Some(t)) => value_type == Some(t),
                    };
                    if type_ok && opts.pattern.as_ref().is_none_or(|p| pattern_allows(p, key)) {
                        found.push((position, Bytes::copy_from_slice(key)));
                    }
                    true
                },
            );
        }
        found.sort_unstable();
        Reply::Array(vec![
            Reply::Bulk(Bytes::from(until.unwrap_or(0).to_string())),
            Reply::Array(found.into_iter().map(|(_, key)| Reply::Bulk(key)).collect()),
        ])
    }

    /// RANDOMKEY: a live key at the first position at or after a random
    /// one, going round the hash space (one of them, at random, when keys
    /// share it: a hash tag). Every key can be picked, with a chance equal
    /// to the gap before its position (about 1/n for a uniform hash, not
    /// exactly: Redis's pick is not uniform either, a random bucket then a
    /// random key of its chain). Costs a lookup per shard, plus the
    /// expired items skipped on the way.
    fn random_key(&self, now_ms: u64, rng: &mut dyn rand::RngCore) -> Option<Bytes> {
        let from = rng.next_u64();
        // The distance, going up and round from `from`, to the nearest
        // position found so far, and its keys.
        let mut nearest: Option<u64> = None;
        let mut keys: Vec<Bytes> = Vec::new();
        for index in 0..self.shards.len() {
            let mut shard = self.lock(index);
            for start in [from, 0] {
                let mut found = None;
                shard.for_each_from_position(start, None, now_ms, |position, key, _| {
                    let distance = position.wrapping_sub(from);
                    if found.is_some_and(|d| d != distance) {
                        return false;
                    }
                    found = Some(distance);
                    if nearest.is_none_or(|n| distance < n) {
                        nearest = Some(distance);
                        keys.clear();
                    }
                    if nearest == Some(distance) {
                        keys.push(Bytes::copy_from_slice(key));
                    }
                    true
                });
                if found.is_some() {
                    break;
                }
            }
        }
        let pick = rng.next_u64() % keys.len().max(1) as u64;
        keys.into_iter().nth(pick as usize)
    }
}
