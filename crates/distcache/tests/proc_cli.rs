//! The binary as a person uses it: `local`, the client verbs, `--help`, and
//! configuration errors.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{BIN, Cluster, Proc, Spec, free_port, wait_until};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("DISTCACHE_URL")
        .stdin(Stdio::null())
        .output()
        .expect("run distcache");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn client_verbs_print_readably_and_exit_meaningfully() {
    let c = Cluster::start(Spec::default());
    let url = format!("http://{}", c.masters[0].addr);
    let (code, out, _) = run(&["set", "user1", "John Doe", "--url", &url]);
    assert_eq!((code, out.trim()), (0, "OK"));
    let (code, out, _) = run(&["set", "n", "42", "--ttl", "100", "--url", &url]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = run(&["set", "s", "42", "--string", "--url", &url]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = run(&["set", "obj/with slash", r#"{"a":[1,2]}"#, "--url", &url]);
    assert_eq!(code, 0, "{out}");

    assert_eq!(c.value(0, "user1"), Some(json!("John Doe")));
    assert_eq!(c.value(0, "n"), Some(json!(42)));
    assert_eq!(c.value(0, "s"), Some(json!("42")));
    assert_eq!(c.value(0, "obj/with slash"), Some(json!({"a": [1, 2]})));

    let (code, out, err) = run(&["get", "n", "--url", &url]);
    assert_eq!((code, out.trim()), (0, "42"));
    assert!(err.contains("expires in"), "{err}");
    let (code, out, _) = run(&["get", "obj/with slash", "--url", &url]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"a": [1, 2]})
    );
    let (code, _, err) = run(&["get", "missing", "--url", &url]);
    assert_eq!(code, 1, "{err}");

    let (code, out, _) = run(&["del", "user1", "--url", &url]);
    assert_eq!((code, out.trim()), (0, "deleted"));
    let (code, _, _) = run(&["del", "user1", "--url", &url]);
    assert_eq!(code, 1);
    assert_eq!(c.value(0, "user1"), None);

    let (code, out, _) = run(&["nodes", "--url", &url]);
    assert_eq!(code, 0);
    for id in ["aux-1", "aux-2", "aux-3"] {
        assert!(out.contains(id), "{out}");
    }
    assert!(out.contains("3 of 3 auxiliaries up"), "{out}");
    assert!(
        out.contains("as of each node's last health check"),
        "nodes says its ITEMS may lag a write: {out}"
    );

    // Errors: the server's message, exit code 2.
    let (code, _, err) = run(&["set", "", "x", "--url", &url]);
    assert_eq!(code, 2);
    assert!(err.contains("key must not be empty"), "{err}");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (code, _, err) = run(&["get", "k", "--url", &dead]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot reach"), "{err}");
}

#[test]
fn help_lists_every_setting_with_its_default() {
    // clap wraps long lines; compare with the white space folded.
    let fold = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let (code, master, _) = run(&["master", "--help"]);
    let master = fold(master);
    assert_eq!(code, 0);
    for name in [
        "PORT",
        "NODE_ID",
        "MASTER_PEERS",
        "ADVERTISE_ADDR",
        "RAFT_DIR",
        "AUX_SERVERS",
        "REPLICAS",
        "WRITE_QUORUM",
        "VIRTUAL_NODES",
        "HEALTH_CHECK_INTERVAL",
        "REQUEST_TIMEOUT_MS",
        "BACKUP_DIR",
        "BACKUP_INTERVAL",
        "BIND_ADDR",
        "MAX_VALUE_BYTES",
        "MAX_BODY_BYTES",
        "MAX_BATCH",
    ] {
        assert!(
            master.contains(&format!("[env: {name}")),
            "master --help lacks {name}:\n{master}"
        );
    }
    assert!(master.contains("[default: 8000]"), "{master}");
    let (code, aux, _) = run(&["aux", "--help"]);
    let aux = fold(aux);
    assert_eq!(code, 0);
    for name in [
        "PORT",
        "DATA_PORT",
        "NODE_ID",
        "ADVERTISE_ADDR",
        "MASTER_ADDRESS",
        "CACHE_SIZE",
        "CACHE_MAX_BYTES",
        "CACHE_SHARDS",
        "TOMBSTONE_GRACE",
        "BACKUP_DIR",
        "BACKUP_INTERVAL",
        "BIND_ADDR",
    ] {
        assert!(
            aux.contains(&format!("[env: {name}")),
            "aux --help lacks {name}:\n{aux}"
        );
    }
    assert!(
        aux.contains("[default: 3001]")
            && aux.contains("[default: nginx:80]")
            && aux.contains("[default: 1000]"),
        "{aux}"
    );
}

#[test]
fn bad_settings_stop_the_process_with_a_message_naming_them() {
    // (role, environment, the setting the error must name)
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static str,
    );
    let cases: &[Case] = &[
        ("aux", &[("CACHE_SIZE", "0")], "CACHE_SIZE"),
        ("aux", &[("CACHE_SIZE", "lots")], "CACHE_SIZE"),
        ("aux", &[("MASTER_ADDRESS", "nohost")], "MASTER_ADDRESS"),
        ("aux", &[("PORT", "70000")], "PORT"),
        ("master", &[("REPLICAS", "0")], "REPLICAS"),
        ("master", &[("WRITE_QUORUM", "most")], "WRITE_QUORUM"),
        (
            "master",
            &[("HEALTH_CHECK_INTERVAL", "-1")],
            "HEALTH_CHECK_INTERVAL",
        ),
        (
            "master",
            &[("REPLICATION_FACTOR", "ten")],
            "REPLICATION_FACTOR",
        ),
        ("master", &[("VIRTUAL_NODES", "0")], "VIRTUAL_NODES"),
        ("master", &[("MASTER_PEERS", "a:b")], "MASTER_PEERS"),
        (
            "master",
            &[("MASTER_PEERS", "m2:8000,http://m2:8000")],
            "MASTER_PEERS",
        ),
        ("master", &[("ADVERTISE_ADDR", "m1")], "ADVERTISE_ADDR"),
        ("master", &[("RESP_PORT", "70000")], "RESP_PORT"),
        ("master", &[("RESP_PORT", "8000")], "RESP_PORT"),
        (
            "master",
            &[("RESP_OUTPUT_TIMEOUT_MS", "0")],
            "RESP_OUTPUT_TIMEOUT_MS",
        ),
        (
            "master",
            &[("RESP_PUBSUB_BUFFER_BYTES", "1023")],
            "RESP_PUBSUB_BUFFER_BYTES",
        ),
    ];
    for (role, env, setting) in cases {
        let mut cmd = Command::new(BIN);
        cmd.arg(role).env_clear().stdin(Stdio::null());
        for (k, v) in *env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{role} {env:?}: {err}");
        let named = err.contains(setting)
            || err.contains(&format!("--{}", setting.to_lowercase().replace('_', "-")));
        assert!(named, "{role} {env:?} should name {setting}: {err}");
    }
    // Flags win over the environment.
    let out = Command::new(BIN)
        .args(["aux", "--cache-size", "0"])
        .env_clear()
        .env("CACHE_SIZE", "5")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("CACHE_SIZE"));
    assert_eq!(out.status.code(), Some(2));
}

/// Masters `distcache local` starts by default.
const LOCAL_MASTERS: u16 = 3;

/// Starts `distcache local` with `args` on three consecutive free ports, in
/// `dir`, and waits until all three masters see its 3 auxiliaries; returns
/// the first master's port and the process.
fn start_local(dir: &std::path::Path, args: &[&str]) -> (u16, Proc) {
    // `local` takes three consecutive ports; another test may take one of
    // them between our check and its bind, so a start that fails is tried
    // again.
    let (port, local) = (0..5)
        .find_map(|_| {
            let port = free_port();
            let others_free = (1..LOCAL_MASTERS)
                .all(|i| std::net::TcpListener::bind(("127.0.0.1", port + i)).is_ok());
            if !others_free {
                return None;
            }
            let port_text = port.to_string();
            let backup = dir.display().to_string();
            let mut all = vec!["local", "--port", &port_text, "--backup-dir", &backup];
            all.extend_from_slice(args);
            let mut local = Proc::spawn(dir, "local", &all, &[]);
            // A bind failure ends the process within moments.
            std::thread::sleep(Duration::from_millis(300));
            (!local.exited()).then_some((port, local))
        })
        .expect("local started on three free ports");
    let http = reqwest::blocking::Client::new();
    for p in port..port + LOCAL_MASTERS {
        wait_until(
            Duration::from_secs(30),
            "local masters see 3 auxiliaries",
            || {
                http.get(format!("http://127.0.0.1:{p}/health"))
                    .send()
                    .and_then(|r| r.json::<Value>())
                    .is_ok_and(|h| h["auxiliaries_up"] == json!(3))
            },
        );
    }
    (port, local)
}

#[test]
fn local_starts_a_whole_cluster_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let (port, mut local) = start_local(dir.path(), &[]);
    let http = reqwest::blocking::Client::new();
    let health = |p: u16| -> Value {
        http.get(format!("http://127.0.0.1:{p}/health"))
            .send()
            .and_then(|r| r.json())
            .unwrap_or(Value::Null)
    };
    let masters: Vec<u16> = (port..port + LOCAL_MASTERS).collect();
    for &p in &masters[1..] {
        assert_eq!(health(port)["ring_epoch"], health(p)["ring_epoch"]);
    }
    let resp = http
        .post(format!("http://127.0.0.1:{port}/data"))
        .body(r#"{"key":"user1","value":"John Doe","ttl":3600}"#)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    for &p in &masters[1..] {
        let body: Value = http
            .get(format!("http://127.0.0.1:{p}/data/user1"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(body["value"], json!("John Doe"), "through master :{p}");
    }
    let printed = local.log_text();
    let listed = printed
        .lines()
        .filter(|l| l.trim().starts_with("master "))
        .count();
    assert_eq!(listed, usize::from(LOCAL_MASTERS), "{printed}");
    for p in &masters {
        assert!(
            printed.contains(&format!("http://127.0.0.1:{p}")),
            "{printed}"
        );
    }

    local.signal(Signal::SIGINT);
    let status = local.wait_exit(Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

/// Ctrl-C and a new `local` on the same directory: every auxiliary leaves a
/// snapshot of its final state when it stops and restores it when it
/// starts, so a key deleted or overwritten after an earlier snapshot (here
/// `POST /backup`'s) stays deleted or overwritten, and the others are back.
#[test]
fn local_keeps_deletes_and_overwrites_across_ctrl_c_and_a_restart() {
    common::init_tls();
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::blocking::Client::new();
    let set = |port: u16, key: &str, value: &str| {
        let body = json!({"key": key, "value": value});
        let resp = http
            .post(format!("http://127.0.0.1:{port}/data"))
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "set {key}");
    };
    let get = |port: u16, key: &str| -> Option<Value> {
        let resp = http
            .get(format!("http://127.0.0.1:{port}/data/{key}"))
            .send()
            .unwrap();
        match resp.status().as_u16() {
            200 => Some(resp.json::<Value>().unwrap()["value"].clone()),
            404 => None,
            s => panic!("GET {key}: {s}"),
        }
    };
    let (port, mut local) = start_local(dir.path(), &[]);
    set(port, "ghost", "I was deleted");
    set(port, "moved", "old");
    set(port, "kept", "unchanged");
    let resp = http
        .post(format!("http://127.0.0.1:{port}/backup"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "POST /backup");
    let resp = http
        .delete(format!("http://127.0.0.1:{port}/data/ghost"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "delete ghost");
    set(port, "moved", "new");
    local.signal(Signal::SIGINT);
    let status = local.wait_exit(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");

    let (port, mut local) = start_local(dir.path(), &[]);
    // The masters' map is rebuilt as the auxiliaries register: wait until
    // the key that never changed is served again.
    wait_until(Duration::from_secs(30), "kept is back", || {
        get(port, "kept") == Some(json!("unchanged"))
    });
    assert_eq!(get(port, "ghost"), None, "a deleted key stays deleted");
    assert_eq!(get(port, "moved"), Some(json!("new")), "an overwrite stays");
    local.signal(Signal::SIGINT);
    let status = local.wait_exit(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

/// With tokens and a secret, `local` closes the API to callers without a
/// token and the auxiliaries' internal routes to callers without the
/// secret, and its own nodes still work together.
#[test]
fn local_with_tokens_and_a_secret_closes_the_api_and_the_internal_routes() {
    local_is_closed(Some("local-test-secret"));
}

/// Tokens alone: `local` makes a secret of its own for the run (nodes
/// refuse tokens without one), so the internal routes are closed too.
#[test]
fn local_with_tokens_alone_makes_its_own_secret() {
    local_is_closed(None);
}

fn local_is_closed(secret: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--auth-tokens", "r-token:read,w-token:write"];
    if let Some(secret) = secret {
        args.extend(["--cluster-secret", secret]);
    }
    let (port, mut local) = start_local(dir.path(), &args);
    // `start_local` saw the auxiliaries register, with the secret.
    let http = reqwest::blocking::Client::new();
    let set = |token: Option<&str>| {
        let mut req = http
            .post(format!("http://127.0.0.1:{port}/data"))
            .body(r#"{"key":"user1","value":"John Doe"}"#);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().unwrap().status().as_u16()
    };
    assert_eq!(set(None), 401);
    assert_eq!(set(Some("r-token")), 403);
    assert_eq!(set(Some("w-token")), 200);
    // Through the other master, which forwards nothing but reads the
    // auxiliaries over the secret-guarded data port.
    let read = http
        .get(format!("http://127.0.0.1:{}/data/user1", port + 1))
        .bearer_auth("r-token")
        .send()
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.json::<Value>().unwrap()["value"], json!("John Doe"));

    let printed = local.log_text();
    assert!(
        printed.contains("Authorization: Bearer <token>"),
        "{printed}"
    );
    let aux = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("auxiliary  http://"))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("an auxiliary's address printed")
        .to_owned();
    let handoff = |secret: Option<&str>| {
        let mut req = http
            .post(format!("http://{aux}/internal/handoff"))
            .json(&json!({}));
        if let Some(secret) = secret {
            req = req.header("x-distcache-secret", secret);
        }
        req.send().unwrap().status().as_u16()
    };
    assert_eq!(handoff(None), 401);
    assert_eq!(handoff(Some("a-wrong-secret")), 401);
    if let Some(secret) = secret {
        // With the secret the request gets as far as its (empty) body.
        assert_eq!(handoff(Some(secret)), 400);
    }

    local.signal(Signal::SIGINT);
    let status = local.wait_exit(Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

/// Runs `distcache ARGS` with `stdin` as its standard input.
fn run_with_stdin(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("DISTCACHE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run distcache");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn set_takes_its_value_from_stdin_or_a_file_so_a_2_mb_value_gets_the_documented_413() {
    let c = Cluster::start(Spec {
        auxiliaries: 1,
        replicas: 1,
        ..Spec::default()
    });
    let url = format!("http://{}", c.masters[0].addr);
    let (code, out, err) = run_with_stdin(
        &["set", "from-stdin", "-", "--url", &url],
        br#"{"a":[1,2]}"#,
    );
    assert_eq!((code, out.trim()), (0, "OK"), "{err}");
    assert_eq!(c.value(0, "from-stdin"), Some(json!({"a": [1, 2]})));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("value.txt");
    std::fs::write(&file, "two words\n").unwrap();
    let file_arg = file.display().to_string();
    let (code, _, err) = run(&["set", "from-file", "--file", &file_arg, "--url", &url]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        c.value(0, "from-file"),
        Some(json!("two words\n")),
        "taken as is"
    );

    // Too large for a command line ("Argument list too long"), not for
    // --file: the server's 413 comes back.
    let big = dir.path().join("big.txt");
    std::fs::write(&big, "x".repeat(2_000_000)).unwrap();
    let big_arg = big.display().to_string();
    let (code, _, err) = run(&["set", "big", "--file", &big_arg, "--url", &url]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("413"), "the documented 413: {err}");
    let (code, _, err) = run_with_stdin(&["set", "big", "-", "--url", &url], &[b'y'; 2_000_000]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("413"), "the documented 413: {err}");
    assert_eq!(c.value(0, "big"), None);

    // No value at all is a usage error.
    let (code, _, err) = run(&["set", "nothing", "--url", &url]);
    assert_eq!(code, 2, "{err}");
    let missing = dir.path().join("missing").display().to_string();
    let (code, _, err) = run(&["set", "k", "--file", &missing, "--url", &url]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read --file"), "{err}");
}

#[test]
fn logs_written_to_a_file_are_plain_text_without_colour_codes() {
    // The harness sends every process's stdout and stderr to a file.
    let c = Cluster::start(Spec {
        auxiliaries: 1,
        replicas: 1,
        ..Spec::default()
    });
    let logs = [c.masters[0].proc.log_text(), c.auxes[0].proc.log_text()];
    for log in &logs {
        assert!(log.contains(" INFO "), "something was logged: {log}");
        assert!(
            !log.contains("\x1b["),
            "no ANSI escape codes in a log file: {log}"
        );
    }
}

#[test]
fn a_busy_port_is_one_line_naming_the_flag_or_variable_that_chose_it() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().display().to_string();
    // (arguments, environment, how the port must be named)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![
                "local",
                "--port",
                &port,
                "--masters",
                "1",
                "--backup-dir",
                &backup,
            ],
            vec![],
            "(--port)",
        ),
        (
            vec!["master", "--port", &port, "--bind-addr", "127.0.0.1"],
            vec![("BACKUP_DIR", &backup)],
            "(--port)",
        ),
        (
            vec!["master", "--bind-addr", "127.0.0.1"],
            vec![("PORT", &port), ("BACKUP_DIR", &backup)],
            "(PORT)",
        ),
        (
            vec![
                "aux",
                "--bind-addr",
                "127.0.0.1",
                "--port",
                "0",
                "--data-port",
                &port,
            ],
            vec![("BACKUP_DIR", &backup)],
            "(--data-port)",
        ),
    ];
    for (args, env, named) in cases {
        let mut cmd = Command::new(BIN);
        cmd.args(&args).env_clear().stdin(Stdio::null());
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: exactly one line:\n{err}");
        let line = lines[0];
        assert!(
            line.starts_with("distcache: cannot listen on 127.0.0.1:"),
            "{line}"
        );
        assert!(line.contains(named), "{args:?} names {named}: {line}");
        assert_eq!(
            line.matches("already in use").count(),
            1,
            "the cause once: {line}"
        );
        if args[0] == "local" {
            assert!(
                line.contains("choose free ports with --port"),
                "local hints at --port: {line}"
            );
        }
    }
}

#[test]
fn local_with_resp_port_opens_the_redis_protocol_on_each_master_and_prints_it() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    // Three consecutive free ports for RESP too (a race with another test
    // fails the start, and start_local tries again with new HTTP ports).
    let resp = (0..20)
        .map(|_| free_port())
        .find(|&p| {
            (1..LOCAL_MASTERS).all(|i| std::net::TcpListener::bind(("127.0.0.1", p + i)).is_ok())
        })
        .expect("three free RESP ports");
    let resp_text = resp.to_string();
    let (_, mut local) = start_local(dir.path(), &["--resp-port", &resp_text]);
    for p in resp..resp + LOCAL_MASTERS {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", p)).expect("RESP port open");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"PING\r\n").unwrap();
        let mut pong = [0; 7];
        s.read_exact(&mut pong).unwrap();
        assert_eq!(&pong, b"+PONG\r\n", "master on RESP port {p}");
        assert!(
            local.log_text().contains(&format!("redis://127.0.0.1:{p}")),
            "local prints RESP port {p}: {}",
            local.log_text()
        );
    }
    assert!(local.log_text().contains(&format!("redis-cli -p {resp} ")));
    local.signal(Signal::SIGINT);
    assert!(local.wait_exit(Duration::from_secs(20)).is_some());
}
