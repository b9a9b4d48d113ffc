//! The data path: every key request goes to the key's replicas by the ring.
//!
//! - Reads go to the leader and fall back to the next replica on an error or
//!   timeout. While keys move (see [`RingView`]) the committed ring's
//!   replicas are asked first, and a miss falls back to the next replica
//!   and then to the target ring's replicas.
//! - Writes and deletes carry a version from this master's hybrid clock and
//!   go to every replica at once; with `WRITE_QUORUM=all` every replica must
//!   store it, with `one` the first acknowledgement answers the client and
//!   the rest complete in the background.
//! - Every call is bounded by `REQUEST_TIMEOUT_MS`, and a failed call asks
//!   the membership task to probe the nodes now.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use distcache_core::Entry;
use distcache_wire::frame::{KeyedEntry, WriteStatus};
use distcache_wire::{Request, Response, WireError};
use futures_util::future::join_all;
use futures_util::stream::{FuturesUnordered, StreamExt};
use smallvec::SmallVec;

use super::{Master, NodeRef, RingView};
use crate::config::WriteQuorum;
use crate::http::ApiError;

/// Why one call to an auxiliary did not give a usable answer.
#[derive(Debug)]
enum CallError {
    Wire(WireError),
    Refused { code: String, message: String },
    Unexpected,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Wire(e) => write!(f, "{e}"),
            CallError::Refused { code, message } => write!(f, "{code}: {message}"),
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

fn no_auxiliaries() -> ApiError {
    ApiError::unavailable("no_auxiliaries", "no auxiliary is up to serve this key")
}

fn unavailable(what: &str, reached: usize, needed: usize, last: Option<CallError>) -> ApiError {
    let cause = last.map(|e| format!(": {e}")).unwrap_or_default();
    ApiError::unavailable(
        "replicas_unavailable",
        format!("{what} reached {reached} of {needed} replicas{cause}"),
    )
}

impl Master {
    async fn call(
        &self,
        node: &NodeRef,
        op: &'static str,
        req: Request,
    ) -> Result<Response, CallError> {
        let started = Instant::now();
        let result = node.client.call(req).await;
        let outcome = match &result {
            Ok(Response::Error { .. }) => "refused",
            Ok(_) => "ok",
            Err(WireError::Timeout { .. }) => "timeout",
            Err(_) => "error",
        };
        self.metrics
            .observe_aux_call(op, outcome, started.elapsed());
        match result {
            Ok(Response::Error { code, message }) => Err(CallError::Refused { code, message }),
            Ok(resp) => Ok(resp),
            Err(e) => {
                tracing::debug!(node = %node.id, op, error = %e, "call to auxiliary failed");
                self.members.probe_soon();
                Err(CallError::Wire(e))
            }
        }
    }

    /// A key's nodes in the order reads ask them: the committed ring's live
    /// replicas while keys move, then the target ring's replicas. Writes go
    /// to all of them.
    pub(super) fn route(&self, view: &RingView, key: &[u8]) -> Result<Route, ApiError> {
        let mut nodes = Route::new();
        if let Some(committed) = &view.committed {
            let n = self.replicas(committed.ring.members().len());
            for &idx in committed.ring.replicas_for(key, n).as_slice() {
                if let Some(node) = &committed.nodes[idx as usize] {
                    nodes.push(node.clone());
                }
            }
        }
        let target = &view.target;
        let n = self.replicas(target.ring.members().len());
        for &idx in target.ring.replicas_for(key, n).as_slice() {
            if let Some(node) = &target.nodes[idx as usize] {
                if !nodes.iter().any(|known| known.id == node.id) {
                    nodes.push(node.clone());
                }
            }
        }
        if nodes.is_empty() {
            return Err(no_auxiliaries());
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
            return self.read_replicas(key).await;
        };
        let ticket = match near.get(&key, (self.clock)()) {
            Ok(entry) => {
                self.metrics.near_cache_hits.inc();
                return Ok(Some(entry));
            }
            Err(ticket) => ticket,
        };
        self.metrics.near_cache_misses.inc();
        let found = self.read_replicas(key.clone()).await?;
        if let Some(entry) = &found {
            near.insert(ticket, &key, entry);
        }
        Ok(found)
    }

