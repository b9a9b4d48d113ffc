//! Handoff: when the ring changes, a master asks every auxiliary to move its
//! keys from the ring whose copies are in place to the new ring
//! (`POST /internal/handoff`). The auxiliary plans each key with
//! [`HandoffPlan`], streams copies (value, version, expiry) and tombstones in
//! batches straight to the new owners over the internal protocol, and drops
//! a copy it no longer owns only after every new owner acknowledged it.
//!
//! One handoff runs at a time. Masters each ask for the same handoff; a
//! request for the handoff that has just completed gets its report again
//! rather than a second pass.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use distcache_core::handoff::{HandoffPlan, Targets};
use distcache_core::mutation_log::Mutation;
use distcache_core::{Entry, Ring, Store, Version};
use distcache_wire::frame::{KeyedEntry, WriteStatus};
use distcache_wire::{Client, ClientConfig, Request, Response, WireError};
use futures_util::future::join_all;
use tracing::{debug, info, warn};

use super::Node;
use crate::http::ApiError;

/// Most entries in one batch sent to a peer.
const BATCH_ENTRIES: usize = 512;
/// Most value bytes in one batch sent to a peer.
const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Longest wait for a peer to store one batch.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a finished handoff's report answers repeats of the same request.
const REPEAT_WINDOW: Duration = Duration::from_secs(30);

pub use crate::control_api::{HandoffReport, HandoffRequest, Member, RingSpec};

/// Handoff state of one auxiliary.
#[derive(Default)]
pub(super) struct Handoffs {
    running: tokio::sync::Mutex<Option<(HandoffRequest, Instant, HandoffReport)>>,
    peers: std::sync::Mutex<HashMap<String, Client>>,
    /// The request most recently asked for, and its generation: a pass
    /// whose generation is no longer the latest was superseded (the ring
    /// changed again) and stops at the next shard.
    latest: std::sync::Mutex<(u64, Option<HandoffRequest>)>,
}

impl Handoffs {
    fn peer(&self, addr: &str, secret: Bytes) -> Client {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers
            .entry(addr.to_string())
            .or_insert_with(|| {
                Client::new(
                    addr,
                    ClientConfig {
                        request_timeout: PEER_TIMEOUT,
                        secret,
                        ..ClientConfig::default()
                    },
                )
            })
            .clone()
    }
}

struct Copy {
    key: Bytes,
    entry: Entry,
    targets: Targets,
    drop_after: bool,
}

/// Runs (or repeats the report of) one handoff.
pub(super) async fn run(node: &Arc<Node>, req: HandoffRequest) -> Result<HandoffReport, ApiError> {
    // A different request supersedes the pass in progress; the same request
    // again (from another master) waits for it and gets its report.
    let generation = {
        let mut latest = node
            .handoffs
            .latest
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if latest.1.as_ref() != Some(&req) {
            latest.0 += 1;
            latest.1 = Some(req.clone());
        }
        latest.0
    };
    // Writes routed by an older map are refused from here on: none lands
    // behind the copies this pass makes (those admitted just before may
    // still, as they may during any pass; the round's clean-up pass after
    // the commit hands those over).
    if req.epoch > 0 {
        node.fence.announce(req.epoch);
    }
    let mut last = node.handoffs.running.lock().await;
    if let Some((done, at, report)) = last.as_ref() {
        if *done == req && at.elapsed() < REPEAT_WINDOW {
            return Ok(*report);
        }
    }
    let started = Instant::now();
    let report = pass(node, &req, generation).await?;
    let report = HandoffReport {
        duration_ms: started.elapsed().as_millis() as u64,
        ..report
    };
    info!(
        node = %node.identity.node_id,
        scanned = report.scanned,
        sent = report.sent,
        moved = report.moved,
        dropped = report.dropped,
        tombstones = report.tombstones_sent,
        duration_ms = report.duration_ms,
        "handoff done"
    );
    node.metrics.keys_sent.inc_by(report.sent);
    node.metrics.keys_dropped.inc_by(report.dropped);
    *last = Some((req, Instant::now(), report));
    Ok(report)
}

