//! Pub/Sub over RESP: side by side with the real `redis-server` (Debian's,
//! 7.0) on three connections each, in RESP2 and RESP3, every reply and
//! every delivered message compared; then across masters (a publisher on
//! one, subscribers on the others, one of them stopped), a subscriber that
//! never reads, roles, HTTP, and the clients' own Pub/Sub: redis-py's
//! `PubSub`, node-redis's `duplicate()` and ioredis's events.
//!
//! What is normalized, and why (docs/commands.md says the same):
//! - UNSUBSCRIBE and PUNSUBSCRIBE without arguments leave the channels in
//!   an order Redis does not specify (its dict's); their confirmations are
//!   compared as the set of names left and the sequence of counts.
//! - PUBSUB CHANNELS is a set in Redis (`nondeterministic_output_order`):
//!   compared sorted.
//! - PUBSUB HELP's text is distcache's own (it says "on this master"):
//!   compared by shape.

mod common;

#[allow(dead_code)]
#[path = "../../core/tests/support/resp.rs"]
mod resp;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cluster, Spec, metric_value, repo, run_node, tool, wait_until};
use resp::{Client, Frame, RedisServer};
use serde_json::{Value, json};

/// Longest wait for a frame that must come.
const FRAME_WAIT: Duration = Duration::from_secs(5);

/// One request of the side-by-side script.
struct Step {
    /// The connection that sends it: 0, 1 or 2.
    conn: usize,
    args: &'static [&'static str],
    /// Frames then read from each connection, in RESP2.
    reads: [usize; 3],
    /// The same in RESP3, where it differs (a connection's own message
    /// before its PUBLISH's reply; a command RESP2 refuses in one frame).
    reads3: Option<[usize; 3]>,
    /// The frames' order is Redis's dict order: compared as a set of names
    /// and a sequence of counts.
    unordered: bool,
}

const fn step(conn: usize, args: &'static [&'static str], reads: [usize; 3]) -> Step {
    Step {
        conn,
        args,
        reads,
        reads3: None,
        unordered: false,
    }
}

const fn unordered(conn: usize, args: &'static [&'static str], reads: [usize; 3]) -> Step {
    Step {
        unordered: true,
        ..step(conn, args, reads)
    }
}

const fn resp3(reads: [usize; 3], step: Step) -> Step {
    Step {
        reads3: Some(reads),
        ..step
    }
}

