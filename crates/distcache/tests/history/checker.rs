//! A history checker for one register per key, in the manner of Jepsen:
//! every operation is recorded with when it started, when it ended and
//! what it answered, and the whole history is checked afterwards.
//!
//! The workload it expects: each key's writes and deletes come from one
//! client at a time, one after another (so they are totally ordered in real
//! time), through any master; reads come from anyone at any time. Every
//! write writes a value no other write uses.
//!
//! A read that began at `start` and ended at `end` may return the effect of:
//!
//! - the last write or delete of the key acknowledged before `start`
//!   (the initial absence if there is none), or
//! - any later write or delete that began before `end` (it may have taken
//!   effect already), or
//! - any write or delete whose outcome is unknown (a timeout or a 5xx) that
//!   began before `end`: it may take effect at any time after it began.
//!
//! Anything else is an anomaly, named by what it breaks: a **resurrected
//! delete** (a value after a delete acknowledged before the read began), a
//! **stale read** (an older value, or an absence, after a write acknowledged
//! before the read began), or, for the reads made after the workload ended,
//! a **lost write**.

use std::collections::HashMap;
use std::fmt;
use std::time::Instant;

/// What an operation did to its key, or what a read saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// The key holds this value (values are unique per write).
    Value(i64),
    /// The key is absent.
    Absent,
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged: a write or delete took effect; a read saw `Effect`.
    Ok,
    /// Unknown: a timeout, a broken connection or a 5xx; it may or may not
    /// have taken effect, now or later.
    Unknown,
    /// Refused for sure (a 4xx): it had no effect.
    Failed,
}

/// One operation.
#[derive(Clone, Debug)]
pub struct Op {
    /// The key.
    pub key: String,
    /// What it is.
    pub kind: Kind,
    /// When the client sent it.
    pub start: Instant,
    /// When the answer arrived (or the client gave up).
    pub end: Instant,
    /// How it ended.
    pub outcome: Outcome,
    /// The master it went through, for the report.
    pub master: usize,
}

/// What an operation was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A write of a unique value.
    Write(i64),
    /// A delete.
    Delete,
    /// A read, and what it saw (meaningful when the outcome is `Ok`).
    Read(Effect),
}

impl Kind {
    fn effect(self) -> Option<Effect> {
        match self {
            Kind::Write(v) => Some(Effect::Value(v)),
            Kind::Delete => Some(Effect::Absent),
            Kind::Read(_) => None,
        }
    }
}

/// A read that saw what no allowed history could have shown.
#[derive(Clone, Debug)]
pub struct Anomaly {
    /// Which kind.
    pub class: Class,
    /// The read.
    pub read: Op,
    /// The last write or delete acknowledged before the read began.
    pub last_acknowledged: Option<Op>,
    /// What the read was allowed to see.
    pub allowed: Vec<Effect>,
}

/// The kinds of anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// A value after a delete acknowledged before the read began.
    ResurrectedDelete,
    /// Something older than a write acknowledged before the read began.
    StaleRead,
    /// After the workload: something older than the last acknowledged write.
    LostWrite,
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}: read of {} through master {} saw {:?}; last acknowledged before it: {:?}; allowed: {:?}",
            self.class,
            self.read.key,
            self.read.master + 1,
            self.read.kind,
            self.last_acknowledged
                .as_ref()
                .map(|op| (op.kind, op.master + 1)),
            self.allowed
        )
    }
}

/// What a check found.
#[derive(Debug, Default)]
pub struct Report {
    /// Writes and deletes recorded, by outcome.
    pub mutations: HashMap<&'static str, usize>,
    /// Reads checked (acknowledged ones).
    pub reads_checked: usize,
    /// Every anomaly.
    pub anomalies: Vec<Anomaly>,
}

impl Report {
    /// Anomalies of one class.
    pub fn count(&self, class: Class) -> usize {
        self.anomalies.iter().filter(|a| a.class == class).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "writes and deletes {:?}, reads checked {}, lost writes {}, resurrected deletes {}, stale reads {}",
            self.mutations,
            self.reads_checked,
            self.count(Class::LostWrite),
            self.count(Class::ResurrectedDelete),
            self.count(Class::StaleRead),
        )
    }
}

/// Checks `history`; `finished` is when the workload ended: reads that
/// began after it are the final reads, whose anomalies are lost writes.
///
/// # Panics
///
/// If two writes or deletes of one key overlap in time: the workload broke
/// its contract, and the check would mean nothing.
pub fn check(history: &[Op], finished: Instant) -> Report {
    let mut report = Report::default();
    let mut by_key: HashMap<&str, Vec<&Op>> = HashMap::new();
    for op in history {
        by_key.entry(&op.key).or_default().push(op);
    }
    for ops in by_key.values() {
        let mut mutations: Vec<&Op> = ops
            .iter()
            .copied()
            .filter(|op| op.kind.effect().is_some())
            .collect();
        mutations.sort_by_key(|op| op.start);
        for pair in mutations.windows(2) {
            assert!(
                pair[0].end <= pair[1].start,
                "the workload overlapped two writes of {}: {:?} and {:?}",
                pair[0].key,
                pair[0].kind,
                pair[1].kind
            );
        }
        for op in &mutations {
            let outcome = match op.outcome {
                Outcome::Ok => "ok",
                Outcome::Unknown => "unknown",
                Outcome::Failed => "failed",
            };
            *report.mutations.entry(outcome).or_default() += 1;
        }
        for read in ops.iter().filter(|op| op.outcome == Outcome::Ok) {
            let Kind::Read(seen) = read.kind else {
                continue;
            };
            report.reads_checked += 1;
            if let Some(anomaly) = check_read(read, seen, &mutations, finished) {
                report.anomalies.push(anomaly);
            }
        }
    }
    report.anomalies.sort_by_key(|a| (a.class, a.read.start));
    report
}

