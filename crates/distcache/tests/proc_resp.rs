//! The Redis-protocol listener of real master processes, spoken to byte by
//! byte: pipelining, RESP3 after HELLO, the limits (a huge bulk length, a
//! client that never reads), AUTH with the REST API's tokens and roles,
//! TLS, many connections, metrics, and shutdown with connections open.
//! Real clients (redis-cli, redis-py, the `redis` crate, redis-benchmark)
//! are in `tools_resp_clients.rs`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Cluster, Proc, Spec, free_port, metric_value, wait_until};
use nix::sys::signal::Signal;

const READ: &str = "resp-read-token";
const WRITE: &str = "resp-write-token";
const ADMIN: &str = "resp-admin-token";

fn resp_cluster(master_env: &[(&str, &str)]) -> Cluster {
    let secured = master_env.iter().any(|(k, _)| *k == "AUTH_TOKENS");
    Cluster::start(Spec {
        auxiliaries: 2,
        resp: true,
        token: secured.then(|| ADMIN.to_string()),
        aux_env: master_env
            .iter()
            .filter(|(k, _)| *k == "CLUSTER_SECRET")
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        master_env: master_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Spec::default()
    })
}

fn connect(cluster: &Cluster) -> TcpStream {
    let port = cluster.masters[0].resp_port.expect("a RESP port");
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to RESP");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// A request as clients send it: an array of bulk strings.
fn request(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// Sends `send` and reads exactly as many bytes as `expect` holds.
fn exchange(s: &mut impl ReadWrite, send: &[u8], expect: &[u8]) {
    s.write_all(send).unwrap();
    let got = read_exactly(s, expect.len());
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expect),
        "after sending {:?}",
        String::from_utf8_lossy(send)
    );
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn read_exactly(s: &mut impl Read, n: usize) -> Vec<u8> {
    let mut got = vec![0; n];
    let mut filled = 0;
    while filled < n {
        match s.read(&mut got[filled..]) {
            Ok(0) => panic!(
                "closed after {filled} of {n} bytes: {:?}",
                String::from_utf8_lossy(&got[..filled])
            ),
            Ok(k) => filled += k,
            Err(e) => panic!(
                "read failed after {filled} of {n} bytes ({e}): {:?}",
                String::from_utf8_lossy(&got[..filled])
            ),
        }
    }
    got
}

/// Reads until the server closes; panics if it does not within the read
/// timeout.
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    s.read_to_end(&mut all)
        .expect("the server closes the connection");
    all
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{nanos}")
}

#[test]
fn pipelined_requests_are_answered_in_order_and_resp3_follows_hello_3() {
    let cluster = resp_cluster(&[]);
    let mut s = connect(&cluster);
    exchange(&mut s, &request(&["PING"]), b"+PONG\r\n");
    // Inline commands, as typed into telnet.
    exchange(&mut s, b"PING hello\r\n", b"$5\r\nhello\r\n");
    exchange(&mut s, b"ECHO \"a b\"\r\n", b"$3\r\na b\r\n");

    // 200 requests in one write: every reply, in order.
    let key = unique("pipe");
    let mut send = Vec::new();
    let mut expect = Vec::new();
    for i in 0..100 {
        let k = format!("{key}-{i}");
        let v = format!("value-{i}");
        send.extend(request(&["SET", &k, &v]));
        expect.extend_from_slice(b"+OK\r\n");
        send.extend(request(&["GET", &k]));
        expect.extend_from_slice(format!("${}\r\n{v}\r\n", v.len()).as_bytes());
    }
    send.extend(request(&["INCR", &format!("{key}-counter")]));
    expect.extend_from_slice(b":1\r\n");
    exchange(&mut s, &send, &expect);

    // RESP2 until HELLO 3, RESP3 after it: a missing key is `_`, not `$-1`.
    let missing = unique("missing");
    exchange(&mut s, &request(&["GET", &missing]), b"$-1\r\n");
    s.write_all(&request(&["HELLO", "3"])).unwrap();
    let hello = read_exactly(&mut s, 3);
    assert_eq!(&hello, b"%7\r", "HELLO 3 answers a map of seven fields");
    // The rest of the map, up to its last field (modules: an empty array).
    let mut rest = Vec::new();
    while !rest.ends_with(b"$7\r\nmodules\r\n*0\r\n") {
        rest.extend(read_exactly(&mut s, 1));
    }
    let text = String::from_utf8_lossy(&rest);
    assert!(text.contains("$5\r\nproto\r\n:3\r\n"), "{text}");
    assert!(text.contains("$7\r\nversion\r\n$5\r\n7.2.0\r\n"), "{text}");
    exchange(&mut s, &request(&["GET", &missing]), b"_\r\n");

    // SELECT 0 only; QUIT answers and closes.
    exchange(&mut s, &request(&["SELECT", "0"]), b"+OK\r\n");
    exchange(
        &mut s,
        &request(&["SELECT", "1"]),
        b"-ERR DB index is out of range\r\n",
    );
    s.write_all(&request(&["QUIT"])).unwrap();
    assert_eq!(read_to_close(&mut s), b"+OK\r\n");

    let metrics = cluster.get_text(0, "/metrics");
    let sets = metrics
        .lines()
        .find(|l| l.starts_with("distcache_resp_commands_total{command=\"set\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    assert!(sets.is_some_and(|n| n >= 100.0), "{metrics}");
    // Data commands are also counted with those of `POST /`, by result;
    // the listener's own (PING, SELECT...) are not data commands.
    let answered = |command: &str, result: &str| {
        let name = format!("distcache_commands_total{{command=\"{command}\",result=\"{result}\"}}");
        metric_value(&metrics, &name)
    };
    assert_eq!(answered("set", "ok"), Some(100.0), "{metrics}");
    assert_eq!(answered("get", "ok"), Some(102.0), "{metrics}");
    assert_eq!(answered("incr", "ok"), Some(1.0), "{metrics}");
    assert_eq!(answered("ping", "ok"), None, "{metrics}");
    assert!(
        metrics.contains("distcache_command_duration_seconds_count{command=\"get\"} 102"),
        "{metrics}"
    );
}

/// A connection counts its commands locally and adds them to the shared
/// series once per window, before it writes the window's replies: a client
/// that has read its replies finds them counted while it stays connected.
#[test]
fn a_connections_commands_are_counted_by_the_time_their_replies_are_read() {
    let cluster = resp_cluster(&[]);
    let key = unique("counted");
    let mut s = connect(&cluster);
    let count = |metrics: &str, command: &str| {
        let name = format!("distcache_commands_total{{command=\"{command}\",result=\"ok\"}}");
        metric_value(metrics, &name).unwrap_or(0.0)
    };
    let received = |metrics: &str, command: &str| {
        let name = format!("distcache_resp_commands_total{{command=\"{command}\"}}");
        metric_value(metrics, &name).unwrap_or(0.0)
    };
    let before = cluster.get_text(0, "/metrics");
    let mut send = Vec::new();
    let mut expected = Vec::new();
    for i in 0..20 {
        send.extend(request(&["SET", &format!("{key}{i}"), "v"]));
        expected.extend_from_slice(b"+OK\r\n");
        send.extend(request(&["GET", &format!("{key}{i}")]));
        expected.extend_from_slice(b"$1\r\nv\r\n");
    }
    exchange(&mut s, &send, &expected);
    let after = cluster.get_text(0, "/metrics");
    for command in ["set", "get"] {
        assert_eq!(
            count(&after, command) - count(&before, command),
            20.0,
            "{after}"
        );
        assert_eq!(received(&after, command) - received(&before, command), 20.0);
    }
    // Still connected, and still counting.
    exchange(
        &mut s,
        &request(&["GET", &format!("{key}0")]),
        b"$1\r\nv\r\n",
    );
    let last = cluster.get_text(0, "/metrics");
    assert_eq!(count(&last, "get") - count(&before, "get"), 21.0, "{last}");
}

/// HELLO 3 queued in a transaction switches the protocol where it runs:
/// EXEC's array header is written before it, its own map and every reply
/// after it in RESP3, as Redis 7 does.
#[test]
fn hello_3_inside_multi_switches_the_protocol_in_execs_answer() {
    let cluster = resp_cluster(&[]);
    let mut s = connect(&cluster);
    let missing = unique("missing");
    let mut send = request(&["MULTI"]);
    send.extend(request(&["GET", &missing]));
    send.extend(request(&["HELLO", "3"]));
    send.extend(request(&["GET", &missing]));
    exchange(&mut s, &send, b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n");
    s.write_all(&request(&["EXEC"])).unwrap();
    // A null in RESP2, then HELLO's map of seven fields, in RESP3.
    assert_eq!(read_exactly(&mut s, 13), b"*3\r\n$-1\r\n%7\r\n");
    let mut rest = Vec::new();
    while !rest.ends_with(b"$7\r\nmodules\r\n*0\r\n") {
        rest.extend(read_exactly(&mut s, 1));
    }
    // The GET after it: RESP3's null.
    assert_eq!(read_exactly(&mut s, 3), b"_\r\n");
    exchange(&mut s, &request(&["GET", &missing]), b"_\r\n");
}

/// The `execute` calls a master has made to auxiliaries.
fn execute_calls(cluster: &Cluster) -> f64 {
    let metrics = cluster.get_text(0, "/metrics");
    metric_value(
        &metrics,
        "distcache_aux_calls_total{op=\"execute\",outcome=\"ok\"}",
    )
    .unwrap_or(0.0)
}

/// A pipeline's commands bound for one auxiliary go to it together: 64
/// SETs then 64 GETs over two auxiliaries, in one write, cost a handful of
/// `execute` calls, not one each; a command that must run alone (PING
/// here) splits the pipeline without reordering anything.
#[test]
fn a_pipelines_commands_for_one_auxiliary_share_their_frames() {
    let cluster = resp_cluster(&[]);
    let mut s = connect(&cluster);
    exchange(&mut s, &request(&["PING"]), b"+PONG\r\n");
    let before = execute_calls(&cluster);
    let key = unique("shared");
    let mut send = Vec::new();
    let mut expect = Vec::new();
    for i in 0..64 {
        send.extend(request(&["SET", &format!("{key}-{i}"), &format!("v{i}")]));
        expect.extend_from_slice(b"+OK\r\n");
    }
    // The same key, written and read back in one pipeline: in order.
    send.extend(request(&["APPEND", &format!("{key}-0"), "+"]));
    expect.extend_from_slice(b":3\r\n");
    send.extend(request(&["PING"]));
    expect.extend_from_slice(b"+PONG\r\n");
    for i in 0..64 {
        send.extend(request(&["GET", &format!("{key}-{i}")]));
        let v = if i == 0 {
            "v0+".to_owned()
        } else {
            format!("v{i}")
        };
        expect.extend_from_slice(format!("${}\r\n{v}\r\n", v.len()).as_bytes());
    }
    exchange(&mut s, &send, &expect);
    let calls = execute_calls(&cluster) - before;
    // Without sharing: 129. With it, one batch per auxiliary per window
    // of 64 requests (3 windows, 2 auxiliaries), and a few more if the
    // pipeline arrived in several reads.
    assert!(
        (2.0..=24.0).contains(&calls),
        "{calls} execute calls for 129 data commands"
    );
}

#[test]
fn a_huge_bulk_length_is_refused_with_redis_error_and_the_connection_closed() {
    let cluster = resp_cluster(&[]);
    let mut s = connect(&cluster);
    // Declares a 100 GB argument: refused at its header, before any byte
    // of it is buffered.
    s.write_all(b"*2\r\n$3\r\nGET\r\n$100000000000\r\n")
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&read_to_close(&mut s)),
        "-ERR Protocol error: invalid bulk length\r\n"
    );
    // A reply in flight before the bad request still arrives first.
    let mut s = connect(&cluster);
    s.write_all(b"PING\r\n*1\r\n$x\r\n").unwrap();
    assert_eq!(
        String::from_utf8_lossy(&read_to_close(&mut s)),
        "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"
    );
    let metrics = cluster.get_text(0, "/metrics");
    assert!(
        metrics.contains("distcache_resp_rejected_total{reason=\"protocol\"} 2"),
        "{metrics}"
    );
    // The master is unharmed.
    let mut s = connect(&cluster);
    exchange(&mut s, &request(&["PING"]), b"+PONG\r\n");
}

#[test]
fn a_client_that_never_reads_its_replies_is_disconnected() {
    let cluster = resp_cluster(&[("RESP_OUTPUT_TIMEOUT_MS", "500")]);
    let mut s = connect(&cluster);
    let key = unique("big");
    let value = "x".repeat(256 * 1024);
    exchange(&mut s, &request(&["SET", &key, &value]), b"+OK\r\n");
    // 400 GETs of 256 KiB: 100 MiB of replies that nobody reads. The
    // socket buffers fill, the master stops reading, then disconnects.
    let get = request(&["GET", &key]);
    let writer = {
        let mut w = s.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..400 {
                if w.write_all(&get).is_err() {
                    return;
                }
            }
        })
    };
    wait_until(
        Duration::from_secs(20),
        "the stalled client is dropped",
        || {
            let metrics = cluster.get_text(0, "/metrics");
            metrics.contains("distcache_resp_rejected_total{reason=\"output_stalled\"} 1")
        },
    );
    let _ = writer.join();
    let mut other = connect(&cluster);
    exchange(&mut other, &request(&["PING"]), b"+PONG\r\n");
    wait_until(Duration::from_secs(5), "one connection left", || {
        metric_value(
            &cluster.get_text(0, "/metrics"),
            "distcache_resp_connections",
        ) == Some(1.0)
    });
}

