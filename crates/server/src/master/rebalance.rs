//! Rebalancing rounds, run by the Raft leader, and `POST /rebalance`.
//!
//! The cluster map decides when keys must move and how: its round in
//! progress ([`distcache_core::cluster::Round`]) names the ring whose copies
//! are in place, the ring that should hold them, and the nodes that hold
//! copies. Only the leader runs it: it asks every source auxiliary for the
//! handoff (`POST /internal/handoff`, see `auxiliary::handoff`), and
//! proposes `RoundFinished` once all of them succeeded (the target becomes
//! the committed ring, leaving nodes that handed over are removed) or
//! `RoundFailed` as soon as one failed (the map plans a new round, and the
//! runner backs off by its attempt number). A round the map replaced (the
//! membership changed again, or a new leader took over) is dropped at once:
//! the runner always runs the map's current round and no other. Every step
//! is idempotent; versions decide every conflict.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use distcache_core::cluster::{Command, Event, Handoff, Round};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Master;
use super::membership::rejection_error;
use crate::control_api::{HandoffReport, HandoffRequest, Member, RingSpec};
use crate::http::ApiError;

/// Wait before the first retry of a failed round; doubles per attempt up to
/// [`MAX_RETRY_DELAY`].
const RETRY_DELAY: Duration = Duration::from_millis(500);
/// Longest wait before a retry.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);
/// How often the runner looks again without being woken (a change of
/// leader does not change the applied map).
const RECHECK: Duration = Duration::from_millis(250);
/// Longest wait of `POST /rebalance` for its round.
const REBALANCE_WAIT: Duration = Duration::from_secs(600);

/// What a round did, summed over the auxiliaries.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RebalanceReport {
    /// The round's id.
    pub round: u64,
    /// The map's epoch when the round started.
    pub epoch: u64,
    /// The members of the ring the keys moved to.
    pub members: Vec<String>,
    /// Whether every copy was re-placed rather than only those whose
    /// replica set changed.
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

/// The round runner's state.
#[derive(Default)]
pub struct Rounds {
    wake: Notify,
    /// Reports of the rounds this master finished, newest last (a few).
    finished: Mutex<Vec<RebalanceReport>>,
    finished_changed: Notify,
}

/// Reports kept for `POST /rebalance`.
const KEPT_REPORTS: usize = 16;

impl Rounds {
    /// Asks the runner to look at the map again.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn record(&self, report: RebalanceReport) {
        let mut finished = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        finished.push(report);
        let excess = finished.len().saturating_sub(KEPT_REPORTS);
        finished.drain(..excess);
        drop(finished);
        self.finished_changed.notify_waiters();
    }

    /// The report of round `round`, or of the first full round after it:
    /// a round the map replaced while it ran is followed by a full one
    /// (copies may have moved), which re-places every copy too.
    fn report_since(&self, round: u64) -> Option<RebalanceReport> {
        self.finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|r| r.round == round || r.round > round && r.full)
            .cloned()
    }
}

/// Starts the task that runs the map's round whenever this master leads.
pub fn start(master: &Arc<Master>) {
    let m = master.clone();
    master.shutdown.spawn(async move { run_rounds(m).await });
}

