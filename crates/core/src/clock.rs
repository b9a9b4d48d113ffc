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
