//! Redis Cluster's view of distcache, so that cluster clients (redis-py's
//! `RedisCluster`, ioredis's `Cluster`, node-redis's `createCluster`, the
//! `redis` crate's cluster client, Jedis, go-redis, Lettuce) work
//! unchanged: every master answers CLUSTER as a one-shard Redis Cluster
//! whose only node is itself, owning all 16,384 slots with no replicas.
//!
//! A cluster client then sends everything to the master it asked, which
//! routes each key by the ring as it does for any client; it never needs
//! MOVED or ASK, and none is sent. Given several masters as its startup
//! nodes, a client takes one's answer and, when that master fails, asks
//! the next, which names itself (docs/commands.md, "Cluster clients").
//!
//! The node is reported at `RESP_ANNOUNCE_ADDR` when it is set (a load
//! balancer's address, or a NAT's), else at the address the client reached
//! it by (the connection's local address), so a client that connected can
//! connect again. Slot-level administration (ADDSLOTS, SETSLOT, MEET, FAILOVER...)
//! and the per-slot key queries (COUNTKEYSINSLOT, GETKEYSINSLOT) are
//! refused: keys are placed by the ring, not by slots.

use bytes::Bytes;
use distcache_core::command::{CommandError, Reply};
use distcache_core::ring::{CLUSTER_SLOTS, cluster_slot};

/// The subcommands answered, with Redis's arity (name included).
const ANSWERED: &[(&str, usize)] = &[
    ("count-failure-reports", 3),
    ("help", 2),
    ("info", 2),
    ("keyslot", 3),
    ("links", 2),
    ("myid", 2),
    ("nodes", 2),
    ("replicas", 3),
    ("shards", 2),
    ("slaves", 3),
    ("slots", 2),
];

/// Redis 7.0's other subcommands, with their arity (negative: at least),
/// refused here after the arity check, as Redis checks it first.
const REFUSED: &[(&str, i32)] = &[
    ("addslots", -3),
    ("addslotsrange", -4),
    ("bumpepoch", 2),
    ("countkeysinslot", 3),
    ("delslots", -3),
    ("delslotsrange", -4),
    ("failover", -2),
    ("flushslots", 2),
    ("forget", 3),
    ("getkeysinslot", 4),
    ("meet", -4),
    ("replicate", 3),
    ("reset", -2),
    ("saveconfig", 2),
    ("set-config-epoch", 3),
    ("setslot", -4),
];

/// What CLUSTER needs to know of the master and the connection.
pub(super) struct Node<'a> {
    /// The master's NODE_ID.
    pub id: &'a str,
    /// The host clients are sent to: `RESP_ANNOUNCE_ADDR`'s, else the
    /// address the client reached this master at.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Whether any auxiliary is up to serve keys: CLUSTER INFO says
    /// `cluster_state:fail` when none is, as Redis does when slots are
    /// not served.
    pub serving: bool,
}

impl Node<'_> {
    /// Redis's 40-hex-digit node id, stable for a NODE_ID.
    fn cluster_id(&self) -> String {
        distcache_core::script::sha1_hex(format!("distcache-master:{}", self.id).as_bytes())
    }

    fn ip(&self) -> String {
        self.host.clone()
    }
}

fn error(line: String) -> Reply {
    Reply::Error(CommandError::Line(line))
}

fn bulk(s: &str) -> Reply {
    Reply::bulk(s.as_bytes())
}

