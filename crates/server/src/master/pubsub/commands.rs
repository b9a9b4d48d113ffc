//! PUBLISH, SPUBLISH and PUBSUB, as both command front ends answer them
//! (RESP, and HTTP's `POST /`). SUBSCRIBE and its family need a
//! connection that receives messages: RESP only (`resp::pubsub`).

use bytes::Bytes;
use distcache_core::command::{CommandError, Reply};

use super::PubSub;
use super::registry::Space;

/// HTTP's answer to SUBSCRIBE and its family.
pub const SUBSCRIBE_NEEDS_RESP: &str = "ERR SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and their UNSUBSCRIBE need a connection that stays open to receive messages: use RESP (HTTP answers once); PUBLISH and SPUBLISH work over HTTP";

/// HTTP's answer to PUBLISH or PUBSUB in `/multi-exec`.
pub const PUBSUB_NOT_IN_TRANSACTION: &str = "ERR PUBLISH, SPUBLISH and PUBSUB are answered by the master, not in a transaction at the keys' leader: send them to POST / or /pipeline";

/// PUBSUB's subcommands and their arity, as Redis checks them.
const PUBSUB_SUBCOMMANDS: &[(&str, i32)] = &[
    ("channels", -2),
    ("help", 2),
    ("numpat", 2),
    ("numsub", -2),
    ("shardchannels", -2),
    ("shardnumsub", -2),
];

/// What `PUBSUB HELP` lists.
const PUBSUB_HELP: &[(&str, &str)] = &[
    (
        "CHANNELS [<pattern>]",
        "Return the currently active channels matching a <pattern> (default: '*'), on this master.",
    ),
    (
        "NUMPAT",
        "Return number of subscriptions to patterns, on this master.",
    ),
    (
        "NUMSUB [<channel> ...]",
        "Return the number of subscribers for the specified channels, excluding pattern subscriptions(default: no channels), on this master.",
    ),
    (
        "SHARDCHANNELS [<pattern>]",
        "Return the currently active shard level channels matching a <pattern> (default: '*'), on this master.",
    ),
    (
        "SHARDNUMSUB [<shardchannel> ...]",
        "Return the number of subscribers for the specified shard level channel(s), on this master.",
    ),
];

/// A PUBSUB call's subcommand, lower-case, or Redis's error for one that
/// does not exist or has the wrong arity.
pub fn subcommand(args: &[Bytes]) -> Result<&'static str, CommandError> {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let Some(&(name, arity)) = PUBSUB_SUBCOMMANDS.iter().find(|(n, _)| *n == sub) else {
        return Err(CommandError::Line(format!(
            "ERR unknown subcommand '{}'. Try PUBSUB HELP.",
            String::from_utf8_lossy(&args[1])
        )));
    };
    let argc = args.len() as i32;
    let ok = if arity >= 0 {
        argc == arity
    } else {
        argc >= -arity
    };
    if !ok {
        return Err(CommandError::Line(format!(
            "ERR wrong number of arguments for 'pubsub|{name}' command"
        )));
    }
    Ok(name)
}

impl PubSub {
    /// PUBLISH, SPUBLISH or PUBSUB (arity checked, role checked).
    pub async fn command(&self, args: &[Bytes]) -> Reply {
        if let Some(space) = publish_space(&args[0]) {
            let receivers = self.publish(space, args[1].clone(), args[2].clone()).await;
            return Reply::Integer(receivers as i64);
        }
        self.introspect(args)
    }

    /// PUBSUB's subcommands: about this master's subscriptions only.
    pub fn introspect(&self, args: &[Bytes]) -> Reply {
        let space = |sub: &str| {
            if sub.starts_with("shard") {
                Space::Shard
            } else {
                Space::Global
            }
        };
        match subcommand(args) {
            // One pattern at most: Redis's handler refuses more (so a
            // transaction queues it), naming the subcommand as written.
            Ok("channels" | "shardchannels") if args.len() > 3 => {
                Reply::Error(CommandError::Line(format!(
                    "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
                    String::from_utf8_lossy(&args[1])
                )))
            }
            Ok(sub @ ("channels" | "shardchannels")) => Reply::Array(
                self.channels(space(sub), args.get(2).map(|p| p.as_ref()))
                    .into_iter()
                    .map(Reply::Bulk)
                    .collect(),
            ),
            Ok(sub @ ("numsub" | "shardnumsub")) => {
                let channels = &args[2..];
                let counts = self.subscribers(space(sub), channels);
                Reply::Array(
                    channels
                        .iter()
                        .zip(counts)
                        .flat_map(|(c, n)| [Reply::Bulk(c.clone()), Reply::Integer(n as i64)])
                        .collect(),
                )
            }
            Ok("numpat") => Reply::Integer(self.pattern_count() as i64),
            Ok(_) => help(),
            Err(e) => Reply::Error(e),
        }
    }
}

/// The space a publishing command (PUBLISH, SPUBLISH) sends to; `None`
/// for any other command.
pub fn publish_space(name: &[u8]) -> Option<Space> {
    if name.eq_ignore_ascii_case(b"publish") {
        Some(Space::Global)
    } else if name.eq_ignore_ascii_case(b"spublish") {
        Some(Space::Shard)
    } else {
        None
    }
}

/// `PUBSUB HELP`, laid out as Redis's.
fn help() -> Reply {
    let mut lines =
        vec!["PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:".to_owned()];
    for (usage, what) in PUBSUB_HELP.iter().chain(&[("HELP", "Print this help.")]) {
        lines.push((*usage).to_owned());
        lines.push(format!("    {what}"));
    }
    Reply::Array(lines.into_iter().map(|l| Reply::Status(l.into())).collect())
}
