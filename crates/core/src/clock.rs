//! The one place distcache reads the wall clock. Expiry times and versions
//! are absolute Unix milliseconds so that they mean the same on every node
//! and survive snapshots, transfers and restarts unchanged.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, by the system clock.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A source of Unix milliseconds, injectable so that tests can run nodes
/// on a controlled clock.
pub type Clock = std::sync::Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock as a [`Clock`].
pub fn system_clock() -> Clock {
    std::sync::Arc::new(unix_ms)
}

/// `clock` moved by `offset_ms` (negative = behind): a host whose clock is
/// off, for tests that show clocks need not agree.
pub fn offset(clock: Clock, offset_ms: i64) -> Clock {
    if offset_ms == 0 {
        return clock;
    }
    std::sync::Arc::new(move || clock().saturating_add_signed(offset_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_clock_runs_ahead_or_behind_by_the_offset() {
        let fixed: Clock = std::sync::Arc::new(|| 10_000);
        assert_eq!(offset(fixed.clone(), 2_000)(), 12_000);
        assert_eq!(offset(fixed.clone(), -2_000)(), 8_000);
        assert_eq!(offset(fixed.clone(), -20_000)(), 0);
        assert_eq!(offset(fixed, 0)(), 10_000);
    }
}
