//! One subscribed connection's queue of messages, bounded in bytes.
//!
//! Publishers push into it (under the registry's lock, so the messages of
//! one publisher are queued in the order they were published); the
//! connection takes them out and writes them. A connection that does not
//! read its socket stops taking them out: past [`Mailbox::max_bytes`] the
//! mailbox drops what it holds and is marked overflowed, and the
//! connection closes, as Redis's `client-output-buffer-limit pubsub`
//! closes such a client.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::Notify;

/// Bytes counted for a message beyond its channel, pattern and payload:
/// about what its RESP framing takes.
const FRAMING_BYTES: usize = 48;

/// How a message reached a subscriber, which decides its frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// A subscription to its channel: `message`.
    Channel,
    /// A pattern that matched its channel: `pmessage`.
    Pattern(Bytes),
    /// A subscription to its shard channel: `smessage`.
    Shard,
}

/// One message, as a subscriber receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// How it reached the subscriber.
    pub via: Via,
    /// The channel it was published to.
    pub channel: Bytes,
    /// What was published.
    pub payload: Bytes,
}

impl Message {
    /// The bytes it is counted for against the mailbox's bound.
    pub fn cost(&self) -> usize {
        FRAMING_BYTES
            + self.channel.len()
            + self.payload.len()
            + match &self.via {
                Via::Pattern(pattern) => pattern.len(),
                Via::Channel | Via::Shard => 0,
            }
    }
}

/// Messages a connection has not taken yet.
#[derive(Debug)]
pub struct Mailbox {
    queue: Mutex<Queue>,
    /// Woken on each push, and on overflow.
    ready: Notify,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct Queue {
    messages: VecDeque<Message>,
    bytes: usize,
    /// Set once the bound was passed; the mailbox then takes nothing more.
    overflowed: bool,
}

/// What [`Mailbox::push`] did with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Queued for the connection.
    Queued,
    /// The bound was passed: this message and the `dropped` queued before
    /// it are gone, and the connection is to be closed.
    Overflowed {
        /// Messages dropped, this one included.
        dropped: usize,
    },
    /// The mailbox had overflowed already: dropped.
    Closed,
}

/// What [`Mailbox::take`] gave.
#[derive(Debug, Default)]
pub struct Taken {
    /// Messages, oldest first.
    pub messages: Vec<Message>,
    /// Whether the mailbox overflowed: the connection must close.
    pub overflowed: bool,
}

impl Mailbox {
    /// An empty mailbox that holds at most `max_bytes` (by
    /// [`Message::cost`]).
    pub fn new(max_bytes: usize) -> Mailbox {
        Mailbox {
            queue: Mutex::new(Queue::default()),
            ready: Notify::new(),
            max_bytes,
        }
    }

    /// The bound.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `message`, unless that passes the bound.
    pub fn push(&self, message: Message) -> Pushed {
        let pushed = {
            let mut queue = self.lock();
            if queue.overflowed {
                return Pushed::Closed;
            }
            let cost = message.cost();
            if queue.bytes + cost > self.max_bytes {
                let dropped = queue.messages.len() + 1;
                // Free the memory now, not when the connection gets to it.
                *queue = Queue {
                    overflowed: true,
                    ..Queue::default()
                };
                Pushed::Overflowed { dropped }
            } else {
                queue.bytes += cost;
                queue.messages.push_back(message);
                Pushed::Queued
            }
        };
        self.ready.notify_one();
        pushed
    }

    /// Takes the oldest messages, about `budget_bytes` of them (one at
    /// least, when there is one).
    pub fn take(&self, budget_bytes: usize) -> Taken {
        let mut queue = self.lock();
        let mut taken = Taken {
            messages: Vec::new(),
            overflowed: queue.overflowed,
        };
        let mut bytes = 0;
        while bytes < budget_bytes {
            let Some(message) = queue.messages.pop_front() else {
                break;
            };
            let cost = message.cost();
            bytes += cost;
            queue.bytes -= cost;
            taken.messages.push(message);
        }
        taken
    }

    /// Whether the bound was passed: the connection must close.
    pub fn overflowed(&self) -> bool {
        self.lock().overflowed
    }

    /// Whether nothing waits and the mailbox has not overflowed.
    pub fn is_idle(&self) -> bool {
        let queue = self.lock();
        queue.messages.is_empty() && !queue.overflowed
    }

    /// Waits until something was pushed since the last wait ended (at
    /// once if something was pushed while no one waited).
    pub async fn ready(&self) {
        self.ready.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(payload: &str) -> Message {
        Message {
            via: Via::Channel,
            channel: Bytes::from_static(b"ch"),
            payload: Bytes::copy_from_slice(payload.as_bytes()),
        }
    }

    #[test]
    fn messages_come_out_in_the_order_they_went_in() {
        let mailbox = Mailbox::new(1 << 20);
        for i in 0..10 {
            assert_eq!(mailbox.push(message(&i.to_string())), Pushed::Queued);
        }
        let taken = mailbox.take(usize::MAX);
        let payloads: Vec<_> = taken.messages.iter().map(|m| m.payload.clone()).collect();
        let expected: Vec<_> = (0..10).map(|i| Bytes::from(i.to_string())).collect();
        assert_eq!(payloads, expected);
        assert!(!taken.overflowed);
        assert!(mailbox.is_idle());
    }

    #[test]
    fn passing_the_bound_drops_everything_and_closes_the_mailbox() {
        let one = message("x").cost();
        let mailbox = Mailbox::new(one * 3);
        for _ in 0..3 {
            assert_eq!(mailbox.push(message("x")), Pushed::Queued);
        }
        assert_eq!(
            mailbox.push(message("x")),
            Pushed::Overflowed { dropped: 4 }
        );
        assert_eq!(mailbox.push(message("x")), Pushed::Closed);
        let taken = mailbox.take(usize::MAX);
        assert!(taken.messages.is_empty());
        assert!(taken.overflowed);
    }

    #[test]
    fn taking_frees_room_under_the_bound() {
        let one = message("x").cost();
        let mailbox = Mailbox::new(one * 2);
        for _ in 0..100 {
            assert_eq!(mailbox.push(message("x")), Pushed::Queued);
            assert_eq!(mailbox.take(1).messages.len(), 1);
        }
    }
}
