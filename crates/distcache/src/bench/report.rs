//! What a run measured: latency histograms and counts per operation and
//! errors by kind, gathered per connection and merged at the end, then
//! printed as a table or as JSON (the fields are documented in
//! docs/benchmarks.md).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::commands::Command;

/// The operations a run sends: the REST ones `--mix` mixes, and the
/// commands `--commands` measures one after another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `GET /data/{key}`
    Get,
    /// `POST /data`
    Set,
    /// `DELETE /data/{key}`
    Del,
    /// `POST /` with one command.
    Command(Command),
}

/// Operations a `Stats` keeps figures for: the three REST ones, then the
/// commands.
const OPS: usize = 3 + Command::ALL.len();

impl Op {
    /// The REST operations, in report order.
    pub const DATA: [Op; 3] = [Op::Get, Op::Set, Op::Del];

    /// The name used in `--mix` (the REST ones), the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::Del => "del",
            Op::Command(c) => c.name(),
        }
    }

    fn index(self) -> usize {
        match self {
            Op::Get => 0,
            Op::Set => 1,
            Op::Del => 2,
            Op::Command(c) => 3 + c as usize,
        }
    }
}

/// Why a request failed. A 404 to a read or delete, or a nil answer to a
/// GET command, is a miss, not an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// Any status other than 2xx (and 404 on get and del); a command's
    /// error answer (`{"error": ...}`) is a 400.
    Http(u16),
    /// The TCP connection or HTTP handshake could not be made in time.
    Connect,
    /// No complete answer within `--timeout`.
    Timeout,
    /// The connection broke while a request was in flight.
    Io,
}

impl ErrorKind {
    /// The key in the report: `http_503`, `connect`, `timeout`, `io`.
    pub fn label(self) -> String {
        match self {
            ErrorKind::Http(status) => format!("http_{status}"),
            ErrorKind::Connect => "connect".into(),
            ErrorKind::Timeout => "timeout".into(),
            ErrorKind::Io => "io".into(),
        }
    }
}

/// How one request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Ok,
    /// A 404 to a get or a del, or a nil answer to GET: the key was not there.
    Miss,
    /// A failure.
    Error(ErrorKind),
}

/// Highest latency a histogram holds; slower requests are clamped to it
/// (they are timeouts long before that).
const MAX_LATENCY_US: u64 = 3_600_000_000;

struct OpStats {
    /// Latency in microseconds of every answered request (misses included,
    /// errors not).
    latency_us: Histogram<u64>,
    misses: u64,
    errors: u64,
}

impl OpStats {
    fn new() -> OpStats {
        OpStats {
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("valid histogram bounds"),
            misses: 0,
            errors: 0,
        }
    }
}

/// Counts and histograms of one connection, or of all of them merged.
pub struct Stats {
    ops: [OpStats; OPS],
    errors: BTreeMap<ErrorKind, u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            ops: std::array::from_fn(|_| OpStats::new()),
            errors: BTreeMap::new(),
        }
    }
}

impl Stats {
    /// Records one request.
    pub fn record(&mut self, op: Op, outcome: Outcome, latency: Duration) {
        let s = &mut self.ops[op.index()];
        match outcome {
            Outcome::Ok | Outcome::Miss => {
                let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
                s.latency_us.saturating_record(us);
                if outcome == Outcome::Miss {
                    s.misses += 1;
                }
            }
            Outcome::Error(kind) => {
                s.errors += 1;
                *self.errors.entry(kind).or_default() += 1;
            }
        }
    }

    /// Adds another connection's figures to these.
    pub fn merge(&mut self, other: &Stats) {
        for (mine, theirs) in self.ops.iter_mut().zip(&other.ops) {
            mine.latency_us
                .add(&theirs.latency_us)
                .expect("histograms with the same bounds");
            mine.misses += theirs.misses;
            mine.errors += theirs.errors;
        }
        for (kind, n) in &other.errors {
            *self.errors.entry(*kind).or_default() += n;
        }
    }

