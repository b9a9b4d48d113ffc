//! One RESP connection: a task that reads requests, runs them in order and
//! writes their replies, pipelined: every whole request that has arrived
//! is run before the replies go out, in one write, and a pipeline's data
//! commands go to their auxiliaries together ([`Master::run_pipeline`]).
//!
//! [`Master::run_pipeline`]: crate::master::Master::run_pipeline

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use distcache_core::command::table::flags;
use distcache_core::command::{CommandError, CommandSpec, Protocol, Reply, table};
use distcache_wire::resp::parse_request;
use prometheus::local::LocalIntCounter;
use smallvec::SmallVec;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{Instrument, debug, debug_span};

use super::front::{self, Flow};
use super::pubsub;
use super::{ClientInfo, REPLY_FLUSH_BYTES, Registered, RespServer};
use crate::master::commands::{CommandSession, Piped};
use crate::master::pubsub::Subscriber;
use crate::master::pubsub::mailbox::Mailbox;
use crate::metrics::CommandSeries;
use crate::security::auth::Role;

/// Connection ids, as `CLIENT ID` reports them: unique for the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The read buffer starts at, and shrinks back to, this size.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// Requests taken from the read buffer at a time, at most: each such
/// window is run (its data commands batched by leader) before the next is
/// parsed, which bounds the requests and replies one connection holds.
const PIPELINE_WINDOW: usize = 64;

/// A connection's first window, at most: until the sizes of its replies
/// are known, a client that pipelines large reads and never reads the
/// replies makes the master hold this many, not [`PIPELINE_WINDOW`].
const FIRST_WINDOW: usize = 8;

/// The replies one window should come to: the next window holds as many
/// requests as fit in it at the size the last window's replies had (one at
/// least, [`PIPELINE_WINDOW`] at most).
const WINDOW_REPLY_BYTES: usize = 256 * 1024;

/// A blocked command (BLPOP...) asks the cluster again this long after
/// it found nothing, then twice as long each time, up to
/// [`BLOCK_MAX_POLL`]: a push through any master is seen within about
/// that, and an idle blocked client costs about ten requests a second.
const BLOCK_FIRST_POLL: Duration = Duration::from_millis(10);
/// The longest wait between two tries of a blocked command.
const BLOCK_MAX_POLL: Duration = Duration::from_millis(100);

/// The size of the window after one of `requests` whose replies took
/// `reply_bytes`.
fn next_window(requests: usize, reply_bytes: usize) -> usize {
    let per_request = (reply_bytes / requests.max(1)).max(1);
    (WINDOW_REPLY_BYTES / per_request).clamp(1, PIPELINE_WINDOW)
}

