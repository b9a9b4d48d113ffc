//! The RESP listener's own commands (connection and server commands)
//! side by side with the real `redis-server` (Debian's, 7.0): the same
//! requests go to both, in RESP2 and in RESP3, and the replies must be
//! equal, exactly where distcache means to answer as Redis does (errors
//! included), by shape where the values are the server's own (HELLO's
//! version and id, TIME). COMMAND INFO is compared for every command of
//! both tables: name, arity, key positions, and the flags. A pipeline of
//! data commands with transactions in it (the listener's own commands
//! queued among them) checks the listener's ordering and MULTI/EXEC
//! handling against Redis's.

mod common;

#[allow(dead_code)]
#[path = "../../core/tests/support/resp.rs"]
mod resp;

use common::{Cluster, Spec};
use resp::{Client, Frame, RedisServer};

fn cluster() -> Cluster {
    Cluster::start(Spec {
        auxiliaries: 1,
        replicas: 1,
        resp: true,
        ..Spec::default()
    })
}

/// Requests whose replies must be equal, byte for byte once parsed.
const SAME: &[&[&str]] = &[
    &["PING"],
    &["PING", "hello"],
    &["PING", "a", "b"],
    &["ECHO", "x y"],
    &["ECHO"],
    &["SELECT", "0"],
    &["SELECT", "x"],
    &["SELECT", "999999"],
    &["AUTH", "secret"],
    &["AUTH", "a", "b", "c"],
    &["HELLO", "4"],
    &["HELLO", "x"],
    &["HELLO", "3", "FOO"],
    &["HELLO", "2", "SETNAME", "a b"],
    &["CLIENT", "SETNAME", "a b"],
    &["CLIENT", "SETNAME", "diff-name"],
    &["CLIENT", "GETNAME"],
    &["CLIENT", "SETNAME"],
    &["CLIENT", "GETNAME", "x"],
    &["CLIENT", "FOO"],
    &["CLIENT", "HELP", "x"],
    &["CONFIG", "HELP", "x"],
    &["COMMAND", "HELP", "x"],
    &["CLIENT", "NO-EVICT", "on"],
    &["CLIENT", "NO-EVICT", "maybe"],
    &["CLIENT", "LIST", "TYPE", "foo"],
    &["CLIENT", "LIST", "TYPE", "pubsub"],
    &["CLIENT", "LIST", "ID", "abc"],
    &["CLIENT"],
    &["CONFIG", "GET", "maxmemory"],
    &["CONFIG", "GET", "timeout"],
    &["CONFIG", "GET", "no-such-setting"],
    &["CONFIG", "GET"],
    &["CONFIG", "FOO"],
    &["COMMAND", "FOO"],
    &["COMMAND", "GETKEYS", "SET", "a", "b"],
    &["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"],
    &["COMMAND", "GETKEYS", "FOO", "a"],
    &["COMMAND", "GETKEYS", "GET"],
    &["COMMAND", "GETKEYS", "GET", "a", "b"],
    &["COMMAND", "GETKEYS", "PING", "a"],
    &["COMMAND", "INFO", "no-such-command"],
    &["COMMAND", "LIST", "bad_arg"],
    &["COMMAND", "LIST", "FILTERBY", "bad_arg"],
    &["COMMAND", "LIST", "FILTERBY", "bad_arg", "bad_arg2"],
    &[
        "COMMAND", "LIST", "FILTERBY", "PATTERN", "a", "FILTERBY", "PATTERN", "b",
    ],
    &[
        "COMMAND",
        "LIST",
        "FILTERBY",
        "ACLCAT",
        "non_existing_category",
    ],
    &["COMMAND", "LIST", "FILTERBY", "ACLCAT", "@string"],
    &[
        "COMMAND",
        "LIST",
        "FILTERBY",
        "MODULE",
        "non_existing_module",
    ],
    &["COMMAND", "LIST", "FILTERBY", "PATTERN", "GET"],
    &["COMMAND", "LIST", "filterby", "pattern", "getr*"],
    &["WAIT", "x", "0"],
    &["WAIT", "0", "-1"],
    &["TIME", "x"],
    &["RESET"],
];

