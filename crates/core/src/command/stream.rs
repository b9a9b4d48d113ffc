//! Stream commands (XADD, XRANGE, XREAD, consumer groups...): their typed
//! form and their parsers, as Redis 7.0 reads them.
//!
//! Redis checks some arguments only after it has found the key (XDEL's
//! IDs, XREAD's IDs one key at a time, between that key's type check and
//! the next key's): those are kept here as a `Result`, and the executor
//! reports them in Redis's order.

use bytes::Bytes;

use super::command::{Command, Key};
use super::error::CommandError;
use super::number::parse_i64;
use crate::value::StreamId;
use crate::value::stream::{Trim, TrimTo};

type Result<T> = std::result::Result<T, CommandError>;

/// The ID XADD is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddId {
    /// `*`: from the clock, or above the last ID.
    Auto,
    /// `ms-*`: the next sequence at these milliseconds.
    Partial(u64),
    /// An exact ID.
    Exact(StreamId),
}

/// Where XREAD reads from, for one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFrom {
    /// `$`: entries added after the command.
    Last,
    /// Entries above this ID.
    After(StreamId),
}

/// Where XREADGROUP reads from, for one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupFrom {
    /// `>`: entries never delivered to the group.
    New,
    /// The consumer's pending entries above this ID.
    History(StreamId),
}

/// XREAD and XREADGROUP.
#[derive(Clone, Debug, PartialEq)]
pub struct Read {
    /// XREADGROUP's group and consumer.
    pub group: Option<(Bytes, Bytes)>,
    /// At most this many entries a key (0: no bound).
    pub count: usize,
    /// BLOCK, in milliseconds (0: for ever).
    pub block_ms: Option<u64>,
    /// NOACK.
    pub noack: bool,
    /// The keys.
    pub keys: Vec<Key>,
    /// Each key's ID, or the error Redis reports when it reaches it.
    pub ids: Vec<Result<ReadId>>,
}

/// One key's ID in XREAD or XREADGROUP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadId {
    /// XREAD's.
    Plain(ReadFrom),
    /// XREADGROUP's.
    Group(GroupFrom),
}

/// XPENDING's extended form.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingRange {
    /// IDLE: only entries delivered at least this long ago.
    pub min_idle_ms: Option<i64>,
    /// From (included).
    pub start: StreamId,
    /// To (included).
    pub end: StreamId,
    /// At most this many.
    pub count: i64,
    /// Only this consumer's.
    pub consumer: Option<Bytes>,
}

/// XCLAIM's options.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClaimOpts {
    /// IDLE: the delivery time set to now less this.
    pub idle_ms: Option<i64>,
    /// TIME: the delivery time set to this.
    pub time_ms: Option<i64>,
    /// RETRYCOUNT.
    pub retry_count: Option<i64>,
    /// FORCE.
    pub force: bool,
    /// JUSTID.
    pub just_id: bool,
    /// LASTID.
    pub last_id: Option<StreamId>,
}

/// XCLAIM's arguments after the consumer.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    /// Only entries delivered at least this long ago (0 or more).
    pub min_idle_ms: i64,
    /// The entries.
    pub ids: Vec<StreamId>,
    /// The options.
    pub opts: ClaimOpts,
}

/// XAUTOCLAIM's arguments after the consumer.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoClaim {
    /// Only entries delivered at least this long ago (0 or more).
    pub min_idle_ms: i64,
    /// Where the scan starts.
    pub start: StreamId,
    /// At most this many entries claimed (or found deleted).
    pub count: usize,
    /// JUSTID.
    pub just_id: bool,
}

/// A group's position as XGROUP CREATE and SETID take it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupAt {
    /// `$`: the stream's last ID.
    Last,
    /// This ID.
    Id(StreamId),
}

