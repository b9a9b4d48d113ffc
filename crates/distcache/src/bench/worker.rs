//! One benchmark connection: a task that owns one HTTP/1.1 keep-alive
//! connection (hyper's low-level client, `TCP_NODELAY`) and sends one request
//! at a time on it, as fast as answers come back. No pool, no retries, no
//! per-request allocation beyond the request itself: the load generator
//! should cost as little as possible next to the server it measures.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpStream;

use super::Workload;
use super::commands::Command;
use super::keys::KeyPicker;
use super::report::{ErrorKind, Op, Outcome, Stats};

/// What every connection shares and never changes during a run.
pub struct Plan {
    pub keys: KeyPicker,
    pub key_count: u64,
    /// Prefix of every key, as text.
    pub key_prefix: String,
    /// The same, percent-encoded for a URL path.
    pub key_prefix_path: String,
    pub value_size: usize,
    pub ttl_share: f64,
    pub ttl_s: u64,
    pub timeout: Duration,
    /// `Bearer <token>` for every request, when `--token` is given.
    pub authorization: Option<HeaderValue>,
}

/// What a phase sends, when its measured part starts and ends, and the live
/// counters. A `--mix` run is one phase; a `--commands` run is one per
/// command, on the same connections.
pub struct Phase {
    /// The mix of REST operations, or the one command.
    pub workload: Workload,
    /// Requests sent before this instant are warm-up: not recorded.
    pub measure_from: Instant,
    /// Stop sending at this instant (`--duration`).
    pub until: Option<Instant>,
    /// Stop after this many measured requests in all (`--requests`).
    pub budget: Option<u64>,
    /// Measured requests handed out so far (for `budget`).
    pub issued: AtomicU64,
    /// Requests completed so far, warm-up included (for the progress bar).
    pub done: Arc<AtomicU64>,
}

/// One connection's task.
pub struct Worker {
    addr: SocketAddr,
    host: HeaderValue,
    plan: Arc<Plan>,
    rng: SmallRng,
    /// This worker's value: `value_size` characters.
    value: String,
    /// The same as a JSON string, ready to splice into request bodies.
    value_json: String,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// What the measured phase recorded.
    pub stats: Stats,
}

impl Worker {
    /// A worker for the server at `addr`, sending `Host: host`.
    pub fn new(addr: SocketAddr, host: HeaderValue, plan: Arc<Plan>, seed: u64) -> Worker {
        let mut rng = SmallRng::seed_from_u64(seed);
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let value: String = (0..plan.value_size)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        Worker {
            addr,
            host,
            plan,
            rng,
            value_json: format!("\"{value}\""),
            value,
            sender: None,
            stats: Stats::default(),
        }
    }

    /// Writes the keys `first, first + step, ...` once each, without a TTL;
    /// returns how many writes failed.
    pub async fn preload(&mut self, first: u64, step: u64) -> u64 {
        let mut errors = 0;
        let mut k = first;
        while k < self.plan.key_count {
            let req = self.request(Op::Set, k, None);
            if !matches!(self.send(Op::Set, req).await, Outcome::Ok) {
                errors += 1;
            }
            k += step;
        }
        errors
    }

    /// Sends requests until the phase ends, recording the measured ones.
    pub async fn run(mut self, phase: Arc<Phase>) -> Worker {
        loop {
            let measured = Instant::now() >= phase.measure_from;
            if measured {
                if phase.until.is_some_and(|t| Instant::now() >= t) {
                    break;
                }
                if let Some(budget) = phase.budget
                    && phase.issued.fetch_add(1, Ordering::Relaxed) >= budget
                {
                    break;
                }
            }
            let op = match phase.workload {
                Workload::Mix(mix) => mix.pick(&mut self.rng),
                Workload::Command(c) => Op::Command(c),
            };
            let key = self.plan.keys.pick(&mut self.rng);
            let ttl = (op == Op::Set
                && self.plan.ttl_share > 0.0
                && self.rng.random_bool(self.plan.ttl_share))
            .then_some(self.plan.ttl_s);
            let req = self.request(op, key, ttl);
            let started = Instant::now();
            let outcome = self.send(op, req).await;
            if measured {
                self.stats.record(op, outcome, started.elapsed());
            }
            phase.done.fetch_add(1, Ordering::Relaxed);
        }
        self
    }