/// Connection 0 subscribes to channels, 1 to patterns, 2 publishes and
/// asks.
const SCRIPT: &[Step] = &[
    step(0, &["SUBSCRIBE", "news", "sport"], [2, 0, 0]),
    step(0, &["SUBSCRIBE", "news"], [1, 0, 0]),
    step(1, &["PSUBSCRIBE", "n*", "s?ort", "[xy]z"], [0, 3, 0]),
    step(2, &["PUBLISH", "news", "hello"], [1, 1, 1]),
    step(2, &["PUBLISH", "sport", "goal"], [1, 1, 1]),
    step(2, &["PUBLISH", "nothing", "x"], [0, 1, 1]),
    step(2, &["PUBLISH", "yz", "bin\u{0}ary"], [0, 1, 1]),
    step(2, &["PUBLISH", "other", "x"], [0, 0, 1]),
    step(2, &["PUBLISH", "", "empty channel"], [0, 0, 1]),
    step(0, &["PING"], [1, 0, 0]),
    step(0, &["PING", "hi"], [1, 0, 0]),
    step(0, &["PING", "a", "b"], [1, 0, 0]),
    step(0, &["GET", "pubsub-key"], [1, 0, 0]),
    step(0, &["GET"], [1, 0, 0]),
    step(0, &["NOSUCHCOMMAND"], [1, 0, 0]),
    step(0, &["ECHO", "x"], [1, 0, 0]),
    step(0, &["PUBSUB", "NUMSUB", "news"], [1, 0, 0]),
    resp3(
        [2, 1, 0],
        step(0, &["PUBLISH", "news", "to myself"], [1, 0, 0]),
    ),
    step(2, &["PUBSUB", "NUMSUB", "news", "sport", "none"], [0, 0, 1]),
    step(2, &["PUBSUB", "NUMSUB"], [0, 0, 1]),
    step(2, &["PUBSUB", "NUMPAT"], [0, 0, 1]),
    step(2, &["PUBSUB", "CHANNELS"], [0, 0, 1]),
    step(2, &["PUBSUB", "CHANNELS", "s*"], [0, 0, 1]),
    step(2, &["PUBSUB", "CHANNELS", "zzz*"], [0, 0, 1]),
    step(2, &["PUBSUB"], [0, 0, 1]),
    step(2, &["PUBSUB", "FOO"], [0, 0, 1]),
    step(2, &["PUBSUB", "NUMPAT", "x"], [0, 0, 1]),
    step(2, &["PUBSUB", "HELP", "x"], [0, 0, 1]),
    step(2, &["PUBLISH", "news"], [0, 0, 1]),
    step(2, &["SUBSCRIBE"], [0, 0, 1]),
    step(0, &["UNSUBSCRIBE", "sport", "never"], [2, 0, 0]),
    step(2, &["PUBLISH", "sport", "only patterns now"], [0, 1, 1]),
    step(0, &["UNSUBSCRIBE"], [1, 0, 0]),
    step(0, &["UNSUBSCRIBE"], [1, 0, 0]),
    step(0, &["PUNSUBSCRIBE"], [1, 0, 0]),
    step(0, &["GET", "pubsub-key"], [1, 0, 0]),
    step(0, &["PING"], [1, 0, 0]),
    step(1, &["PUNSUBSCRIBE", "nomatch"], [0, 1, 0]),
    unordered(1, &["PUNSUBSCRIBE"], [0, 3, 0]),
    step(0, &["SUBSCRIBE", "a", "b", "c"], [3, 0, 0]),
    step(0, &["PSUBSCRIBE", "a*"], [1, 0, 0]),
    // A channel and a pattern that matches it: two deliveries, the
    // channel's first, and PUBLISH counts both.
    step(2, &["PUBLISH", "a", "twice"], [2, 0, 1]),
    unordered(0, &["UNSUBSCRIBE"], [3, 0, 0]),
    step(0, &["PUNSUBSCRIBE", "a*"], [1, 0, 0]),
    // The publisher subscribes to itself: in RESP3 its message comes
    // before its PUBLISH's reply; RESP2 refuses the PUBLISH.
    step(2, &["SUBSCRIBE", "self"], [0, 0, 1]),
    resp3([0, 0, 2], step(2, &["PUBLISH", "self", "me"], [0, 0, 1])),
    step(2, &["RESET"], [0, 0, 1]),
    step(0, &["PUBSUB", "NUMSUB", "self"], [1, 0, 0]),
    // SUBSCRIBE inside MULTI runs at EXEC, its frames in EXEC's array.
    step(2, &["MULTI"], [0, 0, 1]),
    step(2, &["SUBSCRIBE", "m"], [0, 0, 1]),
    step(2, &["PING"], [0, 0, 1]),
    step(2, &["EXEC"], [0, 0, 1]),
    step(2, &["UNSUBSCRIBE"], [0, 0, 1]),
    // Sharded Pub/Sub: shard channels are names of their own, counted
    // apart from channels and patterns.
    step(0, &["SSUBSCRIBE", "orders", "{user}1"], [2, 0, 0]),
    step(1, &["SUBSCRIBE", "orders"], [0, 1, 0]),
    step(1, &["PSUBSCRIBE", "ord*"], [0, 1, 0]),
    step(1, &["SSUBSCRIBE", "orders"], [0, 1, 0]),
    step(1, &["SSUBSCRIBE", "orders"], [0, 1, 0]),
    step(2, &["SPUBLISH", "orders", "paid"], [1, 1, 1]),
    step(2, &["PUBLISH", "orders", "plain"], [0, 2, 1]),
    step(2, &["SPUBLISH", "{user}1", "bin\u{0}ary"], [1, 0, 1]),
    step(2, &["SPUBLISH", "nobody", "x"], [0, 0, 1]),
    step(0, &["GET", "pubsub-key"], [1, 0, 0]),
    step(0, &["CLIENT", "ID", "x"], [1, 0, 0]),
    step(0, &["PING"], [1, 0, 0]),
    step(2, &["PUBSUB", "SHARDCHANNELS"], [0, 0, 1]),
    step(2, &["PUBSUB", "shardchannels", "o*"], [0, 0, 1]),
    step(2, &["PUBSUB", "SHARDCHANNELS", "o*", "x"], [0, 0, 1]),
    step(2, &["PUBSUB", "channels", "o*", "x"], [0, 0, 1]),
    step(2, &["PUBSUB", "CHANNELS"], [0, 0, 1]),
    step(
        2,
        &["PUBSUB", "SHARDNUMSUB", "orders", "{user}1", "none"],
        [0, 0, 1],
    ),
    step(2, &["PUBSUB", "SHARDNUMSUB"], [0, 0, 1]),
    step(2, &["PUBSUB", "NUMSUB", "orders"], [0, 0, 1]),
    step(2, &["SPUBLISH", "orders"], [0, 0, 1]),
    step(2, &["SSUBSCRIBE"], [0, 0, 1]),
    step(0, &["SUNSUBSCRIBE", "orders", "never"], [2, 0, 0]),
    step(2, &["SPUBLISH", "orders", "one left"], [0, 1, 1]),
    step(1, &["SUNSUBSCRIBE"], [0, 1, 0]),
    step(1, &["SUNSUBSCRIBE"], [0, 1, 0]),
    step(1, &["GET", "pubsub-key"], [0, 1, 0]),
    step(1, &["UNSUBSCRIBE"], [0, 1, 0]),
    step(1, &["PUNSUBSCRIBE"], [0, 1, 0]),
    step(1, &["GET", "pubsub-key"], [0, 1, 0]),
    step(0, &["SUNSUBSCRIBE"], [1, 0, 0]),
    step(0, &["GET", "pubsub-key"], [1, 0, 0]),
    // Its own shard message before its SPUBLISH's reply in RESP3; RESP2
    // refuses the SPUBLISH. RESET leaves shard channels too.
    // (Connection 0: connection 2 left RESP3 at its RESET above.)
    step(0, &["SSUBSCRIBE", "self"], [1, 0, 0]),
    resp3([2, 0, 0], step(0, &["SPUBLISH", "self", "me"], [1, 0, 0])),
    step(0, &["RESET"], [1, 0, 0]),
    step(1, &["PUBSUB", "SHARDNUMSUB", "self"], [0, 1, 0]),
    // In MULTI, SSUBSCRIBE is refused at EXEC (SUBSCRIBE is let through);
    // SUNSUBSCRIBE runs.
    step(2, &["MULTI"], [0, 0, 1]),
    step(2, &["SSUBSCRIBE", "m"], [0, 0, 1]),
    step(2, &["SUNSUBSCRIBE", "m"], [0, 0, 1]),
    step(2, &["SPUBLISH", "m", "x"], [0, 0, 1]),
    step(2, &["EXEC"], [0, 0, 1]),
    step(2, &["PUBSUB", "SHARDCHANNELS"], [0, 0, 1]),
    // Two patterns are refused by PUBSUB's handler: queued in MULTI (the
    // error in EXEC's answer), and after subscribed mode's check.
    step(2, &["MULTI"], [0, 0, 1]),
    step(2, &["PUBSUB", "CHANNELS", "a", "b"], [0, 0, 1]),
    step(2, &["PING"], [0, 0, 1]),
    step(2, &["EXEC"], [0, 0, 1]),
    step(0, &["SSUBSCRIBE", "x"], [1, 0, 0]),
    step(0, &["PUBSUB", "SHARDCHANNELS", "a", "b"], [1, 0, 0]),
    step(0, &["SUNSUBSCRIBE"], [1, 0, 0]),
];