/// A stream command.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)] // field names are Redis's own argument names
pub enum StreamCommand {
    Add {
        key: Key,
        no_mkstream: bool,
        trim: Option<Trim>,
        id: AddId,
        /// Field, value, field, value...
        fields: Vec<Bytes>,
    },
    Len {
        key: Key,
    },
    /// XRANGE and XREVRANGE: `start..=end`, lowest first unless `rev`.
    Range {
        key: Key,
        start: StreamId,
        end: StreamId,
        /// `None`: no COUNT; `Some(0)`: COUNT 0 or less.
        count: Option<usize>,
        rev: bool,
    },
    Del {
        key: Key,
        ids: Result<Vec<StreamId>>,
    },
    Trim {
        key: Key,
        trim: Trim,
    },
    Read(Read),
    GroupCreate {
        key: Key,
        group: Bytes,
        at: Result<GroupAt>,
        mkstream: bool,
        entries_read: Option<i64>,
    },
    GroupSetId {
        key: Key,
        group: Bytes,
        /// The ID and ENTRIESREAD, read after the key and group are found.
        at: Result<(GroupAt, Option<i64>)>,
    },
    GroupDestroy {
        key: Key,
        group: Bytes,
    },
    CreateConsumer {
        key: Key,
        group: Bytes,
        consumer: Bytes,
    },
    DelConsumer {
        key: Key,
        group: Bytes,
        consumer: Bytes,
    },
    Ack {
        key: Key,
        group: Bytes,
        ids: Result<Vec<StreamId>>,
    },
    Pending {
        key: Key,
        group: Bytes,
        range: Option<PendingRange>,
    },
    /// XCLAIM: its arguments after the consumer, read after the key and
    /// group are found.
    Claim {
        key: Key,
        group: Bytes,
        consumer: Bytes,
        args: Result<Claim>,
    },
    /// XAUTOCLAIM, likewise.
    AutoClaim {
        key: Key,
        group: Bytes,
        consumer: Bytes,
        args: Result<AutoClaim>,
    },
    SetId {
        key: Key,
        last: StreamId,
        entries_added: Option<i64>,
        max_deleted: Option<StreamId>,
    },
    InfoStream {
        key: Key,
        /// FULL, with its COUNT (0: every entry); read after the key is
        /// found.
        full: Result<Option<usize>>,
    },
    InfoGroups {
        key: Key,
    },
    InfoConsumers {
        key: Key,
        group: Bytes,
    },
    /// XGROUP HELP, XINFO HELP: their lines.
    Help(&'static [&'static str]),
}

fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

fn int(arg: &[u8]) -> Result<i64> {
    parse_i64(arg).ok_or(CommandError::NotInteger)
}

fn invalid_id() -> CommandError {
    CommandError::Other("Invalid stream ID specified as stream command argument")
}

/// A decimal `u64`, digits only.
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// `ms-seq` or `ms` (then `seq` is `missing_seq`); `Ok(None)` for `ms-*`
/// where `partial` allows it.
fn id_or_partial(arg: &[u8], missing_seq: u64, partial: bool) -> Result<Option<StreamId>> {
    if arg.len() > 127 {
        return Err(invalid_id());
    }
    match arg.iter().position(|&b| b == b'-') {
        None => Ok(Some(StreamId::new(
            number(arg).ok_or_else(invalid_id)?,
            missing_seq,
        ))),
        Some(dash) => {
            let ms = number(&arg[..dash]).ok_or_else(invalid_id)?;
            let seq = &arg[dash + 1..];
            if partial && seq == b"*" {
                return Ok(None);
            }
            Ok(Some(StreamId::new(ms, number(seq).ok_or_else(invalid_id)?)))
        }
    }
}

/// A strict ID: `ms-seq`, or `ms` meaning `ms-0`.
pub(crate) fn strict_id(arg: &[u8]) -> Result<StreamId> {
    id_or_partial(arg, 0, false)?.ok_or_else(invalid_id)
}

