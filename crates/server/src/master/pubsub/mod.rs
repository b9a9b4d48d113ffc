//! Pub/Sub across the masters: SUBSCRIBE on any master, PUBLISH on any
//! master, and every subscriber of the cluster receives the message. The
//! sharded commands (SSUBSCRIBE, SPUBLISH) work the same way in a space of
//! names of their own: the cluster is one shard that owns every slot.
//!
//! # Layout
//!
//! - [`registry`]: who on this master is subscribed to which channels,
//!   patterns and shard channels (plain synchronous code).
//! - [`mailbox`]: one connection's queue of messages, bounded in bytes.
//! - [`peers`]: PUBLISH forwarded to the other masters, in order, one
//!   queue per peer.
//! - [`commands`]: PUBLISH, SPUBLISH and PUBSUB, for both command front
//!   ends.
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
use registry::{ConnectionId, Kind, Registry, Space};

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
            shard_channels: BTreeSet::new(),
            ever_subscribed: false,
        }
    }

    /// PUBLISH (or SPUBLISH, in the shard space): delivers here and on
    /// every other master; the receivers cluster-wide that answered in
    /// time.
    pub async fn publish(&self, space: Space, channel: Bytes, payload: Bytes) -> u64 {
        let here = self.deliver_here(space, &channel, &payload);
        let pending = self.peers.forward(space, &channel, &payload, &self.metrics);
        here + self.peers.counts(pending, &self.metrics).await
    }

    /// Delivers to this master's subscribers only; the receivers.
    pub fn deliver_here(&self, space: Space, channel: &Bytes, payload: &Bytes) -> u64 {
        let delivered = self.registry().publish(space, channel, payload);
        self.metrics.delivered.inc_by(delivered.receivers);
        self.metrics.dropped.inc_by(delivered.dropped);
        delivered.receivers
    }

    /// PUBSUB CHANNELS (or SHARDCHANNELS): this master's channels of
    /// `space` with a subscriber.
    pub fn channels(&self, space: Space, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.registry().channels(space, pattern)
    }

    /// PUBSUB NUMSUB (or SHARDNUMSUB): this master's subscribers of each
    /// channel of `space`.
    pub fn subscribers(&self, space: Space, channels: &[Bytes]) -> Vec<usize> {
        let registry = self.registry();
        channels
            .iter()
            .map(|c| registry.subscribers(space, c))
            .collect()
    }

    /// PUBSUB NUMPAT and INFO's `pubsub_patterns`.
    pub fn pattern_count(&self) -> usize {
        self.registry().pattern_count()
    }

    /// INFO's `pubsub_channels` (or `pubsubshard_channels`).
    pub fn channel_count(&self, space: Space) -> usize {
        self.registry().channel_count(space)
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
        self.metrics
            .channels
            .set(registry.channel_count(Space::Global) as i64);
        self.metrics.patterns.set(registry.pattern_count() as i64);
        self.metrics
            .shard_channels
            .set(registry.channel_count(Space::Shard) as i64);
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
    shard_channels: BTreeSet<Bytes>,
    /// Whether it ever subscribed: until then no message can reach its
    /// mailbox, and a connection need not look at it.
    ever_subscribed: bool,
}

impl Subscriber {
    /// The messages waiting for this connection.
    pub fn mailbox(&self) -> &Mailbox {
        &self.mailbox
    }

    /// The count Redis answers with each (un)subscription of `kind`:
    /// channels plus patterns, or shard channels alone.
    pub fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Channel | Kind::Pattern => self.channels.len() + self.patterns.len(),
            Kind::Shard => self.shard_channels.len(),
        }
    }

    /// Channels, patterns and shard channels subscribed to, as CLIENT
    /// LIST's `sub=`, `psub=` and `ssub=`.
    pub fn counts(&self) -> [usize; 3] {
        [
            self.channels.len(),
            self.patterns.len(),
            self.shard_channels.len(),
        ]
    }

    /// Whether the connection is subscribed to anything.
    pub fn is_subscribed(&self) -> bool {
        self.counts().iter().any(|n| *n > 0)
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
            Kind::Shard => &mut self.shard_channels,
        }
    }

    /// Subscribes to a channel, pattern or shard channel (again is a no-op).
    pub fn subscribe(&mut self, kind: Kind, name: &Bytes) {
        self.ever_subscribed = true;
        if self.set(kind).insert(name.clone()) {
            self.pubsub.add(kind, name.clone(), self.id, &self.mailbox);
        }
    }

    /// Unsubscribes from a channel, pattern or shard channel (one not
    /// subscribed is a no-op).
    pub fn unsubscribe(&mut self, kind: Kind, name: &Bytes) {
        if self.set(kind).remove(name) {
            self.pubsub.remove(kind, [name], self.id);
        }
    }

    /// The channels, patterns or shard channels subscribed to, for
    /// UNSUBSCRIBE, PUNSUBSCRIBE and SUNSUBSCRIBE without arguments.
    pub fn names(&self, kind: Kind) -> Vec<Bytes> {
        let set = match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard_channels,
        };
        set.iter().cloned().collect()
    }

    /// Unsubscribes from everything (RESET).
    pub fn clear(&mut self) {
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            let names = std::mem::take(self.set(kind));
            self.pubsub.remove(kind, &names, self.id);
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if self.is_subscribed() {
            self.clear();
        }
    }
}
