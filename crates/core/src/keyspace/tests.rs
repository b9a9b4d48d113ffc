//! Unit tests of the executor: what Redis's behaviour does not show from
//! the outside (effects, replicas, memory, cursors), plus edge cases.

use bytes::Bytes;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::command::table;
use crate::value::{ELEMENT_OVERHEAD_BYTES, StreamId, Value};

const NOW: u64 = 1_700_000_000_000;

fn args(line: &str) -> Vec<Bytes> {
    line.split(' ')
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect()
}

fn run(ks: &mut Keyspace, line: &str) -> Outcome {
    run_at(ks, line, NOW)
}

fn run_at(ks: &mut Keyspace, line: &str, now: u64) -> Outcome {
    let mut rng = StdRng::seed_from_u64(7);
    match table::parse(&args(line)) {
        Ok(c) => ks.execute(&c, now, &mut rng),
        Err(e) => Outcome {
            reply: Reply::Error(e),
            effects: vec![],
        },
    }
}

fn bulk(s: &str) -> Reply {
    Reply::bulk(s.as_bytes())
}

#[test]
fn a_push_onto_a_long_list_ships_only_the_pushed_element() {
    let mut ks = Keyspace::new();
    let elements: Vec<Bytes> = (0..100_000).map(|i| Bytes::from(i.to_string())).collect();
    let mut rng = StdRng::seed_from_u64(1);
    ks.execute(
        &Command::Push {
            key: Bytes::from_static(b"l"),
            front: false,
            only_if_exists: false,
            elements,
        },
        NOW,
        &mut rng,
    );
    let out = run(&mut ks, "RPUSH l last");
    assert_eq!(out.reply, Reply::Integer(100_001));
    assert_eq!(
        out.effects,
        vec![Effect {
            key: Bytes::from_static(b"l"),
            op: EffectOp::Push {
                front: false,
                elements: vec![Bytes::from_static(b"last")]
            }
        }]
    );
}

#[test]
fn pushing_onto_a_long_list_costs_about_what_pushing_onto_an_empty_one_costs() {
    // No copy of the value per operation: 10,000 pushes onto a list of
    // 100,000 take about as long as 10,000 pushes onto an empty one (the
    // bound is loose so that a busy machine does not fail it; a copy per
    // push would be ~1000 times slower).
    let time_pushes = |ks: &mut Keyspace| {
        let start = std::time::Instant::now();
        for _ in 0..10_000 {
            run(ks, "LPUSH l x");
        }
        start.elapsed()
    };
    let mut empty = Keyspace::new();
    let small = time_pushes(&mut empty);
    let mut big = Keyspace::new();
    let mut rng = StdRng::seed_from_u64(1);
    big.execute(
        &Command::Push {
            key: Bytes::from_static(b"l"),
            front: true,
            only_if_exists: false,
            elements: vec![Bytes::from_static(b"y"); 100_000],
        },
        NOW,
        &mut rng,
    );
    let large = time_pushes(&mut big);
    assert!(
        large < small * 10 + std::time::Duration::from_millis(50),
        "{small:?} vs {large:?}"
    );
}

#[test]
fn spop_ships_the_members_it_picked_so_replicas_do_not_pick_again() {
    let mut leader = Keyspace::new();
    let mut replica = Keyspace::new();
    for line in ["SADD s a b c d e f", "SPOP s 2", "SPOP s"] {
        let out = run(&mut leader, line);
        for e in &out.effects {
            replica.apply_effect(e).unwrap();
        }
    }
    assert!(leader.same_as(&replica));
    assert_eq!(run(&mut leader, "SCARD s").reply, Reply::Integer(3));
}

#[test]
fn incrbyfloat_ships_the_resulting_string_and_keeps_the_ttl() {
    let mut ks = Keyspace::new();
    run(&mut ks, "SET n 0.1 EX 100");
    let out = run(&mut ks, "INCRBYFLOAT n 0.2");
    assert_eq!(out.reply, bulk("0.3"));
    assert_eq!(out.effects[0].op, EffectOp::SetString(b"0.3".to_vec()));
    assert_eq!(ks.get(b"n").unwrap().expire_at_ms, Some(NOW + 100_000));
}

#[test]
fn expiry_is_absolute_and_an_expired_key_is_gone() {
    let mut ks = Keyspace::new();
    let out = run(&mut ks, "SET k v PX 1500");
    assert_eq!(
        out.effects[0].op,
        EffectOp::Put {
            value: Value::string(b"v".to_vec()),
            expire_at_ms: Some(NOW + 1500)
        }
    );
    assert_eq!(
        run_at(&mut ks, "PTTL k", NOW + 500).reply,
        Reply::Integer(1000)
    );
    assert_eq!(run_at(&mut ks, "TTL k", NOW + 500).reply, Reply::Integer(1));
    assert_eq!(run_at(&mut ks, "GET k", NOW + 1500).reply, Reply::Null);
    assert_eq!(
        run_at(&mut ks, "TTL k", NOW + 1500).reply,
        Reply::Integer(-2)
    );
    assert!(ks.is_empty());
}

#[test]
fn expire_in_the_past_deletes_the_key_with_an_effect() {
    let mut ks = Keyspace::new();
    run(&mut ks, "SET k v");
    let out = run(&mut ks, "EXPIREAT k 1");
    assert_eq!(out.reply, Reply::Integer(1));
    assert_eq!(out.effects[0].op, EffectOp::Delete);
}

