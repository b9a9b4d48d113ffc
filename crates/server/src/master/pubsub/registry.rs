//! Who on this master is subscribed to what: channels, glob patterns and
//! shard channels, each to the mailboxes of the connections subscribed.
//! Plain synchronous code; [`super::PubSub`] keeps it under one lock.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use distcache_core::command::glob::glob_match;

use super::mailbox::{Mailbox, Message, Pushed, Via};

/// A connection, by its id (`CLIENT ID`).
pub type ConnectionId = u64;

/// The subscriptions of every connection of this master.
#[derive(Debug, Default)]
pub struct Registry {
    channels: HashMap<Bytes, HashMap<ConnectionId, Arc<Mailbox>>>,
    patterns: HashMap<Bytes, HashMap<ConnectionId, Arc<Mailbox>>>,
    shard_channels: HashMap<Bytes, HashMap<ConnectionId, Arc<Mailbox>>>,
}

/// What one publish did on this master.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Deliveries queued: a connection subscribed to the channel and to
    /// two patterns matching it counts 3, as in Redis.
    pub receivers: u64,
    /// Messages dropped because a mailbox passed its bound (each such
    /// connection is closed).
    pub dropped: u64,
}

/// Channels, patterns or shard channels: the three maps are kept alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// SUBSCRIBE.
    Channel,
    /// PSUBSCRIBE.
    Pattern,
    /// SSUBSCRIBE.
    Shard,
}

/// The two spaces of channel names, which never meet: PUBLISH reaches
/// the subscribers of a channel and of the patterns matching it, SPUBLISH
/// those of a shard channel only (of the same name or not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// PUBLISH's: channels and patterns.
    Global,
    /// SPUBLISH's: shard channels.
    Shard,
}

