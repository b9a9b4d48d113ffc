//! Test harness: real `distcache master` and `distcache aux` processes on
//! loopback ports, driven over HTTP, killed and paused with real signals.
//! Every process's log goes to a file in the cluster's temporary directory
//! and is printed when a test fails.

#![allow(dead_code)]

pub mod netns;

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_distcache");

/// Polls `cond` every 25 ms until it returns true; panics with `what` after
/// `limit`. Limits are generous: they catch hangs, not slowness.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// Runs `cmd` with no standard input and returns its output; panics only
/// when it cannot be started.
pub fn run_command(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// A command's status, standard output and standard error, for messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` and panics with its output unless it succeeds.
pub fn run_ok(what: &str, cmd: &mut Command) -> Output {
    let out = run_command(cmd);
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        output_text(&out)
    );
    out
}

/// A program a `scripts/deps.d` script installs: a path inside the
/// repository (a venv or tools folder), or a name found on `PATH` or in the
/// system's bin folders. Missing, the test fails and names `deps_script`.
/// (`./scripts/test` checks for the tools first and leaves out, saying
/// why, the files whose tools are missing, except in CI; a test run
/// directly never skips.)
pub fn tool(relative_or_name: &str, deps_script: &str) -> PathBuf {
    let in_repo = repo().join(relative_or_name);
    if in_repo.is_file() {
        return in_repo;
    }
    let name = Path::new(relative_or_name)
        .file_name()
        .expect("tool name")
        .to_owned();
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(&name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("required tool {relative_or_name} is missing: run {deps_script} (as root) first")
        })
}

/// An npm package a `scripts/deps.d` script installs in `scripts/{dir}`
/// (`scripts/node-redis` for `redis`, `scripts/ioredis` for `ioredis`):
/// runs `script` with `node -e` there, so that `require(package)` finds
/// it, with `args` as `process.argv.slice(1)`, and returns its standard
/// output. The script fails the test by exiting non-zero.
pub fn run_node(
    dir: &str,
    package: &str,
    deps_script: &str,
    script: &str,
    args: &[&str],
) -> String {
    let dir = repo().join("scripts").join(dir);
    assert!(
        dir.join("node_modules").join(package).is_dir(),
        "npm package {package} is missing: run {deps_script} (as root) first"
    );
    let node = tool("node", deps_script);
    let out = run_ok(
        package,
        Command::new(node)
            .current_dir(&dir)
            .arg("-e")
            .arg(script)
            .args(args),
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Fails at once, saying why, unless the test runs as root: the `root_`
/// files make faults only root can (`for_what`). `./scripts/test` leaves
/// them out when it does not run as root, except in CI.
pub fn require_root(for_what: &str) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    // "Uid:	real	effective	saved	filesystem"
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(str::to_owned));
    assert_eq!(
        effective.as_deref(),
        Some("0"),
        "this test needs root for {for_what}: run ./scripts/test as root (which leaves it out otherwise)"
    );
}

/// A free port: bound, read, released. The process that gets it binds it
/// again at once; `Cluster` retries if that ever loses a race. Bound on
/// every address, so that a port in use on one of them (another test's
/// listener on a namespace's address) is never handed out for a process
/// that binds 0.0.0.0.
pub fn free_port() -> u16 {
    TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One running process.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    /// The network namespace it runs in (`ip netns exec`, which execs the
    /// program in place: the pid is the program's), or the host's.
    pub netns: Option<String>,
}

