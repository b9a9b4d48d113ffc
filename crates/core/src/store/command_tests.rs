//! Commands through the store, against the executor alone: a leader
//! running random commands with `Store::execute` holds what a plain
//! [`Keyspace`] running them holds (a refused command taken back), a
//! replica applying the shipped changes holds the same, and so does a
//! store rebuilt from the mutation log the leader recorded.

use bytes::Bytes;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::command::{Reply, table};
use crate::keyspace::{EffectOp, Keyspace, Outcome};
use crate::mutation_log;
use crate::value::{ListValue, Value, stored};

const NOW: u64 = 1_700_000_000_000;

fn argv(line: &str) -> Vec<Bytes> {
    line.split(' ')
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect()
}

fn version(n: u64) -> Version {
    Version {
        millis: n,
        counter: 0,
        origin: 1,
    }
}

fn store() -> Store {
    Store::new(StoreConfig {
        max_items: 100,
        max_bytes: None,
        shards: 4,
        tombstone_grace_ms: 60_000,
    })
}

/// Runs `line` on `ks` as a leader would, with dice seeded by `seed`.
fn run_line(ks: &mut Keyspace, line: &str, seed: u64) -> Outcome {
    let mut rng = StdRng::seed_from_u64(seed);
    match table::parse(&argv(line)) {
        Ok(command) => ks.execute(&command, NOW, &mut rng),
        Err(e) => Outcome {
            reply: Reply::Error(e),
            effects: Vec::new(),
        },
    }
}