/// redis-py's pipelines (and other clients') write every command before
/// they read a reply. With replies as large as the requests, each side's
/// socket buffers fill: the master must keep reading while its replies
/// wait, or both wait on each other until the output timeout drops the
/// client (and a client that retries runs the commands again).
#[test]
fn a_client_that_writes_a_whole_pipeline_before_reading_gets_every_reply() {
    let cluster = resp_cluster(&[("RESP_OUTPUT_TIMEOUT_MS", "3000")]);
    let s = connect(&cluster);
    let (key, counter) = (unique("swap"), unique("count"));
    let value = "v".repeat(1024);
    const N: usize = 10_000;
    let mut pipeline = Vec::new();
    for _ in 0..N {
        pipeline.extend_from_slice(&request(&["GETSET", &key, &value]));
        pipeline.extend_from_slice(&request(&["INCR", &counter]));
    }
    // About 10 MiB each way.
    let writer = {
        let mut w = s.try_clone().unwrap();
        std::thread::spawn(move || w.write_all(&pipeline).map_err(|e| e.to_string()))
    };
    assert_eq!(
        writer.join().unwrap(),
        Ok(()),
        "the master stopped reading the pipeline"
    );
    let mut r = std::io::BufReader::new(s);
    let mut last = String::new();
    for i in 0..2 * N {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut r, &mut line).unwrap();
        if let Some(len) = line.strip_prefix('$') {
            let len: i64 = len.trim_end().parse().unwrap();
            if len >= 0 {
                let mut body = vec![0; len as usize + 2];
                r.read_exact(&mut body).unwrap();
            }
        } else {
            assert!(line.starts_with(':'), "reply {i}: {line:?}");
            last = line;
        }
    }
    assert_eq!(last, format!(":{N}\r\n"));
}