/// Installs the rustls crypto provider (`ring`) that every reqwest client
/// needs before it is built. Called by [`Proc::spawn`] and
/// [`Cluster::start`], so tests that start a process first need nothing
/// more; others call it themselves.
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Proc {
    /// Starts `distcache ARGS` with a clean environment plus `env`.
    pub fn spawn(dir: &Path, name: &str, args: &[&str], env: &[(String, String)]) -> Proc {
        Proc::spawn_in(None, dir, name, args, env)
    }

    /// [`Proc::spawn`] inside network namespace `netns`, if given.
    pub fn spawn_in(
        netns: Option<&str>,
        dir: &Path,
        name: &str,
        args: &[&str],
        env: &[(String, String)],
    ) -> Proc {
        init_tls();
        let log = dir.join(format!("{name}.log"));
        let file = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let mut cmd = match netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns, BIN]);
                cmd
            }
            None => Command::new(BIN),
        };
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            // No Redis-protocol listener unless a test asks for one: its
            // default port, 6379, is one for the whole machine.
            .env("RESP_PORT", "0")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start distcache");
        Proc {
            name: name.to_string(),
            child,
            log,
            env: env.to_vec(),
            args: args.iter().map(|s| s.to_string()).collect(),
            netns: netns.map(str::to_owned),
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("signal the process");
    }

    /// SIGSTOP, then waits until every thread of the process has stopped:
    /// the kernel stops a process's threads one by one after `kill`
    /// returns, and a thread still running could answer one more request.
    pub fn stop(&self) {
        self.signal(Signal::SIGSTOP);
        let tasks = format!("/proc/{}/task", self.child.id());
        wait_until(Duration::from_secs(10), "every thread stopped", || {
            std::fs::read_dir(&tasks)
                .map(|dir| {
                    dir.flatten().all(|task| {
                        std::fs::read_to_string(task.path().join("stat"))
                            .ok()
                            .and_then(|stat| {
                                // The state follows the command name's ')'.
                                stat.rsplit_once(')')
                                    .map(|(_, rest)| rest.trim_start().starts_with('T'))
                            })
                            .unwrap_or(true)
                    })
                })
                .unwrap_or(false)
        });
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the same command again, with the same environment (so the
    /// same NODE_ID, ports where they were fixed, and BACKUP_DIR), after the
    /// process was killed or exited. The log file is appended to.
    pub fn restart(&mut self) {
        self.kill();
        let dir = self.log.parent().expect("log dir").to_path_buf();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let fresh = Proc::spawn_in(self.netns.as_deref(), &dir, &self.name, &args, &self.env);
        // The old value's drop kills an already reaped child: harmless.
        *self = fresh;
    }

    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGKILL works on a stopped process too.
        self.kill();
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("---- last log lines of {} ----", self.name);
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// A tiny deterministic generator for workloads: the same seed gives the
/// same operations in every run.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// How to build a test cluster.
#[derive(Clone, Debug)]
pub struct Spec {
    pub masters: usize,
    pub auxiliaries: usize,
    pub replicas: usize,
    pub health_check_interval: f64,
    pub request_timeout_ms: u64,
    pub cache_size: usize,
    pub master_env: Vec<(String, String)>,
    /// Settings for one master only: `master_env_each[i]` goes to master
    /// `i` after `master_env` (e.g. a clock offset for one of them).
    pub master_env_each: Vec<Vec<(String, String)>>,
    pub aux_env: Vec<(String, String)>,
    /// Where master `i` runs, if not on the host's loopback: a network
    /// namespace and the address it binds, advertises and is reached at
    /// (see [`netns::Lan`]).
    pub master_hosts: Vec<NetnsHost>,
    /// Bearer token the cluster's HTTP client sends with every request
    /// (`None`: no `Authorization` header, as before).
    pub token: Option<String>,
    /// Each master opens a Redis-protocol listener on a free port
    /// ([`Master::resp_port`]).
    pub resp: bool,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            masters: 1,
            auxiliaries: 3,
            replicas: 2,
            health_check_interval: 0.2,
            // Generous: a loaded two-core machine runs several clusters at
            // once, and a probe that times out takes a node out of the ring.
            request_timeout_ms: 2000,
            cache_size: 10_000,
            master_env: Vec::new(),
            master_env_each: Vec::new(),
            aux_env: Vec::new(),
            master_hosts: Vec::new(),
            token: None,
            resp: false,
        }
    }
}

/// A network namespace and an address in it.
#[derive(Clone, Debug)]
pub struct NetnsHost {
    pub netns: String,
    pub ip: String,
}

pub struct Master {
    pub proc: Proc,
    pub addr: String,
    /// Its RESP port, when [`Spec::resp`] asked for one.
    pub resp_port: Option<u16>,
}

pub struct Aux {
    pub proc: Proc,
    pub id: String,
}

/// A cluster of real processes.
pub struct Cluster {
    // Processes first: fields drop in order, and their logs must still be
    // there to print when a test fails.
    pub masters: Vec<Master>,
    pub auxes: Vec<Aux>,
    pub spec: Spec,
    pub dir: tempfile::TempDir,
    pub http: Client,
}