/// The state of one connection that its commands read and change.
pub(super) struct Connection {
    pub(super) server: Arc<RespServer>,
    pub(super) registered: Registered,
    pub(super) id: u64,
    pub(super) protocol: Protocol,
    /// The role AUTH gave (`None`: not authenticated; with no tokens
    /// configured every connection is admin from the start).
    pub(super) role: Option<Role>,
    pub(super) session: CommandSession,
    /// Its Pub/Sub subscriptions and the messages waiting for it.
    pub(super) subscriber: Subscriber,
    /// This connection's metric series, by command.
    counters: Vec<(&'static str, Counters)>,
    /// The blocking command (BLPOP...) it waits for, if any.
    blocked: Option<Blocked>,
    /// Cancelled by CLIENT KILL: no request runs after it, and the
    /// connection closes once the replies so far are written.
    kill: tokio_util::sync::CancellationToken,
}

/// A blocking command that found nothing at first, and waits.
struct Blocked {
    args: Vec<Bytes>,
    name: &'static str,
    /// When it answers nil; `None`: never (a timeout of 0).
    deadline: Option<Instant>,
    started: Instant,
}

/// A connection counted in INFO's `blocked_clients` while this lives,
/// however its wait ends.
struct BlockedCount(Arc<RespServer>);

impl BlockedCount {
    fn new(server: &Arc<RespServer>) -> BlockedCount {
        server.blocked_clients.fetch_add(1, Ordering::Relaxed);
        BlockedCount(Arc::clone(server))
    }
}

impl Drop for BlockedCount {
    fn drop(&mut self) {
        self.0.blocked_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether a blocking command's reply says it found nothing (nil, or
/// BLMOVE's nil), so that it waits.
fn nothing_popped(reply: &Reply) -> bool {
    matches!(reply, Reply::NullArray | Reply::Null)
}

/// Whether `args` is a blocking command (BLPOP..., XREAD): a window of
/// requests ends with one, since what follows waits for it. Cheap for
/// the others: every such name starts with a `b` or an `x`.
fn is_blocking(args: &[Bytes]) -> bool {
    args.first().is_some_and(|name| {
        name.first()
            .is_some_and(|c| matches!(c | 0x20, b'b' | b'x'))
    }) && table::lookup(&args[0]).is_some_and(|spec| spec.has(flags::BLOCKING))
}

/// One command's metric series, as a connection keeps them: counted
/// locally, added to the shared series once per window
/// ([`Connection::flush_metrics`]).
struct Counters {
    /// `resp_commands_total`.
    received: LocalIntCounter,
    /// `commands_total` and `command_duration_seconds`: data commands
    /// only (`None` for the listener's own).
    answered: Option<CommandSeries>,
}

impl Drop for Counters {
    fn drop(&mut self) {
        self.received.flush();
    }
}

impl Connection {
    /// The role a connection has before any AUTH.
    pub(super) fn initial_role(server: &RespServer) -> Option<Role> {
        server.master.gate.is_open().then_some(Role::Admin)
    }

    /// Runs a window of requests in order and appends their replies to
    /// `out`. Consecutive data commands that need nothing of the
    /// connection's state go to the cluster together, as a pipeline;
    /// anything else runs alone, after them.
    async fn run_window(&mut self, requests: Vec<Vec<Bytes>>, out: &mut Vec<u8>) -> Flow {
        let flow = self.run_requests(requests, out).await;
        // Before the replies go out: a client that reads them and then
        // the metrics finds its commands counted.
        self.flush_metrics();
        flow
    }

    async fn run_requests(&mut self, requests: Vec<Vec<Bytes>>, out: &mut Vec<u8>) -> Flow {
        let mut pipeline = Vec::with_capacity(requests.len());
        for args in requests {
            if let Some(spec) = self.may_pipeline(&args) {
                pipeline.push(Piped {
                    spec: Some(spec),
                    args,
                });
                continue;
            }
            self.run_pipeline(std::mem::take(&mut pipeline), out).await;
            match self.execute(args, out).await {
                // Killed (CLIENT KILL, its own or another's): what follows
                // in the window does not run, as in Redis.
                Flow::Continue if self.kill.is_cancelled() => return Flow::Close,
                Flow::Continue => {}
                // A blocking command ends its window (see `serve`).
                flow => return flow,
            }
        }
        self.run_pipeline(pipeline, out).await;
        Flow::Continue
    }

    /// For a blocking command that may wait here (not queued in MULTI,
    /// by an authenticated client, with a valid timeout): its deadline,
    /// `None` inside for a timeout of 0 (never).
    fn may_block(&self, args: &[Bytes]) -> Option<Option<Instant>> {
        if self.session.in_transaction() || self.role.is_none() {
            return None;
        }
        let spec = table::resolve(args).ok()?;
        if !spec.has(flags::BLOCKING) {
            return None;
        }
        let timeout_ms = (spec.parse)(args).ok()?.block_timeout_ms()?;
        Some((timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(timeout_ms)))
    }

    /// Waits for the blocked command until it finds something or its
    /// deadline passes (then nil, as Redis answers a timeout), asking the
    /// cluster again now and then ([`BLOCK_FIRST_POLL`]); meanwhile reads
    /// what the client sends, for after. Appends the reply to `out`.
    /// False when the connection ends: the client left, or shutdown.
    async fn wait_blocked<S, F>(
        &mut self,
        stream: &mut S,
        input: &mut BytesMut,
        max_input: usize,
        out: &mut Vec<u8>,
        mut shutting_down: Pin<&mut F>,
    ) -> bool
    where
        S: AsyncRead + Unpin,
        F: Future<Output = ()>,
    {
        let Some(blocked) = self.blocked.take() else {
            return true;
        };
        let _counted = BlockedCount::new(&self.server);
        let mut pause = BLOCK_FIRST_POLL;
        let reply = loop {
            let wake = Instant::now() + pause;
            let wake = blocked.deadline.map_or(wake, |deadline| wake.min(deadline));
            tokio::select! {
                () = &mut shutting_down => return false,
                read = stream.read_buf(input), if input.len() < max_input => match read {
                    Ok(0) | Err(_) => return false,
                    Ok(_) => continue,
                },
                () = tokio::time::sleep_until(wake.into()) => {}
            }
            if blocked
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline)
            {
                break Reply::NullArray;
            }
            let reply = self.data_command(blocked.args.clone()).await;
            if let Some(reply) = self.after_wake(&blocked.args, reply).await {
                break reply;
            }
            pause = (pause * 2).min(BLOCK_MAX_POLL);
        };
        if let Some(answered) = &self.counters(blocked.name).answered {
            answered.observe(!reply.is_error(), blocked.started.elapsed());
        }
        self.reply(reply, out);
        true
    }

    /// What a blocked command's try after the first answers the client,
    /// as Redis answers a client it wakes; `None` to go on waiting.
    /// Nothing popped waits. So does a key waited on that is of another
    /// type now, as Redis does not serve a wrong type to a waiting client
    /// (the first try answered WRONGTYPE at once); BLMOVE's destination of
    /// another type is its answer. XREADGROUP, which Redis lets go when
    /// its stream is gone: `UNBLOCKED` when a stream key is
    /// no longer a stream, Redis's NOGROUP text when its group is gone.
    async fn after_wake(&mut self, args: &[Bytes], reply: Reply) -> Option<Reply> {
        if nothing_popped(&reply) {
            return None;
        }
        let Reply::Error(e) = &reply else {
            return Some(reply);
        };
        let text = e.to_string();
        let group_read = args[0].eq_ignore_ascii_case(b"xreadgroup");
        if !group_read {
            if !text.starts_with("WRONGTYPE") {
                return Some(reply);
            }
            // BLMOVE and BRPOPLPUSH check their destination once the
            // source has an element: a destination of another type is
            // their answer, as in Redis; a source of another type waits.
            let moves = [&b"blmove"[..], b"brpoplpush"]
                .iter()
                .any(|name| args[0].eq_ignore_ascii_case(name));
            if !moves {
                return None;
            }
            let source = self.key_type(&args[1]).await;
            let waits = !matches!(&source, Reply::Status(t) if t == "list" || t == "none");
            return (!waits).then_some(reply);
        }
        if !text.starts_with("WRONGTYPE") && !text.starts_with("NOGROUP") {
            return Some(reply);
        }
        for i in table::stream_keys(args) {
            if !matches!(self.key_type(&args[i]).await, Reply::Status(t) if t == "stream") {
                return Some(Reply::Error(CommandError::Line(
                    "UNBLOCKED the stream key no longer exists".into(),
                )));
            }
        }
        Some(Reply::Error(CommandError::Line(
            "NOGROUP the consumer group this client was blocked on no longer exists".into(),
        )))
    }

    /// TYPE of `key`, asked of the cluster as any command.
    async fn key_type(&mut self, key: &Bytes) -> Reply {
        self.data_command(vec![Bytes::from_static(b"TYPE"), key.clone()])
            .await
    }

    /// XREAD ... BLOCK with `$` for a key: the `$` replaced by the ID of
    /// that stream's last entry now (`0-0` when it has none), so that the
    /// tries that follow read what is added after the command came, as
    /// Redis's one wait does. No entry lies between the last entry and the
    /// stream's last ID, so reading above either gives the same entries.
    /// Any other command is returned as it is.
    async fn with_last_ids(&mut self, mut args: Vec<Bytes>) -> Vec<Bytes> {
        if !args[0].eq_ignore_ascii_case(b"xread") {
            return args;
        }
        let keys = table::stream_keys(&args);
        let count = keys.len();
        for i in keys {
            let id_at = i + count;
            if args.get(id_at).is_none_or(|id| id.as_ref() != b"$") {
                continue;
            }
            let last = vec![
                Bytes::from_static(b"XREVRANGE"),
                args[i].clone(),
                Bytes::from_static(b"+"),
                Bytes::from_static(b"-"),
                Bytes::from_static(b"COUNT"),
                Bytes::from_static(b"1"),
            ];
            let id = match self.data_command(last).await {
                Reply::Array(entries) => match entries.first() {
                    Some(Reply::Array(entry)) => match entry.first() {
                        Some(Reply::Bulk(id)) => id.clone(),
                        _ => continue,
                    },
                    _ => Bytes::from_static(b"0-0"),
                },
                // Another type, or no answer: the command itself says why.
                _ => continue,
            };
            args[id_at] = id;
        }
        args
    }

    /// Adds what this connection counted to the shared metric series.
    fn flush_metrics(&self) {
        for (_, counters) in &self.counters {
            counters.received.flush();
            if let Some(answered) = &counters.answered {
                answered.flush();
            }
        }
    }

    /// The row of `args`'s command if it is a data command this
    /// connection may run, outside a transaction and not one of a
    /// transaction's own: its answer then depends on the data alone.
    fn may_pipeline(&self, args: &[Bytes]) -> Option<&'static CommandSpec> {
        // RESP2's subscribed mode refuses data commands one by one.
        if self.session.in_transaction()
            || (self.protocol == Protocol::Resp2 && self.subscriber.is_subscribed())
        {
            return None;
        }
        // No need to look for the listener's own commands: no name is in
        // both tables (`front`'s tests check it).
        let (Ok(spec), Some(role)) = (table::resolve(args), self.role) else {
            return None;
        };
        // PUBLISH is not pipelined: it runs alone, after the commands
        // before it, so that one connection's messages go out in order.
        // A blocking command may wait: it runs alone, after those before it.
        (!spec.has(flags::TRANSACTION)
            && !spec.has(flags::BLOCKING)
            && !pubsub::is_pubsub(spec)
            && permits(role, spec.role()))
        .then_some(spec)
    }

