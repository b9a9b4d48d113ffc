//! What the server says about itself over RESP: INFO's sections, CONFIG
//! GET's settings (distcache's, under Redis's names where Redis has one),
//! and COMMAND's descriptions of both command tables, in Redis 7's reply
//! shapes.

use std::fmt::Write as _;

use bytes::Bytes;
use distcache_core::command::glob::glob_match;
use distcache_core::command::table::{CommandSpec, Group, KeySpec, flags};
use distcache_core::command::{COMMANDS, CommandError, Reply, table};

use super::front::{FRONT_COMMANDS, FrontCommand};
use super::{MAX_CLIENTS, REDIS_VERSION, RespServer};
use crate::master::NodeState;
use crate::master::pubsub::registry::Space;

fn bulk(s: &str) -> Reply {
    Reply::bulk(s.as_bytes())
}

fn status(s: &str) -> Reply {
    Reply::Status(s.to_owned().into())
}

fn error(line: String) -> Reply {
    Reply::Error(CommandError::Line(line))
}

/// The sections INFO prints with no argument (and with `default`, `all`,
/// `everything`), in order.
const SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "cluster",
    "distcache",
    "keyspace",
];

/// INFO [section...].
pub(super) fn info(server: &RespServer, args: &[Bytes]) -> Reply {
    let asked: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let all = asked.is_empty()
        || asked
            .iter()
            .any(|a| matches!(a.as_str(), "default" | "all" | "everything"));
    let mut out = String::new();
    for section in SECTIONS {
        if all || asked.iter().any(|a| a == section) {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            write_section(server, section, &mut out);
        }
    }
    Reply::bulk(out.as_bytes())
}

/// What the cluster holds, from the masters' last health checks (no call
/// to the auxiliaries: INFO stays cheap).
struct Totals {
    nodes: usize,
    nodes_up: usize,
    items: u64,
    bytes: u64,
    copies: usize,
}

fn totals(server: &RespServer) -> Totals {
    let nodes = server.master.nodes();
    let view = server.master.view.load();
    Totals {
        nodes: nodes.len(),
        nodes_up: nodes.iter().filter(|n| n.state == NodeState::Up).count(),
        items: nodes.iter().map(|n| n.items).sum(),
        bytes: nodes.iter().map(|n| n.bytes).sum(),
        copies: view.replicas(view.target.ring.members().len()).max(1),
    }
}

fn human(bytes: u64) -> String {
    const UNITS: &[&str] = &["B", "K", "M", "G", "T"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.2}{}", UNITS[unit])
    }
}

