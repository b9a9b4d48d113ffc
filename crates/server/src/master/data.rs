//! The data path: every key request goes to the key's replicas by the ring.
//!
//! - Reads go to the leader and fall back to the next replica on an error or
//!   timeout. While keys move (see [`RingView`]) every replica of both rings
//!   is asked and the highest version wins, a tombstone included.
//! - Writes and deletes carry a version from this master's hybrid clock and
//!   go to every replica at once; with `WRITE_QUORUM=all` every replica must
//!   store it, with `one` the first acknowledgement answers the client and
//!   the rest complete in the background. A replica holding a newer version
//!   refuses the operation and names that version; the clock moves past it
//!   and the operation is stamped and sent again, so a refused operation is
//!   never acknowledged (see [`Master::replicate`]).
//! - Every version met in an answer moves the clock forward.
//! - Every call is bounded by `REQUEST_TIMEOUT_MS`, and a failed call asks
//!   the membership task to probe the nodes now.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use distcache_core::{Entry, Lookup, Version};
use distcache_wire::frame::{DeleteStatus, KeyedEntry, WriteStatus};
use distcache_wire::{Request, Response, WireError};
use futures_util::future::join_all;
use futures_util::stream::{FuturesUnordered, StreamExt};
use smallvec::SmallVec;

use super::{Master, NodeRef, Placement, RingView};
use crate::config::WriteQuorum;
use crate::http::ApiError;

/// Why one call to an auxiliary did not give a usable answer.
#[derive(Debug)]
pub(super) enum CallError {
    Wire(WireError),
    Refused {
        code: String,
        message: String,
    },
    /// The auxiliary has acted on a newer map than the one this request was
    /// routed by (epoch fencing).
    StaleEpoch(u64),
    /// This master's lease has lapsed: the call was not made.
    NoLease,
    /// The node is one this master stopped routing to by a map it could
    /// not tell it of, and it waits out the other masters' leases: the
    /// call was not made.
    Quarantined,
    Unexpected,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Wire(e) => write!(f, "{e}"),
            CallError::Refused { code, message } => write!(f, "{code}: {message}"),
            CallError::StaleEpoch(current) => {
                write!(f, "the auxiliary has seen the newer map epoch {current}")
            }
            CallError::NoLease => write!(f, "this master's lease has lapsed"),
            CallError::Quarantined => write!(
                f,
                "the node was dropped from the cluster map without hearing of it; calls wait until no master routes to it"
            ),
            CallError::Unexpected => write!(f, "unexpected answer"),
        }
    }
}

/// A key's nodes, in the order reads ask them. Inline up to four (two
/// rings of two replicas), so routing a request does not allocate.
pub(super) type Route = SmallVec<[Arc<NodeRef>; 4]>;

/// One item of a bulk write, validated.
pub struct WriteItem {
    /// The key.
    pub key: String,
    /// The value's JSON text.
    pub value: Bytes,
    /// Seconds to live; `None` = forever.
    pub ttl_secs: Option<u64>,
}

/// Why one attempt at an operation ended without an answer for the client.
pub(super) enum OpError {
    /// The answer: an error for the client.
    Api(ApiError),
    /// An auxiliary has acted on map epoch `.0`, newer than the one this
    /// attempt was routed by: catch up and route again.
    Fenced(u64),
}

impl From<ApiError> for OpError {
    fn from(e: ApiError) -> Self {
        OpError::Api(e)
    }
}

/// Attempts at one operation that auxiliaries may refuse as routed by an
/// old map: each refusal makes the master catch up with the map before it
/// routes again. The map moves rarely (a join, a leave, a failure), so a
/// third refusal in a row means this master cannot catch up.
const FENCED_ATTEMPTS: usize = 3;

/// One replica's answer to a write or delete.
enum Answer<T> {
    /// It applied the request; what it said.
    Applied(T),
    /// It holds this version, at least as high as the request's: nothing
    /// changed.
    Stale(Version),
}

/// What the replicas of one item of a bulk write answered.
#[derive(Default)]
struct WriteTally {
    /// Replicas that applied it or refused it as stale.
    answered: usize,
    /// The highest version held by a replica that refused it as stale.
    stale: Option<Version>,
    /// A replica refused it as too large.
    too_large: bool,
    /// Why a replica did not answer, if one did not.
    last_error: Option<String>,
    /// A replica refused it as routed by an older map than this epoch.
    fenced: Option<u64>,
    /// The key's leader (the route's first node) applied it.
    leader_applied: bool,
}

/// What one round of a write or delete to a key's replicas achieved.
struct Attempt<T> {
    /// The answers of the replicas that applied it.
    applied: Vec<T>,
    /// The highest version held by a replica that refused it as stale.
    stale: Option<Version>,
    /// The key's leader (the route's first node) applied it.
    leader_applied: bool,
}

fn unexpected_answer() -> ApiError {
    ApiError::unavailable(
        "unexpected_answer",
        "an auxiliary gave an unexpected answer",
    )
}

