//! Rebalancing: moving keys from the committed ring (whose copies are in
//! place) to the target ring (the live auxiliaries) after a join, a leave or
//! a failure, and `POST /rebalance`.
//!
//! A round asks every live auxiliary to hand off its keys (see
//! `auxiliary::handoff`) and waits for all of them. Only when every one has
//! finished does the target become the committed ring; until then reads ask
//! the committed ring's replicas first and writes go to both, so keys stay
//! readable while they move. Leaving nodes are removed once they have handed
//! their keys over. A round that fails (a node died mid-way) is retried: the
//! handoff is idempotent, versions decide every conflict.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use tokio::sync::Notify;
use tracing::{info, warn};

use super::Master;
use super::membership::rebuild_view;
use crate::auxiliary::handoff::{HandoffReport, HandoffRequest, Member, RingSpec};
use crate::http::ApiError;

/// How often a round checks that the nodes it waits for are still live.
const GONE_POLL: Duration = Duration::from_millis(100);
/// Longest wait for one auxiliary's handoff.
pub const HANDOFF_TIMEOUT: Duration = Duration::from_secs(600);
/// Wait before retrying a failed round; doubles up to [`MAX_RETRY_DELAY`].
const RETRY_DELAY: Duration = Duration::from_millis(500);
/// Longest wait between retries of a failing round.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// What a round did, summed over the auxiliaries.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RebalanceReport {
    /// Epoch of the ring the keys moved to.
    pub epoch: String,
    /// Its members.
    pub members: Vec<String>,
    /// Whether every copy was re-placed (`POST /rebalance`) rather than only
    /// those whose replica set changed.
    pub full: bool,
    /// Live entries looked at.
    pub scanned: u64,
    /// Copies sent between auxiliaries.
    pub sent: u64,
    /// Copies the receivers did not have: keys moved.
    pub moved: u64,
    /// Copies dropped by nodes that no longer own them.
    pub dropped: u64,
    /// Tombstones sent.
    pub tombstones_sent: u64,
    /// Leaving nodes removed after handing over their keys.
    pub removed: Vec<String>,
    /// Wall time of the round.
    pub duration_ms: u64,
}

/// The rebalancer's state.
#[derive(Default)]
pub struct Rebalancer {
    wake: Notify,
    round: tokio::sync::Mutex<()>,
}

