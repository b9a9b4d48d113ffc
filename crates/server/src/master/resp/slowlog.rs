//! SLOWLOG: the commands this master answered slowly, newest first, as
//! Redis keeps them (`slowlog.c`): an id, the Unix time, the microseconds,
//! the arguments (at most 32, each cut at 128 bytes), the client's
//! address and name.
//!
//! What is timed is what the client waited for: from the command's start
//! to its reply, the trip to its auxiliaries included (Redis times its
//! own execution only, which is all there is on one node). Commands
//! pipelined to one auxiliary together share one time, the batch's. Not
//! logged: a blocking command that waited (BLPOP...), AUTH and HELLO
//! (their arguments are secrets; Redis's `no-slowlog` commands), and
//! transactions (their commands run as one batch at EXEC). Each master
//! keeps its own log, as each Redis Cluster node does.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use distcache_core::command::{CommandError, Reply};

/// Redis's `SLOWLOG_ENTRY_MAX_ARGC`: arguments kept per entry.
pub(super) const MAX_ARGS: usize = 32;
/// Redis's `SLOWLOG_ENTRY_MAX_STRING`: bytes kept per argument.
const MAX_ARG_BYTES: usize = 128;

/// One slow command.
#[derive(Debug, Clone)]
struct Entry {
    id: u64,
    unix_secs: i64,
    micros: u64,
    args: Vec<Bytes>,
    client: SocketAddr,
    name: String,
}

/// The log: its settings and its entries, newest at the front.
#[derive(Debug)]
pub(super) struct SlowLog {
    /// `SLOWLOG_SLOWER_THAN_US`: log commands that took at least this
    /// long; negative turns the log off, 0 logs every command.
    slower_than_us: i64,
    /// `SLOWLOG_MAX_LEN`: entries kept; the oldest go first.
    max_len: usize,
    entries: Mutex<(u64, VecDeque<Entry>)>,
}

impl SlowLog {
    pub(super) fn new(slower_than_us: i64, max_len: usize) -> SlowLog {
        SlowLog {
            slower_than_us,
            max_len,
            entries: Mutex::new((0, VecDeque::new())),
        }
    }

    pub(super) fn slower_than_us(&self) -> i64 {
        self.slower_than_us
    }

    pub(super) fn max_len(&self) -> usize {
        self.max_len
    }

    /// Whether any command may go in the log.
    pub(super) fn is_on(&self) -> bool {
        self.slower_than_us >= 0 && self.max_len > 0
    }

    /// Whether a command that took `took` goes in the log.
    pub(super) fn is_slow(&self, took: Duration) -> bool {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        u64::try_from(self.slower_than_us).is_ok_and(|threshold| micros >= threshold)
            && self.max_len > 0
    }

    /// Keeps a command that took `took`, if that is slow: `args` are its
    /// first arguments (up to [`MAX_ARGS`] of them, or all; of a command
    /// pipelined with others, its name alone), of `count`.
    pub(super) fn record(
        &self,
        args: &[Bytes],
        count: usize,
        took: Duration,
        client: SocketAddr,
        name: &str,
    ) {
        if !self.is_slow(took) {
            return;
        }
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let entry_args = shown_args(args, count);
        let unix_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut log = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let id = log.0;
        log.0 += 1;
        log.1.push_front(Entry {
            id,
            unix_secs,
            micros,
            args: entry_args,
            client,
            name: name.to_owned(),
        });
        log.1.truncate(self.max_len);
    }

    fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .len()
    }

    fn reset(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clear();
    }

    /// The newest `count` entries (all with `None`).
    fn newest(&self, count: Option<usize>) -> Vec<Entry> {
        let log = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        log.1
            .iter()
            .take(count.unwrap_or(usize::MAX))
            .cloned()
            .collect()
    }
}

/// The arguments an entry keeps: at most [`MAX_ARGS`], the last of them
/// saying how many more there were; each cut at [`MAX_ARG_BYTES`], saying
/// how many bytes more.
fn shown_args(args: &[Bytes], count: usize) -> Vec<Bytes> {
    let kept = if count > MAX_ARGS {
        MAX_ARGS - 1
    } else {
        count
    }
    .min(args.len());
    // Copied: an argument is a slice of its connection's read buffer,
    // which an entry must not keep alive (up to 32 MiB each).
    let mut shown: Vec<Bytes> = args[..kept]
        .iter()
        .map(|a| {
            if a.len() > MAX_ARG_BYTES {
                let mut cut = a[..MAX_ARG_BYTES].to_vec();
                cut.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - MAX_ARG_BYTES).as_bytes(),
                );
                Bytes::from(cut)
            } else {
                Bytes::copy_from_slice(a)
            }
        })
        .collect();
    if kept < count {
        shown.push(Bytes::from(format!(
            "... ({} more arguments)",
            count - kept
        )));
    }
    shown
}

const HELP: &[&str] = &[
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
    "HELP",
    "    Prints this help.",
];

fn error(line: String) -> Reply {
    Reply::Error(CommandError::Line(line))
}

/// The error a SLOWLOG call gets before it runs (and while MULTI queues
/// it): an unknown subcommand or a wrong arity, as Redis words them.
pub(super) fn refused(args: &[Bytes]) -> Option<Reply> {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let arity_ok = match sub.as_str() {
        // Redis declares GET `-2`: more than a count is refused when it
        // runs, not while MULTI queues it.
        "get" => true,
        "len" | "reset" | "help" => args.len() == 2,
        _ => {
            return Some(error(format!(
                "ERR unknown subcommand '{}'. Try SLOWLOG HELP.",
                String::from_utf8_lossy(&args[1])
            )));
        }
    };
    (!arity_ok).then(|| {
        error(format!(
            "ERR wrong number of arguments for 'slowlog|{sub}' command"
        ))
    })
}