fn too_large() -> ApiError {
    ApiError::too_large(
        "value_too_large",
        "the entry is larger than an auxiliary's byte capacity (CACHE_MAX_BYTES)",
    )
}

/// A replica's answer to `Set`. An already-expired write counts as applied:
/// it acted as a delete at its version.
fn write_answer(resp: Response) -> Result<Answer<()>, ApiError> {
    match resp {
        Response::Written(WriteStatus::Stored | WriteStatus::Expired) => Ok(Answer::Applied(())),
        Response::Written(WriteStatus::Stale { held }) => Ok(Answer::Stale(held)),
        Response::Written(WriteStatus::TooLarge) => Err(too_large()),
        _ => Err(unexpected_answer()),
    }
}

/// A replica's answer to `Delete`: whether it held a live entry.
fn delete_answer(resp: Response) -> Result<Answer<bool>, ApiError> {
    match resp {
        Response::Deleted(DeleteStatus::Deleted) => Ok(Answer::Applied(true)),
        Response::Deleted(DeleteStatus::NotFound) => Ok(Answer::Applied(false)),
        Response::Deleted(DeleteStatus::Stale { held }) => Ok(Answer::Stale(held)),
        _ => Err(unexpected_answer()),
    }
}

/// Adds the live replicas of `key` in `placement` to `nodes`, once each.
/// What one round of reads found: the highest version and the node that
/// holds it (by position in the round), the nodes that answered, and those
/// of them that hold nothing.
#[derive(Default)]
struct Newest {
    best: Option<(usize, Lookup)>,
    answered_at: SmallVec<[usize; 4]>,
    absent_at: SmallVec<[usize; 4]>,
}

/// The replicas the target ring gives `key`: where a handoff puts it.
fn target_replicas(view: &RingView, key: &[u8]) -> Route {
    let mut nodes = Route::new();
    add_replicas(&mut nodes, view, &view.target, key);
    nodes
}

fn add_replicas(nodes: &mut Route, view: &RingView, placement: &Placement, key: &[u8]) {
    let n = view.replicas(placement.ring.members().len());
    for &idx in placement.ring.replicas_for(key, n).as_slice() {
        if let Some(node) = &placement.nodes[idx as usize] {
            if !nodes.iter().any(|known| known.id == node.id) {
                nodes.push(node.clone());
            }
        }
    }
}

/// True when the committed ring (while it differs from the target) gives
/// `key` replicas and none of them is live.
pub(super) fn committed_replicas_silent(view: &RingView, key: &[u8]) -> bool {
    let Some(committed) = &view.committed else {
        return false;
    };
    let n = view.replicas(committed.ring.members().len());
    let replicas = committed.ring.replicas_for(key, n);
    !replicas.is_empty()
        && replicas
            .as_slice()
            .iter()
            .all(|&i| committed.nodes[i as usize].is_none())
}

fn map_behind(epoch: u64) -> ApiError {
    ApiError::unavailable(
        "map_behind",
        format!(
            "an auxiliary has acted on cluster map epoch {epoch}, newer than this master's; \
             it is catching up (is it cut off from the other masters?)"
        ),
    )
}

pub(super) fn no_auxiliaries() -> ApiError {
    ApiError::unavailable("no_auxiliaries", "no auxiliary is up to serve this key")
}

pub(super) fn unavailable(
    what: &str,
    reached: usize,
    needed: usize,
    last: Option<CallError>,
) -> ApiError {
    if let Some(CallError::NoLease) = last {
        return super::lease::no_quorum();
    }
    let cause = last.map(|e| format!(": {e}")).unwrap_or_default();
    ApiError::unavailable(
        "replicas_unavailable",
        format!("{what} reached {reached} of {needed} replicas{cause}"),
    )
}

impl Master {
    pub(super) async fn call(
        &self,
        node: &NodeRef,
        epoch: u64,
        op: &'static str,
        req: Request,
    ) -> Result<Response, CallError> {
        if !self.lease.holds() && !self.lease.wait(self.config.request_timeout()).await {
            self.metrics.lease_refusals.inc();
            return Err(CallError::NoLease);
        }
        if self.lease.is_quarantined(&node.id) {
            return Err(CallError::Quarantined);
        }
        let started = Instant::now();
        let result = node.client.call_at(epoch, req).await;
        let outcome = match &result {
            Ok(Response::Error { .. }) => "refused",
            Ok(Response::StaleEpoch { .. }) => "fenced",
            Ok(_) => "ok",
            Err(WireError::Timeout { .. }) => "timeout",
            Err(_) => "error",
        };
        self.metrics
            .observe_aux_call(op, outcome, started.elapsed());
        match result {
            Ok(Response::Error { code, message }) => Err(CallError::Refused { code, message }),
            Ok(Response::StaleEpoch { current }) => {
                self.metrics.fenced.inc();
                Err(CallError::StaleEpoch(current))
            }
            Ok(resp) => Ok(resp),
            Err(e) => {
                tracing::debug!(node = %node.id, op, error = %e, "call to auxiliary failed");
                self.members.probe_soon();
                Err(CallError::Wire(e))
            }
        }
    }