fn write_section(server: &RespServer, section: &str, out: &mut String) {
    let master = &server.master;
    let metrics = &master.metrics.resp;
    let mut s = Section(out);
    match section {
        "server" => {
            s.header("Server");
            let uptime = server.started.elapsed().as_secs();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            s.field("redis_version", REDIS_VERSION);
            s.field("redis_mode", "cluster");
            s.field("distcache_version", env!("CARGO_PKG_VERSION"));
            s.field("distcache_node", &master.id);
            s.field("os", std::env::consts::OS);
            s.field("arch_bits", usize::BITS);
            s.field("process_id", std::process::id());
            s.field("run_id", &server.run_id);
            s.field("tcp_port", server.port);
            s.field("server_time_usec", now.as_micros());
            s.field("uptime_in_seconds", uptime);
            s.field("uptime_in_days", uptime / 86_400);
            s.field("hz", 10);
            s.field("executable", "");
            s.field("config_file", "");
        }
        "clients" => {
            s.header("Clients");
            s.field("connected_clients", server.connected_clients());
            s.field("maxclients", MAX_CLIENTS);
            s.field(
                "blocked_clients",
                server
                    .blocked_clients
                    .load(std::sync::atomic::Ordering::Relaxed),
            );
            s.field("tracking_clients", 0);
        }
        "memory" => {
            s.header("Memory");
            let t = totals(server);
            s.field("used_memory", t.bytes);
            s.field("used_memory_human", human(t.bytes));
            s.field("maxmemory", 0);
            s.field("maxmemory_human", "0B");
            s.field("maxmemory_policy", "allkeys-lru");
            s.field("mem_allocator", "libc");
        }
        "persistence" => {
            s.header("Persistence");
            s.field("loading", 0);
            s.field("async_loading", 0);
            s.field("rdb_changes_since_last_save", 0);
            s.field("rdb_bgsave_in_progress", 0);
            s.field(
                "rdb_last_save_time",
                server
                    .started_at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            );
            s.field("aof_enabled", 0);
        }
        "stats" => {
            s.header("Stats");
            let commands: u64 = COMMANDS
                .iter()
                .map(|c| c.name)
                .chain(FRONT_COMMANDS.iter().map(|c| c.name))
                .chain(["unknown"])
                .map(|name| metrics.commands.with_label_values(&[name]).get())
                .sum();
            s.field(
                "total_connections_received",
                metrics.connections_accepted.get(),
            );
            s.field("total_commands_processed", commands);
            s.field("instantaneous_ops_per_sec", 0);
            s.field(
                "rejected_connections",
                metrics.rejected.with_label_values(&["max_clients"]).get(),
            );
            s.field("expired_keys", 0);
            s.field("evicted_keys", 0);
            s.field("keyspace_hits", 0);
            s.field("keyspace_misses", 0);
            // This master's subscriptions, as PUBSUB answers.
            let pubsub = &server.master.pubsub;
            s.field("pubsub_channels", pubsub.channel_count(Space::Global));
            s.field("pubsub_patterns", pubsub.pattern_count());
            s.field("pubsubshard_channels", pubsub.channel_count(Space::Shard));
        }
        "replication" => {
            s.header("Replication");
            s.field("role", "master");
            s.field("connected_slaves", 0);
            s.field("master_failover_state", "no-failover");
            s.field("master_replid", &server.run_id);
            s.field("master_repl_offset", 0);
        }
        "cpu" => {
            s.header("CPU");
            let process = CpuSeconds::read("/proc/self/stat");
            let main = CpuSeconds::read(&format!("/proc/self/task/{}/stat", std::process::id()));
            s.field("used_cpu_sys", format_args!("{:.6}", process.sys));
            s.field("used_cpu_user", format_args!("{:.6}", process.user));
            s.field(
                "used_cpu_sys_children",
                format_args!("{:.6}", process.children_sys),
            );
            s.field(
                "used_cpu_user_children",
                format_args!("{:.6}", process.children_user),
            );
            s.field("used_cpu_sys_main_thread", format_args!("{:.6}", main.sys));
            s.field(
                "used_cpu_user_main_thread",
                format_args!("{:.6}", main.user),
            );
        }
        "distcache" => {
            s.header("Distcache");
            let t = totals(server);
            let view = master.view.load();
            s.field("auxiliaries", t.nodes);
            s.field("auxiliaries_up", t.nodes_up);
            s.field("copies_per_key", t.copies);
            s.field("items_with_copies", t.items);
            s.field("ring_epoch", view.epoch);
            s.field("rebalancing", u8::from(view.rebalancing()));
        }
        // Cluster clients see a one-shard cluster (resp/cluster.rs).
        "cluster" => {
            s.header("Cluster");
            s.field("cluster_enabled", 1);
        }
        "keyspace" => {
            s.header("Keyspace");
            let t = totals(server);
            // Auxiliaries count copies: one key is held `copies` times.
            let keys = t.items / t.copies as u64;
            if keys > 0 {
                s.field("db0", format!("keys={keys},expires=0,avg_ttl=0"));
            }
        }
        _ => {}
    }
}

/// INFO's text for one section.
struct Section<'a>(&'a mut String);

