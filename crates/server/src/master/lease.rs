//! The serving lease: a master routes data by its map only while it knows
//! that no group of masters it cannot reach could have changed the map.
//!
//! - A map change needs a majority of the masters. A master that reaches
//!   (itself included) at least [`needed`] of them, each on a map no newer
//!   than its own, knows that the ones it does not reach are too few to
//!   have committed a newer one. Every `MASTER_LEASE_MS / 4` it asks every
//!   other master for the epoch it applied (`POST /internal/lease`); the
//!   answers that come within half a lease and name no newer epoch renew
//!   the lease until `MASTER_LEASE_MS` after the round was *sent*, so the
//!   time answers take is never counted as leased.
//! - With the lease lapsed, a call to an auxiliary waits for it to be
//!   renewed, at most `REQUEST_TIMEOUT_MS` past the lapse, and then the
//!   request is answered `503 no_master_quorum`: the masters that may hold
//!   a newer map are not there to say so.
//! - The other side of the bargain is in `membership::fence_dropped`: a
//!   master that stops routing to a node it could not tell of the new map
//!   (it did not answer the ping that carries the epoch) first waits until
//!   a majority of the masters has applied that map, as they answer here,
//!   and then a lease and [`LEASE_MARGIN`] more ([`Lease::wait_out`]).
//!   From the moment a majority is on the newer map, a master still on an
//!   older one can no longer be renewed (too few masters are left on its
//!   map), so its lease has lapsed by the end of the wait. Meanwhile the
//!   waiting master makes no call to the nodes it could not tell
//!   ([`Lease::quarantine`]): it may reach one another master can no longer
//!   tell either. A master that starts waits out the lease of its first
//!   map too: it does not know which nodes the others stopped routing to.
//! - With one or two masters no group a master cannot reach is a majority
//!   (two masters need both to commit): the lease always holds, and no
//!   round is sent. `MASTER_LEASE_MS=0` turns the lease off: a master cut
//!   off from the majority serves by its last map, with the stale reads
//!   that allows (docs/replication.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{info, warn};

use super::Master;
use super::consensus::Peers;
use crate::http::ApiError;
use crate::security::secret::Credentials;

/// The route other masters ask.
pub const LEASE_PATH: &str = "/internal/lease";

/// What a master waiting out other masters' leases waits on top of one:
/// each master measures its lease on its own clock, and clocks run at
/// slightly different rates.
pub const LEASE_MARGIN: Duration = Duration::from_millis(200);

/// How often [`Lease::wait_out`] asks the masters whether a majority has
/// applied the map.
const WAIT_OUT_POLL: Duration = Duration::from_millis(50);

/// The most masters that make a majority of `masters`.
fn majority(masters: usize) -> usize {
    masters / 2 + 1
}

/// How many masters, this one included, a master must reach for the rest
/// to be too few to change the map: more than half of them would be a
/// majority, so at most half may be out of reach.
pub fn needed(masters: usize) -> usize {
    masters - masters / 2
}

/// A master's question and a peer's answer: the epoch of the map each has
/// applied.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Epoch {
    /// The applied map's epoch.
    pub epoch: u64,
}

/// This master's lease.
pub struct Lease {
    /// `MASTER_LEASE_MS`; `None` when the lease is off or always holds.
    length: Option<Duration>,
    /// The instant `until` counts from.
    base: Instant,
    /// Nanoseconds after `base` until which this master may route by its
    /// map.
    until: AtomicU64,
    renewed: Notify,
    /// The other masters, and how to ask them.
    peers: Vec<String>,
    client: Peers,
    /// Nodes this master makes no call to while it waits out the leases
    /// of a map that stopped routing to them (see [`Lease::wait_out`]).
    quarantined: std::sync::Mutex<Vec<String>>,
    /// True while `quarantined` is not empty: the check every call makes.
    any_quarantined: std::sync::atomic::AtomicBool,
}