#[test]
fn auth_takes_the_rest_api_tokens_and_roles() {
    let tokens = format!("{READ}:read,{WRITE}:write,{ADMIN}:admin");
    let cluster = resp_cluster(&[
        ("AUTH_TOKENS", tokens.as_str()),
        ("CLUSTER_SECRET", "resp-secret"),
    ]);
    let key = unique("auth");
    let mut s = connect(&cluster);
    exchange(
        &mut s,
        &request(&["PING"]),
        b"-NOAUTH Authentication required.\r\n",
    );
    exchange(
        &mut s,
        &request(&["GET", &key]),
        b"-NOAUTH Authentication required.\r\n",
    );
    // A refused EXEC names its refusal in an EXECABORT, as Redis does.
    exchange(
        &mut s,
        &request(&["EXEC"]),
        b"-EXECABORT Transaction discarded because of: NOAUTH Authentication required.\r\n",
    );
    // Unknown commands and wrong arity come first, as in Redis.
    exchange(
        &mut s,
        &request(&["GET"]),
        b"-ERR wrong number of arguments for 'get' command\r\n",
    );
    // Before AUTH, Redis's tighter limits: ten arguments, 16 KiB each.
    let mut other = connect(&cluster);
    let mut mget = vec!["MGET"];
    mget.extend(std::iter::repeat_n("k", 10));
    other.write_all(&request(&mget)).unwrap();
    assert_eq!(
        read_to_close(&mut other),
        b"-ERR Protocol error: unauthenticated multibulk length\r\n"
    );
    let mut other = connect(&cluster);
    other.write_all(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n").unwrap();
    assert_eq!(
        read_to_close(&mut other),
        b"-ERR Protocol error: unauthenticated bulk length\r\n"
    );
    exchange(
        &mut s,
        &request(&["AUTH", "not-a-token"]),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    // AUTH and a request past the limits before AUTH in one write: the
    // second is read as authenticated, as Redis reads it.
    let eleven: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    let mut both = request(&["AUTH", READ]);
    let mut mget = vec!["MGET"];
    mget.extend(eleven.iter().map(String::as_str));
    both.extend_from_slice(&request(&mget));
    let mut nils = b"+OK\r\n*10\r\n".to_vec();
    for _ in 0..10 {
        nils.extend_from_slice(b"$-1\r\n");
    }
    exchange(&mut s, &both, &nils);
    exchange(&mut s, &request(&["GET", &key]), b"$-1\r\n");
    exchange(
        &mut s,
        &request(&["SET", &key, "v"]),
        b"-NOPERM this user has no permissions to run the 'set' command\r\n",
    );
    // A refused command inside MULTI dooms the transaction.
    exchange(&mut s, &request(&["MULTI"]), b"+OK\r\n");
    exchange(
        &mut s,
        &request(&["SET", &key, "v"]),
        b"-NOPERM this user has no permissions to run the 'set' command\r\n",
    );
    exchange(
        &mut s,
        &request(&["EXEC"]),
        b"-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
    // AUTH user token, as clients with a user name send it.
    exchange(&mut s, &request(&["AUTH", "default", WRITE]), b"+OK\r\n");
    exchange(&mut s, &request(&["SET", &key, "v"]), b"+OK\r\n");
    exchange(&mut s, &request(&["GET", &key]), b"$1\r\nv\r\n");
    // RESET forgets the authentication.
    exchange(&mut s, &request(&["RESET"]), b"+RESET\r\n");
    exchange(
        &mut s,
        &request(&["GET", &key]),
        b"-NOAUTH Authentication required.\r\n",
    );

    // HELLO before AUTH is refused; HELLO with AUTH authenticates.
    let mut s = connect(&cluster);
    s.write_all(&request(&["HELLO", "3"])).unwrap();
    let line = read_line(&mut s);
    assert!(line.starts_with("-NOAUTH HELLO must be called"), "{line}");
    s.write_all(&request(&[
        "HELLO", "3", "AUTH", "default", WRITE, "SETNAME", "me",
    ]))
    .unwrap();
    assert_eq!(read_line(&mut s), "%7");
}

fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        line.extend(read_exactly(s, 1));
    }
    String::from_utf8_lossy(&line[..line.len() - 2]).into_owned()
}

#[test]
fn many_connections_are_served_at_once_and_shutdown_ends_them() {
    many_connections_then_shutdown(&[]);
}

/// Connections are spread over the RESP threads in turn; each thread has
/// its own connections to the auxiliaries, and they all see one cluster:
/// what one connection wrote, the next one (on another thread) reads.
#[test]
fn with_three_resp_threads_connections_on_every_thread_are_served_and_shutdown_ends_them() {
    many_connections_then_shutdown(&[("RESP_THREADS", "3")]);
}

fn many_connections_then_shutdown(master_env: &[(&str, &str)]) {
    let mut cluster = resp_cluster(master_env);
    let key = unique("many");
    let mut conns: Vec<TcpStream> = (0..300).map(|_| connect(&cluster)).collect();
    for (i, s) in conns.iter_mut().enumerate() {
        s.write_all(&request(&["SET", &format!("{key}-{i}"), &i.to_string()]))
            .unwrap();
    }
    for s in conns.iter_mut() {
        assert_eq!(read_exactly(s, 5), b"+OK\r\n");
    }
    let n = conns.len();
    for (i, s) in conns.iter_mut().enumerate() {
        let next = (i + 1) % n;
        let value = next.to_string();
        exchange(
            s,
            &request(&["GET", &format!("{key}-{next}")]),
            format!("${}\r\n{value}\r\n", value.len()).as_bytes(),
        );
    }
    let mut s = connect(&cluster);
    s.write_all(&request(&["CLIENT", "LIST"])).unwrap();
    let header = read_line(&mut s);
    let len: usize = header[1..].parse().unwrap();
    let list = read_exactly(&mut s, len + 2);
    let lines = String::from_utf8_lossy(&list).lines().count();
    assert!(lines >= 301, "CLIENT LIST shows every connection: {lines}");
    assert_eq!(
        metric_value(
            &cluster.get_text(0, "/metrics"),
            "distcache_resp_connections"
        ),
        Some(301.0)
    );

    // SIGTERM with 301 idle connections: the master still stops promptly.
    sigterm_stops_the_master_within_the_deadline(&mut cluster);
    assert_eq!(read_to_close(&mut s), b"");
}

/// SIGTERMs the first master and checks that it exits within the shutdown
/// deadline and a little more.
fn sigterm_stops_the_master_within_the_deadline(cluster: &mut Cluster) {
    let started = Instant::now();
    cluster.masters[0].proc.signal(Signal::SIGTERM);
    assert!(
        cluster.masters[0]
            .proc
            .wait_exit(Duration::from_secs(15))
            .is_some(),
        "the master did not stop"
    );
    assert!(started.elapsed() < Duration::from_secs(12));
}

/// An auxiliary killed and started again while connections on every RESP
/// thread use it: each thread's own connection to it broke, and each
/// thread connects again on its next call, so every connection is served.
#[test]
fn with_three_resp_threads_every_thread_is_served_after_an_auxiliary_restarts() {
    let mut cluster = resp_cluster(&[("RESP_THREADS", "3")]);
    let key = unique("aux-restart");
    let mut conns: Vec<TcpStream> = (0..6).map(|_| connect(&cluster)).collect();
    for (i, s) in conns.iter_mut().enumerate() {
        exchange(
            s,
            &request(&["SET", &format!("{key}-{i}"), "before"]),
            b"+OK\r\n",
        );
    }
    cluster.aux("aux-1").proc.restart();
    cluster.wait_for_up(2);
    for (i, s) in conns.iter_mut().enumerate() {
        let k = format!("{key}-{i}");
        // The first write may still meet the broken connection or a node
        // not yet back in the ring; within seconds every thread is served.
        wait_until(
            Duration::from_secs(15),
            "a write through every thread",
            || {
                s.write_all(&request(&["SET", &k, "after"])).unwrap();
                read_line(s) == "+OK"
            },
        );
        exchange(s, &request(&["GET", &k]), b"$5\r\nafter\r\n");
    }
}

/// SIGTERM while every RESP thread has a pipeline of writes in flight,
/// their replicas' copies following in the background (`WRITE_QUORUM=one`):
/// the master still stops within the shutdown deadline.
#[test]
fn sigterm_with_pipelines_in_flight_on_three_resp_threads_stops_the_master_promptly() {
    let mut cluster = resp_cluster(&[("RESP_THREADS", "3"), ("WRITE_QUORUM", "one")]);
    let key = unique("term");
    let mut conns: Vec<TcpStream> = (0..6).map(|_| connect(&cluster)).collect();
    for (c, s) in conns.iter_mut().enumerate() {
        let mut pipeline = Vec::new();
        for i in 0..2000 {
            pipeline.extend(request(&["SET", &format!("{key}-{c}-{i}"), "v"]));
        }
        s.write_all(&pipeline).unwrap();
    }
    sigterm_stops_the_master_within_the_deadline(&mut cluster);
}

#[test]
fn resp_speaks_tls_when_tls_cert_and_key_are_set() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let resp_port = free_port();
    let env: Vec<(String, String)> = [
        ("PORT", free_port().to_string()),
        ("RESP_PORT", resp_port.to_string()),
        ("BIND_ADDR", "127.0.0.1".to_string()),
        ("NODE_ID", "tls-resp".to_string()),
        ("TLS_CERT", cert_path.display().to_string()),
        ("TLS_KEY", key_path.display().to_string()),
        ("BACKUP_DIR", dir.path().join("m").display().to_string()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.clone()))
    .collect();
    let _master = Proc::spawn(dir.path(), "tls-resp", &["master"], &env);
    wait_until(Duration::from_secs(20), "the RESP port is open", || {
        TcpStream::connect(("127.0.0.1", resp_port)).is_ok()
    });

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", resp_port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn =
        rustls::ClientConnection::new(std::sync::Arc::new(config), "localhost".try_into().unwrap())
            .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    exchange(
        &mut tls,
        &request(&["PING", "over tls"]),
        b"$8\r\nover tls\r\n",
    );

    // Plain RESP on the TLS port gets no RESP answer.
    let mut plain = TcpStream::connect(("127.0.0.1", resp_port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain.write_all(&request(&["PING"])).unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"+PONG"), "{answer:?}");
}