impl Section<'_> {
    fn header(&mut self, title: &str) {
        let _ = write!(self.0, "# {title}\r\n");
    }

    fn field(&mut self, name: &str, value: impl std::fmt::Display) {
        let _ = write!(self.0, "{name}:{value}\r\n");
    }
}

/// CPU time, as INFO's `cpu` section reports Redis's own (`getrusage`).
#[derive(Default)]
struct CpuSeconds {
    user: f64,
    sys: f64,
    children_user: f64,
    children_sys: f64,
}

impl CpuSeconds {
    /// From a `/proc/.../stat` file: utime, stime, cutime and cstime,
    /// its fields 14 to 17. The kernel counts them in USER_HZ ticks,
    /// which its ABI fixes at 100 a second on Linux's architectures.
    /// Zeros where there is no such file (not Linux).
    fn read(path: &str) -> CpuSeconds {
        const TICKS_PER_SECOND: f64 = 100.0;
        let Ok(stat) = std::fs::read_to_string(path) else {
            return CpuSeconds::default();
        };
        // Field 2, the command name, is in parentheses and may hold
        // spaces: count from the closing one, which field 3 follows.
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let ticks: Vec<f64> = after_name
            .split_whitespace()
            .skip(14 - 3)
            .take(4)
            .map(|t| t.parse().unwrap_or(0.0) / TICKS_PER_SECOND)
            .collect();
        let [user, sys, children_user, children_sys] = ticks[..] else {
            return CpuSeconds::default();
        };
        CpuSeconds {
            user,
            sys,
            children_user,
            children_sys,
        }
    }
}

/// CONFIG GET pattern... (CONFIG SET and the rest are refused: settings are
/// read at start from the environment).
pub(super) fn config(server: &RespServer, args: &[Bytes]) -> Reply {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    match sub.as_str() {
        "get" if args.len() >= 3 => {
            let settings = settings(server);
            let mut found: Vec<(Reply, Reply)> = Vec::new();
            for (name, value) in &settings {
                if args[2..]
                    .iter()
                    .any(|p| glob_match(&p.to_ascii_lowercase(), name.as_bytes()))
                {
                    found.push((bulk(name), bulk(value)));
                }
            }
            Reply::Map(found)
        }
        "get" => error("ERR wrong number of arguments for 'config|get' command".into()),
        "help" if args.len() == 2 => super::front::help("config", CONFIG_HELP),
        "help" => error("ERR wrong number of arguments for 'config|help' command".into()),
        "set" | "resetstat" | "rewrite" => error(format!(
            "ERR CONFIG {} is not supported by distcache: settings are environment variables \
             (or flags) read at start, see the README's settings table",
            sub.to_ascii_uppercase()
        )),
        _ => error(format!(
            "ERR unknown subcommand '{}'. Try CONFIG HELP.",
            String::from_utf8_lossy(&args[1])
        )),
    }
}

/// What `CONFIG HELP` lists.
const CONFIG_HELP: &[(&str, &str)] = &[
    (
        "GET <pattern> [<pattern> ...]",
        "Return distcache's settings, under Redis's names, that match the patterns.",
    ),
    (
        "SET | RESETSTAT | REWRITE",
        "Refused: settings are environment variables (or flags) read at start.",
    ),
];

/// What `COMMAND HELP` lists.
const COMMAND_HELP: &[(&str, &str)] = &[
    ("(no subcommand)", "Return details about all commands."),
    ("COUNT", "Return the total number of commands."),
    (
        "DOCS [<command-name> ...]",
        "Return documentation details about the commands, or all of them.",
    ),
    (
        "GETKEYS <full-command>",
        "Return the keys from a full command.",
    ),
    (
        "INFO [<command-name> ...]",
        "Return details about the commands, or all of them.",
    ),
    ("LIST", "Return a list of all commands."),
];