/// Sorts what Redis leaves in an unspecified order.
fn normalize(args: &[&str], mut frame: Frame) -> Frame {
    if args.len() >= 2
        && args[0] == "PUBSUB"
        && ["CHANNELS", "SHARDCHANNELS"].contains(&args[1].to_uppercase().as_str())
    {
        if let Frame::Array(items) | Frame::Set(items) = &mut frame {
            items.sort();
        }
    }
    frame
}

/// A confirmation's name and count: `[kind, name, count]`.
fn name_and_count(frame: &Frame) -> (Frame, Frame) {
    match frame {
        Frame::Array(items) | Frame::Push(items) if items.len() == 3 => {
            (items[1].clone(), items[2].clone())
        }
        other => panic!("not a subscription confirmation: {other:?}"),
    }
}

/// Runs the script on `conns` and returns every frame each step read, in
/// order: `(step, connection, frame)`.
fn run_script(conns: &mut [Client], protocol3: bool) -> Vec<(usize, usize, Vec<Frame>)> {
    let mut seen = Vec::new();
    for (i, step) in SCRIPT.iter().enumerate() {
        conns[step.conn].send_str(step.args);
        let reads = match (protocol3, step.reads3) {
            (true, Some(reads)) => reads,
            _ => step.reads,
        };
        for (c, &n) in reads.iter().enumerate() {
            let mut frames: Vec<Frame> = (0..n)
                .map(|_| {
                    conns[c].read_within(FRAME_WAIT).unwrap_or_else(|| {
                        panic!("step {i} {:?}: connection {c} got no frame", step.args)
                    })
                })
                .map(|f| normalize(step.args, f))
                .collect();
            if step.unordered {
                let (mut names, counts): (Vec<_>, Vec<_>) =
                    frames.iter().map(name_and_count).unzip();
                names.sort();
                frames = names.into_iter().chain(counts).collect();
            }
            seen.push((i, c, frames));
        }
    }
    seen
}

fn connect3(port: u16, protocol3: bool) -> Vec<Client> {
    (0..3)
        .map(|_| {
            let mut c = Client::connect(port).unwrap();
            if protocol3 {
                assert!(matches!(c.call_str(&["HELLO", "3"]), Frame::Map(_)));
            }
            c
        })
        .collect()
}

/// The cluster secret of the tests that set one: the masters' internal
/// Pub/Sub route needs it.
const SECRET: &str = "pubsub-secret";

fn resp_cluster(masters: usize, mut master_env: Vec<(String, String)>) -> Cluster {
    master_env.push(("CLUSTER_SECRET".into(), SECRET.into()));
    Cluster::start(Spec {
        masters,
        auxiliaries: 1,
        replicas: 1,
        resp: true,
        master_env,
        aux_env: vec![("CLUSTER_SECRET".into(), SECRET.into())],
        ..Spec::default()
    })
}

fn resp_port(cluster: &Cluster, master: usize) -> u16 {
    cluster.masters[master].resp_port.unwrap()
}

fn bulk(s: &str) -> Frame {
    Frame::Bulk(s.as_bytes().to_vec())
}

