//! Commands at their keys' leader: the first live replica of the keys runs
//! them on its store and answers with the replies and the changes, which
//! go to the other replicas, as effects (the size of the command, not of
//! the value), stamped with the same version.
//!
//! - **Versions.** A command that writes carries a version from this
//!   master's clock; the leader runs it at the first version above that
//!   one and above what its keys hold (`Version::above`), and says which.
//!   The leader runs a key's commands one at a time, so that is the key's
//!   order, and contention never sends a command back.
//! - **Replicas.** A replica applies the changes only if it holds the
//!   version the leader held before them (their base). One that missed an
//!   operation says so and is sent the leader's whole value instead; one
//!   that holds a newer version met a concurrent operation, which is then
//!   ordered after this one, as for writes.
//! - **Acknowledgement.** With `WRITE_QUORUM=all` the reply waits for
//!   every live replica; with `one` the leader's answer is enough, and the
//!   changes reach the others in the background.
//! - **Never twice.** A command the leader may have run (a timeout, a lost
//!   connection) is never sent again: the client gets an error and decides.
//!   Only a refusal that ran nothing (an older map) retries.
//! - **While keys move** the leader may lack the newest copy of a key (a
//!   node back from an outage): before running, the newest copy any node
//!   holds is written to the leader first.

use std::sync::Arc;

use bytes::Bytes;
use distcache_core::Lookup;
use distcache_core::command::reply::codec as reply_codec;
use distcache_core::command::{CommandError, Reply};
use distcache_core::store::Watched;
use distcache_core::version::Version;
use distcache_wire::frame::{ApplyStatus, DeleteStatus, ShippedChanges, WriteStatus};
use distcache_wire::{Request, Response};
use futures_util::future::join_all;

use crate::config::WriteQuorum;
use crate::http::ApiError;
use crate::master::data::{CallError, OpError, Route, committed_replicas_silent, unavailable};
use crate::master::{Master, NodeRef, RingView};

/// How many newer maps the changes of a command that ran follow before the
/// client is told they may not have reached every replica.
const SPREAD_ATTEMPTS: usize = 3;

/// An error after the leader ran a command, as the client gets it: never
/// [`OpError::Fenced`], which would have `Master::fenced` run the command
/// again (a second INCR, a second RPUSH), breaking "never twice".
fn ran_once(e: OpError) -> OpError {
    match e {
        OpError::Fenced(epoch) => OpError::Api(ApiError::unavailable(
            "replicas_unavailable",
            format!(
                "the command ran at its keys' leader, but the cluster map kept moving \
                 (epoch {epoch}) before its result reached every replica; it is not run again"
            ),
        )),
        e => e,
    }
}

fn unexpected() -> ApiError {
    ApiError::internal(
        "unexpected_answer",
        "an auxiliary answered a command unexpectedly",
    )
}

/// The keys of a write's `commands` that its `changes` do not name (`keys`
/// when the caller has them, else found from the commands).
///
/// Looked for only when there are fewer changes than commands, so that
/// the usual write (each command changing its key) pays nothing here. What
/// that leaves out: a key a multi-key command read without changing (the
/// destination of an SMOVE that already held the member) in a batch whose
/// other commands all changed something; its command's answer did not come
/// from that key alone.
fn unchanged_keys(
    keys: &[Bytes],
    commands: &[Vec<Bytes>],
    changes: &[ShippedChanges],
) -> Vec<Bytes> {
    if changes.len() >= commands.len() {
        return Vec::new();
    }
    let found;
    let keys = if keys.is_empty() {
        found = super::plan::keys_of_all(commands);
        &found[..]
    } else {
        keys
    };
    let mut unchanged: Vec<Bytes> = keys
        .iter()
        .filter(|k| !changes.iter().any(|c| c.key == **k))
        .cloned()
        .collect();
    unchanged.sort();
    unchanged.dedup();
    unchanged
}

/// The replies a leader sent, decoded.
pub(super) fn decode_replies(bytes: &Bytes, expected: usize) -> Result<Vec<Reply>, ApiError> {
    let replies = reply_codec::decode(bytes).map_err(|e| {
        ApiError::internal("unexpected_answer", format!("an auxiliary's replies: {e}"))
    })?;
    if replies.len() != expected {
        return Err(unexpected());
    }
    Ok(replies)
}