#[test]
fn arguments_and_requests_are_bounded_by_max_body_bytes() {
    let cluster = resp_cluster(&[("MAX_BODY_BYTES", "1024")]);
    let key = unique("bounded");
    let mut s = connect(&cluster);
    // An argument up to MAX_BODY_BYTES is accepted...
    let value = "v".repeat(1024);
    exchange(&mut s, &request(&["SET", &key, &value]), b"+OK\r\n");
    // ...one byte more is Redis's protocol error, then close.
    s.write_all(format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$1025\r\n", key.len()).as_bytes())
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&read_to_close(&mut s)),
        "-ERR Protocol error: invalid bulk length\r\n"
    );
    // A request that grows past twice MAX_BODY_BYTES unfinished (many
    // legal arguments) is cut off without buffering more.
    let mut s = connect(&cluster);
    let mut big = b"*100\r\n$4\r\nMSET\r\n".to_vec();
    for i in 0..4 {
        big.extend_from_slice(format!("$1000\r\n{}\r\n", i.to_string().repeat(1000)).as_bytes());
    }
    s.write_all(&big).unwrap();
    assert_eq!(read_to_close(&mut s), b"");
    let metrics = cluster.get_text(0, "/metrics");
    assert!(
        metrics.contains("distcache_resp_rejected_total{reason=\"query_buffer\"} 1"),
        "{metrics}"
    );
}

/// WAIT answers with the replicas beyond the leader that the connection's
/// last write reached: 0 before any write, then REPLICAS - 1 (with
/// `WRITE_QUORUM=all`, every live replica has an acknowledged write), not
/// changed by a read, and per connection.
#[test]
fn wait_answers_with_the_replicas_the_last_write_reached() {
    let cluster = resp_cluster(&[]);
    let key = unique("wait");
    let mut s = connect(&cluster);
    exchange(&mut s, &request(&["WAIT", "1", "0"]), b":0\r\n");
    exchange(&mut s, &request(&["SET", &key, "v"]), b"+OK\r\n");
    exchange(&mut s, &request(&["WAIT", "1", "100"]), b":1\r\n");
    exchange(&mut s, &request(&["GET", &key]), b"$1\r\nv\r\n");
    exchange(&mut s, &request(&["WAIT", "2", "0"]), b":1\r\n");
    let mut other = connect(&cluster);
    exchange(&mut other, &request(&["WAIT", "1", "0"]), b":0\r\n");
    exchange(
        &mut other,
        &request(&["RPUSH", &key, "x"]),
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    );
    exchange(
        &mut other,
        &request(&["HSET", &format!("{key}:h"), "f", "v"]),
        b":1\r\n",
    );
    exchange(&mut other, &request(&["WAIT", "0", "0"]), b":1\r\n");
    exchange(
        &mut s,
        &request(&["WAIT", "x", "0"]),
        b"-ERR value is not an integer or out of range\r\n",
    );
}

/// A write whose arguments do not parse runs nowhere and so reaches no
/// replica, pipelined as alone: WAIT after it still answers 0 (before
/// any write). In a pipeline it goes to its key's leader with the other
/// commands of its batch (docs/commands.md, "Pipelines"), which must not
/// count it as a write that reached the batch's replicas.
#[test]
fn a_pipelined_write_that_does_not_parse_is_not_counted_by_wait() {
    let cluster = resp_cluster(&[]);
    let key = unique("wait-syntax");
    let mut s = connect(&cluster);
    // Alone: answered with its error, and not counted.
    let mut send = request(&["SET", &key, "v", "BOGUS"]);
    send.extend(request(&["WAIT", "1", "0"]));
    exchange(&mut s, &send, b"-ERR syntax error\r\n:0\r\n");
    // Pipelined with a read of the same key, in one write: one batch.
    let mut other = connect(&cluster);
    let mut send = request(&["GET", &key]);
    send.extend(request(&["SET", &key, "v", "BOGUS"]));
    send.extend(request(&["WAIT", "1", "0"]));
    exchange(&mut other, &send, b"$-1\r\n-ERR syntax error\r\n:0\r\n");
    // A write that fails as it runs (WRONGTYPE) changed nothing either,
    // alone or pipelined: WAIT still answers for the writes before it.
    let string = unique("wait-string");
    let mut third = connect(&cluster);
    exchange(&mut third, &request(&["SET", &string, "v"]), b"+OK\r\n");
    let mut fresh = connect(&cluster);
    let wrongtype = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
    let mut expected = wrongtype.to_vec();
    expected.extend_from_slice(b":0\r\n");
    let mut send = request(&["RPUSH", &string, "x"]);
    send.extend(request(&["WAIT", "1", "0"]));
    exchange(&mut fresh, &send, &expected);
    let mut send = request(&["GET", &string]);
    send.extend(request(&["RPUSH", &string, "x"]));
    send.extend(request(&["WAIT", "1", "0"]));
    let mut expected = b"$1\r\nv\r\n".to_vec();
    expected.extend_from_slice(wrongtype);
    expected.extend_from_slice(b":0\r\n");
    exchange(&mut fresh, &send, &expected);
}

/// A read pipelined with a write of its key that does not parse is
/// answered as alone: a read whose leader is gone is answered by the next
/// replica, and the write that does not parse runs nowhere, so it must
/// not make the read's batch a write that only the dead leader may take.
#[test]
fn a_read_batched_with_a_write_that_does_not_parse_still_falls_back_to_a_replica() {
    let mut cluster = resp_cluster(&[]);
    let key = unique("fallback");
    let mut s = connect(&cluster);
    exchange(&mut s, &request(&["SET", &key, "v"]), b"+OK\r\n");
    let leader = cluster.leader_of(&key);
    let aux = cluster.aux(&leader);
    let _ = nix::sys::signal::kill(aux.proc.pid(), Signal::SIGKILL);
    aux.proc.kill();
    let mut send = request(&["GET", &key]);
    send.extend(request(&["SET", &key, "v", "BOGUS"]));
    exchange(&mut s, &send, b"$1\r\nv\r\n-ERR syntax error\r\n");
}

/// Reads one line (a status, an error or an integer reply).
fn reply_line(s: &mut impl Read) -> Vec<u8> {
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        line.extend(read_exactly(s, 1));
    }
    line
}

/// A value the auxiliaries' memory cannot hold (over their share of
/// CACHE_MAX_BYTES, though under MAX_VALUE_BYTES) is refused inside a
/// pipeline as it is on its own, even when a later command of the same
/// batch shrinks it again: the pipeline answers as one by one.
#[test]
fn a_pipelined_write_the_store_cannot_hold_is_refused_as_on_its_own() {
    let cluster = Cluster::start(Spec {
        auxiliaries: 2,
        resp: true,
        aux_env: vec![
            ("CACHE_MAX_BYTES".into(), "4096".into()),
            ("CACHE_SHARDS".into(), "1".into()),
        ],
        ..Spec::default()
    });
    let mut s = connect(&cluster);
    let big = "x".repeat(8192);
    let alone = unique("alone");
    s.write_all(&request(&["SET", &alone, &big])).unwrap();
    let refused = reply_line(&mut s);
    assert!(
        refused.starts_with(b"-"),
        "{:?}",
        String::from_utf8_lossy(&refused)
    );
    // The same three commands, one by one, then in one write.
    let mut one_by_one = Vec::new();
    let key = unique("one-by-one");
    for args in [
        vec!["SET", &key, &big],
        vec!["SET", &key, "small"],
        vec!["GET", &key],
    ] {
        s.write_all(&request(&args)).unwrap();
        one_by_one.extend(reply_line(&mut s));
    }
    one_by_one.extend(reply_line(&mut s));
    let key = unique("pipelined");
    let mut send = request(&["SET", &key, &big]);
    send.extend(request(&["SET", &key, "small"]));
    send.extend(request(&["GET", &key]));
    s.write_all(&send).unwrap();
    let mut pipelined = Vec::new();
    for _ in 0..4 {
        pipelined.extend(reply_line(&mut s));
    }
    assert_eq!(
        String::from_utf8_lossy(&pipelined),
        String::from_utf8_lossy(&one_by_one)
    );
}

