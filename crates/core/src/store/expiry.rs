//! The expiry index of one shard: a min-heap of `(expires_at, slot)` records
//! that lets `purge_expired` find due items without scanning the shard.
//!
//! Records are invalidated lazily. When an item is removed or gets a new
//! expiry its old record stays in the heap; a popped record counts only if
//! its slot still holds an item with exactly that expiry (free slots hold
//! expiry 0, which no record carries). A record that outlived its item and
//! whose slot was reused by an item with the same expiry is harmless: that
//! item really is due at that time. To keep memory bounded, the heap is
//! compacted (stale records dropped, duplicates merged) whenever it holds
//! more than twice as many records as tracked items plus [`STALE_SLACK`];
//! each compaction is paid for by the writes that made the stale records.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Stale records tolerated beyond the tracked items, so that small shards do
/// not compact on every write.
pub(super) const STALE_SLACK: usize = 64;

/// Expiry records of one shard.
#[derive(Debug, Default)]
pub(super) struct ExpiryIndex {
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    /// Items of the shard with an expiry; each has a current record.
    tracked: usize,
}

impl ExpiryIndex {
    /// Notes that the item in `slot` went from expiry `old` to `new` (0 = none;
    /// `old` is 0 for a new item, `new` is 0 for a removed one).
    pub(super) fn retrack(&mut self, slot: u32, old: u64, new: u64) {
        if old != 0 {
            self.tracked = self.tracked.saturating_sub(1);
        }
        if new != 0 {
            self.tracked += 1;
            // The same slot with the same expiry keeps its current record.
            if new != old {
                self.heap.push(Reverse((new, slot)));
            }
        }
    }

    /// The earliest record if it is due at `now_ms`, removed from the heap.
    /// It may be stale: the caller checks it against the slab.
    pub(super) fn pop_due(&mut self, now_ms: u64) -> Option<(u64, u32)> {
        match self.heap.peek() {
            Some(&Reverse((expires_at, _))) if expires_at <= now_ms => {
                self.heap.pop().map(|Reverse(record)| record)
            }
            _ => None,
        }
    }

    /// True when the earliest record is due at `now_ms`.
    pub(super) fn has_due(&self, now_ms: u64) -> bool {
        self.heap
            .peek()
            .is_some_and(|&Reverse((expires_at, _))| expires_at <= now_ms)
    }

    /// True when stale records have piled up enough to pay for a compaction.
    pub(super) fn needs_compaction(&self) -> bool {
        self.heap.len() > self.tracked.saturating_mul(2).saturating_add(STALE_SLACK)
    }

    /// Keeps only the records `is_current(expires_at, slot)` accepts, once each.
    pub(super) fn compact(&mut self, is_current: impl Fn(u64, u32) -> bool) {
        let mut records = std::mem::take(&mut self.heap).into_vec();
        records.retain(|&Reverse((expires_at, slot))| is_current(expires_at, slot));
        records.sort_unstable();
        records.dedup();
        records.shrink_to(records.len().saturating_mul(2).saturating_add(STALE_SLACK));
        self.heap = BinaryHeap::from(records);
    }

    /// Records held, current and stale.
    #[cfg(test)]
    pub(super) fn records(&self) -> usize {
        self.heap.len()
    }

    /// Items with an expiry.
    #[cfg(test)]
    pub(super) fn tracked(&self) -> usize {
        self.tracked
    }
}