/// What a leader did with a batch of commands.
pub(super) enum AtLeader {
    /// They ran (or, for reads, were answered): their replies, and the
    /// other replicas the changes reached before the answer.
    Ran(Vec<Reply>, usize),
    /// Nothing ran: the keys are no longer on the same nodes (the map
    /// moved after they were planned).
    Moved,
    /// Nothing ran: a result would exceed the value limit or the store, or
    /// a batch's answer would not fit one frame.
    TooLarge,
    /// Nothing ran: a watched key changed since WATCH (EXEC answers nil).
    WatchFailed,
}

/// The reply to a command whose keys moved to other nodes after it was
/// planned: Redis Cluster's word for "keys being moved, try again".
pub(super) fn try_again() -> Reply {
    Reply::Error(CommandError::Relayed(
        "TRYAGAIN Multiple keys request during rehashing of slot".into(),
    ))
}

/// The reply to a command whose result would not fit.
pub(super) fn too_large() -> Reply {
    Reply::Error(CommandError::Relayed(
        "OOM the value would exceed MAX_VALUE_BYTES or the node's share of CACHE_MAX_BYTES".into(),
    ))
}

/// Whether a write's changes go to replicas beyond its leader: then, and
/// only then, the leader must answer with their effects. One rule for
/// both, so that no change is ever shipped without its effects.
fn ships_to_others(route: &Route) -> bool {
    route.len() > 1
}

impl Master {
    /// The `Execute` request for `commands`, at `version` (`None` for a
    /// read), with this master's value limit. `ship_effects`: whether the
    /// answer must carry the changes' effects, for the keys' other
    /// replicas.
    pub(super) fn execute_request(
        &self,
        version: Option<Version>,
        commands: Arc<[Vec<Bytes>]>,
        ship_effects: bool,
    ) -> Request {
        self.execute_watched_request(version, commands, ship_effects, &[])
    }

    /// As [`Master::execute_request`], for EXEC after WATCH: the leader
    /// runs nothing if a key of `watched` changed since it was watched.
    fn execute_watched_request(
        &self,
        version: Option<Version>,
        commands: Arc<[Vec<Bytes>]>,
        ship_effects: bool,
        watched: &[(Bytes, Watched)],
    ) -> Request {
        Request::Execute {
            version,
            max_value_bytes: self.config.max_value_bytes as u64,
            commands,
            ship_effects,
            watched: watched.to_vec(),
        }
    }

    /// Runs `commands` (one, or a transaction's) at the leader of `keys`,
    /// which share their replicas; `write` when any may change data.
    pub(super) async fn at_leader(
        self: &Arc<Self>,
        keys: &[Bytes],
        commands: Arc<[Vec<Bytes>]>,
        write: bool,
    ) -> Result<Vec<Reply>, ApiError> {
        Ok(self.at_leader_reached(keys, commands, write).await?.0)
    }

    /// As [`Master::at_leader`], with the number of other replicas the
    /// changes of a write reached before the answer (its route's length
    /// less the leader under `WRITE_QUORUM=all`, where an acknowledged
    /// write reached every live replica; 0 under `one` and for reads).
    pub(super) async fn at_leader_reached(
        self: &Arc<Self>,
        keys: &[Bytes],
        commands: Arc<[Vec<Bytes>]>,
        write: bool,
    ) -> Result<(Vec<Reply>, usize), ApiError> {
        let n = commands.len();
        Ok(
            match self
                .at_leader_answer(Some(keys), commands, write, None, &[])
                .await?
            {
                AtLeader::Ran(replies, reached) => (replies, reached),
                AtLeader::WatchFailed => unreachable!("nothing was watched"),
                AtLeader::Moved => (vec![try_again(); n], 0),
                AtLeader::TooLarge => (vec![too_large(); n], 0),
            },
        )
    }