#[test]
fn a_container_emptied_by_a_command_is_deleted_on_leader_and_replica() {
    let mut leader = Keyspace::new();
    let mut replica = Keyspace::new();
    for line in [
        "HSET h f v",
        "HDEL h f",
        "RPUSH l a",
        "LPOP l",
        "ZADD z 1 m",
        "ZREM z m",
    ] {
        for e in run(&mut leader, line).effects {
            replica.apply_effect(&e).unwrap();
        }
    }
    assert!(leader.is_empty() && replica.is_empty());
    assert_eq!(run(&mut leader, "EXISTS h l z").reply, Reply::Integer(0));
}

#[test]
fn an_effect_that_does_not_fit_the_replica_is_refused_not_applied() {
    let mut replica = Keyspace::new();
    let mut leader = Keyspace::new();
    run(&mut replica, "SET k v");
    let out = run(&mut leader, "RPUSH k a");
    assert!(matches!(
        replica.apply_effect(&out.effects[0]),
        Err(EffectError::WrongType { .. })
    ));
    assert_eq!(run(&mut replica, "GET k").reply, bulk("v"));
}

#[test]
fn exec_runs_every_queued_command_and_reports_errors_in_place() {
    let mut ks = Keyspace::new();
    let mut s = Session::new();
    let mut rng = StdRng::seed_from_u64(1);
    let mut send = |ks: &mut Keyspace, line: &str| s.handle(ks, &args(line), NOW, &mut rng).reply;
    assert_eq!(send(&mut ks, "MULTI"), Reply::OK);
    assert_eq!(send(&mut ks, "SET a 1"), Reply::Status("QUEUED".into()));
    assert_eq!(send(&mut ks, "LPUSH a x"), Reply::Status("QUEUED".into()));
    assert_eq!(send(&mut ks, "INCR a"), Reply::Status("QUEUED".into()));
    assert_eq!(
        send(&mut ks, "EXEC"),
        Reply::Array(vec![
            Reply::OK,
            Reply::Error(CommandError::WrongType),
            Reply::Integer(2)
        ])
    );
}

#[test]
fn a_queue_time_error_aborts_exec_and_nothing_runs() {
    let mut ks = Keyspace::new();
    let mut s = Session::new();
    let mut rng = StdRng::seed_from_u64(1);
    let mut send = |ks: &mut Keyspace, line: &str| s.handle(ks, &args(line), NOW, &mut rng).reply;
    send(&mut ks, "MULTI");
    send(&mut ks, "SET a 1");
    assert_eq!(
        send(&mut ks, "GET"),
        Reply::Error(CommandError::WrongArity("get"))
    );
    assert_eq!(send(&mut ks, "EXEC"), Reply::Error(CommandError::ExecAbort));
    assert_eq!(send(&mut ks, "EXISTS a"), Reply::Integer(0));
    assert_eq!(
        send(&mut ks, "EXEC"),
        Reply::Error(CommandError::ExecWithoutMulti)
    );
}

#[test]
fn getrange_and_lrange_follow_redis_index_rules() {
    let mut ks = Keyspace::new();
    run(&mut ks, "SET s Hello");
    assert_eq!(run(&mut ks, "GETRANGE s -3 -1").reply, bulk("llo"));
    assert_eq!(run(&mut ks, "GETRANGE s 10 20").reply, bulk(""));
    assert_eq!(run(&mut ks, "GETRANGE s -1 -5").reply, bulk(""));
    run(&mut ks, "RPUSH l a b c");
    assert_eq!(
        run(&mut ks, "LRANGE l -100 1").reply,
        Reply::Array(vec![bulk("a"), bulk("b")])
    );
    assert_eq!(run(&mut ks, "LRANGE l 5 10").reply, Reply::Array(vec![]));
}

#[test]
fn counters_refuse_overflow_and_non_integers() {
    let mut ks = Keyspace::new();
    run(&mut ks, "SET n 9223372036854775807");
    assert_eq!(
        run(&mut ks, "INCR n").reply,
        Reply::Error(CommandError::Overflow)
    );
    run(&mut ks, "SET n 01");
    assert_eq!(
        run(&mut ks, "INCR n").reply,
        Reply::Error(CommandError::NotInteger)
    );
    assert_eq!(
        run(&mut ks, "DECRBY n -9223372036854775808").reply,
        Reply::Error(CommandError::DecrementOverflow)
    );
}

#[test]
fn zadd_options_decide_per_member() {
    let mut ks = Keyspace::new();
    assert_eq!(run(&mut ks, "ZADD z 1 a 2 b").reply, Reply::Integer(2));
    assert_eq!(
        run(&mut ks, "ZADD z GT CH 0 a 3 b 1 c").reply,
        Reply::Integer(2)
    );
    assert_eq!(run(&mut ks, "ZSCORE z a").reply, Reply::Double(1.0));
    assert_eq!(run(&mut ks, "ZADD z NX INCR 1 a").reply, Reply::Null);
    assert_eq!(run(&mut ks, "ZADD z INCR 1.5 a").reply, Reply::Double(2.5));
    assert_eq!(
        run(&mut ks, "ZADD z INCR inf a").reply,
        Reply::Double(f64::INFINITY)
    );
    assert_eq!(
        run(&mut ks, "ZINCRBY z -inf a").reply,
        Reply::Error(CommandError::ScoreNan)
    );
    assert_eq!(
        run(&mut ks, "ZRANGE z 0 -1").reply,
        Reply::Array(vec![bulk("c"), bulk("b"), bulk("a")])
    );
}