    /// Runs data commands that [`Connection::may_pipeline`] let through.
    async fn run_pipeline(&mut self, commands: Vec<Piped>, out: &mut Vec<u8>) {
        let names: SmallVec<[&'static str; 16]> = commands
            .iter()
            .map(|command| command.spec.map_or("unknown", |spec| spec.name))
            .collect();
        let Some(&last) = names.last() else {
            return;
        };
        let started = Instant::now();
        self.registered.update(|c| {
            c.last_command_at = started;
            c.last_command = last;
        });
        for &name in &names {
            self.counters(name).received.inc();
        }
        // What SLOWLOG would show, kept only while it is on: of a command
        // alone, its arguments (up to 32); of one pipelined with others,
        // its name and how many arguments it had (taking a reference to
        // each argument of every pipelined command, before every batch,
        // cost the master 5% of its instructions at `-P 16`;
        // docs/performance.md).
        let alone = match commands.as_slice() {
            [command] if self.server.slowlog.is_on() => Some(logged(&command.args)),
            _ => None,
        };
        let counts: SmallVec<[usize; 16]> = if self.server.slowlog.is_on() && alone.is_none() {
            commands.iter().map(|c| c.args.len()).collect()
        } else {
            SmallVec::new()
        };
        let answers = self.server.master.run_pipeline(commands).await;
        let took = started.elapsed();
        if self.server.slowlog.is_slow(took) {
            if let Some(args) = &alone {
                self.log_if_slow(&args.first, args.count, took);
            }
            for (name, &count) in names.iter().zip(&counts) {
                self.log_if_slow(&[Bytes::from_static(name.as_bytes())], count, took);
            }
        }
        for (name, (reply, reached)) in names.into_iter().zip(answers) {
            self.session.ran(reached);
            if let Some(answered) = &self.counters(name).answered {
                answered.observe(!reply.is_error(), took);
            }
            reply.write_resp(self.protocol, out);
        }
    }

    /// Runs one request and appends its reply to `out`.
    async fn execute(&mut self, args: Vec<Bytes>, out: &mut Vec<u8>) -> Flow {
        let started = Instant::now();
        let front = front::lookup(&args[0]);
        let spec = front.is_none().then(|| table::lookup(&args[0])).flatten();
        let name = match front {
            Some(command) => command.name,
            None => spec.map_or("unknown", |spec| spec.name),
        };
        self.counters(name).received.inc();
        // What CLIENT LIST shows while the command runs, as in Redis.
        let shown = front.map_or(name, |command| front::shown_name(command, &args));
        self.registered.update(|c| {
            c.last_command_at = started;
            c.last_command = shown;
        });
        let (reply, flow) = match front {
            Some(command) => {
                let answer = front::run(self, command, &args).await;
                // AUTH's and HELLO's arguments are secrets (Redis's
                // `no-slowlog`); nothing is logged before AUTH, nor a
                // wrong arity.
                if !matches!(command.name, "auth" | "hello")
                    && self.role.is_some()
                    && command.arity_ok(args.len())
                {
                    self.log_if_slow(&args, args.len(), started.elapsed());
                }
                answer
            }
            // EXEC with arguments goes to the session, which refuses it.
            None if name == "exec" && args.len() == 1 && self.session.in_transaction() => {
                let ran = self.exec(out).await;
                if let Some(answered) = &self.counters(name).answered {
                    answered.observe(ran, started.elapsed());
                }
                self.registered.update(|c| c.multi = -1);
                return Flow::Continue;
            }
            None => match pubsub::lookup(&args) {
                Some(spec) if spec.arity_ok(args.len()) => {
                    let ok = self.pubsub(spec, args, out).await;
                    if let Some(answered) = &self.counters(name).answered {
                        answered.observe(ok, started.elapsed());
                    }
                    let multi = self.queued();
                    self.registered.update(|c| c.multi = multi);
                    return Flow::Continue;
                }
                _ => {
                    let wait = self.may_block(&args);
                    let args = match wait {
                        Some(_) => self.with_last_ids(args).await,
                        None => args,
                    };
                    let wait = wait.map(|deadline| (args.clone(), deadline));
                    // Only what runs is logged, as in Redis: not an
                    // unknown command, a wrong arity, or anything before
                    // AUTH (its arguments would reach the admin's log).
                    let shown = (self.server.slowlog.is_on()
                        && self.role.is_some()
                        && spec.is_some_and(|spec| spec.arity_ok(args.len())))
                    .then(|| logged(&args));
                    let reply = self.data_command(args).await;
                    if let Some((args, deadline)) = wait
                        && nothing_popped(&reply)
                    {
                        self.blocked = Some(Blocked {
                            args,
                            name,
                            deadline,
                            started,
                        });
                        return Flow::Block;
                    }
                    if let Some(answered) = &self.counters(name).answered {
                        answered.observe(!reply.is_error(), started.elapsed());
                    }
                    if let Some(shown) = shown {
                        self.log_if_slow(&shown.first, shown.count, started.elapsed());
                    }
                    (reply, Flow::Continue)
                }
            },
        };
        let (protocol, multi) = (self.protocol, self.queued());
        self.registered.update(|c| {
            c.protocol = protocol;
            c.multi = multi;
        });
        self.reply(reply, out);
        flow
    }

    /// EXEC, over RESP: the transaction's data commands run as one batch at
    /// their leader ([`Master::run_transaction`]) and the listener's own
    /// commands queued among them here, each reply in its place.
    ///
    /// As Redis does, each element is written in the protocol of the
    /// moment it ran (after a queued `HELLO 3`, the next elements are
    /// RESP3), and each data command is checked against the role of its
    /// moment: after a queued AUTH to a read token, a write is answered
    /// NOPERM in its place and does not run. So the listener's commands
    /// run first, in order, noting the protocol and role each data
    /// command stands at; the data commands then run together. (Should
    /// those be refused as a whole, CROSSSLOT say, which Redis never does
    /// after queueing, the listener's commands have run all the same.)
    ///
    /// [`Master::run_transaction`]: crate::master::Master::run_transaction
    /// Whether the transaction ran (its answer is an array).
    async fn exec(&mut self, out: &mut Vec<u8>) -> bool {
        /// One element of EXEC's answer, as the walk in order leaves it.
        enum Element {
            Answered(Reply, Protocol),
            /// A Pub/Sub command's frames, as it wrote them.
            Written(Vec<u8>),
            /// The next reply of the data commands, in this protocol.
            Data(Protocol),
        }
        let queued = match self.session.take_queued() {
            Ok(queued) => queued,
            Err(reply) => {
                reply.write_resp(self.protocol, out);
                return false;
            }
        };
        let watched = self.session.take_watched();
        // After WATCH, a watched key that already changed runs nothing, the
        // listener's own commands and Pub/Sub's included: they run before
        // the leader's check, so they are checked for here first. (A
        // change between this check and the leader's still leaves them
        // run: documented.)
        if !watched.is_empty()
            && queued
                .iter()
                .any(|args| front::lookup(&args[0]).is_some() || pubsub::lookup(args).is_some())
            && !self.server.master.watched_unchanged(&watched).await
        {
            Reply::NullArray.write_resp(self.protocol, out);
            return false;
        }
        let mut elements = Vec::with_capacity(queued.len());
        let mut data: Vec<Vec<Bytes>> = Vec::new();
        for args in queued {
            if let Some(command) = front::lookup(&args[0]) {
                let reply = front::run(self, command, &args).await.0;
                let protocol = self.protocol;
                self.registered.update(|c| c.protocol = protocol);
                elements.push(Element::Answered(reply, protocol));
                continue;
            }
            if let Some(spec) = pubsub::lookup(&args) {
                if spec.name == "ssubscribe" {
                    // As Redis 7: a transaction's client expects one
                    // reply per command (SUBSCRIBE is let through).
                    let e = CommandError::Line(
                        "ERR SSUBSCRIBE isn't allowed for a DENY BLOCKING client".into(),
                    );
                    elements.push(Element::Answered(Reply::Error(e), self.protocol));
                    continue;
                }
                let mut frames = Vec::new();
                self.run_pubsub(spec, &args, &mut frames).await;
                elements.push(Element::Written(frames));
                continue;
            }
            let refused = match (table::resolve(&args), self.role) {
                (Ok(spec), Some(role)) if !permits(role, spec.role()) => Some(noperm(spec.name)),
                (Ok(_), None) => Some(noauth()),
                _ => None,
            };
            match refused {
                Some(e) => elements.push(Element::Answered(Reply::Error(e), self.protocol)),
                None => {
                    data.push(args);
                    elements.push(Element::Data(self.protocol));
                }
            }
        }
        let mut data_replies = Vec::new().into_iter();
        // Watched keys are checked at their leader even with no data
        // command to run there (MULTI then EXEC).
        if !data.is_empty() || !watched.is_empty() {
            match self.server.master.run_transaction(data, watched).await {
                Reply::Array(replies) => data_replies = replies.into_iter(),
                reply => {
                    reply.write_resp(self.protocol, out);
                    return false;
                }
            }
        }
        out.extend_from_slice(format!("*{}\r\n", elements.len()).as_bytes());
        for element in elements {
            let (reply, protocol) = match element {
                Element::Answered(reply, protocol) => (reply, protocol),
                Element::Written(frames) => {
                    out.extend_from_slice(&frames);
                    continue;
                }
                Element::Data(protocol) => (
                    data_replies.next().unwrap_or_else(|| {
                        Reply::Error(CommandError::Other(
                            "EXEC answered fewer replies than commands",
                        ))
                    }),
                    protocol,
                ),
            };
            reply.write_resp(protocol, out);
        }
        true
    }

    /// The metric series of `name`, looked up in their families once per
    /// connection and command: a family's lookup hashes the labels and
    /// takes its lock, which a pipeline of thousands of GETs would pay for
    /// each.
    fn counters(&mut self, name: &'static str) -> &Counters {
        let i = match self.counters.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                let metrics = &self.server.master.metrics;
                let data = name == "unknown" || table::lookup(name.as_bytes()).is_some();
                let counters = Counters {
                    received: metrics.resp.commands.with_label_values(&[name]).local(),
                    answered: data.then(|| metrics.commands.series(name)),
                };
                self.counters.push((name, counters));
                self.counters.len() - 1
            }
        };
        &self.counters[i].1
    }