impl Registry {
    fn map(&mut self, kind: Kind) -> &mut HashMap<Bytes, HashMap<ConnectionId, Arc<Mailbox>>> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard_channels,
        }
    }

    /// Subscribes `id` to `name`.
    pub fn add(&mut self, kind: Kind, name: Bytes, id: ConnectionId, mailbox: &Arc<Mailbox>) {
        self.map(kind)
            .entry(name)
            .or_default()
            .insert(id, mailbox.clone());
    }

    /// Unsubscribes `id` from `name`; a name left with no subscriber goes.
    pub fn remove(&mut self, kind: Kind, name: &[u8], id: ConnectionId) {
        let map = self.map(kind);
        if let Some(subscribers) = map.get_mut(name) {
            subscribers.remove(&id);
            if subscribers.is_empty() {
                map.remove(name);
            }
        }
    }

    /// Queues `payload` for every connection subscribed to `channel` in
    /// `space`: in the global space, its channel subscribers first, then
    /// those of the patterns matching it, as Redis delivers them.
    pub fn publish(&self, space: Space, channel: &Bytes, payload: &Bytes) -> Delivered {
        let mut delivered = Delivered::default();
        let mut push = |mailbox: &Mailbox, via: Via| {
            let message = Message {
                via,
                channel: channel.clone(),
                payload: payload.clone(),
            };
            match mailbox.push(message) {
                Pushed::Queued => delivered.receivers += 1,
                Pushed::Overflowed { dropped } => delivered.dropped += dropped as u64,
                Pushed::Closed => delivered.dropped += 1,
            }
        };
        let (channels, via) = match space {
            Space::Global => (&self.channels, Via::Channel),
            Space::Shard => (&self.shard_channels, Via::Shard),
        };
        if let Some(subscribers) = channels.get(channel) {
            for mailbox in subscribers.values() {
                push(mailbox, via.clone());
            }
        }
        if space == Space::Global {
            for (pattern, subscribers) in &self.patterns {
                if glob_match(pattern, channel) {
                    for mailbox in subscribers.values() {
                        push(mailbox, Via::Pattern(pattern.clone()));
                    }
                }
            }
        }
        delivered
    }

    fn channels_of(&self, space: Space) -> &HashMap<Bytes, HashMap<ConnectionId, Arc<Mailbox>>> {
        match space {
            Space::Global => &self.channels,
            Space::Shard => &self.shard_channels,
        }
    }

    /// Channels of `space` with at least one subscriber, those matching
    /// `pattern` when one is given (PUBSUB CHANNELS and SHARDCHANNELS).
    pub fn channels(&self, space: Space, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.channels_of(space)
            .keys()
            .filter(|channel| pattern.is_none_or(|p| glob_match(p, channel)))
            .cloned()
            .collect()
    }

    /// Connections subscribed to `channel` in `space` (PUBSUB NUMSUB and
    /// SHARDNUMSUB; patterns are not counted, as in Redis).
    pub fn subscribers(&self, space: Space, channel: &[u8]) -> usize {
        self.channels_of(space).get(channel).map_or(0, HashMap::len)
    }

    /// Distinct channels of `space` with a subscriber.
    pub fn channel_count(&self, space: Space) -> usize {
        self.channels_of(space).len()
    }

    /// Distinct patterns with a subscriber (PUBSUB NUMPAT).
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn a_publish_reaches_channel_and_pattern_subscribers_and_counts_each_delivery() {
        let mut registry = Registry::default();
        let (one, two) = (
            Arc::new(Mailbox::new(1 << 20)),
            Arc::new(Mailbox::new(1 << 20)),
        );
        registry.add(Kind::Channel, b("news.sport"), 1, &one);
        registry.add(Kind::Pattern, b("news.*"), 1, &one);
        registry.add(Kind::Pattern, b("news.*"), 2, &two);
        registry.add(Kind::Pattern, b("weather.*"), 2, &two);
        let delivered = registry.publish(Space::Global, &b("news.sport"), &b("goal"));
        assert_eq!(delivered.receivers, 3);
        let first = one.take(usize::MAX).messages;
        assert_eq!(first.len(), 2);
        assert_eq!(
            first[0].via,
            Via::Channel,
            "the channel's message comes first"
        );
        assert_eq!(first[1].via, Via::Pattern(b("news.*")));
        assert_eq!(two.take(usize::MAX).messages.len(), 1);
    }

    #[test]
    fn the_last_unsubscribe_forgets_the_name() {
        let mut registry = Registry::default();
        let mailbox = Arc::new(Mailbox::new(1 << 20));
        registry.add(Kind::Channel, b("a"), 1, &mailbox);
        registry.add(Kind::Channel, b("a"), 2, &mailbox);
        registry.add(Kind::Pattern, b("a*"), 1, &mailbox);
        assert_eq!(registry.subscribers(Space::Global, b"a"), 2);
        registry.remove(Kind::Channel, b"a", 1);
        assert_eq!(registry.channels(Space::Global, None), vec![b("a")]);
        registry.remove(Kind::Channel, b"a", 2);
        registry.remove(Kind::Pattern, b"a*", 1);
        assert_eq!(registry.channel_count(Space::Global), 0);
        assert_eq!(registry.pattern_count(), 0);
        assert_eq!(
            registry.publish(Space::Global, &b("a"), &b("x")),
            Delivered::default()
        );
    }

    #[test]
    fn channels_filters_by_glob() {
        let mut registry = Registry::default();
        let mailbox = Arc::new(Mailbox::new(1 << 20));
        for name in ["news.a", "news.b", "other"] {
            registry.add(Kind::Channel, b(name), 1, &mailbox);
        }
        let mut found = registry.channels(Space::Global, Some(b"news.*"));
        found.sort();
        assert_eq!(found, vec![b("news.a"), b("news.b")]);
    }

    #[test]
    fn shard_channels_and_global_channels_never_meet() {
        let mut registry = Registry::default();
        let (global, shard) = (
            Arc::new(Mailbox::new(1 << 20)),
            Arc::new(Mailbox::new(1 << 20)),
        );
        registry.add(Kind::Channel, b("orders"), 1, &global);
        registry.add(Kind::Pattern, b("ord*"), 1, &global);
        registry.add(Kind::Shard, b("orders"), 2, &shard);
        let delivered = registry.publish(Space::Shard, &b("orders"), &b("paid"));
        assert_eq!(delivered.receivers, 1, "the shard subscriber only");
        let got = shard.take(usize::MAX).messages;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].via, Via::Shard);
        assert!(
            global.is_idle(),
            "no pattern or channel match in the shard space"
        );
        assert_eq!(
            registry
                .publish(Space::Global, &b("orders"), &b("x"))
                .receivers,
            2
        );
        assert!(shard.is_idle());
        assert_eq!(registry.channels(Space::Shard, None), vec![b("orders")]);
        assert_eq!(registry.subscribers(Space::Shard, b"orders"), 1);
        assert_eq!(registry.channel_count(Space::Shard), 1);
        registry.remove(Kind::Shard, b"orders", 2);
        assert_eq!(registry.channel_count(Space::Shard), 0);
        assert_eq!(registry.channel_count(Space::Global), 1);
    }
}
