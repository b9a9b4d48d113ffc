//! What a differential run sent, per command, and the check that it
//! reached the whole command table (or it proves little), shared by the
//! single-node and the cluster differentials.

use std::collections::BTreeMap;

use distcache_core::command::table::{self, CommandSpec};

/// Per command name: (times sent, times Redis answered without an error).
#[derive(Debug, Default)]
pub struct Coverage(BTreeMap<String, (usize, usize)>);

impl Coverage {
    /// Counts one command sent, answered without an error by Redis when
    /// `ok`.
    pub fn tally(&mut self, name: &str, ok: bool) {
        let t = self.0.entry(name.to_owned()).or_default();
        t.0 += 1;
        t.1 += usize::from(ok);
    }

    /// Adds another run's counts.
    pub fn merge(&mut self, other: Coverage) {
        for (name, (sent, ok)) in other.0 {
            let t = self.0.entry(name).or_default();
            t.0 += sent;
            t.1 += ok;
        }
    }

    /// Panics unless every command of the table but those `left_out`
    /// answered without an error at least `min` times. Not checked when
    /// one seed is replayed (`DIFF_SEED`).
    pub fn assert_every_command(&self, min: usize, left_out: impl Fn(&CommandSpec) -> bool) {
        eprintln!(
            "per command (sent, answered without an error): {:?}",
            self.0
        );
        if std::env::var_os("DIFF_SEED").is_some() {
            return;
        }
        for spec in table::COMMANDS {
            if left_out(spec) {
                continue;
            }
            let (sent, ok) = self.0.get(spec.name).copied().unwrap_or_default();
            assert!(
                ok >= min,
                "{} sent {sent} times, {ok} without an error",
                spec.name
            );
        }
    }
}

/// The seeds to run: `DIFF_SEED` alone when set (to replay one), else
/// `default`.
pub fn seeds(default: std::ops::Range<u64>) -> Vec<u64> {
    match std::env::var("DIFF_SEED") {
        Ok(s) => vec![s.parse().expect("DIFF_SEED is a number")],
        Err(_) => default.collect(),
    }
}
