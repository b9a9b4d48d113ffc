//! Client and server over real sockets on 127.0.0.1.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use distcache_core::{Entry, Lookup, Version};
use distcache_wire::frame::{
    DeleteStatus, KeyedEntry, MAX_FRAME_BYTES, RequestFrame, UNFENCED, WriteStatus, decode_request,
    decode_response, encode_request, encode_response, error_code,
};
use distcache_wire::{
    Client, ClientConfig, ConnState, FrameError, Handler, Request, Response, WireError, serve,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_millis(300);

/// A store in a `HashMap`, keeping the higher version; with a secret, it
/// refuses everything but `Hello` until the connection presents it. It
/// records every request's epoch, and refuses one below `fence` as stale.
#[derive(Default)]
struct MapHandler {
    secret: Option<Bytes>,
    map: Mutex<HashMap<Bytes, Entry>>,
    fence: u64,
    epochs: Arc<Mutex<Vec<(&'static str, u64)>>>,
}

impl MapHandler {
    fn with_secret(secret: &'static [u8]) -> MapHandler {
        MapHandler {
            secret: Some(Bytes::from_static(secret)),
            ..MapHandler::default()
        }
    }

    fn set(&self, key: Bytes, entry: Entry) -> WriteStatus {
        let mut map = self.map.lock().unwrap();
        match map.get(&key) {
            Some(held) if held.version >= entry.version => {
                WriteStatus::Stale { held: held.version }
            }
            _ => {
                map.insert(key, entry);
                WriteStatus::Stored
            }
        }
    }
}

impl Handler for MapHandler {
    fn handle(&self, req: Request, epoch: u64, conn: &mut ConnState) -> Response {
        self.epochs.lock().unwrap().push((req.name(), epoch));
        if epoch != UNFENCED && epoch < self.fence {
            return Response::StaleEpoch {
                current: self.fence,
            };
        }
        if let Request::Hello { secret } = &req {
            return match &self.secret {
                Some(expected) if expected != secret => {
                    Response::error(error_code::UNAUTHORIZED, "wrong secret")
                }
                _ => {
                    conn.authenticated = true;
                    Response::Ok
                }
            };
        }
        if self.secret.is_some() && !conn.authenticated {
            return Response::error(error_code::UNAUTHORIZED, "present the secret first");
        }
        match req {
            Request::Ping => Response::Pong,
            Request::Hello { .. } => unreachable!("answered above"),
            Request::Get { key } => match self.map.lock().unwrap().get(&key) {
                Some(entry) => Response::Value(entry.clone()),
                None => Response::NotFound,
            },
            Request::Set { key, entry } => Response::Written(self.set(key, entry)),
            Request::Delete { key, version } => {
                let mut map = self.map.lock().unwrap();
                match map.get(&key) {
                    Some(held) if held.version >= version => {
                        Response::Deleted(DeleteStatus::Stale { held: held.version })
                    }
                    Some(_) => {
                        map.remove(&key);
                        Response::Deleted(DeleteStatus::Deleted)
                    }
                    None => Response::Deleted(DeleteStatus::NotFound),
                }
            }
            Request::GetMany { keys } => {
                let map = self.map.lock().unwrap();
                Response::Values(
                    keys.iter()
                        .map(|k| map.get(k).cloned().map_or(Lookup::Absent, Lookup::Live))
                        .collect(),
                )
            }
            Request::SetMany { entries } => Response::WrittenMany(
                entries
                    .into_iter()
                    .map(|e| self.set(e.key, e.entry))
                    .collect(),
            ),
            Request::DeleteMany { keys } => {
                let mut map = self.map.lock().unwrap();
                for (key, version) in keys {
                    if map.get(&key).is_some_and(|held| held.version < version) {
                        map.remove(&key);
                    }
                }
                Response::Ok
            }
            Request::Execute { .. }
            | Request::ApplyChanges { .. }
            | Request::CountKeys { .. }
            | Request::NoteExpired { .. }
            | Request::Adopt { .. } => {
                Response::error(error_code::BAD_REQUEST, "no commands in this test server")
            }
        }
    }
}

struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(handler: MapHandler) -> Server {
        Server::on(TcpListener::bind("127.0.0.1:0").await.unwrap(), handler)
    }

    fn on(listener: TcpListener, handler: MapHandler) -> Server {
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(listener, Arc::new(handler), shutdown.clone()));
        Server {
            addr,
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(2), self.task)
            .await
            .expect("serve returns promptly after shutdown")
            .unwrap();
    }
}