    /// Forgets `key` in the near cache, after a write or delete of it
    /// through this master.
    fn invalidate_near(&self, key: &[u8]) {
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
    async fn read_replicas(&self, key: String) -> Result<Option<Entry>, ApiError> {
        let view = self.view.load_full();
        let nodes = self.route(&view, key.as_bytes())?;
        let key_bytes = Bytes::from(key);
        // In a steady ring the leader's miss is the answer; while keys move a
        // miss may only mean the key has not arrived yet.
        let fall_back_on_miss = view.rebalancing();
        let mut answered = false;
        let mut last_error = None;
        for (i, node) in nodes.iter().enumerate() {
            match self
                .call(
                    node,
                    "get",
                    Request::Get {
                        key: key_bytes.clone(),
                    },
                )
                .await
            {
                Ok(Response::Value(entry)) => {
                    if i > 0 {
                        self.metrics.read_fallbacks.inc();
                    }
                    return Ok(Some(entry));
                }
                Ok(Response::NotFound) => {
                    answered = true;
                    if !fall_back_on_miss {
                        return Ok(None);
                    }
                }
                Ok(_) => last_error = Some(CallError::Unexpected),
                Err(e) => last_error = Some(e),
            }
        }
        if answered {
            Ok(None)
        } else {
            Err(unavailable("the read", 0, nodes.len(), last_error))
        }
    }

    /// Stores `value` under `key` on the key's replicas.
    pub async fn write(
        self: &Arc<Self>,
        key: String,
        value: Bytes,
        ttl_secs: Option<u64>,
    ) -> Result<(), ApiError> {
        let view = self.view.load_full();
        let nodes = self.route(&view, key.as_bytes())?;
        let now = (self.clock)();
        let entry = Entry {
            value,
            expires_at_ms: self.expiry(now, ttl_secs),
            version: self.versions.tick(now),
        };
        let key = Bytes::from(key);
        let req = Request::Set {
            key: key.clone(),
            entry,
        };
        let accept = |resp: &Response| match resp {
            Response::Written(WriteStatus::TooLarge) => Err(ApiError::too_large(
                "value_too_large",
                "the entry is larger than an auxiliary's byte capacity (CACHE_MAX_BYTES)",
            )),
            Response::Written(_) => Ok(()),
            _ => Err(ApiError::unavailable(
                "unexpected_answer",
                "an auxiliary gave an unexpected answer",
            )),
        };
        let result = self.replicate(nodes, "set", req, "the write", accept).await;
        self.invalidate_near(&key);
        result.map(|_| ())
    }

    /// Deletes `key` on the key's replicas; true if any held it.
    pub async fn remove(self: &Arc<Self>, key: String) -> Result<bool, ApiError> {
        let view = self.view.load_full();
        let nodes = self.route(&view, key.as_bytes())?;
        let now = (self.clock)();
        let key = Bytes::from(key);
        let req = Request::Delete {
            key: key.clone(),
            version: self.versions.tick(now),
        };
        let accept = |resp: &Response| match resp {
            Response::Deleted { existed, .. } => Ok(*existed),
            _ => Err(ApiError::unavailable(
                "unexpected_answer",
                "an auxiliary gave an unexpected answer",
            )),
        };
        let result = self
            .replicate(nodes, "delete", req, "the delete", accept)
            .await;
        self.invalidate_near(&key);
        Ok(result?.into_iter().any(|e| e))
    }

    /// Sends `req` to every node and applies the write quorum. Returns the
    /// accepted answers (all of them with `all`, at least one with `one`).
    async fn replicate<T, F>(
        self: &Arc<Self>,
        nodes: Route,
        op: &'static str,
        req: Request,
        what: &str,
        accept: F,
    ) -> Result<Vec<T>, ApiError>
    where
        T: Send + 'static,
        F: Fn(&Response) -> Result<T, ApiError>,
    {
        let needed = nodes.len();
        if let [node] = nodes.as_slice() {
            // One replica: no fan-out to set up.
            return match self.call(node, op, req).await {
                Ok(resp) => accept(&resp).map(|v| vec![v]),
                Err(e) => Err(unavailable(what, 0, 1, Some(e))),
            };
        }
        let mut calls: FuturesUnordered<_> = nodes
            .into_iter()
            .map(|node| {
                let req = req.clone();
                let master = self.clone();
                async move { master.call(&node, op, req).await }
            })
            .collect();
        let mut accepted = Vec::with_capacity(needed);
        let mut last_error = None;
        let mut refusal = None;
        while let Some(result) = calls.next().await {
            match result {
                Ok(resp) => match accept(&resp) {
                    Ok(v) => accepted.push(v),
                    Err(e) => refusal = Some(e),
                },
                Err(e) => last_error = Some(e),
            }
            if self.quorum() == WriteQuorum::One && !accepted.is_empty() {
                // Acknowledged: let the other replicas finish in the background.
                if !calls.is_empty() {
                    self.shutdown
                        .spawn(async move { while calls.next().await.is_some() {} });
                }
                return Ok(accepted);
            }
        }
        if accepted.len() == needed {
            return Ok(accepted);
        }
        if let Some(refusal) = refusal {
            return Err(refusal);
        }
        Err(unavailable(what, accepted.len(), needed, last_error))
    }

    /// Stores many items; one result per item, in order.
    pub async fn write_many(
        self: &Arc<Self>,
        items: Vec<WriteItem>,
    ) -> Result<Vec<Result<(), ApiError>>, ApiError> {
        let view = self.view.load_full();
        let now = (self.clock)();
        let mut needed = Vec::with_capacity(items.len());
        type Batch = (Arc<NodeRef>, Vec<usize>, Vec<KeyedEntry>);
        let mut batches: HashMap<String, Batch> = HashMap::new();
        let mut written = Vec::with_capacity(if self.near.is_some() { items.len() } else { 0 });
        for (i, item) in items.into_iter().enumerate() {
            let nodes = self.route(&view, item.key.as_bytes())?;
            needed.push(nodes.len());
            let keyed = KeyedEntry {
                key: Bytes::from(item.key),
                entry: Entry {
                    value: item.value,
                    expires_at_ms: self.expiry(now, item.ttl_secs),
                    version: self.versions.tick(now),
                },
            };
            if self.near.is_some() {
                written.push(keyed.key.clone());
            }
            for node in nodes {
                let batch = batches
                    .entry(node.id.clone())
                    .or_insert_with(|| (node.clone(), Vec::new(), Vec::new()));
                batch.1.push(i);
                batch.2.push(keyed.clone());
            }
        }
        let mut acks = vec![0usize; needed.len()];
        let mut too_large = vec![false; needed.len()];
        let mut last_error: Vec<Option<String>> = vec![None; needed.len()];
        let calls = batches
            .into_values()
            .map(|(node, positions, entries)| async move {
                let result = self
                    .call(&node, "set_many", Request::SetMany { entries })
                    .await;
                (positions, result)
            });
        let answers = join_all(calls).await;
        for key in &written {
            self.invalidate_near(key);
        }
        for (positions, result) in answers {
            match result {
                Ok(Response::WrittenMany(statuses)) if statuses.len() == positions.len() => {
                    for (&i, status) in positions.iter().zip(statuses) {
                        match status {
                            WriteStatus::TooLarge => too_large[i] = true,
                            _ => acks[i] += 1,
                        }
                    }
                }
                Ok(_) => {
                    for &i in &positions {
                        last_error[i] = Some("unexpected answer".into());
                    }
                }
                Err(e) => {
                    let e = e.to_string();
                    for &i in &positions {
                        last_error[i] = Some(e.clone());
                    }
                }
            }
        }
        let quorum = self.quorum();
        Ok((0..needed.len())
            .map(|i| {
                let enough = match quorum {
                    WriteQuorum::All => acks[i] == needed[i],
                    WriteQuorum::One => acks[i] >= 1,
                };
                if enough {
                    Ok(())
                } else if too_large[i] {
                    Err(ApiError::too_large(
                        "value_too_large",
                        "the entry is larger than an auxiliary's byte capacity (CACHE_MAX_BYTES)",
                    ))
                } else {
                    let cause = last_error[i]
                        .take()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default();
                    Err(ApiError::unavailable(
                        "replicas_unavailable",
                        format!(
                            "the write reached {} of {} replicas{cause}",
                            acks[i], needed[i]
                        ),
                    ))
                }
            })
            .collect())
    }

    /// Reads many keys. Returns each key's entry (or `None` if missing) and
    /// how many keys no replica could answer.
    pub async fn read_many(
        &self,
        keys: Vec<String>,
    ) -> Result<(Vec<Option<Entry>>, usize), ApiError> {
        let view = self.view.load_full();
        let routes: Vec<Route> = keys
            .iter()
            .map(|k| self.route(&view, k.as_bytes()))
            .collect::<Result<_, _>>()?;
        let keys: Vec<Bytes> = keys.into_iter().map(Bytes::from).collect();
        let mut found: Vec<Option<Entry>> = vec![None; keys.len()];
        let mut answered = vec![false; keys.len()];
        let fall_back_on_miss = view.rebalancing();
        let mut pending: Vec<usize> = (0..keys.len()).collect();
        let rounds = routes.iter().map(|r| r.len()).max().unwrap_or(0);
        for round in 0..rounds {
            let mut batches: HashMap<String, (Arc<NodeRef>, Vec<usize>)> = HashMap::new();
            for &i in &pending {
                if let Some(node) = routes[i].get(round) {
                    batches
                        .entry(node.id.clone())
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
                async move { (positions, self.call(&node, "get_many", req).await) }
            });
            let mut next = Vec::new();
            for (positions, result) in join_all(calls).await {
                match result {
                    Ok(Response::Values(values)) if values.len() == positions.len() => {
                        for (&i, value) in positions.iter().zip(values) {
                            answered[i] = true;
                            match value {
                                Some(entry) => found[i] = Some(entry),
                                None if fall_back_on_miss => next.push(i),
                                None => {}
                            }
                        }
                    }
                    _ => next.extend(positions),
                }
            }
            pending = next;
        }
        let unanswered = answered.iter().filter(|a| !**a).count();
        if unanswered == keys.len() && !keys.is_empty() {
            return Err(unavailable("the bulk read", 0, rounds, None));
        }
        Ok((found, unanswered))
    }
}