/// HELLO 3 queued in a transaction switches the protocol CLIENT INFO and
/// CLIENT LIST report, as Redis 7 does: `resp=3` for a CLIENT INFO queued
/// after it and for one after EXEC.
#[test]
fn client_info_reports_resp_3_after_hello_3_inside_multi() {
    let cluster = resp_cluster(&[]);
    let mut s = connect(&cluster);
    let mut send = request(&["MULTI"]);
    send.extend(request(&["HELLO", "3"]));
    send.extend(request(&["CLIENT", "INFO"]));
    send.extend(request(&["EXEC"]));
    send.extend(request(&["CLIENT", "INFO"]));
    s.write_all(&send).unwrap();
    // Two CLIENT INFO lines (verbatim strings in RESP3), the second last.
    let mut got = Vec::new();
    let mut infos = 0;
    while infos < 2 {
        got.extend(read_exactly(&mut s, 1));
        if got.ends_with(b"\n\r\n") {
            infos += 1;
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let resps: Vec<&str> = text
        .split(' ')
        .filter(|field| field.starts_with("resp="))
        .collect();
    assert_eq!(resps, ["resp=3", "resp=3"], "{text}");
}

/// AUTH queued in a transaction takes effect where it stands: a write
/// queued after an AUTH to a read token is refused at EXEC (Redis 7:
/// NOPERM in its place, the other commands still run), not run with the
/// role the connection had before.
#[test]
fn auth_queued_inside_multi_applies_to_the_commands_after_it() {
    let tokens = format!("{READ}:read,{WRITE}:write,{ADMIN}:admin");
    let cluster = resp_cluster(&[
        ("AUTH_TOKENS", tokens.as_str()),
        ("CLUSTER_SECRET", "resp-secret"),
    ]);
    let key = unique("multi-auth");
    let mut s = connect(&cluster);
    exchange(&mut s, &request(&["AUTH", WRITE]), b"+OK\r\n");
    let mut send = request(&["MULTI"]);
    send.extend(request(&["AUTH", READ]));
    send.extend(request(&["SET", &key, "v"]));
    send.extend(request(&["GET", &key]));
    exchange(&mut s, &send, b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n");
    s.write_all(&request(&["EXEC"])).unwrap();
    assert_eq!(reply_line(&mut s), b"*3\r\n");
    assert_eq!(reply_line(&mut s), b"+OK\r\n");
    let set = reply_line(&mut s);
    assert!(
        set.starts_with(b"-NOPERM"),
        "SET ran after AUTH to a read token: {:?}",
        String::from_utf8_lossy(&set)
    );
    assert_eq!(reply_line(&mut s), b"$-1\r\n");
}

/// A CLIENT, CONFIG or COMMAND subcommand that does not exist or has the
/// wrong arity is refused while queueing and dooms the transaction, as in
/// Redis 7 (which checks a subcommand's name and arity before queueing it).
#[test]
fn a_bad_client_subcommand_inside_multi_dooms_the_transaction() {
    let cluster = resp_cluster(&[]);
    let mut s = connect(&cluster);
    let mut send = request(&["MULTI"]);
    send.extend(request(&["CLIENT", "SETNAME"]));
    send.extend(request(&["CLIENT", "FOO"]));
    send.extend(request(&["EXEC"]));
    exchange(
        &mut s,
        &send,
        b"+OK\r\n\
          -ERR wrong number of arguments for 'client|setname' command\r\n\
          -ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n\
          -EXECABORT Transaction discarded because of previous errors.\r\n",
    );
    let mut send = request(&["MULTI"]);
    send.extend(request(&["CONFIG", "GET"]));
    send.extend(request(&["CONFIG", "FOO"]));
    send.extend(request(&["COMMAND", "COUNT", "x"]));
    send.extend(request(&["COMMAND", "FOO"]));
    send.extend(request(&["COMMAND", "COUNT"]));
    send.extend(request(&["EXEC"]));
    exchange(
        &mut s,
        &send,
        b"+OK\r\n\
          -ERR wrong number of arguments for 'config|get' command\r\n\
          -ERR unknown subcommand 'FOO'. Try CONFIG HELP.\r\n\
          -ERR wrong number of arguments for 'command|count' command\r\n\
          -ERR unknown subcommand 'FOO'. Try COMMAND HELP.\r\n\
          +QUEUED\r\n\
          -EXECABORT Transaction discarded because of previous errors.\r\n",
    );
}

/// Reads whose replies together pass the frame limit between master and
/// auxiliary (64 MiB): each GET of a 4 MiB value is answered on its own,
/// so each must be in a pipeline of 20 of them too.
#[test]
fn pipelined_reads_whose_replies_pass_the_frame_limit_are_each_answered() {
    let env = vec![("MAX_VALUE_BYTES".to_string(), (4 << 20).to_string())];
    let cluster = Cluster::start(Spec {
        auxiliaries: 2,
        resp: true,
        master_env: env.clone(),
        aux_env: env,
        ..Spec::default()
    });
    let mut s = connect(&cluster);
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let key = unique("huge");
    let value = "v".repeat((4 << 20) - 64);
    exchange(&mut s, &request(&["SET", &key, &value]), b"+OK\r\n");
    exchange(
        &mut s,
        &request(&["STRLEN", &key]),
        format!(":{}\r\n", value.len()).as_bytes(),
    );
    let mut send = Vec::new();
    for _ in 0..20 {
        send.extend(request(&["GET", &key]));
    }
    s.write_all(&send).unwrap();
    let header = format!("${}\r\n", value.len());
    for i in 0..20 {
        let got = reply_line(&mut s);
        assert_eq!(
            String::from_utf8_lossy(&got),
            header,
            "GET {i} of the pipeline"
        );
        let body = read_exactly(&mut s, value.len() + 2);
        assert!(body.ends_with(b"\r\n"));
    }
}

/// The master's resident memory, in MiB.
fn master_rss_mib(cluster: &Cluster) -> u64 {
    let pid = cluster.masters[0].proc.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS in /proc/PID/status")
        / 1024
}

/// Clients that pipeline 64 reads of a 1 MB value each and never read the
/// replies: each makes the master hold one window of replies (8 at first,
/// fewer once their size is known), not all 64. Eight of them without the
/// bound held 512 MB of replies.
#[test]
fn pipelined_large_reads_a_client_never_reads_hold_one_window_of_replies() {
    let cluster = resp_cluster(&[]);
    let mut s = connect(&cluster);
    let key = unique("large");
    exchange(
        &mut s,
        &request(&["SET", &key, &"v".repeat(1_000_000)]),
        b"+OK\r\n",
    );
    let before = master_rss_mib(&cluster);
    let mut send = Vec::new();
    for _ in 0..64 {
        send.extend(request(&["GET", &key]));
    }
    let mut idle = Vec::new();
    for _ in 0..8 {
        let mut c = connect(&cluster);
        c.write_all(&send).unwrap();
        idle.push(c);
    }
    std::thread::sleep(Duration::from_secs(3));
    let after = master_rss_mib(&cluster);
    assert!(
        after < before + 256,
        "the master went from {before} MiB to {after} MiB"
    );
    // A client that reads gets every reply, in order.
    let mut reader = connect(&cluster);
    reader.write_all(&send).unwrap();
    let mut expect = Vec::new();
    for _ in 0..64 {
        expect.extend_from_slice(b"$1000000\r\n");
        expect.extend(std::iter::repeat_n(b'v', 1_000_000));
        expect.extend_from_slice(b"\r\n");
    }
    assert!(
        read_exactly(&mut reader, expect.len()) == expect,
        "64 replies of 1 MB, in order"
    );
}

/// Two masters and two auxiliaries, with RESP: for commands that wait
/// on one master for a write through the other.
fn two_masters() -> Cluster {
    Cluster::start(Spec {
        masters: 2,
        auxiliaries: 2,
        resp: true,
        ..Spec::default()
    })
}

/// A RESP connection to master `m`, with a read timeout.
fn open_resp(cluster: &Cluster, m: usize) -> TcpStream {
    let port = cluster.masters[m].resp_port.expect("a RESP port");
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to RESP");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Sends `args` to master `m` 300 ms from now, from another thread.
fn send_later(cluster: &Cluster, m: usize, args: Vec<String>) -> std::thread::JoinHandle<()> {
    let mut s = open_resp(cluster, m);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        s.write_all(&request(&args)).unwrap();
        let mut reply = [0u8; 64];
        let _ = s.read(&mut reply).unwrap();
    })
}

/// What wakes a waiting client, as redis-server 7.0 answers it: a timeout
/// under a millisecond waits a millisecond (not for ever); a key that
/// turns into another type leaves a list or sorted set pop waiting (nil at
/// its timeout, not WRONGTYPE); XREADGROUP is let go when its group is
/// destroyed (NOGROUP) or its stream deleted (UNBLOCKED).
#[test]
fn a_waiting_client_is_woken_as_redis_wakes_it() {
    let cluster = two_masters();
    let open = |m: usize| open_resp(&cluster, m);
    let later = |m: usize, args: &[&str]| {
        send_later(&cluster, m, args.iter().map(|a| a.to_string()).collect())
    };
    let (q, z, s) = (unique("q"), unique("z"), unique("s"));
    let mut a = open(0);
    for command in [
        vec!["BLPOP", &q, "0.0009"],
        vec!["BZPOPMIN", &z, "0.0004"],
        vec!["BLMOVE", &q, &q, "LEFT", "LEFT", "1e-10"],
    ] {
        exchange(&mut a, &request(&command), b"*-1\r\n");
    }

    for (key, pop) in [(&q, "BLPOP"), (&z, "BZPOPMIN")] {
        let setter = later(1, &["SET", key, "now a string"]);
        exchange(&mut a, &request(&[pop, key, "1.5"]), b"*-1\r\n");
        setter.join().unwrap();
        exchange(
            &mut a,
            &request(&[pop, key, "1"]),
            b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        );
    }

    // BLMOVE's destination of another type is its answer once the source
    // has an element (which stays there), as in Redis.
    let (src, dst) = (unique("{mv}src"), unique("{mv}dst"));
    exchange(&mut a, &request(&["SET", &dst, "a string"]), b"+OK\r\n");
    let pusher = later(1, &["RPUSH", &src, "x"]);
    exchange(
        &mut a,
        &request(&["BLMOVE", &src, &dst, "LEFT", "LEFT", "0"]),
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    );
    pusher.join().unwrap();
    exchange(&mut a, &request(&["LLEN", &src]), b":1\r\n");

    exchange(
        &mut a,
        &request(&["XGROUP", "CREATE", &s, "g", "$", "MKSTREAM"]),
        b"+OK\r\n",
    );
    let read = [
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "BLOCK",
        "10000",
        "STREAMS",
        &s,
        ">",
    ];
    let destroyer = later(1, &["XGROUP", "DESTROY", &s, "g"]);
    exchange(
        &mut a,
        &request(&read),
        b"-NOGROUP the consumer group this client was blocked on no longer exists\r\n",
    );
    destroyer.join().unwrap();
    exchange(
        &mut a,
        &request(&["XGROUP", "CREATE", &s, "g", "$"]),
        b"+OK\r\n",
    );
    let deleter = later(1, &["DEL", &s]);
    exchange(
        &mut a,
        &request(&read),
        b"-UNBLOCKED the stream key no longer exists\r\n",
    );
    deleter.join().unwrap();
}

/// BLPOP and its family wait on a RESP connection until a key has
/// something, pushed through any master, or the timeout passes (nil, as
/// Redis answers it); what the client pipelines after one waits for it;
/// inside MULTI and over HTTP they answer at once; a client that leaves
/// while blocked is forgotten.
#[test]
fn blocking_pops_wait_for_a_push_through_another_master_or_their_timeout() {
    let cluster = two_masters();
    let open = |m: usize| open_resp(&cluster, m);
    let push_later = |m: usize, args: Vec<String>| send_later(&cluster, m, args);
    let (q, src, dst, z) = (unique("q"), unique("{b}src"), unique("{b}dst"), unique("z"));
    let mut a = open(0);

    // A push through the other master wakes it.
    let pusher = push_later(1, vec!["RPUSH".into(), q.clone(), "x".into()]);
    let want = format!("*2\r\n${}\r\n{q}\r\n$1\r\nx\r\n", q.len());
    exchange(&mut a, &request(&["BLPOP", &q, "10"]), want.as_bytes());
    pusher.join().unwrap();

    // BLMOVE moves what arrives; a request pipelined after it waits for it.
    let pusher = push_later(1, vec!["LPUSH".into(), src.clone(), "m".into()]);
    let mut both = request(&["BLMOVE", &src, &dst, "RIGHT", "LEFT", "10"]);
    both.extend_from_slice(&request(&["LRANGE", &dst, "0", "-1"]));
    exchange(&mut a, &both, b"$1\r\nm\r\n*1\r\n$1\r\nm\r\n");
    pusher.join().unwrap();

    // BZPOPMIN answers key, member and score.
    let pusher = push_later(1, vec!["ZADD".into(), z.clone(), "2.5".into(), "m".into()]);
    let want = format!("*3\r\n${}\r\n{z}\r\n$1\r\nm\r\n$3\r\n2.5\r\n", z.len());
    exchange(&mut a, &request(&["BZPOPMIN", &z, "10"]), want.as_bytes());
    pusher.join().unwrap();

    // Nothing comes: nil once the timeout has passed, not before.
    let started = Instant::now();
    exchange(&mut a, &request(&["BRPOP", &q, "0.3"]), b"*-1\r\n");
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A blocking command that answers at once (an error here) lets what
    // was pipelined after it run.
    let mut both = request(&["BLPOP", &q, "soon"]);
    both.extend_from_slice(&request(&["PING"]));
    exchange(
        &mut a,
        &both,
        b"-ERR timeout is not a float or out of range\r\n+PONG\r\n",
    );

    // Inside MULTI, at once, even with no timeout at all.
    exchange(&mut a, &request(&["MULTI"]), b"+OK\r\n");
    exchange(&mut a, &request(&["BLPOP", &q, "0"]), b"+QUEUED\r\n");
    exchange(&mut a, &request(&["EXEC"]), b"*1\r\n*-1\r\n");

    // Over HTTP, at once.
    let answer: serde_json::Value = cluster
        .http
        .post(cluster.url(0, "/"))
        .json(&serde_json::json!(["BLPOP", q, "0"]))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(answer, serde_json::json!({"result": null}));

    // A client that leaves while blocked for ever is let go.
    let connections = || {
        metric_value(
            &cluster.get_text(0, "/metrics"),
            "distcache_resp_connections",
        )
    };
    let blocked = |s: &mut TcpStream| {
        s.write_all(&request(&["INFO", "clients"])).unwrap();
        let header = read_line(s);
        let len: usize = header[1..].trim_end().parse().unwrap();
        let body = String::from_utf8(read_exactly(s, len + 2)).unwrap();
        body.lines()
            .find_map(|l| l.strip_prefix("blocked_clients:"))
            .map(str::to_owned)
    };
    assert_eq!(blocked(&mut a).as_deref(), Some("0"));
    let mut gone = open(0);
    gone.write_all(&request(&["BLPOP", &q, "0"])).unwrap();
    wait_until(
        Duration::from_secs(10),
        "two connections, one blocked",
        || connections() == Some(2.0) && blocked(&mut a).as_deref() == Some("1"),
    );
    drop(gone);
    wait_until(Duration::from_secs(10), "the blocked client let go", || {
        connections() == Some(1.0) && blocked(&mut a).as_deref() == Some("0")
    });
    exchange(&mut a, &request(&["PING"]), b"+PONG\r\n");
}

/// XREAD BLOCK and XREADGROUP BLOCK wait for an XADD through another
/// master; `$` means what is added after the command came, not what is
/// there; nothing added: nil once the timeout has passed.
#[test]
fn stream_reads_wait_for_an_entry_added_through_another_master() {
    let cluster = two_masters();
    let add_later = |m: usize, args: Vec<String>| send_later(&cluster, m, args);
    let key = unique("events");
    let entry = |id: &str, v: &str| {
        format!(
            "*2\r\n${}\r\n{id}\r\n*2\r\n$1\r\nf\r\n${}\r\n{v}\r\n",
            id.len(),
            v.len()
        )
    };
    let mut a = open_resp(&cluster, 0);
    exchange(
        &mut a,
        &request(&["XADD", &key, "1-1", "f", "old"]),
        b"$3\r\n1-1\r\n",
    );

    // `$`: the entry already there is not what it waits for.
    let adder = add_later(
        1,
        vec![
            "XADD".into(),
            key.clone(),
            "2-1".into(),
            "f".into(),
            "new".into(),
        ],
    );
    let want = format!(
        "*1\r\n*2\r\n${}\r\n{key}\r\n*1\r\n{}",
        key.len(),
        entry("2-1", "new")
    );
    exchange(
        &mut a,
        &request(&["XREAD", "BLOCK", "10000", "STREAMS", &key, "$"]),
        want.as_bytes(),
    );
    adder.join().unwrap();

    // A consumer group's reader waits for the next entry too, and holds it
    // as pending once it has it.
    exchange(
        &mut a,
        &request(&["XGROUP", "CREATE", &key, "g", "$"]),
        b"+OK\r\n",
    );
    let adder = add_later(
        1,
        vec![
            "XADD".into(),
            key.clone(),
            "3-1".into(),
            "f".into(),
            "job".into(),
        ],
    );
    let want = format!(
        "*1\r\n*2\r\n${}\r\n{key}\r\n*1\r\n{}",
        key.len(),
        entry("3-1", "job")
    );
    exchange(
        &mut a,
        &request(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "w1",
            "BLOCK",
            "0",
            "STREAMS",
            &key,
            ">",
        ]),
        want.as_bytes(),
    );
    adder.join().unwrap();
    exchange(&mut a, &request(&["XACK", &key, "g", "3-1"]), b":1\r\n");

    // Nothing comes: nil once the timeout has passed, not before.
    let started = Instant::now();
    exchange(
        &mut a,
        &request(&["XREAD", "BLOCK", "300", "STREAMS", &key, "$"]),
        b"*-1\r\n",
    );
    assert!(started.elapsed() >= Duration::from_millis(300));

    // Inside MULTI it answers at once.
    exchange(&mut a, &request(&["MULTI"]), b"+OK\r\n");
    exchange(
        &mut a,
        &request(&["XREAD", "BLOCK", "0", "STREAMS", &key, "$"]),
        b"+QUEUED\r\n",
    );
    exchange(&mut a, &request(&["EXEC"]), b"*1\r\n*-1\r\n");
}

/// CLUSTER SLOTS names the master at the address the client reached it
/// by, and at `RESP_ANNOUNCE_ADDR` when that is set (a load balancer's, so
/// that cluster clients outside a private network come back through it).
#[test]
fn cluster_slots_name_the_connected_address_or_the_announced_one() {
    let slots_owner = |cluster: &Cluster| {
        let mut s = connect(cluster);
        s.write_all(&request(&["CLUSTER", "SLOTS"])).unwrap();
        // *1 *3 :0 :16383 *4 $<n> host :port $40 id *0
        let mut reply = Vec::new();
        let mut buf = [0u8; 512];
        while !reply.ends_with(b"*0\r\n") {
            let n = s.read(&mut buf).expect("CLUSTER SLOTS answers");
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&reply));
            reply.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&reply).into_owned();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(&lines[..5], ["*1", "*3", ":0", ":16383", "*4"], "{text}");
        (lines[6].to_owned(), lines[7].to_owned())
    };
    let plain = resp_cluster(&[]);
    let port = plain.masters[0].resp_port.expect("a RESP port");
    assert_eq!(
        slots_owner(&plain),
        ("127.0.0.1".to_owned(), format!(":{port}"))
    );
    drop(plain);
    let announced = resp_cluster(&[("RESP_ANNOUNCE_ADDR", "cache.example.com:7777")]);
    assert_eq!(
        slots_owner(&announced),
        ("cache.example.com".to_owned(), ":7777".to_owned())
    );
}