/// Every key `line` names.
fn keys_of(args: &[Bytes]) -> Vec<Bytes> {
    let mut keys: Vec<Bytes> = table::resolve(args)
        .map(|spec| spec.key_positions(args).map(|i| args[i].clone()).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// What a store holds, decoded: key → (value, expiry).
fn contents(store: &Store) -> Vec<(Bytes, Value, Option<u64>)> {
    let mut out: Vec<_> = store
        .export(NOW)
        .into_iter()
        .map(|(k, e)| {
            let value = stored::from_stored(&e.value).expect("the store holds decodable values");
            (k, value, e.expires_at_ms)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// What a keyspace holds, in the same form.
fn model_contents(ks: &Keyspace) -> Vec<(Bytes, Value, Option<u64>)> {
    let mut out: Vec<_> = ks
        .iter()
        .map(|(k, e)| (k.clone(), e.value.clone(), e.expire_at_ms))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn line() -> impl Strategy<Value = String> {
    let k = prop_oneof![Just("a"), Just("b"), Just("c")];
    let e = prop_oneof![Just("x"), Just("yy"), Just("zzz"), Just("")];
    (0..22usize, k.clone(), k, e.clone(), e, -3i64..4).prop_map(|(op, k, k2, e1, e2, n)| match op {
        0 => format!("RPUSH {k} {e1} {e2}"),
        1 => format!("LPUSH {k} {e1}"),
        2 => format!("LPOP {k} {}", n.unsigned_abs()),
        3 => format!("RPOP {k}"),
        4 => format!("LTRIM {k} {n} {}", n + 2),
        5 => format!("LSET {k} {n} {e2}"),
        6 => format!("LINSERT {k} AFTER {e1} {e2}"),
        7 => format!("LREM {k} {n} {e1}"),
        8 => format!("HSET {k} {e1} {e2} f{n} v"),
        9 => format!("HDEL {k} {e1}"),
        10 => format!("SADD {k} {e1} {e2}"),
        11 => format!("SREM {k} {e1}"),
        12 => format!("ZADD {k} {n} {e1}"),
        13 => format!("ZREM {k} {e2}"),
        14 => format!("LMOVE {k} {k2} LEFT RIGHT"),
        15 => format!("SUNIONSTORE {k} {k2} {k}"),
        16 => format!("EXPIRE {k} {}", n + 2),
        17 => format!("PERSIST {k}"),
        18 => format!("SET {k} {e1}"),
        19 => format!("APPEND {k} {e2}"),
        20 => format!("DEL {k}"),
        _ => format!("SETRANGE {k} {} {e2}", n.unsigned_abs() * 40),
    })
}

/// The size of the stored form of every key `outcome` changed, in `ks`.
fn largest_change(ks: &Keyspace, outcome: &Outcome) -> usize {
    outcome
        .effects
        .iter()
        .filter_map(|e| ks.get(&e.key))
        .map(|e| stored::stored_len(&e.value))
        .max()
        .unwrap_or(0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn commands_through_the_store_match_the_executor_on_leader_replica_and_log(
        lines in proptest::collection::vec(line(), 1..60),
        max_value_bytes in 20usize..200,
    ) {
        let leader = store();
        let replica = store();
        let mut model = Keyspace::new();
        let mut log = mutation_log::header(1).to_vec();
        for (i, line) in lines.iter().enumerate() {
            let seed = i as u64;
            let at = version(i as u64 + 1);
            let args = argv(line);
            let keys = keys_of(&args);

            let before = model.clone();
            let expected = run_line(&mut model, line, seed);
            let refused = largest_change(&model, &expected) > max_value_bytes;
            if refused {
                model = before;
            }

            let executed = leader.execute(
                &keys,
                Some(at),
                NOW,
                max_value_bytes,
                &|| true,
                |ks| Some(run_line(ks, line, seed)),
                &mut |m| mutation_log::append(&mut log, m).unwrap(),
            );
            match executed {
                Executed::Ran { reply, changes, version: ran_at } => {
                    prop_assert!(!refused, "{} ran but should be refused", line);
                    prop_assert_eq!(&reply, &expected.reply, "{}", line);
                    // Versions only grow here, so the leader keeps the master's.
                    prop_assert_eq!(ran_at, Some(at));
                    let applied = replica.apply_changes(&changes, at, NOW, max_value_bytes, &mut |_| {});
                    prop_assert!(applied.iter().all(|a| *a == ApplyOutcome::Applied), "{:?}", applied);
                }
                Executed::TooLarge => prop_assert!(refused, "{} refused but fits", line),
                Executed::Refused => prop_assert!(false, "admitted, yet refused"),
                Executed::WatchFailed => prop_assert!(false, "nothing was watched"),
                Executed::Undeclared { key } => prop_assert!(false, "{} changed {:?}, not its key", line, key),
            }
            let held = contents(&leader);
            prop_assert_eq!(&held, &model_contents(&model), "after {}", line);
            prop_assert_eq!(&contents(&replica), &held, "replica after {}", line);
        }
        let rebuilt = store();
        let (read, counts) = mutation_log::replay(&log, &rebuilt, NOW).unwrap();
        prop_assert_eq!(read.damage, None);
        prop_assert_eq!(counts.diverged, 0);
        prop_assert_eq!(contents(&rebuilt), contents(&leader));
    }
}

/// A list of `n` elements stored under `key` at version 1.
fn long_list(store: &Store, key: &[u8], n: usize) -> Value {
    let list: ListValue = (0..n).map(|i| Bytes::from(i.to_string())).collect();
    let value = Value::List(list);
    let entry = Entry {
        value: Bytes::from(stored::to_stored(&value)),
        expires_at_ms: None,
        version: version(1),
    };
    assert_eq!(store.set(key, entry, NOW), SetOutcome::Stored);
    value
}

fn push(store: &Store, key: &[u8], at: u64, max_value_bytes: usize) -> Executed {
    let line = format!("RPUSH {} x", String::from_utf8_lossy(key));
    run_on(store, key, &line, at, max_value_bytes)
}

#[test]
fn a_collection_is_kept_decoded_and_read_back_in_its_stored_form() {
    let store = store();
    let value = long_list(&store, b"l", 1000);
    let held = store.get(b"l", NOW).unwrap();
    assert_eq!(held.value, Bytes::from(stored::to_stored(&value)));
    assert_eq!(store.peek(b"l", NOW).unwrap(), held);
    let stats = store.stats();
    assert_eq!(
        stats.bytes,
        1 + value.heap_bytes() as u64,
        "charged its heap_bytes"
    );
    let decoded: usize = (0..store.shard_count())
        .map(|s| store.lock(s).decoded_len())
        .sum();
    assert_eq!(decoded, 1);
}

#[test]
fn a_refused_push_leaves_the_list_and_its_accounting_as_they_were() {
    let store = store();
    let value = long_list(&store, b"l", 100);
    let len = stored::stored_len(&value);
    let bytes = store.stats().bytes;
    assert!(matches!(push(&store, b"l", 2, len), Executed::TooLarge));
    assert_eq!(
        store.get(b"l", NOW).unwrap().value,
        Bytes::from(stored::to_stored(&value))
    );
    assert_eq!(store.stats().bytes, bytes);
    assert!(matches!(
        push(&store, b"l", 3, len + 10),
        Executed::Ran { .. }
    ));
    assert_eq!(store.stats().bytes, bytes + 1 + 48);
}

/// `line` on one key through the store, stamped `at`, under `limit`.
fn run_on(store: &Store, key: &[u8], line: &str, at: u64, limit: usize) -> Executed {
    let line = line.to_owned();
    store.execute(
        &[Bytes::copy_from_slice(key)],
        Some(version(at)),
        NOW,
        limit,
        &|| true,
        |ks| Some(run_line(ks, &line, 0)),
        &mut |_| {},
    )
}

#[test]
fn a_stream_at_the_value_limit_is_still_read_by_its_groups_and_trimmed() {
    let store = store();
    let limit = 4_000;
    let mut at = 1;
    let mut step = |line: &str| {
        at += 1;
        run_on(&store, b"s", line, at, limit)
    };
    assert!(matches!(
        step("XGROUP CREATE s g 0 MKSTREAM"),
        Executed::Ran { .. }
    ));
    for consumer in ["c1", "c2", "c3"] {
        let created = step(&format!("XGROUP CREATECONSUMER s g {consumer}"));
        assert!(matches!(created, Executed::Ran { .. }));
    }
    // XADD until the entries pass the limit: refused, nothing changed.
    let mut added = 0;
    while matches!(
        step(&format!("XADD s {} field value-of-some-length", added + 1)),
        Executed::Ran { .. }
    ) {
        added += 1;
    }
    assert!(added > 10, "{added} entries under {limit} bytes");
    // Reading grows the group's pending list past the limit: never
    // refused, as Redis never refuses XREADGROUP for memory (its consumers
    // were made before).
    for consumer in ["c1", "c2", "c3"] {
        let read = step(&format!(
            "XREADGROUP GROUP g {consumer} COUNT 100 STREAMS s >"
        ));
        assert!(matches!(read, Executed::Ran { .. }), "{consumer}");
    }
    assert!(matches!(
        step("XCLAIM s g c1 0 1-0 2-0"),
        Executed::Ran { .. }
    ));
    // What writes add counts: new consumers fill what the entries left
    // under the limit, then are refused.
    let made = (4..100)
        .take_while(|n| {
            matches!(
                step(&format!("XGROUP CREATECONSUMER s g c{n}")),
                Executed::Ran { .. }
            )
        })
        .count();
    assert!(made < 90, "{made} consumers past the limit");
    assert!(matches!(step("XACK s g 1-0 2-0 3-0"), Executed::Ran { .. }));
    let value = store.get(b"s", NOW).unwrap().value;
    assert!(
        value.len() > limit,
        "the stored stream is {} bytes",
        value.len()
    );
    // Trimmed, it takes entries again.
    assert!(matches!(step("XTRIM s MAXLEN 2"), Executed::Ran { .. }));
    assert!(matches!(step("XADD s 999 f v"), Executed::Ran { .. }));
}

#[test]
fn a_command_that_panics_leaves_the_values_it_borrowed_as_they_were() {
    let store = store();
    let value = long_list(&store, b"l", 100);
    let bytes = store.stats().bytes;
    for version_given in [Some(version(2)), None] {
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.execute(
                &[Bytes::from_static(b"l")],
                version_given,
                NOW,
                usize::MAX,
                &|| true,
                |ks| {
                    if version_given.is_some() {
                        run_line(ks, "RPUSH l x", 0);
                    }
                    panic!("a bug in the executor")
                },
                &mut |_| {},
            )
        }));
        assert!(panicked.is_err());
        assert_list_untouched(&store, &value, bytes);
    }
    assert_still_serves(&store);
}

/// The list at `l` still holds `value` at version 1, and the store its
/// `bytes`: a command taken back left nothing behind.
fn assert_list_untouched(store: &Store, value: &Value, bytes: u64) {
    let held = store.get(b"l", NOW).unwrap();
    assert_eq!(held.value, Bytes::from(stored::to_stored(value)));
    assert_eq!(held.version, version(1));
    assert_eq!(store.stats().bytes, bytes);
}

/// The shard of `l` still serves commands.
fn assert_still_serves(store: &Store) {
    assert!(matches!(
        push(store, b"l", 3, usize::MAX),
        Executed::Ran { .. }
    ));
}

/// A command that changes a key it did not name (its key finder and its
/// executor disagree: a bug) is refused whole instead of writing a key
/// whose shard may not be locked: the keys it named are as they were, the
/// stray key is not written, nothing is logged, and the store goes on.
#[test]
fn a_command_that_changes_a_key_it_did_not_name_is_refused_and_changes_nothing() {
    let store = store();
    let value = long_list(&store, b"l", 10);
    let bytes = store.stats().bytes;
    // Enough stray keys that some fall in shards other than `l`'s.
    for stray in 0..64 {
        let line = format!("RPUSH l x\nSET stray{stray} v");
        let mut records = 0;
        let executed = store.execute(
            &[Bytes::from_static(b"l")],
            Some(version(2)),
            NOW,
            usize::MAX,
            &|| true,
            |ks| {
                let mut outcome = run_line(ks, "RPUSH l x", 0);
                outcome
                    .effects
                    .extend(run_line(ks, &format!("SET stray{stray} v"), 0).effects);
                Some(outcome)
            },
            &mut |_| records += 1,
        );
        match executed {
            Executed::Undeclared { key } => assert_eq!(key, format!("stray{stray}"), "{line}"),
            other => panic!("{line}: {other:?}"),
        }
        assert_eq!(records, 0, "nothing logged");
        assert!(store.get(format!("stray{stray}").as_bytes(), NOW).is_none());
        assert_list_untouched(&store, &value, bytes);
    }
    assert_still_serves(&store);
}

#[test]
fn changes_that_do_not_fit_a_replica_leave_its_value_as_it_was() {
    let store = store();
    let value = long_list(&store, b"l", 10);
    let changes = [KeyChanges {
        key: Bytes::from_static(b"l"),
        base: Some(version(1)),
        ops: vec![
            EffectOp::Pop {
                front: true,
                count: 3,
            },
            EffectOp::SetAdd(vec![Bytes::from_static(b"m")]),
        ],
    }];
    let applied = store.apply_changes(&changes, version(2), NOW, usize::MAX, &mut |_| {});
    assert_eq!(applied, [ApplyOutcome::Diverged]);
    let held = store.get(b"l", NOW).unwrap();
    assert_eq!(held.value, Bytes::from(stored::to_stored(&value)));
    assert_eq!(held.version, version(1));
}

#[test]
fn a_collection_goes_whole_when_evicted_expired_deleted_or_overwritten() {
    let store = Store::new(StoreConfig {
        max_items: 2,
        max_bytes: None,
        shards: 1,
        tombstone_grace_ms: 0,
    });
    let decoded = || store.lock(0).decoded_len();
    long_list(&store, b"a", 10);
    long_list(&store, b"b", 10);
    assert_eq!(decoded(), 2);
    // Evicted by a third key, a plain one, which reuses the slot.
    store.set(
        b"c",
        Entry {
            value: Bytes::from_static(b"1"),
            expires_at_ms: None,
            version: version(1),
        },
        NOW,
    );
    assert_eq!(decoded(), 1);
    assert_eq!(
        store.get(b"c", NOW).unwrap().value,
        Bytes::from_static(b"1")
    );
    // Overwritten by a string.
    store.set(
        b"b",
        Entry {
            value: Bytes::from_static(b"2"),
            expires_at_ms: None,
            version: version(2),
        },
        NOW,
    );
    assert_eq!(decoded(), 0);
    // Expired, then purged; deleted.
    let list = Value::List((0..3).map(|i| Bytes::from(vec![i])).collect());
    let expiring = Entry {
        value: Bytes::from(stored::to_stored(&list)),
        expires_at_ms: Some(NOW + 10),
        version: version(3),
    };
    store.set(b"b", expiring.clone(), NOW);
    assert_eq!(decoded(), 1);
    assert_eq!(store.purge_expired(NOW + 10, 10), 1);
    assert_eq!(decoded(), 0);
    store.set(
        b"c",
        Entry {
            version: version(4),
            ..expiring
        },
        NOW,
    );
    assert_eq!(decoded(), 1);
    store.delete(b"c", version(5), NOW);
    assert_eq!(decoded(), 0);
    assert_eq!(store.stats().bytes, 0);
}

#[test]
fn collections_count_their_heap_bytes_against_the_byte_limit_and_are_evicted_whole() {
    let store = Store::new(StoreConfig {
        max_items: 100,
        max_bytes: Some(2_000),
        shards: 1,
        tombstone_grace_ms: 0,
    });
    let small = long_list(&store, b"a", 10);
    assert_eq!(store.stats().bytes, 1 + small.heap_bytes() as u64);
    // 35 elements of about 50 bytes each fill the limit: `a` goes.
    let big = long_list(&store, b"b", 35);
    assert!(big.heap_bytes() + small.heap_bytes() > 2_000);
    assert!(store.get(b"a", NOW).is_none());
    assert_eq!(store.stats().evictions, 1);
    // A push that would take the list past the shard's bytes is refused.
    let mut pushed = 0;
    while let Executed::Ran { .. } = push(&store, b"b", 10 + pushed, usize::MAX) {
        pushed += 1;
    }
    assert!(store.stats().bytes <= 2_000);
    assert_eq!(store.stats().items, 1);
}

#[test]
fn a_command_stamped_below_what_its_key_holds_runs_just_above_it() {
    let store = store();
    let Executed::Ran { version: first, .. } = push(&store, b"l", 10, usize::MAX) else {
        panic!("the first push runs");
    };
    assert_eq!(first, Some(version(10)));
    // A master whose clock is behind: the leader orders the push after the
    // one it holds instead of refusing it.
    let Executed::Ran {
        version: second, ..
    } = push(&store, b"l", 3, usize::MAX)
    else {
        panic!("a push stamped below the key's version still runs");
    };
    let second = second.expect("a write has a version");
    assert!(second > version(10), "{second} above the held version");
    assert_eq!(second.millis, 10);
    assert_eq!(store.get(b"l", NOW).unwrap().version, second);
    // A delete's tombstone counts as held too.
    assert_eq!(
        store.delete(b"l", version(20), NOW),
        crate::store::DeleteOutcome::Deleted
    );
    let Executed::Ran { version: third, .. } = push(&store, b"l", 4, usize::MAX) else {
        panic!("a push after a delete runs");
    };
    assert!(third.expect("a version") > version(20));
}

/// Review finding: a key that has just expired at the leader but not yet
/// at a replica (the replica's clock is a few milliseconds behind, or the
/// leader's sweep ran first) while its version is above the master's stamp
/// (written through a master whose clock is ahead). The leader runs INCR
/// over an absent key at the master's stamp, below the expired item's
/// version; the replica, still holding the old value live at that higher
/// version, answered `Stale`: "a newer operation got here first", which
/// the master counts as replicated and repairs nothing. The leader holds
/// the acknowledged INCR, the replica the old value until it expires
/// there, then nothing: lose the leader and the INCR is gone.
///
/// The leader must stamp above the version of the item it found expired,
/// so that the replica sees a base it does not hold (`Diverged`) and is
/// repaired with the leader's whole value.
#[test]
fn a_command_over_a_key_that_just_expired_is_stamped_above_the_expired_version() {
    command_over_a_key_that_just_expired(false);
}

/// The same, when the leader's expiry sweep removed the item before the
/// command came.
#[test]
fn a_command_over_a_key_swept_as_expired_is_stamped_above_its_version() {
    command_over_a_key_that_just_expired(true);
}

fn command_over_a_key_that_just_expired(swept: bool) {
    command_over_a_key_that_expired_before(|leader, leader_now| {
        if swept {
            assert_eq!(leader.purge_expired(leader_now, 100), 1);
        }
        leader
    });
}

/// What the leader went through between the write of `n` (at `NOW`,
/// expiring at `NOW + 1 s`, version `NOW + 5 s`) and the INCR at
/// `NOW + 1 s + 1 ms`: it gets the leader and the time of the INCR,
/// and gives the leader that runs it.
fn command_over_a_key_that_expired_before(went_through: impl FnOnce(Store, u64) -> Store) {
    let leader = store();
    let replica = store();
    let expires = NOW + 1_000;
    // Written through a master whose clock runs ahead: version NOW + 5 s.
    let old = Entry {
        value: Bytes::from(stored::plain_string(b"41")),
        expires_at_ms: Some(expires),
        version: version(NOW + 5_000),
    };
    for s in [&leader, &replica] {
        assert_eq!(s.set(b"n", old.clone(), NOW), SetOutcome::Stored);
    }
    // At the leader the key has expired; a master whose clock is right
    // stamps INCR at its own time, below the expired item's version.
    let leader_now = expires + 1;
    let leader = went_through(leader, leader_now);
    let args = argv("INCR n");
    let executed = leader.execute(
        &keys_of(&args),
        Some(version(leader_now)),
        leader_now,
        usize::MAX,
        &|| true,
        |ks| {
            let command = table::parse(&args).unwrap();
            Some(ks.execute(&command, leader_now, &mut StdRng::seed_from_u64(0)))
        },
        &mut |_| {},
    );
    let Executed::Ran {
        version: Some(at),
        reply,
        changes,
    } = executed
    else {
        panic!("INCR runs");
    };
    assert_eq!(reply, Reply::Integer(1));
    // The replica's clock is 2 ms behind: the old value is still live there.
    let replica_now = expires - 1;
    let applied = replica.apply_changes(&changes, at, replica_now, usize::MAX, &mut |_| {});
    assert_ne!(
        applied,
        vec![ApplyOutcome::Stale {
            held: version(NOW + 5_000)
        }],
        "the replica must not report the leader's acknowledged INCR as superseded \
         by a value the leader has already seen expire (INCR stamped at {at})"
    );
    assert_eq!(applied, vec![ApplyOutcome::Diverged], "so it is repaired");
    assert!(at > version(NOW + 5_000), "{at}");
}

/// The snapshot a restart loads: the store encoded at `at`, then
/// restored into a fresh store at `now` (what `auxiliary/snapshot.rs`
/// does, without the file).
fn restarted_from_snapshot(leader: &Store, at: u64, now: u64) -> Store {
    let encoded = crate::snapshot::encode_store(leader, at);
    let origin = crate::snapshot::Origin {
        node_id: "aux-1",
        created_at_ms: at,
        shard_count: leader.shard_count() as u32,
        log_generation: 0,
    };
    let (bytes, _) = crate::snapshot::write_encoded(Vec::new(), origin, &encoded).unwrap();
    let restarted = store();
    crate::snapshot::restore_bytes(&bytes, &restarted, now).unwrap();
    restarted
}

/// The expired item's version survives a restart from a snapshot taken
/// after the item was reclaimed: the snapshot carries the shard's highest
/// expired item as an expired entry, which raises the floor again.
#[test]
fn after_a_restart_a_command_over_a_key_reclaimed_before_the_snapshot_is_stamped_above_it() {
    command_over_a_key_that_expired_before(|leader, now| {
        assert_eq!(leader.purge_expired(now, 100), 1);
        restarted_from_snapshot(&leader, now, now)
    });
}

/// ... and from a snapshot taken while the item was live, which the
/// restart finds expired.
#[test]
fn after_a_restart_a_command_over_a_key_that_expired_since_the_snapshot_is_stamped_above_it() {
    command_over_a_key_that_expired_before(|leader, now| {
        restarted_from_snapshot(&leader, NOW, now)
    });
}

/// ... and through two restarts: the restored floor is in the next
/// snapshot too.
#[test]
fn the_expired_floor_survives_a_second_restart() {
    command_over_a_key_that_expired_before(|leader, now| {
        let once = restarted_from_snapshot(&leader, NOW, now);
        restarted_from_snapshot(&once, now, now)
    });
}

/// ... and through a restart that replays the write from the mutation
/// log: the replayed write arrives expired.
#[test]
fn after_a_replay_of_the_log_a_command_over_a_key_that_expired_is_stamped_above_it() {
    command_over_a_key_that_expired_before(|leader, now| {
        let mut log = mutation_log::header(1).to_vec();
        leader.for_each_in_shard(leader.shard_for(b"n"), NOW, |key, entry| {
            mutation_log::append(&mut log, &mutation_log::Mutation::Set { key, entry }).unwrap();
        });
        let replayed = store();
        mutation_log::replay(&log, &replayed, now).unwrap();
        replayed
    });
}

#[test]
fn flush_all_deletes_every_key_above_its_version_and_nothing_older_brings_it_back() {
    let store = store();
    let mut written = Vec::new();
    for (i, line) in [
        "SET s v",
        "HSET h f v",
        "RPUSH l a b",
        "SADD t a",
        "ZADD z 1 a",
    ]
    .into_iter()
    .enumerate()
    {
        let args = argv(line);
        let executed = store.execute(
            &keys_of(&args),
            Some(version(1_000 + i as u64)),
            NOW,
            usize::MAX,
            &|| true,
            |ks| Some(run_line(ks, line, 0)),
            &mut |_| {},
        );
        assert!(matches!(executed, Executed::Ran { .. }));
        let key = args[1].clone();
        written.push((key.clone(), store.get(&key, NOW).unwrap()));
    }
    let mut recorded = Vec::new();
    let deleted = store.flush_all(version(5), NOW, &mut |m| {
        if let mutation_log::Mutation::Delete { key, version } = m {
            recorded.push((Bytes::copy_from_slice(key), *version));
        }
    });
    assert_eq!(deleted, 5);
    assert!(store.is_empty());
    assert_eq!(recorded.len(), 5);
    for (key, entry) in &written {
        let Lookup::Deleted(at) = store.lookup(key, NOW) else {
            panic!("{key:?} is not a tombstone")
        };
        assert!(at > entry.version, "{key:?} deleted at {at:?}");
        assert!(matches!(
            store.set(key, entry.clone(), NOW),
            SetOutcome::Stale { .. }
        ));
    }
    // The log's deletes, replayed over the old copies, win too.
    let replayed = store_with(&written);
    for (key, version) in &recorded {
        let m = mutation_log::Mutation::Delete {
            key,
            version: *version,
        };
        m.apply(&replayed, NOW);
    }
    assert!(replayed.is_empty());
    assert_eq!(store.flush_all(version(6), NOW, &mut |_| {}), 0);
}

fn store_with(entries: &[(Bytes, Entry)]) -> Store {
    let s = store();
    for (key, entry) in entries {
        s.set(key, entry.clone(), NOW);
    }
    s
}

/// A batch whose admission check fails once its keys are locked (the
/// auxiliary's epoch fence moved past the request meanwhile) reads and
/// changes nothing, on the executor's path and on the plain one, and the
/// check is asked after the locks are taken, not before.
#[test]
fn a_batch_refused_once_its_keys_are_locked_changes_nothing() {
    let store = store();
    let k = Bytes::from_static(b"k");
    let set = |value: &'static str| Entry {
        value: Bytes::from(stored::to_stored(&Value::string(value.as_bytes().to_vec()))),
        expires_at_ms: None,
        version: version(1),
    };
    store.set(&k, set("1"), NOW);
    let before = store.stats();
    // Asked with the key's shard held: another thread cannot take it.
    let locked_when_asked = || {
        let shard = shard_index(hash_key(&k), store.shard_count());
        store.shards[shard].try_lock().is_err()
    };
    let refuse = || {
        assert!(locked_when_asked(), "asked before the keys were locked");
        false
    };
    let mut records = 0;
    let executed = store.execute(
        std::slice::from_ref(&k),
        Some(version(5)),
        NOW,
        usize::MAX,
        &refuse,
        |ks| Some(run_line(ks, "INCR k", 0)),
        &mut |_| records += 1,
    );
    assert!(matches!(executed, Executed::Refused));
    let command = table::parse(&argv("SET k 2")).unwrap();
    let plain = [Plain::of(&command).unwrap()];
    let executed = store.execute_plain(
        std::slice::from_ref(&k),
        &plain,
        Some(version(6)),
        NOW,
        usize::MAX,
        usize::MAX,
        true,
        &refuse,
        &mut |_| records += 1,
    );
    assert!(matches!(executed, Some(Executed::Refused)));
    assert_eq!(records, 0, "nothing logged");
    assert_eq!(store.stats(), before, "nothing counted");
    let held = store.peek(b"k", NOW).expect("still there");
    assert_eq!(held.version, version(1));
    assert_eq!(held.value, set("1").value);
}

/// Runs `line` as a leader after WATCH of `watched`, at `at`.
fn run_watched(
    store: &Store,
    line: &str,
    watched: &[(Bytes, Watched)],
    at: u64,
    now: u64,
) -> Executed {
    let args = argv(line);
    store.execute_watched(
        &keys_of(&args),
        watched,
        Some(version(at)),
        now,
        usize::MAX,
        &|| true,
        |ks| Some(run_line(ks, line, 0)),
        &mut |_| {},
    )
}

/// What WATCH of `key` would see now.
fn watch(store: &Store, key: &str, now: u64) -> (Bytes, Watched) {
    let key = Bytes::copy_from_slice(key.as_bytes());
    let seen = Watched::of(&store.lookup(&key, now));
    (key, seen)
}

#[test]
fn a_watched_transaction_runs_only_if_no_watched_key_changed_under_the_lock() {
    let store = store();
    let ran = |e: &Executed| matches!(e, Executed::Ran { .. });
    // Unchanged (live, absent): it runs.
    assert!(ran(&run_watched(&store, "SET w 1", &[], 1, NOW)));
    let seen = [watch(&store, "w", NOW), watch(&store, "none", NOW)];
    assert!(ran(&run_watched(&store, "SET other 1", &seen, 2, NOW)));
    // A write since: nothing runs, nothing changes.
    let seen = [watch(&store, "w", NOW)];
    assert!(ran(&run_watched(&store, "SET w 2", &[], 3, NOW)));
    let failed = run_watched(&store, "SET other 2", &seen, 4, NOW);
    assert!(matches!(failed, Executed::WatchFailed), "{failed:?}");
    assert_eq!(store.get(b"other", NOW).unwrap().version, version(2));
    // A key absent when watched, then written and deleted: its tombstone
    // is newer than nothing.
    let seen = [watch(&store, "gone", NOW)];
    assert!(ran(&run_watched(&store, "SET gone 1", &[], 5, NOW)));
    assert!(ran(&run_watched(&store, "DEL gone", &[], 6, NOW)));
    let failed = run_watched(&store, "SET other 3", &seen, 7, NOW);
    assert!(matches!(failed, Executed::WatchFailed), "{failed:?}");
    // A tombstone watched, then past its grace: no change.
    let seen = [watch(&store, "gone", NOW)];
    assert!(matches!(seen[0].1, Watched::Deleted(_)));
    let later = NOW + 120_000;
    assert!(ran(&run_watched(&store, "SET other 4", &seen, 8, later)));
    // A live item that expires: a change, as in Redis 7.
    assert!(ran(&run_watched(&store, "SET e 1 PX 100", &[], 9, NOW)));
    let seen = [watch(&store, "e", NOW)];
    let failed = run_watched(&store, "SET other 5", &seen, 10, NOW + 200);
    assert!(matches!(failed, Executed::WatchFailed), "{failed:?}");
    // The transaction's own key, watched and unchanged: it runs.
    let seen = [watch(&store, "w", NOW)];
    assert!(ran(&run_watched(&store, "INCR w", &seen, 11, NOW)));
    assert_eq!(store.get(b"w", NOW).unwrap().version, version(11));
}

#[test]
fn watched_compares_live_versions_exactly_and_deletes_by_their_order() {
    let (v1, v2) = (version(1), version(2));
    assert!(Watched::Live(v1).still(Watched::Live(v1)));
    assert!(!Watched::Live(v1).still(Watched::Live(v2)));
    assert!(!Watched::Live(v1).still(Watched::Absent));
    assert!(!Watched::Live(v1).still(Watched::Deleted(v2)));
    assert!(!Watched::Absent.still(Watched::Live(v1)));
    assert!(Watched::Absent.still(Watched::Absent));
    assert!(!Watched::Absent.still(Watched::Deleted(v1)));
    assert!(Watched::Deleted(v1).still(Watched::Absent));
    assert!(Watched::Deleted(v2).still(Watched::Deleted(v2)));
    assert!(!Watched::Deleted(v1).still(Watched::Deleted(v2)));
}
