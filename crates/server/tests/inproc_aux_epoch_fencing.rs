//! Epoch fencing on a real auxiliary, and what a handoff carries besides
//! keys: `auxiliary::run` on port 0, spoken to over the internal protocol
//! with the wire client (the cluster secret on), its epoch read back from
//! `/health` and `/metrics`. No master runs here: [`Registrar`] answers the
//! auxiliary's registration (`POST /nodes`) as a master would, with the
//! epoch the test chooses, so that the epochs below are the test's alone.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use distcache_core::clock::system_clock;
use distcache_core::{Entry, Version};
use distcache_server::auxiliary::{self, AuxListeners};
use distcache_server::config::{AuxConfig, CommonConfig};
use distcache_server::security::{AuxSecurity, ClusterConfig};
use distcache_server::shutdown::Shutdown;
use distcache_wire::{Client, ClientConfig, Request, Response, WriteStatus};

const SECRET: &str = "fencing-test-secret";

/// Answers `POST /nodes` as a master that holds the registering node,
/// with the epoch of its map; until [`Registrar::answer`] it answers 503,
/// as masters without a majority do.
struct Registrar {
    addr: SocketAddr,
    epoch: tokio::sync::watch::Sender<Option<u64>>,
}

impl Registrar {
    async fn start(epoch: Option<u64>) -> Registrar {
        use axum::http::StatusCode;
        use axum::routing::post;
        let (tx, rx) = tokio::sync::watch::channel(epoch);
        let app = axum::Router::new().route(
            "/nodes",
            post(move |body: axum::Json<serde_json::Value>| {
                let epoch = *rx.borrow();
                async move {
                    match epoch {
                        Some(epoch) => {
                            let mut node = body.0;
                            node["epoch"] = epoch.into();
                            (StatusCode::OK, axum::Json(node))
                        }
                        None => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            axum::Json(serde_json::json!({"error": "no_leader"})),
                        ),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Registrar { addr, epoch: tx }
    }

    /// From now on, registrations are answered from a map at `epoch`.
    fn answer(&self, epoch: u64) {
        self.epoch.send_replace(Some(epoch));
    }
}

/// An auxiliary running in this process, stopped by [`Aux::stop`].
struct Aux {
    http: SocketAddr,
    data: SocketAddr,
    stop: Shutdown,
    task: tokio::task::JoinHandle<()>,
    dir: PathBuf,
}

impl Aux {
    /// An auxiliary whose registration is answered at once, at epoch 0.
    async fn start(name: &str) -> Aux {
        let registrar = Registrar::start(Some(0)).await;
        let aux = Aux::start_with(name, &registrar).await;
        aux.wait_registered().await;
        aux
    }

    async fn start_with(name: &str, registrar: &Registrar) -> Aux {
        let dir = std::env::temp_dir().join(format!(
            "distcache-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let config = AuxConfig {
            common: CommonConfig {
                node_id: Some(name.to_owned()),
                bind_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
                backup_dir: dir.clone(),
            },
            port: 0,
            data_port: Some(0),
            advertise_addr: None,
            advertise_data_addr: None,
            master_address: vec![registrar.addr.to_string()],
            cache_size: 1000,
            cache_max_bytes: None,
            cache_shards: distcache_core::store::DEFAULT_SHARDS,
            script_time_limit_ms: distcache_server::config::DEFAULT_SCRIPT_TIME_LIMIT_MS,
            tombstone_grace: distcache_server::config::DEFAULT_TOMBSTONE_GRACE_SECS,
            backup_interval: 0,
            log_fsync: distcache_server::config::LogFsync::Off,
            log_max_bytes: distcache_server::config::DEFAULT_LOG_MAX_BYTES,
            leave_on_shutdown: false,
            security: AuxSecurity {
                cluster: ClusterConfig {
                    cluster_secret: Some(SECRET.to_owned()),
                    ..ClusterConfig::default()
                },
                ..AuxSecurity::default()
            },
        }
        .validate()
        .expect("valid config");
        let listeners = AuxListeners::bind(&config).await.expect("bind");
        let http = listeners.http.local_addr().unwrap();
        let data = listeners.data.local_addr().unwrap();
        let stop = Shutdown::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                auxiliary::run(config, listeners, system_clock(), stop)
                    .await
                    .expect("auxiliary ran")
            }
        });
        Aux {
            http,
            data,
            stop,
            task,
            dir,
        }
    }

    fn client(&self) -> Client {
        Client::new(
            self.data.to_string(),
            ClientConfig {
                request_timeout: Duration::from_secs(5),
                secret: Bytes::from_static(SECRET.as_bytes()),
                ..ClientConfig::default()
            },
        )
    }

    async fn get(&self, path: &str) -> String {
        reqwest::get(format!("http://{}{path}", self.http))
            .await
            .expect("GET")
            .error_for_status()
            .expect("200")
            .text()
            .await
            .expect("body")
    }

    async fn health(&self) -> serde_json::Value {
        serde_json::from_str(&self.get("/health").await).unwrap()
    }

    async fn wait_registered(&self) {
        for _ in 0..500 {
            if self.health().await["registered"] == true {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the auxiliary never registered");
    }

    async fn health_epoch(&self) -> u64 {
        let health: serde_json::Value = serde_json::from_str(&self.get("/health").await).unwrap();
        health["epoch"].as_u64().expect("epoch in /health")
    }

    async fn stop(self) {
        self.stop.trigger();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the auxiliary stops")
            .unwrap();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn set(key: &'static str, value: &'static str, counter: u32) -> Request {
    Request::Set {
        key: Bytes::from_static(key.as_bytes()),
        entry: Entry {
            value: Bytes::from_static(value.as_bytes()),
            expires_at_ms: None,
            version: Version {
                millis: 1_700_000_000_000,
                counter,
                origin: 1,
            },
        },
    }
}

fn get(key: &'static str) -> Request {
    Request::Get {
        key: Bytes::from_static(key.as_bytes()),
    }
}

fn value_of(answer: Response) -> Bytes {
    match answer {
        Response::Value(entry) => entry.value,
        other => panic!("expected a value, got {other:?}"),
    }
}

#[tokio::test]
async fn an_auxiliary_refuses_requests_routed_by_an_older_map_and_learns_announced_epochs() {
    distcache_server::security::tls::install_crypto_provider();
    let aux = Aux::start("aux-fencing").await;
    let client = aux.client();
    assert_eq!(aux.health_epoch().await, 0, "no epoch before the first map");

    // Epoch 5 is served, and is now the epoch in place.
    assert_eq!(
        client.call_at(5, set("k", "at-5", 1)).await.unwrap(),
        Response::Written(WriteStatus::Stored)
    );
    assert_eq!(aux.health_epoch().await, 5);

    // Epoch 3 is refused with 5, reads and writes alike, and the write had
    // no effect.
    assert_eq!(
        client.call_at(3, get("k")).await.unwrap(),
        Response::StaleEpoch { current: 5 }
    );
    assert_eq!(
        client.call_at(3, set("k", "at-3", 2)).await.unwrap(),
        Response::StaleEpoch { current: 5 }
    );
    assert_eq!(value_of(client.call_at(5, get("k")).await.unwrap()), "at-5");

    // Epoch 0 (a handoff, a restore, a tool) is served unfenced and moves
    // nothing.
    assert_eq!(
        client.call(set("k", "unfenced", 3)).await.unwrap(),
        Response::Written(WriteStatus::Stored)
    );
    assert_eq!(value_of(client.call(get("k")).await.unwrap()), "unfenced");
    assert_eq!(aux.health_epoch().await, 5);

    // A Ping at 9 announces 9: a Get at 5 is now refused with 9, an
    // older announce changes nothing, and the refusal leaves the
    // connection usable.
    assert_eq!(
        client.call_at(9, Request::Ping).await.unwrap(),
        Response::Pong
    );
    assert_eq!(
        client.call_at(5, get("k")).await.unwrap(),
        Response::StaleEpoch { current: 9 }
    );
    assert_eq!(
        client.call_at(7, Request::Ping).await.unwrap(),
        Response::Pong
    );
    assert_eq!(aux.health_epoch().await, 9);
    assert_eq!(
        value_of(client.call_at(9, get("k")).await.unwrap()),
        "unfenced"
    );

    let metrics = aux.get("/metrics").await;
    assert!(metrics.contains("\ndistcache_aux_epoch 9\n"), "{metrics}");
    assert!(
        metrics.contains("\ndistcache_aux_stale_epoch_refusals_total 3\n"),
        "{metrics}"
    );

    aux.stop().await;
}

/// An auxiliary keeps its fence in memory only, so a (re)started one
/// admits no routed request until a master answered its registration, and
/// then none routed by a map older than the one that answered: a master
/// still routing by a map from before the restart (in which the node may
/// since have been judged down and its keys led elsewhere) is refused.
#[tokio::test]
async fn an_auxiliary_serves_nothing_routed_until_a_master_answered_its_registration() {
    distcache_server::security::tls::install_crypto_provider();
    let registrar = Registrar::start(None).await;
    let aux = Aux::start_with("aux-fencing-registration", &registrar).await;
    let client = aux.client();
    // Registration is being refused (no map): nothing routed is served,
    // at any epoch; a peer's unfenced handoff copy is.
    for epoch in [1, 4, 1000] {
        match client.call_at(epoch, get("k")).await.unwrap() {
            Response::Error { code, .. } => assert_eq!(code, "not_registered"),
            other => panic!("at {epoch}: {other:?}"),
        }
    }
    assert_eq!(
        client.call(set("k", "from-a-peer", 1)).await.unwrap(),
        Response::Written(WriteStatus::Stored)
    );
    let health = aux.health().await;
    assert_eq!(health["registered"], false, "{health}");
    assert_eq!(health["epoch"], 0, "{health}");

    // A master answers from its map at epoch 6.
    registrar.answer(6);
    aux.wait_registered().await;
    assert_eq!(aux.health_epoch().await, 6);
    assert_eq!(
        client.call_at(5, get("k")).await.unwrap(),
        Response::StaleEpoch { current: 6 }
    );
    assert_eq!(
        value_of(client.call_at(6, get("k")).await.unwrap()),
        "from-a-peer"
    );
    let metrics = aux.get("/metrics").await;
    assert!(
        metrics.contains("\ndistcache_aux_unregistered_refusals_total 3\n"),
        "{metrics}"
    );
    aux.stop().await;
}

/// A handoff raises the source's fence to its round's epoch before it
/// copies anything: from then on a request routed by an older map (a
/// master that has not applied the round's yet) is refused, and cannot
/// write a key behind the copies. A handoff from an older master, with no
/// epoch, moves nothing.
#[tokio::test]
async fn a_handoff_raises_the_fence_to_its_rounds_epoch() {
    distcache_server::security::tls::install_crypto_provider();
    let aux = Aux::start("aux-fencing-handoff").await;
    let client = aux.client();
    assert_eq!(
        client.call_at(5, set("k", "at-5", 1)).await.unwrap(),
        Response::Written(WriteStatus::Stored)
    );
    // The aux alone, before and after: the pass keeps every key.
    let handoff = |epoch: Option<u64>| {
        let mut body = serde_json::json!({
            "from": { "members": ["aux-fencing-handoff"], "replicas": 1 },
            "to": {
                "members": [{ "id": "aux-fencing-handoff", "data_addr": aux.data.to_string() }],
                "replicas": 1
            },
            "sources": ["aux-fencing-handoff"],
            "vnodes": 16,
        });
        if let Some(epoch) = epoch {
            body["epoch"] = epoch.into();
        }
        reqwest::Client::new()
            .post(format!("http://{}/internal/handoff", aux.http))
            .header(distcache_server::security::secret::SECRET_HEADER, SECRET)
            .json(&body)
            .send()
    };
    let answer = handoff(None).await.expect("POST /internal/handoff");
    assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
    assert_eq!(aux.health_epoch().await, 5, "no epoch: the fence stays");

    let answer = handoff(Some(8)).await.expect("POST /internal/handoff");
    assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
    assert_eq!(aux.health_epoch().await, 8);
    assert_eq!(
        client.call_at(5, set("k", "at-5-late", 2)).await.unwrap(),
        Response::StaleEpoch { current: 8 }
    );
    assert_eq!(value_of(client.call_at(8, get("k")).await.unwrap()), "at-5");

    aux.stop().await;
}

/// The version a command was written at, from an `Execute`'s answer.
fn executed_version(answer: Response) -> Version {
    match answer {
        Response::Executed {
            version: Some(version),
            ..
        } => version,
        other => panic!("expected a write's answer, got {other:?}"),
    }
}

/// `SET key value`, to run at a key's leader at `version`.
fn execute_set(key: &'static str, version: Version) -> Request {
    let args: Vec<Bytes> = ["SET", key, "v"]
        .into_iter()
        .map(|a| Bytes::from_static(a.as_bytes()))
        .collect();
    Request::Execute {
        version: Some(version),
        max_value_bytes: 1 << 20,
        commands: vec![args].into(),
        ship_effects: true,
        watched: Vec::new(),
    }
}

/// A key that expired at its old leader may still be live, at its version,
/// at a replica whose clock is behind; so a leader stamps commands above
/// the versions of keys that expired in its store. A handoff hands that
/// floor on: the keys' new leader, which never held the expired key,
/// stamps its commands above it too, as the old leader would have.
#[tokio::test]
async fn a_handoff_carries_the_expired_floor_to_the_new_owners() {
    distcache_server::security::tls::install_crypto_provider();
    let source = Aux::start("aux-floor-source").await;
    let target = Aux::start("aux-floor-target").await;
    let (to_source, to_target) = (source.client(), target.client());
    // Keys for the handoff to move (some of them to the target), and one
    // written at a version from far ahead that expires at once.
    let keys: Vec<&'static str> = (0..40)
        .map(|i| &*Box::leak(format!("key-{i}").into_boxed_str()))
        .collect();
    for (i, key) in keys.iter().enumerate() {
        let answer = to_source.call(set(key, "v", i as u32)).await.unwrap();
        assert_eq!(answer, Response::Written(WriteStatus::Stored));
    }
    let ahead = Version {
        millis: 4_000_000_000_000,
        counter: 0,
        origin: 9,
    };
    let now_ms = distcache_core::clock::unix_ms();
    let expiring = Request::Set {
        key: Bytes::from_static(b"gone"),
        entry: Entry {
            value: Bytes::from_static(b"soon gone"),
            expires_at_ms: Some(now_ms + 100),
            version: ahead,
        },
    };
    assert_eq!(
        to_source.call(expiring).await.unwrap(),
        Response::Written(WriteStatus::Stored)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Expired: deleted at its version, as a delete leaves it.
    assert_eq!(
        to_source.call(get("gone")).await.unwrap(),
        Response::Tombstone(ahead)
    );
    let low = Version {
        millis: 1_700_000_000_000,
        counter: 100,
        origin: 1,
    };

    let body = serde_json::json!({
        "from": { "members": ["aux-floor-source"], "replicas": 1 },
        "to": {
            "members": [
                { "id": "aux-floor-source", "data_addr": source.data.to_string() },
                { "id": "aux-floor-target", "data_addr": target.data.to_string() },
            ],
            "replicas": 1
        },
        "sources": ["aux-floor-source"],
        "vnodes": 16,
    });
    let answer = reqwest::Client::new()
        .post(format!("http://{}/internal/handoff", source.http))
        .header(distcache_server::security::secret::SECRET_HEADER, SECRET)
        .json(&body)
        .send()
        .await
        .expect("POST /internal/handoff");
    assert_eq!(answer.status(), 200);
    let report: serde_json::Value = answer.json().await.expect("a report");
    assert!(report["moved"].as_u64().unwrap() > 0, "{report}");

    let at_target = executed_version(to_target.call(execute_set("at-target", low)).await.unwrap());
    assert!(
        at_target > ahead,
        "the new owner stamps above what expired at the old one: {at_target:?}"
    );
    // The source's own floor, in the expired key's shard.
    let at_source = executed_version(to_source.call(execute_set("gone", low)).await.unwrap());
    assert!(
        at_source > ahead,
        "the source stamps above what expired there: {at_source:?}"
    );
    let metrics = target.get("/metrics").await;
    assert!(
        metrics.contains("distcache_data_requests_total{op=\"note_expired\"} 1\n"),
        "{metrics}"
    );

    source.stop().await;
    target.stop().await;
}

/// Several connections race announces and data requests at rising, jumbled
/// epochs while `/health` is polled: nobody ever sees the epoch go down, a
/// refusal always names a newer epoch than the request's, no data request is
/// served below an epoch its connection already saw in place, and the epoch
/// ends at the highest one sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connections_never_see_the_epoch_go_down() {
    distcache_server::security::tls::install_crypto_provider();
    let aux = Aux::start("aux-fencing-race").await;
    let senders: Vec<_> = (0..4u64)
        .map(|t| {
            let client = aux.client();
            tokio::spawn(async move {
                let mut seen = 0;
                let mut sent_max = 0;
                let mut refused = 0u64;
                for i in 0..300u64 {
                    let epoch = 10 + i + (i * 7 + t * 13) % 11;
                    sent_max = sent_max.max(epoch);
                    let announce = (i + t) % 4 == 0;
                    let req = if announce {
                        Request::Ping
                    } else if i % 2 == 0 {
                        get("k")
                    } else {
                        set("k", "v", u32::try_from(i).unwrap())
                    };
                    match client.call_at(epoch, req).await.unwrap() {
                        Response::StaleEpoch { current } => {
                            assert!(current > epoch, "{epoch} refused naming {current}");
                            assert!(current >= seen, "went down from {seen} to {current}");
                            seen = current;
                            refused += 1;
                        }
                        Response::Error { code, message } => panic!("{code}: {message}"),
                        _ => {
                            // Served: never older than an epoch this
                            // connection already saw in place.
                            assert!(announce || epoch >= seen, "{epoch} served after {seen}");
                            seen = seen.max(epoch);
                        }
                    }
                }
                (sent_max, refused)
            })
        })
        .collect();
    let poller = {
        let url = format!("http://{}/health", aux.http);
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut last = 0;
            for _ in 0..50 {
                let health: serde_json::Value =
                    http.get(&url).send().await.unwrap().json().await.unwrap();
                let epoch = health["epoch"].as_u64().unwrap();
                assert!(epoch >= last, "/health went down from {last} to {epoch}");
                last = epoch;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let (mut sent_max, mut refused) = (0, 0);
    for sender in senders {
        let (max, n) = sender.await.unwrap();
        sent_max = sent_max.max(max);
        refused += n;
    }
    poller.await.unwrap();
    assert_eq!(aux.health_epoch().await, sent_max);
    assert!(
        refused > 0,
        "the epochs sent were jumbled enough to be refused"
    );
    let metrics = aux.get("/metrics").await;
    assert!(
        metrics.contains(&format!(
            "\ndistcache_aux_stale_epoch_refusals_total {refused}\n"
        )),
        "{refused} refusals: {metrics}"
    );
    aux.stop().await;
}