    /// Runs `commands` at the leader of `keys` and says what came of them,
    /// nothing having run told apart from an answer. `planned`: the map
    /// the keys were found together by, and their route by it; while it
    /// is still the current map, neither is worked out again. `keys` may
    /// then be `None`: found from the commands only if they are needed
    /// after all (the map moved, or keys are moving). `watched`: EXEC
    /// after WATCH, whose keys are among `keys` (see
    /// [`Master::execute_watched_request`]).
    pub(super) async fn at_leader_answer(
        self: &Arc<Self>,
        keys: Option<&[Bytes]>,
        commands: Arc<[Vec<Bytes>]>,
        write: bool,
        planned: Option<(&Arc<RingView>, &Route)>,
        watched: &[(Bytes, Watched)],
    ) -> Result<AtLeader, ApiError> {
        self.fenced(|| self.leader_attempt(keys, commands.clone(), write, planned, watched))
            .await
    }

    async fn leader_attempt(
        self: &Arc<Self>,
        keys: Option<&[Bytes]>,
        commands: Arc<[Vec<Bytes>]>,
        write: bool,
        planned: Option<(&Arc<RingView>, &Route)>,
        watched: &[(Bytes, Watched)],
    ) -> Result<AtLeader, OpError> {
        let view = self.view.load_full();
        let planned = planned
            .filter(|(at, _)| Arc::ptr_eq(at, &view))
            .map(|(_, route)| route.clone());
        let found;
        let keys = match keys {
            Some(keys) => keys,
            None if planned.is_none() || view.rebalancing() => {
                found = super::plan::keys_of_all(&commands);
                &found[..]
            }
            None => &[],
        };
        let route = match planned {
            Some(route) => route,
            None => {
                let route = match keys.first() {
                    Some(key) => self.route(&view, key)?,
                    None => self.any_node(&view)?,
                };
                if !self.together(&view, keys)? {
                    // They were together when the command was planned: the
                    // map moved since.
                    return Ok(AtLeader::Moved);
                }
                route
            }
        };
        if view.rebalancing() {
            self.bring_leader_up_to_date(&view, &route, keys).await?;
        }
        if !write {
            return self.read_at(&view, &route, commands, watched).await;
        }
        let leader = &route[0];
        let version = self.versions.tick((self.clock)());
        let n = commands.len();
        // With nobody to ship them to, the answer names the changed keys
        // without their effects.
        let request = self.execute_watched_request(
            Some(version),
            commands.clone(),
            ships_to_others(&route),
            watched,
        );
        match self.call(leader, view.epoch, "execute", request).await {
            Ok(Response::Executed {
                version,
                replies,
                changes,
            }) => {
                for change in &changes {
                    self.invalidate_near(&change.key);
                }
                if let Some(version) = version {
                    self.versions.observe(version);
                    // The command ran: from here no error may send it
                    // through `fenced` again, which would run it twice.
                    // Its changes reach the other replicas before its
                    // replies are even read: a reply that cannot be read
                    // must not leave them behind the leader.
                    let unchanged = unchanged_keys(keys, &commands, &changes);
                    self.ship(&view, &route, version, changes)
                        .await
                        .map_err(ran_once)?;
                    self.sync_unchanged(&view, &route, &unchanged)
                        .await
                        .map_err(ran_once)?;
                }
                let replies = decode_replies(&replies, n)?;
                let reached = match self.quorum() {
                    WriteQuorum::All => route.len() - 1,
                    WriteQuorum::One => 0,
                };
                Ok(AtLeader::Ran(replies, reached))
            }
            Ok(Response::Written(WriteStatus::TooLarge)) => Ok(AtLeader::TooLarge),
            Ok(Response::WatchFailed) if !watched.is_empty() => Ok(AtLeader::WatchFailed),
            Ok(_) => Err(unexpected().into()),
            Err(CallError::StaleEpoch(current)) => Err(OpError::Fenced(current)),
            Err(e) => Err(unavailable("the command", 0, 1, Some(e)).into()),
        }
    }

