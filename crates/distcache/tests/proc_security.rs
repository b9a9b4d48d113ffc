//! Security against real processes: every role against every route, the
//! cluster secret on every internal path (registration, peer forwarding,
//! `/internal/*`, the data protocol), TLS with a certificate made here, and
//! every request limit with its status and JSON error.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Cluster, Proc, Spec, assert_error, free_port, wait_until, wire_exchange, wire_frame};
use serde_json::{Value, json};

const READ: &str = "read-token-1";
const WRITE: &str = "write-token-2";
const ADMIN: &str = "admin-token-3";
const SECRET: &str = "cluster-secret-for-tests";

fn tokens_env() -> String {
    format!("{READ}:read,{WRITE}:write,{ADMIN}:admin")
}

fn secure_cluster(auxiliaries: usize, extra_master_env: &[(&str, &str)]) -> Cluster {
    let mut master_env = vec![
        ("AUTH_TOKENS".to_string(), tokens_env()),
        ("CLUSTER_SECRET".to_string(), SECRET.to_string()),
    ];
    for (k, v) in extra_master_env {
        master_env.push((k.to_string(), v.to_string()));
    }
    Cluster::start(Spec {
        auxiliaries,
        replicas: auxiliaries.clamp(1, 2),
        master_env,
        aux_env: vec![("CLUSTER_SECRET".into(), SECRET.into())],
        token: Some(ADMIN.into()),
        ..Spec::default()
    })
}

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Need {
    Open,
    Read,
    Write,
    Admin,
}