fn client(addr: SocketAddr) -> Client {
    client_with_secret(addr, b"")
}

fn client_with_secret(addr: SocketAddr, secret: &'static [u8]) -> Client {
    Client::new(
        addr.to_string(),
        ClientConfig {
            request_timeout: TIMEOUT,
            secret: Bytes::from_static(secret),
            ..ClientConfig::default()
        },
    )
}

fn version(n: u64) -> Version {
    Version {
        millis: 1_700_000_000_000 + n,
        counter: 0,
        origin: 1,
    }
}

fn entry(value: &str, n: u64) -> Entry {
    Entry {
        value: Bytes::copy_from_slice(value.as_bytes()),
        expires_at_ms: (n % 2 == 0).then_some(1_900_000_000_000 + n),
        version: version(n),
    }
}

fn key(k: &str) -> Bytes {
    Bytes::copy_from_slice(k.as_bytes())
}

#[tokio::test]
async fn every_request_round_trips_through_a_server() {
    let server = Server::start(MapHandler::default()).await;
    let client = client(server.addr);

    assert_eq!(client.call(Request::Ping).await.unwrap(), Response::Pong);
    assert_eq!(
        client
            .call(Request::Hello {
                secret: Bytes::new()
            })
            .await
            .unwrap(),
        Response::Ok
    );
    assert_eq!(
        client.call(Request::Get { key: key("a") }).await.unwrap(),
        Response::NotFound
    );
    let a = entry("\"alpha\"", 2);
    let set_a = Request::Set {
        key: key("a"),
        entry: a.clone(),
    };
    assert_eq!(
        client.call(set_a.clone()).await.unwrap(),
        Response::Written(WriteStatus::Stored)
    );
    assert_eq!(
        client.call(set_a).await.unwrap(),
        Response::Written(WriteStatus::Stale { held: a.version })
    );
    assert_eq!(
        client.call(Request::Get { key: key("a") }).await.unwrap(),
        Response::Value(a.clone())
    );

    let entries = vec![
        KeyedEntry {
            key: key("b/ü"),
            entry: entry("1", 3),
        },
        KeyedEntry {
            key: key("a"),
            entry: entry("older", 1),
        },
    ];
    assert_eq!(
        client.call(Request::SetMany { entries }).await.unwrap(),
        Response::WrittenMany(vec![
            WriteStatus::Stored,
            WriteStatus::Stale { held: a.version }
        ])
    );
    assert_eq!(
        client
            .call(Request::GetMany {
                keys: vec![key("a"), key("missing"), key("b/ü")]
            })
            .await
            .unwrap(),
        Response::Values(vec![
            Lookup::Live(a),
            Lookup::Absent,
            Lookup::Live(entry("1", 3))
        ])
    );
    assert_eq!(
        client
            .call(Request::GetMany { keys: vec![] })
            .await
            .unwrap(),
        Response::Values(vec![])
    );
    assert_eq!(
        client
            .call(Request::Delete {
                key: key("a"),
                version: version(9)
            })
            .await
            .unwrap(),
        Response::Deleted(DeleteStatus::Deleted)
    );
    assert_eq!(
        client.call(Request::Get { key: key("a") }).await.unwrap(),
        Response::NotFound
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_share_one_client() {
    let server = Server::start(MapHandler::default()).await;
    let client = client(server.addr);
    let calls: Vec<_> = (0..1000u64)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let k = key(&format!("key-{i}"));
                let e = entry(&format!("value-{i}"), i);
                let set = client
                    .call(Request::Set {
                        key: k.clone(),
                        entry: e.clone(),
                    })
                    .await
                    .unwrap();
                assert_eq!(set, Response::Written(WriteStatus::Stored));
                let got = client.call(Request::Get { key: k }).await.unwrap();
                assert_eq!(got, Response::Value(e), "key-{i}");
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    server.stop().await;
}

/// A listener that counts its connections and answers every request with
/// `Pong`, after `delay` and only if `close_at_once` is false.
async fn counting_peer(close_at_once: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if close_at_once {
                    // Slow enough for every caller to queue behind this attempt.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    return;
                }
                let mut buf = BytesMut::new();
                loop {
                    let mut out = BytesMut::new();
                    while let Ok(Some(RequestFrame { id, .. })) = decode_request(&mut buf) {
                        encode_response(id, &Response::Pong, &mut out);
                    }
                    if stream.write_all(&out).await.is_err() {
                        return;
                    }
                    match stream.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_calls_open_one_connection() {
    let (addr, accepted) = counting_peer(false).await;
    let client = client(addr);
    let calls: Vec<_> = (0..200)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.call(Request::Ping).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), Response::Pong);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_queued_behind_a_failed_connect_share_its_error() {
    // With a secret the client waits for the hello answer; this peer closes
    // instead, so the attempt fails.
    let (addr, accepted) = counting_peer(true).await;
    let client = client_with_secret(addr, b"s");
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.call(Request::Ping).await })
        })
        .collect();
    for call in calls {
        let err = call.await.unwrap().unwrap_err();
        assert!(matches!(err, WireError::Connect { .. }), "{err}");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connect attempt for all callers"
    );
    // A later call tries again.
    assert!(client.call(Request::Ping).await.is_err());
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_listener_that_never_accepts_times_out_then_recovers_once_served() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = client(addr);

    let started = Instant::now();
    let err = client.call(Request::Ping).await.unwrap_err();
    assert!(
        matches!(
            err,
            WireError::Timeout {
                timeout_ms: 300,
                ..
            }
        ),
        "{err}"
    );
    assert!(started.elapsed() < TIMEOUT + Duration::from_millis(200));
    // Still hung: still a timeout, not a hang.
    assert!(matches!(
        client.call(Request::Ping).await,
        Err(WireError::Timeout { .. })
    ));

    // The accept loop gets going.
    let server = Server::on(listener, MapHandler::default());
    assert_eq!(client.call(Request::Ping).await.unwrap(), Response::Pong);
    server.stop().await;
}

