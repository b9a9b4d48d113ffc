//! From an argument vector to a [`Command`]: one function per command (or
//! family), named in the table. Each runs after the table's arity check and
//! reports errors in the order Redis checks them, with Redis's words. Checks
//! that need the keyspace (WRONGTYPE) or the clock (expiry overflow) are the
//! executor's.

use bytes::Bytes;

use super::command::*;
use super::error::CommandError;
use super::number::{parse_f64, parse_i64};

/// A parser: the whole argument vector, name included.
pub type Parser = fn(&[Bytes]) -> std::result::Result<Command, CommandError>;

type Result<T> = std::result::Result<T, CommandError>;

fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

fn int(arg: &[u8]) -> Result<i64> {
    parse_i64(arg).ok_or(CommandError::NotInteger)
}

fn float(arg: &[u8]) -> Result<f64> {
    parse_f64(arg).ok_or(CommandError::NotFloat)
}

/// An integer that must be >= 0, as Redis's `getPositiveLongFromObjectOrReply`
/// with a message: the same message for a negative number and for no number.
fn non_negative(arg: &[u8], message: &'static str) -> Result<usize> {
    parse_i64(arg)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(CommandError::OutOfRange(message))
}

fn rest(args: &[Bytes], from: usize) -> Vec<Bytes> {
    args[from..].to_vec()
}

