//! The auxiliary's side of the internal protocol: each request is one
//! store operation, answered inline on the connection's task, after the
//! epoch fence ([`EpochFence`]) has admitted it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use distcache_core::clock::Clock;
use distcache_core::command::reply::codec as reply_codec;
use distcache_core::command::{Command, CommandError, Reply, table};
use distcache_core::keyspace::effect::encoding as effect_encoding;
use distcache_core::keyspace::{Keyspace, Outcome, value_too_large};
use distcache_core::mutation_log::Mutation;
use distcache_core::store::{
    Adopted, DeleteOutcome, Executed, KeyChanges, Lookup, Plain, SetOutcome, Store, Watched,
};
use distcache_core::value::stored;
use distcache_core::{Entry, Version};
use distcache_wire::frame::{
    ApplyStatus, DeleteStatus, ShippedChanges, UNFENCED, WriteStatus, error_code,
};
use distcache_wire::{ConnState, Handler, Request, Response};
use prometheus::IntCounter;

use super::mutation_log::MutationLog;
use crate::metrics::AuxMetrics;
use crate::security::secret::ClusterSecret;

/// The most reply bytes a batch of commands may answer (half the frame
/// limit, leaving room for the changes beside them). Past it the batch is
/// refused whole, before anything changes; one command alone is not
/// bounded here, only by the frame.
const MAX_BATCH_REPLY_BYTES: usize = distcache_wire::frame::MAX_FRAME_BYTES / 2;

/// The highest cluster-map epoch this auxiliary has seen, shared by every
/// connection: data requests routed by an older map are refused.
///
/// Data requests (`Get`, `Set`, `Delete` and their batches) at an epoch
/// above 0 pass [`EpochFence::admit`]; a `Ping` at an epoch above 0 is the
/// leader announcing it ([`EpochFence::announce`]). Requests at
/// [`UNFENCED`] (peers handing keys over, backup and restore, tools) are
/// served without a check and change nothing.
///
/// A node that registers with masters starts closed
/// ([`EpochFence::until_registered`]): it refuses every data request until
/// a master has answered its registration with the epoch of a map that
/// holds this process ([`EpochFence::registered`]). The highest epoch is
/// kept in memory only, so without that a restarted process would start
/// at 0 and serve a master still routing by a map from before the restart,
/// one in which the node may since have been judged down and its keys led
/// elsewhere with no read of it: that master's commands would then run on
/// a second, diverging copy of the key. The registration's answer names a
/// map that knows of the restart (a new incarnation changes the map), so
/// every master that routes to this process from then on has seen it.
#[derive(Debug)]
pub struct EpochFence {
    highest_epoch: AtomicU64,
    /// Whether data requests may be admitted at all (see above).
    open: AtomicBool,
}

impl Default for EpochFence {
    /// Open at epoch 0, as if registered before any map (for tests of the
    /// handler; a running auxiliary starts [`EpochFence::until_registered`]).
    fn default() -> Self {
        EpochFence {
            highest_epoch: AtomicU64::new(0),
            open: AtomicBool::new(true),
        }
    }
}

/// Why [`EpochFence::admit`] refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Routed by an older map than the newest seen, which is this.
    Stale(u64),
    /// This process has not been registered yet.
    NotRegistered,
}

impl EpochFence {
    /// A fence that admits nothing until [`EpochFence::registered`].
    pub fn until_registered() -> Self {
        EpochFence {
            highest_epoch: AtomicU64::new(0),
            open: AtomicBool::new(false),
        }
    }

    /// A master answered this process's registration from a map at
    /// `epoch` (`None`: an older master that does not say): raises the
    /// highest epoch to it, then admits requests.
    pub fn registered(&self, epoch: Option<u64>) {
        if let Some(epoch) = epoch {
            self.announce(epoch);
        }
        // After the raise: whoever sees the fence open sees the epoch.
        self.open.store(true, Ordering::Release);
    }

    /// The highest epoch seen so far (0 = none yet).
    pub fn current(&self) -> u64 {
        self.highest_epoch.load(Ordering::Acquire)
    }

    /// Whether a master has answered this process's registration (always
    /// true for a node that does not register).
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Admits a data request routed at `epoch` (> 0), raising the highest
    /// epoch to it, or refuses it with the highest epoch seen, which is
    /// newer.
    ///
    /// Why this is race-free: the comparison and the raise are one atomic
    /// read-modify-write (`fetch_max`) on one location, so all admissions
    /// and announcements are totally ordered, and each sees the maximum of
    /// every epoch before it in that order. Once an epoch `e` is in place,
    /// whoever put it there (a request served at `e`, or an announce of `e`
    /// answered with `Pong`), every admission ordered after it sees at least
    /// `e` and refuses anything older: no request routed by a map older than
    /// one this auxiliary has acted on is admitted after that. A request at
    /// `e` racing an announce of `e + 1` is either ordered first (admitted,
    /// then the epoch rises) or second (refused with `e + 1`); both are
    /// correct. What the fence does not do is wait: a request admitted just
    /// before a raise on another connection may still be finishing its store
    /// operation (microseconds, on another thread) when the raise is
    /// answered. For commands that matters (a master brings a key's new
    /// leader up to date by reading the old one at the new epoch, and must
    /// see every command that ran there), so `Execute` asks the fence again
    /// once its keys are locked (`DataHandler::execute`): it then runs
    /// before that read of its keys, which sees it, or is refused.
    fn admit(&self, epoch: u64) -> Result<(), Refusal> {
        debug_assert_ne!(epoch, UNFENCED);
        if !self.is_open() {
            return Err(Refusal::NotRegistered);
        }
        // The common case, a request at the epoch already in place, is a
        // plain load: no write to a cache line every connection reads.
        let seen = self.highest_epoch.load(Ordering::Acquire);
        if epoch == seen {
            return Ok(());
        }
        if epoch < seen {
            return Err(Refusal::Stale(seen));
        }
        let before = self.highest_epoch.fetch_max(epoch, Ordering::AcqRel);
        if epoch < before {
            // Raised by someone else between the load and here.
            return Err(Refusal::Stale(before));
        }
        Ok(())
    }

