use bytes::Bytes;
use rand::SeedableRng;

use super::{Eval, ScriptBody, run};
use crate::command::Reply;
use crate::keyspace::Keyspace;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Runs `source` with `keys` and `args` over `ks`.
fn eval(ks: &mut Keyspace, source: &str, keys: &[&str], args: &[&str]) -> Reply {
    eval_as(ks, source, keys, args, false)
}

fn eval_as(
    ks: &mut Keyspace,
    source: &str,
    keys: &[&str],
    args: &[&str],
    read_only: bool,
) -> Reply {
    eval_with_effects(ks, source, keys, args, read_only).0
}

/// As [`eval_as`], with the effects the run recorded.
fn eval_with_effects(
    ks: &mut Keyspace,
    source: &str,
    keys: &[&str],
    args: &[&str],
    read_only: bool,
) -> (Reply, Vec<crate::keyspace::Effect>) {
    let e = Eval {
        body: ScriptBody::Source(b(source)),
        keys: keys.iter().map(|k| b(k)).collect(),
        args: args.iter().map(|a| b(a)).collect(),
        read_only,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut effects = Vec::new();
    let reply = run(&e, ks, 1_000_000, &mut rng, &mut effects);
    (reply, effects)
}

fn error_text(reply: Reply) -> String {
    match reply {
        Reply::Error(e) => e.to_string(),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn a_script_runs_commands_on_its_keys_and_returns_their_replies() {
    let mut ks = Keyspace::new();
    let reply = eval(
        &mut ks,
        "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])",
        &["k"],
        &["v"],
    );
    assert_eq!(reply, Reply::bulk(b"v"));
    assert_eq!(
        eval(&mut ks, "return redis.call('INCR', KEYS[1])", &["n"], &[]),
        Reply::Integer(1)
    );
    assert_eq!(
        eval(
            &mut ks,
            "return {1, 'x', 3.9, false, {ok='S'}, nil, 7}",
            &[],
            &[]
        ),
        Reply::Array(vec![
            Reply::Integer(1),
            Reply::bulk(b"x"),
            Reply::Integer(3),
            Reply::Null,
            Reply::Status("S".into()),
        ])
    );
}

#[test]
fn a_script_records_the_effects_of_its_writes_and_none_of_its_reads() {
    let mut ks = Keyspace::new();
    let (reply, effects) = eval_with_effects(
        &mut ks,
        "redis.call('SET', KEYS[1], 'a') redis.call('RPUSH', KEYS[2], 'x', 'y') return redis.call('GET', KEYS[1])",
        &["s", "l"],
        &[],
        false,
    );
    assert_eq!(reply, Reply::bulk(b"a"));
    let keys: Vec<&[u8]> = effects.iter().map(|e| e.key.as_ref()).collect();
    assert_eq!(keys, vec![&b"s"[..], &b"l"[..]]);
    let (_, effects) = eval_with_effects(
        &mut ks,
        "return redis.call('LRANGE', KEYS[1], 0, -1)",
        &["l"],
        &[],
        false,
    );
    assert!(effects.is_empty(), "a read recorded {effects:?}");
}

#[test]
fn a_script_may_touch_only_the_keys_it_declared() {
    let mut ks = Keyspace::new();
    let text = error_text(eval(
        &mut ks,
        "return redis.call('SET', 'other', 'v')",
        &["k"],
        &[],
    ));
    assert!(
        text.contains("Script attempted to access key 'other'"),
        "{text}"
    );
    assert!(text.ends_with("on @user_script:1."), "{text}");
    assert!(eval(&mut ks, "return redis.call('EXISTS', 'other')", &[], &[]).is_error());
    assert_eq!(
        eval(
            &mut ks,
            "return redis.call('GET', 'other')",
            &["other"],
            &[]
        ),
        Reply::Null
    );
}

#[test]
fn commands_that_need_the_cluster_or_a_connection_are_refused_inside_a_script() {
    let mut ks = Keyspace::new();
    for (source, wanted) in [
        (
            "return redis.call('KEYS', '*')",
            "KEYS is not allowed from a script",
        ),
        (
            "return redis.call('DBSIZE')",
            "DBSIZE is not allowed from a script",
        ),
        (
            "return redis.call('PUBLISH', 'c', 'm')",
            "PUBLISH is not allowed from a script",
        ),
        (
            "return redis.call('SPUBLISH', 'c', 'm')",
            "SPUBLISH is not allowed from a script",
        ),
        (
            "return redis.call('SSUBSCRIBE', 'c')",
            "not allowed from script",
        ),
        (
            "return redis.call('SUBSCRIBE', 'c')",
            "not allowed from script",
        ),
        (
            "return redis.call('BLPOP', KEYS[1], 0)",
            "not allowed from script",
        ),
        (
            "return redis.call('EVAL', 'return 1', 0)",
            "not allowed from script",
        ),
        (
            "return redis.call('WATCH', KEYS[1])",
            "not allowed from script",
        ),
    ] {
        let text = error_text(eval(&mut ks, source, &["k"], &[]));
        assert!(text.contains(wanted), "{source}: {text}");
    }
}

/// `redis.error_reply` makes Redis's error text (the first word is the
/// code, `ERR` for a single word, a leading `-` dropped, line ends
/// trimmed), and both reply helpers answer a wrong call with an error
/// table they return rather than raise; the replies are redis-server
/// 7.0.15's.
#[test]
fn the_reply_helpers_make_redis_error_and_status_tables() {
    let mut ks = Keyspace::new();
    for (source, want) in [
        ("return redis.error_reply('boom')", "ERR boom"),
        ("return redis.error_reply('-boom')", "ERR boom"),
        ("return redis.error_reply('-MY boom')", "MY boom"),
        ("return redis.error_reply('a b c')", "a b c"),
        ("return redis.error_reply(' b')", " b"),
        ("return redis.error_reply('')", "ERR "),
        ("return redis.error_reply('-')", "ERR "),
        ("return redis.error_reply('x\\r\\n')", "ERR x"),
        ("return redis.error_reply('--x')", "ERR -x"),
        (
            "return redis.error_reply('a', 'b')",
            "ERR wrong number or type of arguments",
        ),
        (
            "return redis.error_reply(5)",
            "ERR wrong number or type of arguments",
        ),
        (
            "return redis.error_reply()",
            "ERR wrong number or type of arguments",
        ),
        (
            "return redis.status_reply()",
            "ERR wrong number or type of arguments",
        ),
        (
            "return redis.status_reply(5)",
            "ERR wrong number or type of arguments",
        ),
        (
            "return {err = redis.error_reply('boom')['err']}",
            "ERR boom",
        ),
    ] {
        assert_eq!(
            error_text(eval(&mut ks, source, &[], &[])),
            want,
            "{source}"
        );
    }
    assert_eq!(
        eval(&mut ks, "return redis.status_reply('FINE')", &[], &[]),
        Reply::Status("FINE".into())
    );
}

/// Redis 7's shebang line: `#!lua` and its flags, the line left out of
/// what Lua compiles (line numbers kept), `no-writes` making the script
/// read-only, `no-cluster` refused (distcache is a cluster), and Redis's
/// errors for what it does not know, at compile time too (SCRIPT LOAD).
/// The texts are redis-server 7.0.15's.
#[test]
fn a_shebang_line_sets_the_script_s_flags_as_redis_reads_it() {
    let mut ks = Keyspace::new();
    assert_eq!(
        eval(&mut ks, "#!lua\nreturn 1", &[], &[]),
        Reply::Integer(1)
    );
    assert_eq!(
        eval(&mut ks, "#!lua flags=\nreturn 2", &[], &[]),
        Reply::Integer(2)
    );
    assert_eq!(
        eval(
            &mut ks,
            "#!lua flags=allow-oom,allow-stale,allow-cross-slot-keys\nreturn redis.call('SET', KEYS[1], 'v')",
            &["k"],
            &[]
        ),
        Reply::OK
    );
    let text = error_text(eval(
        &mut ks,
        "#!lua flags=no-writes\nreturn redis.call('SET', KEYS[1], 'w')",
        &["k"],
        &[],
    ));
    assert!(
        text.starts_with("ERR Write commands are not allowed from read-only scripts.")
            && text.ends_with("on @user_script:2."),
        "{text}"
    );
    assert_eq!(
        eval(
            &mut ks,
            "#!lua flags=no-writes\nreturn redis.call('GET', KEYS[1])",
            &["k"],
            &[]
        ),
        Reply::Bulk(b("v"))
    );
    for (source, want) in [
        ("#!lua", "ERR Invalid script shebang"),
        (
            "#!python\nreturn 1",
            "ERR Unexpected engine in script shebang: #!python",
        ),
        (
            "#!\nreturn 1",
            "ERR Unexpected engine in script shebang: #!",
        ),
        ("#!lua x=1\nreturn 1", "ERR Unknown lua shebang option: x=1"),
        (
            "#!lua flags=bogus\nreturn 1",
            "ERR Unexpected flag in script shebang: bogus",
        ),
        (
            "#!lua flags=no-cluster\nreturn 1",
            "ERR Can not run script on cluster, 'no-cluster' flag is set.",
        ),
    ] {
        assert_eq!(
            error_text(eval(&mut ks, source, &[], &[])),
            want,
            "{source}"
        );
    }
    // EVAL_RO runs a shebang script only if it declares `no-writes`.
    assert_eq!(
        error_text(eval_as(&mut ks, "#!lua\nreturn 1", &[], &[], true)),
        "ERR Can not execute a script with write flag using *_ro command."
    );
    assert_eq!(
        eval_as(&mut ks, "#!lua flags=no-writes\nreturn 1", &[], &[], true),
        Reply::Integer(1)
    );
    assert_eq!(
        super::compile(&b("#!lua flags=bogus\nreturn 1")).map_err(|e| e.to_string()),
        Err("ERR Unexpected flag in script shebang: bogus".to_owned())
    );
    assert!(super::compile(&b("#!lua flags=no-writes\nreturn 1")).is_ok());
}

#[test]
fn a_read_only_script_cannot_write() {
    let mut ks = Keyspace::new();
    let (reply, effects) = eval_with_effects(
        &mut ks,
        "return redis.call('SET', KEYS[1], 'v')",
        &["k"],
        &[],
        true,
    );
    assert!(
        error_text(reply).starts_with("ERR Write commands are not allowed from read-only scripts.")
    );
    assert!(effects.is_empty());
    assert_eq!(
        eval_as(
            &mut ks,
            "return redis.call('GET', KEYS[1])",
            &["k"],
            &[],
            true
        ),
        Reply::Null
    );
}

#[test]
fn a_script_leaves_nothing_behind_for_the_next_one() {
    let mut ks = Keyspace::new();
    for attempt in [
        "x = 1",
        "rawset(_G, 'x', 1)",
        "string.upper = nil",
        "rawset(string, 'upper', nil)",
        "redis.call = nil",
        "setmetatable(_G, nil)",
        "getmetatable('').__index = {}",
    ] {
        let reply = eval(&mut ks, attempt, &[], &[]);
        assert!(reply.is_error(), "{attempt} was allowed: {reply:?}");
    }
    // A script may still use its own tables and locals freely.
    assert_eq!(
        eval(
            &mut ks,
            "local t = {} rawset(t, 'a', 'b') return t.a .. string.upper('x')",
            &[],
            &[]
        ),
        Reply::bulk(b"bX")
    );
    assert!(eval(&mut ks, "return type(x)", &[], &[]).is_error());
    assert_eq!(
        eval(&mut ks, "return ('ab'):upper()", &[], &[]),
        Reply::bulk(b"AB")
    );
}

#[test]
fn the_interpreter_reaches_no_file_process_or_bytecode() {
    let mut ks = Keyspace::new();
    for source in [
        "return os.time()",
        "return io.open('/etc/passwd')",
        "return require('os')",
        "return dofile('/etc/passwd')",
        "return debug.getinfo(1)",
        "return package.loaded",
    ] {
        let text = error_text(eval(&mut ks, source, &[], &[]));
        assert!(
            text.contains("nonexistent global variable"),
            "{source}: {text}"
        );
    }
    assert_eq!(
        eval(
            &mut ks,
            "local f, e = loadstring(string.dump(function() return 1 end)) return {tostring(f), e}",
            &[],
            &[]
        ),
        Reply::Array(vec![
            Reply::bulk(b"nil"),
            Reply::bulk(b"loading bytecode is not allowed")
        ])
    );
}

#[test]
fn a_script_past_its_time_is_stopped_even_if_it_catches_errors_and_keeps_its_writes() {
    let limit = std::time::Duration::from_millis(300);
    super::set_time_limit(limit);
    let mut ks = Keyspace::new();
    let started = std::time::Instant::now();
    let text = error_text(eval(
        &mut ks,
        "redis.call('SET', KEYS[1], 'before') while true do pcall(function() while true do end end) end",
        &["k"],
        &[],
    ));
    assert!(text.starts_with("ERR Script killed"), "{text}");
    assert!(started.elapsed() >= limit);
    assert!(text.contains("longer than 300 ms"), "{text}");
    assert_eq!(
        eval(&mut ks, "return redis.call('GET', KEYS[1])", &["k"], &[]),
        Reply::bulk(b"before")
    );
    // The VM that ran it serves the next script as usual.
    assert_eq!(eval(&mut ks, "return 7", &[], &[]), Reply::Integer(7));
}

#[test]
fn the_sha1_is_the_hex_redis_prints() {
    assert_eq!(
        super::sha1_hex(b"return 1"),
        "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
    );
}

#[test]
fn no_global_can_be_replaced_and_no_library_table_filled_for_the_next_script() {
    let mut ks = Keyspace::new();
    for attempt in [
        "redis = nil",
        "string = nil",
        "pcall = function() end",
        "KEYS = {}",
        "_G.tostring = nil",
        "table.insert(_G, 'leak')",
        "table.insert(string, 'leak')",
        "table.insert(redis, 'leak')",
        "table.remove(table)",
        "table.sort(_G)",
        "loadstring('string = nil')()",
        "loadstring('y = 1')()",
    ] {
        let reply = eval(&mut ks, attempt, &[], &[]);
        assert!(reply.is_error(), "{attempt} was allowed: {reply:?}");
    }
    // Every VM the pool may hand out still has the whole environment.
    for _ in 0..(super::POOL_SIZE * 2) {
        assert_eq!(
            eval(
                &mut ks,
                "return {type(redis.call), type(string.rep), type(pcall), rawget(_G, 1) == nil, #KEYS}",
                &["k"],
                &[]
            ),
            Reply::Array(vec![
                Reply::bulk(b"function"),
                Reply::bulk(b"function"),
                Reply::bulk(b"function"),
                Reply::Integer(1),
                Reply::Integer(1),
            ])
        );
    }
    assert!(
        error_text(eval(
            &mut ks,
            "return loadstring('return nope')()",
            &[],
            &[]
        ))
        .contains("nonexistent global variable 'nope'")
    );
}

#[test]
fn the_time_limit_reaches_coroutines_and_long_library_calls() {
    let limit = std::time::Duration::from_millis(200);
    super::set_time_limit(limit);
    let mut ks = Keyspace::new();
    for spin in [
        "local f = coroutine.wrap(function() while true do end end) f()",
        "local co = coroutine.create(function() while true do end end) coroutine.resume(co)",
        "xpcall(function() error('x') end, function() while true do end end)",
        // Few instructions, each a long call into C.
        "local t = {} for i = 1, 200000 do t[i] = (i * 7919) % 300007 end while true do table.sort(t) end",
    ] {
        let started = std::time::Instant::now();
        let text = error_text(eval(&mut ks, spin, &[], &[]));
        assert!(text.starts_with("ERR Script killed"), "{spin}: {text}");
        // Stopped, not run to some natural end (the loops have none).
        assert!(started.elapsed() >= limit, "{spin}");
    }
}

#[test]
fn errors_from_redis_call_reach_handlers_and_resume_as_redis_error_tables() {
    let mut ks = Keyspace::new();
    eval(&mut ks, "redis.call('SET', KEYS[1], 'text')", &["k"], &[]);
    assert_eq!(
        eval(
            &mut ks,
            "return select(2, xpcall(function() return redis.call('INCR', KEYS[1]) end, function(e) return e.err end))",
            &["k"],
            &[]
        ),
        Reply::bulk(b"ERR value is not an integer or out of range")
    );
    assert_eq!(
        eval(
            &mut ks,
            "local co = coroutine.create(function() return redis.call('INCR', KEYS[1]) end) local ok, e = coroutine.resume(co) return {tostring(ok), e.err}",
            &["k"],
            &[]
        ),
        Reply::Array(vec![
            Reply::bulk(b"false"),
            Reply::bulk(b"ERR value is not an integer or out of range")
        ])
    );
}

#[test]
fn numbers_reach_commands_with_every_digit() {
    let mut ks = Keyspace::new();
    assert_eq!(
        eval(
            &mut ks,
            "redis.call('SET', KEYS[1], 1795939469350123) redis.call('INCRBY', KEYS[2], 1e15) return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])}",
            &["a", "b"],
            &[]
        ),
        Reply::Array(vec![
            Reply::bulk(b"1795939469350123"),
            Reply::bulk(b"1000000000000000")
        ])
    );
}

#[test]
fn a_reply_too_deep_or_too_large_is_an_error_not_a_broken_frame() {
    let mut ks = Keyspace::new();
    let deep = error_text(eval(
        &mut ks,
        "local t = {} for i = 1, 200 do t = {t} end return t",
        &[],
        &[],
    ));
    assert!(deep.contains("nests more than 100 levels"), "{deep}");
    let cycle = error_text(eval(&mut ks, "local t = {} t[1] = t return t", &[], &[]));
    assert!(cycle.contains("nests more than"), "{cycle}");
    // Shared subtables: 2^60 leaves if walked whole.
    let shared = error_text(eval(
        &mut ks,
        "local t = {1} for i = 1, 60 do t = {t, t} end return t",
        &[],
        &[],
    ));
    assert!(shared.contains("larger than 32 MiB"), "{shared}");
    let large = error_text(eval(
        &mut ks,
        "local s = string.rep('x', 1000000) local t = {} for i = 1, 40 do t[i] = s end return t",
        &[],
        &[],
    ));
    assert!(large.contains("larger than 32 MiB"), "{large}");
    assert_eq!(
        eval(
            &mut ks,
            "local t = {} for i = 1, 90 do t = {t} end return 'fine'",
            &[],
            &[]
        ),
        Reply::bulk(b"fine")
    );
}

#[test]
fn a_value_limit_stops_a_growing_string_before_it_allocates_and_a_script_at_its_command() {
    let mut ks = Keyspace::new();
    ks.limit_values(1024);
    let oom = crate::keyspace::value_too_large();
    let setbit = crate::command::parse(&[b("SETBIT"), b("big"), b("4294967295"), b("1")]).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    assert_eq!(
        ks.execute(&setbit, 0, &mut rng).reply,
        Reply::Error(oom.clone())
    );
    assert!(ks.get(b"big").is_none());
    let text = error_text(eval(
        &mut ks,
        "for i = 1, 1000000 do redis.call('RPUSH', KEYS[1], ARGV[1]) end",
        &["list"],
        &["0123456789"],
    ));
    assert!(text.starts_with(&oom.to_string()), "{text}");
    // Stopped at the command that passed the limit, not after a million.
    let len = crate::command::parse(&[b("LLEN"), b("list")]).unwrap();
    let Reply::Integer(n) = ks.execute(&len, 0, &mut rng).reply else {
        panic!("LLEN answers an integer")
    };
    assert!(n < 200, "{n} elements pushed");
}

#[test]
fn cmsgpack_refuses_hostile_input_without_allocating_for_it() {
    let mut ks = Keyspace::new();
    for (source, wanted) in [
        // An array of 4 billion elements in five bytes.
        (
            "return cmsgpack.unpack(string.char(0xdd, 0xff, 0xff, 0xff, 0xff))",
            "Missing bytes in input.",
        ),
        // A hundred thousand arrays, each inside the next.
        (
            "return cmsgpack.unpack(string.rep(string.char(0x91), 100000))",
            "Bad data format in input.",
        ),
        (
            "return cmsgpack.unpack(string.char(0xc7, 1, 1, 0))",
            "Bad data format in input.",
        ),
        // Deep enough to overflow a thread's stack if each level recursed
        // without a bound.
        (
            "local t = {} for i = 1, 100000 do t = {t} end return cjson.encode(t)",
            "excessive nesting",
        ),
        ("return cjson.decode(string.rep('[', 100000))", "JSON"),
    ] {
        let text = error_text(eval(&mut ks, source, &[], &[]));
        assert!(text.contains(wanted), "{source}: {text}");
    }
    assert_eq!(
        eval(
            &mut ks,
            "local t = cmsgpack.unpack(cmsgpack.pack({5, {6, 'x'}})) return t[2]",
            &[],
            &[]
        ),
        Reply::Array(vec![Reply::Integer(6), Reply::bulk(b"x")])
    );
}

/// A container's subcommand is checked in a script as Redis checks it
/// (an attack found `OBJECT FREQ` without its key panicking the
/// auxiliary): the answers are redis-server 7.0.15's.
#[test]
fn a_containers_subcommand_and_arity_are_checked_in_a_script() {
    let mut ks = Keyspace::new();
    let cases = [
        (
            "return redis.pcall('OBJECT','FREQ')",
            "ERR Wrong number of args calling Redis command from script",
        ),
        (
            "return redis.pcall('OBJECT','ENCODING')",
            "ERR Wrong number of args calling Redis command from script",
        ),
        (
            "return redis.pcall('OBJECT','HELP','x')",
            "ERR Wrong number of args calling Redis command from script",
        ),
        (
            "return redis.pcall('OBJECT','foo','k')",
            "ERR Unknown Redis command called from script",
        ),
        (
            "return redis.pcall('XINFO','STREAM')",
            "ERR Wrong number of args calling Redis command from script",
        ),
    ];
    for (source, want) in cases {
        let reply = eval(&mut ks, source, &["k"], &[]);
        assert!(error_text(reply).starts_with(want), "{source}");
    }
    let encoding = eval(
        &mut ks,
        "redis.call('SET',KEYS[1],'12') return redis.call('OBJECT','ENCODING',KEYS[1])",
        &["k"],
        &[],
    );
    assert_eq!(encoding, Reply::bulk(b"int"));
}