fn call(client: &mut Client, args: &[&str]) -> Frame {
    client.call_str(args)
}

/// Both connections, after `HELLO 3` when `resp3`.
fn clients(redis: &RedisServer, ours: u16, resp3: bool) -> (Client, Client) {
    let mut theirs = Client::connect(redis.port).unwrap();
    let mut mine = Client::connect(ours).unwrap();
    if resp3 {
        call(&mut theirs, &["HELLO", "3"]);
        call(&mut mine, &["HELLO", "3"]);
    }
    (theirs, mine)
}

#[test]
fn connection_commands_answer_as_redis_does_in_resp2_and_resp3() {
    let cluster = cluster();
    let ours = cluster.masters[0].resp_port.unwrap();
    let redis = RedisServer::start();
    for resp3 in [false, true] {
        let (mut theirs, mut mine) = clients(&redis, ours, resp3);
        for args in SAME {
            // Redis answers CLIENT LIST (and INFO) with a RESP3 verbatim
            // string; distcache with a bulk string (docs/commands.md).
            if resp3 && args.starts_with(&["CLIENT", "LIST"]) {
                continue;
            }
            let expected = call(&mut theirs, args);
            let got = call(&mut mine, args);
            assert_eq!(got, expected, "{args:?} (RESP3: {resp3})");
            if args[0] == "RESET" && resp3 {
                call(&mut theirs, &["HELLO", "3"]);
                call(&mut mine, &["HELLO", "3"]);
            }
        }

        // HELLO: the same fields in the same order; the values that are
        // the server's own aside.
        let fields = |f: Frame| -> Vec<(Frame, Frame)> {
            match f {
                Frame::Map(pairs) => pairs,
                Frame::Array(flat) => flat
                    .chunks(2)
                    .map(|p| (p[0].clone(), p[1].clone()))
                    .collect(),
                other => panic!("HELLO answered {other:?}"),
            }
        };
        let version = if resp3 { "3" } else { "2" };
        let expected = fields(call(&mut theirs, &["HELLO", version]));
        let got = fields(call(&mut mine, &["HELLO", version]));
        let keys = |f: &[(Frame, Frame)]| f.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&got), keys(&expected));
        for ((key, got), (_, expected)) in got.iter().zip(&expected) {
            let same_value =
                !matches!(key, Frame::Bulk(k) if k == b"version" || k == b"id" || k == b"mode");
            if same_value {
                assert_eq!(got, expected, "HELLO's {key:?}");
            }
            // A master answers as a Redis Cluster node does (resp/cluster.rs).
            if matches!(key, Frame::Bulk(k) if k == b"mode") {
                assert_eq!(*got, Frame::Bulk(b"cluster".to_vec()), "HELLO's mode");
            }
        }

        // TIME: two bulk strings of digits; LASTSAVE: an integer.
        for side in [&mut theirs, &mut mine] {
            match call(side, &["TIME"]) {
                Frame::Array(parts) => {
                    assert_eq!(parts.len(), 2);
                    for p in parts {
                        assert!(
                            matches!(&p, Frame::Bulk(b) if b.iter().all(u8::is_ascii_digit)),
                            "{p:?}"
                        );
                    }
                }
                other => panic!("TIME answered {other:?}"),
            }
            assert!(matches!(call(side, &["LASTSAVE"]), Frame::Int(_)));
            assert!(matches!(call(side, &["CLIENT", "ID"]), Frame::Int(_)));
            assert!(matches!(call(side, &["COMMAND", "COUNT"]), Frame::Int(_)));
            // HELP, which every "unknown subcommand ... Try CLIENT HELP."
            // points to: status lines, HELP among them.
            for command in ["CLIENT", "CONFIG", "COMMAND"] {
                match call(side, &[command, "HELP"]) {
                    Frame::Array(lines) => {
                        assert!(
                            lines.iter().all(|l| matches!(l, Frame::Simple(_))),
                            "{command} HELP: {lines:?}"
                        );
                        assert!(
                            lines.contains(&Frame::Simple("HELP".into())),
                            "{command} HELP: {lines:?}"
                        );
                    }
                    other => panic!("{command} HELP answered {other:?}"),
                }
            }
        }
        // QUIT answers +OK on both.
        assert_eq!(call(&mut mine, &["QUIT"]), call(&mut theirs, &["QUIT"]));
    }
}