/// What a caller presents.
#[derive(Clone, Copy, Debug)]
enum Who {
    Nobody,
    WrongToken,
    Token(&'static str, Need),
}

/// What the route answers once the caller is let in.
#[derive(Clone, Copy, Debug)]
enum Allowed {
    /// A 2xx.
    Success,
    /// This status (e.g. 400 for the empty key).
    Status(u16),
}

struct Row {
    method: &'static str,
    path: String,
    body: Option<Value>,
    need: Need,
    allowed: Allowed,
}

fn row(method: &'static str, path: &str, body: Option<Value>, need: Need, allowed: Allowed) -> Row {
    Row {
        method,
        path: path.to_string(),
        body,
        need,
        allowed,
    }
}

/// The role table: every public route, every caller, 401, 403 or the
/// route's own answer.
#[test]
fn every_role_against_every_route() {
    let c = secure_cluster(2, &[("METRICS_AUTH", "read")]);
    let admin = &c.http;
    let plain = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    use Allowed::*;
    use Need::*;
    let table = vec![
        row("GET", "/health", None, Open, Success),
        row("GET", "/openapi.yaml", None, Open, Success),
        row("GET", "/metrics", None, Read, Success),
        row(
            "POST",
            "/data",
            Some(json!({"key": "k", "value": 1})),
            Write,
            Success,
        ),
        row("GET", "/data/k", None, Read, Success),
        row("DELETE", "/data/k", None, Write, Success),
        row("GET", "/data/", None, Read, Status(400)),
        row("DELETE", "/data/", None, Write, Status(400)),
        row(
            "POST",
            "/data/bulk",
            Some(json!([{"key": "k", "value": 2}])),
            Write,
            Success,
        ),
        row("GET", "/data/bulk", None, Read, Success),
        row("DELETE", "/data/bulk", None, Write, Success),
        row(
            "POST",
            "/data/bulk/get",
            Some(json!(["k", "bulk"])),
            Read,
            Success,
        ),
        row("GET", "/data/bulk/get", None, Read, Success),
        row("DELETE", "/data/bulk/get", None, Write, Success),
        row("GET", "/nodes", None, Read, Success),
        row("GET", "/nodes/aux-1", None, Read, Success),
        row("POST", "/nodes", None, Admin, Success), // body made per attempt
        row("DELETE", "/nodes/{fake}", None, Admin, Success),
        row("GET", "/ring", None, Read, Success),
        row("GET", "/stats", None, Read, Success),
        row("POST", "/rebalance", None, Admin, Success),
        row("POST", "/backup", None, Admin, Success),
        // No body: the latest backup, the one just written above.
        row("POST", "/restore", None, Admin, Success),
        row(
            "POST",
            "/restore",
            Some(json!({"backup": "no-such-backup"})),
            Admin,
            Status(404),
        ),
        row("GET", "/restore", None, Admin, Success),
        // Commands over HTTP: any token reaches them; a read command then
        // needs only the read role (each command's own role is checked in
        // proc_commands_http.rs).
        row("POST", "/", Some(json!(["GET", "k"])), Read, Success),
        row(
            "POST",
            "/pipeline",
            Some(json!([["GET", "k"], ["STRLEN", "k"]])),
            Read,
            Success,
        ),
        row(
            "POST",
            "/multi-exec",
            Some(json!([["GET", "k"]])),
            Read,
            Success,
        ),
    ];
    let callers = [
        Who::Nobody,
        Who::WrongToken,
        Who::Token(READ, Read),
        Who::Token(WRITE, Write),
        Who::Token(ADMIN, Admin),
    ];
    let mut fake = 0;
    let mut checked = 0;
    for r in &table {
        for who in callers {
            // Put in place what the request needs to succeed.
            for key in ["k", "bulk", "bulk/get"] {
                assert_eq!(c.set(0, key, json!("v")).status(), 200);
            }
            fake += 1;
            let fake_id = format!("fake-{fake}");
            let reg = json!({"id": fake_id, "addr": "127.0.0.1:9"});
            if r.path.contains("{fake}") {
                let resp = admin.post(c.url(0, "/nodes")).json(&reg).send().unwrap();
                assert_eq!(resp.status(), 201, "registering {fake_id}");
            }
            let path = r.path.replace("{fake}", &fake_id);
            let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap();
            let mut req = plain.request(method, c.url(0, &path));
            let body = if r.method == "POST" && path == "/nodes" {
                Some(reg.clone())
            } else {
                r.body.clone()
            };
            if let Some(body) = body {
                req = req.json(&body);
            }
            match who {
                Who::Nobody => {}
                Who::WrongToken => req = req.bearer_auth("not-a-token"),
                Who::Token(t, _) => req = req.bearer_auth(t),
            }
            let resp = req.send().unwrap();
            let status = resp.status().as_u16();
            let what = format!("{} {path} as {who:?}: {status}", r.method);
            let let_in = match (r.need, who) {
                (Open, _) => true,
                (_, Who::Nobody | Who::WrongToken) => false,
                (need, Who::Token(_, role)) => rank(role) >= rank(need),
            };
            if !let_in {
                let expected = match who {
                    Who::Nobody | Who::WrongToken => 401,
                    Who::Token(..) => 403,
                };
                if expected == 401 {
                    assert_eq!(
                        resp.headers()
                            .get("www-authenticate")
                            .and_then(|v| v.to_str().ok()),
                        Some("Bearer realm=\"distcache\""),
                        "{what}"
                    );
                }
                let code = if expected == 401 {
                    "unauthorized"
                } else {
                    "forbidden"
                };
                assert_error(resp, expected, code);
            } else {
                match r.allowed {
                    Success => assert!(
                        (200..300).contains(&status),
                        "{what}: {}",
                        resp.text().unwrap_or_default()
                    ),
                    Status(s) => assert_eq!(status, s, "{what}"),
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, table.len() * callers.len());
}

fn rank(need: Need) -> u8 {
    match need {
        Need::Open => 0,
        Need::Read => 1,
        Need::Write => 2,
        Need::Admin => 3,
    }
}

/// With METRICS_AUTH at its default, Prometheus scrapes without a token,
/// while data routes still need one.
#[test]
fn metrics_are_open_by_default_and_data_is_not() {
    let c = secure_cluster(1, &[]);
    let plain = reqwest::blocking::Client::new();
    let resp = plain.get(c.url(0, "/metrics")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_error(
        plain.get(c.url(0, "/data/k")).send().unwrap(),
        401,
        "unauthorized",
    );
    assert_error(
        plain.get(c.url(0, "/nodes")).send().unwrap(),
        401,
        "unauthorized",
    );
}

/// A master that has tokens but no secret refuses to start, naming the
/// setting; so does a token list with a bad role.
#[test]
fn bad_security_settings_stop_the_master_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("AUTH_TOKENS", "t:admin")], "CLUSTER_SECRET"),
        (
            &[("AUTH_TOKENS", "t:root"), ("CLUSTER_SECRET", "s")],
            "AUTH_TOKENS",
        ),
        (&[("TLS_CERT", "/nonexistent.pem")], "TLS_KEY"),
        (
            &[("CLUSTER_SECRET_FILE", "/nonexistent-secret")],
            "CLUSTER_SECRET_FILE",
        ),
    ];
    for (i, (env, setting)) in cases.iter().enumerate() {
        let mut e = vec![
            ("PORT".to_string(), "0".to_string()),
            ("BIND_ADDR".to_string(), "127.0.0.1".to_string()),
        ];
        e.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut p = Proc::spawn(dir.path(), &format!("bad-{i}"), &["master"], &e);
        let status = p.wait_exit(Duration::from_secs(20)).expect("it exits");
        assert_eq!(status.code(), Some(2), "{env:?}");
        assert!(p.log_text().contains(setting), "{env:?}: {}", p.log_text());
    }
}

/// The cluster secret: without it nothing internal works; with it the
/// cluster does.
#[test]
fn internal_routes_and_ports_need_the_secret() {
    let mut c = Cluster::start(Spec {
        masters: 2,
        auxiliaries: 2,
        master_env: vec![("CLUSTER_SECRET".into(), SECRET.into())],
        aux_env: vec![("CLUSTER_SECRET".into(), SECRET.into())],
        ..Spec::default()
    });
    // With the secret the cluster works: the auxiliaries registered (with
    // both masters) and data goes through the data protocol after Hello.
    assert_eq!(c.set(0, "k", json!(1)).status(), 200);
    assert_eq!(c.value(1, "k"), Some(json!(1)));

    let http = c.http.clone();
    let reg = json!({"id": "rogue", "addr": "127.0.0.1:9"});
    // Registration without the secret, or with a wrong one: refused.
    assert_error(
        http.post(c.url(0, "/nodes")).json(&reg).send().unwrap(),
        401,
        "unauthorized",
    );
    assert_error(
        http.post(c.url(0, "/nodes"))
            .header("x-distcache-secret", "wrong")
            .json(&reg)
            .send()
            .unwrap(),
        401,
        "unauthorized",
    );
    // Decommission (a ring change) without it: refused, and the node stays.
    assert_error(
        http.delete(c.url(0, "/nodes/aux-1")).send().unwrap(),
        401,
        "unauthorized",
    );
    assert_eq!(c.node_state(0, "aux-1").as_deref(), Some("up"));
    // A forwarded registration is no different without the secret.
    assert_error(
        http.post(c.url(1, "/nodes"))
            .header("x-distcache-forwarded", "1")
            .json(&reg)
            .send()
            .unwrap(),
        401,
        "unauthorized",
    );
    assert!(
        http.get(c.url(0, "/nodes/rogue")).send().unwrap().status() == 404,
        "the rogue node is not known"
    );
    // With the secret, a registration at one master reaches its peer (the
    // forwarding carries the secret too).
    let resp = http
        .post(c.url(0, "/nodes"))
        .header("x-distcache-secret", SECRET)
        .json(&json!({"id": "friend", "addr": "127.0.0.1:9"}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    wait_until(Duration::from_secs(20), "the peer learns of friend", || {
        http.get(c.url(1, "/nodes/friend"))
            .send()
            .is_ok_and(|r| r.status() == 200)
    });

    // /internal/handoff on an auxiliary without the secret: refused before
    // the body is even looked at; with it, the body is checked.
    let aux_addr = c.aux_addr("aux-1");
    assert_error(
        http.post(format!("http://{aux_addr}/internal/handoff"))
            .json(&json!({}))
            .send()
            .unwrap(),
        401,
        "unauthorized",
    );
    assert_error(
        http.post(format!("http://{aux_addr}/internal/handoff"))
            .header("x-distcache-secret", SECRET)
            .json(&json!({}))
            .send()
            .unwrap(),
        400,
        "bad_json",
    );
    // A master's lease question, likewise: only another master may ask.
    assert_error(
        http.post(c.url(0, "/internal/lease"))
            .json(&json!({"epoch": 0}))
            .send()
            .unwrap(),
        401,
        "unauthorized",
    );
    let routed_by = c.health(0)["ring_epoch"].as_u64().unwrap();
    let lease: Value = http
        .post(c.url(0, "/internal/lease"))
        .header("x-distcache-secret", SECRET)
        .json(&json!({"epoch": 0}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    // The epoch of the map it applied: at least the one it routed by.
    assert!(lease["epoch"].as_u64().unwrap() >= routed_by, "{lease}");
    // /health stays open for probes.
    assert_eq!(
        http.get(format!("http://{aux_addr}/health"))
            .send()
            .unwrap()
            .status(),
        200
    );

    // The data port: a request without Hello is refused and the connection
    // closed; a wrong secret too; the right one lets requests through.
    let node: Value = http
        .get(c.url(0, "/nodes/aux-1"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let data_addr = node["data_addr"].as_str().unwrap().to_string();
    let (answer, closed) = wire_exchange(&data_addr, &[get_frame(7, b"k")]);
    assert!(
        matches!(&answer[..], [distcache_wire::Response::Error { code, .. }] if code == "unauthorized"),
        "{answer:?}"
    );
    assert!(closed, "the connection is closed after the refusal");
    let (answer, closed) =
        wire_exchange(&data_addr, &[hello_frame(1, b"wrong"), get_frame(2, b"k")]);
    assert!(
        matches!(&answer[..], [distcache_wire::Response::Error { code, .. }] if code == "unauthorized"),
        "{answer:?}"
    );
    assert!(closed);
    let (answer, _) = wire_exchange(
        &data_addr,
        &[
            hello_frame(1, SECRET.as_bytes()),
            get_frame(2, b"never-set"),
        ],
    );
    assert_eq!(
        answer,
        vec![
            distcache_wire::Response::Ok,
            distcache_wire::Response::NotFound
        ]
    );

    // A process without the secret cannot join: an auxiliary started
    // without it is refused by the masters and never appears.
    let idx = c.add_aux_with(
        "stranger2",
        &[("CLUSTER_SECRET".into(), "not-the-secret".into())],
    );
    wait_until(Duration::from_secs(30), "the stranger is refused", || {
        c.auxes[idx]
            .proc
            .log_text()
            .contains("registration refused")
    });
    assert!(c.auxes[idx].proc.log_text().contains("401"));
    for m in 0..2 {
        assert_eq!(
            http.get(c.url(m, "/nodes/stranger2"))
                .send()
                .unwrap()
                .status(),
            404
        );
    }
}

fn hello_frame(id: u64, secret: &[u8]) -> bytes::BytesMut {
    wire_frame(
        id,
        distcache_wire::UNFENCED,
        &distcache_wire::Request::Hello {
            secret: bytes::Bytes::copy_from_slice(secret),
        },
    )
}

fn get_frame(id: u64, key: &[u8]) -> bytes::BytesMut {
    wire_frame(
        id,
        distcache_wire::UNFENCED,
        &distcache_wire::Request::Get {
            key: bytes::Bytes::copy_from_slice(key),
        },
    )
}

/// TLS on the public port with a certificate made here: a handshake and
/// requests over https, an auxiliary registering over https (trusting the
/// CA through TLS_CA), and plain HTTP refused.
#[test]
fn tls_serves_https_with_a_generated_certificate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_pem = cert.cert.pem();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();

    let port = free_port();
    let master_env: Vec<(String, String)> = [
        ("PORT", port.to_string()),
        ("BIND_ADDR", "127.0.0.1".to_string()),
        ("NODE_ID", "tls-master".to_string()),
        ("HEALTH_CHECK_INTERVAL", "0.2".to_string()),
        ("TLS_CERT", cert_path.display().to_string()),
        ("TLS_KEY", key_path.display().to_string()),
        ("CLUSTER_SECRET", SECRET.to_string()),
        ("BACKUP_DIR", dir.path().join("m").display().to_string()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.clone()))
    .collect();
    let _master = Proc::spawn(dir.path(), "tls-master", &["master"], &master_env);
    let https = reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap()])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");
    wait_until(Duration::from_secs(20), "the TLS master answers", || {
        https.get(format!("{base}/health")).send().is_ok()
    });

    // An auxiliary registers over https, trusting the test CA.
    let aux_env: Vec<(String, String)> = [
        ("PORT", "0".to_string()),
        ("DATA_PORT", "0".to_string()),
        ("BIND_ADDR", "127.0.0.1".to_string()),
        ("NODE_ID", "tls-aux".to_string()),
        ("MASTER_ADDRESS", format!("https://localhost:{port}")),
        ("TLS_CA", cert_path.display().to_string()),
        ("CLUSTER_SECRET", SECRET.to_string()),
        ("BACKUP_DIR", dir.path().join("a").display().to_string()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.clone()))
    .collect();
    let _aux = Proc::spawn(dir.path(), "tls-aux", &["aux"], &aux_env);
    wait_until(Duration::from_secs(30), "the auxiliary is up", || {
        https
            .get(format!("{base}/health"))
            .send()
            .ok()
            .and_then(|r| r.json::<Value>().ok())
            .is_some_and(|h| h["auxiliaries_up"] == json!(1))
    });
    let resp = https
        .post(format!("{base}/data"))
        .json(&json!({"key": "secure", "value": {"a": 1}}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = https
        .get(format!("{base}/data/secure"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(body["value"], json!({"a": 1}));

    // The client verbs speak https with --ca.
    let out = std::process::Command::new(common::BIN)
        .args(["get", "secure", "--url", &base, "--ca"])
        .arg(&cert_path)
        .env_remove("DISTCACHE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "{\n  \"a\": 1\n}"
    );

    // A client that does not trust the certificate fails the handshake;
    // plain HTTP on the TLS port gets no HTTP answer.
    let untrusting = reqwest::blocking::Client::builder()
        .tls_certs_only(Vec::<reqwest::Certificate>::new())
        .build()
        .unwrap();
    assert!(untrusting.get(format!("{base}/health")).send().is_err());
    let plain = reqwest::blocking::Client::new();
    assert!(
        plain
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .map(|r| r.status() != 200)
            .unwrap_or(true)
    );
}

fn limits_cluster(extra: &[(&str, &str)]) -> Cluster {
    Cluster::start(Spec {
        auxiliaries: 1,
        replicas: 1,
        master_env: extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Spec::default()
    })
}

/// Key, value, body, batch and header sizes: each over-limit request gets
/// its documented status and JSON error.
#[test]
fn size_limits_answer_with_their_status() {
    let c = limits_cluster(&[
        ("MAX_VALUE_BYTES", "100"),
        ("MAX_BODY_BYTES", "4096"),
        ("MAX_BATCH", "3"),
        ("MAX_HEADER_BYTES", "2048"),
    ]);
    let http = &c.http;
    // Key: at most 1024 bytes.
    assert_eq!(c.set(0, &"k".repeat(1024), json!(1)).status(), 200);
    assert_error(c.set(0, &"k".repeat(1025), json!(1)), 400, "bad_key");
    // Value: MAX_VALUE_BYTES of JSON text.
    assert_eq!(c.set(0, "v", json!("x".repeat(98))).status(), 200);
    assert_error(c.set(0, "v", json!("x".repeat(99))), 413, "value_too_large");
    // Body: MAX_BODY_BYTES, whether declared or not.
    let big = format!("{{\"key\":\"b\",\"value\":\"{}\"}}", "x".repeat(5000));
    assert_error(
        http.post(c.url(0, "/data"))
            .body(big.clone())
            .send()
            .unwrap(),
        413,
        "body_too_large",
    );
    // Batch: MAX_BATCH entries.
    let items = |n: usize| -> Value {
        (0..n)
            .map(|i| json!({"key": format!("b{i}"), "value": i}))
            .collect()
    };
    assert_eq!(
        http.post(c.url(0, "/data/bulk"))
            .json(&items(3))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_error(
        http.post(c.url(0, "/data/bulk"))
            .json(&items(4))
            .send()
            .unwrap(),
        413,
        "batch_too_large",
    );
    assert_error(
        http.post(c.url(0, "/data/bulk/get"))
            .json(&json!(["a", "b", "c", "d"]))
            .send()
            .unwrap(),
        413,
        "batch_too_large",
    );
    // Headers: over MAX_HEADER_BYTES a JSON 431; far over the read buffer,
    // hyper's own 431.
    assert_eq!(
        http.get(c.url(0, "/health"))
            .header("x-pad", "p".repeat(1500))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_error(
        http.get(c.url(0, "/health"))
            .header("x-pad", "p".repeat(3000))
            .send()
            .unwrap(),
        431,
        "headers_too_large",
    );
    // The same on the data routes the master serves without its router.
    for req in [
        http.get(c.url(0, "/data/k")),
        http.delete(c.url(0, "/data/k")),
        http.post(c.url(0, "/data"))
            .body(r#"{"key":"k","value":1}"#),
    ] {
        assert_error(
            req.header("x-pad", "p".repeat(3000)).send().unwrap(),
            431,
            "headers_too_large",
        );
    }
    let (status, _) = raw_request(
        &c.masters[0].addr,
        format!(
            "GET /health HTTP/1.1\r\nHost: x\r\nx-pad: {}\r\n\r\n",
            "p".repeat(200_000)
        )
        .as_bytes(),
    );
    assert_eq!(status, Some(431));
}

/// Sends `bytes` on a new connection and reads until the peer closes (or
/// 10 s pass). Returns the status of the first answer, if any, and all the
/// text read.
fn raw_request(addr: &str, bytes: &[u8]) -> (Option<u16>, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    read_until_closed(&mut s)
}

fn read_until_closed(s: &mut TcpStream) -> (Option<u16>, String) {
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|t| t.parse().ok());
    (status, text)
}

/// A slowly trickled body gets 408 with a JSON error and the connection is
/// closed; headers that never finish get the connection closed.
#[test]
fn slow_requests_are_cut_off() {
    let c = limits_cluster(&[
        ("HEADER_READ_TIMEOUT_MS", "300"),
        ("BODY_READ_TIMEOUT_MS", "300"),
    ]);
    let addr = &c.masters[0].addr;

    // The body: 100 bytes announced, 10 sent, then nothing.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"key\":\"s")
        .unwrap();
    let (status, text) = read_until_closed(&mut s);
    assert_eq!(status, Some(408), "{text}");
    assert!(text.contains("\"code\":\"request_timeout\""), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );

    // The headers: half a request line, then nothing. The read ends
    // (the server closed) well before the 10 s read timeout would.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /health HT").unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(n) => assert_eq!(n, 0, "closed without an answer"),
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the server closed the connection rather than waiting: {e}"
        ),
    }

    // The node still serves.
    assert_eq!(c.set(0, "after", json!(1)).status(), 200);
}

/// Past MAX_CONNECTIONS, a new connection is answered 503
/// too_many_connections and closed; once connections close, it serves again.
#[test]
fn connections_past_the_cap_get_503() {
    let c = limits_cluster(&[("MAX_CONNECTIONS", "4")]);
    let addr = c.masters[0].addr.clone();
    let mut held = Vec::new();
    let mut refused = None;
    // Other clients (the harness, the auxiliary's registration) may hold a
    // connection or two, so open kept-alive connections until one is refused.
    for _ in 0..12 {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with("HTTP/1.1 503") && text.contains("too_many_connections") {
            refused = Some((s, text));
            break;
        }
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        held.push(s);
    }
    let (mut s, text) = refused.expect("a connection past the cap is refused");
    assert!(
        held.len() <= 4,
        "at most MAX_CONNECTIONS served: {}",
        held.len()
    );
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    let (_, rest) = read_until_closed(&mut s);
    assert!(!rest.contains("HTTP/1.1"), "nothing more is served: {rest}");
    drop(held);
    wait_until(
        Duration::from_secs(20),
        "a new connection is served",
        || {
            reqwest::blocking::Client::new()
                .get(c.url(0, "/health"))
                .send()
                .is_ok_and(|r| r.status() == 200)
        },
    );
}

#[test]
fn every_client_verb_sends_its_token() {
    let c = secure_cluster(2, &[]);
    let url = format!("http://{}", c.masters[0].addr);
    let verb = |args: &[&str], token: Option<&str>| {
        let mut cmd = std::process::Command::new(common::BIN);
        cmd.args(args)
            .args(["--url", &url])
            .env_remove("DISTCACHE_TOKEN");
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        let out = cmd.output().expect("run distcache");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let cases: &[(&[&str], &str)] = &[
        (&["set", "k", "1"], WRITE),
        (&["get", "k"], READ),
        (&["nodes"], READ),
        (&["stats"], READ),
        (&["restore"], ADMIN),
        (&["del", "k"], WRITE),
    ];
    // Without a token every verb is refused; with the right one it works
    // (restore restores the backup taken here).
    c.http
        .post(c.url(0, "/backup"))
        .bearer_auth(ADMIN)
        .send()
        .unwrap();
    for (args, token) in cases {
        let (code, err) = verb(args, None);
        assert_eq!(code, Some(2), "{args:?} without a token: {err}");
        assert!(err.contains("401"), "{args:?} without a token: {err}");
        let (code, err) = verb(args, Some(token));
        assert!(
            !err.contains("401") && !err.contains("403"),
            "{args:?} with a token: {err}"
        );
        assert_eq!(code, Some(0), "{args:?} with a token: {err}");
    }
}