/// A subcommand that passed its name and arity checks.
enum Checked {
    /// Answered: its lower-case name.
    Answered(String),
    /// Slot administration: its name, for the refusal.
    Refused(&'static str),
}

/// The checks Redis makes before running a CLUSTER subcommand, and while
/// queueing one in MULTI: its name, then its arity.
fn check(args: &[Bytes]) -> Result<Checked, Reply> {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let arity_error = || {
        error(format!(
            "ERR wrong number of arguments for 'cluster|{sub}' command"
        ))
    };
    if let Some(&(name, arity)) = REFUSED.iter().find(|(name, _)| *name == sub) {
        let ok = if arity >= 0 {
            args.len() == arity as usize
        } else {
            args.len() >= arity.unsigned_abs() as usize
        };
        return if ok {
            Ok(Checked::Refused(name))
        } else {
            Err(arity_error())
        };
    }
    let Some(&(_, arity)) = ANSWERED.iter().find(|(name, _)| *name == sub) else {
        return Err(error(format!(
            "ERR unknown subcommand '{}'. Try CLUSTER HELP.",
            String::from_utf8_lossy(&args[1])
        )));
    };
    if args.len() != arity {
        return Err(arity_error());
    }
    Ok(Checked::Answered(sub))
}

/// The error a CLUSTER call is refused with while a transaction is
/// queued (an unknown subcommand, a wrong arity), as Redis refuses it;
/// `None` when it may be queued.
pub(super) fn refused_while_queued(args: &[Bytes]) -> Option<Reply> {
    check(args).err()
}

/// CLUSTER <subcommand> ...
pub(super) fn cluster(node: &Node<'_>, args: &[Bytes]) -> Reply {
    let sub = match check(args) {
        Ok(Checked::Answered(sub)) => sub,
        Ok(Checked::Refused(name)) => {
            return error(format!(
                "ERR CLUSTER {} is not supported: distcache places keys on its own hash ring, \
                 not in slots, and is run through its settings and REST routes \
                 (docs/commands.md, \"Cluster clients\")",
                name.to_ascii_uppercase()
            ));
        }
        Err(refused) => return refused,
    };
    let id = node.cluster_id();
    let known = |arg: &[u8]| arg == id.as_bytes();
    match sub.as_str() {
        "slots" => Reply::Array(vec![Reply::Array(vec![
            Reply::Integer(0),
            Reply::Integer(i64::from(CLUSTER_SLOTS) - 1),
            Reply::Array(vec![
                bulk(&node.ip()),
                Reply::Integer(i64::from(node.port)),
                bulk(&id),
                Reply::Map(Vec::new()),
            ]),
        ])]),
        "shards" => {
            let field = |k: &str, v: Reply| (bulk(k), v);
            Reply::Array(vec![Reply::Map(vec![
                field(
                    "slots",
                    Reply::Array(vec![
                        Reply::Integer(0),
                        Reply::Integer(i64::from(CLUSTER_SLOTS) - 1),
                    ]),
                ),
                field(
                    "nodes",
                    Reply::Array(vec![Reply::Map(vec![
                        field("id", bulk(&id)),
                        field("port", Reply::Integer(i64::from(node.port))),
                        field("ip", bulk(&node.ip())),
                        field("endpoint", bulk(&node.ip())),
                        field("role", bulk("master")),
                        field("replication-offset", Reply::Integer(0)),
                        field(
                            "health",
                            bulk(if node.serving { "online" } else { "failed" }),
                        ),
                    ])]),
                ),
            ])])
        }
        "nodes" => bulk(&format!(
            "{id} {}:{}@{} myself,master - 0 0 0 connected 0-{}\n",
            node.ip(),
            node.port,
            u32::from(node.port) + 10_000,
            CLUSTER_SLOTS - 1
        )),
        "info" => bulk(&info_text(node.serving)),
        "myid" => bulk(&id),
        "keyslot" => Reply::Integer(i64::from(cluster_slot(&args[2]))),
        "replicas" | "slaves" | "count-failure-reports" if !known(&args[2]) => error(format!(
            "ERR Unknown node {}",
            String::from_utf8_lossy(&args[2])
        )),
        "replicas" | "slaves" | "links" => Reply::Array(Vec::new()),
        "count-failure-reports" => Reply::Integer(0),
        _ => Reply::Array(
            HELP.iter()
                .map(|line| Reply::Status((*line).into()))
                .collect(),
        ),
    }
}

/// CLUSTER INFO: one shard, every slot served while an auxiliary is up.
fn info_text(serving: bool) -> String {
    let slots = CLUSTER_SLOTS;
    let (state, ok, fail) = if serving {
        ("ok", slots, 0)
    } else {
        ("fail", 0, slots)
    };
    [
        format!("cluster_state:{state}"),
        format!("cluster_slots_assigned:{slots}"),
        format!("cluster_slots_ok:{ok}"),
        "cluster_slots_pfail:0".to_owned(),
        format!("cluster_slots_fail:{fail}"),
        "cluster_known_nodes:1".to_owned(),
        "cluster_size:1".to_owned(),
        "cluster_current_epoch:0".to_owned(),
        "cluster_my_epoch:0".to_owned(),
        "cluster_stats_messages_sent:0".to_owned(),
        "cluster_stats_messages_received:0".to_owned(),
        "total_cluster_links_buffer_limit_exceeded:0".to_owned(),
    ]
    .iter()
    .map(|line| format!("{line}\r\n"))
    .collect()
}

const HELP: &[&str] = &[
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "COUNT-FAILURE-REPORTS <node-id>",
    "    Return number of failure reports for <node-id> (always 0 here).",
    "INFO",
    "    Return information about the cluster.",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "LINKS",
    "    Return information about all network links between this node and its peers (none here).",
    "MYID",
    "    Return the node id.",
    "NODES",
    "    Return cluster configuration seen by node: this master, owning every slot.",
    "REPLICAS <node-id>",
    "    Return <node-id> replicas (none here).",
    "SHARDS",
    "    Return information about slot range mappings and the nodes associated with them.",
    "SLOTS",
    "    Return information about slots range mappings: every slot on this master.",
    "HELP",
    "    Prints this help.",
    "distcache places keys on its own hash ring: slot administration is refused.",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Node<'static> {
        Node {
            id: "master-1",
            host: "127.0.0.1".into(),
            port: 7001,
            serving: true,
        }
    }