/// The flags compared for data commands: those the command table models.
const MODELLED_FLAGS: &[&str] = &["write", "readonly", "denyoom", "fast"];

fn names(frame: &Frame) -> Vec<String> {
    let items = match frame {
        Frame::Array(items) | Frame::Set(items) => items,
        other => panic!("expected a list of names, got {other:?}"),
    };
    let mut out: Vec<String> = items
        .iter()
        .map(|f| match f {
            Frame::Simple(s) => s.clone(),
            Frame::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("expected a name, got {other:?}"),
        })
        .collect();
    out.sort();
    out
}

#[test]
fn command_info_describes_every_command_as_redis_does() {
    let cluster = cluster();
    let ours = cluster.masters[0].resp_port.unwrap();
    let redis = RedisServer::start();
    for resp3 in [false, true] {
        let (mut theirs, mut mine) = clients(&redis, ours, resp3);
        let listed = names(&call(&mut mine, &["COMMAND", "LIST"]));
        assert!(listed.len() > 100, "{listed:?}");
        let Frame::Int(count) = call(&mut mine, &["COMMAND", "COUNT"]) else {
            panic!("COMMAND COUNT is an integer");
        };
        assert_eq!(count as usize, listed.len());
        for name in &listed {
            let (Frame::Array(e), Frame::Array(g)) = (
                call(&mut theirs, &["COMMAND", "INFO", name]),
                call(&mut mine, &["COMMAND", "INFO", name]),
            ) else {
                panic!("COMMAND INFO {name} is an array");
            };
            let (Frame::Array(expected), Frame::Array(got)) = (&e[0], &g[0]) else {
                panic!("{name}: Redis knows it and we describe it: {e:?} / {g:?}");
            };
            assert_eq!(got.len(), 10, "{name}: ten fields, as Redis 7");
            // Name, arity, first key, last key, step.
            for i in [0, 1, 3, 4, 5] {
                assert_eq!(got[i], expected[i], "{name}: field {i} (RESP3: {resp3})");
            }
            let (got_flags, expected_flags) = (names(&got[2]), names(&expected[2]));
            let front = distcache_core_free(name);
            if front {
                assert_eq!(got_flags, expected_flags, "{name}'s flags");
                assert_eq!(
                    names(&got[6]),
                    names(&expected[6]),
                    "{name}'s ACL categories"
                );
            } else {
                let modelled = |f: &Vec<String>| {
                    f.iter()
                        .filter(|x| MODELLED_FLAGS.contains(&x.as_str()))
                        .cloned()
                        .collect::<Vec<_>>()
                };
                assert_eq!(
                    modelled(&got_flags),
                    modelled(&expected_flags),
                    "{name}'s flags"
                );
            }
        }
    }
}