#[tokio::test]
async fn a_server_that_never_reads_times_out_then_recovers_after_restart() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and holds connections, never reads: like a stopped process.
    let stuck = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            held.push(stream);
        }
    });
    let client = client(addr);
    let started = Instant::now();
    let err = client.call(Request::Ping).await.unwrap_err();
    assert!(matches!(err, WireError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < TIMEOUT + Duration::from_millis(200));

    stuck.abort();
    let _ = stuck.await;
    let server = Server::on(
        TcpListener::bind(addr).await.unwrap(),
        MapHandler::default(),
    );
    assert_eq!(client.call(Request::Ping).await.unwrap(), Response::Pong);
    server.stop().await;
}

#[tokio::test]
async fn a_silent_connection_is_abandoned_after_a_timeout() {
    // Like a stopped process: the kernel accepts, nothing ever answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    let client = client(addr);
    for attempt in 1..=2 {
        let err = client.call(Request::Ping).await.unwrap_err();
        assert!(matches!(err, WireError::Timeout { .. }), "{err}");
        // The next call does not queue behind the silent connection.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(accepted.load(Ordering::SeqCst), attempt);
    }
}

#[tokio::test]
async fn a_killed_server_fails_calls_and_a_restarted_one_is_reconnected() {
    let server = Server::start(MapHandler::default()).await;
    let addr = server.addr;
    let client = client(addr);
    assert_eq!(client.call(Request::Ping).await.unwrap(), Response::Pong);

    server.stop().await;
    let err = client.call(Request::Ping).await.unwrap_err();
    assert!(
        matches!(err, WireError::Closed { .. } | WireError::Connect { .. }),
        "{err}"
    );
    let err = client.call(Request::Ping).await.unwrap_err();
    assert!(matches!(err, WireError::Connect { .. }), "{err}");

    let server = Server::on(
        TcpListener::bind(addr).await.unwrap(),
        MapHandler::default(),
    );
    assert_eq!(client.call(Request::Ping).await.unwrap(), Response::Pong);
    server.stop().await;
}

