//! Cluster tests: real Raft nodes talking HTTP over loopback sockets, each
//! replicating a toy journal. Waits are generous and bounded (a loaded
//! two-core machine must not make them flaky); no test asserts on timing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::security::secret::{ClusterSecret, Credentials, SECRET_HEADER};

/// The toy state: lines appended in commit order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Journal {
    lines: Vec<String>,
}

impl Replicated for Journal {
    type Event = String;
    /// The journal's length after the append.
    type Output = usize;

    fn apply(&mut self, event: String) -> usize {
        self.lines.push(event);
        self.lines.len()
    }
}

fn journal(lines: &[&str]) -> Journal {
    Journal {
        lines: lines.iter().map(|l| l.to_string()).collect(),
    }
}

/// Long enough for an election plus a commit on a busy machine.
const WAIT: Duration = Duration::from_secs(60);
const SECRET: &str = "raft-test-secret";

struct TestNode {
    addr: String,
    consensus: Consensus<Journal>,
    stop: CancellationToken,
    server: JoinHandle<()>,
}

fn credentials() -> Arc<Credentials> {
    Arc::new(Credentials {
        secret: Some(ClusterSecret::new(SECRET)),
    })
}

fn config(addr: &str, all: &[String], dir: Option<&Path>) -> ConsensusConfig {
    ConsensusConfig {
        data_dir: dir.map(Path::to_path_buf),
        heartbeat_interval_ms: 200,
        election_timeout_min_ms: 1_200,
        election_timeout_max_ms: 2_400,
        propose_timeout_ms: 20_000,
        // Small, so the tests cross snapshots and purges.
        snapshot_every_entries: 4,
        ..ConsensusConfig::new(addr, all.to_vec(), credentials())
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dc-raft-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn listeners(n: usize) -> (Vec<TcpListener>, Vec<String>) {
    let mut out = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..n {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        addrs.push(l.local_addr().expect("addr").to_string());
        out.push(l);
    }
    (out, addrs)
}

/// Binds `addr` again after its node stopped (the port may take a moment
/// to be free).
async fn rebind(addr: &str) -> TcpListener {
    let mut tries = 0;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) if tries < 100 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("rebinding {addr}: {e}"),
        }
    }
}

async fn start(listener: TcpListener, config: ConsensusConfig) -> TestNode {
    let addr = config.addr.clone();
    let consensus = Consensus::<Journal>::start(config)
        .await
        .expect("consensus starts");
    let app = router(&consensus);
    let stop = CancellationToken::new();
    let token = stop.clone();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(token.cancelled_owned())
            .await;
    });
    TestNode {
        addr,
        consensus,
        stop,
        server,
    }
}

async fn start_cluster(n: usize, dirs: Option<&[PathBuf]>) -> Vec<TestNode> {
    let (ls, addrs) = listeners(n).await;
    let mut nodes = Vec::new();
    for (i, l) in ls.into_iter().enumerate() {
        let dir = dirs.map(|d| d[i].as_path());
        nodes.push(start(l, config(&addrs[i], &addrs, dir)).await);
    }
    nodes
}

/// Stops a node as a crash would look to its peers: Raft stops and its
/// port closes.
async fn stop(node: TestNode) -> String {
    node.consensus.shutdown().await;
    node.stop.cancel();
    if tokio::time::timeout(Duration::from_secs(10), node.server)
        .await
        .is_err()
    {
        panic!("the HTTP server of {} did not stop", node.addr);
    }
    node.addr
}

async fn eventually<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    eventually_or_show(what, check, String::new).await
}

/// As [`eventually`], saying what `show` describes when it gives up.
async fn eventually_or_show<T>(
    what: &str,
    mut check: impl FnMut() -> Option<T>,
    show: impl Fn() -> String,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}{}",
            show()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The index of the node every live node agrees leads.