    /// Makes the other replicas hold what the leader holds for `keys`,
    /// which a write left unchanged (DEL of a deleted key, SETNX or SADD
    /// that found what they would write), before it is acknowledged.
    ///
    /// Why: its answer was read from the leader's copy, which may hold
    /// another command's change that has not reached the other replicas
    /// yet (its master is still shipping it, is cut off from them, or
    /// died). Acknowledged on that alone, a read that then falls back to
    /// another replica, or the loss of the leader, would undo what this
    /// answer reported: a DEL answered 0 and the key back. The leader's
    /// copy of each key goes to the others, which keep it only if it is
    /// newer than theirs; with `WRITE_QUORUM=one` nothing waits, as for any
    /// write. The cost is a read at the leader and a write to each other
    /// replica per unchanged key, for writes that changed nothing only.
    async fn sync_unchanged(
        &self,
        view: &RingView,
        route: &Route,
        keys: &[Bytes],
    ) -> Result<(), OpError> {
        if keys.is_empty() || !ships_to_others(route) || self.quorum() == WriteQuorum::One {
            return Ok(());
        }
        let leader = &route[0];
        for key in keys {
            let copy = self.copy_at(leader, view.epoch, key).await?;
            if matches!(copy, Lookup::Absent) {
                continue;
            }
            let puts = route[1..]
                .iter()
                .map(|node| self.put_copy(node, view.epoch, key, copy.clone()));
            for kept in join_all(puts).await {
                kept?;
            }
        }
        Ok(())
    }

    /// Any live node (for commands without keys).
    fn any_node(&self, view: &RingView) -> Result<Route, ApiError> {
        let mut route = Route::new();
        if let Some(node) = view.target.nodes.iter().flatten().next() {
            route.push(node.clone());
        }
        if route.is_empty() {
            return Err(super::super::data::no_auxiliaries());
        }
        Ok(route)
    }

    /// A read: at the leader, then the next replica if a call fails.
    async fn read_at(
        &self,
        view: &RingView,
        route: &Route,
        commands: Arc<[Vec<Bytes>]>,
        watched: &[(Bytes, Watched)],
    ) -> Result<AtLeader, OpError> {
        let mut last_error = None;
        for (i, node) in route.iter().enumerate() {
            let request = self.execute_watched_request(None, commands.clone(), true, watched);
            match self.call(node, view.epoch, "execute", request).await {
                Ok(Response::Executed { replies, .. }) => {
                    if i > 0 {
                        self.metrics.read_fallbacks.inc();
                    }
                    let replies = decode_replies(&replies, commands.len())?;
                    return Ok(AtLeader::Ran(replies, 0));
                }
                // A batch whose answer would not fit one frame.
                Ok(Response::Written(WriteStatus::TooLarge)) => return Ok(AtLeader::TooLarge),
                Ok(Response::WatchFailed) if !watched.is_empty() => {
                    return Ok(AtLeader::WatchFailed);
                }
                Ok(_) => return Err(unexpected().into()),
                Err(CallError::StaleEpoch(current)) => return Err(OpError::Fenced(current)),
                Err(e) => last_error = Some(e),
            }
        }
        Err(unavailable("the read", 0, route.len(), last_error).into())
    }

    /// While keys move: writes the newest copy of each key any node holds
    /// to the leader, so the command starts from it. A key whose every
    /// committed replica is silent, with no copy found elsewhere, cannot
    /// be served yet (see "Waiting for silent copies" in
    /// `distcache_core::cluster`).
    async fn bring_leader_up_to_date(
        &self,
        view: &RingView,
        route: &Route,
        keys: &[Bytes],
    ) -> Result<(), OpError> {
        let leader = &route[0];
        for key in keys {
            let nodes = self.read_route(view, key)?;
            let newest = self.read_newest(view, &nodes, key.clone()).await?;
            if matches!(newest, Lookup::Absent) && committed_replicas_silent(view, key) {
                return Err(OpError::Api(ApiError::unavailable(
                    "replicas_unavailable",
                    "every auxiliary that holds this key is down; it can be used when one is back",
                )));
            }
            self.put_copy(leader, view.epoch, key, newest).await?;
        }
        Ok(())
    }