#[tokio::test]
async fn calls_in_flight_fail_with_closed_when_the_connection_breaks() {
    // Reads one request, then closes without answering.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = BytesMut::new();
        while decode_request(&mut buf).unwrap().is_none() {
            stream.read_buf(&mut buf).await.unwrap();
        }
    });
    let client = client(addr);
    let err = client.call(Request::Ping).await.unwrap_err();
    assert!(matches!(err, WireError::Closed { .. }), "{err}");
}

#[tokio::test]
async fn the_cluster_secret_is_checked() {
    let server = Server::start(MapHandler::with_secret(b"right")).await;

    let wrong = client_with_secret(server.addr, b"wrong");
    let err = wrong.call(Request::Ping).await.unwrap_err();
    assert!(
        matches!(err, WireError::Unauthorized { ref message, .. } if message == "wrong secret"),
        "{err}"
    );

    let none = client(server.addr);
    let err = none.call(Request::Ping).await.unwrap_err();
    assert!(matches!(err, WireError::Unauthorized { .. }), "{err}");

    let right = client_with_secret(server.addr, b"right");
    assert_eq!(right.call(Request::Ping).await.unwrap(), Response::Pong);
    assert_eq!(
        right
            .call(Request::Set {
                key: key("k"),
                entry: entry("v", 1)
            })
            .await
            .unwrap(),
        Response::Written(WriteStatus::Stored)
    );
    server.stop().await;
}

/// Reads until end of stream (or 2 s), returning everything read.
async fn read_to_end(stream: &mut TcpStream) -> BytesMut {
    let mut buf = BytesMut::new();
    tokio::time::timeout(Duration::from_secs(2), async {
        while stream.read_buf(&mut buf).await.unwrap_or(0) > 0 {}
    })
    .await
    .expect("the server closes the connection");
    buf
}

#[tokio::test]
async fn garbage_gets_an_error_frame_and_a_close_while_others_are_served() {
    let server = Server::start(MapHandler::default()).await;
    let client = client(server.addr);
    assert_eq!(client.call(Request::Ping).await.unwrap(), Response::Pong);

    // Text: its first four bytes read as a length far over the limit.
    let mut raw = TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = read_to_end(&mut raw).await;
    match decode_response(&mut answer) {
        Ok(Some((0, Response::Error { code, message }))) => {
            assert_eq!(code, error_code::BAD_FRAME);
            assert!(message.contains("exceeds"), "{message}");
        }
        other => panic!("expected a bad_frame error, got {other:?}"),
    }
    assert!(answer.is_empty(), "nothing after the error frame");

    // A valid request, then an unknown opcode: the first is answered first.
    let mut raw = TcpStream::connect(server.addr).await.unwrap();
    let mut out = BytesMut::new();
    encode_request(7, UNFENCED, &Request::Ping, &mut out);
    out.extend_from_slice(&[9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x7e]);
    raw.write_all(&out).await.unwrap();
    let mut answer = read_to_end(&mut raw).await;
    assert_eq!(decode_response(&mut answer), Ok(Some((7, Response::Pong))));
    assert!(matches!(
        decode_response(&mut answer),
        Ok(Some((0, Response::Error { code, .. }))) if code == error_code::BAD_FRAME
    ));

    assert_eq!(client.call(Request::Ping).await.unwrap(), Response::Pong);
    server.stop().await;
}

