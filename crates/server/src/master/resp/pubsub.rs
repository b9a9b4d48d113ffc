//! Pub/Sub over RESP: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE,
//! SSUBSCRIBE, SUNSUBSCRIBE, PUBLISH, SPUBLISH and PUBSUB, answered as
//! Redis 7 answers them, and the messages a connection receives, written
//! between its replies.
//!
//! In RESP2 a connection with a subscription is in "subscribed mode":
//! only the subscription commands, PING, QUIT and RESET run
//! ([`refused_in_subscribed_mode`]). In RESP3 messages are push frames
//! and every command runs.

use bytes::Bytes;
use distcache_core::command::table::{self, flags};
use distcache_core::command::{CommandError, CommandSpec, Protocol, Reply};

use super::REPLY_FLUSH_BYTES;
use super::connection::{Connection, noauth, noperm, permits};
use crate::master::pubsub::commands::{publish_space, subcommand};
use crate::master::pubsub::mailbox::{Message, Via};
use crate::master::pubsub::registry::Kind;

/// Redis's refusal of `full_name` (`get`, `client|list`) on a RESP2
/// connection in subscribed mode, or `None` when it may run.
pub(super) fn refused_in_subscribed_mode(
    conn: &Connection,
    name: &str,
    full_name: &str,
) -> Option<CommandError> {
    // Redis 7.0's list: the table's subscription commands, and three of
    // the listener's own.
    let allowed = matches!(name, "ping" | "quit" | "reset")
        || table::lookup(name.as_bytes()).is_some_and(|spec| spec.has(flags::SUBSCRIPTION));
    if conn.protocol != Protocol::Resp2 || !conn.subscriber.is_subscribed() || allowed {
        return None;
    }
    Some(CommandError::Line(format!(
        "ERR Can't execute '{full_name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / \
         RESET are allowed in this context"
    )))
}

/// The name Redis shows for this call (`pubsub|numsub` for PUBSUB's
/// subcommands).
fn full_name(spec: &CommandSpec, args: &[Bytes]) -> String {
    match (spec.name, args.get(1)) {
        ("pubsub", Some(sub)) => format!(
            "pubsub|{}",
            String::from_utf8_lossy(sub).to_ascii_lowercase()
        ),
        (name, _) => name.to_owned(),
    }
}

impl Connection {
    /// Runs a Pub/Sub command after Redis's checks, in Redis's order (name
    /// and arity, subcommand, authentication, role, subscribed mode), and
    /// appends its replies to `out`: SUBSCRIBE and its family answer one
    /// frame per channel. `false` when it was refused.
    pub(super) async fn pubsub(
        &mut self,
        spec: &'static CommandSpec,
        args: Vec<Bytes>,
        out: &mut Vec<u8>,
    ) -> bool {
        let refused = if spec.name == "pubsub" {
            subcommand(&args).err()
        } else {
            None
        };
        let refused = refused.or_else(|| match self.role {
            None => Some(noauth()),
            Some(role) if !permits(role, spec.role()) => Some(noperm(spec.name)),
            Some(_) => refused_in_subscribed_mode(self, spec.name, &full_name(spec, &args)),
        });
        if let Some(e) = refused {
            let reply = self.session.refuse(e);
            self.reply(reply, out);
            return false;
        }
        if self.session.in_transaction() {
            let reply = self.session.queue(args);
            self.reply(reply, out);
            return true;
        }
        self.run_pubsub(spec, &args, out).await;
        true
    }

    /// Shows the connection's subscription counts in CLIENT LIST.
    pub(super) fn show_subscriptions(&self) {
        let counts = self.subscriber.counts();
        self.registered.update(|c| c.subscriptions = counts);
    }

    /// Runs a Pub/Sub command that passed the checks (at once, or queued
    /// and now run by EXEC).
    pub(super) async fn run_pubsub(
        &mut self,
        spec: &'static CommandSpec,
        args: &[Bytes],
        out: &mut Vec<u8>,
    ) {
        match spec.name {
            "subscribe" => self.subscribe(Kind::Channel, &args[1..], out),
            "psubscribe" => self.subscribe(Kind::Pattern, &args[1..], out),
            "ssubscribe" => self.subscribe(Kind::Shard, &args[1..], out),
            "unsubscribe" => self.unsubscribe(Kind::Channel, &args[1..], out),
            "punsubscribe" => self.unsubscribe(Kind::Pattern, &args[1..], out),
            "sunsubscribe" => self.unsubscribe(Kind::Shard, &args[1..], out),
            name if let Some(space) = publish_space(name.as_bytes()) => {
                let pubsub = self.server.master.pubsub.clone();
                let receivers = pubsub
                    .publish(space, args[1].clone(), args[2].clone())
                    .await;
                self.reply(Reply::Integer(receivers as i64), out);
            }
            _ => {
                let reply = self.server.master.pubsub.introspect(args);
                self.reply(reply, out);
            }
        }
        self.show_subscriptions();
    }

