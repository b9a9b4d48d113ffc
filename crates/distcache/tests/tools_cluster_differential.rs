//! Differential test over a real cluster: random command sequences (the
//! generator of `crates/core/tests/tools_redis_differential.rs`) sent to a
//! real `redis-server` (RESP2) and to distcache through `POST /` on a
//! master picked at random (2 masters, 3 auxiliaries, `REPLICAS=2`), every
//! reply compared in the JSON shapes of Upstash's convention (the table in
//! `distcache_core::command::reply`): Redis's RESP2 reply is mapped to
//! JSON the same way, then both are normalised as the single-node
//! differential does (unordered output sorted, random picks by shape with
//! the set resynchronised after SPOP, SCAN walked to the end, relative
//! TTLs within a tolerance). MULTI blocks go to `POST /multi-exec`.
//!
//! Keys: most carry one hash tag (`{t}a`), so that every command over
//! several keys can run where its keys are; commands that may be split
//! across nodes (MGET, MSET, DEL, UNLINK, EXISTS, TOUCH, and the reads
//! SINTER, SUNION, SDIFF, SINTERCARD, ZUNION, ZINTER, ZDIFF, ZINTERCARD)
//! now and then get keys without a tag
//! (placed by their name, on other nodes). Commands whose atomicity spans
//! keys (RENAME, SMOVE, LMOVE, MSETNX, the STORE variants...) and MULTI
//! blocks only ever get tagged keys: over keys on different nodes they are
//! refused with `CROSSSLOT`, as Redis Cluster refuses them.
//!
//! Set `DIFF_SEED=n` to replay one seed; a failure prints the seed and the
//! commands that led to it.

mod common;
#[path = "../../core/tests/support/coverage.rs"]
mod coverage;
#[path = "../../core/tests/support/edge_cases.rs"]
mod edge_cases;
#[path = "../../core/tests/support/gen.rs"]
mod generator;
#[path = "../../core/tests/support/resp.rs"]
#[allow(dead_code)]
mod resp;

use common::{Cluster, Spec};
use coverage::{Coverage, seeds};
use distcache_core::command::table::{self, flags};
use generator::Gen;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use resp::{Client, Frame, RedisServer};
use serde_json::{Value, json};

/// The hash tag most keys carry.
const TAG: &str = "{t}";
/// Share of keys without a tag in commands that may split across nodes.
const UNTAGGED_SHARE: f64 = 0.3;
/// Commands the masters split or gather across nodes (see
/// `crates/server/src/master/commands/mod.rs`); any other command over
/// several keys needs them on one node.
const SPLIT_OR_GATHERED: &[&str] = &[
    "mget",
    "mset",
    "del",
    "unlink",
    "exists",
    "touch",
    "sinter",
    "sunion",
    "sdiff",
    "sintercard",
    "zunion",
    "zinter",
    "zdiff",
    "zintercard",
];

/// A RESP2 reply as `POST /` would answer it: `{"result": ...}` or
/// `{"error": "..."}` (errors inside an array are strings).
fn answer_of(frame: Frame) -> Value {
    match frame {
        Frame::Error(e) => json!({ "error": e }),
        other => json!({ "result": value_of(other) }),
    }
}