/// `COMMAND LIST FILTERBY ACLCAT` and `PATTERN` pick the same commands as
/// Redis's, among those distcache has (Redis lists its others too, and
/// subcommands): so every command carries Redis's ACL categories, which
/// ACL rules such as `-@dangerous` select by.
#[test]
fn command_list_filters_pick_the_commands_redis_picks() {
    use std::collections::BTreeSet;
    let cluster = cluster();
    let ours = cluster.masters[0].resp_port.unwrap();
    let redis = RedisServer::start();
    let (mut theirs, mut mine) = clients(&redis, ours, false);
    let ours_all: BTreeSet<String> = names(&call(&mut mine, &["COMMAND", "LIST"]))
        .into_iter()
        .collect();
    let filters = [
        "keyspace",
        "read",
        "write",
        "set",
        "sortedset",
        "list",
        "hash",
        "string",
        "fast",
        "slow",
        "dangerous",
        "connection",
        "transaction",
        "admin",
        "blocking",
        "pubsub",
    ]
    .map(|cat| ["ACLCAT", cat])
    .into_iter()
    .chain(["z*", "*range*", "h?et", "[gs]et", "CLIENT*", "*"].map(|p| ["PATTERN", p]));
    for [kind, arg] in filters {
        let request = ["COMMAND", "LIST", "FILTERBY", kind, arg];
        let expected: BTreeSet<String> = names(&call(&mut theirs, &request))
            .into_iter()
            .filter(|n| ours_all.contains(n))
            .collect();
        let got: BTreeSet<String> = names(&call(&mut mine, &request)).into_iter().collect();
        assert_eq!(got, expected, "{request:?}");
    }
}

/// CLIENT LIST and CLIENT INFO show a subcommand by its full name
/// (`cmd=config|get`), as Redis 7 does, and a plain command by its name.
#[test]
fn client_list_shows_subcommands_by_their_full_names() {
    let cluster = cluster();
    let ours = cluster.masters[0].resp_port.unwrap();
    let redis = RedisServer::start();
    let shown = |line: Frame| -> String {
        let Frame::Bulk(line) = line else {
            panic!("a client line is a bulk string: {line:?}");
        };
        let line = String::from_utf8(line).unwrap();
        let field = line.split_whitespace().find(|f| f.starts_with("cmd="));
        field.unwrap_or_default().to_owned()
    };
    let (mut theirs, mut mine) = clients(&redis, ours, false);
    let (mut theirs_peer, mut mine_peer) = clients(&redis, ours, false);
    for last in [
        &["CONFIG", "GET", "maxmemory"][..],
        &["COMMAND", "COUNT"],
        &["PING"],
    ] {
        let mut seen = Vec::new();
        for (client, peer) in [(&mut theirs, &mut theirs_peer), (&mut mine, &mut mine_peer)] {
            call(client, last);
            let Frame::Int(id) = call(client, &["CLIENT", "ID"]) else {
                panic!("CLIENT ID is an integer");
            };
            call(client, last);
            let listed = call(peer, &["CLIENT", "LIST", "ID", &id.to_string()]);
            seen.push((shown(listed), shown(call(client, &["CLIENT", "INFO"]))));
        }
        assert_eq!(seen[1], seen[0], "after {last:?}");
    }
}

/// INFO has Redis's `cpu` section, with its fields, by default and when
/// asked for (monitoring reads `used_cpu_user` and `used_cpu_sys`).
#[test]
fn info_has_the_cpu_section_redis_has() {
    let cluster = cluster();
    let ours = cluster.masters[0].resp_port.unwrap();
    let redis = RedisServer::start();
    let (mut theirs, mut mine) = clients(&redis, ours, false);
    let cpu_fields = |info: Frame| -> Vec<String> {
        let Frame::Bulk(text) = info else {
            panic!("INFO is a bulk string: {info:?}");
        };
        String::from_utf8(text)
            .unwrap()
            .lines()
            .filter(|l| *l == "# CPU" || l.starts_with("used_cpu_"))
            .map(|l| l.split(':').next().unwrap().to_owned())
            .collect()
    };
    for request in [&["INFO"][..], &["INFO", "cpu"], &["INFO", "everything"]] {
        let expected = cpu_fields(call(&mut theirs, request));
        assert!(expected.len() > 4, "{request:?}: {expected:?}");
        assert_eq!(
            cpu_fields(call(&mut mine, request)),
            expected,
            "{request:?}"
        );
    }
}

