//! The commands the RESP listener answers itself: the connection's own
//! state (AUTH, HELLO, SELECT, CLIENT...) and the server's (INFO, CONFIG
//! GET, COMMAND, TIME...), declared once in [`FRONT_COMMANDS`], which
//! `COMMAND` reports beside the data commands' table.
//!
//! Redis's order of checks is kept: unknown command or wrong arity, then
//! `NOAUTH`, then the role (`NOPERM`). Inside MULTI they are queued, as
//! Redis queues them, and run in their place when EXEC runs (see
//! `Connection::exec`); QUIT and RESET run at once.

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use distcache_core::command::by_name::ByName;
use distcache_core::command::{CommandError, Protocol, Reply, Role as NeededRole};

use super::connection::{Connection, noauth};
use super::info;
use super::{ClientInfo, REDIS_VERSION};
use crate::master::commands::CommandSession;

/// Whether the connection goes on after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Flow {
    /// Read the next request.
    Continue,
    /// Write the replies so far, then close (QUIT, protocol errors).
    Close,
    /// Write the replies so far, then wait for the blocked command
    /// (BLPOP... that found nothing) before reading on.
    Block,
}

/// One command the listener answers, described as Redis's `COMMAND INFO`
/// and `COMMAND DOCS` describe it.
#[derive(Debug)]
pub(super) struct FrontCommand {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis's arity (negative: at least).
    pub arity: i32,
    /// Redis's command flags.
    pub flags: &'static [&'static str],
    /// Redis's ACL categories.
    pub acl: &'static [&'static str],
    /// Redis's command tips.
    pub tips: &'static [&'static str],
    /// Redis's documentation group.
    pub group: &'static str,
    /// The Redis version that introduced it.
    pub since: &'static str,
    /// One line for `COMMAND DOCS`.
    pub summary: &'static str,
}

impl FrontCommand {
    /// Whether it may run before AUTH (Redis's `no_auth` flag).
    fn no_auth(&self) -> bool {
        self.flags.contains(&"no_auth")
    }

    pub(super) fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }
}

macro_rules! front {
    ($name:literal, $arity:literal, [$($flag:literal),*], [$($acl:literal),*], [$($tip:literal),*], $group:literal, $since:literal, $summary:literal) => {
        FrontCommand {
            name: $name,
            arity: $arity,
            flags: &[$($flag),*],
            acl: &[$($acl),*],
            tips: &[$($tip),*],
            group: $group,
            since: $since,
            summary: $summary,
        }
    };
}