/// SLOWLOG GET [count] | LEN | RESET | HELP.
pub(super) fn slowlog(log: &SlowLog, args: &[Bytes]) -> Reply {
    if let Some(refusal) = refused(args) {
        return refusal;
    }
    match String::from_utf8_lossy(&args[1])
        .to_ascii_lowercase()
        .as_str()
    {
        "len" => Reply::Integer(log.len() as i64),
        "reset" => {
            log.reset();
            Reply::OK
        }
        "help" => Reply::Array(HELP.iter().map(|l| Reply::Status((*l).into())).collect()),
        _ => {
            if args.len() > 3 {
                return error(
                    "ERR unknown subcommand or wrong number of arguments for 'GET'. Try SLOWLOG HELP."
                        .into(),
                );
            }
            let count = match args.get(2) {
                None => Some(10),
                Some(arg) => match distcache_core::command::number::parse_i64(arg) {
                    Some(-1) => None,
                    Some(n) if n >= 0 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                    _ => return error("ERR count should be greater than or equal to -1".into()),
                },
            };
            Reply::Array(
                log.newest(count)
                    .into_iter()
                    .map(|e| {
                        Reply::Array(vec![
                            Reply::Integer(e.id as i64),
                            Reply::Integer(e.unix_secs),
                            Reply::Integer(i64::try_from(e.micros).unwrap_or(i64::MAX)),
                            Reply::Array(e.args.into_iter().map(Reply::Bulk).collect()),
                            Reply::bulk(e.client.to_string().as_bytes()),
                            Reply::bulk(e.name.as_bytes()),
                        ])
                    })
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:5000".parse().unwrap()
    }

    #[test]
    fn long_commands_are_cut_as_redis_cuts_them() {
        let many: Vec<String> = (0..40).map(|i| i.to_string()).collect();
        let mut words = vec!["RPUSH"];
        words.extend(many.iter().map(String::as_str));
        let shown = shown_args(&args(&words), words.len());
        assert_eq!(shown.len(), 32);
        assert_eq!(shown[31], Bytes::from("... (10 more arguments)"));
        // Only the first 32 taken, of 42: the count still says 42.
        let first: Vec<Bytes> = args(&words).into_iter().take(MAX_ARGS).collect();
        assert_eq!(
            shown_args(&first, 42)[31],
            Bytes::from("... (11 more arguments)")
        );
        let long = "x".repeat(200);
        let shown = shown_args(&args(&["SET", "k", &long]), 3);
        assert_eq!(shown[2].len(), 128 + "... (72 more bytes)".len());
        assert!(shown[2].ends_with(b"x... (72 more bytes)"));
    }

    #[test]
    fn the_log_keeps_the_newest_slow_commands_first_up_to_its_length() {
        let log = SlowLog::new(1_000, 2);
        log.record(
            &args(&["GET", "fast"]),
            2,
            Duration::from_micros(999),
            addr(),
            "",
        );
        for i in 0..3 {
            let key = format!("k{i}");
            log.record(
                &args(&["GET", &key]),
                2,
                Duration::from_millis(2),
                addr(),
                "app",
            );
        }
        assert_eq!(log.len(), 2);
        let newest = log.newest(None);
        assert_eq!(newest[0].id, 2);
        assert_eq!(newest[1].args, args(&["GET", "k1"]));
        assert_eq!(newest[0].micros, 2_000);
        let off = SlowLog::new(-1, 128);
        off.record(&args(&["GET", "k"]), 2, Duration::from_secs(9), addr(), "");
        assert_eq!(off.len(), 0);
    }

    #[test]
    fn subcommands_and_counts_are_checked_as_redis_checks_them() {
        let log = SlowLog::new(0, 128);
        let line = |reply: Reply| match reply {
            Reply::Error(e) => e.to_string(),
            other => format!("{other:?}"),
        };
        assert_eq!(
            line(slowlog(&log, &args(&["SLOWLOG", "GET", "-2"]))),
            "ERR count should be greater than or equal to -1"
        );
        for bad in ["x", "+1", "99999999999999999999"] {
            assert_eq!(
                line(slowlog(&log, &args(&["SLOWLOG", "GET", bad]))),
                "ERR count should be greater than or equal to -1"
            );
        }
        assert_eq!(
            line(slowlog(&log, &args(&["SLOWLOG", "GET", "1", "2"]))),
            "ERR unknown subcommand or wrong number of arguments for 'GET'. Try SLOWLOG HELP."
        );
        assert!(
            refused(&args(&["SLOWLOG", "GET", "1", "2"])).is_none(),
            "queued in MULTI, as Redis queues it"
        );
        assert_eq!(
            line(slowlog(&log, &args(&["SLOWLOG", "LEN", "x"]))),
            "ERR wrong number of arguments for 'slowlog|len' command"
        );
        assert_eq!(
            line(slowlog(&log, &args(&["SLOWLOG", "FOO"]))),
            "ERR unknown subcommand 'FOO'. Try SLOWLOG HELP."
        );
        assert_eq!(
            slowlog(&log, &args(&["SLOWLOG", "GET"])),
            Reply::Array(Vec::new())
        );
    }
}