/// A CLUSTER call with an unknown subcommand or a wrong arity is refused
/// while a transaction is queued, which then aborts, as Redis Cluster
/// does; a good one is queued and answered by EXEC.
#[test]
fn a_bad_cluster_call_in_multi_aborts_the_transaction() {
    let cluster = resp_cluster(&[]);
    let mut s = connect(&cluster);
    let key = format!("{{{}}}x", unique("cm"));
    exchange(&mut s, &request(&["MULTI"]), b"+OK\r\n");
    exchange(&mut s, &request(&["SET", &key, "1"]), b"+QUEUED\r\n");
    exchange(
        &mut s,
        &request(&["CLUSTER", "FOO"]),
        b"-ERR unknown subcommand 'FOO'. Try CLUSTER HELP.\r\n",
    );
    exchange(
        &mut s,
        &request(&["CLUSTER", "KEYSLOT"]),
        b"-ERR wrong number of arguments for 'cluster|keyslot' command\r\n",
    );
    exchange(
        &mut s,
        &request(&["EXEC"]),
        b"-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
    exchange(&mut s, &request(&["GET", &key]), b"$-1\r\n");
    exchange(&mut s, &request(&["MULTI"]), b"+OK\r\n");
    exchange(
        &mut s,
        &request(&["CLUSTER", "KEYSLOT", "foo"]),
        b"+QUEUED\r\n",
    );
    exchange(&mut s, &request(&["EXEC"]), b"*1\r\n:12182\r\n");
}

/// SLOWLOG keeps what took at least `SLOWLOG_SLOWER_THAN_US` (0 here:
/// everything), newest first, as Redis shows it: id, time, microseconds,
/// the arguments (cut past 32), the client's address and name. Only an
/// admin token may read or reset it; AUTH's arguments are never kept.
#[test]
fn slowlog_keeps_slow_commands_for_the_admin() {
    let tokens = format!("{READ}:read,{WRITE}:write,{ADMIN}:admin");
    let cluster = resp_cluster(&[
        ("AUTH_TOKENS", tokens.as_str()),
        ("CLUSTER_SECRET", "resp-secret"),
        ("SLOWLOG_SLOWER_THAN_US", "0"),
        ("SLOWLOG_MAX_LEN", "5"),
    ]);
    let key = unique("slow");
    let mut s = connect(&cluster);
    exchange(&mut s, &request(&["AUTH", ADMIN]), b"+OK\r\n");
    exchange(&mut s, &request(&["CLIENT", "SETNAME", "ops"]), b"+OK\r\n");
    exchange(&mut s, &request(&["SLOWLOG", "RESET"]), b"+OK\r\n");
    exchange(&mut s, &request(&["SET", &key, "v"]), b"+OK\r\n");
    exchange(&mut s, &request(&["GET", &key]), b"$1\r\nv\r\n");
    // Forty-two arguments: 31 kept, then how many more.
    let list = format!("{key}:l");
    let mut rpush = vec!["RPUSH", list.as_str()];
    let elements: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    rpush.extend(elements.iter().map(String::as_str));
    exchange(&mut s, &request(&rpush), b":40\r\n");
    let mut got = Vec::new();
    s.write_all(&request(&["SLOWLOG", "GET", "3"])).unwrap();
    let local = s.local_addr().unwrap().to_string();
    let tail = format!("${}\r\n{local}\r\n$3\r\nops\r\n", local.len());
    let mut buf = [0u8; 4096];
    // Three entries, each ending with the client's address and name.
    while String::from_utf8_lossy(&got).matches(&tail).count() < 3 {
        let n = s.read(&mut buf).expect("SLOWLOG GET answers");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.starts_with("*3\r\n*6\r\n:"), "{text}");
    let rpush_at = text.find("$5\r\nRPUSH\r\n").expect("RPUSH logged");
    let get_at = text
        .find(&format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()))
        .expect("GET logged");
    let set_at = text.find("$3\r\nSET\r\n").expect("SET logged");
    assert!(rpush_at < get_at && get_at < set_at, "newest first: {text}");
    assert!(text.contains("*32\r\n$5\r\nRPUSH\r\n"), "{text}");
    assert!(
        text.contains("$23\r\n... (11 more arguments)\r\n"),
        "{text}"
    );
    assert!(!text.contains(ADMIN), "AUTH's token was logged: {text}");
    // Five entries at most; RESET empties it (then logs itself).
    exchange(&mut s, &request(&["SLOWLOG", "LEN"]), b":5\r\n");
    exchange(&mut s, &request(&["SLOWLOG", "RESET"]), b"+OK\r\n");
    exchange(&mut s, &request(&["SLOWLOG", "LEN"]), b":1\r\n");
    exchange(
        &mut s,
        &request(&["SLOWLOG", "GET", "-2"]),
        b"-ERR count should be greater than or equal to -1\r\n",
    );
    exchange(
        &mut s,
        &request(&["CONFIG", "GET", "slowlog-log-slower-than"]),
        b"*2\r\n$23\r\nslowlog-log-slower-than\r\n$1\r\n0\r\n",
    );
    // Pipelined commands are logged by their name and their count of
    // arguments (docs: keeping all their arguments costs every batch).
    let piped: Vec<u8> = (0..50)
        .flat_map(|i| request(&["SET", &format!("{key}:p{i}"), "v"]))
        .collect();
    s.write_all(&piped).unwrap();
    let oks = read_exactly(&mut s, 50 * b"+OK\r\n".len());
    assert!(oks.iter().all(|&b| b"+OK\r\n".contains(&b)));
    s.write_all(&request(&["SLOWLOG", "GET", "5"])).unwrap();
    let mut piped_log = Vec::new();
    while String::from_utf8_lossy(&piped_log).matches(&tail).count() < 5 {
        let n = s.read(&mut buf).expect("SLOWLOG GET answers");
        assert!(n > 0);
        piped_log.extend_from_slice(&buf[..n]);
    }
    let piped_log = String::from_utf8_lossy(&piped_log).into_owned();
    assert!(
        piped_log.contains("*2\r\n$3\r\nset\r\n$22\r\n... (2 more arguments)\r\n"),
        "{piped_log}"
    );
    // Nothing is logged before AUTH: the arguments of a client with no
    // token never reach the log.
    let mut stranger = connect(&cluster);
    exchange(
        &mut stranger,
        &request(&["GET", "stranger-secret"]),
        b"-NOAUTH Authentication required.\r\n",
    );
    s.write_all(&request(&["SLOWLOG", "GET", "-1"])).unwrap();
    let mut all = Vec::new();
    while !all.ends_with(b"$3\r\nops\r\n") {
        let n = s.read(&mut buf).expect("SLOWLOG GET answers");
        assert!(n > 0);
        all.extend_from_slice(&buf[..n]);
    }
    assert!(!String::from_utf8_lossy(&all).contains("stranger-secret"));
    let mut reader = connect(&cluster);
    exchange(&mut reader, &request(&["AUTH", READ]), b"+OK\r\n");
    exchange(
        &mut reader,
        &request(&["SLOWLOG", "GET"]),
        b"-NOPERM this token has the read role; 'slowlog' needs the admin role\r\n",
    );
    exchange(
        &mut reader,
        &request(&["CLIENT", "KILL", "ID", "1"]),
        b"-NOPERM this token has the read role; 'client|kill' needs the admin role\r\n",
    );
}