    fn subscribe(&mut self, kind: Kind, names: &[Bytes], out: &mut Vec<u8>) {
        let verb: &[u8] = match kind {
            Kind::Channel => b"subscribe",
            Kind::Pattern => b"psubscribe",
            Kind::Shard => b"ssubscribe",
        };
        for name in names {
            self.subscriber.subscribe(kind, name);
            let count = self.subscriber.count(kind);
            self.push(verb, Some(name), count, out);
        }
    }

    fn unsubscribe(&mut self, kind: Kind, names: &[Bytes], out: &mut Vec<u8>) {
        let verb: &[u8] = match kind {
            Kind::Channel => b"unsubscribe",
            Kind::Pattern => b"punsubscribe",
            Kind::Shard => b"sunsubscribe",
        };
        let all;
        let names = if names.is_empty() {
            all = self.subscriber.names(kind);
            if all.is_empty() {
                // Redis answers even when there was nothing to leave.
                let count = self.subscriber.count(kind);
                return self.push(verb, None, count, out);
            }
            &all[..]
        } else {
            names
        };
        for name in names {
            self.subscriber.unsubscribe(kind, name);
            let count = self.subscriber.count(kind);
            self.push(verb, Some(name), count, out);
        }
    }

    /// A subscription's confirmation: a push frame in RESP3, an array in
    /// RESP2, after the messages that arrived before it (as [`reply`]).
    ///
    /// [`reply`]: Connection::reply
    fn push(&self, verb: &[u8], name: Option<&Bytes>, count: usize, out: &mut Vec<u8>) {
        let _open = self.take_messages(out);
        push_header(self.protocol, 3, out);
        Reply::bulk(verb).write_resp(self.protocol, out);
        name.map_or(Reply::Null, |n| Reply::Bulk(n.clone()))
            .write_resp(self.protocol, out);
        Reply::Integer(count as i64).write_resp(self.protocol, out);
    }

    /// Writes `reply` after the messages that arrived while its command
    /// ran, as Redis writes a publish into a subscriber's output at once.
    pub(super) fn reply(&self, reply: Reply, out: &mut Vec<u8>) {
        // An overflowed mailbox closes the connection after the window
        // (`connection::serve` asks again).
        let _open = self.take_messages(out);
        reply.write_resp(self.protocol, out);
    }

    /// Appends the messages waiting in the connection's mailbox, up to a
    /// flush's worth. `false` when the mailbox overflowed: the connection
    /// must close without writing more.
    pub(super) fn take_messages(&self, out: &mut Vec<u8>) -> bool {
        if !self.subscriber.ever_subscribed() {
            return true;
        }
        let taken = self
            .subscriber
            .mailbox()
            .take(REPLY_FLUSH_BYTES.saturating_sub(out.len()).max(1));
        for message in &taken.messages {
            write_message(self.protocol, message, out);
        }
        !taken.overflowed
    }
}

/// A message as Redis sends it: `message channel payload`, `pmessage
/// pattern channel payload`, or `smessage channel payload`.
fn write_message(protocol: Protocol, message: &Message, out: &mut Vec<u8>) {
    match &message.via {
        Via::Channel => {
            push_header(protocol, 3, out);
            Reply::bulk(b"message").write_resp(protocol, out);
        }
        Via::Pattern(pattern) => {
            push_header(protocol, 4, out);
            Reply::bulk(b"pmessage").write_resp(protocol, out);
            Reply::Bulk(pattern.clone()).write_resp(protocol, out);
        }
        Via::Shard => {
            push_header(protocol, 3, out);
            Reply::bulk(b"smessage").write_resp(protocol, out);
        }
    }
    Reply::Bulk(message.channel.clone()).write_resp(protocol, out);
    Reply::Bulk(message.payload.clone()).write_resp(protocol, out);
}

/// `>n` in RESP3 (a push frame), `*n` in RESP2.
fn push_header(protocol: Protocol, len: usize, out: &mut Vec<u8>) {
    let kind = match protocol {
        Protocol::Resp2 => '*',
        Protocol::Resp3 => '>',
    };
    out.extend_from_slice(format!("{kind}{len}\r\n").as_bytes());
}

/// Whether `spec` is answered here rather than by the data path.
pub(super) fn is_pubsub(spec: &CommandSpec) -> bool {
    spec.has(flags::PUBSUB)
}

/// The Pub/Sub command `args` names, if it is one.
pub(super) fn lookup(args: &[Bytes]) -> Option<&'static CommandSpec> {
    table::lookup(&args[0]).filter(|spec| is_pubsub(spec))
}