/// What a value's memory should be, counted from scratch.
fn recount(v: &Value) -> usize {
    match v {
        Value::Str(s) => s.bytes.len(),
        Value::Hash(h) => h
            .iter()
            .map(|(f, v)| f.len() + v.len() + ELEMENT_OVERHEAD_BYTES)
            .sum(),
        Value::List(l) => l.iter().map(|e| e.len() + ELEMENT_OVERHEAD_BYTES).sum(),
        Value::Set(s) => s.iter().map(|m| m.len() + ELEMENT_OVERHEAD_BYTES).sum(),
        Value::ZSet(z) => z
            .iter()
            .map(|(m, _)| m.len() + 8 + ELEMENT_OVERHEAD_BYTES)
            .sum(),
        // An entry: its fields, its ID and pair count; a group: its name,
        // position and counts; a consumer: its name and time; a pending
        // entry: its consumer, ID, time and count; a node: the overhead.
        Value::Stream(s) => {
            let entries: usize = s
                .range(StreamId::MIN, StreamId::MAX)
                .map(|(_, f)| {
                    f.iter().map(|b| b.len()).sum::<usize>() + 20 + ELEMENT_OVERHEAD_BYTES
                })
                .sum();
            let groups: usize = s
                .groups()
                .iter()
                .map(|(name, g)| {
                    name.len()
                        + 40
                        + ELEMENT_OVERHEAD_BYTES
                        + g.consumers
                            .keys()
                            .map(|c| c.len() + 8 + ELEMENT_OVERHEAD_BYTES)
                            .sum::<usize>()
                        + g.pending
                            .values()
                            .map(|p| p.consumer.len() + 32 + ELEMENT_OVERHEAD_BYTES)
                            .sum::<usize>()
                })
                .sum();
            entries + groups + s.nodes().len() * ELEMENT_OVERHEAD_BYTES
        }
    }
}

fn op_line() -> impl Strategy<Value = String> {
    let k = prop_oneof![Just("a"), Just("b")];
    let e = prop_oneof![Just("x"), Just("yy"), Just("zzz"), Just("")];
    (0..21usize, k, e.clone(), e, -3i64..4).prop_map(|(op, k, e1, e2, n)| match op {
        0 => format!("HSET {k} {e1} {e2}"),
        1 => format!("HDEL {k} {e1}"),
        2 => format!("RPUSH {k} {e1} {e2}"),
        3 => format!("LPOP {k} {}", n.unsigned_abs()),
        4 => format!("LREM {k} {n} {e1}"),
        5 => format!("LTRIM {k} {n} {}", n + 1),
        6 => format!("LSET {k} {n} {e2}"),
        7 => format!("SADD {k} {e1} {e2}"),
        8 => format!("SREM {k} {e1}"),
        9 => format!("ZADD {k} {n} {e1}"),
        10 => format!("ZREM {k} {e2}"),
        11 => format!("APPEND {k} {e1}"),
        12 => format!("LINSERT {k} BEFORE {e1} {e2}"),
        13 => format!("SETRANGE {k} {} {e2}", n.unsigned_abs()),
        14 => format!("XADD {k} {}-* f{e1} v{e2}", n.unsigned_abs()),
        15 => format!("XDEL {k} {}-1", n.unsigned_abs()),
        16 => format!("XTRIM {k} MAXLEN {}", n.unsigned_abs()),
        17 => format!("XGROUP CREATE {k} g{e1} 0 MKSTREAM"),
        18 => format!("XREADGROUP GROUP g{e1} c{e2} COUNT 2 STREAMS {k} >"),
        19 => format!(
            "XACK {k} g{e1} {}-0 {}-1",
            n.unsigned_abs(),
            n.unsigned_abs()
        ),
        _ => format!("XGROUP DELCONSUMER {k} g{e1} c{e2}"),
    })
}

proptest! {
    #[test]
    fn memory_accounting_matches_a_recount_after_any_sequence(lines in proptest::collection::vec(op_line(), 1..60)) {
        let mut ks = Keyspace::new();
        let mut replica = Keyspace::new();
        for line in &lines {
            for e in run(&mut ks, line).effects {
                replica.apply_effect(&e).unwrap();
            }
            for (_, entry) in ks.iter() {
                prop_assert_eq!(entry.value.heap_bytes(), recount(&entry.value), "after {}", line);
            }
        }
        prop_assert!(ks.same_as(&replica));
    }

    #[test]
    fn scan_returns_every_key_present_for_the_whole_scan(
        stay in proptest::collection::btree_set("[a-z]{1,6}", 1..60),
        churn in proptest::collection::vec("[A-Z]{1,6}", 0..60),
        count in 1usize..8,
    ) {
        let mut ks = Keyspace::new();
        for k in &stay {
            run(&mut ks, &format!("SET {k} v"));
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut cursor = "0".to_owned();
        let mut churn = churn.iter();
        loop {
            let reply = run(&mut ks, &format!("SCAN {cursor} COUNT {count}")).reply;
            let Reply::Array(parts) = reply else { panic!("scan reply") };
            let (Reply::Bulk(next), Reply::Array(keys)) = (&parts[0], &parts[1]) else { panic!("scan parts") };
            for k in keys {
                if let Reply::Bulk(k) = k {
                    seen.insert(String::from_utf8(k.to_vec()).unwrap());
                }
            }
            // Keys come and go between calls.
            if let Some(k) = churn.next() {
                run(&mut ks, &format!("SET {k} v"));
            }
            if let Some(k) = churn.next() {
                run(&mut ks, &format!("DEL {k}"));
            }
            cursor = String::from_utf8(next.to_vec()).unwrap();
            // Clients that read a cursor as a signed 64-bit integer
            // (phpredis 5) must get it back as sent.
            prop_assert!(cursor.parse::<i64>().is_ok(), "cursor {} is past i64", cursor);
            if cursor == "0" {
                break;
            }
        }
        for k in &stay {
            prop_assert!(seen.contains(k), "{} missed", k);
        }
    }
}

fn any_word() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("k".to_owned()),
        Just("h".to_owned()),
        Just("l".to_owned()),
        Just("s".to_owned()),
        Just("z".to_owned()),
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("9223372036854775807".to_owned()),
        Just("-9223372036854775808".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("1e308".to_owned()),
        Just("-inf".to_owned()),
        Just("(1".to_owned()),
        Just("[a".to_owned()),
        Just("*".to_owned()),
        Just("".to_owned()),
        proptest::sample::select(vec![
            "EX",
            "PX",
            "EXAT",
            "PXAT",
            "NX",
            "XX",
            "GT",
            "LT",
            "CH",
            "INCR",
            "GET",
            "KEEPTTL",
            "PERSIST",
            "WITHSCORES",
            "WITHVALUES",
            "LIMIT",
            "BYSCORE",
            "BYLEX",
            "REV",
            "MATCH",
            "COUNT",
            "TYPE",
            "RANK",
            "MAXLEN",
            "LEFT",
            "RIGHT",
            "BEFORE",
            "AFTER",
            "REPLACE",
            "DB",
        ])
        .prop_map(str::to_owned),
        "[a-z0-9]{0,5}",
        any::<i64>().prop_map(|n| n.to_string()),
    ]
}

