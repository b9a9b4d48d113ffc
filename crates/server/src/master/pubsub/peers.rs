//! PUBLISH and SPUBLISH forwarded to the other masters: one queue and one forwarder
//! task per peer, so each peer receives this master's messages in the
//! order they were published here, one call at a time (a call carries
//! every message queued meanwhile, up to [`MAX_BATCH`]).
//!
//! A publisher waits for the peers' counts at most [`PEER_WAIT`]. A peer
//! that has not answered by then counts 0 and is marked slow: later
//! publishes still queue for it but no longer wait for it, until one of
//! its calls succeeds again. So a stopped master costs a publisher one
//! wait, not one per message. A peer's queue is bounded
//! ([`QUEUE_MESSAGES`]); past it, messages for that peer are dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::internal::{BATCH_BYTES, MAX_BATCH, PublishAnswer, PublishBatch, WireMessage, path_of};
use super::registry::Space;
use crate::master::consensus::{CallError, Peers};
use crate::metrics::PubSubMetrics;
use crate::shutdown::Shutdown;

/// How long PUBLISH waits for the other masters' counts.
pub const PEER_WAIT: Duration = Duration::from_millis(250);

/// How long one forwarding call may take before its messages are given
/// up on (they may still arrive, late).
pub const PEER_CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Messages queued for one peer, at most.
pub const QUEUE_MESSAGES: usize = 4096;

/// One message on its way to a peer, and where its count goes.
struct Forward {
    space: Space,
    channel: Bytes,
    payload: Bytes,
    receivers: oneshot::Sender<u64>,
}

/// The other masters, each with its forwarder.
pub struct PeerLinks {
    links: Vec<PeerLink>,
}

struct PeerLink {
    addr: String,
    queue: mpsc::Sender<Forward>,
    /// Set when a publisher gave up waiting for this peer, cleared by its
    /// next successful call.
    slow: Arc<AtomicBool>,
}

/// A publish's wait for one peer's count.
pub struct PendingCount {
    link: usize,
    receivers: oneshot::Receiver<u64>,
}

impl PeerLinks {
    /// Starts a forwarder for each of `addrs` (the other masters' HTTP
    /// addresses), stopped by `shutdown`.
    pub fn start(
        addrs: Vec<String>,
        client: Peers,
        metrics: PubSubMetrics,
        shutdown: &Shutdown,
    ) -> PeerLinks {
        let links = addrs
            .into_iter()
            .map(|addr| {
                let (queue, inbox) = mpsc::channel(QUEUE_MESSAGES);
                let slow = Arc::new(AtomicBool::new(false));
                let forwarder = Forwarder {
                    addr: addr.clone(),
                    client: client.clone(),
                    slow: slow.clone(),
                    metrics: metrics.clone(),
                };
                let stop = shutdown.clone();
                shutdown.spawn(async move {
                    tokio::select! {
                        _ = stop.triggered() => {}
                        _ = forwarder.run(inbox) => {}
                    }
                });
                PeerLink { addr, queue, slow }
            })
            .collect();
        PeerLinks { links }
    }

    /// No peers (a master alone, and unit tests).
    pub fn none() -> PeerLinks {
        PeerLinks { links: Vec::new() }
    }

    /// Queues a message for every peer; the counts to wait for come back
    /// (none for a peer that is slow or whose queue is full).
    pub fn forward(
        &self,
        space: Space,
        channel: &Bytes,
        payload: &Bytes,
        metrics: &PubSubMetrics,
    ) -> Vec<PendingCount> {
        let mut pending = Vec::with_capacity(self.links.len());
        for (i, link) in self.links.iter().enumerate() {
            let (receivers, count) = oneshot::channel();
            let forward = Forward {
                space,
                channel: channel.clone(),
                payload: payload.clone(),
                receivers,
            };
            match link.queue.try_send(forward) {
                Ok(()) if link.slow.load(Ordering::Relaxed) => {}
                Ok(()) => pending.push(PendingCount {
                    link: i,
                    receivers: count,
                }),
                Err(_) => {
                    metrics.forwarded.with_label_values(&["queue_full"]).inc();
                    debug!(peer = %link.addr, "Pub/Sub queue to a peer is full: message dropped");
                }
            }
        }
        pending
    }

