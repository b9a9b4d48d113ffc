//! Versions: a hybrid logical clock stamped by the master on every write and
//! delete. Wall-clock milliseconds keep versions close to real time; the
//! counter orders writes within one millisecond (or while the wall clock
//! stands still or steps back); the origin, derived from the master's id,
//! breaks ties between masters. Ordering is lexicographic over
//! `(millis, counter, origin)`, and every replica keeps the higher version.

use std::fmt;
use std::sync::Mutex;

/// A write's position in the cluster-wide last-writer-wins order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Wall-clock milliseconds since the Unix epoch (possibly pushed ahead by
    /// versions observed from other masters).
    pub millis: u64,
    /// Orders versions issued within the same millisecond.
    pub counter: u32,
    /// The issuing master, see [`origin_id`].
    pub origin: u32,
}

impl Version {
    /// Lower than every version a clock issues; held by nothing.
    pub const ZERO: Version = Version {
        millis: 0,
        counter: 0,
        origin: 0,
    };
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{:08x}", self.millis, self.counter, self.origin)
    }
}

/// The stable 32-bit origin of a master, from its node id.
pub fn origin_id(node_id: &str) -> u32 {
    xxhash_rust::xxh3::xxh3_64(node_id.as_bytes()) as u32
}

/// Issues strictly increasing versions for one master.
#[derive(Debug)]
pub struct HybridClock {
    origin: u32,
    last: Mutex<(u64, u32)>,
}

impl HybridClock {
    /// A clock whose versions carry `origin`.
    pub fn new(origin: u32) -> Self {
        HybridClock {
            origin,
            last: Mutex::new((0, 0)),
        }
    }

    /// The next version, given the wall clock now. Never lower than or equal
    /// to any version this clock issued or observed before.
    pub fn tick(&self, wall_ms: u64) -> Version {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let (millis, counter) = if wall_ms > last.0 {
            (wall_ms, 0)
        } else if last.1 == u32::MAX {
            (last.0 + 1, 0)
        } else {
            (last.0, last.1 + 1)
        };
        *last = (millis, counter);
        Version {
            millis,
            counter,
            origin: self.origin,
        }
    }

    /// Moves the clock past a version seen elsewhere, so that this master's
    /// next write orders after it even if this host's clock is behind.
    pub fn observe(&self, seen: Version) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if (seen.millis, seen.counter) > *last {
            *last = (seen.millis, seen.counter);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_even_when_the_wall_clock_does_not() {
        let clock = HybridClock::new(7);
        let a = clock.tick(1000);
        let b = clock.tick(1000);
        let c = clock.tick(999); // the wall clock stepped back
        let d = clock.tick(1001);
        assert!(a < b && b < c && c < d, "{a} {b} {c} {d}");
        assert_eq!(
            d,
            Version {
                millis: 1001,
                counter: 0,
                origin: 7
            }
        );
    }

    #[test]
    fn observing_a_later_version_moves_the_clock_past_it() {
        let clock = HybridClock::new(1);
        let seen = Version {
            millis: 5000,
            counter: 3,
            origin: 2,
        };
        clock.observe(seen);
        let next = clock.tick(10);
        assert!(next > seen, "{next} should order after {seen}");
    }

    #[test]
    fn origin_breaks_ties_and_is_stable() {
        let a = Version {
            millis: 1,
            counter: 1,
            origin: 1,
        };
        let b = Version {
            millis: 1,
            counter: 1,
            origin: 2,
        };
        assert!(a < b);
        assert_eq!(origin_id("master-1"), origin_id("master-1"));
        assert_ne!(origin_id("master-1"), origin_id("master-2"));
    }
}