async fn leader(nodes: &[TestNode]) -> usize {
    eventually("one leader all nodes agree on", || {
        let i = nodes.iter().position(|n| n.consensus.is_leader())?;
        let id = nodes[i].consensus.id();
        nodes
            .iter()
            .all(|n| n.consensus.leader_id() == Some(id))
            .then_some(i)
    })
    .await
}

async fn converged(nodes: &[TestNode], expected: &Journal) {
    eventually_or_show(
        "every node to apply the same journal",
        || {
            nodes
                .iter()
                .all(|n| n.consensus.applied().borrow().state == *expected)
                .then_some(())
        },
        // Each node's Raft state, to tell a stuck election from a stuck
        // replication.
        || {
            let mut text = format!("; {} lines expected", expected.lines.len());
            for n in nodes {
                let lines = n.consensus.applied().borrow().state.lines.len();
                text += &format!("\n  {}: {lines} lines, {:?}", n.addr, n.consensus.metrics());
            }
            text
        },
    )
    .await;
}

fn applied(node: &TestNode) -> Arc<Applied<Journal>> {
    Arc::clone(&node.consensus.applied().borrow())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_masters_elect_a_leader_and_apply_the_same_events_proposed_anywhere() {
    let nodes = start_cluster(3, None).await;
    let l = leader(&nodes).await;
    let f = (l + 1) % 3;
    assert_eq!(nodes[l].consensus.propose("a".into()).await, Ok(1));
    assert_eq!(
        nodes[f].consensus.propose("b".into()).await,
        Ok(2),
        "a follower forwards to the leader and gets its output"
    );
    assert_eq!(
        nodes[(l + 2) % 3].consensus.propose("c".into()).await,
        Ok(3)
    );
    converged(&nodes, &journal(&["a", "b", "c"])).await;
    let indexes: Vec<_> = nodes.iter().map(|n| applied(n).index).collect();
    assert!(indexes.windows(2).all(|w| w[0] == w[1]), "{indexes:?}");
    // Asked again: a stall on a busy machine may have moved the lead.
    let l = leader(&nodes).await;
    assert_eq!(nodes[l].consensus.metrics().role, Role::Leader);
    assert!(nodes[l].consensus.confirm_leadership().await);
    assert!(!nodes[(l + 1) % 3].consensus.confirm_leadership().await);
    let m = nodes[(l + 1) % 3].consensus.metrics();
    assert_eq!(m.leader, Some(nodes[l].consensus.id()));
    assert_eq!(m.members.len(), 3);
    assert_eq!(
        m.leader_addr.as_deref(),
        Some(&*format!("http://{}", nodes[l].addr))
    );
    for n in nodes {
        stop(n).await;
    }
}

/// A leader's own observations are proposed only while it leads: never
/// handed to another leader, as `propose` hands a follower's events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_as_leader_commits_only_on_the_leader_and_is_never_forwarded() {
    let nodes = start_cluster(3, None).await;
    let l = leader(&nodes).await;
    let f = (l + 1) % 3;
    assert_eq!(
        nodes[f]
            .consensus
            .propose_as_leader("seen by a follower".into())
            .await,
        Err(ProposeError::NotLeader)
    );
    // Had it been forwarded, it would be line 1 here.
    let l = leader(&nodes).await;
    assert_eq!(
        nodes[l]
            .consensus
            .propose_as_leader("seen by the leader".into())
            .await,
        Ok(1)
    );
    converged(&nodes, &journal(&["seen by the leader"])).await;
    for n in nodes {
        stop(n).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_leader_stops_the_others_go_on_and_it_catches_up_when_it_returns() {
    let dirs: Vec<PathBuf> = (0..3).map(|i| temp_dir(&format!("failover-{i}"))).collect();
    let mut nodes = start_cluster(3, Some(&dirs)).await;
    let l = leader(&nodes).await;
    let old_leader = nodes[l].consensus.id();
    assert_eq!(nodes[l].consensus.propose("before".into()).await, Ok(1));
    converged(&nodes, &journal(&["before"])).await;

    let all: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let down = stop(nodes.remove(l)).await;
    let l2 = leader(&nodes).await;
    assert_ne!(
        nodes[l2].consensus.id(),
        old_leader,
        "a new leader is elected"
    );
    // More events than `snapshot_every_entries`: the log the returning node
    // missed is purged, so it catches up by snapshot.
    let mut expected = vec!["before".to_string()];
    for i in 0..10 {
        let e = format!("after-{i}");
        let via = &nodes[i % 2].consensus;
        assert_eq!(via.propose(e.clone()).await, Ok(expected.len() + 1));
        expected.push(e);
    }
    let expected = Journal { lines: expected };
    converged(&nodes, &expected).await;

    let back = start(rebind(&down).await, config(&down, &all, Some(&dirs[l]))).await;
    nodes.push(back);
    converged(&nodes, &expected).await;
    assert_eq!(nodes[2].consensus.propose("last".into()).await, Ok(12));
    for n in nodes {
        stop(n).await;
    }
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_restart_of_every_master_brings_the_state_back_from_disk() {
    let dirs: Vec<PathBuf> = (0..3).map(|i| temp_dir(&format!("restart-{i}"))).collect();
    let nodes = start_cluster(3, Some(&dirs)).await;
    leader(&nodes).await;
    let mut lines = Vec::new();
    for i in 0..9 {
        let e = format!("e{i}");
        assert_eq!(nodes[i % 3].consensus.propose(e.clone()).await, Ok(i + 1));
        lines.push(e);
    }
    let expected = Journal { lines };
    converged(&nodes, &expected).await;
    let mut addrs = Vec::new();
    for n in nodes {
        addrs.push(stop(n).await);
    }
    // A crash in the middle of an append leaves a torn last record: it was
    // never acknowledged, and the node must start without it.
    let log = dirs[0].join(log_store::LOG_FILE);
    let mut bytes = std::fs::read(&log).expect("the log is on disk");
    bytes.extend_from_slice(&[0x20, 0, 0, 0, 1, 2]);
    std::fs::write(&log, bytes).expect("tear the log");

    let mut nodes = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        nodes.push(start(rebind(addr).await, config(addr, &addrs, Some(&dirs[i]))).await);
    }
    // Each node applies its committed log at start, before any election:
    // a master cut off from the others still routes by its last map.
    converged(&nodes, &expected).await;
    leader(&nodes).await;
    assert_eq!(
        nodes[1].consensus.propose("after restart".into()).await,
        Ok(10)
    );
    let mut lines = expected.lines.clone();
    lines.push("after restart".into());
    converged(&nodes, &Journal { lines }).await;
    for n in nodes {
        stop(n).await;
    }
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_master_forms_a_cluster_of_one_at_once() {
    let nodes = start_cluster(1, None).await;
    assert_eq!(leader(&nodes).await, 0);
    assert_eq!(nodes[0].consensus.propose("solo".into()).await, Ok(1));
    assert_eq!(applied(&nodes[0]).state, journal(&["solo"]));
    let m = nodes[0].consensus.metrics();
    assert_eq!((m.role, m.members.len()), (Role::Leader, 1));
    for n in nodes {
        stop(n).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_cut_off_from_the_majority_cannot_commit_and_says_so_in_bounded_time() {
    let (ls, addrs) = listeners(3).await;
    let mut nodes = Vec::new();
    for (i, l) in ls.into_iter().enumerate() {
        let c = ConsensusConfig {
            propose_timeout_ms: 3_000,
            ..config(&addrs[i], &addrs, None)
        };
        nodes.push(start(l, c).await);
    }
    let l = leader(&nodes).await;
    assert_eq!(nodes[l].consensus.propose("agreed".into()).await, Ok(1));
    converged(&nodes, &journal(&["agreed"])).await;
    // Keep the leader alone: it still believes it leads for a while, which
    // is the harder case (its proposal is appended but cannot commit).
    let lone = nodes.remove(l);
    for n in nodes {
        stop(n).await;
    }
    let confirmed = tokio::time::timeout(WAIT, lone.consensus.confirm_leadership())
        .await
        .expect("bounded");
    assert!(!confirmed, "a leader without a majority is not confirmed");
    let outcome = tokio::time::timeout(WAIT, lone.consensus.propose("alone".into()))
        .await
        .expect("propose gives up within its timeout, never hangs");
    assert!(
        matches!(
            outcome,
            Err(ProposeError::Unknown { .. } | ProposeError::NoLeader { .. })
        ),
        "{outcome:?}"
    );
    // Once it has stepped down, a proposal fails without a leader.
    let outcome = tokio::time::timeout(WAIT, lone.consensus.propose("again".into()))
        .await
        .expect("bounded");
    assert!(outcome.is_err(), "{outcome:?}");
    assert_eq!(
        applied(&lone).state,
        journal(&["agreed"]),
        "it keeps its last state"
    );
    stop(lone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_routes_need_the_secret_and_answer_a_bad_body_with_a_json_400() {
    let nodes = start_cluster(1, None).await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://{}{path}", nodes[0].addr);
    for path in [
        routes::APPEND_PATH,
        routes::VOTE_PATH,
        routes::SNAPSHOT_PATH,
        routes::PROPOSE_PATH,
    ] {
        let resp = client
            .post(url(path))
            .header(SECRET_HEADER, SECRET)
            .body("{not json")
            .send()
            .await
            .expect("answered");
        assert_eq!(resp.status(), 400, "{path}");
        let body: serde_json::Value = resp.json().await.expect("a JSON error");
        assert_eq!(body["error"]["code"], "bad_raft_rpc", "{path}");

        let resp = client
            .post(url(path))
            .body("{}")
            .send()
            .await
            .expect("answered");
        assert_eq!(resp.status(), 401, "{path} without the secret");
        let resp = client
            .post(url(path))
            .header(SECRET_HEADER, "wrong")
            .body("{}")
            .send()
            .await
            .expect("answered");
        assert_eq!(resp.status(), 401, "{path} with a wrong secret");
    }
    assert_eq!(applied(&nodes[0]).state, Journal::default());
    for n in nodes {
        stop(n).await;
    }
}

#[tokio::test]
async fn a_damaged_vote_file_stops_the_start_and_names_the_file() {
    let dir = temp_dir("bad-vote");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join(log_store::VOTE_FILE), b"DCRFTVOT garbage").expect("write");
    let Err(err) = Consensus::<Journal>::start(config("127.0.0.1:1", &[], Some(&dir))).await else {
        panic!("a node must not start having forgotten its vote");
    };
    assert!(
        matches!(&err, StartError::Log(_)) && err.to_string().contains("raft.vote"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_of_another_cluster_stops_the_start_and_says_whose_it_is() {
    let dir = temp_dir("foreign");
    let nodes = start_cluster(1, Some(std::slice::from_ref(&dir))).await;
    assert_eq!(leader(&nodes).await, 0);
    assert_eq!(nodes[0].consensus.propose("theirs".into()).await, Ok(1));
    let old = nodes[0].addr.clone();
    for n in nodes {
        stop(n).await;
    }
    // Another master (another address) started on that directory could
    // never be elected nor follow anyone: it refuses, naming the owner.
    let (_, addrs) = listeners(1).await;
    let refused = Consensus::<Journal>::start(config(&addrs[0], &addrs, Some(&dir)))
        .await
        .map(|_| ());
    match refused {
        Err(StartError::ForeignState {
            dir: named,
            members,
        }) => {
            assert_eq!(named, dir.display().to_string());
            assert!(members.contains(&old), "{members} names {old}");
        }
        other => panic!("expected ForeignState, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