    fn request(&mut self, op: Op, key: u64, ttl: Option<u64>) -> Request<Full<Bytes>> {
        let mut builder = Request::builder().header(HOST, self.host.clone());
        if let Some(auth) = &self.plan.authorization {
            builder = builder.header(hyper::header::AUTHORIZATION, auth.clone());
        }
        let path = || format!("/data/{}{key}", self.plan.key_prefix_path);
        let req = match op {
            Op::Get => builder
                .method(Method::GET)
                .uri(path())
                .body(Full::default()),
            Op::Del => builder
                .method(Method::DELETE)
                .uri(path())
                .body(Full::default()),
            Op::Command(c) => {
                // Members, fields and scores are drawn uniformly from as
                // many values as keys, as redis-benchmark's `__rand_int__`.
                let member = self.rng.random_range(0..self.plan.key_count);
                let score = self.rng.random_range(0..self.plan.key_count);
                let body = c.body(&self.plan.key_prefix, key, member, score, &self.value);
                builder
                    .method(Method::POST)
                    .uri("/")
                    .header(CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body)))
            }
            Op::Set => {
                let key_json = serde_json::to_string(&format!("{}{key}", self.plan.key_prefix))
                    .expect("a string serialises");
                let body = match ttl {
                    Some(t) => format!(
                        "{{\"key\":{key_json},\"value\":{},\"ttl\":{t}}}",
                        self.value_json
                    ),
                    None => format!("{{\"key\":{key_json},\"value\":{}}}", self.value_json),
                };
                builder
                    .method(Method::POST)
                    .uri("/data")
                    .header(CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body)))
            }
        };
        req.expect("a valid request")
    }

    /// Sends one request on this worker's connection, connecting first if
    /// there is none, and reads the whole answer.
    async fn send(&mut self, op: Op, req: Request<Full<Bytes>>) -> Outcome {
        let timeout = self.plan.timeout;
        let sender = match self.ready_sender().await {
            Ok(s) => s,
            Err(kind) => {
                // Do not spin on a server that refuses connections.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Outcome::Error(kind);
            }
        };
        let exchange = async {
            let resp = sender.send_request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok((status, body))) => classify(op, status, &body),
            Ok(Err(_)) => {
                self.sender = None;
                Outcome::Error(ErrorKind::Io)
            }
            Err(_) => {
                // The answer may still arrive; the connection is no use now.
                self.sender = None;
                Outcome::Error(ErrorKind::Timeout)
            }
        }
    }

    /// The connection, ready for a request. A connection the server closed
    /// between requests (keep-alive limit, idle timeout) is replaced without
    /// counting an error: no request was lost on it.
    async fn ready_sender(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, ErrorKind> {
        if let Some(s) = &mut self.sender
            && s.ready().await.is_err()
        {
            self.sender = None;
        }
        if self.sender.is_none() {
            let connect = async {
                let stream = TcpStream::connect(self.addr).await.ok()?;
                stream.set_nodelay(true).ok()?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .ok()?;
                tokio::spawn(async move {
                    // Ends when the sender is dropped or the peer closes.
                    let _ = conn.await;
                });
                Some(sender)
            };
            let sender = tokio::time::timeout(self.plan.timeout, connect)
                .await
                .ok()
                .flatten()
                .ok_or(ErrorKind::Connect)?;
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("connected above"))
    }
}

fn classify(op: Op, status: StatusCode, body: &[u8]) -> Outcome {
    if status.is_success() {
        if op == Op::Command(Command::Get) && is_nil(body) {
            Outcome::Miss
        } else {
            Outcome::Ok
        }
    } else if status == StatusCode::NOT_FOUND && matches!(op, Op::Get | Op::Del) {
        Outcome::Miss
    } else {
        Outcome::Error(ErrorKind::Http(status.as_u16()))
    }
}

/// Whether a command's answer is `{"result": null}`.
fn is_nil(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Answer {
        result: serde_json::Value,
    }
    serde_json::from_slice::<Answer>(body).is_ok_and(|a| a.result.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_404_is_a_miss_for_reads_and_deletes_only() {
        assert_eq!(classify(Op::Get, StatusCode::NOT_FOUND, b""), Outcome::Miss);
        assert_eq!(classify(Op::Del, StatusCode::NOT_FOUND, b""), Outcome::Miss);
        assert_eq!(
            classify(Op::Set, StatusCode::NOT_FOUND, b""),
            Outcome::Error(ErrorKind::Http(404))
        );
        assert_eq!(classify(Op::Get, StatusCode::OK, b""), Outcome::Ok);
        assert_eq!(
            classify(Op::Get, StatusCode::SERVICE_UNAVAILABLE, b""),
            Outcome::Error(ErrorKind::Http(503))
        );
    }

    #[test]
    fn a_nil_answer_is_a_miss_for_the_get_command_only() {
        let get = Op::Command(Command::Get);
        let nil = br#"{"result":null}"#;
        assert_eq!(classify(get, StatusCode::OK, nil), Outcome::Miss);
        assert_eq!(
            classify(get, StatusCode::OK, br#"{"result":"v"}"#),
            Outcome::Ok
        );
        assert_eq!(
            classify(Op::Command(Command::Incr), StatusCode::OK, nil),
            Outcome::Ok
        );
        assert_eq!(
            classify(get, StatusCode::BAD_REQUEST, br#"{"error":"WRONGTYPE"}"#),
            Outcome::Error(ErrorKind::Http(400))
        );
    }
}