fn value_of(frame: Frame) -> Value {
    match frame {
        Frame::Simple(s) | Frame::Error(s) | Frame::Double(s) => Value::String(s),
        Frame::Int(n) => json!(n),
        Frame::Bulk(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
        Frame::NullBulk | Frame::NullArray | Frame::Null => Value::Null,
        Frame::Bool(b) => json!(u8::from(b)),
        Frame::Array(v) | Frame::Set(v) | Frame::Push(v) => {
            Value::Array(v.into_iter().map(value_of).collect())
        }
        Frame::Map(pairs) => Value::Array(
            pairs
                .into_iter()
                .flat_map(|(k, v)| [value_of(k), value_of(v)])
                .collect(),
        ),
    }
}

/// An EXEC reply's elements as `/multi-exec` answers them.
fn exec_answers(frame: Frame) -> Value {
    match frame {
        Frame::Array(items) => Value::Array(items.into_iter().map(answer_of).collect()),
        other => answer_of(other),
    }
}

fn sort_values(items: &mut [Value]) {
    items.sort_by_key(|v| v.to_string());
}

/// The shape of a random reply: its kind and size.
fn shape(v: &Value) -> Value {
    match v {
        Value::Array(items) => json!(format!("array of {}", items.len())),
        Value::String(_) => json!("string"),
        other => other.clone(),
    }
}

/// SSCAN/HSCAN/ZSCAN's `[cursor, items]` with the items sorted (kept in
/// pairs for HSCAN and ZSCAN).
fn scan_items(v: Value, pairs: bool) -> Value {
    let Value::Array(mut parts) = v else { return v };
    if parts.len() != 2 {
        return Value::Array(parts);
    }
    let Value::Array(items) = parts.pop().unwrap() else {
        return Value::Array(parts);
    };
    let mut grouped: Vec<Value> = if pairs {
        items.chunks(2).map(|c| Value::Array(c.to_vec())).collect()
    } else {
        items
    };
    sort_values(&mut grouped);
    parts.push(Value::Array(grouped));
    Value::Array(parts)
}

/// An answer normalised by what the table says of the command.
fn normalise(words: &[String], answer: Value) -> Value {
    let name = words[0].to_lowercase();
    let Some(spec) = table::lookup(name.as_bytes()) else {
        return answer;
    };
    let Some(result) = answer.get("result").cloned() else {
        return answer;
    };
    let result = match name.as_str() {
        // Their IDs and counts are compared; only times are not.
        "xpending" | "xinfo" | "xclaim" | "xautoclaim" | "xadd" | "xtrim" => stream_times(result),
        "hscan" | "zscan" => scan_items(result, true),
        "sscan" => scan_items(result, false),
        // Bytes by each server's own count: whether there is a figure is
        // compared, not the figure.
        "memory" if result.is_i64() => json!("bytes"),
        "ttl" | "pttl" | "expiretime" | "pexpiretime" => match result.as_i64() {
            // Two clocks: compared within a tolerance at the top level
            // (`close_enough`), as "positive" inside EXEC.
            Some(n) if n > 0 => json!("positive"),
            _ => result,
        },
        _ if spec.has(flags::RANDOM_OUTPUT) => shape(&result),
        _ if spec.has(flags::UNORDERED_OUTPUT) => match result {
            Value::Array(mut items) => {
                sort_values(&mut items);
                Value::Array(items)
            }
            other => other,
        },
        _ => result,
    };
    json!({ "result": result })
}

/// TTLs and expiry times from two clocks (and an HTTP round trip apart on
/// a loaded machine): equal within 2 s, or 1.5 s for the millisecond forms.
/// EXEC's answer with each element normalised as the reply to its queued
/// command (`queued`, in order); an error (EXECABORT) as it is.
fn normalise_exec(queued: &[Vec<String>], answer: Value) -> Value {
    match answer {
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .zip(queued)
                .map(|(a, w)| normalise(w, a))
                .collect(),
        ),
        other => other,
    }
}

fn close_enough(name: &str, theirs: &Value, ours: &Value) -> bool {
    let slack = match name {
        "ttl" | "expiretime" => 2,
        "pttl" | "pexpiretime" => 1_500,
        _ => return false,
    };
    let n = |v: &Value| v.get("result").and_then(Value::as_i64);
    matches!((n(theirs), n(ours)), (Some(a), Some(b)) if a > 0 && b > 0 && (a - b).abs() <= slack)
}

/// A stream reply with what depends on each server's clock (idle times,
/// delivery and seen times) or on Redis's radix tree (its node count)
/// replaced by a word; maps come flat, as RESP2 writes them.
fn stream_times(v: Value) -> Value {
    let Value::Array(items) = v else { return v };
    let clocked = |k: &Value| matches!(k.as_str(), Some("idle" | "seen-time" | "radix-tree-nodes"));
    let shape: String = items
        .iter()
        .map(|i| match i {
            Value::String(_) => 's',
            Value::Number(_) => 'n',
            _ => 'o',
        })
        .collect();
    // A pending entry: [id, consumer, idle or time, count], or a
    // consumer's [id, time, count].
    let at = match shape.as_str() {
        "ssnn" => Some(2),
        "snn" => Some(1),
        _ => None,
    };
    let mut out = Vec::with_capacity(items.len());
    let mut after_clocked = false;
    for (i, item) in items.into_iter().enumerate() {
        let replaced = after_clocked || at == Some(i);
        after_clocked = clocked(&item);
        out.push(if replaced {
            json!("time")
        } else {
            stream_times(item)
        });
    }
    Value::Array(out)
}

/// A walked ZSCAN's scores as numbers (`1e+17` and `100000000000000000`
/// alike, see docs/commands.md).
fn numeric_scores(v: Value) -> Value {
    let Value::Array(items) = v else { return v };
    Value::Array(
        items
            .into_iter()
            .map(|pair| match pair {
                Value::Array(mut p) if p.len() == 2 => {
                    if let Some(score) = p[1].as_str() {
                        let n: f64 = score.parse().unwrap_or(f64::NAN);
                        p[1] = json!(format!("{n:?}"));
                    }
                    Value::Array(p)
                }
                other => other,
            })
            .collect(),
    )
}