#[tokio::test]
async fn pipelined_requests_are_all_answered_in_order() {
    let server = Server::start(MapHandler::default()).await;
    let mut raw = TcpStream::connect(server.addr).await.unwrap();
    let mut out = BytesMut::new();
    for id in 1..=500u64 {
        encode_request(
            id,
            UNFENCED,
            &Request::Set {
                key: key(&format!("k{id}")),
                entry: entry("v", id),
            },
            &mut out,
        );
    }
    raw.write_all(&out).await.unwrap();
    let mut buf = BytesMut::new();
    let mut next = 1u64;
    while next <= 500 {
        raw.read_buf(&mut buf).await.unwrap();
        while let Some((id, resp)) = decode_response(&mut buf).unwrap() {
            assert_eq!((id, resp), (next, Response::Written(WriteStatus::Stored)));
            next += 1;
        }
    }
    server.stop().await;
}

/// Calls made by many tasks at once share writes: the connection's writer
/// lets the ready tasks queue their frames before it writes. On one
/// runtime thread a woken task runs next, so without that every frame
/// would go out in its own write.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn calls_made_at_once_share_writes() {
    let server = Server::start(MapHandler::default()).await;
    let client = client(server.addr);
    assert_eq!(client.call(Request::Ping).await.unwrap(), Response::Pong);
    let before = client.write_counts();
    assert_eq!((before.frames, before.writes), (1, 1));

    // Spawned from a task on the runtime's thread, so that all 64 are
    // queued before the first runs, whatever the test's own thread does.
    let spawner = client.clone();
    let answers = tokio::spawn(async move {
        let calls: Vec<_> = (0..64)
            .map(|i| {
                let client = spawner.clone();
                tokio::spawn(async move {
                    let req = Request::Set {
                        key: key(&format!("k{i}")),
                        entry: entry("v", i + 1),
                    };
                    client.call(req).await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap());
        }
        answers
    })
    .await
    .unwrap();
    for answer in answers {
        assert_eq!(answer.unwrap(), Response::Written(WriteStatus::Stored));
    }
    let after = client.write_counts();
    let (frames, writes) = (after.frames - before.frames, after.writes - before.writes);
    assert_eq!(frames, 64);
    assert!(writes <= 8, "64 frames went out in {writes} writes");
    server.stop().await;
}

#[tokio::test]
async fn a_request_over_the_frame_limit_fails_alone() {
    let server = Server::start(MapHandler::default()).await;
    let client = client(server.addr);
    assert_eq!(client.call(Request::Ping).await.unwrap(), Response::Pong);
    let huge = Request::Set {
        key: key("big"),
        entry: Entry {
            value: Bytes::from(vec![0u8; MAX_FRAME_BYTES]),
            expires_at_ms: None,
            version: version(1),
        },
    };
    let err = client.call(huge).await.unwrap_err();
    assert!(
        matches!(
            err,
            WireError::Frame {
                source: FrameError::TooLarge { .. },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(client.call(Request::Ping).await.unwrap(), Response::Pong);
    server.stop().await;
}

#[tokio::test]
async fn connecting_to_a_closed_port_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = client(addr).call(Request::Ping).await.unwrap_err();
    assert!(matches!(err, WireError::Connect { .. }), "{err}");
}

#[tokio::test]
async fn dropping_the_last_clone_closes_the_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = BytesMut::new();
        loop {
            if let Some(RequestFrame { id, .. }) = decode_request(&mut buf).unwrap() {
                let mut out = BytesMut::new();
                encode_response(id, &Response::Pong, &mut out);
                stream.write_all(&out).await.unwrap();
            }
            if stream.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                let _ = closed_tx.send(());
                return;
            }
        }
    });
    let client = client(addr);
    let other = client.clone();
    assert_eq!(client.call(Request::Ping).await.unwrap(), Response::Pong);
    drop(client);
    let mut closed_rx = closed_rx;
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut closed_rx)
            .await
            .is_err(),
        "a remaining clone keeps the connection"
    );
    assert_eq!(other.call(Request::Ping).await.unwrap(), Response::Pong);
    drop(other);
    tokio::time::timeout(Duration::from_secs(2), closed_rx)
        .await
        .expect("the connection closes when the last clone is dropped")
        .unwrap();
}

