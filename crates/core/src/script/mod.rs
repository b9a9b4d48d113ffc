//! Lua scripts: EVAL, EVALSHA and their read-only forms, as Redis 7 runs
//! them, over a keyspace.
//!
//! A script runs where its declared keys live: the auxiliary that leads
//! them locks them, lends them to a [`Keyspace`], and runs the script on
//! it ([`run`], called by the keyspace's executor for [`Command::Eval`]).
//! So a script is atomic as a transaction is: no other command on its keys
//! runs while it does, and its changes leave the leader as one batch of
//! effects, replicated and logged as any command's. What it replicates is
//! what it did (Redis 7's effects replication), never the script, so a
//! script may read the clock or the dice.
//!
//! `redis.call` and `redis.pcall` run the table's commands on the lent
//! keyspace. A script may touch only the keys it declared in `KEYS`:
//! those are the keys its leader locked, and the only ones that are
//! certainly there (Redis Cluster's rule for keys in other slots, applied
//! to every undeclared key). Commands that wait, that belong to the
//! master (MULTI, SUBSCRIBE, SCRIPT, PUBLISH) or that ask every node
//! (KEYS, SCAN, DBSIZE, FLUSHALL) are refused inside a script.
//!
//! The Lua environment is Redis's ([`vm`]): Lua 5.1 with its base, string,
//! table and math libraries, `bit`, `cjson` and `cmsgpack`, and the
//! `redis` table;
//! globals are read-only, and a script that runs past [`time_limit`] is
//! stopped. The conversions between replies and Lua values are Redis's
//! ([`convert`]).
//!
//! [`Command::Eval`]: crate::command::Command::Eval

mod convert;
mod failure;
mod libs;
mod vm;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rand::RngCore;
use sha1::{Digest, Sha1};

use crate::command::{CommandError, Reply};
use crate::keyspace::{Effect, Keyspace};

/// How long a script may run before it is stopped, unless
/// [`set_time_limit`] says otherwise (auxiliaries: `SCRIPT_TIME_LIMIT_MS`).
/// Redis lets a script run on past its `busy-reply-threshold` (5 s),
/// answering BUSY to every other client until SCRIPT KILL; here the
/// script's keys (and the store shards they are in) stay locked while it
/// runs, and the master that sent it waits `REQUEST_TIMEOUT_MS` at most,
/// so it is stopped instead, keeping the writes it made before, as a
/// script that fails does.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_millis(500);

/// The limit in force, in milliseconds.
static TIME_LIMIT_MS: AtomicU64 = AtomicU64::new(DEFAULT_TIME_LIMIT.as_millis() as u64);

/// Sets how long a script may run (for the whole process).
pub fn set_time_limit(limit: Duration) {
    let ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX).max(1);
    TIME_LIMIT_MS.store(ms, Ordering::Relaxed);
}

/// How long a script may run.
pub fn time_limit() -> Duration {
    Duration::from_millis(TIME_LIMIT_MS.load(Ordering::Relaxed))
}

/// The memory one Lua VM may use, at most: a script past it fails with
/// Lua's "not enough memory".
pub const MEMORY_LIMIT: usize = 256 << 20;

/// The Lua VMs kept for reuse, at most (one runs a script at a time).
const POOL_SIZE: usize = 8;

/// EVAL or EVALSHA, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Eval {
    /// The script, or its SHA1 (EVALSHA, which the master turns into the
    /// script before it sends the command on).
    pub body: ScriptBody,
    /// The declared keys: `KEYS` in the script.
    pub keys: Vec<Bytes>,
    /// The other arguments: `ARGV`.
    pub args: Vec<Bytes>,
    /// EVAL_RO and EVALSHA_RO: a write command inside fails.
    pub read_only: bool,
}

/// A script as EVAL or EVALSHA names it.
#[derive(Clone, Debug, PartialEq)]
pub enum ScriptBody {
    /// The source.
    Source(Bytes),
    /// The SHA1 of the source, in hex.
    Sha(Bytes),
}

/// SCRIPT's subcommands.
#[derive(Clone, Debug, PartialEq)]
pub enum ScriptOp {
    /// SCRIPT LOAD: keep the script, answer its SHA1.
    Load(Bytes),
    /// SCRIPT EXISTS: 1 or 0 for each SHA1.
    Exists(Vec<Bytes>),
    /// SCRIPT FLUSH [ASYNC|SYNC]: forget every script.
    Flush,
    /// SCRIPT KILL: no script is ever left running to kill.
    Kill,
    /// SCRIPT HELP.
    Help,
}

/// The SHA1 of `body` in lower-case hex: the name EVALSHA knows it by.
pub fn sha1_hex(body: &[u8]) -> String {
    let digest = Sha1::digest(body);
    let mut hex = String::with_capacity(40);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Redis's answer to EVALSHA of a script it does not know.
pub fn no_script() -> CommandError {
    CommandError::Relayed("NOSCRIPT No matching script. Please use EVAL.".into())
}

/// SCRIPT HELP's lines.
pub const HELP: &[&str] = &[
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache (on every master).",
    "KILL",
    "    Answers NOTBUSY: distcache stops a script that runs too long itself.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
];

/// Idle VMs, each with the scripts it has compiled.
static POOL: Mutex<Vec<vm::Vm>> = Mutex::new(Vec::new());

/// The flags of Redis 7's shebang line (`#!lua flags=no-writes,...`),
/// the first line of a script that has one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shebang {
    /// The script has a shebang line: its flags are what it declares
    /// (without `no-writes` it may write, and EVAL_RO refuses it).
    pub declared: bool,
    /// `no-writes`: the script runs as EVAL_RO runs any script.
    pub no_writes: bool,
    /// `no-cluster`: refused in a cluster, which distcache is.
    pub no_cluster: bool,
}