/// How commands reach distcache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    /// `POST /` on a master picked at random, MULTI blocks as
    /// `/multi-exec`.
    Http,
    /// One RESP connection to a master, in RESP2 (`false`) or, after
    /// `HELLO 3` on both sides, RESP3 (`true`); with `pipelined`, runs of
    /// commands are sent in one write, as pipelining clients send them.
    Resp { resp3: bool, pipelined: bool },
}

struct Run {
    seed: u64,
    cluster: Cluster,
    redis: Client,
    via: Via,
    /// The RESP connection to a master, with `Via::Resp`.
    resp: Option<Client>,
    /// Stopped on drop, after the client.
    _server: RedisServer,
    /// Picks the master and the keys' tags; seeded.
    rng: StdRng,
    history: Vec<String>,
    zsets_may_be_big: bool,
    coverage: Coverage,
    compared: usize,
}

impl Run {
    /// A cluster of 2 masters and 3 auxiliaries (`REPLICAS=2`) and a
    /// redis-server, both empty.
    fn start(seed: u64) -> Run {
        Run::start_via(seed, Via::Http)
    }

    fn start_via(seed: u64, via: Via) -> Run {
        let cluster = Cluster::start(Spec {
            masters: 2,
            auxiliaries: 3,
            replicas: 2,
            resp: matches!(via, Via::Resp { .. }),
            ..Spec::default()
        });
        cluster.wait_settled(&["aux-1", "aux-2", "aux-3"]);
        let server = RedisServer::start();
        let mut redis = Client::connect(server.port).unwrap();
        let mut resp = None;
        if let Via::Resp { resp3, .. } = via {
            let port = cluster.masters[(seed % 2) as usize]
                .resp_port
                .expect("RESP is on");
            let mut ours = Client::connect(port).unwrap();
            if resp3 {
                redis.call_str(&["HELLO", "3"]);
                ours.call_str(&["HELLO", "3"]);
            }
            resp = Some(ours);
        }
        Run {
            seed,
            cluster,
            redis,
            via,
            resp,
            _server: server,
            rng: StdRng::seed_from_u64(seed ^ 0x7a95),
            history: Vec::new(),
            zsets_may_be_big: false,
            coverage: Default::default(),
            compared: 0,
        }
    }

    fn fail(&self, msg: String) -> ! {
        let tail: Vec<&str> = self
            .history
            .iter()
            .rev()
            .take(25)
            .rev()
            .map(|s| s.as_str())
            .collect();
        panic!(
            "seed {}: {msg}\nlast commands:\n{}",
            self.seed,
            tail.join("\n")
        );
    }