/// Whether `name` is one of the listener's own commands (not in the data
/// commands' table, which `docs/commands.md` lists).
fn distcache_core_free(name: &str) -> bool {
    let doc = std::fs::read_to_string(common::repo().join("docs/commands.md")).unwrap();
    !doc.contains(&format!("| `{}` |", name.to_uppercase()))
}

/// A pipeline of data commands, transactions among them, as one write:
/// every reply, in order.
fn pipeline(port: u16, resp3: bool, commands: &[Vec<String>]) -> Vec<Frame> {
    use std::io::{BufReader, Write};
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut all = commands.to_vec();
    if resp3 {
        all.insert(0, vec!["HELLO".into(), "3".into()]);
    }
    let mut bytes = Vec::new();
    for c in &all {
        let args: Vec<Vec<u8>> = c.iter().map(|a| a.as_bytes().to_vec()).collect();
        bytes.extend(resp::encode_command(&args));
    }
    writer.write_all(&bytes).unwrap();
    let mut replies: Vec<Frame> = all
        .iter()
        .map(|_| resp::read_frame(&mut reader).expect("a reply"))
        .collect();
    if resp3 {
        replies.remove(0);
    }
    replies
}

#[test]
fn pipelines_and_transactions_answer_as_redis_does() {
    let cluster = cluster();
    let ours = cluster.masters[0].resp_port.unwrap();
    let redis = RedisServer::start();
    for resp3 in [false, true] {
        // Keys of their own per protocol; one key per transaction, so that
        // the test holds when keys live on different auxiliaries.
        let k = |name: &str| format!("diff:{resp3}:{name}");
        let c = |words: &[&str]| -> Vec<String> {
            words
                .iter()
                .map(|w| {
                    w.replace("$s", &k("s"))
                        .replace("$n", &k("n"))
                        .replace("$h", &k("h"))
                        .replace("$l", &k("l"))
                        .replace("$z", &k("z"))
                })
                .collect()
        };
        let commands = vec![
            c(&["SET", "$s", "hello"]),
            c(&["GET", "$s"]),
            c(&["APPEND", "$s", " world"]),
            c(&["INCR", "$s"]),
            c(&["GET", "$s:missing"]),
            c(&["INCRBY", "$n", "41"]),
            c(&["INCR", "$n"]),
            c(&["MULTI"]),
            c(&["INCR", "$n"]),
            c(&["INCRBYFLOAT", "$n", "0.5"]),
            c(&["GET", "$n"]),
            c(&["EXEC"]),
            c(&["MULTI"]),
            c(&["SET", "$n", "1"]),
            c(&["NOSUCHCOMMAND", "$n"]),
            c(&["GET"]),
            c(&["EXEC"]),
            c(&["GET", "$n"]),
            c(&["MULTI"]),
            c(&["MULTI"]),
            c(&["LPUSH", "$n", "x"]),
            c(&["DISCARD"]),
            c(&["EXEC"]),
            c(&["DISCARD"]),
            c(&["HSET", "$h", "a", "1", "b", "2"]),
            c(&["HGET", "$h", "b"]),
            c(&["HINCRBY", "$h", "a", "10"]),
            c(&["HMGET", "$h", "a", "b", "c"]),
            c(&["RPUSH", "$l", "a", "b", "c"]),
            c(&["LRANGE", "$l", "0", "-1"]),
            c(&["LPOP", "$l", "2"]),
            c(&["ZADD", "$z", "1", "one", "2.5", "two"]),
            c(&["ZRANGE", "$z", "0", "-1", "WITHSCORES"]),
            c(&["ZSCORE", "$z", "two"]),
            c(&["ZINCRBY", "$z", "1", "one"]),
            c(&["EXPIRE", "$s", "100"]),
            c(&["TTL", "$s"]),
            c(&["TYPE", "$z"]),
            c(&["GET", "$h"]),
            c(&["DEL", "$s"]),
            c(&["EXISTS", "$s"]),
            // The listener's own commands are queued too, and answer in
            // their place in EXEC's array.
            c(&["MULTI"]),
            c(&["PING"]),
            c(&["ECHO", "x"]),
            c(&["SET", "$s", "v"]),
            c(&["CLIENT", "SETNAME", "in-multi"]),
            c(&["CLIENT", "GETNAME"]),
            c(&["GET", "$s"]),
            c(&["SELECT", "0"]),
            c(&["PING", "a", "b"]),
            c(&["EXEC"]),
            c(&["CLIENT", "GETNAME"]),
            c(&["MULTI"]),
            c(&["ECHO"]),
            c(&["SET", "$s", "w"]),
            c(&["EXEC"]),
            c(&["GET", "$s"]),
            c(&["MULTI"]),
            c(&["PING"]),
            c(&["DISCARD"]),
            c(&["MULTI"]),
            c(&["TIME", "x"]),
            c(&["EXEC"]),
            // COMMAND LIST takes a FILTERBY (Redis's arity -2): queued,
            // not refused.
            c(&["MULTI"]),
            c(&["COMMAND", "LIST", "FILTERBY", "PATTERN", "getrange"]),
            c(&["COMMAND", "LIST", "bad_arg"]),
            c(&["EXEC"]),
            // EXEC with arguments is refused, and that discards the
            // transaction (EXECABORT naming the arity error), inside
            // MULTI or not.
            c(&["MULTI"]),
            c(&["SET", "$s", "x"]),
            c(&["EXEC", "now"]),
            c(&["EXEC"]),
            c(&["GET", "$s"]),
            c(&["EXEC", "now"]),
        ];
        let expected = pipeline(redis.port, resp3, &commands);
        let got = pipeline(ours, resp3, &commands);
        for ((command, e), g) in commands.iter().zip(&expected).zip(&got) {
            assert_eq!(g, e, "{command:?} (RESP3: {resp3})");
        }
    }
}