    /// Writes `copy` of `key` to `node`, which keeps it only if it is newer
    /// than what it holds: `Some(held)` when it kept the version `held`
    /// (as high or higher) instead.
    async fn put_copy(
        &self,
        node: &NodeRef,
        epoch: u64,
        key: &Bytes,
        copy: Lookup,
    ) -> Result<Option<Version>, OpError> {
        let request = match copy {
            Lookup::Live(entry) => Request::Set {
                key: key.clone(),
                entry,
            },
            Lookup::Deleted(version) => Request::Delete {
                key: key.clone(),
                version,
            },
            Lookup::Absent => return Ok(None),
        };
        self.send_copy(node, epoch, request).await
    }

    /// As [`Master::put_copy`], but `node` keeps `copy` only over a
    /// history it continues: nothing, the copy's own version, or one of
    /// `over` (`Request::Adopt`). `Some(held)` when it kept `held` instead,
    /// lower or higher.
    async fn adopt_copy(
        &self,
        node: &NodeRef,
        epoch: u64,
        key: &Bytes,
        copy: Lookup,
        over: Vec<Version>,
    ) -> Result<Option<Version>, OpError> {
        if matches!(copy, Lookup::Absent) {
            return Ok(None);
        }
        let request = Request::Adopt {
            key: key.clone(),
            copy,
            over,
        };
        self.send_copy(node, epoch, request).await
    }

    /// Sends a copy (`Set`, `Delete` or `Adopt`) and reads what `node`
    /// kept.
    async fn send_copy(
        &self,
        node: &NodeRef,
        epoch: u64,
        request: Request,
    ) -> Result<Option<Version>, OpError> {
        match self.call(node, epoch, "repair", request).await {
            // A node with a smaller byte limit cannot hold the copy: the
            // key is not on every replica, so this is no success.
            Ok(Response::Written(WriteStatus::TooLarge)) => Err(ApiError::unavailable(
                "replicas_unavailable",
                format!(
                    "{} cannot hold this value (its CACHE_MAX_BYTES share)",
                    node.id
                ),
            )
            .into()),
            Ok(Response::Written(WriteStatus::Stale { held }))
            | Ok(Response::Deleted(DeleteStatus::Stale { held })) => Ok(Some(held)),
            Ok(_) => Ok(None),
            Err(CallError::StaleEpoch(current)) => Err(OpError::Fenced(current)),
            Err(e) => Err(unavailable("a repair", 0, 1, Some(e)).into()),
        }
    }

    /// Sends the leader's changes to the other replicas in `route` and
    /// applies the write quorum.
    async fn ship(
        self: &Arc<Self>,
        view: &Arc<RingView>,
        route: &Route,
        version: Version,
        changes: Vec<ShippedChanges>,
    ) -> Result<(), OpError> {
        if changes.is_empty() || !ships_to_others(route) {
            return Ok(());
        }
        let master = self.clone();
        let view = view.clone();
        let route = route.clone();
        let work = async move { master.ship_all(&view, &route, version, &changes).await };
        if self.quorum() == WriteQuorum::One {
            // The leader has it: acknowledged. The rest follow.
            self.shutdown.spawn(async move {
                if let Err(OpError::Api(e)) = work.await {
                    tracing::debug!(error = %e.message, "changes did not reach every replica");
                }
            });
            return Ok(());
        }
        work.await
    }