    /// `POST path` on a master picked at random: the JSON answer.
    fn post(&mut self, path: &str, body: Value) -> Value {
        let master = self.rng.random_range(0..self.cluster.masters.len());
        let url = self.cluster.url(master, path);
        let resp = self
            .cluster
            .http
            .post(&url)
            .json(&body)
            .send()
            .unwrap_or_else(|e| self.fail(format!("{body} to {url}: {e}")));
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        let answer: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| self.fail(format!("{body}: {status} {text}: {e}")));
        let is_error = answer.get("error").is_some();
        if is_error != (status != 200) {
            self.fail(format!("{body}: status {status} with {answer}"));
        }
        answer
    }

    fn ours(&mut self, words: &[String]) -> Value {
        match self.resp.as_mut() {
            Some(resp) => {
                let raw: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
                answer_of(resp.call(&raw))
            }
            None => self.post("/", json!(words)),
        }
    }

    fn redis(&mut self, words: &[String]) -> Frame {
        if words[0].eq_ignore_ascii_case("sort") || words[0].eq_ignore_ascii_case("sort_ro") {
            self.redis.clear_errno();
        }
        self.redis_in_block(words)
    }

    /// [`Run::redis`] for a command inside MULTI, where clearing Redis's
    /// `errno` would queue a command (the block's MULTI did it).
    fn redis_in_block(&mut self, words: &[String]) -> Frame {
        let raw: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
        self.redis.call(&raw)
    }

    /// The generator's key names with their tag: all tagged when
    /// `together`, else each untagged now and then.
    fn place_keys(&mut self, words: &mut [String], together: bool) {
        let args: Vec<bytes::Bytes> = words
            .iter()
            .map(|w| bytes::Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        let Ok(spec) = table::resolve(&args) else {
            return;
        };
        let indexes = spec.key_indexes(&args);
        let may_split = !together && SPLIT_OR_GATHERED.contains(&spec.name);
        let single = indexes.len() <= 1;
        for i in indexes {
            if (may_split || (single && !together)) && self.rng.random_bool(UNTAGGED_SHARE) {
                continue;
            }
            words[i] = format!("{TAG}{}", words[i]);
        }
    }

    /// SCAN (and HSCAN, SSCAN, ZSCAN) walked to the end on both sides,
    /// compared as sets of items.
    fn full_scan(&mut self, words: &[String], at: usize, pairs: bool) -> (Value, Value) {
        let mut sides = [Vec::new(), Vec::new()];
        for (side, out) in sides.iter_mut().enumerate() {
            let mut cursor = "0".to_owned();
            for _ in 0..1000 {
                let mut w = words.to_vec();
                w[at] = cursor.clone();
                let answer = if side == 0 {
                    let frame = self.redis(&w);
                    answer_of(frame)
                } else {
                    self.ours(&w)
                };
                let Some(Value::Array(mut parts)) = answer.get("result").cloned() else {
                    out.push(answer);
                    break;
                };
                let items = parts.pop();
                let next = parts.pop().and_then(|c| c.as_str().map(str::to_owned));
                if let Some(Value::Array(items)) = items {
                    if pairs {
                        out.extend(items.chunks(2).map(|c| Value::Array(c.to_vec())));
                    } else {
                        out.extend(items);
                    }
                }
                match next {
                    Some(next) if next != "0" => cursor = next,
                    _ => break,
                }
            }
            sort_values(out);
            out.dedup();
        }
        let [theirs, ours] = sides;
        (Value::Array(theirs), Value::Array(ours))
    }

    fn tally(&mut self, name: &str, ok: bool) {
        self.coverage.tally(name, ok);
        self.compared += 1;
    }

    fn step(&mut self, words: Vec<String>) {
        self.history.push(format!("{words:?}"));
        let name = words[0].to_lowercase();
        let scan = match name.as_str() {
            "scan" if words.len() >= 2 => Some((1, false)),
            "sscan" if words.len() >= 3 => Some((2, false)),
            "hscan" | "zscan" if words.len() >= 3 => Some((2, true)),
            _ => None,
        };
        if let Some((at, pairs)) = scan {
            let (mut theirs, mut ours) = self.full_scan(&words, at, pairs);
            if name == "zscan" && self.zsets_may_be_big {
                theirs = numeric_scores(theirs);
                ours = numeric_scores(ours);
            }
            let ok = !theirs.to_string().contains("\"error\"");
            self.tally(&name, ok);
            if theirs != ours {
                self.fail(format!("{words:?}:\n  redis: {theirs}\n  ours:  {ours}"));
            }
            return;
        }
        let frame = self.redis(&words);
        let redis_ok = !matches!(frame, Frame::Error(_));
        let ours = self.ours(&words);
        self.compare(&words, frame, ours);
        if name == "spop" && redis_ok {
            self.resync_set(&words[1]);
        }
    }

    /// Compares Redis's reply to `words` with ours.
    fn compare(&mut self, words: &[String], frame: Frame, ours: Value) {
        let name = words[0].to_lowercase();
        let redis_ok = !matches!(frame, Frame::Error(_));
        let theirs = answer_of(frame);
        self.tally(&name, redis_ok);
        let (theirs_n, ours_n) = (
            normalise(words, theirs.clone()),
            normalise(words, ours.clone()),
        );
        if theirs_n != ours_n
            && !close_enough(&name, &theirs, &ours)
            && !self.lcs_past_our_limit(words, &ours)
        {
            self.fail(format!("{words:?}:\n  redis: {theirs}\n  ours:  {ours}"));
        }
    }

    /// An LCS of strings whose table passes distcache's limit (16 MiB),
    /// refused where Redis's (512 MiB) lets it run: a documented
    /// difference. The lengths are Redis's (the two sides hold the same).
    fn lcs_past_our_limit(&mut self, words: &[String], ours: &Value) -> bool {
        if !words[0].eq_ignore_ascii_case("lcs")
            || words.len() < 3
            || !ours.to_string().contains("transient memory for LCS")
        {
            return false;
        }
        let mut len = |key: &String| match self.redis.call_str(&["STRLEN", key]) {
            Frame::Int(n) => n as u64,
            _ => 0,
        };
        let (a, b) = (len(&words[1]), len(&words[2]));
        (a + 1) * (b + 1) * 4 > distcache_core::keyspace::LCS_MAX_TABLE_BYTES
    }

    /// Commands sent in one write to each side, their replies compared in
    /// order: the master runs those bound for one auxiliary together.
    fn pipeline(&mut self, run: Vec<Vec<String>>) {
        let raw: Vec<Vec<Vec<u8>>> = run
            .iter()
            .map(|words| words.iter().map(|w| w.as_bytes().to_vec()).collect())
            .collect();
        self.history
            .push(format!("-- a pipeline of {}:", run.len()));
        self.history
            .extend(run.iter().map(|words| format!("{words:?}")));
        let commands: Vec<&[Vec<u8>]> = raw.iter().map(Vec::as_slice).collect();
        self.redis.clear_errno_before_sort(&commands);
        let theirs = self.redis.pipeline(&raw);
        let ours = self
            .resp
            .as_mut()
            .expect("pipelines go over RESP")
            .pipeline(&raw);
        for ((words, frame), ours) in run.iter().zip(theirs).zip(ours) {
            self.compare(words, frame, answer_of(ours));
        }
    }

    /// SPOP picks at random on each side: Redis's set is made to hold what
    /// ours kept (members and expiry).
    fn resync_set(&mut self, key: &str) {
        let members = self.ours(&["SMEMBERS".into(), key.into()]);
        let expiry = self.ours(&["PEXPIRETIME".into(), key.into()]);
        self.redis.call_str(&["DEL", key]);
        let Some(Value::Array(members)) = members.get("result").cloned() else {
            return;
        };
        if members.is_empty() {
            return;
        }
        let mut sadd = vec!["SADD".to_owned(), key.to_owned()];
        sadd.extend(members.iter().filter_map(|m| m.as_str().map(str::to_owned)));
        self.redis(&sadd);
        if let Some(at) = expiry.get("result").and_then(Value::as_i64)
            && at > 0
        {
            self.redis.call_str(&["PEXPIREAT", key, &at.to_string()]);
        }
    }

    /// A MULTI block: to Redis command by command, to distcache as one
    /// `POST /multi-exec` (a block ending in DISCARD, or empty, is not sent; a nested
    /// MULTI, refused by Redis without aborting, is left out of the body).
    fn transaction(&mut self, block: Vec<Vec<String>>) {
        if self.via != Via::Http {
            return self.transaction_over_resp(block);
        }
        self.history.push(format!("{block:?}"));
        self.redis.clear_errno();
        let mut body = Vec::new();
        let mut queued = Vec::new();
        let mut last = Frame::Null;
        for words in &block {
            last = self.redis_in_block(words);
            let name = words[0].to_lowercase();
            if !matches!(name.as_str(), "multi" | "exec" | "discard") {
                body.push(words.clone());
                queued.push(words.clone());
            }
        }
        let ended = block.last().map(|w| w[0].to_lowercase());
        self.tally("multi", true);
        // An empty body is refused by the front end (nothing to run), not
        // a transaction: not sent.
        if ended.as_deref() != Some("exec") || body.is_empty() {
            return;
        }
        let theirs = exec_answers(last);
        let ours = self.post("/multi-exec", json!(body));
        let (theirs_n, ours_n) = (
            normalise_exec(&queued, theirs.clone()),
            normalise_exec(&queued, ours.clone()),
        );
        // An EXECABORT says which command was refused, after Redis's words.
        let same_abort = match (theirs.get("error"), ours.get("error")) {
            (Some(Value::String(t)), Some(Value::String(o))) => o.starts_with(t.as_str()),
            _ => false,
        };
        if theirs_n != ours_n && !same_abort {
            self.fail(format!(
                "MULTI block {body:?}:\n  redis: {theirs}\n  ours:  {ours}"
            ));
        }
    }
}