impl Lease {
    /// The lease of a master whose other masters are `peers`, asked with
    /// `client`, `length_ms` long (0: off). It holds from the start when it
    /// is off or cannot lapse, else from the first round a quorum answers.
    pub fn new(peers: Vec<String>, client: Peers, length_ms: u64) -> Lease {
        let length = (length_ms > 0 && needed(peers.len() + 1) > 1)
            .then(|| Duration::from_millis(length_ms));
        Lease {
            length,
            base: Instant::now(),
            until: AtomicU64::new(if length.is_some() { 0 } else { u64::MAX }),
            renewed: Notify::new(),
            peers,
            client,
            quarantined: std::sync::Mutex::new(Vec::new()),
            any_quarantined: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// True when this master makes no call to node `id` now.
    pub fn is_quarantined(&self, id: &str) -> bool {
        self.any_quarantined.load(Ordering::Acquire)
            && self
                .quarantined
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|q| q == id)
    }

    /// No calls to `nodes` until [`Lease::release`].
    pub fn quarantine(&self, nodes: Vec<String>) {
        let mut quarantined = self.quarantined.lock().unwrap_or_else(|e| e.into_inner());
        *quarantined = nodes;
        self.any_quarantined
            .store(!quarantined.is_empty(), Ordering::Release);
    }

    /// Calls to every node again.
    pub fn release(&self) {
        self.quarantine(Vec::new());
    }

    /// Waits until a majority of the masters, this one included, has
    /// applied a map of at least `epoch` (this one has), then a lease and
    /// [`LEASE_MARGIN`] more: by then no master still on an older map
    /// holds a lease. False when `stop` came first.
    pub async fn wait_out(&self, epoch: u64, stop: impl std::future::Future<Output = ()>) -> bool {
        let Some(length) = self.length else {
            return true;
        };
        let wait = async {
            let needed = majority(self.peers.len() + 1);
            let on_it = |theirs: u64| theirs >= epoch;
            while !enough_answer(&self.peers, &self.client, epoch, length / 2, needed, on_it).await
            {
                tokio::time::sleep(WAIT_OUT_POLL).await;
            }
            tokio::time::sleep(length + LEASE_MARGIN).await;
        };
        tokio::select! {
            _ = wait => true,
            _ = stop => false,
        }
    }

    /// The lease's length, when it can lapse.
    pub fn length(&self) -> Option<Duration> {
        self.length
    }

    fn since_base(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// True while this master may route by its map.
    pub fn holds(&self) -> bool {
        let until = self.until.load(Ordering::Acquire);
        // A lease that cannot lapse costs no clock read.
        until == u64::MAX || self.since_base(Instant::now()) < until
    }

    /// Renews the lease for a round sent at `sent`.
    fn renew(&self, sent: Instant) {
        let Some(length) = self.length else { return };
        let until = self.since_base(sent + length);
        self.until.fetch_max(until, Ordering::AcqRel);
        self.renewed.notify_waiters();
    }

    /// True once the lease holds, waiting for a renewal at most until
    /// `wait` past the moment it lapsed: a master that has been without
    /// one for longer answers at once.
    pub async fn wait(&self, wait: Duration) -> bool {
        loop {
            let renewed = self.renewed.notified();
            if self.holds() {
                return true;
            }
            let lapsed_at = self.base + Duration::from_nanos(self.until.load(Ordering::Acquire));
            let deadline = lapsed_at + wait;
            if Instant::now() >= deadline {
                return false;
            }
            if tokio::time::timeout_at(deadline, renewed).await.is_err() {
                return self.holds();
            }
        }
    }
}

/// The answer a request gets when the lease has lapsed.
pub fn no_quorum() -> ApiError {
    ApiError::unavailable(
        "no_master_quorum",
        "this master has not reached enough of the other masters within MASTER_LEASE_MS to know its cluster map is current; it serves no data until it does",
    )
}

/// Renews `master`'s lease for as long as it runs, asking `peers`.
pub fn start(master: &Arc<Master>) {
    let Some(length) = master.lease.length() else {
        return;
    };
    let needed = needed(master.lease.peers.len() + 1);
    let every = length / 4;
    let m = master.clone();
    master.shutdown.spawn(async move {
        let mut held = false;
        loop {
            let sent = Instant::now();
            let ours = m.consensus.applied().borrow().state.epoch();
            let lease = &m.lease;
            let renewed = round(ours, &lease.peers, &lease.client, needed, length / 2).await;
            if renewed {
                m.lease.renew(sent);
            }
            let holds = m.lease.holds();
            m.metrics.lease_holds.set(i64::from(holds));
            if holds != held {
                if holds {
                    info!(node = %m.id, "lease: enough masters answer; serving data");
                } else {
                    warn!(node = %m.id, needed, "lease lapsed: too few masters answer on this map; serving no data until they do");
                }
                held = holds;
            }
            // Without a lease, ask again soon.
            let next = if holds { sent + every } else { sent + every.min(Duration::from_millis(100)) };
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = m.shutdown.triggered() => return,
            }
        }
    });
}

/// One round: true once `needed` masters, this one included, answered
/// within `timeout` with an epoch no newer than `ours`, this master's.
async fn round(
    ours: u64,
    peers: &[String],
    client: &Peers,
    needed: usize,
    timeout: Duration,
) -> bool {
    enough_answer(peers, client, ours, timeout, needed, |theirs| {
        theirs <= ours
    })
    .await
}

/// Asks every master in `peers` for the epoch it applied (telling it
/// `ours`): true as soon as `needed` masters, this one included, answered
/// within `timeout` with an epoch `counts` takes. The calls still out then
/// finish on their own, so that their connections stay open for the next
/// round.
async fn enough_answer(
    peers: &[String],
    client: &Peers,
    ours: u64,
    timeout: Duration,
    needed: usize,
    counts: impl Fn(u64) -> bool,
) -> bool {
    let mut calls: FuturesUnordered<_> = peers
        .iter()
        .map(|peer| {
            let (client, peer) = (client.clone(), peer.clone());
            async move {
                let ask = Epoch { epoch: ours };
                client
                    .post::<_, Epoch>(&peer, LEASE_PATH, &ask, timeout)
                    .await
            }
        })
        .collect();
    let mut reached = 1;
    while reached < needed {
        match calls.next().await {
            Some(Ok(theirs)) if counts(theirs.epoch) => reached += 1,
            Some(_) => {}
            None => break,
        }
    }
    if !calls.is_empty() {
        tokio::spawn(async move { while calls.next().await.is_some() {} });
    }
    reached >= needed
}

/// The route, to merge with the masters' other internal routes. It needs
/// the cluster secret when one is set, as every internal route does.
pub fn router(master: Arc<Master>, credentials: Arc<Credentials>) -> Router {
    Router::new()
        .route(LEASE_PATH, post(answer))
        .with_state(master)
        .layer(axum::middleware::from_fn_with_state(
            credentials.secret.clone(),
            crate::security::secret::require_for_internal,
        ))
}

/// Answers with the epoch this master applied. The question's epoch is
/// not needed: the asker compares.
async fn answer(State(master): State<Arc<Master>>) -> Response {
    let epoch = master.consensus.applied().borrow().state.epoch();
    axum::Json(Epoch { epoch }).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_master_must_reach_enough_masters_that_the_rest_are_no_majority() {
        // (masters, needed): the ones out of reach are at most half.
        for (masters, want) in [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (7, 4)] {
            assert_eq!(needed(masters), want, "{masters} masters");
            let unreached = masters - want;
            assert!(
                unreached <= masters / 2,
                "{masters}: the rest are no majority"
            );
            assert!(
                want - 1 < masters - masters / 2,
                "{masters}: one fewer is not enough"
            );
        }
    }

    /// A stand-in for another master on a real socket: it answers every
    /// lease question with `answer` (an epoch, or 404 as a master of a
    /// version without leases, or any other server, does).
    async fn peer(answer: Option<u64>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let app = match answer {
            Some(epoch) => Router::new().route(
                LEASE_PATH,
                post(move || async move { axum::Json(Epoch { epoch }) }),
            ),
            None => Router::new(),
        };
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// An address where nothing listens.
    async fn silent() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().to_string()
    }

    #[tokio::test]
    async fn a_round_counts_masters_on_no_newer_map_and_older_masters_that_answer() {
        let client = client();
        let timeout = Duration::from_secs(5);
        let (same, older, newer, old_version, gone) = (
            peer(Some(7)).await,
            peer(Some(6)).await,
            peer(Some(8)).await,
            peer(None).await,
            silent().await,
        );
        // (peers, needed with this master, renewed?)
        let cases = [
            (vec![same.clone(), gone.clone()], 2, true),
            (vec![older.clone(), gone.clone()], 2, true),
            (vec![newer.clone(), gone.clone()], 2, false),
            (vec![old_version.clone(), gone.clone()], 2, false),
            (vec![gone.clone(), gone.clone()], 2, false),
            (
                vec![same.clone(), newer.clone(), gone.clone(), older.clone()],
                3,
                true,
            ),
            (
                vec![same.clone(), newer.clone(), gone.clone(), gone.clone()],
                3,
                false,
            ),
        ];
        for (peers, needed, renewed) in cases {
            assert_eq!(
                round(7, &peers, &client, needed, timeout).await,
                renewed,
                "{peers:?}, {needed} needed"
            );
        }
    }

    fn client() -> Peers {
        crate::security::tls::install_crypto_provider();
        Peers {
            client: reqwest::Client::new(),
            credentials: Arc::new(Credentials { secret: None }),
        }
    }

    /// The lease of one of `masters` masters whose others are `peers`.
    fn lease_of(masters: usize, length_ms: u64) -> Lease {
        let peers = (1..masters).map(|i| format!("127.0.0.1:{i}")).collect();
        Lease::new(peers, client(), length_ms)
    }

    #[tokio::test]
    async fn a_map_is_waited_out_once_a_majority_applied_it_and_a_lease_passed() {
        let (on_it, ahead, behind, gone) = (
            peer(Some(8)).await,
            peer(Some(9)).await,
            peer(Some(7)).await,
            silent().await,
        );
        let never = std::future::pending::<()>;
        let soon = || tokio::time::sleep(Duration::from_millis(1_500));
        // (the other masters, waited out before `soon`?)
        let cases = [
            (vec![on_it.clone(), gone.clone()], true),
            (vec![ahead.clone(), behind.clone()], true),
            (vec![behind.clone(), gone.clone()], false),
            (vec![gone.clone(), gone.clone()], false),
            (
                vec![on_it.clone(), behind.clone(), gone.clone(), gone.clone()],
                false,
            ),
            (
                vec![on_it.clone(), ahead.clone(), gone.clone(), behind.clone()],
                true,
            ),
        ];
        for (peers, waited_out) in cases {
            let lease = Lease::new(peers.clone(), client(), 100);
            let started = Instant::now();
            if waited_out {
                assert!(lease.wait_out(8, never()).await, "{peers:?}");
                assert!(started.elapsed() >= Duration::from_millis(100) + LEASE_MARGIN);
            } else {
                assert!(!lease.wait_out(8, soon()).await, "{peers:?}");
            }
        }
        // Off, or with two masters: nothing to wait for.
        assert!(lease_of(3, 0).wait_out(8, soon()).await);
        assert!(lease_of(2, 100).wait_out(8, soon()).await);
    }

    #[test]
    fn a_quarantined_node_is_so_until_released() {
        let lease = lease_of(3, 1_000);
        assert!(!lease.is_quarantined("aux-1"));
        lease.quarantine(vec!["aux-1".into()]);
        assert!(lease.is_quarantined("aux-1"));
        assert!(!lease.is_quarantined("aux-2"));
        lease.release();
        assert!(!lease.is_quarantined("aux-1"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_holds_for_its_length_from_the_round_that_renewed_it() {
        let lease = lease_of(3, 1_000);
        assert!(!lease.holds(), "no round answered yet");
        let sent = Instant::now();
        tokio::time::advance(Duration::from_millis(300)).await;
        lease.renew(sent);
        assert!(lease.holds());
        tokio::time::advance(Duration::from_millis(699)).await;
        assert!(lease.holds(), "999 ms after the round was sent");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!lease.holds(), "1000 ms after the round was sent");
        // An older round renews nothing.
        lease.renew(sent);
        assert!(!lease.holds());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_that_cannot_lapse_or_is_off_always_holds() {
        for (masters, length_ms) in [(1, 1_000), (2, 1_000), (3, 0)] {
            let lease = lease_of(masters, length_ms);
            tokio::time::advance(Duration::from_secs(3600)).await;
            assert!(lease.holds(), "{masters} masters, {length_ms} ms");
            assert!(lease.length().is_none());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_waits_for_a_renewal_at_most_the_wait_past_the_lapse() {
        let lease = Arc::new(lease_of(3, 1_000));
        lease.renew(Instant::now());
        tokio::time::advance(Duration::from_millis(1_000)).await;
        // Renewed 200 ms into the wait: the call goes on.
        let waiting = {
            let lease = lease.clone();
            tokio::spawn(async move { lease.wait(Duration::from_millis(500)).await })
        };
        tokio::time::advance(Duration::from_millis(200)).await;
        lease.renew(Instant::now());
        assert!(waiting.await.unwrap());

        // Not renewed: the call gives up 500 ms past the lapse, and a call
        // after that gives up at once.
        tokio::time::advance(Duration::from_millis(1_200)).await;
        let started = Instant::now();
        assert!(!lease.wait(Duration::from_millis(500)).await);
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        let started = Instant::now();
        assert!(!lease.wait(Duration::from_millis(500)).await);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