/// distcache's settings under Redis's names.
fn settings(server: &RespServer) -> Vec<(&'static str, String)> {
    let config = &server.master.config;
    vec![
        ("appendonly", "no".into()),
        ("bind", config.common.bind_addr.to_string()),
        ("databases", "1".into()),
        ("maxclients", MAX_CLIENTS.to_string()),
        ("maxmemory", "0".into()),
        ("maxmemory-policy", "allkeys-lru".into()),
        ("port", server.port.to_string()),
        (
            "proto-max-bulk-len",
            server.limits.max_bulk_bytes.to_string(),
        ),
        ("save", String::new()),
        (
            "slowlog-log-slower-than",
            server.slowlog.slower_than_us().to_string(),
        ),
        ("slowlog-max-len", server.slowlog.max_len().to_string()),
        ("timeout", "0".into()),
    ]
}

/// Redis's ACL categories of a data command.
fn acl_categories(spec: &CommandSpec) -> Vec<&'static str> {
    // A container (XGROUP, XINFO) is only `@slow` in Redis; its
    // subcommands carry the rest.
    if spec.has(flags::CONTAINER) {
        return vec!["@slow"];
    }
    let mut cats = Vec::new();
    // A script's access is its commands' (Redis files EVAL under neither).
    let may_replicate = spec.has(flags::MAY_REPLICATE);
    if spec.has(flags::WRITE) && !spec.has(flags::SCRIPTING) && !may_replicate {
        cats.push("@write");
    }
    if (spec.has(flags::READONLY) || may_replicate) && !spec.has(flags::SCRIPTING) {
        cats.push("@read");
    }
    if matches!(spec.name, "sort" | "sort_ro") {
        // SORT reads (or STOREs) lists, sets and sorted sets: Redis files
        // it under the three, as slow and dangerous.
        cats.extend(["@set", "@sortedset", "@list", "@slow", "@dangerous"]);
        return cats;
    }
    cats.push(match spec.group {
        Group::String => "@string",
        Group::Generic => "@keyspace",
        Group::Hash => "@hash",
        Group::List => "@list",
        Group::Set => "@set",
        Group::SortedSet => "@sortedset",
        Group::Transactions => "@transaction",
        Group::Server => "@keyspace",
        // The PUBSUB container is only `@slow` in Redis; its subcommands
        // are `@pubsub`.
        Group::PubSub if spec.name == "pubsub" => "@slow",
        Group::PubSub => "@pubsub",
        Group::Scripting => "@scripting",
        Group::Bitmap => "@bitmap",
        Group::Stream => "@stream",
        Group::Geo => "@geo",
        Group::HyperLogLog => "@hyperloglog",
    });
    if spec.name == "pubsub" {
        return cats;
    }
    cats.push(if spec.has(flags::FAST) {
        "@fast"
    } else {
        "@slow"
    });
    if spec.has(flags::BLOCKING) {
        cats.push("@blocking");
    }
    if spec.has(flags::ADMIN) || spec.name == "keys" {
        // Redis's category for FLUSHALL and FLUSHDB, and for KEYS, which
        // walks the whole keyspace (ACL rules like `-@dangerous` rely on it).
        cats.push("@dangerous");
    }
    cats
}

fn spec_flags(spec: &CommandSpec) -> Vec<Reply> {
    if spec.has(flags::PUBSUB) {
        return pubsub_flags(spec).into_iter().map(status).collect();
    }
    let mut names = Vec::new();
    // EVAL may write, and is routed as a write; Redis reports no `write`
    // flag for it, since it cannot tell; nor for a container (XGROUP),
    // whose subcommands differ.
    // PFCOUNT is routed as a write but filed as a read (`may_replicate`).
    let unsaid =
        spec.has(flags::SCRIPTING) || spec.has(flags::CONTAINER) || spec.has(flags::MAY_REPLICATE);
    let read = if spec.has(flags::MAY_REPLICATE) {
        flags::MAY_REPLICATE
    } else if spec.has(flags::CONTAINER) {
        0
    } else {
        flags::READONLY
    };
    for (bit, name) in [
        (if unsaid { 0 } else { flags::WRITE }, "write"),
        (read, "readonly"),
        (flags::DENYOOM, "denyoom"),
        (flags::FAST, "fast"),
        (flags::ADMIN, "admin"),
        (flags::BLOCKING, "blocking"),
    ] {
        if spec.has(bit) {
            names.push(name);
        }
    }
    if spec.has(flags::TRANSACTION) {
        names.extend(["noscript", "loading", "stale", "allow_busy"]);
    }
    if spec.has(flags::SCRIPTING) {
        names.extend(["noscript", "stale"]);
    }
    if spec.keys.movable() {
        names.push("movablekeys");
    }
    names.into_iter().map(status).collect()
}