    /// Commands queued in the transaction, -1 outside one.
    fn queued(&self) -> i64 {
        if self.session.in_transaction() { 0 } else { -1 }
    }

    /// Adds a command (its first arguments, of `count`) to SLOWLOG if it
    /// took long enough.
    fn log_if_slow(&self, args: &[Bytes], count: usize, took: std::time::Duration) {
        if self.server.slowlog.is_slow(took) {
            let client = self.registered.snapshot();
            let name = client.name.as_deref().unwrap_or("");
            self.server
                .slowlog
                .record(args, count, took, client.addr, name);
        }
    }

    /// A command of the data table (or an unknown one), after the checks
    /// Redis makes before running it, in its order: the name and the
    /// arity, authentication, then the role.
    async fn data_command(&mut self, args: Vec<Bytes>) -> Reply {
        let exec = args[0].eq_ignore_ascii_case(b"exec");
        let spec = match table::resolve(&args) {
            Ok(spec) => spec,
            Err(e) if exec => return self.session.refuse_exec(e),
            Err(e) => return self.session.refuse(e),
        };
        let Some(role) = self.role else {
            if exec {
                return self.session.refuse_exec(noauth());
            }
            return self.session.refuse(noauth());
        };
        if !permits(role, spec.role()) {
            return self.session.refuse(noperm(spec.name));
        }
        if let Some(e) = pubsub::refused_in_subscribed_mode(self, spec.name, spec.name) {
            return self.session.refuse(e);
        }
        self.session.handle(&self.server.master, args).await
    }
}