fn any_argv() -> impl Strategy<Value = Vec<String>> {
    let names: Vec<&'static str> = table::COMMANDS.iter().map(|s| s.name).collect();
    (
        proptest::sample::select(names),
        proptest::collection::vec(any_word(), 0..8),
    )
        .prop_map(|(name, rest)| {
            let mut v = vec![name.to_uppercase()];
            v.extend(rest);
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any argument vector for any command: the parser answers (a command
    /// or an error), the executor never panics, and a replica applying the
    /// effects stays equal to the leader.
    #[test]
    fn any_argument_vector_is_answered_and_replicas_stay_equal(script in proptest::collection::vec(any_argv(), 1..40)) {
        let mut ks = Keyspace::new();
        let mut replica = Keyspace::new();
        let mut rng = StdRng::seed_from_u64(3);
        for setup in ["SET k 1", "HSET h f v", "RPUSH l a b", "SADD s a b", "ZADD z 1 a 2 b", "XADD x 1 f v", "XGROUP CREATE x g 0"] {
            for e in run(&mut ks, setup).effects {
                replica.apply_effect(&e).unwrap();
            }
        }
        let mut session = Session::new();
        for words in &script {
            let argv: Vec<Bytes> = words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect();
            let out = session.handle(&mut ks, &argv, NOW, &mut rng);
            let mut wire = Vec::new();
            out.reply.write_resp(crate::command::Protocol::Resp3, &mut wire);
            prop_assert!(!wire.is_empty());
            for e in &out.effects {
                // Shipped as bytes, as a replica will receive it.
                let mut bytes = Vec::new();
                effect::encoding::encode(e, &mut bytes);
                let shipped = effect::encoding::decode(&bytes).unwrap();
                prop_assert_eq!(&shipped, e);
                prop_assert!(replica.apply_effect(&shipped).is_ok(), "{:?} after {:?}", e, words);
            }
        }
        prop_assert!(ks.same_as(&replica));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Whatever commands ran since `keep_undo`, `undo` restores the
    /// keyspace as it was: values, expiries, keys created and deleted.
    #[test]
    fn undo_takes_back_any_sequence_of_commands(
        script in proptest::collection::vec(any_argv(), 1..30),
        ops in proptest::collection::vec(op_line(), 0..30),
    ) {
        let mut ks = Keyspace::new();
        for setup in [
            "SET k 1", "HSET h f v g w", "RPUSH l a b c d", "SADD s a b", "ZADD z 1 a 2 b",
            "RPUSH a x yy zzz x", "HSET b x 1", "EXPIRE l 100", "EXPIRE h 100", "PEXPIRE z 5000",
        ] {
            run(&mut ks, setup);
        }
        let before = ks.clone();
        ks.keep_undo();
        let mut rng = StdRng::seed_from_u64(5);
        let mut session = Session::new();
        for words in &script {
            let argv: Vec<Bytes> = words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect();
            session.handle(&mut ks, &argv, NOW, &mut rng);
        }
        for line in &ops {
            run(&mut ks, line);
        }
        ks.undo();
        prop_assert!(ks.same_as(&before));
    }
}

#[test]
fn undo_restores_popped_trimmed_and_deleted_elements_in_order() {
    let mut ks = Keyspace::new();
    run(&mut ks, "RPUSH l a b c d e f");
    run(&mut ks, "PEXPIRE l 9000");
    let before = ks.clone();
    ks.keep_undo();
    for line in [
        "RPOP l 2",
        "LPOP l 1",
        "LTRIM l 1 1",
        "RPUSH l z",
        "LPOP l 5",
    ] {
        run(&mut ks, line);
    }
    assert!(ks.get(b"l").is_none(), "the last pop emptied the list");
    ks.undo();
    assert!(ks.same_as(&before));
    assert_eq!(ks.get(b"l").unwrap().expire_at_ms, Some(NOW + 9000));
}

/// A small hash answers in the order its fields were added (as Redis's
/// listpack does), so taking a command back restores that order too, not
/// just the fields (`same_as` ignores order).
#[test]
fn undo_restores_a_small_hash_s_field_order() {
    let mut ks = Keyspace::new();
    run(&mut ks, "HSET h a 1 b 2 c 3 d 4");
    let order = |ks: &mut Keyspace| run(ks, "HGETALL h").reply;
    let before = order(&mut ks);
    ks.keep_undo();
    for line in ["HDEL h a c", "HSET h a 9 e 5", "HDEL h b"] {
        run(&mut ks, line);
    }
    ks.undo();
    assert_eq!(order(&mut ks), before);
}

#[test]
fn a_huge_negative_random_count_is_refused_not_built() {
    let mut ks = Keyspace::new();
    run(&mut ks, "SADD s a b");
    assert_eq!(
        run(&mut ks, "SRANDMEMBER s -9223372036854775807").reply,
        Reply::Error(CommandError::OutOfRange("value is out of range"))
    );
    let out = run(&mut ks, "SRANDMEMBER s -5").reply;
    assert!(matches!(out, Reply::Array(v) if v.len() == 5));
}

proptest! {
    #[test]
    fn hostile_effect_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 2..120)) {
        let mut data = body;
        data[0] = effect::encoding::VERSION;
        data[1] %= 28;
        let crc = crc32fast::hash(&data);
        data.extend_from_slice(&crc.to_le_bytes());
        if let Ok(e) = effect::encoding::decode(&data) {
            let mut again = Vec::new();
            effect::encoding::encode(&e, &mut again);
            prop_assert_eq!(effect::encoding::decode(&again).unwrap(), e);
        }
    }
}

#[test]
fn a_shipped_push_is_a_few_bytes_whatever_the_list_length() {
    let mut ks = Keyspace::new();
    let mut rng = StdRng::seed_from_u64(1);
    ks.execute(
        &Command::Push {
            key: Bytes::from_static(b"l"),
            front: true,
            only_if_exists: false,
            elements: vec![Bytes::from_static(b"y"); 100_000],
        },
        NOW,
        &mut rng,
    );
    let out = run(&mut ks, "LPUSH l x");
    let mut bytes = Vec::new();
    effect::encoding::encode(&out.effects[0], &mut bytes);
    assert!(bytes.len() <= 16, "{} bytes", bytes.len());
}

#[test]
fn a_json_string_from_data_is_a_string_for_commands_until_a_command_rewrites_it() {
    use crate::value::StrValue;
    let mut ks = Keyspace::new();
    let json = |bytes: &str| {
        Value::Str(StrValue {
            bytes: bytes.as_bytes().to_vec(),
            json: true,
        })
    };
    for (key, text) in [(&b"n"[..], "41"), (b"o", "{\"a\":1}")] {
        ks.apply_effect(&Effect {
            key: Bytes::copy_from_slice(key),
            op: EffectOp::Put {
                value: json(text),
                expire_at_ms: None,
            },
        })
        .unwrap();
    }
    assert_eq!(run(&mut ks, "TYPE o").reply, Reply::Status("string".into()));
    assert_eq!(run(&mut ks, "GET o").reply, bulk("{\"a\":1}"));
    run(&mut ks, "COPY o o2");
    assert_eq!(ks.get(b"o2").unwrap().value, json("{\"a\":1}"));
    run(&mut ks, "EXPIRE o 100");
    assert_eq!(ks.get(b"o").unwrap().value, json("{\"a\":1}"));
    assert_eq!(run(&mut ks, "INCR n").reply, Reply::Integer(42));
    assert_eq!(ks.get(b"n").unwrap().value, Value::string(b"42".to_vec()));
    run(&mut ks, "APPEND o x");
    assert_eq!(
        ks.get(b"o").unwrap().value,
        Value::string(b"{\"a\":1}x".to_vec())
    );
}

proptest! {
    /// HSCAN/SSCAN/ZSCAN page big collections, and an element present for
    /// the whole scan is returned at least once, whatever is added and
    /// removed between the calls.
    #[test]
    fn collection_scans_return_every_element_present_throughout(
        stay in proptest::collection::btree_set("[a-z]{1,4}", 100..300),
        churn in proptest::collection::vec(("[A-Z]{1,3}", any::<bool>()), 0..200),
        count in 1usize..40,
        kind in 0..3usize,
    ) {
        let (add, remove, scan) = [
            ("SADD s", "SREM s", "SSCAN s"),
            ("HSET s", "HDEL s", "HSCAN s"),
            ("ZADD s", "ZREM s", "ZSCAN s"),
        ][kind];
        let member_args = |m: &str| match kind {
            0 => m.to_owned(),
            1 => format!("{m} v"),
            _ => format!("1 {m}"),
        };
        let mut ks = Keyspace::new();
        // Some churned members exist from the start, below the staying
        // ones, so that removing them moves staying members around.
        for (m, _) in churn.iter().step_by(2) {
            run(&mut ks, &format!("{add} {}", member_args(m)));
        }
        for m in &stay {
            run(&mut ks, &format!("{add} {}", member_args(m)));
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut cursor = "0".to_owned();
        let mut churn = churn.iter();
        let mut calls = 0;
        loop {
            let Reply::Array(parts) = run(&mut ks, &format!("{scan} {cursor} COUNT {count}")).reply else {
                panic!("scan reply")
            };
            let (Reply::Bulk(next), Reply::Array(items)) = (&parts[0], &parts[1]) else { panic!("scan parts") };
            let step = if kind == 0 { 1 } else { 2 };
            for item in items.iter().step_by(step) {
                if let Reply::Bulk(m) = item {
                    seen.insert(String::from_utf8(m.to_vec()).unwrap());
                }
            }
            for _ in 0..3 {
                if let Some((m, adding)) = churn.next() {
                    if *adding {
                        run(&mut ks, &format!("{add} {}", member_args(m)));
                    } else {
                        run(&mut ks, &format!("{remove} {m}"));
                    }
                }
            }
            cursor = String::from_utf8(next.to_vec()).unwrap();
            calls += 1;
            if cursor == "0" {
                break;
            }
            prop_assert!(calls < 10_000);
        }
        for m in &stay {
            prop_assert!(seen.contains(m), "{} missed", m);
        }
    }
}

#[test]
fn an_effect_refused_by_a_slot_leaves_it_as_it_was() {
    let mut ks = Keyspace::new();
    run(&mut ks, "ZADD z 1 a");
    run(&mut ks, "RPUSH l a");
    let mut z = Some(ks.get(b"z").unwrap().clone());
    let before = z.clone();
    let nan = EffectOp::ZAdd(vec![
        (2.0, Bytes::from_static(b"b")),
        (f64::NAN, Bytes::from_static(b"c")),
    ]);
    assert!(apply_to_slot(&mut z, &nan).is_err());
    assert_eq!(z, before);
    let mut l = Some(ks.get(b"l").unwrap().clone());
    let before = l.clone();
    let past_the_end = EffectOp::ListSet {
        index: 5,
        element: Bytes::from_static(b"x"),
    };
    assert_eq!(
        apply_to_slot(&mut l, &past_the_end),
        Err(EffectError::Index(5))
    );
    assert_eq!(l, before);
    let mut none = None;
    apply_to_slot(
        &mut none,
        &EffectOp::SetRemove(vec![Bytes::from_static(b"a")]),
    )
    .unwrap();
    assert_eq!(none, None);
}

/// The shipped and logged bytes of a key's ops as `encode_ops` wrote them
/// before it stopped copying each op into an `Effect` and each `Put`'s
/// value into a buffer of its own: each op framed by its `u32` LE length,
/// a `Put` laid out by hand with its value encoded apart and then put as
/// bytes, every other op through `encode` of a cloned `Effect`.
fn encode_ops_by_copying(key: &Bytes, ops: &[EffectOp]) -> Vec<u8> {
    use crate::value::encoding::{put_bytes, put_varint};
    let mut out = Vec::new();
    for op in ops {
        let mut one = Vec::new();
        match op {
            EffectOp::Put {
                value,
                expire_at_ms,
            } => {
                one.extend_from_slice(&[effect::encoding::VERSION, 1]);
                put_bytes(&mut one, key);
                match expire_at_ms {
                    None => one.push(0),
                    Some(at) => {
                        one.push(1);
                        put_varint(&mut one, *at);
                    }
                }
                let mut encoded = Vec::new();
                crate::value::encode(value, &mut encoded);
                put_bytes(&mut one, &encoded);
                let crc = crc32fast::hash(&one);
                one.extend_from_slice(&crc.to_le_bytes());
            }
            op => effect::encoding::encode(
                &Effect {
                    key: key.clone(),
                    op: op.clone(),
                },
                &mut one,
            ),
        }
        out.extend_from_slice(&(one.len() as u32).to_le_bytes());
        out.extend_from_slice(&one);
    }
    out
}

fn any_element() -> impl Strategy<Value = Bytes> {
    // Some past 127 bytes, whose length prefix takes two bytes.
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..12),
        1 => proptest::collection::vec(any::<u8>(), 120..140),
    ]
    .prop_map(Bytes::from)
}

fn any_value() -> impl Strategy<Value = Value> {
    use crate::value::{HashValue, Score, StrValue};
    let elements = || proptest::collection::vec(any_element(), 1..8);
    prop_oneof![
        (
            proptest::collection::vec(any::<u8>(), 0..300),
            any::<bool>()
        )
            .prop_map(|(bytes, json)| Value::Str(StrValue { bytes, json })),
        proptest::collection::vec((any_element(), any_element()), 1..8).prop_map(|pairs| {
            let mut h = HashValue::new();
            for (f, v) in pairs {
                h.insert(f, v);
            }
            Value::Hash(h)
        }),
        elements().prop_map(|v| Value::List(v.into_iter().collect())),
        elements().prop_map(|v| Value::Set(v.into_iter().collect())),
        proptest::collection::vec((any_element(), -5i32..5), 1..8).prop_map(|v| {
            Value::ZSet(
                v.into_iter()
                    .map(|(m, s)| (m, Score::new(f64::from(s)).unwrap()))
                    .collect(),
            )
        }),
    ]
}

/// Every variant of [`EffectOp`], with payloads that cross the one-byte
/// length prefix.
fn any_effect_op() -> impl Strategy<Value = EffectOp> {
    let elements = || proptest::collection::vec(any_element(), 0..5);
    let at = || proptest::option::of(any::<u64>());
    let index = || any::<u32>().prop_map(|i| i as usize);
    prop_oneof![
        Just(EffectOp::Delete),
        (any_value(), at()).prop_map(|(value, expire_at_ms)| EffectOp::Put {
            value,
            expire_at_ms
        }),
        at().prop_map(EffectOp::SetExpiry),
        any_element().prop_map(|b| EffectOp::SetString(b.to_vec())),
        any_element().prop_map(EffectOp::Append),
        (index(), any_element()).prop_map(|(offset, bytes)| EffectOp::SetRange { offset, bytes }),
        proptest::collection::vec((any_element(), any_element()), 0..5).prop_map(EffectOp::HashSet),
        elements().prop_map(EffectOp::HashDel),
        (any::<bool>(), elements())
            .prop_map(|(front, elements)| EffectOp::Push { front, elements }),
        (any::<bool>(), index()).prop_map(|(front, count)| EffectOp::Pop { front, count }),
        (index(), any_element()).prop_map(|(index, element)| EffectOp::ListSet { index, element }),
        (index(), any_element())
            .prop_map(|(index, element)| EffectOp::ListInsert { index, element }),
        (any::<i64>(), any_element())
            .prop_map(|(count, element)| EffectOp::ListRemove { count, element }),
        (index(), proptest::option::of(index()))
            .prop_map(|(start, stop)| EffectOp::ListTrim { start, stop }),
        elements().prop_map(EffectOp::SetAdd),
        elements().prop_map(EffectOp::SetRemove),
        proptest::collection::vec((-5i32..5, any_element()), 0..5).prop_map(|pairs| {
            EffectOp::ZAdd(pairs.into_iter().map(|(s, m)| (f64::from(s), m)).collect())
        }),
        elements().prop_map(EffectOp::ZRemove),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Shipped to replicas and written to the mutation log: the bytes
    /// `encode_ops` writes for any ops of any variant are exactly those it
    /// wrote when it copied each op into an `Effect` first.
    #[test]
    fn encoded_ops_are_the_bytes_they_were_when_each_op_was_copied(
        key in any_element(),
        ops in proptest::collection::vec(any_effect_op(), 0..6),
    ) {
        let mut out = vec![0xAA];
        effect::encoding::encode_ops(&key, &ops, &mut out);
        prop_assert_eq!(out[0], 0xAA, "appended, not overwritten");
        prop_assert_eq!(&out[1..], &encode_ops_by_copying(&key, &ops)[..]);
        prop_assert_eq!(effect::encoding::decode_ops(&key, &out[1..]).unwrap(), ops);
    }
}

#[test]
fn encoded_ops_keep_their_golden_bytes() {
    use crate::value::StrValue;
    let list = Value::List(
        [Bytes::from_static(b"a"), Bytes::from_static(b"b")]
            .into_iter()
            .collect(),
    );
    let ops = [
        EffectOp::Delete,
        EffectOp::Put {
            value: Value::Str(StrValue {
                bytes: b"abc".to_vec(),
                json: false,
            }),
            expire_at_ms: Some(NOW),
        },
        EffectOp::Put {
            value: list,
            expire_at_ms: None,
        },
        EffectOp::SetExpiry(Some(5)),
        EffectOp::Push {
            front: false,
            elements: vec![Bytes::from_static(b"x"), Bytes::from_static(b"yz")],
        },
    ];
    let mut out = Vec::new();
    effect::encoding::encode_ops(&Bytes::from_static(b"k"), &ops, &mut out);
    // Computed apart from this code, from the layout in the docs.
    let golden = "080000000100016be831835a1a0000000101016b0180d095ffbc310a01000361626338454ea2\
                  19e913d1150000000101016b000b010302016101624302418cbd0e6ea10a0000000102016b01\
                  050ca711950f0000000108016b0002017802797a4d08aeb0";
    let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, golden);
}

#[test]
fn xadd_star_takes_the_clock_or_the_next_sequence_above_the_last_id() {
    let mut ks = Keyspace::new();
    assert_eq!(
        run(&mut ks, "XADD s * f v").reply,
        bulk(&format!("{NOW}-0"))
    );
    assert_eq!(
        run(&mut ks, "XADD s * f v").reply,
        bulk(&format!("{NOW}-1"))
    );
    // A later clock starts a new millisecond at sequence 0.
    assert_eq!(
        run_at(&mut ks, "XADD s * f v", NOW + 5).reply,
        bulk(&format!("{}-0", NOW + 5))
    );
    // A last ID ahead of the clock: the next sequence, then the next
    // millisecond when the sequence is exhausted.
    run(&mut ks, "XADD s 99999999999999-18446744073709551614 f v");
    assert_eq!(
        run(&mut ks, "XADD s * f v").reply,
        bulk("99999999999999-18446744073709551615")
    );
    assert_eq!(
        run(&mut ks, "XADD s * f v").reply,
        bulk("100000000000000-0")
    );
}

#[test]
fn a_shipped_stream_change_is_small_whatever_the_stream_length() {
    let mut ks = Keyspace::new();
    for i in 1..=5_000 {
        run(&mut ks, &format!("XADD s {i} field value-{i}"));
    }
    for line in [
        "XADD s 9000 f v",
        "XTRIM s MAXLEN ~ 10",
        "XDEL s 4990",
        "XGROUP CREATE s g 0",
    ] {
        let out = run(&mut ks, line);
        assert!(!out.effects.is_empty(), "{line}");
        for e in &out.effects {
            let mut bytes = Vec::new();
            effect::encoding::encode(e, &mut bytes);
            assert!(bytes.len() <= 32, "{line}: {} bytes", bytes.len());
        }
    }
    // `~` removed whole nodes of 100 only.
    assert_eq!(run(&mut ks, "XLEN s").reply, Reply::Integer(100));
}

#[test]
fn a_replica_holds_the_delivery_times_the_leader_decided() {
    let mut ks = Keyspace::new();
    let mut replica = Keyspace::new();
    let mut at = |ks: &mut Keyspace, line: &str, now: u64| {
        let out = run_at(ks, line, now);
        for e in &out.effects {
            replica.apply_effect(e).unwrap();
        }
        out.reply
    };
    at(&mut ks, "XADD s 1 f v", NOW);
    at(&mut ks, "XADD s 2 f v", NOW);
    at(&mut ks, "XGROUP CREATE s g 0", NOW);
    at(&mut ks, "XREADGROUP GROUP g alice COUNT 1 STREAMS s >", NOW);
    at(&mut ks, "XCLAIM s g bob 0 1-0 IDLE 500", NOW + 1_000);
    assert!(ks.same_as(&replica));
    // Read later, on the replica: idle from the leader's delivery time.
    let pending = run_at(&mut replica, "XPENDING s g - + 10", NOW + 2_000).reply;
    assert_eq!(
        pending,
        Reply::Array(vec![Reply::Array(vec![
            bulk("1-0"),
            bulk("bob"),
            Reply::Integer(1_500),
            Reply::Integer(2),
        ])])
    );
}

#[test]
fn pfcount_is_routed_as_a_write_but_needs_only_the_read_role() {
    let spec = table::lookup(b"pfcount").unwrap();
    assert!(spec.has(table::flags::WRITE));
    assert_eq!(spec.role(), table::Role::Read);
    // It caches the count in the value, which a replica must hold too.
    let mut ks = Keyspace::new();
    run(&mut ks, "PFADD h a b c");
    let out = run(&mut ks, "PFCOUNT h");
    assert_eq!(out.reply, Reply::Integer(3));
    assert!(
        matches!(
            &out.effects[..],
            [Effect {
                op: EffectOp::SetRange { offset: 8, .. },
                ..
            }]
        ),
        "{:?}",
        out.effects
    );
    // Cached: the next count changes nothing.
    assert!(run(&mut ks, "PFCOUNT h").effects.is_empty());
}

/// Streams left by XSETID below deleted entries and by trims that empty a
/// node encode and decode to themselves (snapshots, handoff), and their
/// trims count each node's own entries.
#[test]
fn streams_after_xsetid_and_emptying_trims_round_trip_through_their_encoding() {
    let round_trip = |ks: &Keyspace, key: &str| {
        let value = &ks.get(key.as_bytes()).unwrap().value;
        let mut bytes = Vec::new();
        crate::value::encode(value, &mut bytes);
        assert_eq!(bytes.len(), value.encoded_len());
        assert_eq!(&crate::value::decode(&bytes).unwrap(), value, "{key}");
    };
    let mut ks = Keyspace::new();
    for i in 1..=100 {
        run(&mut ks, &format!("XADD s {i}-0 f v"));
    }
    run(&mut ks, "XDEL s 96-0 97-0 98-0 99-0 100-0");
    assert_eq!(run(&mut ks, "XSETID s 95-0").reply, Reply::OK);
    run(&mut ks, "XADD s 95-1 f v");
    round_trip(&ks, "s");
    assert_eq!(run(&mut ks, "XTRIM s MINID 96-0").reply, Reply::Integer(95));
    assert_eq!(run(&mut ks, "XLEN s").reply, Reply::Integer(1));
    round_trip(&ks, "s");
    for line in [
        "XADD t 1-0 a 1",
        "XADD t 2-0 a 1",
        "XADD t 3-0 a 1",
        "XDEL t 3-0",
    ] {
        run(&mut ks, line);
    }
    assert_eq!(run(&mut ks, "XTRIM t MINID 3-0").reply, Reply::Integer(2));
    round_trip(&ks, "t");
    run(&mut ks, "XADD t 4-0 a 1");
    round_trip(&ks, "t");
}

#[test]
fn xread_keys_are_found_past_option_values_named_streams() {
    let keys = |line: &str| table::stream_keys(&args(line));
    assert_eq!(keys("XREADGROUP GROUP streams c STREAMS k >"), 5..6);
    assert_eq!(keys("XREADGROUP GROUP g streams STREAMS k1 k2 > >"), 5..7);
    assert_eq!(keys("XREAD COUNT 2 BLOCK 10 STREAMS a b 0 0"), 6..8);
    // Not as far as STREAMS, or unbalanced: no key.
    assert_eq!(keys("XREAD COUNT"), 0..0);
    assert_eq!(keys("XREAD STREAMS a b 0"), 0..0);
}

/// A one-element list moved onto itself keeps its TTL (popping it first
/// would delete the key, and the TTL, before the push made it again).
#[test]
fn a_lone_element_moved_onto_its_own_list_keeps_the_ttl() {
    let mut ks = Keyspace::new();
    for line in [
        "RPOPLPUSH l l",
        "LMOVE l l LEFT RIGHT",
        "LMOVE l l RIGHT RIGHT",
    ] {
        run(&mut ks, "DEL l");
        run(&mut ks, "RPUSH l x");
        run(&mut ks, "EXPIRE l 100");
        let moved = run(&mut ks, line);
        assert_eq!(moved.reply, bulk("x"), "{line}");
        assert_eq!(moved.effects.len(), 1, "{line}: changed, for WATCH");
        assert_eq!(run(&mut ks, "TTL l").reply, Reply::Integer(100), "{line}");
        assert_eq!(
            run(&mut ks, "LRANGE l 0 -1").reply,
            Reply::Array(vec![bulk("x")]),
            "{line}"
        );
    }
}

/// MEMORY USAGE: the bytes a key and its value count for against
/// CACHE_MAX_BYTES; nil for a missing key.
#[test]
fn memory_usage_is_the_bytes_a_key_counts_for() {
    let mut ks = Keyspace::new();
    run(&mut ks, "SET k hello");
    assert_eq!(run(&mut ks, "MEMORY USAGE k").reply, Reply::Integer(6));
    assert_eq!(
        run(&mut ks, "MEMORY USAGE k SAMPLES 0").reply,
        Reply::Integer(6)
    );
    assert_eq!(run(&mut ks, "MEMORY USAGE nokey").reply, Reply::Null);
    run(&mut ks, "RPUSH l aaaa bbbb");
    let Reply::Integer(list) = run(&mut ks, "MEMORY USAGE l").reply else {
        panic!("an integer")
    };
    assert!(list > 1 + 8, "{list}");
    assert!(matches!(
        run(&mut ks, "MEMORY STATS").reply,
        Reply::Error(_)
    ));
}