/// The listener's own commands, sorted by name. Flags, categories and tips
/// are Redis 7's for the same command.
#[rustfmt::skip]
pub(super) const FRONT_COMMANDS: &[FrontCommand] = &[
    front!("asking", 1, ["fast"], ["@fast", "@connection"], [], "cluster", "3.0.0", "Accepted and ignored: keys never move between slots here, so no ASK is ever sent"),
    front!("auth", -2, ["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], ["@fast", "@connection"], [], "connection", "1.0.0", "Authenticates the connection with a token (AUTH token, or AUTH user token)"),
    front!("client", -2, [], ["@slow"], [], "connection", "2.4.0", "Connection state: ID, GETNAME, SETNAME, INFO, LIST, SETINFO, NO-EVICT, NO-TOUCH, HELP"),
    front!("cluster", -2, [], ["@slow"], [], "cluster", "3.0.0", "Redis Cluster's view for cluster clients: this master owning every slot (SLOTS, SHARDS, NODES, INFO, MYID, KEYSLOT...)"),
    front!("command", -1, ["loading", "stale"], ["@slow", "@connection"], ["nondeterministic_output_order"], "server", "2.8.13", "Describes the commands: COUNT, INFO, DOCS, LIST, GETKEYS, HELP"),
    front!("config", -2, [], ["@slow"], [], "server", "2.0.0", "CONFIG GET reads settings under Redis's names; CONFIG SET is refused"),
    front!("echo", 2, ["loading", "stale", "fast"], ["@fast", "@connection"], [], "connection", "1.0.0", "Returns the given string"),
    front!("hello", -1, ["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], ["@fast", "@connection"], [], "connection", "6.0.0", "Handshake: protocol version, AUTH, SETNAME"),
    front!("info", -1, ["loading", "stale"], ["@slow", "@dangerous"], ["nondeterministic_output"], "server", "1.0.0", "Information and statistics about the node and the cluster"),
    front!("lastsave", 1, ["loading", "stale", "fast"], ["@admin", "@fast", "@dangerous"], ["nondeterministic_output"], "server", "1.0.0", "Unix time this master started (it saves nothing itself)"),
    front!("ping", -1, ["fast"], ["@fast", "@connection"], [], "connection", "1.0.0", "Returns PONG, or the given string"),
    front!("quit", -1, ["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], ["@fast", "@connection"], [], "connection", "1.0.0", "Closes the connection"),
    front!("readonly", 1, ["loading", "stale", "fast"], ["@fast", "@connection"], [], "cluster", "3.0.0", "Accepted: every master serves reads (and writes) for every key"),
    front!("readwrite", 1, ["loading", "stale", "fast"], ["@fast", "@connection"], [], "cluster", "3.0.0", "Accepted: every master serves reads (and writes) for every key"),
    front!("reset", 1, ["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], ["@fast", "@connection"], [], "connection", "6.2.0", "Resets the connection: protocol, name, authentication, transaction"),
    front!("select", 2, ["loading", "stale", "fast"], ["@fast", "@connection"], [], "connection", "1.0.0", "Selects database 0, the only one"),
    front!("slowlog", -2, [], ["@slow"], [], "server", "2.2.12", "This master's slowest commands (admin): GET [count], LEN, RESET, HELP"),
    front!("time", 1, ["loading", "stale", "fast"], ["@fast"], ["nondeterministic_output"], "server", "2.6.0", "This master's time: Unix seconds and microseconds"),
    front!("wait", 3, ["noscript"], ["@slow", "@connection"], [], "generic", "3.0.0", "Replicas beyond the leader that the connection's last write reached"),
];

/// [`FRONT_COMMANDS`] by name: every request is looked up here first.
static BY_NAME: LazyLock<ByName<FrontCommand>> =
    LazyLock::new(|| ByName::new(FRONT_COMMANDS, |command| command.name));

/// The subcommands by the full names Redis 7 shows in CLIENT LIST's
/// `cmd=` (`client|list`, not `client`).
const SUBCOMMAND_NAMES: &[&str] = &[
    "client|getname",
    "client|id",
    "client|info",
    "client|kill",
    "client|list",
    "client|no-evict",
    "client|no-touch",
    "client|setinfo",
    "client|setname",
    "cluster|count-failure-reports",
    "cluster|help",
    "cluster|info",
    "cluster|keyslot",
    "cluster|links",
    "cluster|myid",
    "cluster|nodes",
    "cluster|replicas",
    "cluster|shards",
    "cluster|slaves",
    "cluster|slots",
    "command|count",
    "command|docs",
    "command|getkeys",
    "command|info",
    "command|list",
    "config|get",
    "config|resetstat",
    "config|rewrite",
    "config|set",
    "slowlog|get",
    "slowlog|help",
    "slowlog|len",
    "slowlog|reset",
];

/// The name CLIENT LIST shows for this call of `command`: a subcommand's
/// full name, as Redis shows it; the command's own name otherwise.
pub(super) fn shown_name(command: &FrontCommand, args: &[Bytes]) -> &'static str {
    let Some(sub) = args.get(1) else {
        return command.name;
    };
    SUBCOMMAND_NAMES
        .iter()
        .find(|full| {
            full.strip_prefix(command.name)
                .and_then(|rest| rest.strip_prefix('|'))
                .is_some_and(|name| is(sub, name))
        })
        .copied()
        .unwrap_or(command.name)
}

/// The listener's command named `name`, in any case.
pub(super) fn lookup(name: &[u8]) -> Option<&'static FrontCommand> {
    BY_NAME.get(name)
}

fn error(line: impl Into<String>) -> Reply {
    Reply::Error(CommandError::Line(line.into()))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// Redis's rule for client names and library names: printable ASCII, no
/// spaces.
fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

fn wrong_subcommand_arity(command: &str, sub: &[u8]) -> Reply {
    error(format!(
        "ERR wrong number of arguments for '{command}|{}' command",
        text(sub).to_ascii_lowercase()
    ))
}

fn unknown_subcommand(command: &str, sub: &[u8]) -> Reply {
    error(format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        text(sub),
        command.to_ascii_uppercase()
    ))
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// Runs one of the listener's commands.
pub(super) async fn run(
    conn: &mut Connection,
    command: &'static FrontCommand,
    args: &[Bytes],
) -> (Reply, Flow) {
    if !command.arity_ok(args.len()) {
        let refused = conn.session.refuse(CommandError::WrongArity(command.name));
        return (refused, Flow::Continue);
    }
    if conn.role.is_none() && !command.no_auth() {
        return (conn.session.refuse(noauth()), Flow::Continue);
    }
    // SLOWLOG shows other clients' commands and arguments: the admin
    // role's, as FLUSHALL is (Redis files its subcommands `admin`).
    if command.name == "slowlog" {
        if let Err(refused) = admin_only(conn, command.name) {
            return (conn.session.refuse(refused), Flow::Continue);
        }
    }
    // An unknown subcommand, or one of the wrong arity, is refused before
    // subscribed mode is looked at, and before MULTI queues it, as Redis
    // refuses it when it looks the command up.
    if let Some(Reply::Error(e)) = bad_subcommand(command.name, args) {
        return (conn.session.refuse(e), Flow::Continue);
    }
    if let Some(e) =
        super::pubsub::refused_in_subscribed_mode(conn, command.name, shown_name(command, args))
    {
        return (conn.session.refuse(e), Flow::Continue);
    }
    if conn.session.in_transaction() && !matches!(command.name, "quit" | "reset") {
        return (conn.session.queue(args.to_vec()), Flow::Continue);
    }
    let reply = match command.name {
        "auth" => auth(conn, args),
        "asking" | "readonly" | "readwrite" => Reply::OK,
        "client" => client(conn, args),
        "cluster" => {
            let announced = conn.server.master.config.resp_announce_addr.as_deref();
            let (host, port) = announced
                .and_then(crate::config::announced_host_port)
                .unwrap_or_else(|| {
                    let laddr = conn.registered.snapshot().laddr;
                    (laddr.ip().to_string(), laddr.port())
                });
            let serving = conn
                .server
                .master
                .nodes()
                .iter()
                .any(|n| n.state == crate::master::NodeState::Up);
            let node = super::cluster::Node {
                id: &conn.server.master.id,
                host,
                port,
                serving,
            };
            super::cluster::cluster(&node, args)
        }
        "command" => info::command(args),
        "config" => info::config(&conn.server, args),
        "echo" => Reply::Bulk(args[1].clone()),
        "hello" => hello(conn, args),
        "info" => info::info(&conn.server, args),
        "lastsave" => Reply::Integer(unix_secs(conn.server.started_at)),
        // RESP2's subscribed mode answers PING as a message would come.
        "ping"
            if args.len() <= 2
                && conn.protocol == Protocol::Resp2
                && conn.subscriber.is_subscribed() =>
        {
            Reply::Array(vec![
                Reply::bulk(b"pong"),
                Reply::Bulk(args.get(1).cloned().unwrap_or_default()),
            ])
        }
        "ping" if args.len() == 1 => Reply::Status("PONG".into()),
        "ping" if args.len() == 2 => Reply::Bulk(args[1].clone()),
        "ping" => Reply::Error(CommandError::WrongArity("ping")),
        "quit" => return (Reply::OK, Flow::Close),
        "reset" => reset(conn),
        "select" => select(&args[1]),
        "slowlog" => super::slowlog::slowlog(&conn.server.slowlog, args),
        "time" => time(),
        "wait" => wait(conn, args),
        _ => unknown_subcommand(command.name, b""),
    };
    (reply, Flow::Continue)
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// AUTH token, or AUTH user token: the same tokens as the REST API's
/// bearer tokens; the user name is not checked (tokens have no user).
fn auth(conn: &mut Connection, args: &[Bytes]) -> Reply {
    let (user, token) = match args {
        [_, token] => (None, token),
        [_, user, token] => (Some(user), token),
        _ => return Reply::Error(CommandError::Syntax),
    };
    let gate = &conn.server.master.gate;
    if gate.is_open() {
        return match user {
            None => error(
                "ERR AUTH <password> called without any password configured for the default \
                 user. Are you sure your configuration is correct?",
            ),
            Some(_) => Reply::OK,
        };
    }
    match gate.role_of_token(token) {
        Some(role) => {
            conn.role = Some(role);
            Reply::OK
        }
        None => error(WRONGPASS),
    }
}

/// HELLO [protover [AUTH user token] [SETNAME name]].
fn hello(conn: &mut Connection, args: &[Bytes]) -> Reply {
    let mut protocol = None;
    let mut i = 1;
    if let Some(version) = args.get(1) {
        let version = std::str::from_utf8(version)
            .ok()
            .and_then(|v| v.parse::<i64>().ok());
        protocol = match version {
            None => return error("ERR Protocol version is not an integer or out of range"),
            Some(2) => Some(Protocol::Resp2),
            Some(3) => Some(Protocol::Resp3),
            Some(_) => return error("NOPROTO unsupported protocol version"),
        };
        i = 2;
    }
    let mut token = None;
    let mut name = None;
    while i < args.len() {
        let left = args.len() - i - 1;
        if is(&args[i], "auth") && left >= 2 {
            token = Some(&args[i + 2]);
            i += 3;
        } else if is(&args[i], "setname") && left >= 1 {
            name = Some(&args[i + 1]);
            i += 2;
        } else {
            return error(format!(
                "ERR Syntax error in HELLO option '{}'",
                text(&args[i])
            ));
        }
    }
    let gate = &conn.server.master.gate;
    if let Some(token) = token {
        if !gate.is_open() {
            match gate.role_of_token(token) {
                Some(role) => conn.role = Some(role),
                None => return error(WRONGPASS),
            }
        }
    }
    if conn.role.is_none() {
        return error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
             HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
             select the RESP protocol version at the same time",
        );
    }
    if let Some(name) = name {
        if let Err(refused) = set_name(conn, name) {
            return refused;
        }
    }
    if let Some(protocol) = protocol {
        conn.protocol = protocol;
    }
    let proto = match conn.protocol {
        Protocol::Resp2 => 2,
        Protocol::Resp3 => 3,
    };
    let field = |k: &str, v: Reply| (Reply::bulk(k.as_bytes()), v);
    Reply::Map(vec![
        field("server", Reply::bulk(b"redis")),
        field("version", Reply::bulk(REDIS_VERSION.as_bytes())),
        field("proto", Reply::Integer(proto)),
        field("id", Reply::Integer(conn.id as i64)),
        field("mode", Reply::bulk(b"cluster")),
        field("role", Reply::bulk(b"master")),
        field("modules", Reply::Array(Vec::new())),
    ])
}

fn set_name(conn: &mut Connection, name: &[u8]) -> Result<(), Reply> {
    if !valid_name(name) {
        return Err(error(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    let name = (!name.is_empty()).then(|| text(name));
    conn.registered.update(|c| c.name = name);
    Ok(())
}

/// RESET: back to how the connection started, its subscriptions left.
fn reset(conn: &mut Connection) -> Reply {
    conn.session = CommandSession::new();
    conn.subscriber.clear();
    conn.show_subscriptions();
    conn.protocol = Protocol::Resp2;
    conn.role = Connection::initial_role(&conn.server);
    conn.registered.update(|c| c.name = None);
    Reply::Status("RESET".into())
}

fn select(index: &[u8]) -> Reply {
    match std::str::from_utf8(index)
        .ok()
        .and_then(|i| i.parse::<i64>().ok())
    {
        None => Reply::Error(CommandError::NotInteger),
        Some(0) => Reply::OK,
        Some(_) => Reply::Error(CommandError::Other("DB index is out of range")),
    }
}

fn time() -> Reply {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Reply::Array(vec![
        Reply::bulk(now.as_secs().to_string().as_bytes()),
        Reply::bulk(now.subsec_micros().to_string().as_bytes()),
    ])
}

/// WAIT numreplicas timeout: answers at once with the replicas beyond the
/// leader that this connection's last write reached before it was
/// acknowledged (0 before any write). Nothing is waited for: under
/// `WRITE_QUORUM=all` an acknowledged write has already reached every live
/// replica of its key, and under `one` the rest follow in the background
/// and are not counted.
fn wait(conn: &Connection, args: &[Bytes]) -> Reply {
    let number = |b: &[u8]| {
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
    };
    let (Some(_), Some(timeout)) = (number(&args[1]), number(&args[2])) else {
        return Reply::Error(CommandError::NotInteger);
    };
    if timeout < 0 {
        return error("ERR timeout is negative");
    }
    Reply::Integer(conn.session.last_write_reached() as i64)
}

/// The subcommand of a CLIENT call, lower-case, or the error for one
/// that does not exist or has the wrong arity (Redis checks both before
/// queueing it in a transaction).
fn client_subcommand(args: &[Bytes]) -> Result<String, Reply> {
    let sub = &args[1];
    let lower = text(sub).to_ascii_lowercase();
    let argc = args.len();
    let arity_ok = match lower.as_str() {
        "id" | "getname" | "info" | "help" => argc == 2,
        "setname" | "no-evict" | "no-touch" => argc == 3,
        "kill" => argc >= 3,
        "setinfo" => argc == 4,
        "list" => argc >= 2,
        _ => return Err(unknown_subcommand("client", sub)),
    };
    if !arity_ok {
        return Err(wrong_subcommand_arity("client", sub));
    }
    Ok(lower)
}

/// The error for a CLIENT, CONFIG or COMMAND call whose subcommand does
/// not exist or has the wrong arity: Redis gives it while queueing, which
/// dooms the transaction (the answers when it runs say the same).
fn bad_subcommand(name: &str, args: &[Bytes]) -> Option<Reply> {
    let sub = args.get(1)?;
    let lower = text(sub).to_ascii_lowercase();
    let argc = args.len();
    let arity_ok = match (name, lower.as_str()) {
        ("client", _) => return client_subcommand(args).err(),
        ("cluster", _) => return super::cluster::refused_while_queued(args),
        ("slowlog", _) => return super::slowlog::refused(args),
        ("config", "get") => argc >= 3,
        ("config" | "command", "help") => argc == 2,
        ("config", "set" | "resetstat" | "rewrite") => true,
        ("command", "count") => argc == 2,
        ("command", "list") => true,
        ("command", "getkeys") => argc >= 4,
        ("command", "info" | "docs") => true,
        ("config" | "command", _) => return Some(unknown_subcommand(name, sub)),
        _ => return None,
    };
    (!arity_ok).then(|| wrong_subcommand_arity(name, sub))
}

/// CLIENT and its subcommands.
fn client(conn: &mut Connection, args: &[Bytes]) -> Reply {
    let lower = match client_subcommand(args) {
        Ok(lower) => lower,
        Err(refused) => return refused,
    };
    match lower.as_str() {
        "id" => Reply::Integer(conn.id as i64),
        "getname" => match conn.registered.snapshot().name {
            Some(name) => Reply::bulk(name.as_bytes()),
            None => Reply::Null,
        },
        "setname" => match set_name(conn, &args[2]) {
            Ok(()) => Reply::OK,
            Err(refused) => refused,
        },
        "info" => Reply::bulk(client_line(&conn.registered.snapshot()).as_bytes()),
        "list" => client_list(conn, &args[2..]),
        "kill" => client_kill(conn, args),
        "help" => help("client", CLIENT_HELP),
        "setinfo" => {
            let value = &args[3];
            let attr = if is(&args[2], "lib-name") {
                "lib-name"
            } else if is(&args[2], "lib-ver") {
                "lib-ver"
            } else {
                return error(format!("ERR Unrecognized option '{}'", text(&args[2])));
            };
            if !valid_name(value) {
                return error(format!(
                    "ERR {attr} cannot contain spaces, newlines or special characters."
                ));
            }
            let value = (!value.is_empty()).then(|| text(value));
            conn.registered.update(|c| match attr {
                "lib-name" => c.lib_name = value,
                _ => c.lib_ver = value,
            });
            Reply::OK
        }
        // Accepted and ignored: the auxiliaries' LRU is not steered per
        // client.
        _ if is(&args[2], "on") || is(&args[2], "off") => Reply::OK,
        _ => Reply::Error(CommandError::Syntax),
    }
}

/// What `CLIENT HELP` lists: the subcommands distcache serves.
const CLIENT_HELP: &[(&str, &str)] = &[
    ("GETNAME", "Return the name of the current connection."),
    ("ID", "Return the ID of the current connection."),
    (
        "INFO",
        "Return information about the current client connection.",
    ),
    (
        "KILL <ip:port>",
        "Kill connection made from <ip:port> (admin).",
    ),
    (
        "KILL <option> <value> [<option> <value> [...]]",
        "Kill connections made from clients matching all the filters (admin): ID <client-id>, TYPE (NORMAL|MASTER|REPLICA|PUBSUB), USER default, ADDR <ip:port>, LADDR <ip:port>, SKIPME (YES|NO). Answers how many were killed.",
    ),
    (
        "LIST [TYPE (NORMAL|MASTER|REPLICA|PUBSUB)] [ID <id> [<id> ...]]",
        "Return information about client connections.",
    ),
    (
        "NO-EVICT (ON|OFF)",
        "Accepted; changes nothing (eviction is not steered per client).",
    ),
    (
        "NO-TOUCH (ON|OFF)",
        "Accepted; changes nothing (eviction is not steered per client).",
    ),
    (
        "SETINFO <option> <value>",
        "Set client meta attr. Options are: LIB-NAME, LIB-VER.",
    ),
    (
        "SETNAME <name>",
        "Assign the name <name> to the current connection.",
    ),
];

/// `CLIENT HELP`, `CONFIG HELP` and `COMMAND HELP`, laid out as Redis's
/// (a status line per line, each usage followed by what it does,
/// indented), listing what distcache serves: the errors for an unknown
/// subcommand say "Try CLIENT HELP.", as Redis's do.
pub(super) fn help(command: &str, subcommands: &[(&str, &str)]) -> Reply {
    let mut lines = vec![format!(
        "{} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        command.to_ascii_uppercase()
    )];
    for (usage, what) in subcommands.iter().chain(&[("HELP", "Print this help.")]) {
        lines.push((*usage).to_owned());
        lines.push(format!("    {what}"));
    }
    Reply::Array(lines.into_iter().map(|l| Reply::Status(l.into())).collect())
}

/// `Ok` for a connection with the admin role; else the NOPERM error for
/// `command`, naming the role it has (SLOWLOG and CLIENT KILL show or
/// end other clients' work, as Redis files them `@admin`).
fn admin_only(conn: &Connection, command: &'static str) -> Result<(), CommandError> {
    use crate::security::auth::Role;
    let has = match conn.role {
        Some(Role::Admin) => return Ok(()),
        Some(Role::Write) => NeededRole::Write.name(),
        Some(Role::Read) => NeededRole::Read.name(),
        None => "no",
    };
    Err(CommandError::NoPermission {
        command,
        needs: NeededRole::Admin.name(),
        has,
    })
}

/// CLIENT KILL addr, or CLIENT KILL filter value...: closes this master's
/// matching connections once their replies so far are written (the
/// caller's own too, after this reply, when it matches and SKIPME is
/// `no`), with Redis's checks and answers. The admin role's, as Redis
/// files it `@admin`.
fn client_kill(conn: &Connection, args: &[Bytes]) -> Reply {
    if let Err(refused) = admin_only(conn, "client|kill") {
        return Reply::Error(refused);
    }
    let clients = conn.server.client_list();
    // The old form: one address, OK or an error.
    if let [_, _, addr] = args {
        let Some(client) = clients
            .iter()
            .find(|c| c.addr.to_string().as_bytes() == addr.as_ref())
        else {
            return error("ERR No such client");
        };
        client.kill.cancel();
        return Reply::OK;
    }
    if args.len() % 2 != 0 {
        return Reply::Error(CommandError::Syntax);
    }
    let mut id = None;
    let mut kind: Option<bool> = None; // Some(true): with subscriptions.
    let mut nobody = false;
    let mut addr = None;
    let mut laddr = None;
    let mut skip_me = true;
    for pair in args[2..].chunks_exact(2) {
        let (option, value) = (&pair[0], &pair[1]);
        if is(option, "id") {
            match std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<i64>().ok())
            {
                Some(n) if n > 0 => id = Some(n as u64),
                _ => return error("ERR client-id should be greater than 0"),
            }
        } else if is(option, "type") {
            if is(value, "normal") {
                kind = Some(false);
            } else if is(value, "pubsub") {
                kind = Some(true);
            } else if ["master", "replica", "slave"].iter().any(|k| is(value, k)) {
                nobody = true;
            } else {
                return error(format!("ERR Unknown client type '{}'", text(value)));
            }
        } else if is(option, "user") {
            // Tokens have no users: every connection is Redis's default
            // user's.
            if !is(value, "default") {
                return error(format!("ERR No such user '{}'", text(value)));
            }
        } else if is(option, "addr") {
            addr = Some(value);
        } else if is(option, "laddr") {
            laddr = Some(value);
        } else if is(option, "skipme") {
            if is(value, "yes") {
                skip_me = true;
            } else if is(value, "no") {
                skip_me = false;
            } else {
                return Reply::Error(CommandError::Syntax);
            }
        } else {
            return Reply::Error(CommandError::Syntax);
        }
    }
    if nobody {
        return Reply::Integer(0);
    }
    let mut killed = 0;
    for client in &clients {
        let matches = id.is_none_or(|id| client.id == id)
            && kind.is_none_or(|pubsub| (client.subscriptions != [0; 3]) == pubsub)
            && addr.is_none_or(|a| client.addr.to_string().as_bytes() == a.as_ref())
            && laddr.is_none_or(|a| client.laddr.to_string().as_bytes() == a.as_ref())
            && !(skip_me && client.id == conn.id);
        if matches {
            client.kill.cancel();
            killed += 1;
        }
    }
    Reply::Integer(killed)
}

/// CLIENT LIST [TYPE type] [ID id...].
fn client_list(conn: &Connection, options: &[Bytes]) -> Reply {
    let mut clients = conn.server.client_list();
    match options {
        [] => {}
        [kind, t] if is(kind, "type") => {
            if is(t, "normal") {
                clients.retain(|c| c.subscriptions == [0; 3]);
            } else if is(t, "pubsub") {
                clients.retain(|c| c.subscriptions != [0; 3]);
            } else if ["master", "replica", "slave"].iter().any(|k| is(t, k)) {
                clients.clear();
            } else {
                return error(format!("ERR Unknown client type '{}'", text(t)));
            }
        }
        [kind, ids @ ..] if is(kind, "id") && !ids.is_empty() => {
            let mut wanted = Vec::new();
            for id in ids {
                match std::str::from_utf8(id)
                    .ok()
                    .and_then(|i| i.parse::<u64>().ok())
                {
                    Some(id) if id > 0 => wanted.push(id),
                    _ => return error("ERR Invalid client ID"),
                }
            }
            clients.retain(|c| wanted.contains(&c.id));
        }
        _ => return Reply::Error(CommandError::Syntax),
    }
    let list: String = clients.iter().map(client_line).collect();
    Reply::bulk(list.as_bytes())
}

/// One line of CLIENT LIST, in Redis 7.2's field order (values Redis has
/// and distcache does not keep are 0).
fn client_line(c: &ClientInfo) -> String {
    let resp = match c.protocol {
        Protocol::Resp2 => 2,
        Protocol::Resp3 => 3,
    };
    format!(
        "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags={} db=0 sub={} psub={} ssub={} \
         multi={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 \
         tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}\n",
        c.id,
        c.addr,
        c.laddr,
        c.name.as_deref().unwrap_or(""),
        c.created.elapsed().as_secs(),
        c.last_command_at.elapsed().as_secs(),
        match (c.multi >= 0, c.subscriptions != [0; 3]) {
            (true, _) => "x",
            (false, true) => "P",
            (false, false) => "N",
        },
        c.subscriptions[0],
        c.subscriptions[1],
        c.subscriptions[2],
        c.multi,
        c.last_command,
        resp,
        c.lib_name.as_deref().unwrap_or(""),
        c.lib_ver.as_deref().unwrap_or(""),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_apart_from_the_data_commands() {
        for pair in FRONT_COMMANDS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
        for c in FRONT_COMMANDS {
            assert!(
                c.name.len() <= distcache_core::command::by_name::MAX_NAME_BYTES,
                "{}",
                c.name
            );
            assert!(
                distcache_core::command::lookup(c.name.as_bytes()).is_none(),
                "{} is in both tables",
                c.name
            );
            assert_eq!(
                lookup(c.name.to_uppercase().as_bytes()).map(|f| f.name),
                Some(c.name)
            );
        }
    }

    #[test]
    fn client_names_are_printable_ascii_without_spaces() {
        assert!(valid_name(b"worker-1"));
        assert!(valid_name(b""));
        assert!(!valid_name(b"a b"));
        assert!(!valid_name(b"a\nb"));
        assert!(!valid_name("é".as_bytes()));
    }
}