#[tokio::test]
async fn serve_returns_after_shutdown_with_connections_open() {
    let server = Server::start(MapHandler::default()).await;
    let clients: Vec<_> = (0..3).map(|_| client(server.addr)).collect();
    for c in &clients {
        assert_eq!(c.call(Request::Ping).await.unwrap(), Response::Pong);
    }
    let started = Instant::now();
    server.stop().await;
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn call_at_carries_its_epoch_and_a_stale_epoch_answer_comes_back_as_an_answer() {
    let handler = MapHandler {
        secret: Some(Bytes::from_static(b"s")),
        fence: 5,
        ..MapHandler::default()
    };
    let epochs = Arc::clone(&handler.epochs);
    let server = Server::start(handler).await;
    let client = client_with_secret(server.addr, b"s");

    // The handshake's Hello and a plain call go out unfenced.
    assert_eq!(client.call(Request::Ping).await.unwrap(), Response::Pong);
    assert_eq!(
        client
            .call_at(
                7,
                Request::Set {
                    key: key("a"),
                    entry: entry("1", 1),
                },
            )
            .await
            .unwrap(),
        Response::Written(WriteStatus::Stored)
    );
    // An older epoch is refused by the handler, and the refusal is an
    // answer, not a failure of the connection.
    assert_eq!(
        client
            .call_at(3, Request::Get { key: key("a") })
            .await
            .unwrap(),
        Response::StaleEpoch { current: 5 }
    );
    assert_eq!(
        client
            .call_at(u64::MAX, Request::Get { key: key("a") })
            .await
            .unwrap(),
        Response::Value(entry("1", 1))
    );
    assert_eq!(
        *epochs.lock().unwrap(),
        [
            ("hello", UNFENCED),
            ("ping", UNFENCED),
            ("set", 7),
            ("get", 3),
            ("get", u64::MAX),
        ]
    );
    server.stop().await;
}

/// Counts what it handled, and "commits" it in `before_answering` after a
/// pause, as a log would fsync.
#[derive(Default)]
struct Committing {
    handled: AtomicUsize,
    committed: AtomicUsize,
    commits: AtomicUsize,
}

impl Handler for Committing {
    fn handle(&self, _req: Request, _epoch: u64, conn: &mut ConnState) -> Response {
        let seq = self.handled.fetch_add(1, Ordering::SeqCst) + 1;
        conn.wait_for = conn.wait_for.max(seq as u64);
        Response::Ok
    }

    fn before_answering(&self, conn: &mut ConnState) -> impl Future<Output = ()> + Send {
        let upto = std::mem::take(&mut conn.wait_for) as usize;
        async move {
            if upto > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.committed.fetch_max(upto, Ordering::SeqCst);
                self.commits.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_wait_for_before_answering_which_runs_once_per_batch() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(Committing::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve(listener, handler.clone(), shutdown.clone()));
    let c = client(addr);
    // One at a time: each answer comes only once its request is committed.
    for i in 1..=3 {
        assert_eq!(c.call(Request::Ping).await.unwrap(), Response::Ok);
        assert_eq!(handler.committed.load(Ordering::SeqCst), i);
    }
    // Many at once share commits: far fewer than one each.
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let c = c.clone();
        calls.spawn(async move { c.call(Request::Ping).await });
    }
    while let Some(answer) = calls.join_next().await {
        assert_eq!(answer.unwrap().unwrap(), Response::Ok);
    }
    assert_eq!(handler.committed.load(Ordering::SeqCst), 67);
    let commits = handler.commits.load(Ordering::SeqCst);
    assert!(commits <= 3 + 32, "{commits} commits for 67 requests");
    shutdown.cancel();
    task.await.unwrap();
}
