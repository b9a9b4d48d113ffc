//! Who on this master is subscribed to what: channels and glob patterns,
//! each to the mailboxes of the connections subscribed. Plain synchronous
//! code; [`super::PubSub`] keeps it under one lock.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use distcache_core::command::glob::glob_match;

use super::mailbox::{Mailbox, Message, Pushed};

/// A connection, by its id (`CLIENT ID`).
pub type ConnectionId = u64;

/// The subscriptions of every connection of this master.
#[derive(Debug, Default)]
pub struct Registry {
    channels: HashMap<Bytes, HashMap<ConnectionId, Arc<Mailbox>>>,
    patterns: HashMap<Bytes, HashMap<ConnectionId, Arc<Mailbox>>>,
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

/// Channels or patterns: the two maps are kept alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// SUBSCRIBE.
    Channel,
    /// PSUBSCRIBE.
    Pattern,
}

impl Registry {
    fn map(&mut self, kind: Kind) -> &mut HashMap<Bytes, HashMap<ConnectionId, Arc<Mailbox>>> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
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

    /// Queues `payload` for every connection subscribed to `channel` or to
    /// a pattern matching it: channel subscribers first, then patterns,
    /// as Redis delivers them.
    pub fn publish(&self, channel: &Bytes, payload: &Bytes) -> Delivered {
        let mut delivered = Delivered::default();
        let mut push = |mailbox: &Mailbox, pattern: Option<&Bytes>| {
            let message = Message {
                pattern: pattern.cloned(),
                channel: channel.clone(),
                payload: payload.clone(),
            };
            match mailbox.push(message) {
                Pushed::Queued => delivered.receivers += 1,
                Pushed::Overflowed { dropped } => delivered.dropped += dropped as u64,
                Pushed::Closed => delivered.dropped += 1,
            }
        };
        if let Some(subscribers) = self.channels.get(channel) {
            for mailbox in subscribers.values() {
                push(mailbox, None);
            }
        }
        for (pattern, subscribers) in &self.patterns {
            if glob_match(pattern, channel) {
                for mailbox in subscribers.values() {
                    push(mailbox, Some(pattern));
                }
            }
        }
        delivered
    }

    /// Channels with at least one subscriber, those matching `pattern`
    /// when one is given (PUBSUB CHANNELS).
    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.channels
            .keys()
            .filter(|channel| pattern.is_none_or(|p| glob_match(p, channel)))
            .cloned()
            .collect()
    }

    /// Connections subscribed to `channel` (PUBSUB NUMSUB; patterns are
    /// not counted, as in Redis).
    pub fn subscribers(&self, channel: &[u8]) -> usize {
        self.channels.get(channel).map_or(0, HashMap::len)
    }

    /// Distinct channels with a subscriber.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
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
        let delivered = registry.publish(&b("news.sport"), &b("goal"));
        assert_eq!(delivered.receivers, 3);
        let first = one.take(usize::MAX).messages;
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].pattern, None, "the channel's message comes first");
        assert_eq!(first[1].pattern, Some(b("news.*")));
        assert_eq!(two.take(usize::MAX).messages.len(), 1);
    }

    #[test]
    fn the_last_unsubscribe_forgets_the_name() {
        let mut registry = Registry::default();
        let mailbox = Arc::new(Mailbox::new(1 << 20));
        registry.add(Kind::Channel, b("a"), 1, &mailbox);
        registry.add(Kind::Channel, b("a"), 2, &mailbox);
        registry.add(Kind::Pattern, b("a*"), 1, &mailbox);
        assert_eq!(registry.subscribers(b"a"), 2);
        registry.remove(Kind::Channel, b"a", 1);
        assert_eq!(registry.channels(None), vec![b("a")]);
        registry.remove(Kind::Channel, b"a", 2);
        registry.remove(Kind::Pattern, b"a*", 1);
        assert_eq!(registry.channel_count(), 0);
        assert_eq!(registry.pattern_count(), 0);
        assert_eq!(registry.publish(&b("a"), &b("x")), Delivered::default());
    }

    #[test]
    fn channels_filters_by_glob() {
        let mut registry = Registry::default();
        let mailbox = Arc::new(Mailbox::new(1 << 20));
        for name in ["news.a", "news.b", "other"] {
            registry.add(Kind::Channel, b(name), 1, &mailbox);
        }
        let mut found = registry.channels(Some(b"news.*"));
        found.sort();
        assert_eq!(found, vec![b("news.a"), b("news.b")]);
    }
}