    /// Runs `attempt` until it answers, catching up with the cluster map
    /// each time an auxiliary refuses it as routed by an older map, so that
    /// no request is answered from a map older than one an auxiliary has
    /// already acted on.
    pub(super) async fn fenced<T, Fut>(
        &self,
        mut attempt: impl FnMut() -> Fut,
    ) -> Result<T, ApiError>
    where
        Fut: std::future::Future<Output = Result<T, OpError>>,
    {
        let mut newest = 0;
        for _ in 0..FENCED_ATTEMPTS {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(OpError::Api(e)) => return Err(e),
                Err(OpError::Fenced(epoch)) => {
                    newest = newest.max(epoch);
                    self.catch_up(epoch).await?;
                }
            }
        }
        Err(map_behind(newest))
    }

    /// Waits, at most `REQUEST_TIMEOUT_MS`, until this master routes by a
    /// map of at least `epoch`.
    pub(super) async fn catch_up(&self, epoch: u64) -> Result<(), ApiError> {
        // A map this master applied but does not route by yet is one whose
        // dropped nodes it waits out the leases for (see `super::lease`):
        // that takes a lease and more, which a request may wait.
        let applied = self.consensus.applied().borrow().state.epoch();
        let wait_out = match self.lease.length() {
            Some(length) if applied >= epoch => {
                length + super::lease::LEASE_MARGIN + super::membership::DROPPED_FENCE_WAIT
            }
            _ => std::time::Duration::ZERO,
        };
        let deadline = Instant::now() + self.config.request_timeout() + wait_out;
        let mut applied = self.consensus.applied();
        while self.view.load().epoch < epoch {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(map_behind(epoch));
            }
            // The view follows the applied map a moment after it changes.
            let step = left.min(std::time::Duration::from_millis(5));
            let _ = tokio::time::timeout(step, applied.changed()).await;
        }
        Ok(())
    }

    /// A key's nodes: the target ring's live replicas, then, while keys
    /// move, the committed ring's. The first is the key's leader, where its
    /// commands run; writes and deletes go to all of them.
    ///
    /// Why the target ring's leader leads while keys move: a key's leader
    /// then changes when a round starts, never when it ends. A master that
    /// has applied the round's map brings the new leader up to date before
    /// each command by reading the key at every node that may hold it, the
    /// old leader included, at the new epoch; that read fences the old
    /// leader, so a master still on the older map can run nothing more
    /// there (it is refused, catches up, and comes to the new leader), and
    /// whatever ran there before is in the copy. When the round ends the
    /// leader stays the same. With the committed ring's leader first, the
    /// switch came at the end of the round, with no read of the old leader
    /// before the new one ran commands: for the moment between two masters
    /// applying the round's end, each ran commands at a different leader,
    /// and acknowledged increments and pushes were lost
    /// (`proc_commands_concurrency`, joins and leaves).
    pub(super) fn route(&self, view: &RingView, key: &[u8]) -> Result<Route, ApiError> {
        let mut nodes = target_replicas(view, key);
        if let Some(committed) = &view.committed {
            add_replicas(&mut nodes, view, committed, key);
        }
        if nodes.is_empty() {
            return Err(no_auxiliaries());
        }
        Ok(nodes)
    }

    /// [`Master::route`] plus, while keys move, every other node that may
    /// hold a copy of the key: the replicas of the rings of rounds given
    /// up, and the leaving nodes. Reads that ask them all keep the highest
    /// version.
    pub(super) fn read_route(&self, view: &RingView, key: &[u8]) -> Result<Route, ApiError> {
        let mut nodes = self.route(view, key)?;
        for ring in &view.abandoned {
            add_replicas(&mut nodes, view, ring, key);
        }
        for node in &view.leaving {
            if !nodes.iter().any(|known| known.id == node.id) {
                nodes.push(node.clone());
            }
        }
        Ok(nodes)
    }

    fn expiry(&self, now_ms: u64, ttl_secs: Option<u64>) -> Option<u64> {
        ttl_secs.map(|t| now_ms.saturating_add(t.saturating_mul(1000)))
    }

    /// The live entry for `key`, or `None` if no replica holds it: from
    /// the near cache when it is on and holds a fresh copy, else from the
    /// key's replicas (and then cached).
    pub async fn read(&self, key: String) -> Result<Option<Entry>, ApiError> {
        let Some(near) = &self.near else {
            let key = Bytes::from(key);
            return self.fenced(|| self.read_replicas(&key)).await;
        };
        let ticket = match near.get(&key, (self.clock)()) {
            Ok(entry) => {
                self.metrics.near_cache_hits.inc();
                return Ok(Some(entry));
            }
            Err(ticket) => ticket,
        };
        self.metrics.near_cache_misses.inc();
        let key_bytes = Bytes::copy_from_slice(key.as_bytes());
        let found = self.fenced(|| self.read_replicas(&key_bytes)).await?;
        if let Some(entry) = &found {
            near.insert(ticket, &key, entry);
        }
        Ok(found)
    }

    /// Forgets `key` in the near cache, after a write or delete of it
    /// through this master.
    pub(super) fn invalidate_near(&self, key: &[u8]) {
        if let Some(near) = &self.near {
            // Keys reaching the data path are valid UTF-8.
            if let Ok(key) = std::str::from_utf8(key) {
                near.invalidate(key);
            }
        }
    }

    /// Empties the near cache (after a restore).
    pub(super) fn clear_near(&self) {
        if let Some(near) = &self.near {
            near.clear();
        }
    }

    /// The live entry for `key` from its replicas.
    ///
    /// In a steady ring the leader's answer is the answer, and the next
    /// replica is asked only when a call fails. While keys move, a replica
    /// may lack a key that has not reached it yet, or (a node back from an
    /// outage) hold a copy older than one acknowledged since: then every
    /// replica of both rings is asked at once and the highest version wins,
    /// a tombstone included, so a read never returns a value older than a
    /// write or delete acknowledged before it began.
    ///
    /// When every replica the committed ring gives the key is silent, the
    /// key's copies are there and the nodes asked may never have held it:
    /// a value or a delete found elsewhere (written since) is the answer,
    /// but finding nothing is not a miss, it is `503` (see "Waiting for
    /// silent copies" in `distcache_core::cluster`).
    pub(super) async fn read_replicas(&self, key: &Bytes) -> Result<Option<Entry>, OpError> {
        Ok(self.lookup_replicas(key).await?.into_entry())
    }

    /// As [`Master::read_replicas`], telling a delete within its grace
    /// from nothing (WATCH's read).
    pub(super) async fn lookup_replicas(&self, key: &Bytes) -> Result<Lookup, OpError> {
        let view = self.view.load_full();
        let nodes = self.read_route(&view, key)?;
        let key = key.clone();
        if committed_replicas_silent(&view, &key) {
            return match self.read_newest(&view, &nodes, key).await? {
                Lookup::Absent => Err(OpError::Api(ApiError::unavailable(
                    "replicas_unavailable",
                    "every auxiliary that holds this key is down; it can be read when one is back",
                ))),
                found => Ok(found),
            };
        }
        if view.rebalancing() && nodes.len() > 1 {
            return self.read_newest(&view, &nodes, key).await;
        }
        let mut last_error = None;
        for (i, node) in nodes.iter().enumerate() {
            let answer = self
                .call(node, view.epoch, "get", Request::Get { key: key.clone() })
                .await;
            match self.read_answer(answer) {
                Ok(found) => {
                    if i > 0 {
                        self.metrics.read_fallbacks.inc();
                    }
                    return Ok(found);
                }
                Err(CallError::StaleEpoch(current)) => return Err(OpError::Fenced(current)),
                Err(e) => last_error = Some(e),
            }
        }
        Err(unavailable("the read", 0, nodes.len(), last_error).into())
    }

    /// Asks every node in `nodes` for `key` at once and answers with the
    /// highest version any of them holds, value or delete.
    ///
    /// While keys move, a copy can move during the read: a handoff stores
    /// it at the key's target replicas, then drops it where it was. A
    /// target replica may answer before the copy arrives, and the node it
    /// came from after it is dropped, so both miss it. So when a node
    /// outside the target ring's replicas answers that it holds nothing,
    /// the target replicas are asked once more: a drop that came before
    /// that answer came after the copy was stored where the second read
    /// finds it.
    pub(super) async fn read_newest(
        &self,
        view: &RingView,
        nodes: &Route,
        key: Bytes,
    ) -> Result<Lookup, OpError> {
        let target = target_replicas(view, &key);
        let (mut newest, mut last_error) = self.read_round(nodes.iter(), view.epoch, &key).await?;
        // Target replicas come first in `nodes`.
        let mut target_answered = newest.answered_at.iter().any(|&i| i < target.len());
        let moved_during_read = newest.absent_at.iter().any(|&i| i >= target.len());
        if moved_during_read {
            let (again, error) = self.read_round(target.iter(), view.epoch, &key).await?;
            target_answered |= !again.answered_at.is_empty();
            // A position in `target` is the same node's position in `nodes`.
            if let Some((i, found)) = again.best {
                let newer = match &newest.best {
                    None => true,
                    Some((_, best)) => found.version() > best.version(),
                };
                if newer {
                    newest.best = Some((i, found));
                }
            }
            last_error = last_error.or(error);
        }
        // Only the target replicas take every write once the round that
        // moves the key is committed: without one of them, what the other
        // nodes hold (or no longer hold) may be older than the key is.
        if !target_answered && !target.is_empty() {
            return Err(unavailable("the read", 0, target.len(), last_error).into());
        }
        match newest.best {
            Some((i, found)) => {
                if i > 0 {
                    self.metrics.read_fallbacks.inc();
                }
                Ok(found)
            }
            None => Err(unavailable("the read", 0, nodes.len(), last_error).into()),
        }
    }

    /// One round of [`Master::read_newest`]: every node asked at once.
    async fn read_round(
        &self,
        nodes: impl Iterator<Item = &Arc<NodeRef>>,
        epoch: u64,
        key: &Bytes,
    ) -> Result<(Newest, Option<CallError>), OpError> {
        let calls = nodes.map(|node| {
            let req = Request::Get { key: key.clone() };
            async move { self.read_answer(self.call(node, epoch, "get", req).await) }
        });
        let mut newest = Newest::default();
        let mut last_error = None;
        for (i, answer) in join_all(calls).await.into_iter().enumerate() {
            match answer {
                Ok(found) => {
                    newest.answered_at.push(i);
                    if matches!(found, Lookup::Absent) {
                        newest.absent_at.push(i);
                    }
                    let newer = match &newest.best {
                        None => true,
                        Some((_, best)) => found.version() > best.version(),
                    };
                    if newer {
                        newest.best = Some((i, found));
                    }
                }
                Err(CallError::StaleEpoch(current)) => return Err(OpError::Fenced(current)),
                Err(e) => last_error = Some(e),
            }
        }
        Ok((newest, last_error))
    }

    /// What one replica's answer to `Get` says it holds. Every version met
    /// moves this master's clock past it.
    pub(super) fn read_answer(
        &self,
        answer: Result<Response, CallError>,
    ) -> Result<Lookup, CallError> {
        let found = match answer? {
            Response::Value(entry) => Lookup::Live(entry),
            Response::Tombstone(version) => Lookup::Deleted(version),
            Response::NotFound => Lookup::Absent,
            _ => return Err(CallError::Unexpected),
        };
        if let Some(version) = found.version() {
            self.versions.observe(version);
        }
        Ok(found)
    }

    /// Stores `value` under `key` on the key's replicas.
    pub async fn write(
        self: &Arc<Self>,
        key: String,
        value: Bytes,
        ttl_secs: Option<u64>,
    ) -> Result<(), ApiError> {
        let expires_at_ms = self.expiry((self.clock)(), ttl_secs);
        let key = Bytes::from(key);
        let request = |version| Request::Set {
            key: key.clone(),
            entry: Entry {
                value: value.clone(),
                expires_at_ms,
                version,
            },
        };
        let result = self
            .fenced(|| async {
                let view = self.view.load_full();
                let nodes = self.route(&view, &key)?;
                self.replicate(
                    nodes,
                    view.epoch,
                    &key,
                    "set",
                    "the write",
                    request,
                    write_answer,
                )
                .await
            })
            .await;
        self.invalidate_near(&key);
        result.map(|_| ())
    }

    /// Deletes `key` on the key's replicas; true if any held it.
    pub async fn remove(self: &Arc<Self>, key: String) -> Result<bool, ApiError> {
        let key = Bytes::from(key);
        let request = |version| Request::Delete {
            key: key.clone(),
            version,
        };
        let result = self
            .fenced(|| async {
                let view = self.view.load_full();
                let nodes = self.route(&view, &key)?;
                self.replicate(
                    nodes,
                    view.epoch,
                    &key,
                    "delete",
                    "the delete",
                    request,
                    delete_answer,
                )
                .await
            })
            .await;
        self.invalidate_near(&key);
        Ok(result?.into_iter().any(|existed| existed))
    }

    /// Stamps a version, sends `request(version)` to every node and applies
    /// the write quorum. Returns the answers of the replicas that applied it.
    ///
    /// A replica that already holds a version at least as high refuses the
    /// request as stale and says which version it holds. When the key's
    /// leader applied the request and now holds a version at least as high
    /// as every one refused over ([`Master::leader_went_on`]), what the
    /// other replicas hold came after this write: commands run at the
    /// leader, on top of it (an INCR that read its value), and reached
    /// them first. The write is then done, ordered before those. Otherwise
    /// nothing refused is acknowledged: the clock moves past the highest
    /// version held and the request goes out again, newly stamped. Once
    /// the first attempt has heard every replica, the new version is above
    /// everything that was acknowledged before this call began (an
    /// acknowledged write or delete is on every replica), so a replica that
    /// refuses the second attempt holds an operation that ran concurrently
    /// with this one; this one then counts as done and ordered just before
    /// it, as if it had come first.
    #[allow(clippy::too_many_arguments)]
    async fn replicate<T, F>(
        self: &Arc<Self>,
        nodes: Route,
        epoch: u64,
        key: &Bytes,
        op: &'static str,
        what: &str,
        request: impl Fn(Version) -> Request,
        accept: F,
    ) -> Result<Vec<T>, OpError>
    where
        T: Send + 'static,
        F: Fn(Response) -> Result<Answer<T>, ApiError> + Copy + Send + 'static,
    {
        let first = self.versions.tick((self.clock)());
        let attempt = self
            .replicate_once(nodes.clone(), epoch, op, what, request(first), accept)
            .await?;
        let Some(held) = attempt.stale else {
            return Ok(attempt.applied);
        };
        self.versions.observe(held);
        if self
            .leader_went_on(attempt.leader_applied, &nodes[0], epoch, key, held)
            .await?
        {
            return Ok(attempt.applied);
        }
        self.metrics.restamped.inc();
        let second = self.versions.tick((self.clock)());
        let attempt = self
            .replicate_once(nodes, epoch, op, what, request(second), accept)
            .await?;
        if attempt.stale.is_some() {
            self.metrics.superseded.inc();
        }
        Ok(attempt.applied)
    }

    /// Whether `leader`, when it applied a write that another replica
    /// refused as stale for holding `held` (`leader_applied`), now holds
    /// `held` or a higher version: then that version came after the write
    /// at the leader (a version at least `held` there before would have
    /// refused it too), so the write is in the history every replica is
    /// catching up to, and must not be written again over what was built
    /// on it. Counted as superseded when so.
    async fn leader_went_on(
        &self,
        leader_applied: bool,
        leader: &NodeRef,
        epoch: u64,
        key: &Bytes,
        held: Version,
    ) -> Result<bool, OpError> {
        if !leader_applied {
            return Ok(false);
        }
        let now = self.copy_at(leader, epoch, key).await?;
        let went_on = now.version().is_some_and(|version| version >= held);
        if went_on {
            self.metrics.superseded.inc();
        }
        Ok(went_on)
    }

    /// Sends `req` to every node once and applies the write quorum: with
    /// `all` every node must answer (applied or stale), with `one` the first
    /// replica that applies it answers the client unless a stale answer
    /// came first, and the rest complete in the background.
    async fn replicate_once<T, F>(
        self: &Arc<Self>,
        nodes: Route,
        epoch: u64,
        op: &'static str,
        what: &str,
        req: Request,
        accept: F,
    ) -> Result<Attempt<T>, OpError>
    where
        T: Send + 'static,
        F: Fn(Response) -> Result<Answer<T>, ApiError> + Copy + Send + 'static,
    {
        let needed = nodes.len();
        if let [node] = nodes.as_slice() {
            // One replica: no fan-out to set up.
            let answer = match self.call(node, epoch, op, req).await {
                Ok(resp) => accept(resp)?,
                Err(CallError::StaleEpoch(current)) => return Err(OpError::Fenced(current)),
                Err(e) => return Err(unavailable(what, 0, 1, Some(e)).into()),
            };
            return Ok(match answer {
                Answer::Applied(v) => Attempt {
                    applied: vec![v],
                    stale: None,
                    leader_applied: true,
                },
                Answer::Stale(held) => Attempt {
                    applied: Vec::new(),
                    stale: Some(held),
                    leader_applied: false,
                },
            });
        }
        let mut calls: FuturesUnordered<_> = nodes
            .into_iter()
            .enumerate()
            .map(|(i, node)| {
                let req = req.clone();
                let master = self.clone();
                async move { (i == 0, master.call(&node, epoch, op, req).await) }
            })
            .collect();
        let mut attempt = Attempt {
            applied: Vec::with_capacity(needed),
            stale: None,
            leader_applied: false,
        };
        let mut answered = 0;
        let mut last_error = None;
        let mut refusal = None;
        let mut fenced = None;
        while let Some((leader, result)) = calls.next().await {
            match result.map(accept) {
                Ok(Ok(Answer::Applied(v))) => {
                    attempt.applied.push(v);
                    attempt.leader_applied |= leader;
                    answered += 1;
                }
                Ok(Ok(Answer::Stale(held))) => {
                    attempt.stale = attempt.stale.max(Some(held));
                    answered += 1;
                }
                Ok(Err(e)) => refusal = Some(e),
                Err(CallError::StaleEpoch(current)) => fenced = fenced.max(Some(current)),
                Err(e) => last_error = Some(e),
            }
            if self.quorum() == WriteQuorum::One
                && fenced.is_none()
                && !attempt.applied.is_empty()
                && attempt.stale.is_none()
            {
                // Acknowledged: let the other replicas finish in the background.
                if !calls.is_empty() {
                    self.shutdown
                        .spawn(async move { while calls.next().await.is_some() {} });
                }
                return Ok(attempt);
            }
        }
        // Routed by an old map: replicas of the new one may have been left
        // out, so nothing here counts. The operation goes again, stamped
        // anew, by the new map.
        if let Some(current) = fenced {
            return Err(OpError::Fenced(current));
        }
        if answered == needed {
            return Ok(attempt);
        }
        if let Some(refusal) = refusal {
            return Err(refusal.into());
        }
        if self.quorum() == WriteQuorum::One && answered > 0 {
            return Ok(attempt);
        }
        Err(unavailable(what, attempt.applied.len(), needed, last_error).into())
    }

    /// Stores many items; one result per item, in order. As for one write,
    /// an item a replica refused as stale is stamped again past the version
    /// it holds and sent once more (see [`Master::replicate`]).
    pub async fn write_many(
        self: &Arc<Self>,
        items: Vec<WriteItem>,
    ) -> Result<Vec<Result<(), ApiError>>, ApiError> {
        let now = (self.clock)();
        // Versions are stamped by each attempt: one routed again after an
        // auxiliary refused it as routed by an old map goes out anew.
        let entries: Vec<KeyedEntry> = items
            .into_iter()
            .map(|item| KeyedEntry {
                key: Bytes::from(item.key),
                entry: Entry {
                    value: item.value,
                    expires_at_ms: self.expiry(now, item.ttl_secs),
                    version: Version::ZERO,
                },
            })
            .collect();
        let result = self.fenced(|| self.write_many_once(&entries)).await;
        for entry in &entries {
            self.invalidate_near(&entry.key);
        }
        result
    }

    /// One attempt at [`Master::write_many`], routed by the current map.
    async fn write_many_once(
        &self,
        entries: &[KeyedEntry],
    ) -> Result<Vec<Result<(), ApiError>>, OpError> {
        let now = (self.clock)();
        let mut entries = entries.to_vec();
        for entry in &mut entries {
            entry.entry.version = self.versions.tick(now);
        }
        let view = self.view.load_full();
        let routes: Vec<Route> = entries
            .iter()
            .map(|e| self.route(&view, &e.key))
            .collect::<Result<_, _>>()?;
        let everything: Vec<usize> = (0..entries.len()).collect();
        let mut tallies = self
            .write_round(view.epoch, &routes, &entries, &everything)
            .await;
        if let Some(current) = tallies.iter().filter_map(|t| t.fenced).max() {
            return Err(OpError::Fenced(current));
        }
        // A refused item its leader applied and went on from is done,
        // ordered before what came after it there (see
        // [`Master::replicate`]); the leaders are asked together.
        let stale: Vec<usize> = everything
            .into_iter()
            .filter(|&i| tallies[i].stale.is_some())
            .collect();
        let went_on = join_all(stale.iter().map(|&i| {
            let tally = &tallies[i];
            let held = tally.stale.unwrap_or_default();
            self.leader_went_on(
                tally.leader_applied,
                &routes[i][0],
                view.epoch,
                &entries[i].key,
                held,
            )
        }))
        .await;
        let mut refused = Vec::with_capacity(stale.len());
        for (i, went_on) in stale.into_iter().zip(went_on) {
            if went_on? {
                self.versions.observe(tallies[i].stale.unwrap_or_default());
            } else {
                refused.push(i);
            }
        }
        if !refused.is_empty() {
            for &i in &refused {
                self.versions.observe(tallies[i].stale.unwrap_or_default());
            }
            let now = (self.clock)();
            for &i in &refused {
                entries[i].entry.version = self.versions.tick(now);
            }
            self.metrics.restamped.inc_by(refused.len() as u64);
            let again = self
                .write_round(view.epoch, &routes, &entries, &refused)
                .await;
            if let Some(current) = again.iter().filter_map(|t| t.fenced).max() {
                return Err(OpError::Fenced(current));
            }
            for (&i, tally) in refused.iter().zip(again) {
                if tally.stale.is_some() {
                    self.metrics.superseded.inc();
                }
                tallies[i] = tally;
            }
        }
        let quorum = self.quorum();
        Ok(tallies
            .into_iter()
            .zip(&routes)
            .map(|(tally, route)| {
                let needed = route.len();
                let enough = match quorum {
                    WriteQuorum::All => tally.answered == needed,
                    WriteQuorum::One => tally.answered >= 1,
                };
                if enough {
                    Ok(())
                } else if tally.too_large {
                    Err(too_large())
                } else {
                    let cause = tally
                        .last_error
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default();
                    Err(ApiError::unavailable(
                        "replicas_unavailable",
                        format!(
                            "the write reached {} of {needed} replicas{cause}",
                            tally.answered
                        ),
                    ))
                }
            })
            .collect())
    }

    /// Sends the entries at `positions` to their replicas, one `SetMany` per
    /// auxiliary, and tallies the answers: one tally per position, in order.
    async fn write_round(
        &self,
        epoch: u64,
        routes: &[Route],
        entries: &[KeyedEntry],
        positions: &[usize],
    ) -> Vec<WriteTally> {
        /// One auxiliary's share: its connection, the tallies its answers
        /// count toward, and the entries it is sent.
        struct Batch {
            node: Arc<NodeRef>,
            slots: Vec<usize>,
            /// Whether the node leads each entry's key.
            leads: Vec<bool>,
            entries: Vec<KeyedEntry>,
        }
        let mut batches: HashMap<&str, Batch> = HashMap::new();
        for (slot, &i) in positions.iter().enumerate() {
            for (place, node) in routes[i].iter().enumerate() {
                let batch = batches.entry(node.id.as_str()).or_insert_with(|| Batch {
                    node: node.clone(),
                    slots: Vec::new(),
                    leads: Vec::new(),
                    entries: Vec::new(),
                });
                batch.slots.push(slot);
                batch.leads.push(place == 0);
                batch.entries.push(entries[i].clone());
            }
        }
        let calls = batches.into_values().map(|batch| async move {
            let req = Request::SetMany {
                entries: batch.entries,
            };
            (
                batch.slots,
                batch.leads,
                self.call(&batch.node, epoch, "set_many", req).await,
            )
        });
        let mut tallies: Vec<WriteTally> =
            positions.iter().map(|_| WriteTally::default()).collect();
        for (slots, leads, result) in join_all(calls).await {
            match result {
                Ok(Response::WrittenMany(statuses)) if statuses.len() == slots.len() => {
                    for ((&slot, leads), status) in slots.iter().zip(leads).zip(statuses) {
                        let tally = &mut tallies[slot];
                        match status {
                            WriteStatus::Stored | WriteStatus::Expired => {
                                tally.answered += 1;
                                tally.leader_applied |= leads;
                            }
                            WriteStatus::Stale { held } => {
                                tally.answered += 1;
                                tally.stale = tally.stale.max(Some(held));
                            }
                            WriteStatus::TooLarge => tally.too_large = true,
                        }
                    }
                }
                Ok(_) => {
                    for &slot in &slots {
                        tallies[slot].last_error = Some("unexpected answer".into());
                    }
                }
                Err(CallError::StaleEpoch(current)) => {
                    for &slot in &slots {
                        tallies[slot].fenced = Some(current);
                    }
                }
                Err(e) => {
                    let e = e.to_string();
                    for &slot in &slots {
                        tallies[slot].last_error = Some(e.clone());
                    }
                }
            }
        }
        tallies
    }

    /// Reads many keys. Returns each key's entry (or `None` if missing) and
    /// how many keys no replica could answer. As for one read: in a steady
    /// ring each key's leader answers and the next replica is asked only
    /// after a failure; while keys move every replica is asked and the
    /// highest version wins.
    pub async fn read_many(
        &self,
        keys: Vec<String>,
    ) -> Result<(Vec<Option<Entry>>, usize), ApiError> {
        let keys: Vec<Bytes> = keys.into_iter().map(Bytes::from).collect();
        self.fenced(|| self.read_many_once(&keys)).await
    }

    /// One attempt at [`Master::read_many`], routed by the current map.
    async fn read_many_once(&self, keys: &[Bytes]) -> Result<(Vec<Option<Entry>>, usize), OpError> {
        let view = self.view.load_full();
        let ask_every_replica = view.rebalancing();
        let mut routes: Vec<Route> = keys
            .iter()
            .map(|k| self.read_route(&view, k))
            .collect::<Result<_, _>>()?;
        // Where each route's target replicas start: all of it in a settled
        // ring.
        let mut targets_from = vec![0; keys.len()];
        if ask_every_replica {
            // Rounds run one after the other, and a copy may move meanwhile
            // (see [`Master::read_newest`]): each key's other nodes are asked
            // before its target replicas, so that a copy dropped before an
            // old node answered was stored where a later round looks. The
            // target replicas lead each route: they go to its end.
            for ((route, key), from) in routes.iter_mut().zip(keys).zip(&mut targets_from) {
                let targets = target_replicas(&view, key).len();
                route.rotate_left(targets);
                *from = route.len() - targets;
            }
        }
        let mut target_answered = vec![false; keys.len()];
        let mut newest: Vec<Option<Lookup>> = vec![None; keys.len()];
        let mut pending: Vec<usize> = (0..keys.len()).collect();
        let rounds = routes.iter().map(|r| r.len()).max().unwrap_or(0);
        for round in 0..rounds {
            let mut batches: HashMap<&str, (Arc<NodeRef>, Vec<usize>)> = HashMap::new();
            for &i in &pending {
                if let Some(node) = routes[i].get(round) {
                    batches
                        .entry(node.id.as_str())
                        .or_insert_with(|| (node.clone(), Vec::new()))
                        .1
                        .push(i);
                }
            }
            if batches.is_empty() {
                break;
            }
            let calls = batches.into_values().map(|(node, positions)| {
                let req = Request::GetMany {
                    keys: positions.iter().map(|&i| keys[i].clone()).collect(),
                };
                let epoch = view.epoch;
                async move { (positions, self.call(&node, epoch, "get_many", req).await) }
            });
            let mut failed = Vec::new();
            for (positions, result) in join_all(calls).await {
                match result {
                    Ok(Response::Values(slots)) if slots.len() == positions.len() => {
                        for (&i, found) in positions.iter().zip(slots) {
                            target_answered[i] |= round >= targets_from[i];
                            if let Some(version) = found.version() {
                                self.versions.observe(version);
                            }
                            let newer = match &newest[i] {
                                None => true,
                                Some(best) => found.version() > best.version(),
                            };
                            if newer {
                                newest[i] = Some(found);
                            }
                        }
                    }
                    Err(CallError::StaleEpoch(current)) => return Err(OpError::Fenced(current)),
                    _ => failed.extend(positions),
                }
            }
            if !ask_every_replica {
                pending = failed;
            }
        }
        // As for one read: without a target replica's answer, what the
        // other nodes said may be older than the key is.
        for (found, answered) in newest.iter_mut().zip(target_answered) {
            if !answered {
                *found = None;
            }
        }
        let unanswered = newest.iter().filter(|n| n.is_none()).count();
        if unanswered == keys.len() && !keys.is_empty() {
            return Err(unavailable("the bulk read", 0, rounds, None).into());
        }
        let found = newest
            .into_iter()
            .map(|n| n.and_then(Lookup::into_entry))
            .collect();
        Ok((found, unanswered))
    }
}
