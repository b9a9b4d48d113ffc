//! The tombstones of one shard: for each recently deleted key, the highest
//! delete version seen and the time until which it is kept.
//!
//! Tombstones are not items: they live in their own table and do not count
//! against the item or byte limits. They are dropped once their grace is
//! over, or earlier when a shard holds as many tombstones as it may hold
//! items (and at least 1,024): then the oldest goes for each new one (counted in
//! `dropped_early`), so that a cache that expires or deletes keys faster
//! than its capacity per grace keeps its memory bounded, at the price of a
//! shorter memory of those deletes. A tombstone past its grace is ignored
//! by every lookup (and dropped on the spot) even before `purge_expired`
//! reaches it.
//!
//! Because the grace is the same for every tombstone, purge order is
//! insertion order: a FIFO of `(until_ms, key hash)` finds the due ones
//! without a scan. A queue record is stale when its tombstone was since
//! dropped or pushed further out (that pushes a new record); it is compacted
//! like the expiry heap when it holds far more records than tombstones.

use std::collections::VecDeque;

use hashbrown::HashTable;

use super::expiry::STALE_SLACK;
use super::hash_key;
use crate::version::Version;

#[derive(Debug)]
struct Tombstone {
    key: Box<[u8]>,
    version: Version,
    /// Dropped (and ignored) once `now_ms >= until_ms`.
    until_ms: u64,
}

/// Tombstones of one shard.
#[derive(Debug)]
pub(super) struct Tombstones {
    table: HashTable<Tombstone>,
    queue: VecDeque<(u64, u64)>,
    grace_ms: u64,
    /// The most tombstones held (at least 1).
    cap: usize,
    /// Tombstones dropped within their grace to stay within `cap`.
    dropped_early: u64,
}

impl Tombstones {
    /// Tombstones kept for `grace_ms`, at most `cap` of them.
    pub(super) fn new(grace_ms: u64, cap: usize) -> Tombstones {
        Tombstones {
            table: HashTable::new(),
            queue: VecDeque::new(),
            grace_ms,
            cap: cap.max(1),
            dropped_early: 0,
        }
    }

    /// Tombstones dropped within their grace to stay within the cap.
    pub(super) fn dropped_early(&self) -> u64 {
        self.dropped_early
    }

    /// Calls `f` with the key and version of every tombstone within its
    /// grace at `now_ms`.
    pub(super) fn for_each(&self, now_ms: u64, mut f: impl FnMut(&[u8], Version)) {
        for t in self.table.iter() {
            if t.until_ms > now_ms {
                f(&t.key, t.version);
            }
        }
    }

    /// Tombstones held, including any past grace and not yet dropped.
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// The version of `key`'s tombstone within its grace at `now_ms`. A
    /// tombstone past its grace is dropped here.
    pub(super) fn held(&mut self, hash: u64, key: &[u8], now_ms: u64) -> Option<Version> {
        if self.table.is_empty() {
            return None;
        }
        match self.table.find_entry(hash, |t| *t.key == *key) {
            Ok(found) if found.get().until_ms <= now_ms => {
                found.remove();
                None
            }
            Ok(found) => Some(found.get().version),
            Err(_) => None,
        }
    }

    /// Records a delete of `key` at `version`: keeps the higher of it and any
    /// tombstone within grace, for `grace_ms` from now. With a zero grace no
    /// tombstone is kept at all.
    pub(super) fn record(&mut self, hash: u64, key: &[u8], version: Version, now_ms: u64) {
        if self.grace_ms == 0 {
            return;
        }
        let mut until_ms = now_ms.saturating_add(self.grace_ms);
        match self.table.find_mut(hash, |t| *t.key == *key) {
            Some(held) if held.until_ms <= now_ms || version > held.version => {
                held.version = version;
                // Never shortened, should the caller's clock step back.
                held.until_ms = held.until_ms.max(until_ms);
                until_ms = held.until_ms;
            }
            Some(_) => return,
            None => {
                let tombstone = Tombstone {
                    key: key.into(),
                    version,
                    until_ms,
                };
                self.table
                    .insert_unique(hash, tombstone, |t| hash_key(&t.key));
            }
        }
        // Every tombstone has a record of its current deadline.
        self.queue.push_back((until_ms, hash));
        while self.table.len() > self.cap && self.drop_oldest() {}
        if self.queue.len()
            > self
                .table
                .len()
                .saturating_mul(2)
                .saturating_add(STALE_SLACK)
        {
            self.compact_queue();
        }
    }

    /// Drops `key`'s tombstone, if any (a newer write superseded it).
    pub(super) fn remove(&mut self, hash: u64, key: &[u8]) {
        if self.table.is_empty() {
            return;
        }
        if let Ok(found) = self.table.find_entry(hash, |t| *t.key == *key) {
            found.remove();
        }
    }

    /// Drops about `budget` tombstones past their grace at `now_ms` (see
    /// below), looking at no more than `max_records` queue records. Returns
    /// how many it dropped and whether due records remain.
    pub(super) fn purge(
        &mut self,
        now_ms: u64,
        budget: usize,
        max_records: usize,
    ) -> (usize, bool) {
        let mut dropped = 0;
        let mut examined = 0;
        while dropped < budget && examined < max_records {
            let Some(&(until_ms, hash)) = self.queue.front() else {
                break;
            };
            if until_ms > now_ms {
                break;
            }
            self.queue.pop_front();
            examined += 1;
            // Every tombstone with this hash that is past grace goes, so none
            // is left without a queue record (only a 64-bit hash collision
            // can make this exceed `budget`). The table matches candidates on
            // a 7-bit tag only, hence the full hash comparison.
            loop {
                let due = |t: &Tombstone| t.until_ms <= now_ms && hash_key(&t.key) == hash;
                match self.table.find_entry(hash, due) {
                    Ok(found) => {
                        found.remove();
                        dropped += 1;
                    }
                    Err(_) => break,
                }
            }
        }
        let more = self
            .queue
            .front()
            .is_some_and(|&(until_ms, _)| until_ms <= now_ms);
        (dropped, more)
    }

    /// Drops the tombstone with the earliest deadline (the oldest: the
    /// grace is the same for all), skipping stale queue records; false when
    /// none is left.
    fn drop_oldest(&mut self) -> bool {
        while let Some((until_ms, hash)) = self.queue.pop_front() {
            let current = |t: &Tombstone| t.until_ms == until_ms && hash_key(&t.key) == hash;
            if let Ok(found) = self.table.find_entry(hash, current) {
                found.remove();
                self.dropped_early += 1;
                return true;
            }
        }
        false
    }

    fn compact_queue(&mut self) {
        let mut records: Vec<(u64, u64)> = self
            .table
            .iter()
            .map(|t| (t.until_ms, hash_key(&t.key)))
            .collect();
        records.sort_unstable();
        self.queue = VecDeque::from(records);
    }

    /// `(key, version, until_ms)` of every tombstone held, in no order.
    #[cfg(test)]
    pub(super) fn dump(&self) -> Vec<(Vec<u8>, Version, u64)> {
        self.table
            .iter()
            .map(|t| (t.key.to_vec(), t.version, t.until_ms))
            .collect()
    }

    /// Queue records held, current and stale.
    #[cfg(test)]
    pub(super) fn queue_len(&self) -> usize {
        self.queue.len()
    }
}