/// Redis 7's flags of the Pub/Sub commands, in Redis's order.
fn pubsub_flags(spec: &CommandSpec) -> Vec<&'static str> {
    // The PUBSUB container has none in Redis; its subcommands have them.
    if spec.name == "pubsub" {
        return Vec::new();
    }
    let mut names = vec!["pubsub"];
    if spec.has(flags::SUBSCRIPTION) {
        names.push("noscript");
    }
    names.extend(["loading", "stale"]);
    if spec.has(flags::FAST) {
        names.push("fast");
    }
    names
}

fn spec_tips(spec: &CommandSpec) -> Vec<Reply> {
    let mut tips = Vec::new();
    if spec.has(flags::RANDOM_OUTPUT) {
        tips.push(bulk("nondeterministic_output"));
    }
    if spec.has(flags::UNORDERED_OUTPUT) {
        tips.push(bulk("nondeterministic_output_order"));
    }
    tips
}

/// A map of a key spec's fields, as COMMAND INFO shows them.
fn spec_map(pairs: Vec<(&str, Reply)>) -> Reply {
    Reply::Map(pairs.into_iter().map(|(k, v)| (bulk(k), v)).collect())
}

/// A key spec whose search begins at argument `index`, keys found by
/// `find`, with its access `flags`.
fn at_index(flags: &[&str], index: usize, find: Reply) -> Reply {
    spec_map(vec![
        (
            "flags",
            Reply::Set(flags.iter().map(|f| status(f)).collect()),
        ),
        (
            "begin_search",
            spec_map(vec![
                ("type", bulk("index")),
                (
                    "spec",
                    spec_map(vec![("index", Reply::Integer(index as i64))]),
                ),
            ]),
        ),
        ("find_keys", find),
    ])
}

/// Keys found from the search's start to `lastkey`, every `step`.
fn found_in_range(lastkey: i64, step: usize) -> Reply {
    spec_map(vec![
        ("type", bulk("range")),
        (
            "spec",
            spec_map(vec![
                ("lastkey", Reply::Integer(lastkey)),
                ("keystep", Reply::Integer(step as i64)),
                ("limit", Reply::Integer(0)),
            ]),
        ),
    ])
}