    /// The peers' counts for one publish, each awaited until
    /// [`PEER_WAIT`] after the first; a peer that has not answered then
    /// counts 0 and is marked slow.
    pub async fn counts(&self, pending: Vec<PendingCount>, metrics: &PubSubMetrics) -> u64 {
        let deadline = tokio::time::Instant::now() + PEER_WAIT;
        let mut total = 0;
        for wait in pending {
            match tokio::time::timeout_at(deadline, wait.receivers).await {
                Ok(Ok(receivers)) => total += receivers,
                // The call failed: its forwarder counted and logged it.
                Ok(Err(_)) => {}
                Err(_) => {
                    let link = &self.links[wait.link];
                    metrics.forwarded.with_label_values(&["not_awaited"]).inc();
                    if !link.slow.swap(true, Ordering::Relaxed) {
                        warn!(
                            peer = %link.addr,
                            wait_ms = PEER_WAIT.as_millis() as u64,
                            "a master did not answer a PUBLISH in time: counted 0, and not waited for until it answers"
                        );
                    }
                }
            }
        }
        total
    }
}

/// Sends one peer its messages, in order.
struct Forwarder {
    addr: String,
    client: Peers,
    slow: Arc<AtomicBool>,
    metrics: PubSubMetrics,
}

impl Forwarder {
    async fn run(self, mut inbox: mpsc::Receiver<Forward>) {
        while let Some(first) = inbox.recv().await {
            // Whatever queued meanwhile goes in the same call, up to a
            // batch's bounds.
            let mut bytes = first.channel.len() + first.payload.len();
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH && bytes < BATCH_BYTES {
                let Ok(next) = inbox.try_recv() else { break };
                bytes += next.channel.len() + next.payload.len();
                batch.push(next);
            }
            self.send(batch).await;
        }
    }

    /// Sends a batch as calls of one space each (PUBLISH's and SPUBLISH's
    /// routes differ), in the order the messages were published.
    async fn send(&self, mut batch: Vec<Forward>) {
        while !batch.is_empty() {
            let space = batch[0].space;
            let run = batch.iter().take_while(|f| f.space == space).count();
            let rest = batch.split_off(run);
            self.send_run(space, batch).await;
            batch = rest;
        }
    }

    /// Sends messages of one space in one call.
    async fn send_run(&self, space: Space, batch: Vec<Forward>) {
        let body = PublishBatch {
            messages: batch
                .iter()
                .map(|f| WireMessage::new(&f.channel, &f.payload))
                .collect(),
        };
        let sent = batch.len() as u64;
        let answer: Result<PublishAnswer, _> = self
            .client
            .post(&self.addr, path_of(space), &body, PEER_CALL_TIMEOUT)
            .await;
        // A master from before sharded Pub/Sub has no shard subscriber.
        let answer = match answer {
            Err(CallError::Status { status: 404, .. }) if space == Space::Shard => {
                debug!(peer = %self.addr, "a master without sharded Pub/Sub: SPUBLISH counts 0 there");
                Ok(PublishAnswer {
                    receivers: vec![0; batch.len()],
                })
            }
            other => other,
        };
        match answer {
            Ok(answer) if answer.receivers.len() == batch.len() => {
                self.metrics
                    .forwarded
                    .with_label_values(&["ok"])
                    .inc_by(sent);
                if self.slow.swap(false, Ordering::Relaxed) {
                    warn!(peer = %self.addr, "a master answers PUBLISH again");
                }
                for (forward, receivers) in batch.into_iter().zip(answer.receivers) {
                    let _ = forward.receivers.send(receivers);
                }
            }
            Ok(answer) => {
                self.metrics
                    .forwarded
                    .with_label_values(&["failed"])
                    .inc_by(sent);
                warn!(
                    peer = %self.addr,
                    sent,
                    answered = answer.receivers.len(),
                    "a master answered a PUBLISH batch with the wrong number of counts"
                );
            }
            Err(e) => {
                self.metrics
                    .forwarded
                    .with_label_values(&["failed"])
                    .inc_by(sent);
                // Logged when the peer turns slow, not for every batch
                // while it stays down (the metric counts each).
                if self.slow.swap(true, Ordering::Relaxed) {
                    debug!(peer = %self.addr, messages = sent, error = %e, "PUBLISH not forwarded to a master");
                } else {
                    warn!(peer = %self.addr, messages = sent, error = %e, "PUBLISH not forwarded to a master");
                }
            }
        }
    }
}
