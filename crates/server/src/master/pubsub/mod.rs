//! Pub/Sub across the masters: SUBSCRIBE on any master, PUBLISH on any
//! master, and every subscriber of the cluster receives the message.
//!
//! # Layout
//!
//! - [`registry`]: who on this master is subscribed to which channels
//!   and patterns (plain synchronous code).
//! - [`mailbox`]: one connection's queue of messages, bounded in bytes.
//! - [`peers`]: PUBLISH forwarded to the other masters, in order, one
//!   queue per peer.
//! - [`commands`]: PUBLISH and PUBSUB, for both command front ends.
//! - [`internal`]: `POST /internal/pubsub/publish`, where the other
//!   masters deliver here.
//!
//! # How a message flows
//!
//! PUBLISH on master A queues the message, under the registry's lock, in
//! the mailbox of every matching connection of A, then in each peer's
//! queue; each peer's forwarder calls that peer's internal route, which
//! queues it in the mailboxes there. Each connection writes what its
//! mailbox holds (`resp::connection`). PUBLISH answers the receivers on
//! A plus what the peers answered within [`peers::PEER_WAIT`].
//!
//! Subscriptions live in the master's memory only: nothing is persisted
//! or replicated, and delivery is at most once.

pub mod commands;
pub mod internal;
pub mod mailbox;
pub mod peers;
pub mod registry;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::metrics::PubSubMetrics;
use mailbox::Mailbox;
use peers::PeerLinks;
use registry::{ConnectionId, Kind, Registry};

/// This master's side of Pub/Sub: its subscriptions and its links to the
/// other masters.
pub struct PubSub {
    registry: Mutex<Registry>,
    peers: PeerLinks,
    metrics: PubSubMetrics,
    /// Each subscriber's mailbox holds at most this many bytes.
    max_queued_bytes: usize,
}

impl PubSub {
    /// Pub/Sub with these links to the other masters.
    pub fn new(peers: PeerLinks, metrics: PubSubMetrics, max_queued_bytes: usize) -> PubSub {
        PubSub {
            registry: Mutex::new(Registry::default()),
            peers,
            metrics,
            max_queued_bytes,
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection's subscriptions, none yet; dropping it unsubscribes
    /// from everything.
    pub fn subscriber(self: &Arc<Self>, id: ConnectionId) -> Subscriber {
        Subscriber {
            pubsub: self.clone(),
            id,
            mailbox: Arc::new(Mailbox::new(self.max_queued_bytes)),
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            ever_subscribed: false,
        }
    }

    /// PUBLISH: delivers here and on every other master; the receivers
    /// cluster-wide that answered in time.
    pub async fn publish(&self, channel: Bytes, payload: Bytes) -> u64 {
        let here = self.deliver_here(&channel, &payload);
        let pending = self.peers.forward(&channel, &payload, &self.metrics);
        here + self.peers.counts(pending, &self.metrics).await
    }

    /// Delivers to this master's subscribers only; the receivers.
    pub fn deliver_here(&self, channel: &Bytes, payload: &Bytes) -> u64 {
        let delivered = self.registry().publish(channel, payload);
        self.metrics.delivered.inc_by(delivered.receivers);
        self.metrics.dropped.inc_by(delivered.dropped);
        delivered.receivers
    }

    /// PUBSUB CHANNELS: this master's channels with a subscriber.
    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.registry().channels(pattern)
    }

    /// PUBSUB NUMSUB: this master's subscribers of each channel.
    pub fn subscribers(&self, channels: &[Bytes]) -> Vec<usize> {
        let registry = self.registry();
        channels.iter().map(|c| registry.subscribers(c)).collect()
    }

    /// PUBSUB NUMPAT and INFO's `pubsub_patterns`.
    pub fn pattern_count(&self) -> usize {
        self.registry().pattern_count()
    }

    /// INFO's `pubsub_channels`.
    pub fn channel_count(&self) -> usize {
        self.registry().channel_count()
    }

    fn add(&self, kind: Kind, name: Bytes, id: ConnectionId, mailbox: &Arc<Mailbox>) {
        let mut registry = self.registry();
        registry.add(kind, name, id, mailbox);
        self.set_gauges(&registry);
    }

    fn remove<'a>(&self, kind: Kind, names: impl IntoIterator<Item = &'a Bytes>, id: ConnectionId) {
        let mut registry = self.registry();
        for name in names {
            registry.remove(kind, name, id);
        }
        self.set_gauges(&registry);
    }

    fn set_gauges(&self, registry: &Registry) {
        self.metrics.channels.set(registry.channel_count() as i64);
        self.metrics.patterns.set(registry.pattern_count() as i64);
    }
}

/// One connection's subscriptions and mailbox, kept in the registry
/// while it lives.
pub struct Subscriber {
    pubsub: Arc<PubSub>,
    id: ConnectionId,
    mailbox: Arc<Mailbox>,
    channels: BTreeSet<Bytes>,
    patterns: BTreeSet<Bytes>,
    /// Whether it ever subscribed: until then no message can reach its
    /// mailbox, and a connection need not look at it.
    ever_subscribed: bool,
}

impl Subscriber {
    /// The messages waiting for this connection.
    pub fn mailbox(&self) -> &Mailbox {
        &self.mailbox
    }

    /// Channels plus patterns: the count Redis answers with each
    /// (un)subscription.
    pub fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// Channels and patterns subscribed to, as CLIENT LIST's `sub=` and
    /// `psub=`.
    pub fn counts(&self) -> (usize, usize) {
        (self.channels.len(), self.patterns.len())
    }

    /// Whether the connection is subscribed to anything.
    pub fn is_subscribed(&self) -> bool {
        self.count() > 0
    }

    /// Whether it ever subscribed (see the field): a connection that never
    /// did skips its mailbox, at no cost to the data commands.
    pub fn ever_subscribed(&self) -> bool {
        self.ever_subscribed
    }

    fn set(&mut self, kind: Kind) -> &mut BTreeSet<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
        }
    }

    /// Subscribes to a channel or pattern (again is a no-op).
    pub fn subscribe(&mut self, kind: Kind, name: &Bytes) {
        self.ever_subscribed = true;
        if self.set(kind).insert(name.clone()) {
            self.pubsub.add(kind, name.clone(), self.id, &self.mailbox);
        }
    }

    /// Unsubscribes from a channel or pattern (one not subscribed is a
    /// no-op).
    pub fn unsubscribe(&mut self, kind: Kind, name: &Bytes) {
        if self.set(kind).remove(name) {
            self.pubsub.remove(kind, [name], self.id);
        }
    }

    /// The channels or patterns subscribed to, for UNSUBSCRIBE and
    /// PUNSUBSCRIBE without arguments.
    pub fn names(&self, kind: Kind) -> Vec<Bytes> {
        match kind {
            Kind::Channel => self.channels.iter().cloned().collect(),
            Kind::Pattern => self.patterns.iter().cloned().collect(),
        }
    }

    /// Unsubscribes from everything (RESET).
    pub fn clear(&mut self) {
        let channels = std::mem::take(&mut self.channels);
        let patterns = std::mem::take(&mut self.patterns);
        self.pubsub.remove(Kind::Channel, &channels, self.id);
        self.pubsub.remove(Kind::Pattern, &patterns, self.id);
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if self.is_subscribed() {
            self.clear();
        }
    }
}