/// A range bound: `-`, `+`, an ID, `(` before an ID for an exclusive one.
/// `start` picks the default sequence and the error's words.
fn bound(arg: &[u8], start: bool) -> Result<StreamId> {
    let (exclusive, arg) = match arg.strip_prefix(b"(") {
        Some(rest) => (true, rest),
        None => (false, arg),
    };
    let id = match arg {
        b"-" if !exclusive => StreamId::MIN,
        b"+" if !exclusive => StreamId::MAX,
        _ => id_or_partial(arg, if start { 0 } else { u64::MAX }, false)?.ok_or_else(invalid_id)?,
    };
    if !exclusive {
        return Ok(id);
    }
    if start {
        id.next()
            .ok_or(CommandError::Other("invalid start ID for the interval"))
    } else {
        id.prev()
            .ok_or(CommandError::Other("invalid end ID for the interval"))
    }
}

/// The trimming options XADD and XTRIM share, from `args[2..]`. For XADD,
/// also NOMKSTREAM and the ID, and where the fields start.
struct AddOrTrim {
    trim: Option<Trim>,
    no_mkstream: bool,
    id: Option<AddId>,
    next: usize,
}

fn add_or_trim(args: &[Bytes], xadd: bool) -> Result<AddOrTrim> {
    let mut to: Option<TrimTo> = None;
    let mut approx = false;
    let mut limit: i64 = 0;
    let mut limit_given = false;
    let mut no_mkstream = false;
    let mut id = None;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - i - 1;
        let a = &args[i];
        if xadd && a.as_ref() == b"*" {
            id = Some(AddId::Auto);
            i += 1;
            break;
        } else if (is(a, "maxlen") || is(a, "minid")) && more >= 1 {
            if to.is_some() {
                return Err(CommandError::Other(
                    "syntax error, MAXLEN and MINID options at the same time are not compatible",
                ));
            }
            approx = false;
            let next = &args[i + 1];
            if more >= 2 && next.as_ref() == b"~" {
                approx = true;
                i += 1;
            } else if more >= 2 && next.as_ref() == b"=" {
                i += 1;
            }
            let threshold = &args[i + 1];
            to = Some(if is(a, "maxlen") {
                let n = int(threshold)?;
                if n < 0 {
                    return Err(CommandError::Other("The MAXLEN argument must be >= 0."));
                }
                TrimTo::MaxLen(n as u64)
            } else {
                TrimTo::MinId(strict_id(threshold)?)
            });
            i += 2;
        } else if is(a, "limit") && more >= 1 {
            limit = int(&args[i + 1])?;
            if limit < 0 {
                return Err(CommandError::Other("The LIMIT argument must be >= 0."));
            }
            limit_given = true;
            i += 2;
        } else if xadd && is(a, "nomkstream") {
            no_mkstream = true;
            i += 1;
        } else if xadd {
            id = Some(match id_or_partial(a, 0, true)? {
                Some(exact) => AddId::Exact(exact),
                None => {
                    let dash = a.iter().position(|&b| b == b'-').unwrap_or(0);
                    AddId::Partial(number(&a[..dash]).ok_or_else(invalid_id)?)
                }
            });
            i += 1;
            break;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    if limit != 0 && to.is_none() {
        return Err(CommandError::Other(
            "syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && to.is_none() {
        return Err(CommandError::Other(
            "syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if limit_given && !approx {
        return Err(CommandError::Other(
            "syntax error, LIMIT cannot be used without the special ~ option",
        ));
    }
    let limit = match (limit_given, approx) {
        (true, _) => limit as u64,
        (false, true) => 100 * u64::from(crate::value::stream::NODE_MAX_ENTRIES),
        (false, false) => 0,
    };
    Ok(AddOrTrim {
        trim: to.map(|to| Trim { to, approx, limit }),
        no_mkstream,
        id,
        next: i,
    })
}

fn stream(c: StreamCommand) -> Result<Command> {
    Ok(Command::Stream(Box::new(c)))
}

pub(crate) fn xadd(a: &[Bytes]) -> Result<Command> {
    let parsed = add_or_trim(a, true)?;
    let fields = &a[parsed.next.min(a.len())..];
    let Some(id) = parsed.id else {
        return Err(CommandError::WrongArity("xadd"));
    };
    if fields.len() < 2 || fields.len() % 2 != 0 {
        return Err(CommandError::WrongArity("xadd"));
    }
    if id == AddId::Exact(StreamId::MIN) {
        return Err(CommandError::Other(
            "The ID specified in XADD must be greater than 0-0",
        ));
    }
    stream(StreamCommand::Add {
        key: a[1].clone(),
        no_mkstream: parsed.no_mkstream,
        trim: parsed.trim,
        id,
        fields: fields.to_vec(),
    })
}

pub(crate) fn xtrim(a: &[Bytes]) -> Result<Command> {
    let parsed = add_or_trim(a, false)?;
    stream(StreamCommand::Trim {
        key: a[1].clone(),
        trim: parsed.trim.ok_or(CommandError::Syntax)?,
    })
}

pub(crate) fn xlen(a: &[Bytes]) -> Result<Command> {
    stream(StreamCommand::Len { key: a[1].clone() })
}

fn range(a: &[Bytes], rev: bool) -> Result<Command> {
    let (start, end) = if rev { (&a[3], &a[2]) } else { (&a[2], &a[3]) };
    let start = bound(start, true)?;
    let end = bound(end, false)?;
    let mut count = None;
    let mut i = 4;
    while i < a.len() {
        if is(&a[i], "count") && i + 1 < a.len() {
            count = Some(usize::try_from(int(&a[i + 1])?).unwrap_or(0));
            i += 2;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    stream(StreamCommand::Range {
        key: a[1].clone(),
        start,
        end,
        count,
        rev,
    })
}

pub(crate) fn xrange(a: &[Bytes]) -> Result<Command> {
    range(a, false)
}

pub(crate) fn xrevrange(a: &[Bytes]) -> Result<Command> {
    range(a, true)
}

pub(crate) fn xdel(a: &[Bytes]) -> Result<Command> {
    let ids = a[2..].iter().map(|id| strict_id(id)).collect();
    stream(StreamCommand::Del {
        key: a[1].clone(),
        ids,
    })
}

/// BLOCK's milliseconds, as Redis reads a timeout in milliseconds.
fn block_ms(arg: &[u8]) -> Result<u64> {
    let n = parse_i64(arg).ok_or(CommandError::Other(
        "timeout is not an integer or out of range",
    ))?;
    u64::try_from(n).map_err(|_| CommandError::Other("timeout is negative"))
}

fn read(a: &[Bytes], xreadgroup: bool) -> Result<Command> {
    let mut read = Read {
        group: None,
        count: 0,
        block_ms: None,
        noack: false,
        keys: Vec::new(),
        ids: Vec::new(),
    };
    let mut streams = None;
    let mut i = 1;
    while i < a.len() {
        let more = a.len() - i - 1;
        let o = &a[i];
        if is(o, "streams") && more >= 1 {
            if more % 2 != 0 {
                // Redis says XREAD for XREADGROUP too.
                return Err(CommandError::Other(
                    "Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
                ));
            }
            streams = Some(i + 1);
            break;
        }
        // The options `read_keys` skips, with as many values.
        let Some(values) = read_option_values(o).filter(|&n| more >= n) else {
            return Err(CommandError::Syntax);
        };
        let only_xreadgroup = |option: &'static str| {
            if xreadgroup {
                Ok(())
            } else {
                Err(CommandError::Other(option))
            }
        };
        if is(o, "block") {
            read.block_ms = Some(block_ms(&a[i + 1])?);
        } else if is(o, "count") {
            read.count = usize::try_from(int(&a[i + 1])?).unwrap_or(0);
        } else if is(o, "group") {
            only_xreadgroup(
                "The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
            )?;
            read.group = Some((a[i + 1].clone(), a[i + 2].clone()));
        } else {
            only_xreadgroup(
                "The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
            )?;
            read.noack = true;
        }
        i += values + 1;
    }
    let Some(at) = streams else {
        return Err(CommandError::Syntax);
    };
    if xreadgroup && read.group.is_none() {
        return Err(CommandError::Other("Missing GROUP option for XREADGROUP"));
    }
    let n = (a.len() - at) / 2;
    read.keys = a[at..at + n].to_vec();
    read.ids = a[at + n..]
        .iter()
        .map(|id| match (id.as_ref(), xreadgroup) {
            (b"$", false) => Ok(ReadId::Plain(ReadFrom::Last)),
            (b"$", true) => Err(CommandError::Other(
                "The $ ID is meaningless in the context of XREADGROUP: you want to read the \
                 history of this consumer by specifying a proper ID, or use the > ID to get new \
                 messages. The $ ID would just return an empty result set.",
            )),
            (b">", true) => Ok(ReadId::Group(GroupFrom::New)),
            (b">", false) => Err(CommandError::Other(
                "The > ID can be specified only when calling XREADGROUP using the GROUP <group> \
                 <consumer> option.",
            )),
            (id, false) => Ok(ReadId::Plain(ReadFrom::After(strict_id(id)?))),
            // Redis marks `>` with the largest ID, so that ID reads as `>`.
            (id, true) => Ok(ReadId::Group(match strict_id(id)? {
                StreamId::MAX => GroupFrom::New,
                id => GroupFrom::History(id),
            })),
        })
        .collect();
    stream(StreamCommand::Read(read))
}

pub(crate) fn xread(a: &[Bytes]) -> Result<Command> {
    read(a, false)
}

pub(crate) fn xreadgroup(a: &[Bytes]) -> Result<Command> {
    read(a, true)
}

/// How many values an option of XREAD or XREADGROUP takes after its
/// name (`None`: not one of them, or STREAMS, which takes the rest). The
/// parser and the key finder walk the options with it, so that they agree
/// on where STREAMS is (a consumer may be called `streams`).
fn read_option_values(word: &[u8]) -> Option<usize> {
    [("block", 1), ("count", 1), ("group", 2), ("noack", 0)]
        .into_iter()
        .find(|(name, _)| is(word, name))
        .map(|(_, n)| n)
}

/// The position of the keys of XREAD and XREADGROUP: the first half of
/// what follows STREAMS (none if the arguments do not parse that far).
pub(crate) fn read_keys(a: &[Bytes]) -> std::ops::Range<usize> {
    let mut i = 1;
    while i < a.len() {
        if is(&a[i], "streams") {
            let at = i + 1;
            if (a.len() - at) % 2 == 0 {
                return at..at + (a.len() - at) / 2;
            }
            break;
        }
        match read_option_values(&a[i]) {
            Some(n) if i + n < a.len() => i += n + 1,
            _ => break,
        }
    }
    0..0
}

fn group_at(arg: &[u8]) -> Result<GroupAt> {
    if arg == b"$" {
        Ok(GroupAt::Last)
    } else {
        Ok(GroupAt::Id(strict_id(arg)?))
    }
}

fn entries_read(arg: &[u8]) -> Result<i64> {
    let n = int(arg)?;
    if n < -1 {
        return Err(CommandError::Other(
            "value for ENTRIESREAD must be positive or -1",
        ));
    }
    Ok(n)
}

/// XGROUP's words for an option it does not know.
fn xgroup_syntax(sub: &[u8]) -> CommandError {
    CommandError::Relayed(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try XGROUP HELP.",
        String::from_utf8_lossy(sub)
    ))
}

pub(crate) fn xgroup(a: &[Bytes]) -> Result<Command> {
    let sub = &a[1];
    let arity = |n: usize, at_least: bool, name: &'static str| {
        if (at_least && a.len() < n) || (!at_least && a.len() != n) {
            Err(CommandError::WrongArity(name))
        } else {
            Ok(())
        }
    };
    let key = || a[2].clone();
    let c = if is(sub, "create") {
        arity(5, true, "xgroup|create")?;
        let mut mkstream = false;
        let mut read = None;
        let mut i = 5;
        while i < a.len() {
            if is(&a[i], "mkstream") {
                mkstream = true;
                i += 1;
            } else if is(&a[i], "entriesread") && i + 1 < a.len() {
                read = Some(entries_read(&a[i + 1])?);
                i += 2;
            } else {
                return Err(xgroup_syntax(sub));
            }
        }
        StreamCommand::GroupCreate {
            key: key(),
            group: a[3].clone(),
            at: group_at(&a[4]),
            mkstream,
            entries_read: read,
        }
    } else if is(sub, "setid") {
        arity(5, true, "xgroup|setid")?;
        if a.len() != 5 && a.len() != 7 {
            return Err(xgroup_syntax(sub));
        }
        // ENTRIESREAD is read before the key is looked up, the ID after.
        let read = match a.len() {
            7 if is(&a[5], "entriesread") => Some(entries_read(&a[6])?),
            7 => return Err(xgroup_syntax(sub)),
            _ => None,
        };
        let at = group_at(&a[4]).map(|at| (at, read));
        StreamCommand::GroupSetId {
            key: key(),
            group: a[3].clone(),
            at,
        }
    } else if is(sub, "destroy") {
        arity(4, false, "xgroup|destroy")?;
        StreamCommand::GroupDestroy {
            key: key(),
            group: a[3].clone(),
        }
    } else if is(sub, "createconsumer") {
        arity(5, false, "xgroup|createconsumer")?;
        StreamCommand::CreateConsumer {
            key: key(),
            group: a[3].clone(),
            consumer: a[4].clone(),
        }
    } else if is(sub, "delconsumer") {
        arity(5, false, "xgroup|delconsumer")?;
        StreamCommand::DelConsumer {
            key: key(),
            group: a[3].clone(),
            consumer: a[4].clone(),
        }
    } else if is(sub, "help") && a.len() == 2 {
        return stream(StreamCommand::Help(HELP_XGROUP));
    } else {
        return Err(unknown_subcommand(sub, "xgroup"));
    };
    stream(c)
}

/// Redis's refusal of a subcommand `container` does not have.
pub(crate) fn unknown_subcommand(sub: &[u8], container: &str) -> CommandError {
    CommandError::Relayed(format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        String::from_utf8_lossy(sub),
        container.to_ascii_uppercase()
    ))
}

/// The arity and full name of subcommand `sub` of `container` (XGROUP,
/// XINFO, OBJECT), as Redis's table has them.
pub(crate) fn subcommand(container: &str, sub: &[u8]) -> Option<(i32, &'static str)> {
    subcommands(container)
        .iter()
        .find(|(name, _, _)| is(sub, name))
        .map(|(_, arity, full)| (*arity, *full))
}

/// The subcommands of a data container (XGROUP, XINFO, OBJECT): name,
/// Redis's arity, full name; empty for any other command.
pub fn subcommands(container: &str) -> &'static [(&'static str, i32, &'static str)] {
    match container {
        "xgroup" => &[
            ("create", -5, "xgroup|create"),
            ("setid", -5, "xgroup|setid"),
            ("destroy", 4, "xgroup|destroy"),
            ("createconsumer", 5, "xgroup|createconsumer"),
            ("delconsumer", 5, "xgroup|delconsumer"),
            ("help", 2, "xgroup|help"),
        ],
        "xinfo" => &[
            ("stream", -3, "xinfo|stream"),
            ("groups", 3, "xinfo|groups"),
            ("consumers", 4, "xinfo|consumers"),
            ("help", 2, "xinfo|help"),
        ],
        "memory" => &[
            ("doctor", 2, "memory|doctor"),
            ("help", 2, "memory|help"),
            ("malloc-stats", 2, "memory|malloc-stats"),
            ("purge", 2, "memory|purge"),
            ("stats", 2, "memory|stats"),
            ("usage", -3, "memory|usage"),
        ],
        "object" => &[
            ("encoding", 3, "object|encoding"),
            ("freq", 3, "object|freq"),
            ("idletime", 3, "object|idletime"),
            ("refcount", 3, "object|refcount"),
            ("help", 2, "object|help"),
        ],
        _ => &[],
    }
}

pub(crate) fn xinfo(a: &[Bytes]) -> Result<Command> {
    let sub = &a[1];
    let c = if is(sub, "stream") {
        if a.len() < 3 {
            return Err(CommandError::WrongArity("xinfo|stream"));
        }
        let full = match a.len() {
            3 => Ok(None),
            4 if is(&a[3], "full") => Ok(Some(10)),
            // A negative COUNT is the default, 10, as in Redis.
            6 if is(&a[3], "full") && is(&a[4], "count") => {
                int(&a[5]).map(|n| Some(usize::try_from(n).unwrap_or(10)))
            }
            _ => Err(CommandError::Relayed(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try XINFO HELP.",
                String::from_utf8_lossy(sub)
            ))),
        };
        StreamCommand::InfoStream {
            key: a[2].clone(),
            full,
        }
    } else if is(sub, "groups") {
        if a.len() != 3 {
            return Err(CommandError::WrongArity("xinfo|groups"));
        }
        StreamCommand::InfoGroups { key: a[2].clone() }
    } else if is(sub, "consumers") {
        if a.len() != 4 {
            return Err(CommandError::WrongArity("xinfo|consumers"));
        }
        StreamCommand::InfoConsumers {
            key: a[2].clone(),
            group: a[3].clone(),
        }
    } else if is(sub, "help") && a.len() == 2 {
        return stream(StreamCommand::Help(HELP_XINFO));
    } else {
        return Err(unknown_subcommand(sub, "xinfo"));
    };
    stream(c)
}

pub(crate) fn xack(a: &[Bytes]) -> Result<Command> {
    let ids = a[3..].iter().map(|id| strict_id(id)).collect();
    stream(StreamCommand::Ack {
        key: a[1].clone(),
        group: a[2].clone(),
        ids,
    })
}

pub(crate) fn xpending(a: &[Bytes]) -> Result<Command> {
    let range = if a.len() == 3 {
        None
    } else {
        if a.len() < 6 {
            return Err(CommandError::Syntax);
        }
        let mut i = 3;
        let mut min_idle_ms = None;
        if is(&a[i], "idle") {
            min_idle_ms = Some(int(&a[i + 1])?);
            if a.len() < 8 {
                return Err(CommandError::Syntax);
            }
            i += 2;
        }
        // Arguments past the consumer are ignored, up to nine in all.
        if a.len() > 9 {
            return Err(CommandError::Syntax);
        }
        // Redis reads the count before the range.
        let count = int(&a[i + 2])?;
        let start = bound(&a[i], true)?;
        let end = bound(&a[i + 1], false)?;
        Some(PendingRange {
            min_idle_ms,
            start,
            end,
            count,
            consumer: a.get(i + 3).cloned(),
        })
    };
    stream(StreamCommand::Pending {
        key: a[1].clone(),
        group: a[2].clone(),
        range,
    })
}

pub(crate) fn xclaim(a: &[Bytes]) -> Result<Command> {
    stream(StreamCommand::Claim {
        key: a[1].clone(),
        group: a[2].clone(),
        consumer: a[3].clone(),
        args: claim(a),
    })
}

fn claim(a: &[Bytes]) -> Result<Claim> {
    let min_idle_ms = parse_i64(&a[4]).ok_or(CommandError::Other(
        "Invalid min-idle-time argument for XCLAIM",
    ))?;
    let mut i = 5;
    let mut ids = Vec::new();
    while i < a.len() {
        match strict_id(&a[i]) {
            Ok(id) => ids.push(id),
            Err(_) => break,
        }
        i += 1;
    }
    let mut opts = ClaimOpts::default();
    while i < a.len() {
        let more = a.len() - i - 1;
        let o = &a[i];
        let value =
            |message: &'static str| parse_i64(&a[i + 1]).ok_or(CommandError::Other(message));
        if is(o, "force") {
            opts.force = true;
        } else if is(o, "justid") {
            opts.just_id = true;
        } else if is(o, "idle") && more >= 1 {
            opts.idle_ms = Some(value("Invalid IDLE option argument for XCLAIM")?);
            i += 1;
        } else if is(o, "time") && more >= 1 {
            opts.time_ms = Some(value("Invalid TIME option argument for XCLAIM")?);
            i += 1;
        } else if is(o, "retrycount") && more >= 1 {
            opts.retry_count = Some(value("Invalid RETRYCOUNT option argument for XCLAIM")?);
            i += 1;
        } else if is(o, "lastid") && more >= 1 {
            opts.last_id = Some(strict_id(&a[i + 1])?);
            i += 1;
        } else {
            return Err(CommandError::Relayed(format!(
                "ERR Unrecognized XCLAIM option '{}'",
                String::from_utf8_lossy(o)
            )));
        }
        i += 1;
    }
    Ok(Claim {
        min_idle_ms: min_idle_ms.max(0),
        ids,
        opts,
    })
}

pub(crate) fn xautoclaim(a: &[Bytes]) -> Result<Command> {
    stream(StreamCommand::AutoClaim {
        key: a[1].clone(),
        group: a[2].clone(),
        consumer: a[3].clone(),
        args: autoclaim(a),
    })
}

fn autoclaim(a: &[Bytes]) -> Result<AutoClaim> {
    let min_idle_ms = parse_i64(&a[4]).ok_or(CommandError::Other(
        "Invalid min-idle-time argument for XAUTOCLAIM",
    ))?;
    let start = bound(&a[5], true)?;
    let mut count = 100;
    let mut just_id = false;
    let mut i = 6;
    while i < a.len() {
        let more = a.len() - i - 1;
        if is(&a[i], "count") && more >= 1 {
            let n = parse_i64(&a[i + 1]).unwrap_or(0);
            if !(1..=i64::MAX / 10).contains(&n) {
                return Err(CommandError::Other("COUNT must be > 0"));
            }
            count = n as usize;
            i += 2;
        } else if is(&a[i], "justid") {
            just_id = true;
            i += 1;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok(AutoClaim {
        min_idle_ms: min_idle_ms.max(0),
        start,
        count,
        just_id,
    })
}

pub(crate) fn xsetid(a: &[Bytes]) -> Result<Command> {
    let last = strict_id(&a[2])?;
    let mut entries_added = None;
    let mut max_deleted = None;
    let mut i = 3;
    while i < a.len() {
        let more = a.len() - i - 1;
        if is(&a[i], "entriesadded") && more >= 1 {
            let n = int(&a[i + 1])?;
            if n < 0 {
                return Err(CommandError::Other("entries_added must be positive"));
            }
            entries_added = Some(n);
            i += 2;
        } else if is(&a[i], "maxdeletedid") && more >= 1 {
            let id = strict_id(&a[i + 1])?;
            if last < id {
                return Err(CommandError::Other(
                    "The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                ));
            }
            max_deleted = Some(id);
            i += 2;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    stream(StreamCommand::SetId {
        key: a[1].clone(),
        last,
        entries_added,
        max_deleted,
    })
}

/// XGROUP HELP's lines.
pub(crate) const HELP_XGROUP: &[&str] = &[
    "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "HELP",
    "    Prints this help.",
];

/// XINFO HELP's lines.
pub(crate) const HELP_XINFO: &[&str] = &[
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Prints this help.",
];