impl Run {
    /// A MULTI block over RESP: every command to both sides on their
    /// connections, every reply compared (QUEUED, queue-time errors,
    /// EXECABORT, EXEC's array element by element).
    fn transaction_over_resp(&mut self, block: Vec<Vec<String>>) {
        self.history.push(format!("{block:?}"));
        self.redis.clear_errno();
        self.tally("multi", true);
        let mut queued: Vec<Vec<String>> = Vec::new();
        for words in &block {
            let theirs = self.redis_in_block(words);
            let ours = {
                let raw: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
                self.resp.as_mut().expect("a RESP connection").call(&raw)
            };
            let name = words[0].to_lowercase();
            let (theirs, ours) = if name == "exec" {
                (
                    normalise_exec(&queued, exec_answers(theirs)),
                    normalise_exec(&queued, exec_answers(ours)),
                )
            } else {
                (answer_of(theirs), answer_of(ours))
            };
            if !matches!(name.as_str(), "multi" | "exec" | "discard") {
                queued.push(words.clone());
            }
            if theirs != ours {
                self.fail(format!(
                    "{words:?} in a MULTI block:\n  redis: {theirs}\n  ours:  {ours}"
                ));
            }
        }
    }
}

/// Whether the table flags the command `random output` (kept out of
/// MULTI blocks, whose replies are compared element by element).
fn random_output(name: &str) -> bool {
    table::lookup(name.to_lowercase().as_bytes()).is_some_and(|s| s.has(flags::RANDOM_OUTPUT))
}