    /// Requests that failed, all operations.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The report of a run that measured for `elapsed`.
    pub fn summary(&self, elapsed: Duration) -> Summary {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let mut all = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3)
            .expect("valid histogram bounds");
        for s in &self.ops {
            all.add(&s.latency_us).expect("same bounds");
        }
        let [get, set, del] = Op::DATA.map(|op| {
            let s = &self.ops[op.index()];
            OpSummary::new(&s.latency_us, s.misses, s.errors, secs)
        });
        let operations = Operations { get, set, del };
        let misses = self.ops.iter().map(|s| s.misses).sum();
        Summary {
            elapsed_s: secs,
            total: OpSummary::new(&all, misses, self.error_count(), secs),
            operations,
            errors: self.errors.iter().map(|(k, n)| (k.label(), *n)).collect(),
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Serialize, Debug)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// Slowest request.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

/// The figures of one operation (or of all of them).
#[derive(Serialize, Debug)]
pub struct OpSummary {
    /// Answered requests (2xx, plus 404 for get and del), errors excluded.
    pub ops: u64,
    /// `ops` per second of the measured time.
    pub ops_per_sec: f64,
    /// Of `ops`, the 404 answers of get and del.
    pub misses: u64,
    /// Failed requests (see `errors` of the run for their kinds).
    pub errors: u64,
    /// Latency of the answered requests, in milliseconds; all 0 when none.
    pub latency_ms: Latency,
}

impl OpSummary {
    fn new(h: &Histogram<u64>, misses: u64, errors: u64, secs: f64) -> OpSummary {
        let ms = |us: u64| us as f64 / 1000.0;
        let q = |q: f64| {
            if h.is_empty() {
                0.0
            } else {
                ms(h.value_at_quantile(q))
            }
        };
        OpSummary {
            ops: h.len(),
            ops_per_sec: h.len() as f64 / secs,
            misses,
            errors,
            latency_ms: Latency {
                p50: q(0.50),
                p90: q(0.90),
                p99: q(0.99),
                p99_9: q(0.999),
                max: if h.is_empty() { 0.0 } else { ms(h.max()) },
                mean: if h.is_empty() { 0.0 } else { h.mean() / 1000.0 },
            },
        }
    }
}

/// The figures of each operation.
#[derive(Serialize, Debug)]
pub struct Operations {
    /// `GET /data/{key}`.
    pub get: OpSummary,
    /// `POST /data`.
    pub set: OpSummary,
    /// `DELETE /data/{key}`.
    pub del: OpSummary,
}

/// The measured part of a report.
#[derive(Serialize, Debug)]
pub struct Summary {
    /// Seconds measured (warm-up and preload excluded).
    pub elapsed_s: f64,
    /// All operations together.
    pub total: OpSummary,
    /// Each REST operation, always all three (all 0 in a `--commands` run).
    pub operations: Operations,
    /// Failed requests by kind: `http_<status>`, `connect`, `timeout`, `io`.
    pub errors: BTreeMap<String, u64>,
}

/// The whole `--json` document.
#[derive(Serialize, Debug)]
pub struct Report<C: Serialize> {
    /// The settings of the run.
    pub config: C,
    /// The preload phase, when `--preload` was given.
    pub preload: Option<PreloadSummary>,
    /// What a reader should know to read the figures: a key space larger
    /// than the cluster holds, why gets missed.
    pub notes: Vec<String>,
    #[serde(flatten)]
    #[allow(missing_docs)]
    pub summary: Summary,
    /// Each command of a `--commands` run, measured on its own; absent in a
    /// `--mix` run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commands: Option<Vec<CommandSummary>>,
}

/// The figures of one command of a `--commands` run.
#[derive(Serialize, Debug)]
pub struct CommandSummary {
    /// The command: `INCR`, `HSET` ...
    pub command: &'static str,
    /// Seconds this command was measured.
    pub elapsed_s: f64,
    #[serde(flatten)]
    #[allow(missing_docs)]
    pub figures: OpSummary,
    /// Its failed requests by kind, as `errors` of the run.
    pub errors_by_kind: BTreeMap<String, u64>,
}

impl CommandSummary {
    /// The figures of `command`, from the `Stats` of a phase that sent only it.
    pub fn new(command: Command, stats: &Stats, elapsed: Duration) -> CommandSummary {
        let s = stats.summary(elapsed);
        CommandSummary {
            command: command.name(),
            elapsed_s: s.elapsed_s,
            figures: s.total,
            errors_by_kind: s.errors,
        }
    }
}

/// What `--preload` did.
#[derive(Serialize, Debug)]
pub struct PreloadSummary {
    /// Keys written.
    pub keys: u64,
    /// Seconds it took.
    pub seconds: f64,
    /// Writes that failed.
    pub errors: u64,
}

/// The human-readable table of a `--mix` run.
pub fn table(s: &Summary) -> String {
    let o = &s.operations;
    let rows = Op::DATA
        .map(Op::name)
        .into_iter()
        .zip([&o.get, &o.set, &o.del])
        .filter(|(_, o)| o.ops + o.errors > 0)
        .chain(std::iter::once(("all", &s.total)));
    rows_table(rows, &s.errors)
}

/// The human-readable table of a `--commands` run: a row per command, and
/// the run's errors by kind. No `all` row: the commands ran one after
/// another, so their rates do not add up.
pub fn commands_table(commands: &[CommandSummary], s: &Summary) -> String {
    let rows = commands.iter().map(|c| (c.command, &c.figures));
    rows_table(rows, &s.errors)
}

fn rows_table<'a>(
    rows: impl Iterator<Item = (&'a str, &'a OpSummary)>,
    errors: &BTreeMap<String, u64>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<5} {:>10} {:>11} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "op",
        "ops",
        "ops/s",
        "misses",
        "errors",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms"
    );
    for (name, o) in rows {
        let l = &o.latency_ms;
        let _ = writeln!(
            out,
            "{:<5} {:>10} {:>11.0} {:>9} {:>8} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            name, o.ops, o.ops_per_sec, o.misses, o.errors, l.p50, l.p90, l.p99, l.p99_9, l.max
        );
    }
    if errors.is_empty() {
        let _ = writeln!(out, "errors: none");
    } else {
        let kinds: Vec<String> = errors.iter().map(|(k, n)| format!("{k}={n}")).collect();
        let _ = writeln!(out, "errors: {}", kinds.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misses_are_answers_and_errors_are_not() {
        let mut a = Stats::default();
        a.record(Op::Get, Outcome::Ok, Duration::from_micros(100));
        a.record(Op::Get, Outcome::Miss, Duration::from_micros(300));
        a.record(
            Op::Set,
            Outcome::Error(ErrorKind::Http(503)),
            Duration::from_micros(5),
        );
        let mut b = Stats::default();
        b.record(
            Op::Del,
            Outcome::Error(ErrorKind::Timeout),
            Duration::from_secs(5),
        );
        b.record(Op::Set, Outcome::Ok, Duration::from_micros(200));
        a.merge(&b);
        let s = a.summary(Duration::from_secs(2));
        assert_eq!(s.total.ops, 3);
        assert_eq!(s.total.misses, 1);
        assert_eq!(s.total.errors, 2);
        assert_eq!(s.operations.get.ops, 2);
        assert_eq!(s.operations.get.misses, 1);
        assert!((s.operations.get.ops_per_sec - 1.0).abs() < 1e-9);
        assert_eq!(s.operations.del.ops, 0);
        assert_eq!(s.operations.del.latency_ms.p50, 0.0);
        assert_eq!(s.errors["http_503"], 1);
        assert_eq!(s.errors["timeout"], 1);
        let max = s.operations.get.latency_ms.max;
        assert!((0.299..0.301).contains(&max), "max {max}");
        let t = table(&s);
        assert!(t.contains("http_503=1 timeout=1"), "{t}");
    }
}