/// One step of a WATCH script: which connection sends what (`a` watches,
/// `b` changes keys behind its back), or a pause.
enum Step {
    A(Vec<String>),
    B(Vec<String>),
    Sleep(u64),
}

/// WATCH's script: each change that must fail EXEC (from the other
/// connection, from this one, a delete, an expiry, FLUSHALL, a transaction
/// with nothing queued), and each case that must not (no change, UNWATCH,
/// DISCARD, RESET, EXECABORT, a failed SETNX, a key absent before and
/// after FLUSHALL), the listener's own commands queued among the data
/// commands (they do not run either when EXEC fails), every key with one hash tag so that it shares its
/// replicas with the others.
fn watch_script(prefix: &str) -> Vec<Step> {
    let words = |line: &str| -> Vec<String> {
        line.split(' ')
            .map(|w| w.replace('@', &format!("{{{prefix}}}")))
            .collect()
    };
    let mut steps = Vec::new();
    for line in [
        "b SET @k 1",
        // Changed by the other connection: nil, nothing ran.
        "a WATCH @k",
        "b SET @k 2",
        "a MULTI",
        "a SET @k 3",
        "a EXEC",
        "a GET @k",
        // Unchanged: runs.
        "a WATCH @k @other",
        "a MULTI",
        "a INCR @k",
        "a EXEC",
        // Changed by this connection itself.
        "a WATCH @k",
        "a SET @k 5",
        "a MULTI",
        "a GET @k",
        "a EXEC",
        // WATCH inside MULTI is refused; the transaction goes on.
        "a MULTI",
        "a WATCH @k",
        "a GET @k",
        "a EXEC",
        // UNWATCH, DISCARD and an EXEC forget the watches.
        "a WATCH @k",
        "b SET @k 6",
        "a UNWATCH",
        "a MULTI",
        "a GET @k",
        "a EXEC",
        "a WATCH @k",
        "b SET @k 7",
        "a MULTI",
        "a DISCARD",
        "a MULTI",
        "a GET @k",
        "a EXEC",
        "b SET @k 8",
        "a MULTI",
        "a GET @k",
        "a EXEC",
        // A delete, and a key absent, then written and deleted.
        "a WATCH @k",
        "b DEL @k",
        "a MULTI",
        "a GET @k",
        "a EXEC",
        "a WATCH @absent",
        "a MULTI",
        "a GET @absent",
        "a EXEC",
        "a WATCH @absent",
        "b SET @absent 1",
        "b DEL @absent",
        "a MULTI",
        "a GET @absent",
        "a EXEC",
        // A watched key the transaction does not touch.
        "a WATCH @w",
        "b SET @w 1",
        "a MULTI",
        "a SET @k 9",
        "a EXEC",
        "a GET @k",
        // Nothing queued.
        "a WATCH @w",
        "b SET @w 2",
        "a MULTI",
        "a EXEC",
        // UNWATCH queued inside MULTI answers OK.
        "a WATCH @w",
        "a MULTI",
        "a UNWATCH",
        "a EXEC",
        // A write that changes nothing is no change; SET to the same
        // value is one.
        "a WATCH @w",
        "b SETNX @w 9",
        "a MULTI",
        "a GET @w",
        "a EXEC",
        "a WATCH @w",
        "b SET @w 2",
        "a MULTI",
        "a GET @w",
        "a EXEC",
        // EXECABORT forgets the watches.
        "a WATCH @w",
        "b SET @w 3",
        "a MULTI",
        "a NOSUCHCOMMAND",
        "a EXEC",
        "a MULTI",
        "a GET @w",
        "a EXEC",
        // Arity.
        "a WATCH",
        "a UNWATCH x",
        // An expiry is a change.
        "b SET @e 1 PX 100",
        "a WATCH @e",
        "sleep 300",
        "a MULTI",
        "a GET @e",
        "a EXEC",
        // FLUSHALL changes a key it deletes, not one that was absent.
        "b SET @f 1",
        "a WATCH @f",
        "b FLUSHALL",
        "a MULTI",
        "a GET @f",
        "a EXEC",
        "a WATCH @g",
        "b FLUSHALL",
        "a MULTI",
        "a GET @g",
        "a EXEC",
        // The listener's own commands queued: nothing runs, them included.
        "b SET @k 1",
        "a WATCH @k",
        "b SET @k 2",
        "a MULTI",
        "a CLIENT SETNAME watcher",
        "a GET @k",
        "a EXEC",
        "a CLIENT GETNAME",
        "a WATCH @k",
        "a MULTI",
        "a CLIENT SETNAME watcher",
        "a INCR @k",
        "a EXEC",
        "a CLIENT GETNAME",
        // RESET forgets the watches (and goes back to RESP2: last).
        "a WATCH @k",
        "b SET @k 4",
        "a RESET",
        "a MULTI",
        "a GET @k",
        "a EXEC",
    ] {
        let (who, rest) = line.split_once(' ').unwrap();
        steps.push(match who {
            "a" => Step::A(words(rest)),
            "b" => Step::B(words(rest)),
            _ => Step::Sleep(rest.parse().unwrap()),
        });
    }
    steps
}