fn pairs(args: &[Bytes], from: usize) -> Vec<(Bytes, Bytes)> {
    args[from..]
        .chunks_exact(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect()
}

fn cursor(arg: &[u8]) -> Result<u64> {
    if arg.is_empty() || !arg.iter().all(u8::is_ascii_digit) {
        return Err(CommandError::InvalidCursor);
    }
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(CommandError::InvalidCursor)
}

/// SCAN's options from `args[from..]`; TYPE only where `allow_type`.
fn scan_opts(args: &[Bytes], from: usize, allow_type: bool) -> Result<ScanOpts> {
    let mut opts = ScanOpts {
        count: 10,
        ..ScanOpts::default()
    };
    let mut i = from;
    while i < args.len() {
        let has_next = i + 1 < args.len();
        let a = &args[i];
        if is(a, "count") && has_next {
            let n = int(&args[i + 1])?;
            if n < 1 {
                return Err(CommandError::Syntax);
            }
            opts.count = usize::try_from(n).unwrap_or(usize::MAX);
        } else if is(a, "match") && has_next {
            opts.pattern = Some(args[i + 1].clone());
        } else if is(a, "type") && has_next && allow_type {
            opts.type_name = Some(args[i + 1].clone());
        } else {
            return Err(CommandError::Syntax);
        }
        i += 2;
    }
    Ok(opts)
}

// ---- strings ------------------------------------------------------------

/// Which SET-family options a command accepts.
#[derive(Clone, Copy, PartialEq)]
enum StringOpts {
    Set,
    GetEx,
}

struct Parsed {
    cond: Cond,
    get: bool,
    keep_ttl: bool,
    persist: bool,
    expiry: Option<Expiry>,
}

/// SET's and GETEX's options, accepted and refused as Redis's
/// `parseExtendedStringArgumentsOrReply` does: a later EX replaces an
/// earlier EX, but EX with PX (or KEEPTTL, or PERSIST) is a syntax error,
/// and the number is parsed only once every option has been read.
fn string_opts(
    args: &[Bytes],
    from: usize,
    kind: StringOpts,
    command: &'static str,
) -> Result<Parsed> {
    let mut p = Parsed {
        cond: Cond::Always,
        get: false,
        keep_ttl: false,
        persist: false,
        expiry: None,
    };
    // The unit seen so far, as (millis, absolute), and where its number is.
    let mut unit: Option<((bool, bool), usize)> = None;
    let set = kind == StringOpts::Set;
    let mut i = from;
    while i < args.len() {
        let a = &args[i];
        let has_next = i + 1 < args.len();
        let kind_of = if is(a, "ex") {
            Some((false, false))
        } else if is(a, "px") {
            Some((true, false))
        } else if is(a, "exat") {
            Some((false, true))
        } else if is(a, "pxat") {
            Some((true, true))
        } else {
            None
        };
        if is(a, "nx") && set && p.cond != Cond::IfExists {
            p.cond = Cond::IfMissing;
        } else if is(a, "xx") && set && p.cond != Cond::IfMissing {
            p.cond = Cond::IfExists;
        } else if is(a, "get") && set {
            p.get = true;
        } else if is(a, "keepttl") && set && unit.is_none() {
            p.keep_ttl = true;
        } else if is(a, "persist") && !set && unit.is_none() {
            p.persist = true;
        } else if let Some(k) = kind_of
            .filter(|k| has_next && !p.keep_ttl && !p.persist && unit.is_none_or(|(u, _)| u == *k))
        {
            unit = Some((k, i + 1));
            i += 1;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    if let Some(((millis, absolute), at)) = unit {
        p.expiry = Some(Expiry {
            amount: int(&args[at])?,
            millis,
            absolute,
            command,
        });
    }
    Ok(p)
}

pub(super) fn set(a: &[Bytes]) -> Result<Command> {
    let p = string_opts(a, 3, StringOpts::Set, "set")?;
    let expiry = match (p.expiry, p.keep_ttl) {
        (Some(e), _) => SetExpiry::At(e),
        (None, true) => SetExpiry::Keep,
        (None, false) => SetExpiry::Clear,
    };
    Ok(Command::Set {
        key: a[1].clone(),
        value: a[2].clone(),
        cond: p.cond,
        expiry,
        get: p.get,
    })
}

pub(super) fn setex(a: &[Bytes]) -> Result<Command> {
    set_with_ttl(a, false, "setex")
}

pub(super) fn psetex(a: &[Bytes]) -> Result<Command> {
    set_with_ttl(a, true, "psetex")
}

fn set_with_ttl(a: &[Bytes], millis: bool, command: &'static str) -> Result<Command> {
    Ok(Command::Set {
        key: a[1].clone(),
        value: a[3].clone(),
        cond: Cond::Always,
        expiry: SetExpiry::At(Expiry {
            amount: int(&a[2])?,
            millis,
            absolute: false,
            command,
        }),
        get: false,
    })
}

pub(super) fn getset(a: &[Bytes]) -> Result<Command> {
    Ok(Command::Set {
        key: a[1].clone(),
        value: a[2].clone(),
        cond: Cond::Always,
        expiry: SetExpiry::Clear,
        get: true,
    })
}

pub(super) fn getex(a: &[Bytes]) -> Result<Command> {
    let expiry = match string_opts(a, 2, StringOpts::GetEx, "getex") {
        Err(CommandError::Syntax) => return Err(CommandError::Syntax),
        Err(e) => Err(e),
        Ok(p) => Ok(match (p.expiry, p.persist) {
            (Some(e), _) => GetExExpiry::At(e),
            (None, true) => GetExExpiry::Persist,
            (None, false) => GetExExpiry::Unchanged,
        }),
    };
    Ok(Command::GetEx {
        key: a[1].clone(),
        expiry,
    })
}

pub(super) fn mset(a: &[Bytes]) -> Result<Command> {
    if a.len() % 2 == 0 {
        return Err(CommandError::WrongArity("mset"));
    }
    Ok(Command::MSet {
        pairs: pairs(a, 1),
        only_if_none_exist: false,
    })
}

pub(super) fn msetnx(a: &[Bytes]) -> Result<Command> {
    if a.len() % 2 == 0 {
        return Err(CommandError::WrongArity("msetnx"));
    }
    Ok(Command::MSet {
        pairs: pairs(a, 1),
        only_if_none_exist: true,
    })
}

pub(super) fn setrange(a: &[Bytes]) -> Result<Command> {
    let offset = int(&a[2])?;
    let offset =
        usize::try_from(offset).map_err(|_| CommandError::OutOfRange("offset is out of range"))?;
    Ok(Command::SetRange {
        key: a[1].clone(),
        offset,
        value: a[3].clone(),
    })
}

/// OBJECT <subcommand> [key]: the table has checked the subcommand's name
/// and arity (a container's, as Redis checks them while queueing).
pub(super) fn object(a: &[Bytes]) -> Result<Command> {
    let lower = a[1].to_ascii_lowercase();
    let (sub, full) = match lower.as_slice() {
        b"encoding" => (ObjectSub::Encoding, "object|encoding"),
        b"freq" => (ObjectSub::Freq, "object|freq"),
        b"idletime" => (ObjectSub::IdleTime, "object|idletime"),
        b"refcount" => (ObjectSub::RefCount, "object|refcount"),
        b"help" if a.len() == 2 => return Ok(Command::ObjectHelp),
        b"help" => return Err(CommandError::WrongArity("object|help")),
        _ => return Err(super::stream::unknown_subcommand(&a[1], "object")),
    };
    // The table checks this first; a script's call gets here too.
    let [_, _, key] = a else {
        return Err(CommandError::WrongArity(full));
    };
    Ok(Command::Object {
        key: key.clone(),
        sub,
    })
}

/// MEMORY <subcommand> ...: USAGE key [SAMPLES count], with Redis's
/// checks of SAMPLES (before the key is looked up); the others by name.
pub(super) fn memory(a: &[Bytes]) -> Result<Command> {
    let Some((_, _, full)) = super::stream::subcommands("memory")
        .iter()
        .find(|(name, _, _)| a[1].eq_ignore_ascii_case(name.as_bytes()))
    else {
        return Err(super::stream::unknown_subcommand(&a[1], "memory"));
    };
    if *full != "memory|usage" {
        return Ok(Command::MemoryOther(full));
    }
    let Some(key) = a.get(2) else {
        return Err(CommandError::WrongArity(full));
    };
    let mut i = 3;
    while i < a.len() {
        if a[i].eq_ignore_ascii_case(b"SAMPLES") && i + 1 < a.len() {
            if int(&a[i + 1])? < 0 {
                return Err(CommandError::Syntax);
            }
            i += 2;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok(Command::MemoryUsage { key: key.clone() })
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]: options in
/// any order, repeated at will; a negative MINMATCHLEN counts as 0.
pub(super) fn lcs(a: &[Bytes]) -> Result<Command> {
    let options = (|| {
        let mut o = LcsOptions::default();
        let mut i = 3;
        while i < a.len() {
            let word = &a[i];
            if word.eq_ignore_ascii_case(b"IDX") {
                o.idx = true;
            } else if word.eq_ignore_ascii_case(b"LEN") {
                o.len = true;
            } else if word.eq_ignore_ascii_case(b"WITHMATCHLEN") {
                o.with_match_len = true;
            } else if word.eq_ignore_ascii_case(b"MINMATCHLEN") && i + 1 < a.len() {
                o.min_match_len = u64::try_from(int(&a[i + 1])?).unwrap_or(0);
                i += 1;
            } else {
                return Err(CommandError::Syntax);
            }
            i += 1;
        }
        if o.idx && o.len {
            return Err(CommandError::Other(
                "If you want both the length and indexes, please just use IDX.",
            ));
        }
        Ok(o)
    })();
    Ok(Command::Lcs {
        a: a[1].clone(),
        b: a[2].clone(),
        options,
    })
}

pub(super) fn incrby(a: &[Bytes]) -> Result<Command> {
    Ok(Command::IncrBy {
        key: a[1].clone(),
        by: int(&a[2])?,
    })
}

pub(super) fn decrby(a: &[Bytes]) -> Result<Command> {
    let by = int(&a[2])?;
    if by == i64::MIN {
        return Err(CommandError::DecrementOverflow);
    }
    Ok(Command::IncrBy {
        key: a[1].clone(),
        by: -by,
    })
}

// ---- keys ---------------------------------------------------------------

fn expire_generic(
    a: &[Bytes],
    millis: bool,
    absolute: bool,
    command: &'static str,
) -> Result<Command> {
    let mut cond = ExpireCond::default();
    for opt in &a[3..] {
        if is(opt, "nx") {
            cond.nx = true;
        } else if is(opt, "xx") {
            cond.xx = true;
        } else if is(opt, "gt") {
            cond.gt = true;
        } else if is(opt, "lt") {
            cond.lt = true;
        } else {
            return Err(CommandError::UnsupportedOption(super::table::one_line(
                &String::from_utf8_lossy(opt),
            )));
        }
    }
    if cond.nx && (cond.xx || cond.gt || cond.lt) {
        return Err(CommandError::ExpireOptions);
    }
    if cond.gt && cond.lt {
        return Err(CommandError::Other(
            "GT and LT options at the same time are not compatible",
        ));
    }
    Ok(Command::Expire {
        key: a[1].clone(),
        when: Expiry {
            amount: int(&a[2])?,
            millis,
            absolute,
            command,
        },
        cond,
    })
}

pub(super) fn expire(a: &[Bytes]) -> Result<Command> {
    expire_generic(a, false, false, "expire")
}
pub(super) fn pexpire(a: &[Bytes]) -> Result<Command> {
    expire_generic(a, true, false, "pexpire")
}
pub(super) fn expireat(a: &[Bytes]) -> Result<Command> {
    expire_generic(a, false, true, "expireat")
}
pub(super) fn pexpireat(a: &[Bytes]) -> Result<Command> {
    expire_generic(a, true, true, "pexpireat")
}

pub(super) fn copy(a: &[Bytes]) -> Result<Command> {
    let mut replace = false;
    let mut i = 3;
    while i < a.len() {
        if is(&a[i], "replace") {
            replace = true;
        } else if is(&a[i], "db") && i + 1 < a.len() {
            if int(&a[i + 1])? != 0 {
                return Err(CommandError::Other("DB index is out of range"));
            }
            i += 1;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    Ok(Command::Copy {
        src: a[1].clone(),
        dst: a[2].clone(),
        replace,
    })
}

/// FLUSHALL and FLUSHDB: `[ASYNC | SYNC]`, both run at once (Redis's
/// ASYNC frees memory in the background; here a flush only leaves
/// tombstones, which cost what the next purge does).
pub(super) fn flush(a: &[Bytes]) -> Result<Command> {
    match a {
        [_] => Ok(Command::FlushAll),
        [_, mode] if is(mode, "async") || is(mode, "sync") => Ok(Command::FlushAll),
        _ => Err(CommandError::Syntax),
    }
}

pub(super) fn scan(a: &[Bytes]) -> Result<Command> {
    Ok(Command::Scan {
        cursor: cursor(&a[1])?,
        opts: scan_opts(a, 2, true)?,
    })
}

/// HSCAN, SSCAN, ZSCAN: the cursor is checked now, the options after the
/// key's type (as Redis does), so they are kept raw until execution.
#[allow(clippy::type_complexity)]
pub(super) fn key_scan(a: &[Bytes]) -> Result<(Key, u64, Result<ScanOpts>)> {
    let c = collection_cursor(&a[2])?;
    Ok((a[1].clone(), c, scan_opts(a, 3, false)))
}

/// HSCAN's, SSCAN's and ZSCAN's cursor as Redis reads it, with C's
/// `strtoul` and no leading space: an optional sign, decimal digits, the
/// whole argument; a minus wraps (`-1` is 2^64-1), and the empty string
/// is 0 (strtoul converts nothing and stops at its end). Past 2^64-1, or
/// anything else: `ERR invalid cursor`.
fn collection_cursor(arg: &[u8]) -> Result<u64> {
    let (negative, digits) = match arg.split_first() {
        None => return Ok(0),
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        Some(_) => (false, arg),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(CommandError::InvalidCursor);
    }
    let value = digits.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    });
    let value = value.ok_or(CommandError::InvalidCursor)?;
    Ok(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

// ---- hashes -------------------------------------------------------------

pub(super) fn hset(a: &[Bytes]) -> Result<Command> {
    hset_generic(a, false, "hset")
}
pub(super) fn hmset(a: &[Bytes]) -> Result<Command> {
    hset_generic(a, true, "hmset")
}
fn hset_generic(a: &[Bytes], legacy: bool, name: &'static str) -> Result<Command> {
    if a.len() % 2 == 1 {
        return Err(CommandError::WrongArity(name));
    }
    Ok(Command::HSet {
        key: a[1].clone(),
        pairs: pairs(a, 2),
        legacy,
    })
}

pub(super) fn hincrby(a: &[Bytes]) -> Result<Command> {
    Ok(Command::HIncrBy {
        key: a[1].clone(),
        field: a[2].clone(),
        by: int(&a[3])?,
    })
}

/// HRANDFIELD and ZRANDMEMBER: `key [count [WITHVALUES|WITHSCORES]]`.
fn rand_with(a: &[Bytes], with: &str) -> Result<(Option<i64>, bool)> {
    if a.len() < 3 {
        return Ok((None, false));
    }
    let count = int(&a[2])?;
    if count == i64::MIN {
        return Err(CommandError::Other(
            "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    match a.len() {
        3 => Ok((Some(count), false)),
        // Redis refuses a count whose reply of pairs would overflow a long,
        // before it looks at the key (so a missing key or another type too).
        4 if is(&a[3], with) && count.unsigned_abs() > (i64::MAX / 2) as u64 => {
            Err(CommandError::OutOfRange("value is out of range"))
        }
        4 if is(&a[3], with) => Ok((Some(count), true)),
        _ => Err(CommandError::Syntax),
    }
}

pub(super) fn hrandfield(a: &[Bytes]) -> Result<Command> {
    let (count, with_values) = rand_with(a, "withvalues")?;
    Ok(Command::HRandField {
        key: a[1].clone(),
        count,
        with_values,
    })
}

// ---- lists --------------------------------------------------------------

fn pop(a: &[Bytes], front: bool, name: &'static str) -> Result<Command> {
    if a.len() > 3 {
        return Err(CommandError::WrongArity(name));
    }
    let count = match a.get(2) {
        Some(c) => Some(non_negative(c, "value is out of range, must be positive")?),
        None => None,
    };
    Ok(Command::Pop {
        key: a[1].clone(),
        front,
        count,
    })
}
pub(super) fn lpop(a: &[Bytes]) -> Result<Command> {
    pop(a, true, "lpop")
}
pub(super) fn rpop(a: &[Bytes]) -> Result<Command> {
    pop(a, false, "rpop")
}

pub(super) fn linsert(a: &[Bytes]) -> Result<Command> {
    let before = if is(&a[2], "after") {
        false
    } else if is(&a[2], "before") {
        true
    } else {
        return Err(CommandError::Syntax);
    };
    Ok(Command::LInsert {
        key: a[1].clone(),
        before,
        pivot: a[3].clone(),
        element: a[4].clone(),
    })
}

pub(super) fn lpos(a: &[Bytes]) -> Result<Command> {
    let (mut rank, mut count, mut max_len) = (1i64, None, 0usize);
    let mut i = 3;
    while i < a.len() {
        let has_next = i + 1 < a.len();
        if is(&a[i], "rank") && has_next {
            rank = int(&a[i + 1])?;
            if rank == 0 {
                return Err(CommandError::Other(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if is(&a[i], "count") && has_next {
            count = Some(non_negative(&a[i + 1], "COUNT can't be negative")?);
        } else if is(&a[i], "maxlen") && has_next {
            max_len = non_negative(&a[i + 1], "MAXLEN can't be negative")?;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 2;
    }
    Ok(Command::LPos {
        key: a[1].clone(),
        element: a[2].clone(),
        rank,
        count,
        max_len,
    })
}

fn side(arg: &[u8]) -> Result<bool> {
    if is(arg, "left") {
        Ok(true)
    } else if is(arg, "right") {
        Ok(false)
    } else {
        Err(CommandError::Syntax)
    }
}

pub(super) fn lmove(a: &[Bytes]) -> Result<Command> {
    Ok(Command::LMove {
        src: a[1].clone(),
        dst: a[2].clone(),
        from_front: side(&a[3])?,
        to_front: side(&a[4])?,
    })
}

/// LMPOP's and ZMPOP's `numkeys key... WHERE [COUNT count]`: the keys, the
/// side (`where` parses it) and the count (1 when not given).
fn mpop<T>(a: &[Bytes], side: impl Fn(&[u8]) -> Result<T>) -> Result<(Vec<Key>, T, usize)> {
    let n = parse_i64(&a[1])
        .filter(|n| *n >= 1)
        .ok_or(CommandError::Other("numkeys should be greater than 0"))?;
    let at = usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_add(2))
        .filter(|at| *at < a.len())
        .ok_or(CommandError::Syntax)?;
    let side = side(&a[at])?;
    let mut count = None;
    let mut i = at + 1;
    while i < a.len() {
        if count.is_none() && is(&a[i], "count") && i + 1 < a.len() {
            let n = parse_i64(&a[i + 1])
                .filter(|n| *n >= 1)
                .ok_or(CommandError::Other("count should be greater than 0"))?;
            count = Some(usize::try_from(n).unwrap_or(usize::MAX));
            i += 2;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok((a[2..at].to_vec(), side, count.unwrap_or(1)))
}

pub(super) fn lmpop(a: &[Bytes]) -> Result<Command> {
    let (keys, front, count) = mpop(a, side)?;
    Ok(Command::LMPop { keys, front, count })
}

/// A blocking command's timeout as Redis reads it: seconds as a long
/// double, times 1,000 and rounded up to a whole number of milliseconds
/// (so `0.0009` waits 1 ms, and `-0.0001` is 0, forever); 0 means
/// forever. A NaN or anything not a
/// number: `timeout is not a float or out of range`; below 0, or past a
/// `long long` (an infinity, `1e400`: C's conversion makes them the least
/// `long long`): `timeout is negative`; a deadline past the 64-bit clock:
/// `timeout is out of range`.
fn block_timeout(arg: &[u8]) -> Result<u64> {
    // Read as a long double (`1e400` is a number), as Redis reads it.
    let seconds = super::long_double::LongDouble::parse(arg)
        .ok_or(CommandError::Other(
            "timeout is not a float or out of range",
        ))?
        .to_f64();
    let ms = (seconds * 1000.0).ceil();
    // Below 0, or from 2^63 (past `long long`, infinities included).
    if !(0.0..9.223_372_036_854_776e18).contains(&ms) {
        return Err(CommandError::Other("timeout is negative"));
    }
    let ms = ms as i64;
    let now = i64::try_from(crate::clock::unix_ms()).unwrap_or(i64::MAX);
    if ms > i64::MAX - now {
        return Err(CommandError::Other("timeout is out of range"));
    }
    Ok(ms as u64)
}

/// BLPOP, BRPOP: `key... timeout`.
fn bpop(a: &[Bytes], front: bool) -> Result<Command> {
    let last = a.len() - 1;
    let timeout_ms = block_timeout(&a[last])?;
    Ok(Command::BPop {
        keys: a[1..last].to_vec(),
        front,
        timeout_ms,
    })
}
pub(super) fn blpop(a: &[Bytes]) -> Result<Command> {
    bpop(a, true)
}
pub(super) fn brpop(a: &[Bytes]) -> Result<Command> {
    bpop(a, false)
}

pub(super) fn blmove(a: &[Bytes]) -> Result<Command> {
    let from_front = side(&a[3])?;
    let to_front = side(&a[4])?;
    Ok(Command::BLMove {
        src: a[1].clone(),
        dst: a[2].clone(),
        from_front,
        to_front,
        timeout_ms: block_timeout(&a[5])?,
    })
}
pub(super) fn brpoplpush(a: &[Bytes]) -> Result<Command> {
    Ok(Command::BLMove {
        src: a[1].clone(),
        dst: a[2].clone(),
        from_front: false,
        to_front: true,
        timeout_ms: block_timeout(&a[3])?,
    })
}

/// BLMPOP: `timeout numkeys key... LEFT|RIGHT [COUNT n]`, the timeout
/// read last, as Redis reads it.
pub(super) fn blmpop(a: &[Bytes]) -> Result<Command> {
    let (keys, front, count) = mpop(&a[1..], side)?;
    let timeout_ms = block_timeout(&a[1])?;
    Ok(Command::BLMPop {
        keys,
        front,
        count,
        timeout_ms,
    })
}

// ---- sets ---------------------------------------------------------------

pub(super) fn spop(a: &[Bytes]) -> Result<Command> {
    if a.len() > 3 {
        return Err(CommandError::Syntax);
    }
    let count = match a.get(2) {
        Some(c) => Some(non_negative(c, "value is out of range, must be positive")?),
        None => None,
    };
    Ok(Command::SPop {
        key: a[1].clone(),
        count,
    })
}

pub(super) fn srandmember(a: &[Bytes]) -> Result<Command> {
    if a.len() > 3 {
        return Err(CommandError::Syntax);
    }
    let count = match a.get(2) {
        Some(c) => {
            let n = int(c)?;
            if n == i64::MIN {
                return Err(CommandError::Other(
                    "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
                ));
            }
            Some(n)
        }
        None => None,
    };
    Ok(Command::SRandMember {
        key: a[1].clone(),
        count,
    })
}

fn algebra(a: &[Bytes], op: SetOp, store: bool) -> Result<Command> {
    Ok(if store {
        Command::SetAlgebra {
            op,
            keys: rest(a, 2),
            store: Some(a[1].clone()),
        }
    } else {
        Command::SetAlgebra {
            op,
            keys: rest(a, 1),
            store: None,
        }
    })
}
pub(super) fn sinter(a: &[Bytes]) -> Result<Command> {
    algebra(a, SetOp::Inter, false)
}
pub(super) fn sunion(a: &[Bytes]) -> Result<Command> {
    algebra(a, SetOp::Union, false)
}
pub(super) fn sdiff(a: &[Bytes]) -> Result<Command> {
    algebra(a, SetOp::Diff, false)
}
pub(super) fn sinterstore(a: &[Bytes]) -> Result<Command> {
    algebra(a, SetOp::Inter, true)
}
pub(super) fn sunionstore(a: &[Bytes]) -> Result<Command> {
    algebra(a, SetOp::Union, true)
}
pub(super) fn sdiffstore(a: &[Bytes]) -> Result<Command> {
    algebra(a, SetOp::Diff, true)
}

/// `numkeys key... [LIMIT n]`: the keys of SINTERCARD.
pub(super) fn numkeys(a: &[Bytes], at: usize) -> Result<usize> {
    let n = parse_i64(&a[at]).unwrap_or(0);
    if n < 1 {
        return Err(CommandError::Other("numkeys should be greater than 0"));
    }
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n > a.len() - at - 1 {
        return Err(CommandError::Other(
            "Number of keys can't be greater than number of args",
        ));
    }
    Ok(n)
}

pub(super) fn sintercard(a: &[Bytes]) -> Result<Command> {
    let n = numkeys(a, 1)?;
    let mut limit = 0;
    let mut i = 2 + n;
    while i < a.len() {
        if is(&a[i], "limit") && i + 1 < a.len() {
            limit = non_negative(&a[i + 1], "LIMIT can't be negative")?;
            i += 2;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok(Command::SInterCard {
        keys: a[2..2 + n].to_vec(),
        limit,
    })
}

// ---- sorted sets --------------------------------------------------------

pub(super) fn zadd(a: &[Bytes]) -> Result<Command> {
    let mut opts = ZAddOpts::default();
    let (mut nx, mut xx) = (false, false);
    let mut i = 2;
    while i < a.len() {
        let o = &a[i];
        if is(o, "nx") {
            nx = true;
        } else if is(o, "xx") {
            xx = true;
        } else if is(o, "ch") {
            opts.ch = true;
        } else if is(o, "gt") {
            opts.gt = true;
        } else if is(o, "lt") {
            opts.lt = true;
        } else if is(o, "incr") {
            opts.incr = true;
        } else {
            break;
        }
        i += 1;
    }
    let elements = a.len() - i;
    if elements == 0 || elements % 2 == 1 {
        return Err(CommandError::Syntax);
    }
    if nx && xx {
        return Err(CommandError::ZAddXxNx);
    }
    if ((opts.gt || opts.lt) && nx) || (opts.gt && opts.lt) {
        return Err(CommandError::ZAddGtLtNx);
    }
    if opts.incr && elements > 2 {
        return Err(CommandError::ZAddIncrPairs);
    }
    opts.cond = if nx {
        Cond::IfMissing
    } else if xx {
        Cond::IfExists
    } else {
        Cond::Always
    };
    let mut scored = Vec::with_capacity(elements / 2);
    for p in a[i..].chunks_exact(2) {
        scored.push((float(&p[0])?, p[1].clone()));
    }
    Ok(Command::ZAdd {
        key: a[1].clone(),
        opts,
        pairs: scored,
    })
}

pub(super) fn zincrby(a: &[Bytes]) -> Result<Command> {
    // Redis runs ZINCRBY as ZADD INCR, whose option words come first: one
    // in the increment's place leaves a lone member, a syntax error.
    if ["nx", "xx", "gt", "lt", "ch", "incr"]
        .iter()
        .any(|word| is(&a[2], word))
    {
        return Err(CommandError::Syntax);
    }
    Ok(Command::ZIncrBy {
        key: a[1].clone(),
        by: float(&a[2])?,
        member: a[3].clone(),
    })
}

/// A score bound: `1.5`, `(1.5`, `-inf`, `+inf`.
pub(super) fn score_bound(arg: &[u8]) -> Result<ScoreBound> {
    let (exclusive, number) = match arg.split_first() {
        Some((b'(', rest)) => (true, rest),
        _ => (false, arg),
    };
    let score =
        crate::command::number::parse_f64_lax(number).ok_or(CommandError::MinMaxNotFloat)?;
    Ok(ScoreBound { score, exclusive })
}

/// A lex bound: `-`, `+`, `[x`, `(x`.
pub(super) fn lex_bound(arg: &Bytes) -> Result<LexBound> {
    match arg.first() {
        Some(b'-') if arg.len() == 1 => Ok(LexBound::Min),
        Some(b'+') if arg.len() == 1 => Ok(LexBound::Max),
        Some(b'[') => Ok(LexBound::Member {
            member: arg.slice(1..),
            exclusive: false,
        }),
        Some(b'(') => Ok(LexBound::Member {
            member: arg.slice(1..),
            exclusive: true,
        }),
        _ => Err(CommandError::MinMaxNotLex),
    }
}

pub(super) fn zcount(a: &[Bytes]) -> Result<Command> {
    Ok(Command::ZCount {
        key: a[1].clone(),
        min: score_bound(&a[2])?,
        max: score_bound(&a[3])?,
    })
}

pub(super) fn zlexcount(a: &[Bytes]) -> Result<Command> {
    Ok(Command::ZLexCount {
        key: a[1].clone(),
        min: lex_bound(&a[2])?,
        max: lex_bound(&a[3])?,
    })
}

#[derive(Clone, Copy, PartialEq)]
enum RangeKind {
    Rank,
    Score,
    Lex,
}

/// ZRANGE and its older forms, as Redis's `zrangeGenericCommand`: `kind`
/// and `rev` are what the command's name implies; every form takes
/// WITHSCORES and LIMIT (and refuses them afterwards where they make no
/// sense, with Redis's words), only ZRANGE itself (`modern`) takes BYSCORE,
/// BYLEX and REV, each at most once (BYSCORE and BYLEX together count as
/// twice).
/// ZRANGE and its older forms (`modern`: ZRANGE's BYSCORE, BYLEX and REV
/// are accepted); `store`: ZRANGESTORE's arguments from its source key
/// on, where WITHSCORES is a syntax error.
fn zrange_generic(
    a: &[Bytes],
    mut kind: RangeKind,
    mut rev: bool,
    modern: bool,
    store: bool,
) -> Result<Command> {
    let mut with_scores = false;
    let mut limit = None;
    let mut i = 4;
    while i < a.len() {
        let o = &a[i];
        let left = a.len() - i - 1;
        if !store && is(o, "withscores") {
            with_scores = true;
        } else if is(o, "limit") && left >= 2 {
            limit = Some((int(&a[i + 1])?, int(&a[i + 2])?));
            i += 2;
        } else if modern && kind == RangeKind::Rank && is(o, "byscore") {
            kind = RangeKind::Score;
        } else if modern && kind == RangeKind::Rank && is(o, "bylex") {
            kind = RangeKind::Lex;
        } else if modern && !rev && is(o, "rev") {
            rev = true;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    if kind == RangeKind::Rank {
        // A count of -1 is Redis's "no limit" value, so `LIMIT n -1` is no
        // LIMIT at all and a rank range takes it (offset ignored).
        match limit {
            Some((_, -1)) => limit = None,
            Some(_) => {
                return Err(CommandError::Other(
                    "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
                ));
            }
            None => {}
        }
    }
    if with_scores && kind == RangeKind::Lex {
        return Err(CommandError::Other(
            "syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    // With REV, BYSCORE and BYLEX take the upper bound first.
    let (lo, hi) = if rev && kind != RangeKind::Rank {
        (&a[3], &a[2])
    } else {
        (&a[2], &a[3])
    };
    let range = match kind {
        RangeKind::Rank => ZRangeBy::Rank {
            start: int(lo)?,
            stop: int(hi)?,
        },
        RangeKind::Score => ZRangeBy::Score {
            min: score_bound(lo)?,
            max: score_bound(hi)?,
        },
        RangeKind::Lex => ZRangeBy::Lex {
            min: lex_bound(lo)?,
            max: lex_bound(hi)?,
        },
    };
    Ok(Command::ZRange {
        key: a[1].clone(),
        range,
        rev,
        limit,
        with_scores,
    })
}

pub(super) fn zrange(a: &[Bytes]) -> Result<Command> {
    zrange_generic(a, RangeKind::Rank, false, true, false)
}
pub(super) fn zrangestore(a: &[Bytes]) -> Result<Command> {
    match zrange_generic(&a[1..], RangeKind::Rank, false, true, true)? {
        Command::ZRange {
            key,
            range,
            rev,
            limit,
            ..
        } => Ok(Command::ZRangeStore {
            dst: a[1].clone(),
            src: key,
            range: Box::new(range),
            rev,
            limit,
        }),
        other => Ok(other),
    }
}
pub(super) fn zrevrange(a: &[Bytes]) -> Result<Command> {
    zrange_generic(a, RangeKind::Rank, true, false, false)
}
pub(super) fn zrangebyscore(a: &[Bytes]) -> Result<Command> {
    zrange_generic(a, RangeKind::Score, false, false, false)
}
pub(super) fn zrevrangebyscore(a: &[Bytes]) -> Result<Command> {
    zrange_generic(a, RangeKind::Score, true, false, false)
}
pub(super) fn zrangebylex(a: &[Bytes]) -> Result<Command> {
    zrange_generic(a, RangeKind::Lex, false, false, false)
}
pub(super) fn zrevrangebylex(a: &[Bytes]) -> Result<Command> {
    zrange_generic(a, RangeKind::Lex, true, false, false)
}

fn zpop(a: &[Bytes], max: bool) -> Result<Command> {
    if a.len() > 3 {
        return Err(CommandError::Syntax);
    }
    let count = match a.get(2) {
        Some(c) => Some(non_negative(c, "value is out of range, must be positive")? as i64),
        None => None,
    };
    Ok(Command::ZPop {
        key: a[1].clone(),
        max,
        count,
    })
}
pub(super) fn zpopmin(a: &[Bytes]) -> Result<Command> {
    zpop(a, false)
}
pub(super) fn zpopmax(a: &[Bytes]) -> Result<Command> {
    zpop(a, true)
}

/// `MIN` or `MAX`: whether ZMPOP pops the highest scores.
fn min_max(arg: &[u8]) -> Result<bool> {
    if is(arg, "min") {
        Ok(false)
    } else if is(arg, "max") {
        Ok(true)
    } else {
        Err(CommandError::Syntax)
    }
}

pub(super) fn zmpop(a: &[Bytes]) -> Result<Command> {
    let (keys, max, count) = mpop(a, min_max)?;
    Ok(Command::ZMPop { keys, max, count })
}

/// BZMPOP: `timeout numkeys key... MIN|MAX [COUNT n]`, the timeout read
/// last.
pub(super) fn bzmpop(a: &[Bytes]) -> Result<Command> {
    let (keys, max, count) = mpop(&a[1..], min_max)?;
    let timeout_ms = block_timeout(&a[1])?;
    Ok(Command::BZMPop {
        keys,
        max,
        count,
        timeout_ms,
    })
}

/// BZPOPMIN, BZPOPMAX: `key... timeout`.
fn bzpop(a: &[Bytes], max: bool) -> Result<Command> {
    let last = a.len() - 1;
    let timeout_ms = block_timeout(&a[last])?;
    Ok(Command::BZPop {
        keys: a[1..last].to_vec(),
        max,
        timeout_ms,
    })
}
pub(super) fn bzpopmin(a: &[Bytes]) -> Result<Command> {
    bzpop(a, false)
}
pub(super) fn bzpopmax(a: &[Bytes]) -> Result<Command> {
    bzpop(a, true)
}

/// ZUNION, ZINTER, ZDIFF (`store`: their STORE variants, the destination
/// first) and ZINTERCARD (`card`): `numkeys key... [options]`. The count's
/// errors come here; the options' come after the keys' types are checked,
/// as in Redis, so they are kept in the command.
fn zalgebra(a: &[Bytes], op: SetOp, store: bool, card: bool) -> Result<Command> {
    let at = if store { 2 } else { 1 };
    let n = int(&a[at])?;
    if n < 1 {
        return Err(CommandError::AtLeastOneKey(table_name(&a[0])));
    }
    let first = at + 1;
    let end = usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_add(first))
        .filter(|end| *end <= a.len())
        .ok_or(CommandError::Syntax)?;
    Ok(Command::ZAlgebra {
        op,
        keys: a[first..end].to_vec(),
        store: store.then(|| a[1].clone()),
        opts: Box::new(zalgebra_opts(&a[end..], end - first, op, store, card)),
    })
}

/// The options after the keys of [`zalgebra`]'s commands, for `n` keys.
fn zalgebra_opts(
    a: &[Bytes],
    n: usize,
    op: SetOp,
    store: bool,
    card: bool,
) -> Result<ZAlgebraOpts> {
    let mut opts = ZAlgebraOpts {
        card,
        ..ZAlgebraOpts::default()
    };
    let combines = op != SetOp::Diff && !card;
    let mut i = 0;
    while i < a.len() {
        let left = a.len() - i;
        if combines && left > n && is(&a[i], "weights") {
            opts.weights = a[i + 1..=i + n]
                .iter()
                .map(|w| parse_f64(w).ok_or(CommandError::Other("weight value is not a float")))
                .collect::<Result<_>>()?;
            i += n + 1;
        } else if combines && left >= 2 && is(&a[i], "aggregate") {
            let how = &a[i + 1];
            opts.aggregate = if is(how, "sum") {
                Aggregate::Sum
            } else if is(how, "min") {
                Aggregate::Min
            } else if is(how, "max") {
                Aggregate::Max
            } else {
                return Err(CommandError::Syntax);
            };
            i += 2;
        } else if !store && !card && is(&a[i], "withscores") {
            opts.with_scores = true;
            i += 1;
        } else if card && left >= 2 && is(&a[i], "limit") {
            opts.limit = non_negative(&a[i + 1], "LIMIT can't be negative")?;
            i += 2;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok(opts)
}

/// The table's own spelling of a command's name (lower case), for the
/// errors that name it.
fn table_name(name: &[u8]) -> &'static str {
    super::table::lookup(name).map_or("", |spec| spec.name)
}

pub(super) fn zunion(a: &[Bytes]) -> Result<Command> {
    zalgebra(a, SetOp::Union, false, false)
}
pub(super) fn zinter(a: &[Bytes]) -> Result<Command> {
    zalgebra(a, SetOp::Inter, false, false)
}
pub(super) fn zdiff(a: &[Bytes]) -> Result<Command> {
    zalgebra(a, SetOp::Diff, false, false)
}
pub(super) fn zunionstore(a: &[Bytes]) -> Result<Command> {
    zalgebra(a, SetOp::Union, true, false)
}
pub(super) fn zinterstore(a: &[Bytes]) -> Result<Command> {
    zalgebra(a, SetOp::Inter, true, false)
}
pub(super) fn zdiffstore(a: &[Bytes]) -> Result<Command> {
    zalgebra(a, SetOp::Diff, true, false)
}
pub(super) fn zintercard(a: &[Bytes]) -> Result<Command> {
    zalgebra(a, SetOp::Inter, false, true)
}

pub(super) fn zrandmember(a: &[Bytes]) -> Result<Command> {
    let (count, with_scores) = rand_with(a, "withscores")?;
    Ok(Command::ZRandMember {
        key: a[1].clone(),
        count,
        with_scores,
    })
}

pub(super) fn zremrangebyrank(a: &[Bytes]) -> Result<Command> {
    Ok(Command::ZRemRange {
        key: a[1].clone(),
        range: ZRangeBy::Rank {
            start: int(&a[2])?,
            stop: int(&a[3])?,
        },
    })
}
pub(super) fn zremrangebyscore(a: &[Bytes]) -> Result<Command> {
    Ok(Command::ZRemRange {
        key: a[1].clone(),
        range: ZRangeBy::Score {
            min: score_bound(&a[2])?,
            max: score_bound(&a[3])?,
        },
    })
}
pub(super) fn zremrangebylex(a: &[Bytes]) -> Result<Command> {
    Ok(Command::ZRemRange {
        key: a[1].clone(),
        range: ZRangeBy::Lex {
            min: lex_bound(&a[2])?,
            max: lex_bound(&a[3])?,
        },
    })
}

// ---- simple shapes, used by the table through small closures -------------

pub(super) fn int_arg(arg: &[u8]) -> Result<i64> {
    int(arg)
}

pub(super) fn keys_from(a: &[Bytes], from: usize) -> Vec<Key> {
    rest(a, from)
}

/// EVAL and EVALSHA (`by_sha`), and their read-only forms: the script (or
/// its SHA1), `numkeys`, the keys, then the arguments.
fn eval_with(a: &[Bytes], by_sha: bool, read_only: bool) -> Result<Command> {
    let n = parse_i64(&a[2]).ok_or(CommandError::NotInteger)?;
    if n < 0 {
        return Err(CommandError::Other("Number of keys can't be negative"));
    }
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n > a.len() - 3 {
        return Err(CommandError::Other(
            "Number of keys can't be greater than number of args",
        ));
    }
    let body = if by_sha {
        crate::script::ScriptBody::Sha(a[1].clone())
    } else {
        crate::script::ScriptBody::Source(a[1].clone())
    };
    Ok(Command::Eval(Box::new(crate::script::Eval {
        body,
        keys: a[3..3 + n].to_vec(),
        args: a[3 + n..].to_vec(),
        read_only,
    })))
}

pub(super) fn eval(a: &[Bytes]) -> Result<Command> {
    eval_with(a, false, false)
}

pub(super) fn eval_ro(a: &[Bytes]) -> Result<Command> {
    eval_with(a, false, true)
}

pub(super) fn evalsha(a: &[Bytes]) -> Result<Command> {
    eval_with(a, true, false)
}

pub(super) fn evalsha_ro(a: &[Bytes]) -> Result<Command> {
    eval_with(a, true, true)
}

/// SCRIPT LOAD, EXISTS, FLUSH [ASYNC|SYNC], KILL and HELP, with Redis's
/// errors for the rest.
pub(super) fn script(a: &[Bytes]) -> Result<Command> {
    use crate::script::ScriptOp;
    let sub = String::from_utf8_lossy(&a[1]).to_ascii_lowercase();
    let wrong = || {
        CommandError::Relayed(format!(
            "ERR wrong number of arguments for 'script|{sub}' command"
        ))
    };
    let op = match sub.as_str() {
        "load" if a.len() == 3 => ScriptOp::Load(a[2].clone()),
        "exists" if a.len() >= 3 => ScriptOp::Exists(a[2..].to_vec()),
        "flush" => {
            if a.len() > 3
                || a.get(2)
                    .is_some_and(|mode| !is(mode, "async") && !is(mode, "sync"))
            {
                return Err(CommandError::Other(
                    "SCRIPT FLUSH only support SYNC|ASYNC option",
                ));
            }
            ScriptOp::Flush
        }
        "kill" if a.len() == 2 => ScriptOp::Kill,
        "help" if a.len() == 2 => ScriptOp::Help,
        "load" | "exists" | "kill" | "help" => return Err(wrong()),
        _ => {
            return Err(CommandError::Relayed(format!(
                "ERR unknown subcommand '{}'. Try SCRIPT HELP.",
                String::from_utf8_lossy(&a[1])
            )));
        }
    };
    Ok(Command::Script(op))
}

/// A bit offset as Redis reads one: not negative, below 2^32 (512 MB of
/// bytes); with `#n` (BITFIELD) n times `width`.
fn bit_offset(arg: &[u8], width: Option<u32>) -> Result<u64> {
    let err = || CommandError::Other("bit offset is not an integer or out of range");
    let (digits, times) = match (arg.first(), width) {
        (Some(b'#'), Some(width)) => (&arg[1..], i64::from(width)),
        _ => (arg, 1),
    };
    let n = parse_i64(digits)
        .and_then(|n| n.checked_mul(times))
        .ok_or_else(err)?;
    if n < 0 || (n >> 3) >= 512 * 1024 * 1024 {
        return Err(err());
    }
    Ok(n as u64)
}

pub(super) fn setbit(a: &[Bytes]) -> Result<Command> {
    let offset = bit_offset(&a[2], None)?;
    let bit = match parse_i64(&a[3]) {
        Some(0) => false,
        Some(1) => true,
        _ => return Err(CommandError::Other("bit is not an integer or out of range")),
    };
    Ok(Command::SetBit {
        key: a[1].clone(),
        offset,
        bit,
    })
}

pub(super) fn getbit(a: &[Bytes]) -> Result<Command> {
    Ok(Command::GetBit {
        key: a[1].clone(),
        offset: bit_offset(&a[2], None)?,
    })
}

/// BYTE or BIT.
fn bit_unit(arg: &[u8]) -> Result<bool> {
    if is(arg, "bit") {
        Ok(true)
    } else if is(arg, "byte") {
        Ok(false)
    } else {
        Err(CommandError::Syntax)
    }
}

pub(super) fn bitcount(a: &[Bytes]) -> Result<Command> {
    let range = match a.len() {
        2 => Ok(None),
        4 | 5 => (|| {
            let (start, end) = (int(&a[2])?, int(&a[3])?);
            // Both from the end and crossed: empty, before the unit is
            // even read (Redis 7.0).
            if start < 0 && end < 0 && start > end {
                return Ok(Some(BitRange {
                    start: 1,
                    end: 0,
                    bits: false,
                }));
            }
            Ok(Some(BitRange {
                start,
                end,
                bits: a.get(4).map(|u| bit_unit(u)).transpose()?.unwrap_or(false),
            }))
        })(),
        _ => Err(CommandError::Syntax),
    };
    Ok(Command::BitCount {
        key: a[1].clone(),
        range,
    })
}

pub(super) fn bitpos(a: &[Bytes]) -> Result<Command> {
    let bit = match int(&a[2])? {
        0 => false,
        1 => true,
        _ => return Err(CommandError::Other("The bit argument must be 1 or 0.")),
    };
    let range = (|| {
        if a.len() > 6 {
            return Err(CommandError::Syntax);
        }
        // Redis reads the start, the unit, then the end.
        let start = a.get(3).map(|s| int(s)).transpose()?;
        let bits = a.get(5).map(|u| bit_unit(u)).transpose()?.unwrap_or(false);
        Ok(BitPosRange {
            start,
            end: a.get(4).map(|e| int(e)).transpose()?,
            bits,
        })
    })();
    Ok(Command::BitPos {
        key: a[1].clone(),
        bit,
        range,
    })
}

pub(super) fn bitop(a: &[Bytes]) -> Result<Command> {
    let op = if is(&a[1], "and") {
        BitOpKind::And
    } else if is(&a[1], "or") {
        BitOpKind::Or
    } else if is(&a[1], "xor") {
        BitOpKind::Xor
    } else if is(&a[1], "not") {
        BitOpKind::Not
    } else {
        return Err(CommandError::Syntax);
    };
    if op == BitOpKind::Not && a.len() != 4 {
        return Err(CommandError::Other(
            "BITOP NOT must be called with a single source key.",
        ));
    }
    Ok(Command::BitOp {
        op,
        dest: a[2].clone(),
        keys: rest(a, 3),
    })
}

pub(super) fn bitfield(a: &[Bytes]) -> Result<Command> {
    bitfield_with(a, false)
}

pub(super) fn bitfield_ro(a: &[Bytes]) -> Result<Command> {
    bitfield_with(a, true)
}

/// BITFIELD's subcommands, read as Redis reads them: each needs its
/// arguments (else a syntax error); OVERFLOW applies to the operations
/// after it.
fn bitfield_with(a: &[Bytes], read_only: bool) -> Result<Command> {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < a.len() {
        let left = a.len() - j - 1;
        let word = &a[j];
        let takes_value = if is(word, "get") && left >= 2 {
            false
        } else if (is(word, "set") || is(word, "incrby")) && left >= 3 {
            true
        } else if is(word, "overflow") && left >= 1 {
            let how = &a[j + 1];
            overflow = if is(how, "wrap") {
                Overflow::Wrap
            } else if is(how, "sat") {
                Overflow::Sat
            } else if is(how, "fail") {
                Overflow::Fail
            } else {
                return Err(CommandError::Other("Invalid OVERFLOW type specified"));
            };
            j += 2;
            continue;
        } else {
            return Err(CommandError::Syntax);
        };
        let (signed, width) = bitfield_type(&a[j + 1])?;
        let offset = bit_offset(&a[j + 2], Some(width))?;
        let action = if !takes_value {
            BitFieldAction::Get
        } else {
            let n = int(&a[j + 3])?;
            if is(word, "set") {
                BitFieldAction::Set(n)
            } else {
                BitFieldAction::IncrBy(n)
            }
        };
        ops.push(BitFieldOp {
            action,
            signed,
            width,
            offset,
            overflow,
        });
        j += if takes_value { 4 } else { 3 };
    }
    // Checked once every operation has been read, as Redis does.
    if read_only && ops.iter().any(|op| op.action != BitFieldAction::Get) {
        return Err(CommandError::Other(
            "BITFIELD_RO only supports the GET subcommand",
        ));
    }
    Ok(Command::BitField {
        key: a[1].clone(),
        ops: Box::new(ops),
    })
}

/// `i1`..`i64` or `u1`..`u63`.
fn bitfield_type(arg: &[u8]) -> Result<(bool, u32)> {
    let err = || {
        CommandError::Other(
            "Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.",
        )
    };
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(err()),
    };
    let width = parse_i64(&arg[1..]).ok_or_else(err)?;
    let max = if signed { 64 } else { 63 };
    if !(1..=max).contains(&width) {
        return Err(err());
    }
    Ok((signed, width as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis rounds a timeout up to a whole millisecond: one below a
    /// millisecond waits a millisecond rather than for ever, a negative
    /// one that rounds up to 0 waits for ever, and below that is refused.
    #[test]
    fn a_blocking_timeout_is_rounded_up_to_a_millisecond() {
        for (given, ms) in [
            ("0", 0),
            ("0.0009", 1),
            ("0.0004", 1),
            ("1e-10", 1),
            ("0.001", 1),
            ("0.0011", 2),
            ("1.5", 1500),
            ("-0", 0),
            ("-0.0001", 0),
            ("-0.000999", 0),
        ] {
            assert_eq!(block_timeout(given.as_bytes()), Ok(ms), "{given}");
        }
        for given in ["-0.001", "-1", "-0.0015"] {
            assert_eq!(
                block_timeout(given.as_bytes()),
                Err(CommandError::Other("timeout is negative")),
                "{given}"
            );
        }
    }
}