/// A round being run. Dropping it (the map moved on) cancels the round's
/// handoff calls; a round past them finishes reporting, so that the report
/// of a round that just committed is never lost to the commit itself.
struct Running {
    id: u64,
    task: tokio::task::JoinHandle<()>,
    cancel: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn run_rounds(master: Arc<Master>) {
    let mut running: Option<Running> = None;
    loop {
        // The newest map this master applied, not its view (which follows
        // a moment later): a round just reported finished must not look
        // current still and run again.
        let want = if master.consensus.is_leader() {
            master.consensus.applied().borrow().state.round().cloned()
        } else {
            None
        };
        let current = running
            .as_ref()
            .filter(|r| !r.task.is_finished())
            .map(|r| r.id);
        running = match want {
            Some(round) if Some(round.id) == current => running,
            // Not running, or it ended while the map still names it: its
            // report could not be proposed, so it runs again (every step is
            // idempotent).
            Some(round) => Some(spawn_round(&master, round)),
            None => None,
        };
        master.metrics.rebalance_in_progress.set(i64::from(
            running.as_ref().is_some_and(|r| !r.task.is_finished()),
        ));
        tokio::select! {
            _ = master.rounds.wake.notified() => {}
            _ = tokio::time::sleep(RECHECK) => {}
            _ = master.shutdown.triggered() => return,
        }
    }
}

fn spawn_round(master: &Arc<Master>, round: Round) -> Running {
    let id = round.id;
    let m = master.clone();
    let cancel = CancellationToken::new();
    let cancelled = cancel.clone();
    Running {
        id,
        task: master
            .shutdown
            .spawn(async move { run_round(&m, round, cancelled).await }),
        cancel,
    }
}

/// The handoff request every source of `handoff` is sent, for the round
/// started at map `epoch`.
fn handoff_request(handoff: &Handoff, epoch: u64) -> HandoffRequest {
    HandoffRequest {
        from: handoff.from.clone().map(|members| RingSpec {
            members,
            replicas: handoff.from_replicas,
        }),
        to: RingSpec {
            members: handoff
                .to
                .iter()
                .map(|m| Member {
                    id: m.id.clone(),
                    data_addr: m.data_addr.clone(),
                })
                .collect(),
            replicas: handoff.to_replicas,
        },
        sources: handoff.sources.clone(),
        vnodes: handoff.virtual_nodes,
        epoch,
    }
}

/// Runs `round` once and proposes its outcome, unless `cancel` fires
/// before its handoffs are done.
async fn run_round(master: &Arc<Master>, round: Round, cancel: CancellationToken) {
    if round.attempt > 0 {
        let delay = RETRY_DELAY
            .saturating_mul(1 << round.attempt.min(8).saturating_sub(1))
            .min(MAX_RETRY_DELAY);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => return,
        }
    }
    let started = Instant::now();
    let req = handoff_request(&round.handoff, round.epoch);
    info!(
        round = round.id,
        attempt = round.attempt,
        from = ?req.from.as_ref().map(|f| &f.members),
        to = ?round.handoff.to_ids(),
        full = round.full,
        "rebalance round starting"
    );
    let results = tokio::select! {
        results = handoff_everywhere(master, &round.handoff.sources, &req) => results,
        _ = cancel.cancelled() => {
            info!(round = round.id, "round replaced by the map; its handoffs are dropped");
            return;
        }
    };
    let mut report = RebalanceReport {
        round: round.id,
        epoch: round.epoch,
        members: round.handoff.to_ids(),
        full: round.full,
        ..RebalanceReport::default()
    };
    let mut failure = None;
    for (id, result) in results {
        match result {
            Ok(r) => report.add(&r),
            Err(e) => failure = Some(format!("{id}: {e}")),
        }
    }
    master.metrics.keys_moved.inc_by(report.moved);
    let event = match &failure {
        None => Event::RoundFinished { round: round.id },
        Some(e) => {
            warn!(round = round.id, error = %e, "rebalance round failed; the map plans it again");
            master
                .metrics
                .rebalances
                .with_label_values(&["failed"])
                .inc();
            Event::RoundFailed { round: round.id }
        }
    };
    let applied = match master.propose(event).await {
        Ok(applied) => applied,
        Err(e) => {
            warn!(round = round.id, error = %e.message, "could not report the round's outcome");
            return;
        }
    };
    if let Err(e) = applied.outcome {
        // Replaced while it ran: the runner starts the new one.
        info!(round = round.id, error = %e, "round report refused");
        return;
    }
    if failure.is_some() {
        return;
    }
    // Writes that reached a former owner while the keys moved left copies
    // there; one more pass over the now committed ring hands them over.
    for command in applied.commands {
        if let Command::Removed { id } = &command {
            report.removed.push(id.clone());
        }
        if let Command::CleanUp(handoff) = command {
            let req = handoff_request(&handoff, round.epoch);
            for (id, result) in handoff_everywhere(master, &handoff.sources, &req).await {
                match result {
                    Ok(r) => {
                        report.moved += r.moved;
                        report.dropped += r.dropped;
                    }
                    Err(e) => {
                        warn!(node = %id, error = %e, "clean-up pass failed; the next round retries")
                    }
                }
            }
        }
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    master.metrics.rebalances.with_label_values(&["done"]).inc();
    master
        .metrics
        .rebalance_duration
        .observe(started.elapsed().as_secs_f64());
    info!(
        round = report.round,
        moved = report.moved,
        dropped = report.dropped,
        duration_ms = report.duration_ms,
        "rebalance round done"
    );
    master.rounds.record(report);
}

impl RebalanceReport {
    fn add(&mut self, r: &HandoffReport) {
        self.scanned += r.scanned;
        self.sent += r.sent;
        self.moved += r.moved;
        self.dropped += r.dropped;
        self.tombstones_sent += r.tombstones_sent;
    }
}

/// Asks every node in `sources` for the handoff at once; one result each.
async fn handoff_everywhere(
    master: &Master,
    sources: &[String],
    req: &HandoffRequest,
) -> Vec<(String, Result<HandoffReport, String>)> {
    let map = master.map();
    let calls = sources.iter().map(|id| {
        let addr = map.state.node(id).map(|n| n.addr.clone());
        async move {
            let result = match addr {
                Some(addr) => master
                    .control
                    .handoff(&addr, req)
                    .await
                    .map_err(|e| e.to_string()),
                None => Err("no longer in the cluster map".to_string()),
            };
            (id.clone(), result)
        }
    });
    join_all(calls).await
}

/// `POST /rebalance`: asks the map for a full round and waits for it. The
/// leader runs rounds, so a follower passes the request on to it.
pub async fn rebalance_now(
    master: &Arc<Master>,
    authorization: Option<&axum::http::HeaderValue>,
) -> Result<RebalanceReport, ApiError> {
    if !master.consensus.is_leader() {
        if let Some(leader) = master.consensus.metrics().leader_addr {
            return forward_to_leader(master, &leader, authorization).await;
        }
    }
    let applied = master.propose(Event::Rebalance).await?;
    applied.outcome.map_err(rejection_error)?;
    let Some(round) = applied.commands.iter().find_map(|c| match c {
        Command::StartRound(round) => Some(round.id),
        _ => None,
    }) else {
        return Err(ApiError::unavailable(
            "rebalance_not_started",
            "the map accepted the request but planned no round",
        ));
    };
    let started = Instant::now();
    loop {
        let waiting = master.rounds.finished_changed.notified();
        if let Some(report) = master.rounds.report_since(round) {
            return Ok(report);
        }
        if !master.consensus.is_leader() {
            return Err(ApiError::unavailable(
                "leader_changed",
                format!(
                    "this master stopped leading while round {round} ran; the new leader runs it"
                ),
            ));
        }
        if started.elapsed() > REBALANCE_WAIT {
            return Err(ApiError::unavailable(
                "rebalance_incomplete",
                format!(
                    "round {round} did not finish within {} s",
                    REBALANCE_WAIT.as_secs()
                ),
            ));
        }
        tokio::select! {
            _ = waiting => {}
            _ = tokio::time::sleep(RECHECK) => {}
        }
    }
}

/// Passes `POST /rebalance` on to the leader, with the caller's token.
async fn forward_to_leader(
    master: &Master,
    leader: &str,
    authorization: Option<&axum::http::HeaderValue>,
) -> Result<RebalanceReport, ApiError> {
    let url = format!("{}/rebalance", crate::security::base_url(leader));
    let mut request = master.control.http().post(&url).timeout(REBALANCE_WAIT);
    if let Some(token) = authorization {
        request = request.header(axum::http::header::AUTHORIZATION, token.clone());
    }
    let unavailable = |e: String| {
        ApiError::unavailable(
            "leader_unreachable",
            format!("the leader at {leader} runs rounds and did not answer: {e}"),
        )
    };
    let resp = request
        .send()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        return Err(unavailable(format!("{status}: {body}")));
    }
    resp.json().await.map_err(|e| unavailable(e.to_string()))
}
