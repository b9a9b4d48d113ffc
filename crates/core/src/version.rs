//! Versions: a hybrid logical clock stamped by the master on every write and
//! delete. Wall-clock milliseconds keep versions close to real time; the
//! counter orders writes within one millisecond (or while the wall clock
//! stands still or steps back); the origin, derived from the master's id,
//! breaks ties between masters. Ordering is lexicographic over
//! `(millis, counter, origin)`, and every replica keeps the higher version.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

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

    /// The lowest version above both `self` and `held` that keeps
    /// `self`'s origin: `self` when it is already above `held`, else the
    /// next counter in `held`'s millisecond. A key's leader stamps a
    /// command with it, so that the command needs no second trip when the
    /// key already holds a newer version than the master's clock gave.
    pub fn above(self, held: Version) -> Version {
        if self > held {
            return self;
        }
        let mut next = Version {
            millis: held.millis,
            counter: held.counter,
            origin: self.origin,
        };
        if next <= held {
            match held.counter.checked_add(1) {
                Some(counter) => next.counter = counter,
                None => {
                    next.millis = held.millis + 1;
                    next.counter = 0;
                }
            }
        }
        next
    }
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

/// Bits of a clock's position that hold the counter: a million versions
/// per millisecond, far more than a master issues.
const COUNTER_BITS: u32 = 20;
const COUNTER_MASK: u64 = (1 << COUNTER_BITS) - 1;
/// The highest millisecond a position can hold (about the year 2527).
const MAX_MILLIS: u64 = u64::MAX >> COUNTER_BITS;

/// `(millis, counter)` as one ordered number. A counter past
/// [`COUNTER_MASK`] becomes the next millisecond, which still orders after
/// it, so moving past the result moves past the version too.
fn position(millis: u64, counter: u32) -> u64 {
    let (millis, counter) = if u64::from(counter) > COUNTER_MASK {
        (millis.saturating_add(1), 0)
    } else {
        (millis, u64::from(counter))
    };
    (millis.min(MAX_MILLIS) << COUNTER_BITS) | counter
}

/// Issues strictly increasing versions for one master.
///
/// Lock-free: the last version issued or observed is one `AtomicU64`
/// (milliseconds and counter packed, see [`position`]), advanced with a
/// compare-and-swap by `tick` and with `fetch_max` by `observe`, which every
/// read calls; a mutex there was a lock per request shared by every core.
#[derive(Debug)]
pub struct HybridClock {
    origin: u32,
    last: AtomicU64,
}

impl HybridClock {
    /// A clock whose versions carry `origin`.
    pub fn new(origin: u32) -> Self {
        HybridClock {
            origin,
            last: AtomicU64::new(0),
        }
    }

    /// The next version, given the wall clock now. Never lower than or equal
    /// to any version this clock issued or observed before.
    pub fn tick(&self, wall_ms: u64) -> Version {
        let wall = position(wall_ms, 0);
        let mut last = self.last.load(Ordering::Relaxed);
        let next = loop {
            // Past the wall clock's millisecond, or one step past the last
            // version: a full counter carries into the next millisecond.
            let next = if wall > last { wall } else { last + 1 };
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break next,
                Err(current) => last = current,
            }
        };
        Version {
            millis: next >> COUNTER_BITS,
            counter: (next & COUNTER_MASK) as u32,
            origin: self.origin,
        }
    }

    /// Moves the clock past a version seen elsewhere, so that this master's
    /// next write orders after it even if this host's clock is behind.
    pub fn observe(&self, seen: Version) {
        self.last
            .fetch_max(position(seen.millis, seen.counter), Ordering::AcqRel);
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
    fn a_full_counter_carries_into_the_next_millisecond() {
        let clock = HybridClock::new(3);
        let seen = Version {
            millis: 7000,
            counter: u32::MAX,
            origin: 9,
        };
        clock.observe(seen);
        let next = clock.tick(0);
        assert!(next > seen, "{next} should order after {seen}");
        let mut last = next;
        for _ in 0..(COUNTER_MASK + 5) {
            let v = clock.tick(0);
            assert!(v > last, "{v} after {last}");
            last = v;
        }
        assert!(last.millis > next.millis, "the counter carried: {last}");
    }

    #[test]
    fn versions_from_many_threads_are_all_distinct_and_ordered_per_thread() {
        let clock = std::sync::Arc::new(HybridClock::new(1));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let clock = clock.clone();
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..20_000u64 {
                        if i % 100 == 0 {
                            clock.observe(Version {
                                millis: 1_000 + i / 10,
                                counter: t,
                                origin: 2,
                            });
                        }
                        mine.push(clock.tick(1_000));
                    }
                    mine
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in threads {
            let mine = t.join().unwrap();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "increasing per thread"
            );
            all.extend(mine);
        }
        let total = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), total, "no version issued twice");
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

#[cfg(test)]
mod above_tests {
    use super::Version;

    fn v(millis: u64, counter: u32, origin: u32) -> Version {
        Version {
            millis,
            counter,
            origin,
        }
    }

    #[test]
    fn above_keeps_a_higher_version_and_otherwise_takes_the_next_counter() {
        assert_eq!(v(10, 0, 1).above(v(9, 5, 2)), v(10, 0, 1));
        assert_eq!(v(9, 0, 1).above(v(9, 5, 2)), v(9, 6, 1));
        // Same millisecond and counter: a higher origin is enough.
        assert_eq!(v(9, 5, 3).above(v(9, 5, 2)), v(9, 5, 3));
        assert_eq!(v(9, 5, 1).above(v(9, 5, 2)), v(9, 6, 1));
        assert_eq!(v(9, 0, 1).above(v(9, u32::MAX, 2)), v(10, 0, 1));
        for (mine, held) in [(v(1, 2, 3), v(1, 2, 3)), (v(0, 0, 0), v(7, 7, 7))] {
            let above = mine.above(held);
            assert!(
                above > held && above >= mine,
                "{above} above {held} and {mine}"
            );
            assert_eq!(above.origin, mine.origin);
        }
    }
}