fn env(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

impl Cluster {
    pub fn start(spec: Spec) -> Cluster {
        init_tls();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = &spec.token {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {token}").parse().expect("a header value"),
            );
        }
        let http = Client::builder()
            .timeout(Duration::from_secs(10))
            .default_headers(headers)
            .build()
            .expect("http client");
        let mut cluster = Cluster {
            spec: spec.clone(),
            dir,
            masters: Vec::new(),
            auxes: Vec::new(),
            http,
        };
        cluster.start_masters();
        for i in 0..spec.auxiliaries {
            cluster.add_aux(&format!("aux-{}", i + 1));
        }
        cluster.wait_for_up(spec.auxiliaries);
        cluster
    }

    /// The address master `i` binds and is reached at (its port aside).
    fn master_ip(&self, i: usize) -> String {
        match self.spec.master_hosts.get(i) {
            Some(host) => host.ip.clone(),
            None => "127.0.0.1".into(),
        }
    }

    fn master_env(&self, i: usize, ports: &[u16]) -> Vec<(String, String)> {
        // Bound to one address, a master advertises BIND_ADDR:PORT: the
        // peers' MASTER_PEERS spell it the same way.
        let peers: Vec<String> = ports
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(j, p)| format!("{}:{p}", self.master_ip(j)))
            .collect();
        let mut e = env(&[
            ("PORT", ports[i].to_string()),
            ("BIND_ADDR", self.master_ip(i)),
            ("NODE_ID", format!("master-{}", i + 1)),
            ("MASTER_PEERS", peers.join(",")),
            ("REPLICAS", self.spec.replicas.to_string()),
            (
                "HEALTH_CHECK_INTERVAL",
                self.spec.health_check_interval.to_string(),
            ),
            (
                "REQUEST_TIMEOUT_MS",
                self.spec.request_timeout_ms.to_string(),
            ),
            (
                "BACKUP_DIR",
                self.dir
                    .path()
                    .join(format!("master-{}", i + 1))
                    .display()
                    .to_string(),
            ),
            // Apart from BACKUP_DIR, which tests share between clusters to
            // restore one's backup onto another: a Raft directory belongs
            // to one master of one cluster.
            (
                "RAFT_DIR",
                self.dir
                    .path()
                    .join(format!("master-{}-raft", i + 1))
                    .display()
                    .to_string(),
            ),
        ]);
        e.extend(self.spec.master_env.iter().cloned());
        if let Some(own) = self.spec.master_env_each.get(i) {
            e.extend(own.iter().cloned());
        }
        e
    }

    fn start_masters(&mut self) {
        for attempt in 0..5 {
            let ports: Vec<u16> = (0..self.spec.masters).map(|_| free_port()).collect();
            let mut masters = Vec::new();
            for (i, &port) in ports.iter().enumerate() {
                let mut e = self.master_env(i, &ports);
                let resp_port = self.spec.resp.then(free_port);
                if let Some(resp_port) = resp_port {
                    e.push(("RESP_PORT".into(), resp_port.to_string()));
                }
                let name = format!("master-{}", i + 1);
                let netns = self.spec.master_hosts.get(i).map(|h| h.netns.as_str());
                let proc = Proc::spawn_in(netns, self.dir.path(), &name, &["master"], &e);
                masters.push(Master {
                    proc,
                    addr: format!("{}:{port}", self.master_ip(i)),
                    resp_port,
                });
            }
            let ok = masters.iter_mut().all(|m| self.wait_listening(m));
            if ok {
                self.masters = masters;
                return;
            }
            for m in &mut masters {
                if !m.proc.exited() {
                    continue;
                }
                let text = m.proc.log_text();
                let tail: Vec<&str> = text.lines().rev().take(3).collect();
                eprintln!("{} exited: {:?}", m.proc.name, tail);
            }
            // The next attempt starts from nothing: a Raft directory
            // written with this attempt's ports is another cluster's.
            drop(masters);
            for i in 0..self.spec.masters {
                let raft = self.dir.path().join(format!("master-{}-raft", i + 1));
                let _ = std::fs::remove_dir_all(raft);
            }
            eprintln!("a master port was taken (attempt {attempt}); retrying on new ports");
        }
        panic!("could not start the masters");
    }

    /// True once the master answers HTTP; false if it exited (port taken).
    fn wait_listening(&self, m: &mut Master) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if m.proc.exited() {
                return false;
            }
            if self
                .http
                .get(format!("http://{}/health", m.addr))
                .send()
                .is_ok()
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("master {} never answered", m.addr);
    }

    pub fn master_addrs(&self) -> Vec<String> {
        self.masters.iter().map(|m| m.addr.clone()).collect()
    }

    /// Starts an auxiliary named `id` (port 0: it binds free ports and
    /// advertises them).
    pub fn add_aux(&mut self, id: &str) -> usize {
        self.add_aux_with(id, &[])
    }

    pub fn add_aux_with(&mut self, id: &str, extra: &[(String, String)]) -> usize {
        let mut e = env(&[
            ("PORT", "0".into()),
            ("DATA_PORT", "0".into()),
            ("BIND_ADDR", "127.0.0.1".into()),
            ("NODE_ID", id.to_string()),
            ("MASTER_ADDRESS", self.master_addrs().join(",")),
            ("CACHE_SIZE", self.spec.cache_size.to_string()),
            ("BACKUP_DIR", self.dir.path().join(id).display().to_string()),
        ]);
        e.extend(self.spec.aux_env.iter().cloned());
        e.extend(extra.iter().cloned());
        let proc = Proc::spawn(self.dir.path(), id, &["aux"], &e);
        self.auxes.push(Aux {
            proc,
            id: id.to_string(),
        });
        self.auxes.len() - 1
    }

    /// SIGKILLs every master and auxiliary, one right after the other.
    pub fn kill_all(&mut self) {
        for m in &self.masters {
            let _ = kill(m.proc.pid(), Signal::SIGKILL);
        }
        for a in &self.auxes {
            let _ = kill(a.proc.pid(), Signal::SIGKILL);
        }
        for m in &mut self.masters {
            m.proc.kill();
        }
        for a in &mut self.auxes {
            a.proc.kill();
        }
    }

    /// Restarts every process as it was started (same ids, master ports and
    /// backup directories) and waits until every master sees every
    /// auxiliary up.
    pub fn restart_all(&mut self) {
        for m in &mut self.masters {
            m.proc.restart();
        }
        for i in 0..self.masters.len() {
            let addr = self.masters[i].addr.clone();
            wait_until(
                Duration::from_secs(20),
                &format!("restarted master {addr} answers"),
                || {
                    self.http
                        .get(format!("http://{addr}/health"))
                        .send()
                        .is_ok()
                },
            );
        }
        for a in &mut self.auxes {
            a.proc.restart();
        }
        self.wait_for_up(self.auxes.len());
        // A map restored from the masters' disks starts out naming the old
        // processes' addresses (and calling them up) until the leader's
        // probes and the new registrations replace them: wait until every
        // master routes to the processes running now.
        for i in 0..self.masters.len() {
            for a in &self.auxes {
                wait_until(
                    Duration::from_secs(30),
                    &format!("master {i} routes to the restarted {}", a.id),
                    || self.routes_to_live_process(i, &a.id),
                );
            }
        }
    }

    /// True if master `master` shows `id` up at the address where the
    /// process named `id` answers now, with the data address it gives.
    fn routes_to_live_process(&self, master: usize, id: &str) -> bool {
        let Ok(node) = self
            .http
            .get(self.url(master, &format!("/nodes/{id}")))
            .send()
            .and_then(|r| r.json::<Value>())
        else {
            return false;
        };
        let (Some(addr), Some(data)) = (node["addr"].as_str(), node["data_addr"].as_str()) else {
            return false;
        };
        let Ok(health) = self
            .http
            .get(format!("http://{addr}/health"))
            .send()
            .and_then(|r| r.json::<Value>())
        else {
            return false;
        };
        node["state"] == json!("up")
            && health["node_id"] == json!(id)
            && health["data_addr"] == json!(data)
    }

    /// The index of the master that leads the cluster map, once the masters
    /// agree on one.
    pub fn map_leader(&self) -> usize {
        let mut found = None;
        wait_until(Duration::from_secs(30), "a map leader", || {
            found = (0..self.masters.len()).find(|&m| {
                self.http
                    .get(self.url(m, "/health"))
                    .send()
                    .and_then(|r| r.json::<Value>())
                    .is_ok_and(|h| h["map"]["is_leader"] == json!(true))
            });
            found.is_some()
        });
        found.expect("found")
    }

    /// Waits until every master's committed ring is exactly `members` and
    /// no keys are moving.
    pub fn wait_settled(&self, members: &[&str]) {
        let all: Vec<usize> = (0..self.masters.len()).collect();
        self.wait_settled_through(&all, members);
    }

    /// [`Cluster::wait_settled`], asking only the masters in `masters`.
    pub fn wait_settled_through(&self, masters: &[usize], members: &[&str]) {
        let mut want: Vec<String> = members.iter().map(|s| s.to_string()).collect();
        want.sort();
        for &m in masters {
            wait_until(
                Duration::from_secs(60),
                &format!("master {m} settles on {want:?}"),
                || {
                    let ring: Value = match self
                        .http
                        .get(self.url(m, "/ring"))
                        .send()
                        .and_then(|r| r.json())
                    {
                        Ok(v) => v,
                        Err(_) => return false,
                    };
                    ring["rebalancing"] == json!(false) && ring["committed"] == json!(want)
                },
            );
        }
    }

    /// The value of a metric (no labels) on auxiliary `id`'s `/metrics`.
    pub fn aux_metric(&self, id: &str, name: &str) -> Option<f64> {
        let text = self
            .http
            .get(format!("http://{}/metrics", self.aux_addr(id)))
            .send()
            .ok()?
            .text()
            .ok()?;
        metric_value(&text, name)
    }

    pub fn aux(&mut self, id: &str) -> &mut Aux {
        self.auxes
            .iter_mut()
            .find(|a| a.id == id)
            .expect("aux with that id")
    }

    /// The id of `key`'s leader by master 0's committed ring (`GET /ring`):
    /// the auxiliary to stop or kill to take the key's leader away.
    pub fn leader_of(&self, key: &str) -> String {
        self.replicas_of(key, 1).remove(0)
    }

    /// The first `n` replicas of `key` by master 0's committed ring, its
    /// leader first.
    pub fn replicas_of(&self, key: &str, n: usize) -> Vec<String> {
        let ring = self.get_json(0, "/ring");
        let members: Vec<String> = ring["committed"]
            .as_array()
            .expect("a committed ring")
            .iter()
            .map(|m| m.as_str().expect("member ids").to_string())
            .collect();
        let vnodes = ring["virtual_nodes"].as_u64().expect("virtual_nodes") as u32;
        let placement = distcache_core::Ring::new(members.clone(), vnodes);
        placement
            .replicas_for(key.as_bytes(), n)
            .as_slice()
            .iter()
            .map(|&i| members[i as usize].clone())
            .collect()
    }

    /// `GET path` on master `master`, as JSON.
    pub fn get_json(&self, master: usize, path: &str) -> Value {
        self.http
            .get(self.url(master, path))
            .send()
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// The text of `GET path` on master `master` (e.g. `/metrics`).
    pub fn get_text(&self, master: usize, path: &str) -> String {
        self.http
            .get(self.url(master, path))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// Items held over every auxiliary master 0 does not see as down, each
    /// asked directly (its `/health`), so copies are counted, not keys.
    pub fn total_items(&self) -> u64 {
        self.get_json(0, "/nodes")["nodes"]
            .as_array()
            .expect("a node list")
            .iter()
            .filter(|n| n["state"] != json!("down"))
            .map(|n| {
                let addr = n["addr"].as_str().expect("addr");
                let h: Value = self
                    .http
                    .get(format!("http://{addr}/health"))
                    .send()
                    .and_then(|r| r.json())
                    .expect("auxiliary health");
                h["items"].as_u64().expect("items")
            })
            .sum()
    }

    pub fn url(&self, master: usize, path: &str) -> String {
        format!("http://{}{}", self.masters[master].addr, path)
    }

    pub fn health(&self, master: usize) -> Value {
        self.http
            .get(self.url(master, "/health"))
            .send()
            .and_then(|r| r.json())
            .unwrap_or(Value::Null)
    }

    /// Waits until every master sees exactly `n` auxiliaries up.
    pub fn wait_for_up(&self, n: usize) {
        for i in 0..self.masters.len() {
            wait_until(
                Duration::from_secs(30),
                &format!("master {i} sees {n} auxiliaries up"),
                || self.health(i)["auxiliaries_up"] == json!(n),
            );
        }
    }

    /// The state (`up`, `down`, ...) master `master` reports for `id`.
    pub fn node_state(&self, master: usize, id: &str) -> Option<String> {
        let resp = self
            .http
            .get(self.url(master, &format!("/nodes/{id}")))
            .send()
            .ok()?;
        let body: Value = resp.json().ok()?;
        body["state"].as_str().map(str::to_owned)
    }

    /// The HTTP address master 0 knows for auxiliary `id`.
    /// Auxiliary `id`'s own `/health`, at the address the masters know.
    pub fn aux_health(&self, id: &str) -> Value {
        self.http
            .get(format!("http://{}/health", self.aux_addr(id)))
            .send()
            .expect("aux health")
            .json()
            .expect("json")
    }

    pub fn aux_addr(&self, id: &str) -> String {
        let body: Value = self
            .http
            .get(self.url(0, &format!("/nodes/{id}")))
            .send()
            .expect("nodes")
            .json()
            .expect("json");
        body["addr"].as_str().expect("addr").to_string()
    }

    pub fn set(&self, master: usize, key: &str, value: Value) -> Response {
        self.set_ttl(master, key, value, None)
    }

    pub fn set_ttl(&self, master: usize, key: &str, value: Value, ttl: Option<u64>) -> Response {
        let mut body = json!({"key": key, "value": value});
        if let Some(t) = ttl {
            body["ttl"] = json!(t);
        }
        self.http
            .post(self.url(master, "/data"))
            .json(&body)
            .send()
            .expect("POST /data")
    }

    pub fn get(&self, master: usize, key: &str) -> Response {
        self.http
            .get(self.url(master, &format!("/data/{}", encode(key))))
            .send()
            .expect("GET /data")
    }

    pub fn delete(&self, master: usize, key: &str) -> Response {
        self.http
            .delete(self.url(master, &format!("/data/{}", encode(key))))
            .send()
            .expect("DELETE /data")
    }

    /// The value stored under `key`, or None on 404; panics on other statuses.
    pub fn value(&self, master: usize, key: &str) -> Option<Value> {
        let resp = self.get(master, key);
        match resp.status().as_u16() {
            200 => Some(resp.json::<Value>().expect("json")["value"].clone()),
            404 => None,
            s => panic!("GET {key}: status {s}: {}", resp.text().unwrap_or_default()),
        }
    }
}

/// The value of an unlabelled metric in Prometheus text.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Percent-encodes a key as one path segment.
pub fn encode(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Asserts a 200, showing the body otherwise.
pub fn assert_ok(resp: Response) {
    assert_eq!(resp.status(), 200, "{:?}", resp.text());
}

/// Asserts a JSON error body with `status` and `code`.
pub fn assert_error(resp: Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(ct.starts_with("application/json"), "content-type {ct:?}");
    let body: Value = resp.json().expect("error body is JSON");
    assert_eq!(body["error"]["code"], json!(code), "error body {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error has a message: {body}"
    );
    body
}

/// Debian's nginx has its stream module (RESP in `deploy/nginx/nginx.conf`)
/// as a dynamic module, which the nginx image builds in: the `-g`
/// directive that loads it when it is a separate file, else nothing.
pub fn nginx_stream_module_directive() -> String {
    let module = "/usr/lib/nginx/modules/ngx_stream_module.so";
    if std::path::Path::new(module).exists() {
        format!("load_module {module};")
    } else {
        String::new()
    }
}

/// Sends `frames` on a new connection and reads answers until the peer
/// closes or one answer per frame arrived (then it waits a moment more to
/// see whether the peer closes). Returns the answers and whether it closed.
pub fn wire_exchange(
    addr: &str,
    frames: &[bytes::BytesMut],
) -> (Vec<distcache_wire::Response>, bool) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for f in frames {
        std::io::Write::write_all(&mut s, f).unwrap();
    }
    let mut buf = bytes::BytesMut::new();
    let mut answers = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match std::io::Read::read(&mut s, &mut chunk) {
            Ok(0) => return (answers, true),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return (answers, false),
        }
        while let Ok(Some((_, resp))) = distcache_wire::frame::decode_response(&mut buf) {
            answers.push(resp);
        }
        if answers.len() >= frames.len() {
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
        }
    }
}

/// One internal-protocol request frame, routed at `epoch`.
pub fn wire_frame(id: u64, epoch: u64, req: &distcache_wire::Request) -> bytes::BytesMut {
    let mut buf = bytes::BytesMut::new();
    distcache_wire::frame::encode_request(id, epoch, req, &mut buf);
    buf
}