#[test]
fn subscriptions_and_messages_answer_as_redis_does_in_resp2_and_resp3() {
    let cluster = resp_cluster(1, Vec::new());
    let ours = resp_port(&cluster, 0);
    let redis = RedisServer::start();
    for protocol3 in [false, true] {
        let mut theirs = connect3(redis.port, protocol3);
        let mut mine = connect3(ours, protocol3);
        let expected = run_script(&mut theirs, protocol3);
        let got = run_script(&mut mine, protocol3);
        for ((i, c, want), (_, _, have)) in expected.iter().zip(&got) {
            let args = SCRIPT[*i].args;
            assert_eq!(
                have, want,
                "step {i} {args:?} on connection {c} (RESP3: {protocol3})"
            );
        }
        // Nothing more came on either side.
        for (c, conn) in mine.iter_mut().enumerate() {
            let extra = conn.read_within(Duration::from_millis(200));
            assert_eq!(extra, None, "connection {c} (RESP3: {protocol3})");
        }
    }
    // PUBSUB HELP: Redis's layout, distcache's text.
    let mut c = Client::connect(ours).unwrap();
    match c.call_str(&["PUBSUB", "HELP"]) {
        Frame::Array(lines) => {
            assert!(lines.len() >= 8, "{lines:?}");
            assert!(lines.iter().all(|l| matches!(l, Frame::Simple(_))));
        }
        other => panic!("PUBSUB HELP answered {other:?}"),
    }
    // COMMAND INFO as Redis's for each: name, arity, flags, keys.
    let mut theirs = Client::connect(redis.port).unwrap();
    for name in [
        "subscribe",
        "psubscribe",
        "unsubscribe",
        "punsubscribe",
        "publish",
        "pubsub",
        "ssubscribe",
        "sunsubscribe",
        "spublish",
    ] {
        let want = theirs.call_str(&["COMMAND", "INFO", name]);
        let have = c.call_str(&["COMMAND", "INFO", name]);
        let head = |f: &Frame| match f {
            Frame::Array(rows) => match &rows[0] {
                // Name, arity, flags, key positions, ACL categories.
                Frame::Array(fields) => fields[..7].to_vec(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        };
        assert_eq!(head(&have), head(&want), "COMMAND INFO {name}");
        // The shard commands' channels are shown as keys (`not_key`), so
        // that a cluster client sends them by their slot.
        if matches!(name, "ssubscribe" | "sunsubscribe" | "spublish") {
            let specs = |f: &Frame| match f {
                Frame::Array(rows) => match &rows[0] {
                    Frame::Array(fields) => fields[8].clone(),
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            };
            assert_eq!(
                specs(&have),
                specs(&want),
                "COMMAND INFO {name}'s key specs"
            );
        }
    }
}

/// Reads `n` frames and returns the payloads of the messages among them
/// (the last element of each `message` or `pmessage`).
fn payloads(client: &mut Client, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| match client.read_within(FRAME_WAIT) {
            Some(Frame::Array(items) | Frame::Push(items)) => match items.last() {
                Some(Frame::Bulk(b)) => String::from_utf8(b.clone()).unwrap(),
                other => panic!("{other:?}"),
            },
            other => panic!("expected a message, got {other:?}"),
        })
        .collect()
}

#[test]
fn a_publish_on_one_master_reaches_subscribers_on_the_others_in_order() {
    let cluster = resp_cluster(3, Vec::new());
    let mut subscriber = Client::connect(resp_port(&cluster, 1)).unwrap();
    let mut pattern = Client::connect(resp_port(&cluster, 2)).unwrap();
    let mut publisher = Client::connect(resp_port(&cluster, 0)).unwrap();
    assert_eq!(
        subscriber.call_str(&["SUBSCRIBE", "orders"]),
        Frame::Array(vec![bulk("subscribe"), bulk("orders"), Frame::Int(1)])
    );
    assert!(pattern.call_str(&["HELLO", "3"]) != Frame::Null);
    assert_eq!(
        pattern.call_str(&["PSUBSCRIBE", "ord*"]),
        Frame::Push(vec![bulk("psubscribe"), bulk("ord*"), Frame::Int(1)])
    );
    // PUBSUB answers for its own master only.
    assert_eq!(publisher.call_str(&["PUBSUB", "NUMPAT"]), Frame::Int(0));
    const MESSAGES: usize = 300;
    for i in 0..MESSAGES {
        let got = publisher.call_str(&["PUBLISH", "orders", &i.to_string()]);
        assert_eq!(
            got,
            Frame::Int(2),
            "PUBLISH {i}: the receivers cluster-wide"
        );
    }
    // A pipeline of publishes: each still in order.
    let pipelined: Vec<Vec<Vec<u8>>> = (MESSAGES..2 * MESSAGES)
        .map(|i| {
            vec![
                b"PUBLISH".to_vec(),
                b"orders".to_vec(),
                i.to_string().into_bytes(),
            ]
        })
        .collect();
    assert!(
        publisher
            .pipeline(&pipelined)
            .iter()
            .all(|f| *f == Frame::Int(2))
    );
    let expected: Vec<String> = (0..2 * MESSAGES).map(|i| i.to_string()).collect();
    assert_eq!(payloads(&mut subscriber, 2 * MESSAGES), expected);
    assert_eq!(payloads(&mut pattern, 2 * MESSAGES), expected);

    // SPUBLISH reaches the shard subscribers of every master, in order,
    // as `smessage`, and no channel or pattern subscriber of that name.
    let mut shard = Client::connect(resp_port(&cluster, 2)).unwrap();
    assert_eq!(
        shard.call_str(&["SSUBSCRIBE", "orders"]),
        Frame::Array(vec![bulk("ssubscribe"), bulk("orders"), Frame::Int(1)])
    );
    for i in 0..100 {
        let got = publisher.call_str(&["SPUBLISH", "orders", &format!("s{i}")]);
        assert_eq!(got, Frame::Int(1), "SPUBLISH {i}: the shard subscriber");
    }
    assert_eq!(
        shard.read_within(FRAME_WAIT),
        Some(Frame::Array(vec![
            bulk("smessage"),
            bulk("orders"),
            bulk("s0")
        ]))
    );
    let expected: Vec<String> = (1..100).map(|i| format!("s{i}")).collect();
    assert_eq!(payloads(&mut shard, 99), expected);
    assert_eq!(
        publisher.call_str(&["PUBLISH", "orders", "after"]),
        Frame::Int(2)
    );
    assert_eq!(payloads(&mut subscriber, 1), ["after"]);
    assert_eq!(payloads(&mut pattern, 1), ["after"]);
    assert_eq!(shard.read_within(Duration::from_millis(200)), None);
    drop(shard);

    // A stopped master holds the publisher up once, for the bound, and
    // then not at all; the others still get every message.
    cluster.masters[2].proc.stop();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut waited = 0;
    for i in 0..50 {
        let one = Instant::now();
        let got = publisher.call_str(&["PUBLISH", "orders", &format!("while-stopped-{i}")]);
        slowest = slowest.max(one.elapsed());
        if one.elapsed() >= Duration::from_millis(200) {
            waited += 1;
        }
        assert_eq!(got, Frame::Int(1), "only master 2's subscriber answers");
    }
    let took = started.elapsed();
    cluster.masters[2]
        .proc
        .signal(nix::sys::signal::Signal::SIGCONT);
    assert!(
        slowest < Duration::from_secs(1),
        "one PUBLISH took {slowest:?} with a stopped master"
    );
    assert!(
        waited <= 1,
        "{waited} PUBLISH waited for the stopped master; only the first may"
    );
    assert!(
        took < Duration::from_secs(3),
        "50 PUBLISH took {took:?} with a stopped master"
    );
    let expected: Vec<String> = (0..50).map(|i| format!("while-stopped-{i}")).collect();
    assert_eq!(payloads(&mut subscriber, 50), expected);
    let metrics = cluster.get_text(0, "/metrics");
    let not_awaited = metric_value(
        &metrics,
        "distcache_pubsub_peer_publishes_total{result=\"not_awaited\"}",
    )
    .unwrap_or(0.0);
    assert!(not_awaited >= 1.0, "{metrics}");
    // The route the masters deliver on needs the cluster secret.
    let forged = cluster
        .http
        .post(cluster.url(1, "/internal/pubsub/publish"))
        .json(&json!({"messages": [{"channel": "b3JkZXJz", "payload": "Zm9yZ2Vk"}]}))
        .send()
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    let forged = cluster
        .http
        .post(cluster.url(1, "/internal/pubsub/spublish"))
        .json(&json!({"messages": [{"channel": "b3JkZXJz", "payload": "Zm9yZ2Vk"}]}))
        .send()
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    // With it, a body larger than any batch a master sends is refused as
    // too large. The master answers 413 once the body passes its limit and
    // closes without reading the rest: the client, still writing 64 MiB,
    // then sees either the answer or (when the close's reset beats it to
    // the answer) a broken pipe on its write. Either way the body was
    // refused; the master serving on below shows it did not fall over.
    let payload = "A".repeat(64 * 1024 * 1024);
    let oversized = cluster
        .http
        .post(cluster.url(1, "/internal/pubsub/publish"))
        .header("x-distcache-secret", SECRET)
        .json(&json!({"messages": [{"channel": "b3JkZXJz", "payload": payload}]}))
        .send();
    match oversized {
        Ok(answer) => {
            assert_eq!(answer.status().as_u16(), 413);
            let body: Value = answer.json().unwrap();
            assert_eq!(body["error"]["code"], json!("body_too_large"), "{body}");
        }
        Err(e) => assert!(
            e.is_request() && format!("{e:?}").contains("BodyWrite"),
            "neither a 413 nor a write cut short: {e:?}"
        ),
    }
    // Once it runs again, its subscriber counts again.
    wait_until(
        Duration::from_secs(20),
        "the stopped master answers PUBLISH again",
        || publisher.call_str(&["PUBLISH", "orders", "again"]) == Frame::Int(2),
    );
}

#[test]
fn subscribers_of_a_restarted_master_lose_their_connection_and_subscribe_again() {
    let mut cluster = resp_cluster(2, Vec::new());
    let mut publisher = Client::connect(resp_port(&cluster, 0)).unwrap();
    let mut subscriber = Client::connect(resp_port(&cluster, 1)).unwrap();
    subscriber.call_str(&["SUBSCRIBE", "news"]);
    assert_eq!(
        publisher.call_str(&["PUBLISH", "news", "before"]),
        Frame::Int(1)
    );
    assert_eq!(payloads(&mut subscriber, 1), ["before"]);

    cluster.masters[1].proc.restart();
    // The subscriber's connection ended with the process.
    assert_eq!(subscriber.read_within(FRAME_WAIT), None);
    // A PUBLISH while a master is down is no error.
    assert_eq!(
        publisher.call_str(&["PUBLISH", "nobody-listens", "away"]),
        Frame::Int(0)
    );
    let mut again = None;
    wait_until(
        Duration::from_secs(30),
        "the restarted master's RESP port",
        || {
            again = Client::connect(resp_port(&cluster, 1)).ok();
            again.is_some()
        },
    );
    let mut subscriber = again.unwrap();
    assert_eq!(
        subscriber.call_str(&["SUBSCRIBE", "news"]),
        Frame::Array(vec![bulk("subscribe"), bulk("news"), Frame::Int(1)])
    );
    // Once the publisher's master reaches it again, the count includes it
    // and the messages arrive.
    wait_until(
        Duration::from_secs(30),
        "PUBLISH reaches the restarted master",
        || publisher.call_str(&["PUBLISH", "news", "after"]) == Frame::Int(1),
    );
    assert_eq!(payloads(&mut subscriber, 1), ["after"]);
}

#[test]
fn a_subscriber_under_a_flood_of_messages_can_still_unsubscribe() {
    let cluster = resp_cluster(1, Vec::new());
    let port = resp_port(&cluster, 0);
    let mut subscriber = Client::connect(port).unwrap();
    subscriber.call_str(&["SUBSCRIBE", "flood"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooding = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut publisher = Client::connect(port).unwrap();
            let payload = "f".repeat(1024);
            let commands: Vec<Vec<Vec<u8>>> = (0..16)
                .map(|_| {
                    vec![
                        b"PUBLISH".to_vec(),
                        b"flood".to_vec(),
                        payload.clone().into_bytes(),
                    ]
                })
                .collect();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                publisher.pipeline(&commands);
            }
        })
    };
    // Read a while, then ask to leave while the messages keep coming.
    for _ in 0..2000 {
        subscriber.read_within(FRAME_WAIT).expect("messages come");
    }
    subscriber.send_str(&["UNSUBSCRIBE", "flood"]);
    let started = Instant::now();
    let left = Frame::Array(vec![bulk("unsubscribe"), bulk("flood"), Frame::Int(0)]);
    loop {
        let frame = subscriber
            .read_within(FRAME_WAIT)
            .expect("a frame keeps coming until the confirmation");
        if frame == left {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "UNSUBSCRIBE not answered under a flood of messages"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flooding.join().unwrap();
}

#[test]
fn a_subscriber_that_never_reads_is_disconnected_at_the_bound() {
    let bound = 1024 * 1024;
    let cluster = resp_cluster(
        1,
        vec![("RESP_PUBSUB_BUFFER_BYTES".into(), bound.to_string())],
    );
    let port = resp_port(&cluster, 0);
    // A raw socket: the master closes it mid-message, which a frame
    // reader would not parse.
    let mut lazy = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    lazy.write_all(&resp::encode_command(&[
        b"SUBSCRIBE".to_vec(),
        b"firehose".to_vec(),
    ]))
    .unwrap();
    let confirmation = b"*3\r\n$9\r\nsubscribe\r\n$8\r\nfirehose\r\n:1\r\n";
    let mut got = vec![0; confirmation.len()];
    lazy.read_exact(&mut got).unwrap();
    assert_eq!(&got[..], &confirmation[..]);
    let rss = || {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", cluster.masters[0].proc.pid()))
                .unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .unwrap()
            * 1024
    };
    let before = rss();
    let mut publisher = Client::connect(port).unwrap();
    let payload = "x".repeat(64 * 1024);
    let mut counts = Vec::new();
    // 128 MiB published, far past the socket buffers and the bound.
    const PUBLISHES: usize = 2048;
    for _ in 0..PUBLISHES {
        let Frame::Int(n) = publisher.call_str(&["PUBLISH", "firehose", &payload]) else {
            panic!("PUBLISH failed");
        };
        counts.push(n);
    }
    let grown = rss().saturating_sub(before);
    assert!(
        grown < 48 * 1024 * 1024,
        "the master grew by {grown} bytes for one subscriber that does not read"
    );
    assert_eq!(counts[0], 1);
    assert_eq!(
        *counts.last().unwrap(),
        0,
        "the subscriber is gone: {counts:?}"
    );
    let metrics = cluster.get_text(0, "/metrics");
    assert_eq!(
        metric_value(
            &metrics,
            "distcache_resp_rejected_total{reason=\"pubsub_output\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    let dropped = metric_value(&metrics, "distcache_pubsub_messages_dropped_total").unwrap();
    assert!(dropped >= 1.0, "{metrics}");
    assert_eq!(
        metric_value(&metrics, "distcache_pubsub_channels"),
        Some(0.0)
    );
    // Its socket ends after what the kernel had taken.
    lazy.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut received = Vec::new();
    lazy.read_to_end(&mut received)
        .expect("the master closes the subscriber's connection");
    assert!(
        received.len() < PUBLISHES * payload.len() / 2,
        "{} bytes reached a disconnected subscriber",
        received.len()
    );
}

#[test]
fn a_read_token_subscribes_but_cannot_publish_and_http_publishes() {
    let tokens = "ps-read:read,ps-write:write,ps-admin:admin";
    let cluster = Cluster::start(Spec {
        masters: 1,
        auxiliaries: 1,
        replicas: 1,
        resp: true,
        token: Some("ps-admin".into()),
        master_env: vec![
            ("AUTH_TOKENS".into(), tokens.into()),
            ("CLUSTER_SECRET".into(), SECRET.into()),
        ],
        aux_env: vec![("CLUSTER_SECRET".into(), SECRET.into())],
        ..Spec::default()
    });
    let port = resp_port(&cluster, 0);
    let mut reader = Client::connect(port).unwrap();
    assert_eq!(
        reader.call_str(&["SUBSCRIBE", "x"]),
        Frame::Error("NOAUTH Authentication required.".into())
    );
    assert_eq!(
        reader.call_str(&["AUTH", "ps-read"]),
        Frame::Simple("OK".into())
    );
    assert_eq!(
        reader.call_str(&["PUBLISH", "x", "y"]),
        Frame::Error("NOPERM this user has no permissions to run the 'publish' command".into())
    );
    assert_eq!(
        reader.call_str(&["SPUBLISH", "x", "y"]),
        Frame::Error("NOPERM this user has no permissions to run the 'spublish' command".into())
    );
    assert_eq!(
        reader.call_str(&["SUBSCRIBE", "x"]),
        Frame::Array(vec![bulk("subscribe"), bulk("x"), Frame::Int(1)])
    );
    assert_eq!(
        reader.call_str(&["SSUBSCRIBE", "s"]),
        Frame::Array(vec![bulk("ssubscribe"), bulk("s"), Frame::Int(1)])
    );
    let mut writer = Client::connect(port).unwrap();
    assert_eq!(
        writer.call_str(&["AUTH", "ps-write"]),
        Frame::Simple("OK".into())
    );
    assert_eq!(
        writer.call_str(&["PUBLISH", "x", "from resp"]),
        Frame::Int(1)
    );
    assert_eq!(payloads(&mut reader, 1), ["from resp"]);
    // CLIENT LIST shows the subscriber as Redis does: flag P, its counts.
    let Frame::Bulk(list) = writer.call_str(&["CLIENT", "LIST", "TYPE", "pubsub"]) else {
        panic!("CLIENT LIST answered no text");
    };
    let list = String::from_utf8(list).unwrap();
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(
        list.contains(" flags=P ") && list.contains(" sub=1 psub=0 ssub=1 "),
        "{list}"
    );
    let Frame::Bulk(info) = writer.call_str(&["INFO", "stats"]) else {
        panic!("INFO answered no text");
    };
    let info = String::from_utf8(info).unwrap();
    assert!(info.contains("\r\npubsubshard_channels:1\r\n"), "{info}");
    let metrics = cluster.get_text(0, "/metrics");
    assert_eq!(
        metric_value(&metrics, "distcache_pubsub_shard_channels"),
        Some(1.0)
    );

    // Over HTTP: PUBLISH with a write token reaches the RESP subscriber;
    // SUBSCRIBE points to RESP; a read token gets 403.
    let post = |token: &str, body: Value| {
        let resp = cluster
            .http
            .post(cluster.url(0, "/"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().unwrap())
    };
    assert_eq!(
        post("ps-write", json!(["PUBLISH", "x", "from http"])),
        (200, json!({"result": 1}))
    );
    assert_eq!(payloads(&mut reader, 1), ["from http"]);
    assert_eq!(
        post("ps-write", json!(["SPUBLISH", "s", "shard from http"])),
        (200, json!({"result": 1}))
    );
    assert_eq!(payloads(&mut reader, 1), ["shard from http"]);
    let (status, body) = post("ps-read", json!(["PUBLISH", "x", "no"]));
    assert_eq!(status, 403, "{body}");
    let (status, body) = post("ps-read", json!(["SPUBLISH", "s", "no"]));
    assert_eq!(status, 403, "{body}");
    for subscribe in ["SUBSCRIBE", "SSUBSCRIBE"] {
        let (status, body) = post("ps-read", json!([subscribe, "x"]));
        assert_eq!(status, 400);
        assert!(
            body["error"].as_str().unwrap().contains("use RESP"),
            "{body}"
        );
    }
    assert_eq!(
        post("ps-read", json!(["PUBSUB", "SHARDNUMSUB", "s"])),
        (200, json!({"result": ["s", 1]}))
    );
    assert_eq!(
        post("ps-read", json!(["PUBSUB", "NUMSUB", "x"])),
        (200, json!({"result": ["x", 1]}))
    );
    // In a pipeline, in its place among the data commands.
    let resp = cluster
        .http
        .post(cluster.url(0, "/pipeline"))
        .bearer_auth("ps-write")
        .json(&json!([
            ["SET", "ps-key", "1"],
            ["PUBLISH", "x", "in a pipeline"],
            ["INCR", "ps-key"],
            ["PUBLISH", "x", "second"]
        ]))
        .send()
        .unwrap();
    let body: Value = resp.json().unwrap();
    assert_eq!(
        body,
        json!([{"result": "OK"}, {"result": 1}, {"result": 2}, {"result": 1}])
    );
    assert_eq!(payloads(&mut reader, 2), ["in a pipeline", "second"]);
    let resp = cluster
        .http
        .post(cluster.url(0, "/multi-exec"))
        .bearer_auth("ps-write")
        .json(&json!([["PUBLISH", "x", "in a transaction"]]))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not in a transaction"),
        "{body}"
    );
    // INFO's stats count this master's subscriptions.
    let Frame::Bulk(info) = writer.call_str(&["INFO", "stats"]) else {
        panic!("INFO answered no text");
    };
    let info = String::from_utf8(info).unwrap();
    assert!(
        info.contains("pubsub_channels:1\r\n") && info.contains("pubsub_patterns:0\r\n"),
        "{info}"
    );
}

#[test]
fn redis_py_pubsub_receives_across_masters_in_resp2_and_resp3() {
    let cluster = resp_cluster(2, Vec::new());
    let python = repo().join("scripts/redis-py/.venv/bin/python");
    assert!(
        python.exists(),
        "run scripts/deps.d/26-redis-py.sh for the Python redis package"
    );
    let script = r#"
import sys, time, redis
sub_port, pub_port = int(sys.argv[1]), int(sys.argv[2])
for protocol in (2, 3):
    sub = redis.Redis(host="127.0.0.1", port=sub_port, protocol=protocol, decode_responses=True)
    pub = redis.Redis(host="127.0.0.1", port=pub_port, protocol=protocol, decode_responses=True)
    p = sub.pubsub()
    p.subscribe("py-chan")
    p.psubscribe("py-*")
    first = p.get_message(timeout=5)
    assert first["type"] == "subscribe" and first["channel"] == "py-chan", first
    second = p.get_message(timeout=5)
    assert second["type"] == "psubscribe" and second["channel"] == "py-*", second
    assert pub.publish("py-chan", "hello") == 2
    got = [p.get_message(timeout=5) for _ in range(2)]
    assert got[0]["type"] == "message" and got[0]["data"] == "hello", got
    assert got[1]["type"] == "pmessage" and got[1]["pattern"] == "py-*", got
    assert pub.pubsub_numsub("py-chan") == [("py-chan", 0)]
    assert sub.pubsub_numsub("py-chan") == [("py-chan", 1)]
    for i in range(20):
        pub.publish("py-other", str(i))
    seen = []
    for message in p.listen():
        if message["type"] == "pmessage":
            seen.append(message["data"])
        if len(seen) == 20:
            break
    assert seen == [str(i) for i in range(20)], seen
    p.unsubscribe()
    p.punsubscribe()
    p.close()
    deadline = time.time() + 5
    while pub.publish("py-chan", "nobody") != 0:
        assert time.time() < deadline, "the closed PubSub still receives"
        time.sleep(0.05)
print("ok")
"#;
    let out = Command::new(python)
        .args([
            "-c",
            script,
            &resp_port(&cluster, 1).to_string(),
            &resp_port(&cluster, 0).to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok"),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// node-redis (`scripts/deps.d/27-node-redis.sh`) subscribes on a
/// `duplicate()` of a client of master 1, as its documentation says to,
/// and a client of master 0 publishes.
#[test]
fn node_redis_subscribers_receive_across_masters_in_resp2_and_resp3() {
    let cluster = resp_cluster(2, Vec::new());
    let script = r#"
const assert = require("node:assert/strict");
const { createClient } = require("redis");
const [subPort, pubPort] = process.argv.slice(1).map(Number);
const connect = (port, RESP) => createClient({
  socket: { host: "127.0.0.1", port, reconnectStrategy: false }, RESP,
});
// Resolves once `list` holds `n` entries, fails after five seconds.
const until = (list, n) => new Promise((resolve, reject) => {
  const started = Date.now();
  const check = () => {
    if (list.length >= n) return resolve();
    if (Date.now() - started > 5000) return reject(new Error(`${list.length} of ${n} arrived`));
    setTimeout(check, 10);
  };
  check();
});
(async () => {
  for (const RESP of [2, 3]) {
    const client = connect(subPort, RESP);
    await client.connect();
    const sub = client.duplicate();
    await sub.connect();
    const pub = connect(pubPort, RESP);
    await pub.connect();
    const messages = [];
    const pmessages = [];
    await sub.subscribe(["node-chan", "node-other"], (message, channel) => messages.push([channel, message]));
    await sub.pSubscribe("node-*", (message, channel) => pmessages.push([channel, message]));
    // PUBSUB answers for the master asked; PUBLISH counts the receivers
    // cluster-wide.
    assert.deepEqual({ ...(await client.pubSubNumSub(["node-chan"])) }, { "node-chan": 1 });
    assert.deepEqual({ ...(await pub.pubSubNumSub(["node-chan"])) }, { "node-chan": 0 });
    assert.equal(await client.pubSubNumPat(), 1);
    assert.equal(await pub.publish("node-chan", "hello"), 2);
    await until(messages, 1);
    await until(pmessages, 1);
    assert.deepEqual(messages, [["node-chan", "hello"]]);
    assert.deepEqual(pmessages, [["node-chan", "hello"]]);
    for (let i = 0; i < 50; i++) await pub.publish("node-other", String(i));
    const inOrder = [...Array(50).keys()].map(String);
    await until(messages, 51);
    await until(pmessages, 51);
    assert.deepEqual(messages.slice(1).map(([, m]) => m), inOrder);
    assert.deepEqual(pmessages.slice(1).map(([, m]) => m), inOrder);
    await sub.unsubscribe("node-chan");
    assert.equal(await pub.publish("node-chan", "pattern only"), 1);
    await until(pmessages, 52);
    assert.deepEqual(pmessages[51], ["node-chan", "pattern only"]);
    await sub.unsubscribe();
    await sub.pUnsubscribe();
    assert.equal(await pub.publish("node-chan", "nobody"), 0);
    assert.equal(messages.length, 51);
    assert.equal(pmessages.length, 52);
    assert.equal(await client.pubSubNumPat(), 0);
    await Promise.all([sub.close(), client.close(), pub.close()]);
  }
  console.log("ok");
})().catch((e) => { console.error(e); process.exit(1); });
"#;
    let out = run_node(
        "node-redis",
        "redis",
        "scripts/deps.d/27-node-redis.sh",
        script,
        &[
            &resp_port(&cluster, 1).to_string(),
            &resp_port(&cluster, 0).to_string(),
        ],
    );
    assert_eq!(out, "ok");
}

/// ioredis (`scripts/deps.d/28-ioredis.sh`) subscribes on master 1 and
/// hands the messages out as `message` and `pmessage` events; a client of
/// master 0 publishes.
#[test]
fn ioredis_subscribers_receive_across_masters_in_resp2_and_resp3() {
    let cluster = resp_cluster(2, Vec::new());
    let script = r#"
const assert = require("node:assert/strict");
const Redis = require("ioredis");
const [subPort, pubPort] = process.argv.slice(1).map(Number);
const connect = (port, protocol) => new Redis({
  host: "127.0.0.1", port, protocol, lazyConnect: true, retryStrategy: () => null,
});
// Resolves once `list` holds `n` entries, fails after five seconds.
const until = (list, n) => new Promise((resolve, reject) => {
  const started = Date.now();
  const check = () => {
    if (list.length >= n) return resolve();
    if (Date.now() - started > 5000) return reject(new Error(`${list.length} of ${n} arrived`));
    setTimeout(check, 10);
  };
  check();
});
(async () => {
  for (const protocol of [2, 3]) {
    const sub = connect(subPort, protocol);
    const pub = connect(pubPort, protocol);
    await sub.connect();
    await pub.connect();
    const messages = [];
    const pmessages = [];
    sub.on("message", (channel, message) => messages.push([channel, message]));
    sub.on("pmessage", (pattern, channel, message) => pmessages.push([pattern, channel, message]));
    assert.equal(await sub.subscribe("io-chan", "io-other"), 2);
    assert.equal(await sub.psubscribe("io-*"), 3);
    assert.equal(await pub.publish("io-chan", "hello"), 2);
    await until(messages, 1);
    await until(pmessages, 1);
    assert.deepEqual(messages, [["io-chan", "hello"]]);
    assert.deepEqual(pmessages, [["io-*", "io-chan", "hello"]]);
    for (let i = 0; i < 50; i++) await pub.publish("io-other", String(i));
    const inOrder = [...Array(50).keys()].map(String);
    await until(messages, 51);
    await until(pmessages, 51);
    assert.deepEqual(messages.slice(1).map(([, m]) => m), inOrder);
    assert.deepEqual(pmessages.slice(1).map(([, , m]) => m), inOrder);
    assert.equal(await sub.unsubscribe("io-chan"), 2);
    assert.equal(await pub.publish("io-chan", "pattern only"), 1);
    await until(pmessages, 52);
    assert.deepEqual(pmessages[51], ["io-*", "io-chan", "pattern only"]);
    assert.equal(messages.length, 51);
    // ioredis resolves an UNSUBSCRIBE without arguments only at a count of
    // 0 (patterns included), against Redis too: name the channel, and leave
    // the patterns last.
    assert.equal(await sub.unsubscribe("io-other"), 1);
    assert.equal(await sub.punsubscribe(), 0);
    assert.equal(await pub.publish("io-chan", "nobody"), 0);
    // Out of subscriber mode, the connection runs commands again.
    assert.equal(await sub.ping(), "PONG");
    sub.disconnect();
    pub.disconnect();
  }
  console.log("ok");
})().catch((e) => { console.error(e); process.exit(1); });
"#;
    let out = run_node(
        "ioredis",
        "ioredis",
        "scripts/deps.d/28-ioredis.sh",
        script,
        &[
            &resp_port(&cluster, 1).to_string(),
            &resp_port(&cluster, 0).to_string(),
        ],
    );
    assert_eq!(out, "ok");
}

/// ioredis reconnects on its own when its master restarts, subscribes
/// again there to what it had, and receives again once the publisher's
/// master reaches the restarted one.
#[test]
fn ioredis_subscribes_again_after_its_master_restarts() {
    let mut cluster = resp_cluster(2, Vec::new());
    let dir = repo().join("scripts/ioredis");
    assert!(
        dir.join("node_modules/ioredis").is_dir(),
        "run scripts/deps.d/28-ioredis.sh for ioredis"
    );
    let script = r#"
const assert = require("node:assert/strict");
const Redis = require("ioredis");
const [subPort, pubPort] = process.argv.slice(1).map(Number);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
(async () => {
  // The default retryStrategy: reconnect, then subscribe again.
  const sub = new Redis({ host: "127.0.0.1", port: subPort });
  const pub = new Redis({ host: "127.0.0.1", port: pubPort });
  const messages = [];
  const events = [];
  sub.on("error", () => {});
  sub.on("reconnecting", () => events.push("reconnecting"));
  sub.on("message", (channel, message) => messages.push(message));
  sub.on("pmessage", (pattern, channel, message) => messages.push(`${pattern} ${message}`));
  assert.equal(await sub.subscribe("io-news"), 1);
  assert.equal(await sub.psubscribe("io-n*"), 2);
  assert.equal(await pub.publish("io-news", "before"), 2);
  while (messages.length < 2) await sleep(10);
  assert.deepEqual(messages, ["before", "io-n* before"]);
  console.log("restart my master");
  while (!events.includes("reconnecting")) await sleep(10);
  // Once the restarted master is back and the publisher's master reaches
  // it, both subscriptions count again and deliver.
  const deadline = Date.now() + 30000;
  while ((await pub.publish("io-news", "after")) !== 2) {
    assert.ok(Date.now() < deadline, "the subscriptions never came back");
    await sleep(100);
  }
  while (!messages.includes("io-n* after") || !messages.includes("after")) {
    assert.ok(Date.now() < deadline, `${messages}`);
    await sleep(10);
  }
  sub.disconnect();
  pub.disconnect();
  console.log("ok");
})().catch((e) => { console.error(e); process.exit(1); });
"#;
    let mut child = Command::new(tool("node", "scripts/deps.d/28-ioredis.sh"))
        .current_dir(&dir)
        .arg("-e")
        .arg(script)
        .args([
            resp_port(&cluster, 1).to_string(),
            resp_port(&cluster, 0).to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The script says when it has received through both subscriptions.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "restart my master");
    cluster.masters[1].proc.restart();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && line.trim() == "ok",
        "{line}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