    /// Whether a request admitted at `epoch` ([`UNFENCED`] included) would
    /// still be admitted now: asked again once a command's keys are locked
    /// (`DataHandler::execute`). Reads only; raises nothing.
    fn still_admits(&self, epoch: u64) -> bool {
        epoch == UNFENCED || self.current() <= epoch
    }

    /// Raises the highest epoch to `epoch` if it is higher; never lowers it.
    pub(super) fn announce(&self, epoch: u64) {
        self.highest_epoch.fetch_max(epoch, Ordering::AcqRel);
    }
}

/// Answers internal-protocol requests from the store.
pub struct DataHandler {
    store: Arc<Store>,
    clock: Clock,
    fence: Arc<EpochFence>,
    ops: OpCounters,
    /// When set, a connection must present it with `Hello` before anything
    /// else; until then every request is refused and the connection closed.
    secret: Option<ClusterSecret>,
    /// Where applied mutations are recorded before they are acknowledged
    /// (`None` with `LOG_FSYNC=off`).
    log: Option<Arc<MutationLog>>,
}

/// Counters resolved once, so that the request path does no label lookup.
struct OpCounters {
    get: IntCounter,
    set: IntCounter,
    delete: IntCounter,
    get_many: IntCounter,
    set_many: IntCounter,
    delete_many: IntCounter,
    execute: IntCounter,
    apply_changes: IntCounter,
    count_keys: IntCounter,
    note_expired: IntCounter,
    adopt: IntCounter,
    other: IntCounter,
    stale_epoch_refusals: IntCounter,
    unregistered_refusals: IntCounter,
}

impl DataHandler {
    /// A handler over `store`, reading the time from `clock` and fencing
    /// data requests with `fence`.
    pub fn new(
        store: Arc<Store>,
        clock: Clock,
        fence: Arc<EpochFence>,
        metrics: AuxMetrics,
    ) -> Self {
        let op = |name: &str| metrics.data_requests.with_label_values(&[name]);
        DataHandler {
            ops: OpCounters {
                get: op("get"),
                set: op("set"),
                delete: op("delete"),
                get_many: op("get_many"),
                set_many: op("set_many"),
                delete_many: op("delete_many"),
                execute: op("execute"),
                apply_changes: op("apply_changes"),
                count_keys: op("count_keys"),
                note_expired: op("note_expired"),
                adopt: op("adopt"),
                other: op("other"),
                stale_epoch_refusals: metrics.stale_epoch_refusals.clone(),
                unregistered_refusals: metrics.unregistered_refusals.clone(),
            },
            store,
            clock,
            fence,
            secret: None,
            log: None,
        }
    }

    /// Records every applied mutation in `log` before answering.
    pub fn with_log(mut self, log: Option<Arc<MutationLog>>) -> Self {
        self.log = log;
        self
    }

    /// Applies a change to the store with `apply`, recording in the log
    /// what it returns; the connection's answers wait for the log position
    /// in [`Handler::before_answering`] (see [`MutationLog::applying`]).
    fn applying<'m, T>(
        &self,
        conn: &mut ConnState,
        apply: impl FnOnce() -> (T, Option<Mutation<'m>>),
    ) -> T {
        match &self.log {
            None => apply().0,
            Some(log) => {
                let (result, position) = log.applying(apply);
                conn.wait_for = conn.wait_for.max(position);
                result
            }
        }
    }

    /// A write. An already expired one is logged too: it deleted the older
    /// value (see [`SetOutcome::Expired`]), which a replay must do again.
    fn set(&self, key: &[u8], entry: &Entry, now: u64, conn: &mut ConnState) -> WriteStatus {
        let outcome = self.applying(conn, || {
            let outcome = self.store.set_ref(key, entry.view(), now);
            let changed = matches!(outcome, SetOutcome::Stored | SetOutcome::Expired);
            let mutation = Mutation::Set {
                key,
                entry: entry.view(),
            };
            (outcome, changed.then_some(mutation))
        });
        write_status(outcome)
    }

    /// A command's result copied after the map moved while it ran: stored
    /// only over a history it continues (`Store::adopt`), and logged as the
    /// write or delete it is.
    fn adopt(
        &self,
        key: &[u8],
        copy: &Lookup,
        over: &[Version],
        now: u64,
        conn: &mut ConnState,
    ) -> WriteStatus {
        let adopted = self.applying(conn, || {
            let adopted = self.store.adopt(key, copy, over, now);
            let mutation = match (&adopted, copy) {
                (
                    Ok(Adopted::Set(SetOutcome::Stored | SetOutcome::Expired)),
                    Lookup::Live(entry),
                ) => Some(Mutation::Set {
                    key,
                    entry: entry.view(),
                }),
                (
                    Ok(Adopted::Deleted(DeleteOutcome::Deleted | DeleteOutcome::NotFound)),
                    Lookup::Deleted(version),
                ) => Some(Mutation::Delete {
                    key,
                    version: *version,
                }),
                _ => None,
            };
            (adopted, mutation)
        });
        match adopted {
            Ok(Adopted::Set(outcome)) => write_status(outcome),
            Ok(Adopted::Deleted(DeleteOutcome::Stale { held })) | Err(held) => {
                WriteStatus::Stale { held }
            }
            Ok(Adopted::Deleted(_) | Adopted::Nothing) => WriteStatus::Stored,
        }
    }