/// A command's arguments as SLOWLOG may keep them, taken before the
/// command is sent away: the first [`super::slowlog::MAX_ARGS`] and how
/// many there were; no allocation for up to four (the arguments share
/// their buffers).
struct Logged {
    first: SmallVec<[Bytes; 4]>,
    count: usize,
}

fn logged(args: &[Bytes]) -> Logged {
    Logged {
        first: args
            .iter()
            .take(super::slowlog::MAX_ARGS)
            .cloned()
            .collect(),
        count: args.len(),
    }
}

/// Whether a token's role may run a command that needs `need`.
pub(super) fn permits(role: Role, need: table::Role) -> bool {
    let need = match need {
        table::Role::Read => Role::Read,
        table::Role::Write => Role::Write,
        table::Role::Admin => Role::Admin,
    };
    role >= need
}

/// Redis's answer to a command before AUTH when a password is set.
pub(super) fn noauth() -> CommandError {
    CommandError::Line("NOAUTH Authentication required.".into())
}

/// Redis 7.0's answer to a command the user's ACL does not allow.
pub(super) fn noperm(command: &str) -> CommandError {
    CommandError::Line(format!(
        "NOPERM this user has no permissions to run the '{command}' command"
    ))
}

/// Serves one connection until the client leaves, a limit closes it, or
/// the master shuts down.
pub(super) async fn run<S>(server: Arc<RespServer>, stream: S, addr: SocketAddr, laddr: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let span = debug_span!("resp_connection", id, peer = %addr);
    serve(server, stream, id, addr, laddr)
        .instrument(span)
        .await
}