/// The flags Redis 7.0 knows. `allow-oom`, `allow-stale` and
/// `allow-cross-slot-keys` change nothing here: distcache refuses no
/// script for memory or staleness, and a script's keys must share their
/// replicas either way.
const SHEBANG_FLAGS: &[&str] = &[
    "no-writes",
    "allow-oom",
    "allow-stale",
    "no-cluster",
    "allow-cross-slot-keys",
];

/// Reads the shebang line a script may start with (`#!lua`, then
/// `flags=a,b`): its flags, and how many bytes of `source` it takes (Lua
/// compiles what follows, the line's newline included, so that line
/// numbers stay). Redis's errors for a line without an end, another
/// engine, an unknown option or flag.
pub fn shebang(source: &[u8]) -> Result<(Shebang, usize), CommandError> {
    if !source.starts_with(b"#!") {
        return Ok((Shebang::default(), 0));
    }
    let refused = |text: String| Err(CommandError::Relayed(format!("ERR {text}")));
    let Some(end) = source.iter().position(|&b| b == b'\n') else {
        return refused("Invalid script shebang".into());
    };
    let line = String::from_utf8_lossy(&source[..end]);
    let mut parts = line.split_ascii_whitespace();
    let engine = parts.next().unwrap_or_default();
    if engine != "#!lua" {
        return refused(format!("Unexpected engine in script shebang: {engine}"));
    }
    let mut flags = Shebang {
        declared: true,
        ..Shebang::default()
    };
    for part in parts {
        let Some(list) = part.strip_prefix("flags=") else {
            return refused(format!("Unknown lua shebang option: {part}"));
        };
        // `flags=` alone names none.
        for flag in list.split(',').filter(|_| !list.is_empty()) {
            match flag {
                "no-writes" => flags.no_writes = true,
                "no-cluster" => flags.no_cluster = true,
                known if SHEBANG_FLAGS.contains(&known) => {}
                unknown => {
                    return refused(format!("Unexpected flag in script shebang: {unknown}"));
                }
            }
        }
    }
    Ok((flags, end))
}

/// Whether `source` compiles; if not, the error SCRIPT LOAD and EVAL
/// answer (`ERR Error compiling script ...`, or Redis's error for a bad
/// shebang line). The master checks a script before it keeps it, as
/// Redis does.
pub fn compile(source: &Bytes) -> Result<(), CommandError> {
    shebang(source)?;
    with_vm(|vm| {
        (
            vm.compile(source).map(|_| ()).map_err(vm::compile_error),
            true,
        )
    })
    .and_then(|compiled| compiled)
}

/// Runs `f` on an idle VM (a new one if none is idle), then keeps the VM
/// for the next script.
/// `f` answers whether the VM may serve again; one that may not is
/// dropped.
fn with_vm<T>(f: impl FnOnce(&mut vm::Vm) -> (T, bool)) -> Result<T, CommandError> {
    let idle = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let mut vm = match idle {
        Some(vm) => vm,
        None => vm::Vm::new().map_err(|e| {
            CommandError::Relayed(format!("ERR cannot start the Lua interpreter: {e}"))
        })?,
    };
    let (answer, reusable) = f(&mut vm);
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if reusable && pool.len() < POOL_SIZE {
        pool.push(vm);
    }
    Ok(answer)
}

/// Runs `eval` (whose body is its source) over `ks`, its keys lent there,
/// appending its effects to `effects`, and answers its reply.
pub fn run(
    eval: &Eval,
    ks: &mut Keyspace,
    now_ms: u64,
    rng: &mut dyn RngCore,
    effects: &mut Vec<Effect>,
) -> Reply {
    let ScriptBody::Source(source) = &eval.body else {
        // The master sends the source on; only a bug gets here.
        return Reply::Error(no_script());
    };
    let flags = match shebang(source) {
        Ok((flags, _)) => flags,
        Err(e) => return Reply::Error(e),
    };
    if flags.no_cluster {
        return Reply::Error(CommandError::Relayed(
            "ERR Can not run script on cluster, 'no-cluster' flag is set.".into(),
        ));
    }
    if eval.read_only && flags.declared && !flags.no_writes {
        return Reply::Error(CommandError::Relayed(
            "ERR Can not execute a script with write flag using *_ro command.".into(),
        ));
    }
    let context = vm::Context {
        keys: &eval.keys,
        args: &eval.args,
        read_only: eval.read_only || flags.no_writes,
        now_ms,
    };
    with_vm(|vm| vm.run(source, &context, ks, rng, effects)).unwrap_or_else(Reply::Error)
}

#[cfg(test)]
mod tests;