impl Rebalancer {
    /// Asks for a round soon.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Starts the background task that runs rounds whenever the ring changes.
pub fn start(master: &Arc<Master>) {
    let m = master.clone();
    master.shutdown.spawn(async move {
        loop {
            tokio::select! {
                _ = m.rebalancer.wake.notified() => {}
                _ = m.shutdown.triggered() => return,
            }
            let mut delay = RETRY_DELAY;
            loop {
                if m.shutdown.is_triggered() {
                    return;
                }
                match round(&m, false).await {
                    Ok(Some(_)) => continue, // the ring may have changed again
                    Ok(None) => break,
                    // Nobody to move keys to: the next node that comes up
                    // wakes the rebalancer again.
                    Err(e) if e.code == "no_auxiliaries" => break,
                    Err(e) => {
                        warn!(error = %e.message, retry_in_ms = delay.as_millis() as u64, "rebalance round failed; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = m.shutdown.triggered() => return,
                        }
                        delay = (delay * 2).min(MAX_RETRY_DELAY);
                    }
                }
            }
        }
    });
}

/// Runs one round: from the committed ring to the target ring, or with
/// `full` every copy re-placed by the target ring. `Ok(None)` when nothing
/// had to move.
pub async fn round(master: &Arc<Master>, full: bool) -> Result<Option<RebalanceReport>, ApiError> {
    let _one_at_a_time = master.rebalancer.round.lock().await;
    let view = master.view.load_full();
    let target: Vec<String> = view.target.ring.members().to_vec();
    let committed = master.members.committed();
    let live = master.members.live();
    let leaving: Vec<String> = live
        .iter()
        .map(|(id, _)| id.clone())
        .filter(|id| !target.contains(id))
        .collect();
    if !full && committed.as_ref() == Some(&target) && leaving.is_empty() {
        return Ok(None);
    }
    if target.is_empty() {
        return Err(ApiError::unavailable(
            "no_auxiliaries",
            "no auxiliary is up to take the keys",
        ));
    }
    let started = Instant::now();
    let from = match committed {
        Some(ids) if !full && !ids.is_empty() => Some(RingSpec {
            replicas: master.replicas(ids.len()),
            members: ids,
        }),
        _ => None,
    };
    let to = RingSpec {
        replicas: master.replicas(target.len()),
        members: target
            .iter()
            .zip(master.members.data_addrs(&target))
            .map(|(id, addr)| Member {
                id: id.clone(),
                data_addr: addr.unwrap_or_default(),
            })
            .collect(),
    };
    let mut sources: Vec<String> = live.iter().map(|(id, _)| id.clone()).collect();
    sources.sort();
    let req = HandoffRequest {
        from,
        to: to.clone(),
        sources: sources.clone(),
        vnodes: master.config.virtual_nodes(),
    };
    info!(
        from = ?req.from.as_ref().map(|f| &f.members),
        to = ?target,
        full,
        "rebalance round starting"
    );
    master.metrics.rebalance_in_progress.set(1);
    let results = handoff_everywhere(master, &live, &req).await;
    let mut report = RebalanceReport {
        epoch: format!("{:016x}", view.target.ring.epoch()),
        members: target.clone(),
        full,
        ..RebalanceReport::default()
    };
    let mut failure = None;
    for (id, result) in results {
        match result {
            Ok(r) => {
                report.scanned += r.scanned;
                report.sent += r.sent;
                report.moved += r.moved;
                report.dropped += r.dropped;
                report.tombstones_sent += r.tombstones_sent;
            }
            Err(e) => failure = Some(format!("{id}: {e}")),
        }
    }
    master.metrics.keys_moved.inc_by(report.moved);
    if let Some(e) = failure {
        master.metrics.rebalance_in_progress.set(0);
        master
            .metrics
            .rebalances
            .with_label_values(&["failed"])
            .inc();
        return Err(ApiError::unavailable("rebalance_incomplete", e));
    }
    report.removed = master.members.commit(target.clone(), &leaving);
    for id in &report.removed {
        master.metrics.forget_node(id);
    }
    rebuild_view(master);

    // Writes that reached a former owner while the keys moved left copies
    // there; one more pass over the now committed ring hands them over.
    let remaining: Vec<(String, String)> = live
        .into_iter()
        .filter(|(id, _)| target.contains(id))
        .collect();
    let cleanup = HandoffRequest {
        from: Some(RingSpec {
            members: target.clone(),
            replicas: to.replicas,
        }),
        to,
        sources: target,
        vnodes: master.config.virtual_nodes(),
    };
    for (id, result) in handoff_everywhere(master, &remaining, &cleanup).await {
        match result {
            Ok(r) => {
                report.moved += r.moved;
                report.dropped += r.dropped;
            }
            Err(e) => warn!(node = %id, error = %e, "clean-up pass failed; the next round retries"),
        }
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    master.metrics.rebalance_in_progress.set(0);
    master.metrics.rebalances.with_label_values(&["done"]).inc();
    master
        .metrics
        .rebalance_duration
        .observe(started.elapsed().as_secs_f64());
    info!(
        epoch = %report.epoch,
        moved = report.moved,
        dropped = report.dropped,
        removed = ?report.removed,
        duration_ms = report.duration_ms,
        "rebalance round done"
    );
    Ok(Some(report))
}

async fn handoff_everywhere(
    master: &Master,
    nodes: &[(String, String)],
    req: &HandoffRequest,
) -> Vec<(String, Result<HandoffReport, String>)> {
    let mut calls: FuturesUnordered<_> = nodes
        .iter()
        .map(|(id, addr)| async move {
            let url = format!("http://{addr}/internal/handoff");
            let result = async {
                let resp = master
                    .credentials
                    .sign(master.control.post(&url))
                    .timeout(HANDOFF_TIMEOUT)
                    .json(req)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if !resp.status().is_success() {
                    let status = resp.status();
                    let body = resp.text().await.unwrap_or_default();
                    return Err(format!("{status}: {body}"));
                }
                resp.json::<HandoffReport>()
                    .await
                    .map_err(|e| e.to_string())
            }
            .await;
            (id.clone(), result)
        })
        .collect();
    let mut results = Vec::with_capacity(nodes.len());
    let mut check = tokio::time::interval(GONE_POLL);
    while !calls.is_empty() {
        tokio::select! {
            Some(done) = calls.next() => results.push(done),
            _ = check.tick() => {
                // A participant that stopped answering (it died or hangs) is
                // marked down by the health checks. The ring has changed
                // again, so this round cannot commit: give it up now, which
                // also drops the requests still waiting, and let the next
                // round, without that node, start at once.
                if let Some((gone, _)) = nodes.iter().find(|(id, _)| !master.members.is_live(id)) {
                    for (id, _) in nodes {
                        if !results.iter().any(|(done, _)| done == id) {
                            results.push((id.clone(), Err(format!("round given up: {gone} went down"))));
                        }
                    }
                    return results;
                }
            }
        }
    }
    results
}