/// KEYS, SCAN, DBSIZE and RANDOMKEY: the commands without keys, which the
/// masters send to every auxiliary.
fn asks_every_node(name: &str) -> bool {
    table::lookup(name.to_lowercase().as_bytes()).is_some_and(|s| {
        !matches!(s.name, "multi" | "exec" | "discard") && matches!(s.keys, table::KeySpec::None)
    })
}

fn run_seed(seed: u64, commands: usize) -> Run {
    run_seed_via(seed, commands, Via::Http)
}

fn run_seed_via(seed: u64, commands: usize, via: Via) -> Run {
    let mut run = Run::start_via(seed, via);
    let mut generator = Gen::new(seed);
    generator.by_sha = true;
    let pipelined = matches!(
        via,
        Via::Resp {
            pipelined: true,
            ..
        }
    );
    // The run being gathered for one write, and how long it may grow.
    let mut pending: Vec<Vec<String>> = Vec::new();
    let mut run_length = 1;
    let mut i = 0;
    while i < commands {
        if pipelined && pending.len() >= run_length {
            run.pipeline(std::mem::take(&mut pending));
            run_length = run.rng.random_range(1..=PIPELINE_RUN_MAX);
        }
        if generator.chance(0.02) {
            if !pending.is_empty() {
                run.pipeline(std::mem::take(&mut pending));
            }
            let mut block = generator.transaction(random_output);
            for words in &mut block {
                // KEYS, SCAN and DBSIZE ask every node: refused in a
                // transaction (docs/commands.md, differences).
                if asks_every_node(&words[0]) {
                    *words = vec!["INCR".into(), "a".into()];
                }
                run.place_keys(words, true);
            }
            run.transaction(block);
            i += 5;
            continue;
        }
        let mut words = generator.command();
        run.zsets_may_be_big = generator.may_have_big_zsets();
        run.place_keys(&mut words, false);
        i += 1;
        if pipelined && compared_as_sent(&words[0]) {
            pending.push(words);
            continue;
        }
        if !pending.is_empty() {
            run.pipeline(std::mem::take(&mut pending));
        }
        run.step(words);
    }
    if !pending.is_empty() {
        run.pipeline(pending);
    }
    run
}

/// Commands in a pipelined run are this many at most (a random length).
const PIPELINE_RUN_MAX: usize = 40;

/// Whether `step` compares the reply to `name` as it comes: not a SCAN
/// walked to its end, nor an SPOP after which the sets are resynchronised.
fn compared_as_sent(name: &str) -> bool {
    !matches!(
        name.to_lowercase().as_str(),
        "scan" | "sscan" | "hscan" | "zscan" | "spop"
    )
}

#[test]
fn random_command_sequences_through_post_answer_as_redis_server_does() {
    check_seeds(seeds(1..7), |seed| run_seed(seed, 1_500));
}

/// The same sequences over the Redis protocol, on one connection to a
/// master: RESP2 for even seeds, RESP3 (after `HELLO 3` on both sides)
/// for odd ones, MULTI blocks sent as Redis takes them.
#[test]
fn random_command_sequences_over_resp_answer_as_redis_server_does() {
    check_seeds(seeds(11..15), |seed| {
        run_seed_via(
            seed,
            2_000,
            Via::Resp {
                resp3: seed % 2 == 1,
                pipelined: false,
            },
        )
    });
}

/// The same sequences pipelined: runs of 1 to 40 commands sent in one
/// write to each side (the master sends those bound for one auxiliary
/// together, in one frame; `master/commands/pipeline.rs`), with keys
/// tagged and untagged so that a run spans several auxiliaries.
#[test]
fn pipelined_command_sequences_over_resp_answer_as_redis_server_does() {
    check_seeds(seeds(21..27), |seed| {
        run_seed_via(
            seed,
            1_500,
            Via::Resp {
                resp3: seed % 2 == 1,
                pipelined: true,
            },
        )
    });
}