    /// A delete.
    fn delete(&self, key: &[u8], version: Version, now: u64, conn: &mut ConnState) -> DeleteStatus {
        let outcome = self.applying(conn, || {
            let outcome = self.store.delete(key, version, now);
            let changed = !matches!(outcome, DeleteOutcome::Stale { .. });
            (
                outcome,
                changed.then_some(Mutation::Delete { key, version }),
            )
        });
        match outcome {
            DeleteOutcome::Deleted => DeleteStatus::Deleted,
            DeleteOutcome::NotFound => DeleteStatus::NotFound,
            DeleteOutcome::Stale { held } => DeleteStatus::Stale { held },
        }
    }

    /// Applies a change that makes any number of mutations, recording them
    /// all in the log (see [`DataHandler::applying`]).
    fn applying_all<T>(
        &self,
        conn: &mut ConnState,
        apply: impl FnOnce(&mut dyn FnMut(&Mutation<'_>)) -> T,
    ) -> T {
        match &self.log {
            None => apply(&mut |_| {}),
            Some(log) => {
                let (result, position) = log.applying_all(apply);
                conn.wait_for = conn.wait_for.max(position);
                result
            }
        }
    }

    /// Runs commands (one, or a transaction's) atomically as their keys'
    /// leader (see `distcache_core::store::Store::execute`).
    #[allow(clippy::too_many_arguments)]
    fn execute(
        &self,
        commands: &[Vec<Bytes>],
        watched: &[(Bytes, Watched)],
        version: Option<Version>,
        max_value_bytes: usize,
        ship_effects: bool,
        epoch: u64,
        now: u64,
        conn: &mut ConnState,
    ) -> Response {
        // Admitted at `epoch` before any lock was taken; asked again once
        // the keys are locked (`Store::execute`): a read of these keys on
        // another connection that raised the fence meanwhile then either
        // comes after this command and sees it, or this command is refused.
        let fence = &self.fence;
        let admitted = || fence.still_admits(epoch);
        // Each command's name is looked up once, for its keys and its
        // parse (what `table::parse` does after the same `resolve`).
        let mut keys: Vec<Bytes> = Vec::with_capacity(commands.len());
        let parsed: Vec<Result<Command, CommandError>> = commands
            .iter()
            .map(|args| {
                let spec = table::resolve(args)?;
                keys.extend(spec.key_positions(args).map(|i| args[i].clone()));
                (spec.parse)(args)
            })
            .collect();
        // EXEC after WATCH runs on the executor below, which checks the
        // watched keys under the same locks.
        if watched.is_empty()
            && let [Ok(Command::FlushAll)] = parsed.as_slice()
        {
            return self.flush_all(version, now, conn);
        }
        if watched.is_empty()
            && let [Ok(command)] = parsed.as_slice()
            && let Some(reply) = self
                .store
                .execute_everywhere(command, now, &mut rand::rng())
        {
            let mut encoded = Vec::new();
            reply_codec::encode(&[reply], &mut encoded);
            return Response::Executed {
                version: None,
                replies: encoded.into(),
                changes: Vec::new(),
            };
        }
        keys.sort_unstable();
        keys.dedup();
        let batch = parsed.len() > 1;
        // GETs and plain SETs, the commands a cache sees most, run on the
        // stored strings without the executor when they can.
        if let Some(plain) = Plain::all(&parsed).filter(|_| watched.is_empty()) {
            let max_reply_bytes = if batch {
                MAX_BATCH_REPLY_BYTES
            } else {
                usize::MAX
            };
            let executed = self.applying_all(conn, |record| {
                self.store.execute_plain(
                    &keys,
                    &plain,
                    version,
                    now,
                    max_value_bytes,
                    max_reply_bytes,
                    ship_effects,
                    &admitted,
                    record,
                )
            });
            if let Some(executed) = executed {
                return self.executed_response(executed, ship_effects);
            }
        }
        // The encoded size of the replies so far (errors aside).
        let mut reply_bytes = 0;
        let run = |ks: &mut Keyspace| {
            // Strings refuse to grow past the limit before they allocate.
            ks.limit_values(max_value_bytes);
            let mut rng = rand::rng();
            let mut replies = Vec::with_capacity(parsed.len());
            let mut effects = Vec::with_capacity(parsed.len());
            for command in &parsed {
                match command {
                    Ok(command) => {
                        let first = effects.len();
                        let reply = ks.execute_into(command, now, &mut rng, &mut effects);
                        // A value past the limit refuses the batch whole,
                        // at once: a later command that shrank the value
                        // again would otherwise hide it, and the master,
                        // which runs a refused pipeline's commands one by
                        // one, would answer differently. The store's own
                        // limits count too: a value under the limit may
                        // still not fit the store.
                        // A string the executor refused to grow past
                        // the limit counts as one that grew past it (a
                        // script that failed so answers the same words,
                        // with its own after them).
                        let refused = matches!(&reply, Reply::Error(e)
                            if e.to_string().starts_with(&value_too_large().to_string()));
                        let over = refused
                            || effects[first..].iter().any(|effect| {
                                ks.get(&effect.key).is_some_and(|entry| {
                                    stored::limited_len(&entry.value) > max_value_bytes
                                        || !self.store.can_hold(&effect.key, &entry.value)
                                })
                            });
                        // So does an answer that would not fit one frame
                        // back (a pipeline of large GETs): nothing having
                        // run, the master sends the commands one by one.
                        reply_bytes += reply_codec::encoded_len(&reply);
                        if over || (batch && reply_bytes > MAX_BATCH_REPLY_BYTES) {
                            return None;
                        }
                        replies.push(reply);
                    }
                    Err(e) => replies.push(Reply::Error(e.clone())),
                }
            }
            Some(Outcome {
                reply: Reply::Array(replies),
                effects,
            })
        };
        let scripted = parsed.iter().any(|c| matches!(c, Ok(Command::Eval(_))));
        let execute = || {
            self.applying_all(conn, |record| {
                self.store.execute_watched(
                    &keys,
                    watched,
                    version,
                    now,
                    max_value_bytes,
                    &admitted,
                    run,
                    record,
                )
            })
        };
        let executed = if scripted {
            off_the_runtime(execute)
        } else {
            execute()
        };
        self.executed_response(executed, ship_effects)
    }

    /// FLUSHALL on this auxiliary: every key it holds deleted at a version
    /// above both the flush's and its own ([`Store::flush_all`]), each
    /// delete recorded in the log before the answer. Without a version
    /// (a read's request) nothing is deleted.
    fn flush_all(&self, version: Option<Version>, now: u64, conn: &mut ConnState) -> Response {
        let reply = match version {
            Some(version) => {
                let deleted =
                    self.applying_all(conn, |record| self.store.flush_all(version, now, record));
                tracing::info!(deleted, "FLUSHALL: every key deleted");
                Reply::OK
            }
            None => Reply::Error(CommandError::Relayed("ERR FLUSHALL needs a version".into())),
        };
        let mut encoded = Vec::new();
        reply_codec::encode(&[reply], &mut encoded);
        Response::Executed {
            version,
            replies: encoded.into(),
            changes: Vec::new(),
        }
    }

    /// Applies a leader's changes as a replica of their keys.
    fn apply_changes(
        &self,
        shipped: &[ShippedChanges],
        version: Version,
        now: u64,
        conn: &mut ConnState,
    ) -> Vec<ApplyStatus> {
        let mut decoded = Vec::with_capacity(shipped.len());
        let mut damaged = Vec::new();
        for (i, c) in shipped.iter().enumerate() {
            match effect_encoding::decode_ops(&c.key, &c.ops) {
                Ok(ops) => decoded.push(KeyChanges {
                    key: c.key.clone(),
                    base: c.base,
                    ops,
                }),
                // Checksummed on the way: only a bug gets here. The key is
                // repaired with the whole value, like one that missed an
                // operation.
                Err(_) => damaged.push(i),
            }
        }
        let mut applied = self
            .applying_all(conn, |record| {
                self.store
                    .apply_changes(&decoded, version, now, usize::MAX, record)
            })
            .into_iter();
        (0..shipped.len())
            .map(|i| {
                if damaged.contains(&i) {
                    ApplyStatus::Diverged
                } else {
                    applied.next().unwrap_or(ApplyStatus::Diverged)
                }
            })
            .collect()
    }

    /// Requires `secret` (if any) on every connection.
    pub fn with_secret(mut self, secret: Option<ClusterSecret>) -> Self {
        self.secret = secret;
        self
    }
}

/// Runs `f`, which may take a script's whole time limit, so that the
/// runtime's other tasks do not wait for it: on a multi-threaded runtime
/// the thread stops being one of its workers while `f` runs.
fn off_the_runtime<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn write_status(outcome: SetOutcome) -> WriteStatus {
    match outcome {
        SetOutcome::Stored => WriteStatus::Stored,
        SetOutcome::Stale { held } => WriteStatus::Stale { held },
        SetOutcome::Expired => WriteStatus::Expired,
        SetOutcome::TooLarge => WriteStatus::TooLarge,
    }
}

/// Whether `req` reads or writes keys, and so is fenced by its epoch.
fn is_data_request(req: &Request) -> bool {
    match req {
        Request::Get { .. }
        | Request::Set { .. }
        | Request::Delete { .. }
        | Request::GetMany { .. }
        | Request::SetMany { .. }
        | Request::DeleteMany { .. }
        | Request::Execute { .. }
        | Request::ApplyChanges { .. }
        | Request::CountKeys { .. }
        | Request::Adopt { .. } => true,
        Request::Ping | Request::Hello { .. } | Request::NoteExpired { .. } => false,
    }
}

impl Handler for DataHandler {
    fn handle(&self, req: Request, epoch: u64, conn: &mut ConnState) -> Response {
        if let Some(secret) = &self.secret {
            if let Request::Hello { secret: presented } = &req {
                self.ops.other.inc();
                conn.authenticated = secret.matches(presented);
                if conn.authenticated {
                    return Response::Ok;
                }
                conn.close = true;
                return Response::error(error_code::UNAUTHORIZED, "wrong cluster secret");
            }
            if !conn.authenticated {
                self.ops.other.inc();
                conn.close = true;
                return Response::error(
                    error_code::UNAUTHORIZED,
                    "present the cluster secret with Hello first",
                );
            }
        }
        // After the secret check: an unauthenticated peer must not move the
        // epoch.
        if epoch != UNFENCED {
            if is_data_request(&req) {
                match self.fence.admit(epoch) {
                    Ok(()) => {}
                    Err(Refusal::Stale(current)) => {
                        self.ops.stale_epoch_refusals.inc();
                        return Response::StaleEpoch { current };
                    }
                    Err(Refusal::NotRegistered) => {
                        self.ops.unregistered_refusals.inc();
                        return Response::error(
                            error_code::NOT_REGISTERED,
                            "this auxiliary (re)started and no master has answered its \
                             registration yet: it serves no routed request until one has",
                        );
                    }
                }
            } else if matches!(req, Request::Ping) {
                self.fence.announce(epoch);
            }
        }
        let now = (self.clock)();
        match req {
            Request::Get { key } => {
                self.ops.get.inc();
                // A tombstone is reported with its version, not as a plain
                // miss: a reader that falls back to another replica must be
                // able to tell "deleted" from "not arrived yet".
                match self.store.lookup(&key, now) {
                    Lookup::Live(entry) => Response::Value(entry),
                    Lookup::Deleted(version) => Response::Tombstone(version),
                    Lookup::Absent => Response::NotFound,
                }
            }
            Request::Set { key, entry } => {
                self.ops.set.inc();
                Response::Written(self.set(&key, &entry, now, conn))
            }
            Request::Delete { key, version } => {
                self.ops.delete.inc();
                Response::Deleted(self.delete(&key, version, now, conn))
            }
            Request::GetMany { keys } => {
                self.ops.get_many.inc();
                Response::Values(keys.iter().map(|k| self.store.lookup(k, now)).collect())
            }
            Request::SetMany { entries } => {
                self.ops.set_many.inc();
                Response::WrittenMany(
                    entries
                        .iter()
                        .map(|e| self.set(&e.key, &e.entry, now, conn))
                        .collect(),
                )
            }
            Request::DeleteMany { keys } => {
                self.ops.delete_many.inc();
                for (key, version) in keys {
                    self.delete(&key, version, now, conn);
                }
                Response::Ok
            }
            Request::Execute {
                version,
                max_value_bytes,
                commands,
                ship_effects,
                watched,
            } => {
                self.ops.execute.inc();
                let limit = usize::try_from(max_value_bytes).unwrap_or(usize::MAX);
                self.execute(
                    &commands,
                    &watched,
                    version,
                    limit,
                    ship_effects,
                    epoch,
                    now,
                    conn,
                )
            }
            Request::ApplyChanges { version, changes } => {
                self.ops.apply_changes.inc();
                Response::Applied(self.apply_changes(&changes, version, now, conn))
            }
            Request::CountKeys { ranges } => {
                self.ops.count_keys.inc();
                Response::Counted {
                    keys: self.store.count_in_ranges(&ranges, now),
                }
            }
            Request::Adopt { key, copy, over } => {
                self.ops.adopt.inc();
                Response::Written(self.adopt(&key, &copy, &over, now, conn))
            }
            Request::NoteExpired { key, version } => {
                // Stores and deletes nothing, so it needs no fence and no
                // log record: it only raises the floor commands are
                // stamped above (a floor higher than needed is harmless).
                self.ops.note_expired.inc();
                self.store.note_expired(&key, version);
                Response::Ok
            }
            Request::Ping => {
                self.ops.other.inc();
                Response::Pong
            }
            Request::Hello { .. } => {
                // No cluster secret is configured: every peer is welcome.
                self.ops.other.inc();
                Response::Ok
            }
        }
    }

    fn before_answering(&self, conn: &mut ConnState) -> impl Future<Output = ()> + Send {
        let position = std::mem::take(&mut conn.wait_for);
        async move {
            if let Some(log) = &self.log {
                log.commit(position).await;
            }
        }
    }
}

/// The answer to a batch the store ran: its replies encoded, and its
/// changes, each with its effects encoded for the key's other replicas when
/// `ship_effects` (else its key and base version only).
impl DataHandler {
    /// The answer to an `Execute` that reached the store.
    fn executed_response(&self, executed: Executed, ship_effects: bool) -> Response {
        match executed {
            Executed::Refused => {
                self.ops.stale_epoch_refusals.inc();
                Response::StaleEpoch {
                    current: self.fence.current(),
                }
            }
            executed => executed_response(executed, ship_effects),
        }
    }
}

fn executed_response(executed: Executed, ship_effects: bool) -> Response {
    match executed {
        Executed::Ran {
            version,
            reply,
            changes,
        } => {
            let Reply::Array(replies) = reply else {
                unreachable!("the batch answers an array")
            };
            // The version byte and the count, then the replies.
            let size: usize = replies.iter().map(reply_codec::encoded_len).sum();
            let mut encoded = Vec::with_capacity(1 + 4 + size);
            reply_codec::encode(&replies, &mut encoded);
            Response::Executed {
                version,
                replies: encoded.into(),
                changes: changes
                    .into_iter()
                    .map(|c| {
                        let mut ops = Vec::new();
                        if ship_effects {
                            effect_encoding::encode_ops(&c.key, &c.ops, &mut ops);
                        }
                        ShippedChanges {
                            key: c.key,
                            base: c.base,
                            ops: ops.into(),
                        }
                    })
                    .collect(),
            }
        }
        Executed::TooLarge => Response::Written(WriteStatus::TooLarge),
        Executed::WatchFailed => Response::WatchFailed,
        Executed::Undeclared { key } => {
            tracing::error!(
                key = %String::from_utf8_lossy(&key),
                "a command changed a key it did not name; refused, nothing changed"
            );
            Response::error(
                error_code::BAD_REQUEST,
                "a command changed a key it did not name among its keys (a bug in distcache); nothing changed",
            )
        }
        Executed::Refused => unreachable!("answered by DataHandler::executed_response"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use distcache_core::ring::PositionRange;
    use distcache_core::store::StoreConfig;
    use distcache_core::{Entry, Version};

    fn handler() -> (DataHandler, Arc<EpochFence>, AuxMetrics) {
        handler_with(EpochFence::default())
    }

    fn handler_with(fence: EpochFence) -> (DataHandler, Arc<EpochFence>, AuxMetrics) {
        let metrics = AuxMetrics::new(&prometheus::Registry::new());
        let fence = Arc::new(fence);
        let handler = DataHandler::new(
            Arc::new(Store::new(StoreConfig::default())),
            Arc::new(|| 1_700_000_000_000),
            fence.clone(),
            metrics.clone(),
        );
        (handler, fence, metrics)
    }

    fn get(key: &'static str) -> Request {
        Request::Get {
            key: Bytes::from_static(key.as_bytes()),
        }
    }

    fn set(key: &'static str, counter: u32) -> Request {
        Request::Set {
            key: Bytes::from_static(key.as_bytes()),
            entry: Entry {
                value: Bytes::from_static(b"1"),
                expires_at_ms: None,
                version: Version {
                    millis: 1_700_000_000_000,
                    counter,
                    origin: 1,
                },
            },
        }
    }

    /// Every data request, for checking that each one is fenced.
    fn every_data_request() -> Vec<Request> {
        vec![
            get("k"),
            set("k", 1),
            Request::Delete {
                key: Bytes::from_static(b"k"),
                version: Version::default(),
            },
            Request::GetMany { keys: vec![] },
            Request::SetMany { entries: vec![] },
            Request::DeleteMany { keys: vec![] },
            Request::CountKeys { ranges: vec![] },
            adopt("k", 2, &[1]),
        ]
    }

    /// `Adopt` of the entry [`set`] would write at `counter`, over the
    /// versions [`set`] writes at `over`.
    fn adopt(key: &'static str, counter: u32, over: &[u32]) -> Request {
        let Request::Set { key, entry } = set(key, counter) else {
            unreachable!()
        };
        let version = |counter| Version {
            counter,
            ..entry.version
        };
        Request::Adopt {
            key,
            over: over.iter().map(|&c| version(c)).collect(),
            copy: Lookup::Live(entry),
        }
    }

    #[test]
    fn an_adopted_copy_replaces_only_a_history_it_continues() {
        let (h, _, metrics) = handler();
        let mut conn = ConnState::default();
        let held =
            |h: &DataHandler, key| match h.handle(get(key), UNFENCED, &mut ConnState::default()) {
                Response::Value(entry) => entry.version.counter,
                other => panic!("{other:?}"),
            };
        // Over nothing, and over the command's base: stored.
        assert_eq!(
            h.handle(adopt("fresh", 5, &[3]), 7, &mut conn),
            Response::Written(WriteStatus::Stored)
        );
        h.handle(set("base", 3), 7, &mut conn);
        assert_eq!(
            h.handle(adopt("base", 5, &[3]), 7, &mut conn),
            Response::Written(WriteStatus::Stored)
        );
        assert_eq!(held(&h, "base"), 5);
        // Another history, even an older one: refused with what it holds.
        h.handle(set("other", 4), 7, &mut conn);
        match h.handle(adopt("other", 5, &[3]), 7, &mut conn) {
            Response::Written(WriteStatus::Stale { held }) => assert_eq!(held.counter, 4),
            other => panic!("{other:?}"),
        }
        assert_eq!(held(&h, "other"), 4);
        // Fenced like every data request, and counted.
        assert_eq!(
            h.handle(adopt("base", 6, &[5]), 6, &mut conn),
            Response::StaleEpoch { current: 7 }
        );
        assert_eq!(metrics.data_requests.with_label_values(&["adopt"]).get(), 3);
    }

    #[test]
    fn count_keys_counts_the_live_keys_in_its_ranges_and_is_counted() {
        let (h, _, metrics) = handler();
        let mut conn = ConnState::default();
        for key in ["a", "b", "c"] {
            h.handle(set(key, 1), UNFENCED, &mut conn);
        }
        let position = distcache_core::keyspace::key_position(b"b");
        let only_b = vec![PositionRange {
            first: position,
            last: position,
        }];
        let all = vec![PositionRange {
            first: 0,
            last: u64::MAX,
        }];
        let count = |ranges| h.handle(Request::CountKeys { ranges }, 1, &mut ConnState::default());
        assert_eq!(count(only_b), Response::Counted { keys: 1 });
        assert_eq!(count(all), Response::Counted { keys: 3 });
        let served = metrics
            .data_requests
            .with_label_values(&["count_keys"])
            .get();
        assert_eq!(served, 2);
    }

    #[test]
    fn execute_keys_only_answers_the_changed_keys_without_their_effects() {
        let args = |words: &[&'static str]| -> Vec<Bytes> {
            words
                .iter()
                .map(|w| Bytes::from_static(w.as_bytes()))
                .collect()
        };
        // GETs and SETs alone run on the stored strings; INCR and HSET
        // through the executor: both paths answer alike.
        let batches = [
            vec![
                args(&["SET", "a", "x"]),
                args(&["GET", "a"]),
                args(&["SET", "b", "y"]),
            ],
            vec![
                args(&["SET", "a", "x"]),
                args(&["INCR", "n"]),
                args(&["HSET", "h", "f", "v"]),
            ],
        ];
        for commands in batches {
            let execute = |ship_effects| {
                let (h, _, _) = handler();
                let request = Request::Execute {
                    version: Some(Version {
                        millis: 1_700_000_000_000,
                        counter: 1,
                        origin: 1,
                    }),
                    max_value_bytes: 1024,
                    commands: commands.clone().into(),
                    ship_effects,
                    watched: Vec::new(),
                };
                match h.handle(request, 1, &mut ConnState::default()) {
                    Response::Executed {
                        version,
                        replies,
                        changes,
                    } => (version, replies, changes),
                    other => panic!("{other:?}"),
                }
            };
            let (shipped_version, shipped_replies, shipped) = execute(true);
            let (version, replies, keys_only) = execute(false);
            assert_eq!((version, replies), (shipped_version, shipped_replies));
            assert_eq!(keys_only.len(), shipped.len(), "{commands:?}");
            assert!(!shipped.is_empty());
            for (bare, full) in keys_only.iter().zip(&shipped) {
                assert_eq!((&bare.key, bare.base), (&full.key, full.base));
                assert!(bare.ops.is_empty(), "{bare:?}");
                assert!(!full.ops.is_empty(), "{full:?}");
            }
        }
    }

    #[test]
    fn every_data_request_older_than_the_highest_epoch_is_refused_and_counted() {
        let (h, fence, metrics) = handler();
        let mut conn = ConnState::default();
        assert_eq!(
            h.handle(set("k", 1), 5, &mut conn),
            Response::Written(WriteStatus::Stored)
        );
        assert_eq!(fence.current(), 5);
        for (i, req) in every_data_request().into_iter().enumerate() {
            assert_eq!(
                h.handle(req.clone(), 4, &mut conn),
                Response::StaleEpoch { current: 5 },
                "{req:?}"
            );
            assert_eq!(metrics.stale_epoch_refusals.get(), i as u64 + 1);
            // The same request at the current epoch, or unfenced, is served.
            assert!(!matches!(
                h.handle(req.clone(), 5, &mut conn),
                Response::StaleEpoch { .. }
            ));
            assert!(!matches!(
                h.handle(req, UNFENCED, &mut conn),
                Response::StaleEpoch { .. }
            ));
        }
        assert_eq!(
            fence.current(),
            5,
            "neither refusals nor unfenced requests move it"
        );
    }

    #[test]
    fn until_registered_no_routed_request_is_served_and_then_none_older_than_the_answer() {
        let (h, fence, metrics) = handler_with(EpochFence::until_registered());
        let mut conn = ConnState::default();
        for (i, req) in every_data_request().into_iter().enumerate() {
            for epoch in [1, 7, u64::MAX] {
                assert!(
                    matches!(
                        h.handle(req.clone(), epoch, &mut conn),
                        Response::Error { ref code, .. } if code == error_code::NOT_REGISTERED
                    ),
                    "{req:?} at {epoch}"
                );
            }
            assert_eq!(metrics.unregistered_refusals.get(), 3 * (i as u64 + 1));
        }
        assert_eq!(fence.current(), 0, "a refused request raises nothing");
        // Peers handing keys over are served; an announce raises the
        // epoch but does not open the fence.
        assert_eq!(
            h.handle(set("k", 1), UNFENCED, &mut conn),
            Response::Written(WriteStatus::Stored)
        );
        assert_eq!(h.handle(Request::Ping, 4, &mut conn), Response::Pong);
        assert_eq!(fence.current(), 4);
        assert!(!fence.is_open());
        assert!(matches!(
            h.handle(get("k"), 4, &mut conn),
            Response::Error { .. }
        ));
        // A master answered the registration from its map at epoch 6.
        fence.registered(Some(6));
        assert!(fence.is_open());
        assert_eq!(
            h.handle(get("k"), 5, &mut conn),
            Response::StaleEpoch { current: 6 }
        );
        assert!(matches!(
            h.handle(get("k"), 6, &mut conn),
            Response::Value(_)
        ));
        assert_eq!(metrics.stale_epoch_refusals.get(), 1);
        // An older master's answer names no epoch: it opens at the epoch
        // already seen, and never lowers it.
        let (_, fence, _) = handler_with(EpochFence::until_registered());
        fence.announce(3);
        fence.registered(None);
        assert!(fence.is_open());
        assert_eq!(fence.current(), 3);
        fence.registered(Some(2));
        assert_eq!(fence.current(), 3);
    }

    #[test]
    fn a_ping_announces_an_epoch_and_never_lowers_it() {
        let (h, fence, _) = handler();
        let mut conn = ConnState::default();
        assert_eq!(h.handle(Request::Ping, UNFENCED, &mut conn), Response::Pong);
        assert_eq!(fence.current(), 0);
        assert_eq!(h.handle(Request::Ping, 9, &mut conn), Response::Pong);
        assert_eq!(fence.current(), 9);
        assert_eq!(h.handle(Request::Ping, 3, &mut conn), Response::Pong);
        assert_eq!(fence.current(), 9);
        assert_eq!(
            h.handle(get("k"), 8, &mut conn),
            Response::StaleEpoch { current: 9 }
        );
        assert_eq!(h.handle(get("k"), 10, &mut conn), Response::NotFound);
        assert_eq!(fence.current(), 10, "a newer data request raises it too");
    }

    #[test]
    fn an_unauthenticated_peer_cannot_move_the_epoch() {
        let (h, fence, _) = handler();
        let h = h.with_secret(Some(ClusterSecret::new(b"s3cret".to_vec())));
        let mut conn = ConnState::default();
        let answer = h.handle(Request::Ping, 100, &mut conn);
        assert!(matches!(answer, Response::Error { code, .. } if code == error_code::UNAUTHORIZED));
        assert_eq!(fence.current(), 0);
    }

    /// Threads race announces and data requests at random epochs. The epoch
    /// each sees never goes down, every refusal names an epoch newer than the
    /// request's, no data request is served below an epoch its thread saw in
    /// place, and the final epoch is the highest one anybody sent.
    #[test]
    fn concurrent_requests_never_see_the_epoch_go_down() {
        let (h, fence, _) = handler();
        let h = Arc::new(h);
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let h = h.clone();
                let fence = fence.clone();
                std::thread::spawn(move || {
                    let mut conn = ConnState::default();
                    let mut last_seen = 0;
                    let mut sent_max = 0;
                    let mut x = t + 1;
                    for i in 0..20_000u64 {
                        // xorshift: a spread of epochs around a rising line.
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let epoch = 1 + i / 8 + x % 16;
                        sent_max = sent_max.max(epoch);
                        let announce = x % 5 == 0;
                        let answer = if announce {
                            h.handle(Request::Ping, epoch, &mut conn)
                        } else {
                            h.handle(get("k"), epoch, &mut conn)
                        };
                        if let Response::StaleEpoch { current } = answer {
                            assert!(current > epoch, "refused {epoch} naming {current}");
                            assert!(current >= last_seen);
                            last_seen = current;
                        } else {
                            assert!(
                                announce || epoch >= last_seen,
                                "{epoch} served after {last_seen}"
                            );
                        }
                        let now = fence.current();
                        assert!(
                            now >= last_seen,
                            "the epoch went down: {last_seen} -> {now}"
                        );
                        assert!(now >= epoch, "after handling {epoch} the epoch is {now}");
                        last_seen = now;
                    }
                    sent_max
                })
            })
            .collect();
        let sent_max = threads.into_iter().map(|t| t.join().unwrap()).max();
        assert_eq!(Some(fence.current()), sent_max);
    }

    /// A handler over a fresh store with a real mutation log (`everysec`)
    /// in its own directory under the system's temporary one.
    fn logging_handler(name: &str) -> (DataHandler, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "distcache-data-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let metrics = AuxMetrics::new(&prometheus::Registry::new());
        let log = super::super::mutation_log::MutationLog::open(
            &dir,
            "aux",
            crate::config::LogFsync::Everysec,
            crate::config::DEFAULT_LOG_MAX_BYTES,
            1,
            metrics.log.clone(),
        );
        let handler = DataHandler::new(
            Arc::new(Store::new(StoreConfig::default())),
            Arc::new(|| 1_700_000_000_000),
            Arc::new(EpochFence::default()),
            metrics,
        )
        .with_log(Some(Arc::new(log)));
        (handler, dir)
    }

    /// What a restart would find: a fresh store with the log replayed.
    fn replayed(dir: &std::path::Path) -> Store {
        let store = Store::new(StoreConfig::default());
        let metrics = AuxMetrics::new(&prometheus::Registry::new());
        super::super::mutation_log::replay_at_start(
            dir,
            "aux",
            0,
            &store,
            1_700_000_000_000,
            &metrics.log,
        );
        let _ = std::fs::remove_dir_all(dir);
        store
    }

    fn set_at(key: &'static str, counter: u32, expires_at_ms: Option<u64>) -> Request {
        let Request::Set { key, mut entry } = set(key, counter) else {
            unreachable!("set builds a Set")
        };
        entry.expires_at_ms = expires_at_ms;
        Request::Set { key, entry }
    }

    #[tokio::test]
    async fn an_already_expired_write_is_logged_so_a_restart_does_not_bring_the_older_value_back() {
        let (h, dir) = logging_handler("expired");
        let mut conn = ConnState::default();
        h.handle(set_at("k", 1, None), UNFENCED, &mut conn);
        // Written past its expiry: it deletes the older value.
        let answer = h.handle(set_at("k", 2, Some(1)), UNFENCED, &mut conn);
        assert_eq!(answer, Response::Written(WriteStatus::Expired));
        h.before_answering(&mut conn).await;
        assert_eq!(replayed(&dir).get(b"k", 1_700_000_000_000), None);
    }

    #[tokio::test]
    async fn a_stale_answer_waits_for_the_newer_write_it_lost_to() {
        let (h, dir) = logging_handler("stale");
        let (mut first, mut second) = (ConnState::default(), ConnState::default());
        // The newer write, on one connection, not answered (so not
        // written out) yet.
        h.handle(set("k", 5), UNFENCED, &mut first);
        // The older one, on another, refused as stale and answered: its
        // acknowledgement rests on the newer write being durable.
        let answer = h.handle(set("k", 4), UNFENCED, &mut second);
        assert!(matches!(
            answer,
            Response::Written(WriteStatus::Stale { .. })
        ));
        h.before_answering(&mut second).await;
        let store = replayed(&dir);
        assert_eq!(
            store
                .get(b"k", 1_700_000_000_000)
                .map(|e| e.version.counter),
            Some(5)
        );
    }
}