/// Redis 7's key specifications, from the table's key positions.
fn key_specs(spec: &CommandSpec) -> Vec<Reply> {
    let map = spec_map;
    let one = |access: [&'static str; 2], index: usize, find: Reply| at_index(&access, index, find);
    let range = found_in_range;
    let keynum = || {
        map(vec![
            ("type", bulk("keynum")),
            (
                "spec",
                map(vec![
                    ("keynumidx", Reply::Integer(0)),
                    ("firstkey", Reply::Integer(1)),
                    ("keystep", Reply::Integer(1)),
                ]),
            ),
        ])
    };
    if spec.has(flags::CONTAINER) {
        return Vec::new();
    }
    let access = if spec.has(flags::WRITE) {
        ["RW", "update"]
    } else {
        ["RO", "access"]
    };
    match spec.keys {
        KeySpec::None => Vec::new(),
        KeySpec::Range { first, last, step } => {
            let lastkey = if last < 0 {
                i64::from(last)
            } else {
                i64::from(last) - first as i64
            };
            vec![one(access, first, range(lastkey, step))]
        }
        // Shard channels: where keys would be, but not keys.
        KeySpec::Channels { last } => {
            let lastkey = if last < 0 {
                i64::from(last)
            } else {
                i64::from(last) - 1
            };
            vec![at_index(&["not_key"], 1, range(lastkey, 1))]
        }
        KeySpec::NumKeys { at } => vec![one(access, at, keynum())],
        // The destination is overwritten; the sources are read.
        KeySpec::StoreNumKeys { at } => vec![
            one(["OW", "update"], 1, range(0, 1)),
            one(["RO", "access"], at, keynum()),
        ],
        // Redis's spec for XREAD: after the word STREAMS, the first half
        // of what is left.
        KeySpec::Streams => vec![after_keyword(access, "STREAMS", 1, -1, 2)],
        // GEORADIUS: the source, and the key after STORE or STOREDIST.
        KeySpec::GeoStore { options_at } => vec![
            one(["RO", "access"], 1, range(0, 1)),
            after_keyword(["OW", "update"], "STORE", options_at, 0, 0),
            after_keyword(["OW", "update"], "STOREDIST", options_at, 0, 0),
        ],
        // SORT and SORT_RO: the sorted key; the keys BY and GET patterns
        // would read, and STORE's (SORT only), which Redis files as found
        // in an unknown way (named by the elements, or anywhere among the
        // options).
        KeySpec::Sort => {
            let unknown = || map(vec![("type", bulk("unknown")), ("spec", map(Vec::new()))]);
            let found_unknown = |flags: [&'static str; 2]| {
                map(vec![
                    ("flags", Reply::Set(flags.into_iter().map(status).collect())),
                    ("begin_search", unknown()),
                    ("find_keys", unknown()),
                ])
            };
            let mut specs = vec![
                one(["RO", "access"], 1, range(0, 1)),
                found_unknown(["RO", "access"]),
            ];
            if spec.has(flags::WRITE) {
                specs.push(found_unknown(["OW", "update"]));
            }
            specs
        }
    }
}

/// A key spec found after `keyword`, searched from `startfrom`: keys up
/// to `lastkey` after it (-1: the end), `limit` (0: all; 2: half).
fn after_keyword(
    access: [&'static str; 2],
    keyword: &str,
    startfrom: usize,
    lastkey: i64,
    limit: i64,
) -> Reply {
    let map = |pairs: Vec<(&str, Reply)>| {
        Reply::Map(pairs.into_iter().map(|(k, v)| (bulk(k), v)).collect())
    };
    map(vec![
        (
            "flags",
            Reply::Set(access.iter().map(|f| status(f)).collect()),
        ),
        (
            "begin_search",
            map(vec![
                ("type", bulk("keyword")),
                (
                    "spec",
                    map(vec![
                        ("keyword", bulk(keyword)),
                        ("startfrom", Reply::Integer(startfrom as i64)),
                    ]),
                ),
            ]),
        ),
        (
            "find_keys",
            map(vec![
                ("type", bulk("range")),
                (
                    "spec",
                    map(vec![
                        ("lastkey", Reply::Integer(lastkey)),
                        ("keystep", Reply::Integer(1)),
                        ("limit", Reply::Integer(limit)),
                    ]),
                ),
            ]),
        ),
    ])
}

/// One command as `COMMAND INFO` describes it: name, arity, flags, first
/// key, last key, step, ACL categories, tips, key specs, subcommands.
fn spec_info(spec: &CommandSpec) -> Reply {
    let (first, last, step) = spec.legacy_key_range();
    Reply::Array(vec![
        bulk(spec.name),
        Reply::Integer(i64::from(spec.arity)),
        Reply::Set(spec_flags(spec)),
        Reply::Integer(first),
        Reply::Integer(last),
        Reply::Integer(step),
        Reply::Set(acl_categories(spec).into_iter().map(status).collect()),
        Reply::Set(spec_tips(spec)),
        Reply::Array(key_specs(spec)),
        Reply::Array(subcommand_infos(spec)),
    ])
}

/// A data container's subcommands (XGROUP, XINFO, OBJECT) as Redis 7.0
/// describes them: each with its own flags, key at 2 and key spec.
/// Cluster clients need them: redis-py finds a container's key here, and
/// without them cannot send XINFO, XGROUP or OBJECT to a cluster.
fn subcommand_infos(spec: &CommandSpec) -> Vec<Reply> {
    let group = match spec.group {
        Group::Stream => "@stream",
        _ => "@keyspace",
    };
    distcache_core::command::stream::subcommands(spec.name)
        .iter()
        .map(|&(name, arity, full)| {
            let keyed = !matches!(name, "help" | "doctor" | "malloc-stats" | "purge" | "stats");
            let (flags, key_flags): (&[&str], &[&str]) = match full {
                "xgroup|create" | "xgroup|createconsumer" => {
                    (&["write", "denyoom"], &["RW", "insert"])
                }
                "xgroup|setid" => (&["write"], &["RW", "update"]),
                "xgroup|destroy" | "xgroup|delconsumer" => (&["write"], &["RW", "delete"]),
                _ if !keyed => (&["loading", "stale"], &[]),
                _ if spec.group == Group::Stream => (&["readonly"], &["RO", "access"]),
                _ => (&["readonly"], &["RO"]),
            };
            let mut acl = Vec::new();
            if flags.contains(&"write") {
                acl.push("@write");
            }
            if flags.contains(&"readonly") {
                acl.push("@read");
            }
            acl.extend([group, "@slow"]);

            let key_spec = || at_index(key_flags, 2, found_in_range(0, 1));
            let position = i64::from(keyed) * 2;
            Reply::Array(vec![
                bulk(full),
                Reply::Integer(i64::from(arity)),
                Reply::Set(flags.iter().map(|f| status(f)).collect()),
                Reply::Integer(position),
                Reply::Integer(position),
                Reply::Integer(i64::from(keyed)),
                Reply::Set(acl.into_iter().map(status).collect()),
                Reply::Set(Vec::new()),
                Reply::Array(if keyed { vec![key_spec()] } else { Vec::new() }),
                Reply::Array(Vec::new()),
            ])
        })
        .collect()
}

fn front_info(c: &FrontCommand) -> Reply {
    Reply::Array(vec![
        bulk(c.name),
        Reply::Integer(i64::from(c.arity)),
        Reply::Set(c.flags.iter().map(|f| status(f)).collect()),
        Reply::Integer(0),
        Reply::Integer(0),
        Reply::Integer(0),
        Reply::Set(c.acl.iter().map(|a| status(a)).collect()),
        Reply::Set(c.tips.iter().map(|t| bulk(t)).collect()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
    ])
}

fn docs(summary: &str, since: Option<&str>, group: &str) -> Reply {
    let mut fields = vec![(bulk("summary"), bulk(summary))];
    if let Some(since) = since {
        fields.push((bulk("since"), bulk(since)));
    }
    fields.push((bulk("group"), bulk(group)));
    Reply::Map(fields)
}

/// Both tables, as (name, COMMAND INFO entry, COMMAND DOCS entry).
fn described(name: &[u8]) -> Option<(Reply, Reply)> {
    if let Some(spec) = table::lookup(name) {
        return Some((spec_info(spec), docs(spec.summary, None, spec.group.name())));
    }
    super::front::lookup(name).map(|c| (front_info(c), docs(c.summary, Some(c.since), c.group)))
}

fn all_names() -> impl Iterator<Item = &'static str> {
    COMMANDS
        .iter()
        .map(|c| c.name)
        .chain(FRONT_COMMANDS.iter().map(|c| c.name))
}

/// COMMAND [COUNT | INFO name... | DOCS name... | LIST | GETKEYS command args...].
pub(super) fn command(args: &[Bytes]) -> Reply {
    let Some(sub) = args.get(1) else {
        let all = all_names()
            .filter_map(|n| described(n.as_bytes()))
            .map(|(i, _)| i);
        return Reply::Array(all.collect());
    };
    let lower = String::from_utf8_lossy(sub).to_ascii_lowercase();
    match lower.as_str() {
        "count" if args.len() == 2 => Reply::Integer(all_names().count() as i64),
        "list" => list(&args[2..]),
        "info" if args.len() == 2 => command(&args[..1]),
        "info" => Reply::Array(
            args[2..]
                .iter()
                .map(|n| described(n).map_or(Reply::Null, |(i, _)| i))
                .collect(),
        ),
        "docs" => {
            let names: Vec<Bytes> = if args.len() == 2 {
                all_names()
                    .map(|n| Bytes::from_static(n.as_bytes()))
                    .collect()
            } else {
                args[2..].to_vec()
            };
            Reply::Map(
                names
                    .iter()
                    .filter_map(|n| {
                        let (_, docs) = described(n)?;
                        Some((bulk(&String::from_utf8_lossy(n).to_ascii_lowercase()), docs))
                    })
                    .collect(),
            )
        }
        "getkeys" if args.len() >= 4 => getkeys(&args[2..]),
        "help" if args.len() == 2 => super::front::help("command", COMMAND_HELP),
        "count" | "getkeys" | "help" => error(format!(
            "ERR wrong number of arguments for 'command|{lower}' command"
        )),
        _ => error(format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(sub)
        )),
    }
}

/// COMMAND LIST [FILTERBY MODULE name | FILTERBY ACLCAT category |
/// FILTERBY PATTERN pattern]. As in Redis 7.0, one FILTERBY at most and it
/// must end the command (anything else is a syntax error); a category is
/// named without its `@`, and both it and the pattern match regardless of
/// case. No command comes from a module, so MODULE lists none.
fn list(options: &[Bytes]) -> Reply {
    let [by, kind, arg] = options else {
        if options.is_empty() {
            return Reply::Array(all_names().map(bulk).collect());
        }
        return error("ERR syntax error".into());
    };
    if !by.eq_ignore_ascii_case(b"filterby") {
        return error("ERR syntax error".into());
    }
    let arg = arg.to_ascii_lowercase();
    let names = all_names();
    let kept: Vec<Reply> = match kind.to_ascii_lowercase().as_slice() {
        b"module" => Vec::new(),
        b"aclcat" => names
            .filter(|n| {
                categories(n)
                    .iter()
                    .any(|c| c.strip_prefix('@').is_some_and(|c| c.as_bytes() == arg))
            })
            .map(bulk)
            .collect(),
        b"pattern" => names
            .filter(|n| glob_match(&arg, n.as_bytes()))
            .map(bulk)
            .collect(),
        _ => return error("ERR syntax error".into()),
    };
    Reply::Array(kept)
}

/// A command's ACL categories, from whichever table holds it.
fn categories(name: &str) -> Vec<&'static str> {
    match table::lookup(name.as_bytes()) {
        Some(spec) => acl_categories(spec),
        None => super::front::lookup(name.as_bytes()).map_or_else(Vec::new, |c| c.acl.to_vec()),
    }
}

/// COMMAND GETKEYS: the keys of a data command, as the table finds them.
fn getkeys(command: &[Bytes]) -> Reply {
    let Some(spec) = table::lookup(&command[0]) else {
        if super::front::lookup(&command[0]).is_some() {
            return error("ERR The command has no key arguments".into());
        }
        return error("ERR Invalid command specified".into());
    };
    if !spec.arity_ok(command.len()) {
        return error("ERR Invalid number of arguments specified for command".into());
    }
    let keys = spec.key_indexes(command);
    if keys.is_empty() {
        return error("ERR The command has no key arguments".into());
    }
    Reply::Array(
        keys.into_iter()
            .map(|i| Reply::Bulk(command[i].clone()))
            .collect(),
    )
}