/// Drops this node's copy of `key` if it still has exactly `version` (it was
/// handed over), logged as one step with the drop (see
/// `MutationLog::applying`), or a restart would replay the copy back here.
/// True if it dropped it.
/// Tells a target this node's expired floor before its first copies:
/// the keys' new leader then stamps their commands above the versions of
/// keys that expired here, as this node would have (docs/replication.md,
/// "A key that just expired at its leader"). A target that closes the
/// connection instead (a build from before `NoteExpired`) gets its copies
/// without it; one that does not answer fails as a batch would.
async fn send_expired_floor(store: &Store, client: &Client, id: &str) -> Result<(), WireError> {
    let Some((key, version)) = store.highest_expired() else {
        return Ok(());
    };
    match client.call(Request::NoteExpired { key, version }).await {
        Ok(Response::Ok) => Ok(()),
        Ok(other) => {
            debug!(target_node = %id, answer = ?other, "the expired floor was not taken");
            Ok(())
        }
        Err(e @ WireError::Closed { .. }) => {
            debug!(target_node = %id, error = %e, "the expired floor was not taken (an older build?)");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn forget(node: &Node, key: &[u8], version: Version) -> bool {
    let drop = || {
        let dropped = node.store.remove_if_version(key, version);
        (
            dropped,
            dropped.then_some(Mutation::Forget { key, version }),
        )
    };
    match &node.log {
        Some(log) => log.applying(drop).0,
        None => drop().0,
    }
}

fn superseded(node: &Node, generation: u64) -> bool {
    node.handoffs
        .latest
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .0
        != generation
}

async fn pass(
    node: &Arc<Node>,
    req: &HandoffRequest,
    generation: u64,
) -> Result<HandoffReport, ApiError> {
    let from = req
        .from
        .as_ref()
        .map(|f| (Ring::new(f.members.iter().cloned(), req.vnodes), f.replicas));
    let to = Ring::new(req.to.members.iter().map(|m| m.id.clone()), req.vnodes);
    let addr_of: HashMap<&str, &str> = req
        .to
        .members
        .iter()
        .map(|m| (m.id.as_str(), m.data_addr.as_str()))
        .collect();
    let mut sources = req.sources.clone();
    sources.sort();
    let me = node.identity.node_id.as_str();
    let plan = HandoffPlan::new(
        from.as_ref().map(|(r, n)| (r, *n)),
        (&to, req.to.replicas),
        me,
        &sources,
    );
    let store = &node.store;
    let mut report = HandoffReport::default();
    let mut failed = None;
    // Targets that failed once in this pass get nothing more: a peer that
    // hangs costs one timeout, not one per shard.
    let dead: std::sync::Mutex<std::collections::HashSet<u32>> = Default::default();
    // Targets told this node's expired floor in this pass.
    let floored: std::sync::Mutex<std::collections::HashSet<u32>> = Default::default();
    for shard in 0..store.shard_count() {
        if superseded(node, generation) {
            return Err(ApiError::unavailable(
                "handoff_superseded",
                "the ring changed again; a newer handoff replaces this one",
            ));
        }
        let now = (node.clock)();
        // An entry that expired goes out as the delete it is (its
        // tombstone), so that its new owners refuse an older copy too.
        store.purge_expired_in_shard(shard, now);
        let mut copies = Vec::new();
        let mut scanned = 0;
        store.for_each_in_shard(shard, now, |key, entry| {
            scanned += 1;
            let action = plan.for_entry(key);
            if !action.targets.is_empty() || action.drop_after {
                copies.push(Copy {
                    key: Bytes::copy_from_slice(key),
                    entry: entry.to_entry(),
                    targets: action.targets,
                    drop_after: action.drop_after,
                });
            }
        });
        let mut tombstones: Vec<(Bytes, Version, Targets)> = Vec::new();
        store.for_each_tombstone_in_shard(shard, now, |key, version| {
            let targets = plan.for_tombstone(key);
            if !targets.is_empty() {
                tombstones.push((Bytes::copy_from_slice(key), version, targets));
            }
        });
        report.scanned += scanned;

        // Per target: the copies it gets, by their index in `copies`.
        let mut by_target: HashMap<u32, Vec<usize>> = HashMap::new();
        for (i, copy) in copies.iter().enumerate() {
            for &t in copy.targets.as_slice() {
                by_target.entry(t).or_default().push(i);
            }
        }
        let sends = by_target.into_iter().map(|(t, indices)| {
            let id = to.members()[t as usize].clone();
            let addr = addr_of
                .get(id.as_str())
                .copied()
                .unwrap_or_default()
                .to_string();
            let client = node.handoffs.peer(&addr, node.credentials.wire_secret());
            let copies = &copies;
            let dead = &dead;
            let floored = &floored;
            async move {
                if dead.lock().unwrap_or_else(|e| e.into_inner()).contains(&t) {
                    return (t, Err(format!("{id} failed earlier in this handoff")));
                }
                let first = floored.lock().unwrap_or_else(|e| e.into_inner()).insert(t);
                if first && let Err(e) = send_expired_floor(store, &client, &id).await {
                    dead.lock().unwrap_or_else(|e| e.into_inner()).insert(t);
                    return (t, Err(e.to_string()));
                }
                let mut stored = 0u64;
                let mut start = 0;
                while start < indices.len() {
                    let mut end = start;
                    let mut bytes = 0;
                    while end < indices.len() && end - start < BATCH_ENTRIES && bytes < BATCH_BYTES
                    {
                        let c = &copies[indices[end]];
                        bytes += c.key.len() + c.entry.value.len();
                        end += 1;
                    }
                    let entries: Vec<KeyedEntry> = indices[start..end]
                        .iter()
                        .map(|&i| KeyedEntry {
                            key: copies[i].key.clone(),
                            entry: copies[i].entry.clone(),
                        })
                        .collect();
                    match client.call(Request::SetMany { entries }).await {
                        Ok(Response::WrittenMany(statuses)) if statuses.len() == end - start => {
                            if statuses.contains(&WriteStatus::TooLarge) {
                                return (t, Err(format!("{id} refused an entry as too large")));
                            }
                            stored += statuses
                                .iter()
                                .filter(|s| **s == WriteStatus::Stored)
                                .count() as u64;
                        }
                        Ok(other) => return (t, Err(format!("{id} answered {other:?}"))),
                        Err(e) => {
                            dead.lock().unwrap_or_else(|e| e.into_inner()).insert(t);
                            return (t, Err(e.to_string()));
                        }
                    }
                    start = end;
                }
                (t, Ok((indices.len() as u64, stored)))
            }
        });
        let mut ok_targets = Vec::new();
        for (t, result) in join_all(sends).await {
            match result {
                Ok((sent, stored)) => {
                    report.sent += sent;
                    report.moved += stored;
                    ok_targets.push(t);
                }
                Err(e) => {
                    warn!(node = %me, target = %to.members()[t as usize], error = %e, "handoff batch failed");
                    failed = Some(e);
                }
            }
        }
        for copy in &copies {
            let all_acked = copy
                .targets
                .as_slice()
                .iter()
                .all(|t| ok_targets.contains(t));
            if copy.drop_after && all_acked && forget(node, &copy.key, copy.entry.version) {
                report.dropped += 1;
            }
        }
        if let Some(log) = &node.log {
            // Nobody waits for an acknowledgement: written, not synced.
            log.write_pending();
        }

        // Tombstones, so that a delete reaches the key's new owners.
        let mut by_target: HashMap<u32, Vec<(Bytes, Version)>> = HashMap::new();
        for (key, version, targets) in &tombstones {
            for &t in targets.as_slice() {
                by_target
                    .entry(t)
                    .or_default()
                    .push((key.clone(), *version));
            }
        }
        for (t, keys) in by_target {
            let id = &to.members()[t as usize];
            if dead.lock().unwrap_or_else(|e| e.into_inner()).contains(&t) {
                failed = Some(format!("{id} failed earlier in this handoff"));
                continue;
            }
            let client = node.handoffs.peer(
                addr_of.get(id.as_str()).copied().unwrap_or_default(),
                node.credentials.wire_secret(),
            );
            for chunk in keys.chunks(BATCH_ENTRIES) {
                match client
                    .call(Request::DeleteMany {
                        keys: chunk.to_vec(),
                    })
                    .await
                {
                    Ok(Response::Ok) => report.tombstones_sent += chunk.len() as u64,
                    Ok(other) => failed = Some(format!("{id} answered {other:?}")),
                    Err(e) => {
                        dead.lock().unwrap_or_else(|e| e.into_inner()).insert(t);
                        failed = Some(e.to_string());
                        break;
                    }
                }
            }
        }
    }
    match failed {
        None => Ok(report),
        Some(e) => Err(ApiError::unavailable(
            "handoff_incomplete",
            format!("some copies could not be sent and were kept: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::BytesMut;
    use distcache_core::StoreConfig;
    use distcache_wire::frame::{decode_request, encode_response};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A store whose highest expired key is `gone` at version 7.
    fn store_with_a_floor() -> Store {
        let store = Store::new(StoreConfig::default());
        let version = Version {
            millis: 7,
            counter: 0,
            origin: 1,
        };
        store.note_expired(b"gone", version);
        assert_eq!(
            store.highest_expired(),
            Some((Bytes::from_static(b"gone"), version))
        );
        store
    }

    fn client(addr: std::net::SocketAddr, timeout: Duration) -> Client {
        Client::new(
            addr.to_string(),
            ClientConfig {
                request_timeout: timeout,
                ..ClientConfig::default()
            },
        )
    }

    /// A peer of a build from before `NoteExpired`: it answers the
    /// handshake and pings, and drops the connection on a request it does
    /// not know, as the frame decoder of such a build does. Counts the
    /// connections it accepted.
    async fn older_peer() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut input = BytesMut::new();
                    loop {
                        while let Ok(Some(frame)) = decode_request(&mut input) {
                            let answer = match frame.request {
                                Request::Hello { .. } => Response::Ok,
                                Request::Ping => Response::Pong,
                                _ => return,
                            };
                            let mut out = BytesMut::new();
                            encode_response(frame.id, &answer, &mut out);
                            if stream.write_all(&out).await.is_err() {
                                return;
                            }
                        }
                        if matches!(stream.read_buf(&mut input).await, Ok(0) | Err(_)) {
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    #[tokio::test]
    async fn an_older_target_gets_its_copies_without_the_floor() {
        let store = store_with_a_floor();
        let (addr, accepted) = older_peer().await;
        let peer = client(addr, Duration::from_secs(5));
        send_expired_floor(&store, &peer, "older")
            .await
            .expect("a dropped connection is not a failed target");
        assert_eq!(
            peer.call(Request::Ping).await.expect("a new connection"),
            Response::Pong
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_target_that_does_not_answer_fails_as_a_batch_would() {
        let store = store_with_a_floor();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts, then never reads nor answers.
        let held = tokio::spawn(async move {
            let mut streams = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                streams.push(stream);
            }
        });
        let peer = client(addr, Duration::from_millis(200));
        let result = send_expired_floor(&store, &peer, "hung").await;
        assert!(
            matches!(result, Err(WireError::Timeout { .. })),
            "{result:?}"
        );
        held.abort();
    }

    #[tokio::test]
    async fn nothing_is_sent_when_nothing_expired() {
        let store = Store::new(StoreConfig::default());
        let (addr, accepted) = older_peer().await;
        let peer = client(addr, Duration::from_secs(5));
        send_expired_floor(&store, &peer, "any").await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 0, "not even a connection");
    }
}