/// Runs `run` for every seed and checks that every command of the table
/// got at least one answer that is not an error.
fn check_seeds(seeds: Vec<u64>, run: impl Fn(u64) -> Run) {
    let mut coverage = Coverage::default();
    let mut compared = 0;
    for seed in seeds {
        let run = run(seed);
        compared += run.compared;
        coverage.merge(run.coverage);
    }
    eprintln!("{compared} replies compared");
    // FLUSHALL and FLUSHDB (admin) would keep emptying the small key space:
    // the generator leaves them out, and `tools_flushall` covers them on a
    // cluster.
    coverage.assert_every_command(1, |spec| {
        // WATCH and UNWATCH need a connection: HTTP refuses them, and
        // `tools_resp_connection_differential` compares them over RESP;
        // Pub/Sub is compared over RESP by `tools_resp_pubsub`.
        matches!(
            spec.name,
            "multi" | "exec" | "discard" | "watch" | "unwatch"
        ) || spec.has(flags::ADMIN)
            || spec.has(flags::PUBSUB)
    });
}

/// The single-node differential's hand-written edge cases, every key with
/// the one hash tag (they include RENAME, SMOVE, LMOVE and the STORE
/// variants), MULTI blocks through `/multi-exec`. EXEC or DISCARD outside
/// a block only go to Redis: over HTTP they are refused, there being no
/// session.
#[test]
fn hand_written_edge_cases_through_post_answer_as_redis_server_does() {
    let mut run = Run::start(0);
    let mut block: Option<Vec<Vec<String>>> = None;
    for mut words in edge_cases::all() {
        run.place_keys(&mut words, true);
        let name = words[0].to_lowercase();
        match (block.as_mut(), name.as_str()) {
            (None, "multi") => block = Some(vec![words]),
            (None, "exec" | "discard") => {
                run.redis(&words);
            }
            (None, _) => run.step(words),
            (Some(b), "exec" | "discard") => {
                b.push(words);
                let b = block.take().unwrap_or_default();
                run.transaction(b);
            }
            (Some(b), _) => b.push(words),
        }
    }
    assert!(block.is_none(), "the edge cases end every MULTI block");
    assert!(run.compared > 200, "{} compared", run.compared);
}

/// The same edge cases over RESP, every run between MULTI blocks in one
/// pipeline: commands that fail to parse (`SET k v EX -1`, a bad option)
/// go to their leader in a batch with the others, which answers their
/// error in its place having run nothing, as Redis does.
#[test]
fn hand_written_edge_cases_pipelined_over_resp_answer_as_redis_server_does() {
    let mut run = Run::start_via(
        0,
        Via::Resp {
            resp3: false,
            pipelined: true,
        },
    );
    let mut block: Option<Vec<Vec<String>>> = None;
    let mut pending: Vec<Vec<String>> = Vec::new();
    let flush = |run: &mut Run, pending: &mut Vec<Vec<String>>| {
        if !pending.is_empty() {
            run.pipeline(std::mem::take(pending));
        }
    };
    for mut words in edge_cases::all() {
        run.place_keys(&mut words, true);
        let name = words[0].to_lowercase();
        match (block.as_mut(), name.as_str()) {
            (None, "multi") => {
                flush(&mut run, &mut pending);
                block = Some(vec![words]);
            }
            (None, _)
                if compared_as_sent(&name) && !matches!(name.as_str(), "exec" | "discard") =>
            {
                pending.push(words)
            }
            (None, _) => {
                flush(&mut run, &mut pending);
                run.step(words);
            }
            (Some(b), "exec" | "discard") => {
                b.push(words);
                let b = block.take().unwrap_or_default();
                run.transaction(b);
            }
            (Some(b), _) => b.push(words),
        }
    }
    flush(&mut run, &mut pending);
    assert!(block.is_none(), "the edge cases end every MULTI block");
    assert!(run.compared > 200, "{} compared", run.compared);
}

