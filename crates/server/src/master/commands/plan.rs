//! Which auxiliaries a command needs, and how their answers make the reply.

use std::sync::Arc;

use bytes::Bytes;
use distcache_core::command::{Command, CommandError, CommandSpec, Reply, table};
use distcache_core::keyspace::{Entry, Keyspace};
use distcache_core::script::{self, ScriptBody};
use distcache_core::store::Watched;
use distcache_core::value::stored;
use futures_util::future::join_all;

use super::leader::{AtLeader, too_large, try_again};
use super::{crossslot, error_reply};
use crate::http::ApiError;
use crate::master::data::Route;
use crate::master::{Master, RingView};

/// The answer to WATCH and UNWATCH where there is no RESP connection.
pub const WATCH_NEEDS_RESP: &str = "ERR WATCH and UNWATCH need a connection that keeps the watches until EXEC: send them over RESP (HTTP keeps no session)";

/// Whether two routes name the same nodes in the same order: keys whose
/// routes do live together.
pub(super) fn same_nodes(a: &Route, b: &Route) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| Arc::ptr_eq(x, y) || x.id == y.id)
}

/// The keys of a batch of commands, sorted, without repeats.
pub(super) fn keys_of_all(commands: &[Vec<Bytes>]) -> Vec<Bytes> {
    let mut keys: Vec<Bytes> = commands
        .iter()
        .filter_map(|args| Some(keys_of(table::resolve(args).ok()?, args)))
        .flatten()
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The keys of `args` (which passed the table's checks).
pub(super) fn keys_of(spec: &CommandSpec, args: &[Bytes]) -> Vec<Bytes> {
    spec.key_positions(args).map(|i| args[i].clone()).collect()
}

impl Master {
    /// Whether every key in `keys` has the same replicas by `view`.
    pub(super) fn together(&self, view: &RingView, keys: &[Bytes]) -> Result<bool, ApiError> {
        // One key (most commands) is always with itself: no route to find.
        let Some((first, rest)) = keys.split_first().filter(|(_, rest)| !rest.is_empty()) else {
            return Ok(true);
        };
        let first = self.route(view, first)?;
        for key in rest {
            if !same_nodes(&self.route(view, key)?, &first) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Groups the positions of `keys` by the node set that holds them, in
    /// the order each group first appears.
    fn by_route(&self, view: &RingView, keys: &[Bytes]) -> Result<Vec<Vec<usize>>, ApiError> {
        let mut groups: Vec<(Route, Vec<usize>)> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let route = self.route(view, key)?;
            match groups.iter_mut().find(|(g, _)| same_nodes(g, &route)) {
                Some((_, members)) => members.push(i),
                None => groups.push((route, vec![i])),
            }
        }
        Ok(groups.into_iter().map(|(_, members)| members).collect())
    }

    /// One command; see the module's overview.
    pub(super) async fn command(self: &Arc<Self>, args: Vec<Bytes>) -> Result<Reply, ApiError> {
        Ok(self.command_reached(args).await?.0)
    }

    /// One command, with the other replicas a write's changes reached
    /// (`None`: not a write at one leader, so not counted).
    pub(super) async fn command_reached(
        self: &Arc<Self>,
        args: Vec<Bytes>,
    ) -> Result<(Reply, Option<usize>), ApiError> {
        let reply = |r: Reply| Ok((r, None));
        let spec = match table::resolve(&args) {
            Ok(spec) => spec,
            Err(e) => return reply(Reply::Error(e)),
        };
        // Syntax and arguments are checked here, before any node is asked
        // (with the spec just resolved: `table::parse` would resolve again).
        let parsed = match (spec.parse)(&args) {
            Ok(parsed) => parsed,
            Err(e) => return reply(Reply::Error(e)),
        };
        // SCRIPT is answered here; EVALSHA becomes the EVAL of its source.
        let args = if spec.has(table::flags::SCRIPTING) {
            match self.scripting(parsed, args).await {
                Scripted::Answer(answer) => return reply(answer),
                Scripted::Run(args) => args,
            }
        } else {
            args
        };
        if super::runs_everywhere(spec.name) {
            return reply(self.everywhere(spec, args).await?);
        }
        // WATCH lasts until EXEC, which needs a connection that keeps it:
        // the RESP listener's, not an HTTP request.
        if matches!(spec.name, "watch" | "unwatch") {
            return reply(Reply::Error(CommandError::Relayed(WATCH_NEEDS_RESP.into())));
        }
        // Only a session queues (`CommandSession`); without one these
        // answer as the executor does outside MULTI.
        if matches!(spec.name, "multi" | "exec" | "discard") {
            let command =
                table::parse(&args).map_err(|e| ApiError::bad_request("command", e.to_string()))?;
            return reply(Keyspace::new().execute(&command, 0, &mut rand::rng()).reply);
        }
        let keys = keys_of(spec, &args);
        let view = self.view.load_full();
        if self.together(&view, &keys)? {
            let write = spec.has(table::flags::WRITE);
            let (mut replies, reached) = self
                .at_leader_reached(&keys, Arc::from([args]), write)
                .await?;
            let reply = replies.pop().unwrap_or(Reply::Null);
            let counted = super::counted_write(write, &reply, reached);
            return Ok((reply, counted));
        }
        // A write split over several nodes is not counted for WAIT: it
        // answers 0 after one (docs/commands.md, "RESP specifics").
        let counted = spec.has(table::flags::WRITE).then_some(0);
        let answer = match spec.name {
            "mget" => self.split_mget(&view, args).await?,
            "exists" | "touch" | "del" | "unlink" => self.split_count(&view, args).await?,
            "mset" => self.split_mset(&view, args).await?,
            // A script runs where its keys live, never on the master
            // (where it would hold up every client of its RESP thread):
            // over keys on several nodes it is refused, as in Redis Cluster.
            _ if spec.has(table::flags::READONLY) && !spec.has(table::flags::SCRIPTING) => {
                self.gather(keys, args).await?
            }
            _ => crossslot(),
        };
        Ok((answer, counted))
    }

    /// A transaction: every key of every command on the same nodes, run
    /// there as one batch. Without keys, its commands run one by one.
    /// After WATCH, the watched keys count as the transaction's (they must
    /// be on its nodes), and the batch runs only if none of them changed
    /// (else nil: `Reply::NullArray`); see [`super::watch`].
    pub(super) async fn transaction(
        self: &Arc<Self>,
        queued: Vec<Vec<Bytes>>,
        watched: Vec<(Bytes, Watched)>,
    ) -> Result<Reply, ApiError> {
        let mut runnable = Vec::with_capacity(queued.len());
        for args in queued {
            runnable.push(self.runnable_in_transaction(args).await);
        }
        let queued = runnable;
        let mut keys = Vec::new();
        let mut everywhere = false;
        for args in &queued {
            if let Ok(spec) = table::resolve(args) {
                everywhere |= super::runs_everywhere(spec.name);
                keys.extend(keys_of(spec, args));
            }
        }
        if !watched.is_empty() {
            return self
                .watched_transaction(queued, keys, everywhere, watched)
                .await;
        }
        if keys.is_empty() {
            let mut replies = Vec::with_capacity(queued.len());
            for args in queued {
                replies.push(self.command(args).await.unwrap_or_else(error_reply));
            }
            return Ok(Reply::Array(replies));
        }
        let view = self.view.load_full();
        if everywhere || !self.together(&view, &keys)? {
            return Ok(crossslot());
        }
        let write = any_write(&queued);
        keys.sort();
        keys.dedup();
        Ok(Reply::Array(
            self.at_leader(&keys, queued.into(), write).await?,
        ))
    }

    /// A transaction after WATCH (see [`Master::transaction`]).
    async fn watched_transaction(
        self: &Arc<Self>,
        queued: Vec<Vec<Bytes>>,
        mut keys: Vec<Bytes>,
        everywhere: bool,
        watched: Vec<(Bytes, Watched)>,
    ) -> Result<Reply, ApiError> {
        keys.extend(watched.iter().map(|(key, _)| key.clone()));
        keys.sort();
        keys.dedup();
        let view = self.view.load_full();
        if everywhere || !self.together(&view, &keys)? {
            return Ok(crossslot());
        }
        let write = any_write(&queued);
        let n = queued.len();
        Ok(
            match self
                .at_leader_answer(Some(&keys), queued.into(), write, None, &watched)
                .await?
            {
                AtLeader::Ran(replies, _) => Reply::Array(replies),
                AtLeader::WatchFailed => Reply::NullArray,
                AtLeader::Moved => Reply::Array(vec![try_again(); n]),
                AtLeader::TooLarge => Reply::Array(vec![too_large(); n]),
            },
        )
    }

    /// MGET over keys on several nodes: one MGET per node.
    async fn split_mget(
        self: &Arc<Self>,
        view: &RingView,
        args: Vec<Bytes>,
    ) -> Result<Reply, ApiError> {
        let keys = &args[1..];
        let groups = self.by_route(view, keys)?;
        let answers = join_all(groups.iter().map(|group| {
            let mut sub = vec![args[0].clone()];
            sub.extend(group.iter().map(|&i| keys[i].clone()));
            let group_keys: Vec<Bytes> = sub[1..].to_vec();
            async move { self.at_leader(&group_keys, Arc::from([sub]), false).await }
        }))
        .await;
        let mut values = vec![Reply::Null; keys.len()];
        for (group, answer) in groups.iter().zip(answers) {
            match answer?.pop() {
                Some(Reply::Array(items)) => {
                    for (&i, item) in group.iter().zip(items) {
                        values[i] = item;
                    }
                }
                Some(other) => return Ok(other),
                None => return Ok(Reply::Null),
            }
        }
        Ok(Reply::Array(values))
    }

    /// EXISTS, TOUCH, DEL and UNLINK over keys on several nodes: the sum of
    /// each node's count.
    async fn split_count(
        self: &Arc<Self>,
        view: &RingView,
        args: Vec<Bytes>,
    ) -> Result<Reply, ApiError> {
        let keys = &args[1..];
        let write = matches!(args[0].to_ascii_lowercase().as_slice(), b"del" | b"unlink");
        let groups = self.by_route(view, keys)?;
        let answers = join_all(groups.iter().map(|group| {
            let mut sub = vec![args[0].clone()];
            sub.extend(group.iter().map(|&i| keys[i].clone()));
            let group_keys: Vec<Bytes> = sub[1..].to_vec();
            async move { self.at_leader(&group_keys, Arc::from([sub]), write).await }
        }))
        .await;
        let mut total = 0i64;
        let mut failure = None;
        for answer in answers {
            match answer {
                Ok(mut replies) => match replies.pop() {
                    Some(Reply::Integer(n)) => total += n,
                    Some(other) => return Ok(other),
                    None => {}
                },
                Err(e) => failure = Some(e),
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(Reply::Integer(total)),
        }
    }

    /// MSET over keys on several nodes: one MSET per node. Each node's part
    /// is atomic; the whole is not (as in Redis Cluster, where MSET over
    /// several slots is refused; here it is allowed, and said so in
    /// docs/commands.md).
    async fn split_mset(
        self: &Arc<Self>,
        view: &RingView,
        args: Vec<Bytes>,
    ) -> Result<Reply, ApiError> {
        let pairs: Vec<(Bytes, Bytes)> = args[1..]
            .chunks_exact(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect();
        let keys: Vec<Bytes> = pairs.iter().map(|(k, _)| k.clone()).collect();
        let groups = self.by_route(view, &keys)?;
        let answers = join_all(groups.iter().map(|group| {
            let mut sub = vec![args[0].clone()];
            for &i in group {
                sub.push(pairs[i].0.clone());
                sub.push(pairs[i].1.clone());
            }
            let group_keys: Vec<Bytes> = group.iter().map(|&i| keys[i].clone()).collect();
            async move { self.at_leader(&group_keys, Arc::from([sub]), true).await }
        }))
        .await;
        for answer in answers {
            if let Some(reply) = answer?.pop()
                && reply.is_error()
            {
                return Ok(reply);
            }
        }
        Ok(Reply::OK)
    }

    /// A read-only command over keys on several nodes: each key's value is
    /// read from its replicas, and the command runs here on those copies.
    async fn gather(
        self: &Arc<Self>,
        keys: Vec<Bytes>,
        args: Vec<Bytes>,
    ) -> Result<Reply, ApiError> {
        let mut ks = Keyspace::new();
        let reads = join_all(keys.iter().map(|key| self.read_entry(key))).await;
        for (key, read) in keys.iter().zip(reads) {
            let Some(entry) = read? else { continue };
            if let Ok(value) = stored::from_stored(&entry.value) {
                ks.put(
                    key.clone(),
                    Entry {
                        value,
                        expire_at_ms: entry.expires_at_ms,
                    },
                );
            }
        }
        let command = match table::parse(&args) {
            Ok(c) => c,
            Err(e) => return Ok(Reply::Error(e)),
        };
        let now = (self.clock)();
        Ok(ks.execute(&command, now, &mut rand::rng()).reply)
    }

    /// The live entry of `key` from its replicas, as a `/data` read finds it.
    async fn read_entry(&self, key: &Bytes) -> Result<Option<distcache_core::Entry>, ApiError> {
        self.fenced(|| self.read_replicas(key)).await
    }
}

/// What [`Master::scripting`] made of a command of the scripting group.
enum Scripted {
    /// Answered here (SCRIPT; EVALSHA of an unknown script).
    Answer(Reply),
    /// To run where its keys live: EVAL, or EVALSHA turned into it.
    Run(Vec<Bytes>),
}

impl Master {
    /// SCRIPT, answered from the script cache; EVAL, whose script the
    /// cache keeps; EVALSHA, turned into the EVAL of the script it names.
    async fn scripting(&self, parsed: Command, mut args: Vec<Bytes>) -> Scripted {
        match parsed {
            Command::Script(op) => Scripted::Answer(self.scripts.run(&op).await),
            Command::Eval(eval) => match &eval.body {
                ScriptBody::Source(source) => {
                    self.scripts.evaluated(source);
                    Scripted::Run(args)
                }
                ScriptBody::Sha(sha) => match self.scripts.find(sha).await {
                    Some(source) => {
                        args[0] =
                            Bytes::from_static(if eval.read_only { b"EVAL_RO" } else { b"EVAL" });
                        args[1] = source;
                        Scripted::Run(args)
                    }
                    None => Scripted::Answer(Reply::Error(script::no_script())),
                },
            },
            _ => Scripted::Run(args),
        }
    }

    /// A queued command as a transaction's batch can run it. EVALSHA
    /// becomes the EVAL of its script. SCRIPT (the master's) runs here,
    /// in its turn among the queued commands, and an EVAL that answers
    /// what it answered takes its place in the batch; so does one
    /// answering `NOSCRIPT` for an EVALSHA of a script no master knows
    /// (over the same keys, so the batch's keys do not change).
    async fn runnable_in_transaction(&self, args: Vec<Bytes>) -> Vec<Bytes> {
        let Ok(spec) = table::resolve(&args) else {
            return args;
        };
        if !spec.has(table::flags::SCRIPTING) {
            return args;
        }
        let Ok(parsed) = (spec.parse)(&args) else {
            return args;
        };
        let keyed = matches!(parsed, Command::Eval(_));
        match self.scripting(parsed, args.clone()).await {
            Scripted::Run(args) => args,
            Scripted::Answer(_) if keyed => {
                let mut args = args;
                // A read stays a read, for routing and for the role.
                args[0] = Bytes::from_static(if spec.has(table::flags::READONLY) {
                    b"EVAL_RO"
                } else {
                    b"EVAL"
                });
                args[1] = Bytes::from_static(NOSCRIPT_IN_TRANSACTION);
                args
            }
            Scripted::Answer(reply) => answering(&reply),
        }
    }
}

/// An EVAL with no key whose script answers `reply` (a reply of SCRIPT:
/// a bulk, integers, a status, an error, or an array of them); the
/// strings go as its arguments.
fn answering(reply: &Reply) -> Vec<Bytes> {
    fn literal(reply: &Reply, argv: &mut Vec<Bytes>) -> String {
        let text = |field: &str, bytes: &[u8], argv: &mut Vec<Bytes>| {
            argv.push(Bytes::copy_from_slice(bytes));
            format!("{{{field} = ARGV[{}]}}", argv.len())
        };
        match reply {
            Reply::Integer(n) => n.to_string(),
            Reply::Bulk(b) => {
                argv.push(b.clone());
                format!("ARGV[{}]", argv.len())
            }
            Reply::Status(s) => text("ok", s.as_bytes(), argv),
            Reply::Error(e) => text("err", e.to_string().as_bytes(), argv),
            Reply::Array(items) => {
                let items: Vec<String> = items.iter().map(|i| literal(i, argv)).collect();
                format!("{{{}}}", items.join(", "))
            }
            _ => "nil".to_string(),
        }
    }
    let mut argv = Vec::new();
    let source = format!("return {}", literal(reply, &mut argv));
    let mut args = vec![
        Bytes::from_static(b"EVAL"),
        Bytes::from(source),
        Bytes::from_static(b"0"),
    ];
    args.extend(argv);
    args
}

/// The script that stands for an EVALSHA of an unknown script inside a
/// transaction: it answers Redis's `NOSCRIPT` error.
const NOSCRIPT_IN_TRANSACTION: &[u8] =
    b"return {err = 'NOSCRIPT No matching script. Please use EVAL.'}";

/// Whether any of a transaction's commands may change data.
fn any_write(queued: &[Vec<Bytes>]) -> bool {
    queued
        .iter()
        .any(|args| table::resolve(args).is_ok_and(|spec| spec.has(table::flags::WRITE)))
}