async fn serve<S>(
    server: Arc<RespServer>,
    mut stream: S,
    id: u64,
    addr: SocketAddr,
    laddr: SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let now = Instant::now();
    // CLIENT KILL cancels it through the registry; the connection waits on
    // it.
    let kill = tokio_util::sync::CancellationToken::new();
    let registered = server.register(ClientInfo {
        id,
        addr,
        laddr,
        created: now,
        last_command_at: now,
        name: None,
        lib_name: None,
        lib_ver: None,
        protocol: Protocol::Resp2,
        multi: -1,
        subscriptions: [0; 3],
        last_command: "NULL",
        kill: kill.clone(),
    });
    let mut conn = Connection {
        role: Connection::initial_role(&server),
        server: server.clone(),
        registered,
        id,
        protocol: Protocol::Resp2,
        session: CommandSession::new(),
        subscriber: server.master.pubsub.subscriber(id),
        counters: Vec::new(),
        blocked: None,
        kill: kill.clone(),
    };
    let shutdown = server.master.shutdown.clone();
    // One wait for the whole connection, not one per read: each new wait
    // joins the shutdown signal's list of waiters, under its lock, and
    // leaves it when dropped.
    let triggered = shutdown.triggered();
    // The master's shutdown, or CLIENT KILL of this connection.
    let killed = kill.clone();
    let shutting_down = async move {
        tokio::select! {
            () = triggered => {}
            () = kill.cancelled() => debug!("RESP connection killed (CLIENT KILL)"),
        }
    };
    tokio::pin!(shutting_down);
    let rejected = &server.master.metrics.resp.rejected;
    let mut input = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let mut out: Vec<u8> = Vec::with_capacity(READ_BUFFER_BYTES);
    let mut window_size = FIRST_WINDOW;
    // The client closed its side while its replies went out: what it sent
    // before is still answered.
    let mut client_done = false;
    debug!("RESP connection open");
    loop {
        // Run every whole request that has arrived, a window at a time, up
        // to a flush's worth of replies.
        let mut flow;
        let mut more = false;
        loop {
            let mut window = Vec::new();
            let mut broken = None;
            // Before authentication, one request at a time under Redis's
            // tighter limits, so that the one after an AUTH is read as
            // authenticated, as Redis reads it.
            let (limits, most) = match conn.role {
                Some(_) => (&server.limits, window_size),
                None => (&server.limits_before_auth, 1),
            };
            // Cut short at a blocking command: what follows it waits for
            // it, and is read after it as the next window.
            let mut cut = false;
            while window.len() < most {
                match parse_request(&mut input, limits) {
                    Ok(Some(args)) if is_blocking(&args) => {
                        window.push(args);
                        cut = true;
                        break;
                    }
                    Ok(Some(args)) => window.push(args),
                    Ok(None) => break,
                    Err(e) => {
                        broken = Some(e);
                        break;
                    }
                }
            }
            let (requests, full, before) = (window.len(), cut || window.len() == most, out.len());
            flow = conn.run_window(window, &mut out).await;
            // Killed meanwhile by another connection: the replies so far
            // go out, nothing more is read or run.
            if killed.is_cancelled() {
                flow = Flow::Close;
            }
            if requests > 0 {
                window_size = next_window(requests, out.len().saturating_sub(before));
            }
            if !conn.take_messages(&mut out) {
                return pubsub_overflow(&server, &conn);
            }
            if flow != Flow::Continue {
                break;
            }
            if let Some(e) = broken {
                // Redis answers a protocol error, then closes.
                rejected.with_label_values(&["protocol"]).inc();
                debug!(error = %e, "RESP protocol error");
                out.extend_from_slice(format!("-ERR {e}\r\n").as_bytes());
                flow = Flow::Close;
                break;
            }
            if !full {
                break;
            }
            if out.len() >= REPLY_FLUSH_BYTES {
                more = true;
                break;
            }
        }
        let mut read_meanwhile = false;
        if !out.is_empty() {
            let write = write_while_reading(
                &mut stream,
                &out,
                &mut input,
                server.max_query_bytes,
                &mut client_done,
                &mut read_meanwhile,
            );
            let write = tokio::time::timeout(server.output_timeout, write);
            // A killed client that does not read its replies is not waited
            // for.
            let written = if conn.subscriber.ever_subscribed() {
                tokio::select! {
                    // The replies first: a client that killed itself gets
                    // its answer.
                    biased;
                    written = write => written,
                    // A subscriber whose socket is full: published messages
                    // pile up in its mailbox meanwhile, up to its bound.
                    () = mailbox_overflow(conn.subscriber.mailbox()) => {
                        return pubsub_overflow(&server, &conn)
                    }
                    () = killed.cancelled() => return,
                }
            } else {
                tokio::select! {
                    biased;
                    written = write => written,
                    () = killed.cancelled() => return,
                }
            };
            match written {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    debug!(error = %e, "RESP write failed");
                    return;
                }
                Err(_) => {
                    rejected.with_label_values(&["output_stalled"]).inc();
                    debug!(
                        unsent = out.len(),
                        "RESP client does not read its replies: disconnected"
                    );
                    return;
                }
            }
            out.clear();
            if out.capacity() > 4 * REPLY_FLUSH_BYTES {
                out.shrink_to(READ_BUFFER_BYTES);
            }
        }
        if flow == Flow::Close {
            let _ = stream.shutdown().await;
            return;
        }
        if flow == Flow::Block {
            if client_done
                || !conn
                    .wait_blocked(
                        &mut stream,
                        &mut input,
                        server.max_query_bytes,
                        &mut out,
                        shutting_down.as_mut(),
                    )
                    .await
            {
                return;
            }
            // Its reply, and the requests that came meanwhile, next.
            continue;
        }
        // Requests that came while the replies went out are run before the
        // next read.
        if more || read_meanwhile {
            continue;
        }
        if client_done {
            debug!("RESP connection closed by the client");
            return;
        }
        if input.len() > server.max_query_bytes {
            rejected.with_label_values(&["query_buffer"]).inc();
            debug!(
                buffered = input.len(),
                "RESP request past the read limit: disconnected"
            );
            return;
        }
        if input.is_empty() && input.capacity() > 4 * READ_BUFFER_BYTES {
            input = BytesMut::with_capacity(READ_BUFFER_BYTES);
        }
        input.reserve(READ_BUFFER_BYTES);
        // Messages still waiting (more than a flush took) go out before
        // the next read blocks; the read gets its turn meanwhile (select
        // picks among ready branches at random), so a subscriber under a
        // flood of messages is still heard when it unsubscribes.
        // A connection that never subscribed has no messages to wait for,
        // and waits for its requests alone.
        let read = if conn.subscriber.ever_subscribed() {
            let waiting = !conn.subscriber.mailbox().is_idle();
            tokio::select! {
                _ = &mut shutting_down => return,
                read = stream.read_buf(&mut input) => read,
                // Messages to write: back to the top, with no new request.
                () = conn.subscriber.mailbox().ready() => continue,
                () = std::future::ready(()), if waiting => continue,
            }
        } else {
            tokio::select! {
                _ = &mut shutting_down => return,
                read = stream.read_buf(&mut input) => read,
            }
        };
        match read {
            Ok(0) => {
                debug!("RESP connection closed by the client");
                return;
            }
            Ok(_) => {}
            Err(e) => {
                debug!(error = %e, "RESP read failed");
                return;
            }
        }
    }
}

