//! `Store::execute_plain` against `Store::execute` with the executor: two
//! stores given the same batches, one running GETs and plain SETs on the
//! stored strings where it can (and through the executor where it hands
//! a batch back), the other always through the executor, must answer the
//! same replies, versions and changes, record the same log, count the same
//! hits and misses, and hold the same keys.

use bytes::Bytes;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::command::reply::codec as reply_codec;
use crate::command::{Command, Reply, table};
use crate::keyspace::{Effect, EffectOp, Keyspace, Outcome};
use crate::mutation_log::{self, Mutation};
use crate::value::stored;

const NOW: u64 = 1_700_000_000_000;

fn store() -> Store {
    Store::new(StoreConfig {
        max_items: 100,
        max_bytes: Some(4_000),
        shards: 4,
        tombstone_grace_ms: 60_000,
    })
}

fn version(n: u64) -> Version {
    Version {
        millis: n,
        counter: 0,
        origin: 1,
    }
}

fn args(line: &str) -> Vec<Bytes> {
    line.split(' ')
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect()
}

fn parse(line: &str) -> Command {
    table::parse(&args(line)).expect("the generator writes valid commands")
}

/// Every key the lines name, each once, in order.
fn keys_of<S: AsRef<str>>(lines: &[S]) -> Vec<Bytes> {
    let mut keys: Vec<Bytes> = lines
        .iter()
        .flat_map(|line| {
            let args = args(line.as_ref());
            let spec = table::resolve(&args).expect("a known command");
            spec.key_positions(&args)
                .map(|i| args[i].clone())
                .collect::<Vec<_>>()
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// What the auxiliary's data handler runs through the executor: each
/// command in turn, the batch refused whole when a value it leaves is
/// too large or the replies pass `max_reply_bytes`.
fn run_batch(
    ks: &mut Keyspace,
    store: &Store,
    commands: &[Command],
    now: u64,
    max_value_bytes: usize,
    max_reply_bytes: usize,
) -> Option<Outcome> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut replies = Vec::new();
    let mut effects: Vec<Effect> = Vec::new();
    let mut reply_bytes = 0usize;
    for command in commands {
        let first = effects.len();
        let reply = ks.execute_into(command, now, &mut rng, &mut effects);
        let over = effects[first..].iter().any(|effect| {
            ks.get(&effect.key).is_some_and(|entry| {
                stored::stored_len(&entry.value) > max_value_bytes
                    || !store.can_hold(&effect.key, &entry.value)
            })
        });
        reply_bytes = reply_bytes.saturating_add(reply_codec::encoded_len(&reply));
        if over || reply_bytes > max_reply_bytes {
            return None;
        }
        replies.push(reply);
    }
    Some(Outcome {
        reply: Reply::Array(replies),
        effects,
    })
}

/// One batch through the executor.
fn through_executor(
    store: &Store,
    keys: &[Bytes],
    commands: &[Command],
    (at, now): (Option<Version>, u64),
    limits: (usize, usize),
    log: &mut Vec<u8>,
) -> Executed {
    store.execute(
        keys,
        at,
        now,
        limits.0,
        &|| true,
        |ks| run_batch(ks, store, commands, now, limits.0, limits.1),
        &mut |m| mutation_log::append(log, m).unwrap(),
    )
}

/// One batch both ways: on `fast` through the plain path, or the executor
/// when it hands the batch back, and on `slow` through the executor, each
/// recording into its log; a write (any command but GET) runs at `at`.
fn both_ways(
    (fast, fast_log): (&Store, &mut Vec<u8>),
    (slow, slow_log): (&Store, &mut Vec<u8>),
    lines: &[String],
    (at, now): (Version, u64),
    limits: (usize, usize),
) -> (Executed, Executed) {
    let commands: Vec<Command> = lines.iter().map(|l| parse(l)).collect();
    let write = commands.iter().any(|c| !matches!(c, Command::Get { .. }));
    let at = write.then_some(at);
    let keys = keys_of(lines);
    let plain: Option<Vec<Plain<'_>>> = commands.iter().map(Plain::of).collect();
    let ran = plain.and_then(|plain| {
        fast.execute_plain(
            &keys,
            &plain,
            at,
            now,
            limits.0,
            limits.1,
            true,
            &|| true,
            &mut |m| mutation_log::append(fast_log, m).unwrap(),
        )
    });
    let fast_executed = match ran {
        Some(executed) => executed,
        None => through_executor(fast, &keys, &commands, (at, now), limits, fast_log),
    };
    let slow_executed = through_executor(slow, &keys, &commands, (at, now), limits, slow_log);
    (fast_executed, slow_executed)
}

/// What an `Executed` says, in a form that compares.
fn summary(executed: &Executed) -> String {
    match executed {
        Executed::TooLarge => "too large".to_owned(),
        Executed::Refused => "refused".to_owned(),
        Executed::WatchFailed => "watch failed".to_owned(),
        Executed::Undeclared { key } => format!("undeclared {key:?}"),
        Executed::Ran {
            version,
            reply,
            changes,
        } => {
            let changes: Vec<_> = changes
                .iter()
                .map(|c| (c.key.clone(), c.base, c.ops.clone()))
                .collect();
            format!("{version:?} {reply:?} {changes:?}")
        }
    }
}

fn contents(store: &Store, now: u64) -> Vec<(Bytes, Bytes, Option<u64>, Version)> {
    let mut out: Vec<_> = store
        .export(now)
        .into_iter()
        .map(|(k, e)| (k, e.value, e.expires_at_ms, e.version))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A batch: mostly GETs and plain SETs of a few keys, sometimes a
/// command that is not plain (a hash, an expiry, a SET with an option,
/// a delete) so that keys hold other things and batches mix.
fn batch() -> impl Strategy<Value = Vec<String>> {
    let key = prop_oneof![Just("a"), Just("b"), Just("c"), Just("d")];
    let value = prop_oneof![
        Just("x".to_owned()),
        Just(String::new()),
        Just("y".repeat(40)),
        Just("z".repeat(300)),
        Just("w".repeat(3_000)),
    ];
    let command = (0..20usize, key, value).prop_map(|(op, k, v)| match op {
        0..=7 => format!("GET {k}"),
        8..=15 => format!("SET {k} {v}"),
        16 => format!("HSET {k} f {v}"),
        17 => format!("SET {k} {v} NX"),
        18 => format!("DEL {k}"),
        _ => format!("PEXPIRE {k} 1"),
    });
    prop::collection::vec(command, 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn plain_batches_answer_record_and_hold_what_the_executor_does(
        batches in prop::collection::vec(batch(), 1..30),
        max_value_bytes in prop_oneof![Just(usize::MAX), Just(200usize), Just(3_000usize)],
        max_reply_bytes in prop_oneof![Just(usize::MAX), Just(400usize)],
    ) {
        let (fast, slow) = (store(), store());
        let (mut fast_log, mut slow_log) = (Vec::new(), Vec::new());
        let limits = (max_value_bytes, max_reply_bytes);
        for (i, lines) in batches.iter().enumerate() {
            // A millisecond a batch: what PEXPIRE 1 set expires by the next.
            let now = NOW + i as u64;
            let (fast_executed, slow_executed) = both_ways(
                (&fast, &mut fast_log),
                (&slow, &mut slow_log),
                lines,
                (version(i as u64 + 1), now),
                limits,
            );
            prop_assert_eq!(summary(&fast_executed), summary(&slow_executed), "batch {:?}", lines);
            prop_assert_eq!(contents(&fast, now), contents(&slow, now), "after {:?}", lines);
            prop_assert_eq!(&fast_log, &slow_log, "log after {:?}", lines);
            let (f, s) = (fast.stats(), slow.stats());
            prop_assert_eq!((f.hits, f.misses), (s.hits, s.misses), "after {:?}", lines);
        }
    }
}

/// The plain path is taken where it should be: a batch of GETs and SETs
/// on plain strings runs there (this test would pass vacuously if it
/// always handed batches back), and one on a hash is handed back.
#[test]
fn gets_and_sets_of_strings_run_plain_and_a_hash_is_handed_back() {
    let store = store();
    let set = parse("SET k v");
    let get = parse("GET k");
    let keys = [Bytes::from_static(b"k")];
    let plain = [Plain::of(&set).unwrap(), Plain::of(&get).unwrap()];
    let mut records = 0;
    let ran = store.execute_plain(
        &keys,
        &plain,
        Some(version(1)),
        NOW,
        usize::MAX,
        usize::MAX,
        true,
        &|| true,
        &mut |_| records += 1,
    );
    let Some(Executed::Ran {
        version: Some(at),
        reply,
        changes,
    }) = ran
    else {
        panic!("ran plain: {ran:?}");
    };
    assert_eq!(at, version(1));
    assert_eq!(
        reply,
        Reply::Array(vec![Reply::OK, Reply::Bulk(Bytes::from_static(b"v"))])
    );
    assert_eq!(records, 1);
    assert_eq!(changes.len(), 1);
    assert!(matches!(changes[0].ops[..], [EffectOp::Put { .. }]));
    assert_eq!(store.get(b"k", NOW).unwrap().value.as_ref(), b"\0v");

    // A read without a version: a SET is the executor's.
    assert!(
        store
            .execute_plain(
                &keys,
                &plain,
                None,
                NOW,
                usize::MAX,
                usize::MAX,
                true,
                &|| true,
                &mut |_| {}
            )
            .is_none()
    );
    // A key holding a hash: the executor answers WRONGTYPE.
    let hset = parse("HSET h f v");
    let hkeys = [Bytes::from_static(b"h")];
    let hset_executed = through_executor(
        &store,
        &hkeys,
        std::slice::from_ref(&hset),
        (Some(version(2)), NOW),
        (usize::MAX, usize::MAX),
        &mut Vec::new(),
    );
    assert!(matches!(hset_executed, Executed::Ran { .. }));
    let hget = parse("GET h");
    assert!(
        store
            .execute_plain(
                &hkeys,
                &[Plain::of(&hget).unwrap()],
                None,
                NOW,
                usize::MAX,
                usize::MAX,
                true,
                &|| true,
                &mut |_| {},
            )
            .is_none()
    );
    // SET with an option is not plain.
    assert_eq!(Plain::of(&parse("SET k v NX")), None);
    assert_eq!(Plain::of(&parse("SET k v EX 10")), None);
    assert_eq!(Plain::of(&parse("SET k v GET")), None);
}

/// A batch through the plain path with and without its effects, on two
/// stores: the executor runs a batch handed back on both. The second
/// answer says whether the plain path ran it.
fn with_and_without_effects(
    (shipping, shipping_log): (&Store, &mut Vec<u8>),
    (bare, bare_log): (&Store, &mut Vec<u8>),
    lines: &[String],
    (at, now): (Version, u64),
) -> (Executed, (Executed, bool)) {
    let commands: Vec<Command> = lines.iter().map(|l| parse(l)).collect();
    let at = Some(at);
    let keys = keys_of(lines);
    let limits = (usize::MAX, usize::MAX);
    let run = |store: &Store, log: &mut Vec<u8>, with_effects| {
        let plain: Option<Vec<Plain<'_>>> = commands.iter().map(Plain::of).collect();
        let ran = plain.and_then(|plain| {
            let record = &mut |m: &Mutation<'_>| mutation_log::append(log, m).unwrap();
            store.execute_plain(
                &keys,
                &plain,
                at,
                now,
                limits.0,
                limits.1,
                with_effects,
                &|| true,
                record,
            )
        });
        match ran {
            Some(executed) => (executed, true),
            None => (
                through_executor(store, &keys, &commands, (at, now), limits, log),
                false,
            ),
        }
    };
    (
        run(shipping, shipping_log, true).0,
        run(bare, bare_log, false),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Leaving the effects out changes nothing but the effects: the same
    /// replies, version, changed keys and bases, store and log.
    #[test]
    fn without_effects_the_plain_path_changes_the_same_keys_and_ships_nothing(
        batches in prop::collection::vec(batch(), 1..20),
    ) {
        let (shipping, bare) = (store(), store());
        let (mut shipping_log, mut bare_log) = (Vec::new(), Vec::new());
        for (i, lines) in batches.iter().enumerate() {
            let now = NOW + i as u64;
            let (shipped, (without, ran_plain)) = with_and_without_effects(
                (&shipping, &mut shipping_log),
                (&bare, &mut bare_log),
                lines,
                (version(i as u64 + 1), now),
            );
            let stripped = |executed: &Executed| match executed {
                Executed::Ran { version, reply, changes } => {
                    let keys: Vec<_> = changes.iter().map(|c| (c.key.clone(), c.base)).collect();
                    format!("{version:?} {reply:?} {keys:?}")
                }
                Executed::TooLarge => "too large".to_owned(),
                Executed::Refused => "refused".to_owned(),
                Executed::WatchFailed => "watch failed".to_owned(),
                Executed::Undeclared { key } => format!("undeclared {key:?}"),
            };
            prop_assert_eq!(stripped(&shipped), stripped(&without), "batch {:?}", lines);
            if let (true, Executed::Ran { changes, .. }) = (ran_plain, &without) {
                prop_assert!(changes.iter().all(|c| c.ops.is_empty()), "batch {:?}", lines);
            }
            prop_assert_eq!(contents(&shipping, now), contents(&bare, now), "after {:?}", lines);
            prop_assert_eq!(&shipping_log, &bare_log, "log after {:?}", lines);
        }
    }
}

/// A batch over more keys than a small store holds, with expiring SETs
/// and lists beside the hashes, so that writing a batch back evicts
/// (by item count and by bytes), and keys expire between batches.
fn crowded_batch() -> impl Strategy<Value = Vec<String>> {
    let key = prop::sample::select(vec!["a", "b", "c", "d", "e", "f", "g"]);
    let value = prop_oneof![
        Just("x".to_owned()),
        Just(String::new()),
        Just("y".repeat(40)),
        Just("z".repeat(150)),
        Just("w".repeat(600)),
    ];
    let command = (0..24usize, key, value).prop_map(|(op, k, v)| match op {
        0..=7 => format!("GET {k}"),
        8..=17 => format!("SET {k} {v}"),
        18 => format!("HSET {k} f {v}"),
        19 => format!("SET {k} {v} PX 2"),
        20 => format!("DEL {k}"),
        21 => format!("RPUSH {k} {v}"),
        _ => format!("PEXPIRE {k} 1"),
    });
    prop::collection::vec(command, 1..12)
}

/// What a key may be given from outside the commands between batches:
/// JSON through `/data`, a JSON string, or a plain string from a peer.
fn outside_write() -> impl Strategy<Value = Option<Bytes>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(Bytes::from_static(b"{\"a\":1}"))),
        1 => Just(Some(Bytes::from_static(b"\"s\""))),
        1 => Just(Some(Bytes::from_static(b"\0q"))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// As above, in stores small enough that write-backs evict, at
    /// versions that do not always rise (a replica's apply may have put a
    /// newer one), with values written through `/data` between batches,
    /// comparing every counter (evictions and expirations too).
    #[test]
    fn plain_batches_in_a_crowded_store_evict_and_count_what_the_executor_does(
        batches in prop::collection::vec((crowded_batch(), 1u64..40, outside_write(), 1u64..40), 1..30),
        max_value_bytes in prop_oneof![Just(usize::MAX), Just(200usize)],
        max_reply_bytes in prop_oneof![Just(usize::MAX), Just(400usize)],
        max_items in 1usize..4,
        max_bytes in prop_oneof![Just(None), Just(Some(300u64)), Just(Some(1_000u64))],
        shards in 1usize..3,
    ) {
        let config = StoreConfig { max_items, max_bytes, shards, tombstone_grace_ms: 60_000 };
        let (fast, slow) = (Store::new(config.clone()), Store::new(config));
        let (mut fast_log, mut slow_log) = (Vec::new(), Vec::new());
        let limits = (max_value_bytes, max_reply_bytes);
        for (i, (lines, at, outside, outside_at)) in batches.iter().enumerate() {
            let now = NOW + i as u64;
            if let Some(value) = outside {
                let key = ["a", "b", "c", "d"][i % 4].as_bytes();
                let entry = Entry { value: value.clone(), expires_at_ms: None, version: version(*outside_at) };
                prop_assert_eq!(fast.set(key, entry.clone(), now), slow.set(key, entry, now));
            }
            let (fast_executed, slow_executed) = both_ways(
                (&fast, &mut fast_log),
                (&slow, &mut slow_log),
                lines,
                (version(*at), now),
                limits,
            );
            prop_assert_eq!(summary(&fast_executed), summary(&slow_executed), "batch {:?}", lines);
            prop_assert_eq!(contents(&fast, now), contents(&slow, now), "after {:?}", lines);
            prop_assert_eq!(&fast_log, &slow_log, "log after {:?}", lines);
            prop_assert_eq!(fast.stats(), slow.stats(), "after {:?}", lines);
        }
    }
}