/// Runs `steps` on two connections to one server (`b_port` may be another
/// master of the same cluster): every reply, in order.
fn run_watch_script(a_port: u16, b_port: u16, resp3: bool, steps: &[Step]) -> Vec<Frame> {
    let connect = |port| {
        let mut client = Client::connect(port).unwrap();
        if resp3 {
            call(&mut client, &["HELLO", "3"]);
        }
        client
    };
    let (mut a, mut b) = (connect(a_port), connect(b_port));
    let mut replies = Vec::new();
    for step in steps {
        let (client, args) = match step {
            Step::A(args) => (&mut a, args),
            Step::B(args) => (&mut b, args),
            Step::Sleep(ms) => {
                std::thread::sleep(std::time::Duration::from_millis(*ms));
                continue;
            }
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        replies.push(call(client, &args));
    }
    replies
}

/// WATCH over two connections, side by side with Redis: the watching
/// connection on one master, the other on the second master, keys on
/// three auxiliaries with two copies each.
#[test]
fn watch_answers_as_redis_does_over_two_connections_and_two_masters() {
    let cluster = Cluster::start(Spec {
        masters: 2,
        auxiliaries: 3,
        replicas: 2,
        resp: true,
        ..Spec::default()
    });
    let (a_port, b_port) = (
        cluster.masters[0].resp_port.unwrap(),
        cluster.masters[1].resp_port.unwrap(),
    );
    let redis = RedisServer::start();
    for resp3 in [false, true] {
        let steps = watch_script(&format!("watch-{resp3}"));
        let expected = run_watch_script(redis.port, redis.port, resp3, &steps);
        let got = run_watch_script(a_port, b_port, resp3, &steps);
        let sent = steps.iter().filter_map(|s| match s {
            Step::A(args) => Some(format!("a {args:?}")),
            Step::B(args) => Some(format!("b {args:?}")),
            Step::Sleep(_) => None,
        });
        for ((step, e), g) in sent.zip(&expected).zip(&got) {
            assert_eq!(g, e, "{step} (RESP3: {resp3})");
        }
        let nil = if resp3 { Frame::Null } else { Frame::NullArray };
        let execs = steps
            .iter()
            .filter(|s| !matches!(s, Step::Sleep(_)))
            .zip(&expected)
            .filter(|(s, reply)| matches!(s, Step::A(args) if args[0] == "EXEC") && **reply == nil);
        assert_eq!(execs.count(), 10, "the script's failed EXECs, by Redis");
    }
}

/// A watched key must live with the transaction's keys (their leader
/// checks it): on other nodes, EXEC answers CROSSSLOT, as Redis Cluster
/// does, and nothing runs. WATCH and UNWATCH over HTTP are refused.
#[test]
fn watch_of_a_key_on_other_nodes_is_crossslot_and_http_refuses_watch() {
    let cluster = Cluster::start(Spec {
        auxiliaries: 3,
        replicas: 1,
        resp: true,
        ..Spec::default()
    });
    let port = cluster.masters[0].resp_port.unwrap();
    let mut a = Client::connect(port).unwrap();
    let mut crossslot = 0;
    for i in 0..40 {
        let (watched, written) = (format!("cross:w:{i}"), format!("cross:k:{i}"));
        assert_eq!(
            call(&mut a, &["WATCH", &watched]),
            Frame::Simple("OK".into())
        );
        call(&mut a, &["MULTI"]);
        call(&mut a, &["SET", &written, "x"]);
        match call(&mut a, &["EXEC"]) {
            Frame::Error(e) => {
                assert!(e.starts_with("CROSSSLOT"), "{e}");
                assert_eq!(call(&mut a, &["GET", &written]), Frame::NullBulk);
                crossslot += 1;
            }
            Frame::Array(replies) => assert_eq!(replies, vec![Frame::Simple("OK".into())]),
            other => panic!("EXEC answered {other:?}"),
        }
    }
    assert!(crossslot > 0, "no pair of keys on different nodes in 40");

    let post = |path: &str, body: serde_json::Value| {
        let resp = cluster
            .http
            .post(cluster.url(0, path))
            .json(&body)
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.text().unwrap())
    };
    for command in [
        serde_json::json!(["WATCH", "k"]),
        serde_json::json!(["UNWATCH"]),
    ] {
        let (status, body) = post("/", command.clone());
        assert_ne!(status, 200, "{command}: {body}");
        assert!(body.contains("over RESP"), "{command}: {body}");
    }
    let (status, body) = post(
        "/multi-exec",
        serde_json::json!([["WATCH", "k"], ["SET", "k", "1"]]),
    );
    assert!(
        body.contains("EXECABORT") && body.contains("over RESP"),
        "{status}: {body}"
    );
}
