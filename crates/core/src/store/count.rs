//! Counting live keys by position, for the cluster's DBSIZE: each
//! auxiliary counts the keys it leads, so that every key is counted once
//! and none is copied.

use super::Store;
use crate::keyspace::key_position;
use crate::ring::{PositionRange, ranges_contain};

impl Store {
    /// The live keys (unexpired at `now_ms`; tombstones are not items)
    /// whose position is in one of `ranges`, which must be sorted and
    /// disjoint.
    ///
    /// Walks every item once, hashing its key and searching the ranges,
    /// rather than SCAN's index by position: that index is built only for
    /// SCAN and RANDOMKEY, and a monitoring script calling DBSIZE should
    /// not make every store keep it. Nothing is copied; each shard is
    /// locked while it is counted, one after another.
    pub fn count_in_ranges(&self, ranges: &[PositionRange], now_ms: u64) -> u64 {
        let mut count = 0;
        for index in 0..self.shards.len() {
            self.lock(index).for_each_key(now_ms, |key, _| {
                if ranges_contain(ranges, key_position(key)) {
                    count += 1;
                }
            });
        }
        count
    }
}