/// Writes `out` whole and flushes, reading what the client sends
/// meanwhile into `input` (while it holds less than `max_input` bytes),
/// as Redis keeps reading a client whose replies wait: a client that
/// writes a whole pipeline before it reads a reply (redis-py's pipelines
/// do) would otherwise block on its writes while this waits on its reads.
/// `eof` is set if the client closes its side meanwhile, `read` if
/// anything came.
async fn write_while_reading<S>(
    stream: &mut S,
    out: &[u8],
    input: &mut BytesMut,
    max_input: usize,
    eof: &mut bool,
    read: &mut bool,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut written = 0;
    std::future::poll_fn(|cx| {
        loop {
            if written == out.len() {
                return Pin::new(&mut *stream).poll_flush(cx);
            }
            match Pin::new(&mut *stream).poll_write(cx, &out[written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    written += n;
                    continue;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
            // The client is not reading yet: read what it sends.
            if *eof || input.len() >= max_input {
                return Poll::Pending;
            }
            input.reserve(READ_BUFFER_BYTES);
            match tokio_util::io::poll_read_buf(Pin::new(&mut *stream), cx, input) {
                Poll::Ready(Ok(0)) => {
                    *eof = true;
                    return Poll::Pending;
                }
                Poll::Ready(Ok(_)) => *read = true,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
}

/// Resolves once `mailbox` has overflowed.
async fn mailbox_overflow(mailbox: &Mailbox) {
    while !mailbox.overflowed() {
        mailbox.ready().await;
    }
}

/// A subscriber past its bound is closed at once, its unsent messages
/// dropped, as Redis closes a client past `client-output-buffer-limit
/// pubsub`.
fn pubsub_overflow(server: &RespServer, conn: &Connection) {
    server
        .master
        .metrics
        .resp
        .rejected
        .with_label_values(&["pubsub_output"])
        .inc();
    debug!(
        max_bytes = conn.subscriber.mailbox().max_bytes(),
        "RESP subscriber past its Pub/Sub output bound: disconnected"
    );
}

/// Answers a connection over `MAX_CLIENTS` as Redis does, and closes it.
pub(super) async fn refuse_max_clients(mut stream: TcpStream) {
    let answer = b"-ERR max number of clients reached\r\n";
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), stream.write_all(answer)).await;
}