/// Reads until the master closes the connection; what came before.
fn closed_after(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("still open after {:?}: {e}", String::from_utf8_lossy(&got)),
        }
    }
}

fn client_id(s: &mut TcpStream) -> String {
    s.write_all(&request(&["CLIENT", "ID"])).unwrap();
    let line = reply_line(s);
    String::from_utf8_lossy(&line)
        .trim_start_matches(':')
        .trim_end()
        .to_owned()
}

/// CLIENT KILL closes this master's matching connections, as Redis's:
/// by ID, by address (the old form, OK or an error), by type, never the
/// caller unless SKIPME no, and then after its reply.
#[test]
fn client_kill_closes_the_connections_it_matches() {
    let cluster = resp_cluster(&[]);
    let mut admin = connect(&cluster);
    let mut victim = connect(&cluster);
    let id = client_id(&mut victim);
    exchange(
        &mut admin,
        &request(&["CLIENT", "KILL", "ID", &id]),
        b":1\r\n",
    );
    assert!(closed_after(&mut victim).is_empty());
    let mut by_addr = connect(&cluster);
    exchange(&mut by_addr, &request(&["PING"]), b"+PONG\r\n");
    let addr = by_addr.local_addr().unwrap().to_string();
    exchange(&mut admin, &request(&["CLIENT", "KILL", &addr]), b"+OK\r\n");
    assert!(closed_after(&mut by_addr).is_empty());
    exchange(
        &mut admin,
        &request(&["CLIENT", "KILL", &addr]),
        b"-ERR No such client\r\n",
    );
    for (args, answer) in [
        (
            &["CLIENT", "KILL", "ID", "0"][..],
            &b"-ERR client-id should be greater than 0\r\n"[..],
        ),
        (
            &["CLIENT", "KILL", "TYPE", "foo"],
            b"-ERR Unknown client type 'foo'\r\n",
        ),
        (
            &["CLIENT", "KILL", "USER", "nobody"],
            b"-ERR No such user 'nobody'\r\n",
        ),
        (
            &["CLIENT", "KILL", "SKIPME", "maybe"],
            b"-ERR syntax error\r\n",
        ),
        (&["CLIENT", "KILL", "ID", "99999999"], b":0\r\n"),
        (&["CLIENT", "KILL", "TYPE", "replica"], b":0\r\n"),
    ] {
        exchange(&mut admin, &request(args), answer);
    }
    let mut others: Vec<TcpStream> = (0..2).map(|_| connect(&cluster)).collect();
    for other in &mut others {
        exchange(other, &request(&["PING"]), b"+PONG\r\n");
    }
    exchange(
        &mut admin,
        &request(&["CLIENT", "KILL", "TYPE", "normal"]),
        b":2\r\n",
    );
    for mut other in others {
        assert!(closed_after(&mut other).is_empty());
    }
    exchange(&mut admin, &request(&["PING"]), b"+PONG\r\n");
    // A client that does not read its replies is not waited for: killed,
    // it leaves at once, not after RESP_OUTPUT_TIMEOUT_MS.
    let big = format!("{}:big", unique("kill"));
    exchange(
        &mut admin,
        &request(&["SET", &big, &"x".repeat(512 << 10)]),
        b"+OK\r\n",
    );
    let mut stuck = connect(&cluster);
    let stuck_id = client_id(&mut stuck);
    let gets: Vec<u8> = (0..128).flat_map(|_| request(&["GET", &big])).collect();
    stuck.write_all(&gets).unwrap();
    let listed = |admin: &mut TcpStream| {
        admin.write_all(&request(&["CLIENT", "LIST"])).unwrap();
        let header = reply_line(admin);
        let len: usize = String::from_utf8_lossy(&header[1..])
            .trim()
            .parse()
            .unwrap();
        let body = read_exactly(admin, len + 2);
        String::from_utf8_lossy(&body).contains(&format!("id={stuck_id} "))
    };
    wait_until(
        Duration::from_secs(10),
        "the stuck client is listed",
        || listed(&mut admin),
    );
    exchange(
        &mut admin,
        &request(&["CLIENT", "KILL", "ID", &stuck_id]),
        b":1\r\n",
    );
    let killed_at = Instant::now();
    wait_until(
        Duration::from_secs(5),
        "the killed client leaves CLIENT LIST",
        || !listed(&mut admin),
    );
    assert!(killed_at.elapsed() < Duration::from_secs(5));
    drop(stuck);
    // Killing itself, it gets its answer, and what it sent after does not
    // run (Redis closes after the reply).
    let own = client_id(&mut admin);
    let after = format!("{}:after", unique("kill"));
    let mut both = request(&["CLIENT", "KILL", "ID", &own, "SKIPME", "no"]);
    both.extend(request(&["SET", &after, "1"]));
    admin.write_all(&both).unwrap();
    assert_eq!(closed_after(&mut admin), b":1\r\n");
    let mut check = connect(&cluster);
    exchange(&mut check, &request(&["EXISTS", &after]), b":0\r\n");
}