/// The one deliberate difference the random run steers around: commands
/// whose atomicity spans keys answer `CROSSSLOT` over keys on different
/// nodes (and run over keys with one hash tag), as Redis Cluster does.
#[test]
fn atomic_commands_over_keys_on_different_nodes_answer_crossslot() {
    let cluster = Cluster::start(Spec {
        masters: 2,
        auxiliaries: 3,
        replicas: 2,
        ..Spec::default()
    });
    let post = |master: usize, path: &str, body: Value| -> Value {
        let resp = cluster
            .http
            .post(cluster.url(master, path))
            .json(&body)
            .send()
            .unwrap();
        resp.json().unwrap()
    };
    const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";
    // COPY from a missing key changes nothing: 0 where both keys share
    // their replicas, CROSSSLOT where they do not.
    let mut crossslot = Vec::new();
    for i in 1..30 {
        let other = format!("other{i}");
        let answer = post(i % 2, "/", json!(["COPY", "first", other]));
        if answer == json!({ "error": CROSSSLOT }) {
            crossslot.push(other.clone());
        } else {
            assert_eq!(answer, json!({"result": 0}), "COPY first {other}");
        }
        let tagged = post(
            i % 2,
            "/",
            json!(["COPY", "{x}first", format!("{{x}}{other}")]),
        );
        assert_eq!(tagged, json!({"result": 0}), "tagged keys share a node");
    }
    assert!(
        !crossslot.is_empty(),
        "29 keys, every one on the replicas of `first`?"
    );
    let apart = &crossslot[0];
    let answer = post(
        0,
        "/multi-exec",
        json!([["SET", "first", "1"], ["SET", apart, "2"]]),
    );
    assert_eq!(answer, json!({ "error": CROSSSLOT }));
    // Refused whole: neither key was written.
    assert_eq!(
        post(1, "/", json!(["MGET", "first", apart])),
        json!({"result": [null, null]})
    );
    assert_eq!(
        post(
            1,
            "/multi-exec",
            json!([["SET", "{x}first", "1"], ["INCR", "{x}first"]])
        ),
        json!([{"result": "OK"}, {"result": 2}])
    );
}

/// Where Redis's only bound is 512 MiB a string, a value here is bounded
/// by `MAX_VALUE_BYTES`: a command that would pass it answers `OOM` and
/// changes nothing, and a transaction with one is refused whole.
#[test]
fn a_value_over_max_value_bytes_is_refused_and_changes_nothing() {
    let cluster = Cluster::start(Spec {
        masters: 1,
        auxiliaries: 3,
        replicas: 2,
        master_env: vec![("MAX_VALUE_BYTES".into(), "1000".into())],
        ..Spec::default()
    });
    let post = |path: &str, body: Value| -> Value {
        let resp = cluster
            .http
            .post(cluster.url(0, path))
            .json(&body)
            .send()
            .unwrap();
        resp.json().unwrap()
    };
    const OOM: &str =
        "OOM the value would exceed MAX_VALUE_BYTES or the node's share of CACHE_MAX_BYTES";
    let long = "x".repeat(600);
    assert_eq!(
        post("/", json!(["SET", "{v}s", long])),
        json!({"result": "OK"})
    );
    assert_eq!(
        post("/", json!(["APPEND", "{v}s", long])),
        json!({ "error": OOM })
    );
    assert_eq!(
        post("/", json!(["SETRANGE", "{v}s", 5000, "y"])),
        json!({ "error": OOM })
    );
    let many: Vec<String> = (0..200).map(|i| format!("member{i}")).collect();
    let mut sadd = vec!["SADD".to_owned(), "{v}set".to_owned()];
    sadd.extend(many);
    assert_eq!(post("/", json!(sadd)), json!({ "error": OOM }));
    assert_eq!(
        post("/", json!(["STRLEN", "{v}s"])),
        json!({"result": 600}),
        "refused whole: the string is as it was"
    );
    assert_eq!(post("/", json!(["EXISTS", "{v}set"])), json!({"result": 0}));
    // In a transaction: every command answers OOM, none ran.
    assert_eq!(
        post(
            "/multi-exec",
            json!([["SET", "{v}n", "1"], ["APPEND", "{v}s", long]])
        ),
        json!([{ "error": OOM }, { "error": OOM }])
    );
    assert_eq!(post("/", json!(["GET", "{v}n"])), json!({"result": null}));
    // In a pipeline, as one by one: only the command whose value would be
    // too large is refused, even when a later one (bound for the same
    // auxiliary, so in the same batch) shrinks the value again.
    assert_eq!(
        post(
            "/pipeline",
            json!([
                ["SET", "{v}p", "a"],
                ["APPEND", "{v}p", long],
                ["APPEND", "{v}p", long],
                ["SET", "{v}p", "b"],
                ["APPEND", "{v}p", "c"],
                ["GET", "{v}p"],
                ["SETRANGE", "{v}q", 5000, "y"],
                ["DEL", "{v}q"],
            ])
        ),
        json!([
            {"result": "OK"},
            {"result": 601},
            { "error": OOM },
            {"result": "OK"},
            {"result": 2},
            {"result": "bc"},
            { "error": OOM },
            {"result": 0},
        ])
    );
}