fn check_read(read: &Op, seen: Effect, mutations: &[&Op], finished: Instant) -> Option<Anomaly> {
    let last = mutations
        .iter()
        .rposition(|m| m.outcome == Outcome::Ok && m.end < read.start);
    let mut allowed = vec![match last {
        Some(i) => mutations[i].kind.effect().expect("a mutation"),
        None => Effect::Absent,
    }];
    for (i, m) in mutations.iter().enumerate() {
        let later = last.is_none_or(|last| i > last);
        let possible = match m.outcome {
            Outcome::Ok => later,
            Outcome::Unknown => true,
            Outcome::Failed => false,
        };
        if possible && m.start < read.end {
            allowed.push(m.kind.effect().expect("a mutation"));
        }
    }
    if allowed.contains(&seen) {
        return None;
    }
    let last_acknowledged = last.map(|i| mutations[i].clone());
    let class = if read.start >= finished {
        Class::LostWrite
    } else {
        match last_acknowledged.as_ref().map(|op| op.kind) {
            Some(Kind::Delete) => Class::ResurrectedDelete,
            _ => Class::StaleRead,
        }
    };
    allowed.dedup();
    Some(Anomaly {
        class,
        read: read.clone(),
        last_acknowledged,
        allowed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Operations on one key at whole milliseconds after `t0`.
    struct Timeline {
        t0: Instant,
        ops: Vec<Op>,
    }

    impl Timeline {
        fn new() -> Timeline {
            Timeline {
                t0: Instant::now(),
                ops: Vec::new(),
            }
        }

        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }

        fn op(&mut self, kind: Kind, start: u64, end: u64, outcome: Outcome) -> &mut Self {
            self.ops.push(Op {
                key: "k".into(),
                kind,
                start: self.at(start),
                end: self.at(end),
                outcome,
                master: 0,
            });
            self
        }

        fn check(&self, finished: u64) -> Report {
            check(&self.ops, self.at(finished))
        }
    }

    use Effect::{Absent, Value};
    use Kind::{Delete, Read, Write};
    use Outcome::{Ok as Acked, Unknown};

    #[test]
    fn a_read_after_an_acknowledged_write_must_see_it_or_something_later() {
        let mut t = Timeline::new();
        t.op(Write(1), 0, 10, Acked)
            .op(Write(2), 20, 30, Acked)
            .op(Read(Value(2)), 40, 50, Acked)
            .op(Read(Value(1)), 15, 25, Acked) // overlaps write 2: either
            .op(Read(Value(2)), 25, 26, Acked); // write 2 had begun
        assert!(t.check(1000).anomalies.is_empty());
        t.op(Read(Value(1)), 31, 35, Acked);
        let report = t.check(1000);
        assert_eq!(report.count(Class::StaleRead), 1, "{report}");
        assert_eq!(report.reads_checked, 4);
    }

    #[test]
    fn a_value_after_an_acknowledged_delete_is_a_resurrection() {
        let mut t = Timeline::new();
        t.op(Write(1), 0, 10, Acked)
            .op(Delete, 20, 30, Acked)
            .op(Read(Absent), 31, 32, Acked);
        assert!(t.check(1000).anomalies.is_empty());
        t.op(Read(Value(1)), 40, 41, Acked);
        assert_eq!(t.check(1000).count(Class::ResurrectedDelete), 1);
    }

    #[test]
    fn an_absence_after_an_acknowledged_write_is_stale_and_after_the_end_lost() {
        let mut t = Timeline::new();
        t.op(Write(1), 0, 10, Acked).op(Read(Absent), 20, 21, Acked);
        assert_eq!(t.check(1000).count(Class::StaleRead), 1);
        let mut t = Timeline::new();
        t.op(Write(1), 0, 10, Acked)
            .op(Read(Absent), 2000, 2001, Acked);
        assert_eq!(t.check(1000).count(Class::LostWrite), 1);
    }

    #[test]
    fn an_operation_of_unknown_outcome_may_show_up_at_any_time_after_it_began() {
        let mut t = Timeline::new();
        t.op(Write(1), 0, 10, Unknown)
            .op(Write(2), 20, 30, Acked)
            .op(Read(Value(1)), 40, 41, Acked)
            .op(Read(Value(2)), 42, 43, Acked);
        assert!(t.check(1000).anomalies.is_empty());
        // But not before it began.
        t.op(Write(3), 50, 60, Unknown)
            .op(Read(Value(3)), 45, 49, Acked);
        assert_eq!(t.check(1000).count(Class::StaleRead), 1);
    }

    #[test]
    fn a_refused_write_never_shows_up() {
        let mut t = Timeline::new();
        t.op(Write(1), 0, 10, Outcome::Failed)
            .op(Read(Value(1)), 20, 21, Acked);
        assert_eq!(t.check(1000).count(Class::StaleRead), 1);
    }

    #[test]
    #[should_panic(expected = "overlapped")]
    fn overlapping_writes_of_one_key_are_a_broken_workload() {
        let mut t = Timeline::new();
        t.op(Write(1), 0, 10, Acked).op(Write(2), 5, 15, Acked);
        t.check(1000);
    }
}