    fn call(line: &str) -> Reply {
        let args: Vec<Bytes> = line
            .split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        cluster(&node(), &args)
    }

    fn error_line(reply: Reply) -> String {
        match reply {
            Reply::Error(e) => e.to_string(),
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn slots_name_this_master_at_its_address_as_owner_of_every_slot() {
        let id = node().cluster_id();
        assert_eq!(id.len(), 40);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            call("CLUSTER SLOTS"),
            Reply::Array(vec![Reply::Array(vec![
                Reply::Integer(0),
                Reply::Integer(16383),
                Reply::Array(vec![
                    bulk("127.0.0.1"),
                    Reply::Integer(7001),
                    bulk(&id),
                    Reply::Map(Vec::new())
                ]),
            ])])
        );
        assert_eq!(
            call("CLUSTER NODES"),
            bulk(&format!(
                "{id} 127.0.0.1:7001@17001 myself,master - 0 0 0 connected 0-16383\n"
            ))
        );
        assert_eq!(call("cluster myid"), bulk(&id));
        assert_eq!(
            call(&format!("CLUSTER REPLICAS {id}")),
            Reply::Array(vec![])
        );
        assert_eq!(
            error_line(call("CLUSTER REPLICAS abc")),
            "ERR Unknown node abc"
        );
    }

    #[test]
    fn keyslot_and_info_answer_as_a_one_shard_cluster() {
        assert_eq!(
            call("CLUSTER KEYSLOT {user1000}.following"),
            Reply::Integer(3443)
        );
        let Reply::Bulk(info) = call("CLUSTER INFO") else {
            panic!()
        };
        let info = String::from_utf8_lossy(&info).into_owned();
        assert!(info.starts_with("cluster_state:ok\r\ncluster_slots_assigned:16384\r\n"));
        assert!(info.contains("cluster_known_nodes:1\r\ncluster_size:1\r\n"));
        let down = Node {
            serving: false,
            ..node()
        };
        let args = vec![Bytes::from_static(b"CLUSTER"), Bytes::from_static(b"INFO")];
        let Reply::Bulk(info) = cluster(&down, &args) else {
            panic!()
        };
        let info = String::from_utf8_lossy(&info).into_owned();
        assert!(info.starts_with(
            "cluster_state:fail\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:0\r\n"
        ));
        assert!(info.contains("cluster_slots_fail:16384\r\n"));
    }

    #[test]
    fn arity_comes_before_refusal_and_unknown_subcommands_are_named() {
        let cases = [
            (
                "CLUSTER SLOTS x",
                "ERR wrong number of arguments for 'cluster|slots' command",
            ),
            (
                "CLUSTER KEYSLOT",
                "ERR wrong number of arguments for 'cluster|keyslot' command",
            ),
            (
                "CLUSTER KEYSLOT a b",
                "ERR wrong number of arguments for 'cluster|keyslot' command",
            ),
            (
                "CLUSTER MEET 127.0.0.1",
                "ERR wrong number of arguments for 'cluster|meet' command",
            ),
            (
                "CLUSTER FOOBAR x",
                "ERR unknown subcommand 'FOOBAR'. Try CLUSTER HELP.",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(error_line(call(line)), want, "{line}");
        }
        for line in [
            "CLUSTER MEET 127.0.0.1 7000",
            "CLUSTER COUNTKEYSINSLOT 1",
            "CLUSTER ADDSLOTS 1",
        ] {
            let e = error_line(call(line));
            assert!(
                e.starts_with("ERR CLUSTER ") && e.contains("is not supported"),
                "{line}: {e}"
            );
        }
    }
}