    async fn ship_all(
        &self,
        view: &RingView,
        route: &Route,
        version: Version,
        changes: &[ShippedChanges],
    ) -> Result<(), OpError> {
        let leader = &route[0];
        let calls = route[1..].iter().map(|node| async move {
            let request = Request::ApplyChanges {
                version,
                changes: changes.to_vec(),
            };
            (
                node,
                self.call(node, view.epoch, "apply_changes", request).await,
            )
        });
        let mut reached = 1;
        let mut last_error = None;
        let mut fenced = None;
        for (node, answer) in join_all(calls).await {
            match answer {
                Ok(Response::Applied(statuses)) if statuses.len() == changes.len() => {
                    let mut whole = true;
                    for (status, change) in statuses.iter().zip(changes) {
                        match status {
                            ApplyStatus::Applied => {}
                            ApplyStatus::Stale { held } => {
                                self.versions.observe(*held);
                                self.metrics.superseded.inc();
                            }
                            ApplyStatus::Diverged => {
                                self.metrics.command_repairs.inc();
                                let copy = self.copy_at(leader, view.epoch, &change.key).await;
                                match copy {
                                    Ok(copy) => {
                                        if let Err(e) =
                                            self.put_copy(node, view.epoch, &change.key, copy).await
                                        {
                                            whole = false;
                                            if let OpError::Fenced(c) = e {
                                                fenced = fenced.max(Some(c));
                                            }
                                        }
                                    }
                                    Err(OpError::Fenced(c)) => {
                                        whole = false;
                                        fenced = fenced.max(Some(c));
                                    }
                                    Err(OpError::Api(_)) => whole = false,
                                }
                            }
                            ApplyStatus::TooLarge => whole = false,
                        }
                    }
                    if whole {
                        reached += 1;
                    }
                }
                Ok(_) => last_error = Some(CallError::Unexpected),
                Err(CallError::StaleEpoch(current)) => fenced = fenced.max(Some(current)),
                Err(e) => last_error = Some(e),
            }
        }
        if let Some(mut epoch) = fenced {
            // The map moved while the leader ran the command: it ran once
            // and must not run again. Its result goes, whole, to the
            // replicas of the newer map, and again to those of a still
            // newer one if the map moves meanwhile.
            for _ in 0..SPREAD_ATTEMPTS {
                self.catch_up(epoch).await?;
                match self.spread_copies(leader, version, changes).await {
                    Err(OpError::Fenced(newer)) => epoch = newer,
                    done => return done,
                }
            }
            return Err(OpError::Fenced(epoch));
        }
        if reached == route.len() {
            return Ok(());
        }
        Err(unavailable("the command", reached, route.len(), last_error).into())
    }

    /// What `node` holds for `key`, as a copy to send elsewhere.
    pub(in crate::master) async fn copy_at(
        &self,
        node: &NodeRef,
        epoch: u64,
        key: &Bytes,
    ) -> Result<Lookup, OpError> {
        let answer = self
            .call(node, epoch, "get", Request::Get { key: key.clone() })
            .await;
        match self.read_answer(answer) {
            Ok(found) => Ok(found),
            Err(CallError::StaleEpoch(current)) => Err(OpError::Fenced(current)),
            Err(e) => Err(unavailable("a repair", 0, 1, Some(e)).into()),
        }
    }

    /// Sends the leader's copy of each changed key to every replica of the
    /// key by the current map. The command counts as having reached them
    /// only if each now holds that copy. Each takes it only over a history
    /// the copy continues (the command's base, the command's own version,
    /// or nothing at all): a node holding any other version, lower or
    /// higher, may hold a history another leader made without this command
    /// while the map moved, which the copy must not replace, whatever the
    /// versions say. Such a node, or a leader that no longer holds the
    /// command's result (it handed the key over, or holds a later version,
    /// which may be a round's copy without this command), and the client is
    /// told the command may not have taken effect, never that it did.
    async fn spread_copies(
        &self,
        leader: &NodeRef,
        ran_at: Version,
        changes: &[ShippedChanges],
    ) -> Result<(), OpError> {
        let view = self.view.load_full();
        let lost = |why: &str| {
            OpError::Api(ApiError::unavailable(
                "replicas_unavailable",
                format!(
                    "the command ran at its keys' former leader while the cluster map moved, \
                     and {why}: it may not have taken effect; it is not run again"
                ),
            ))
        };
        for change in changes {
            let copy = self
                .copy_at(leader, distcache_wire::frame::UNFENCED, &change.key)
                .await?;
            let Some(version) = copy.version() else {
                return Err(lost("that node no longer holds the key"));
            };
            if version != ran_at {
                // Something else was written there since: another command
                // (whose own spread covers it), or a newer copy handed to
                // it by a round, which may not contain this command.
                return Err(lost("the key changed at that node since"));
            }
            let over: Vec<Version> = change.base.into_iter().chain([ran_at]).collect();
            for node in self.route(&view, &change.key)?.iter() {
                if node.id != leader.id {
                    let kept = self
                        .adopt_copy(node, view.epoch, &change.key, copy.clone(), over.clone())
                        .await?;
                    if kept.is_some_and(|held| held != version) {
                        return Err(lost("another version of the key is in place"));
                    }
                }
            }
        }
        Ok(())
    }
}
