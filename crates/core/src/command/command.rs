//! The typed commands a parser produces: one variant per distinct
//! behaviour. Commands that Redis documents as shorthands of another map to
//! that other's variant (SETEX is `Set` with an expiry, GETSET is `Set`
//! with `get`, RPOPLPUSH is `LMove`), so each behaviour is executed once.

use bytes::Bytes;

use super::error::CommandError;

/// A key, as the client sent it (binary-safe).
pub type Key = Bytes;

/// A typed command, ready to execute.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)] // field names are Redis's own argument names
pub enum Command {
    // Strings and counters.
    Get {
        key: Key,
    },
    /// SET, SETEX, PSETEX, GETSET.
    Set {
        key: Key,
        value: Bytes,
        cond: Cond,
        expiry: SetExpiry,
        get: bool,
    },
    SetNx {
        key: Key,
        value: Bytes,
    },
    GetDel {
        key: Key,
    },
    /// A bad expiry number is reported after the key's type, as Redis does.
    GetEx {
        key: Key,
        expiry: Result<GetExExpiry, CommandError>,
    },
    MGet {
        keys: Vec<Key>,
    },
    MSet {
        pairs: Vec<(Key, Bytes)>,
        only_if_none_exist: bool,
    },
    Append {
        key: Key,
        value: Bytes,
    },
    StrLen {
        key: Key,
    },
    GetRange {
        key: Key,
        start: i64,
        end: i64,
    },
    /// OBJECT ENCODING, FREQ, IDLETIME or REFCOUNT of a key.
    Object {
        key: Key,
        sub: ObjectSub,
    },
    /// OBJECT HELP.
    ObjectHelp,
    /// MEMORY USAGE key [SAMPLES count]: SAMPLES checked, then unused
    /// (every element is counted).
    MemoryUsage {
        key: Key,
    },
    /// MEMORY HELP, or a subcommand refused here (DOCTOR, STATS...): its
    /// full name.
    MemoryOther(&'static str),
    /// SORT and SORT_RO, as Redis Cluster runs them.
    Sort {
        key: Key,
        options: super::sort::SortOptions,
    },
    /// LCS. The options, or their error: Redis reads them only once both
    /// keys held strings (or nothing).
    Lcs {
        a: Key,
        b: Key,
        options: Result<LcsOptions, CommandError>,
    },
    SetRange {
        key: Key,
        offset: usize,
        value: Bytes,
    },
    /// SETBIT: `offset` in bits, checked below 2^32.
    SetBit {
        key: Key,
        offset: u64,
        bit: bool,
    },
    /// GETBIT.
    GetBit {
        key: Key,
        offset: u64,
    },
    /// BITCOUNT, over the whole string or a range. The range, or its
    /// error: Redis reads it only once it has found a string there (a
    /// missing key answers 0 whatever follows it, another type WRONGTYPE).
    BitCount {
        key: Key,
        range: Result<Option<BitRange>, CommandError>,
    },
    /// BITPOS: the first `bit` in the string or a range. The range, or its
    /// error, read only once a string is found (as BITCOUNT's).
    BitPos {
        key: Key,
        bit: bool,
        range: Result<BitPosRange, CommandError>,
    },
    /// BITOP AND, OR, XOR, NOT into `dest`.
    BitOp {
        op: BitOpKind,
        dest: Key,
        keys: Vec<Key>,
    },
    /// BITFIELD and BITFIELD_RO: their operations in order. Boxed: a
    /// command with a list of them beside a key would make every command
    /// larger.
    BitField {
        key: Key,
        ops: Box<Vec<BitFieldOp>>,
    },
    /// INCR, DECR, INCRBY, DECRBY.
    IncrBy {
        key: Key,
        by: i64,
    },
    /// The increment as sent, parsed again at execution in the arithmetic
    /// INCRBYFLOAT uses.
    IncrByFloat {
        key: Key,
        by: Bytes,
    },

    // Keys.
    /// DEL, UNLINK.
    Del {
        keys: Vec<Key>,
    },
    Exists {
        keys: Vec<Key>,
    },
    Type {
        key: Key,
    },
    Touch {
        keys: Vec<Key>,
    },
    /// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT.
    Expire {
        key: Key,
        when: Expiry,
        cond: ExpireCond,
    },
    /// TTL (`ms` false), PTTL.
    Ttl {
        key: Key,
        ms: bool,
    },
    /// EXPIRETIME, PEXPIRETIME.
    ExpireTime {
        key: Key,
        ms: bool,
    },
    Persist {
        key: Key,
    },
    /// RENAME, RENAMENX.
    Rename {
        src: Key,
        dst: Key,
        nx: bool,
    },
    Copy {
        src: Key,
        dst: Key,
        replace: bool,
    },
    Keys {
        pattern: Bytes,
    },
    DbSize,
    /// FLUSHALL and FLUSHDB (`ASYNC` and `SYNC` accepted, both run at
    /// once): deletes every key.
    FlushAll,
    RandomKey,
    Scan {
        cursor: u64,
        opts: ScanOpts,
    },

    // Hashes.
    /// HSET (`legacy` false: answers the count added), HMSET (answers OK).
    HSet {
        key: Key,
        pairs: Vec<(Bytes, Bytes)>,
        legacy: bool,
    },
    HSetNx {
        key: Key,
        field: Bytes,
        value: Bytes,
    },
    HGet {
        key: Key,
        field: Bytes,
    },
    HMGet {
        key: Key,
        fields: Vec<Bytes>,
    },
    HDel {
        key: Key,
        fields: Vec<Bytes>,
    },
    HExists {
        key: Key,
        field: Bytes,
    },
    HLen {
        key: Key,
    },
    HKeys {
        key: Key,
    },
    HVals {
        key: Key,
    },
    HGetAll {
        key: Key,
    },
    HIncrBy {
        key: Key,
        field: Bytes,
        by: i64,
    },
    HIncrByFloat {
        key: Key,
        field: Bytes,
        by: Bytes,
    },
    HStrLen {
        key: Key,
        field: Bytes,
    },
    HRandField {
        key: Key,
        count: Option<i64>,
        with_values: bool,
    },
    /// The options are checked after the key's type, as Redis does, so a
    /// bad option is kept here as its error until execution.
    HScan {
        key: Key,
        cursor: u64,
        opts: Result<ScanOpts, CommandError>,
    },

    // Lists.
    /// LPUSH, RPUSH, LPUSHX, RPUSHX.
    Push {
        key: Key,
        front: bool,
        only_if_exists: bool,
        elements: Vec<Bytes>,
    },
    /// LPOP, RPOP.
    Pop {
        key: Key,
        front: bool,
        count: Option<usize>,
    },
    LLen {
        key: Key,
    },
    LRange {
        key: Key,
        start: i64,
        stop: i64,
    },
    /// The index is checked after the key (Redis answers nil for a
    /// missing key whatever the index).
    LIndex {
        key: Key,
        index: Result<i64, CommandError>,
    },
    /// The index is checked after the key's type, as Redis does.
    LSet {
        key: Key,
        index: Result<i64, CommandError>,
        element: Bytes,
    },
    LInsert {
        key: Key,
        before: bool,
        pivot: Bytes,
        element: Bytes,
    },
    LRem {
        key: Key,
        count: i64,
        element: Bytes,
    },
    LTrim {
        key: Key,
        start: i64,
        stop: i64,
    },
    LPos {
        key: Key,
        element: Bytes,
        rank: i64,
        count: Option<usize>,
        max_len: usize,
    },
    /// LMOVE, RPOPLPUSH.
    LMove {
        src: Key,
        dst: Key,
        from_front: bool,
        to_front: bool,
    },
    /// LMPOP: up to `count` elements from the first non-empty list of
    /// `keys`.
    LMPop {
        keys: Vec<Key>,
        front: bool,
        count: usize,
    },
    /// BLPOP, BRPOP: one element of the first non-empty list, answered as
    /// `[key, element]`. The keyspace never waits: an empty answer (nil)
    /// is the master's cue to wait and ask again until `timeout_ms` (0:
    /// forever), on a RESP connection outside MULTI.
    BPop {
        keys: Vec<Key>,
        front: bool,
        timeout_ms: u64,
    },
    /// BLMOVE, BRPOPLPUSH: LMOVE, waited for as [`Command::BPop`] is.
    BLMove {
        src: Key,
        dst: Key,
        from_front: bool,
        to_front: bool,
        timeout_ms: u64,
    },
    /// BLMPOP: LMPOP, waited for as [`Command::BPop`] is.
    BLMPop {
        keys: Vec<Key>,
        front: bool,
        count: usize,
        timeout_ms: u64,
    },

    // Sets.
    SAdd {
        key: Key,
        members: Vec<Bytes>,
    },
    SRem {
        key: Key,
        members: Vec<Bytes>,
    },
    SMembers {
        key: Key,
    },
    SIsMember {
        key: Key,
        member: Bytes,
    },
    SMIsMember {
        key: Key,
        members: Vec<Bytes>,
    },
    SCard {
        key: Key,
    },
    SPop {
        key: Key,
        count: Option<usize>,
    },
    SRandMember {
        key: Key,
        count: Option<i64>,
    },
    SMove {
        src: Key,
        dst: Key,
        member: Bytes,
    },
    /// SINTER, SUNION, SDIFF and their STORE variants.
    SetAlgebra {
        op: SetOp,
        keys: Vec<Key>,
        store: Option<Key>,
    },
    SInterCard {
        keys: Vec<Key>,
        limit: usize,
    },
    SScan {
        key: Key,
        cursor: u64,
        opts: Result<ScanOpts, CommandError>,
    },

    // Sorted sets.
    ZAdd {
        key: Key,
        opts: ZAddOpts,
        pairs: Vec<(f64, Bytes)>,
    },
    ZRem {
        key: Key,
        members: Vec<Bytes>,
    },
    ZScore {
        key: Key,
        member: Bytes,
    },
    ZMScore {
        key: Key,
        members: Vec<Bytes>,
    },
    ZIncrBy {
        key: Key,
        by: f64,
        member: Bytes,
    },
    ZCard {
        key: Key,
    },
    ZCount {
        key: Key,
        min: ScoreBound,
        max: ScoreBound,
    },
    ZLexCount {
        key: Key,
        min: LexBound,
        max: LexBound,
    },
    /// ZRANK, ZREVRANK.
    ZRank {
        key: Key,
        member: Bytes,
        rev: bool,
    },
    /// ZRANGE and its older forms.
    ZRange {
        key: Key,
        range: ZRangeBy,
        rev: bool,
        limit: Option<(i64, i64)>,
        with_scores: bool,
    },
    /// ZPOPMIN, ZPOPMAX.
    ZPop {
        key: Key,
        max: bool,
        count: Option<i64>,
    },
    ZRandMember {
        key: Key,
        count: Option<i64>,
        with_scores: bool,
    },
    /// ZREMRANGEBYRANK, ZREMRANGEBYSCORE, ZREMRANGEBYLEX.
    ZRemRange {
        key: Key,
        range: ZRangeBy,
    },
    ZScan {
        key: Key,
        cursor: u64,
        opts: Result<ScanOpts, CommandError>,
    },
    /// ZMPOP: up to `count` members from the first non-empty sorted set
    /// of `keys`.
    ZMPop {
        keys: Vec<Key>,
        max: bool,
        count: usize,
    },
    /// BZPOPMIN, BZPOPMAX: one member of the first non-empty sorted set,
    /// answered as `[key, member, score]`; waited for as
    /// [`Command::BPop`] is.
    BZPop {
        keys: Vec<Key>,
        max: bool,
        timeout_ms: u64,
    },
    /// BZMPOP: ZMPOP, waited for as [`Command::BPop`] is.
    BZMPop {
        keys: Vec<Key>,
        max: bool,
        count: usize,
        timeout_ms: u64,
    },
    /// ZUNION, ZINTER, ZDIFF, their STORE variants, and ZINTERCARD
    /// (`card`: only the size of the intersection, up to `limit`).
    ZAlgebra {
        op: SetOp,
        keys: Vec<Key>,
        store: Option<Key>,
        /// The options, or their error: Redis checks the keys' types
        /// before it reads them, so a WRONGTYPE comes first. Boxed, as
        /// `ZRangeStore`'s range.
        opts: Box<Result<ZAlgebraOpts, CommandError>>,
    },
    /// ZRANGESTORE: a range of `src` (as ZRANGE selects it) into `dst`.
    ZRangeStore {
        dst: Key,
        src: Key,
        /// Boxed: with two keys beside it, it would make every command
        /// this large.
        range: Box<ZRangeBy>,
        rev: bool,
        limit: Option<(i64, i64)>,
    },

    // Transactions (handled by a session, not the keyspace).
    Multi,
    Exec,
    Discard,
    /// WATCH: a session remembers the keys' versions; the keyspace only
    /// sees it queued inside MULTI, where it is refused.
    Watch {
        keys: Vec<Key>,
    },
    /// UNWATCH: a session forgets its watches; queued inside MULTI it
    /// answers OK (EXEC has forgotten them already).
    Unwatch,

    /// Pub/Sub (PUBLISH, SUBSCRIBE and their family): answered by the
    /// master the client is connected to, which keeps the subscriptions;
    /// no auxiliary ever sees one.
    PubSub,

    /// EVAL, EVALSHA and their read-only forms: a Lua script over its
    /// declared keys, run where they live ([`crate::script`]). Boxed: a
    /// script's parts would make every command larger.
    Eval(Box<crate::script::Eval>),
    /// SCRIPT and its subcommands: answered by the master, which keeps
    /// the scripts; no auxiliary ever sees one.
    Script(crate::script::ScriptOp),

    /// XADD, XRANGE, XREAD, the consumer groups and the rest of the
    /// stream commands ([`super::stream`]). Boxed, as `Eval` is.
    Stream(Box<super::stream::StreamCommand>),

    /// PFADD: elements into a HyperLogLog ([`crate::hyperloglog`]).
    PfAdd {
        key: Key,
        elements: Vec<Bytes>,
    },
    /// PFCOUNT: the estimated cardinality of one HyperLogLog (caching it
    /// in the value), or of the union of several.
    PfCount {
        keys: Vec<Key>,
    },
    /// PFMERGE: the union of HyperLogLogs into `dest`.
    PfMerge {
        dest: Key,
        sources: Vec<Key>,
    },

    /// GEOADD, GEOSEARCH and the rest of the geospatial commands
    /// ([`super::geo`]), over sorted sets.
    Geo(Box<super::geo::GeoCommand>),
}

/// What OBJECT asks of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectSub {
    /// How Redis would hold the value.
    Encoding,
    /// The LFU counter (refused: the policy is LRU).
    Freq,
    /// Seconds since the last use (refused: not tracked).
    IdleTime,
    /// References to the value.
    RefCount,
}

/// What LCS answers: the common string itself (neither flag), its length
/// (`len`), or the matching ranges with the length (`idx`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LcsOptions {
    /// LEN: only the length.
    pub len: bool,
    /// IDX: the matching ranges, longest-last order as Redis walks them.
    pub idx: bool,
    /// MINMATCHLEN: ranges shorter than this are left out of IDX's list.
    pub min_match_len: u64,
    /// WITHMATCHLEN: each range with its length.
    pub with_match_len: bool,
}

/// A BITCOUNT range: `start` and `end` in bytes, or in bits (`bits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BitRange {
    /// First byte (or bit), negative from the end.
    pub start: i64,
    /// Last byte (or bit), negative from the end.
    pub end: i64,
    /// The range counts bits, not bytes (`BIT`).
    pub bits: bool,
}

/// A BITPOS range as sent: `end` only after `start`, `bits` only after
/// both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BitPosRange {
    /// First byte (or bit).
    pub start: Option<i64>,
    /// Last byte (or bit).
    pub end: Option<i64>,
    /// The range counts bits (`BIT`).
    pub bits: bool,
}

/// BITOP's operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitOpKind {
    /// AND.
    And,
    /// OR.
    Or,
    /// XOR.
    Xor,
    /// NOT (one source).
    Not,
}

/// One BITFIELD operation, with the OVERFLOW behaviour in force for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BitFieldOp {
    /// What to do.
    pub action: BitFieldAction,
    /// Signed (`i`) or unsigned (`u`).
    pub signed: bool,
    /// Width: 1 to 64 signed, 1 to 63 unsigned.
    pub width: u32,
    /// Offset in bits (`#n` already multiplied by the width).
    pub offset: u64,
    /// OVERFLOW's choice when the operation was read.
    pub overflow: Overflow,
}

/// GET, SET or INCRBY, with SET's value or INCRBY's increment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitFieldAction {
    /// GET.
    Get,
    /// SET to this value.
    Set(i64),
    /// INCRBY this much.
    IncrBy(i64),
}

/// BITFIELD's OVERFLOW.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Wrap around (the default).
    Wrap,
    /// Stay at the bound.
    Sat,
    /// Refuse: the operation answers nil and changes nothing.
    Fail,
}

/// NX / XX.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Cond {
    /// Always.
    #[default]
    Always,
    /// Only if the key does not exist.
    IfMissing,
    /// Only if the key exists.
    IfExists,
}

/// An expiry as a command states it, turned into an absolute time at
/// execution (which knows the clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiry {
    /// The number as sent.
    pub amount: i64,
    /// Milliseconds (PX, PXAT, PEXPIRE...) rather than seconds.
    pub millis: bool,
    /// A Unix time (EXAT, PEXPIREAT...) rather than a time from now.
    pub absolute: bool,
    /// The command's name for `invalid expire time in '...' command`.
    pub command: &'static str,
}

/// What SET does to the TTL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetExpiry {
    /// Clears it (plain SET).
    Clear,
    /// KEEPTTL.
    Keep,
    /// EX, PX, EXAT, PXAT.
    At(Expiry),
}

/// What GETEX does to the TTL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetExExpiry {
    /// Nothing.
    Unchanged,
    /// PERSIST.
    Persist,
    /// EX, PX, EXAT, PXAT.
    At(Expiry),
}

/// EXPIRE's NX / XX / GT / LT (XX combines with GT or LT; the parser
/// refuses the other combinations).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ExpireCond {
    /// Only if the key has no TTL.
    pub nx: bool,
    /// Only if it has one.
    pub xx: bool,
    /// Only if the new one is later (no TTL counts as infinitely late).
    pub gt: bool,
    /// Only if the new one is sooner.
    pub lt: bool,
}

/// SCAN's options.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ScanOpts {
    /// MATCH.
    pub pattern: Option<Bytes>,
    /// COUNT (default 10).
    pub count: usize,
    /// TYPE (SCAN only), lower case as sent.
    pub type_name: Option<Bytes>,
}

/// SINTER, SUNION, SDIFF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOp {
    /// Members in every set.
    Inter,
    /// Members in any set.
    Union,
    /// Members of the first set in none of the others.
    Diff,
}

impl Command {
    /// A blocking command's timeout in milliseconds (0: forever); `None`
    /// for every other command.
    pub fn block_timeout_ms(&self) -> Option<u64> {
        match self {
            Command::BPop { timeout_ms, .. }
            | Command::BLMove { timeout_ms, .. }
            | Command::BLMPop { timeout_ms, .. }
            | Command::BZPop { timeout_ms, .. }
            | Command::BZMPop { timeout_ms, .. } => Some(*timeout_ms),
            Command::Stream(stream) => match stream.as_ref() {
                super::stream::StreamCommand::Read(read) => read.block_ms,
                _ => None,
            },
            _ => None,
        }
    }
}

/// How ZUNION and ZINTER combine a member's scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Aggregate {
    /// The sum (the default).
    #[default]
    Sum,
    /// The lowest.
    Min,
    /// The highest.
    Max,
}

/// The options of the sorted-set algebra: WEIGHTS, AGGREGATE, WITHSCORES,
/// and ZINTERCARD's LIMIT.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ZAlgebraOpts {
    /// One weight per key, in the keys' order (empty: every weight is 1).
    pub weights: Vec<f64>,
    /// AGGREGATE.
    pub aggregate: Aggregate,
    /// WITHSCORES.
    pub with_scores: bool,
    /// ZINTERCARD: answer with the intersection's size only.
    pub card: bool,
    /// ZINTERCARD's LIMIT (0: none).
    pub limit: usize,
}

/// ZADD's options.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ZAddOpts {
    /// NX / XX.
    pub cond: Cond,
    /// GT.
    pub gt: bool,
    /// LT.
    pub lt: bool,
    /// CH: count changed members, not only added ones.
    pub ch: bool,
    /// INCR: behave like ZINCRBY.
    pub incr: bool,
}

/// One end of a score range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreBound {
    /// The score.
    pub score: f64,
    /// `(` was given: the end itself is out.
    pub exclusive: bool,
}

/// One end of a lexicographic range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LexBound {
    /// `-`.
    Min,
    /// `+`.
    Max,
    /// `[x` (inclusive) or `(x`.
    Member {
        /// The member.
        member: Bytes,
        /// `(`.
        exclusive: bool,
    },
}

/// Which elements a ZRANGE or ZREMRANGE... selects.
#[derive(Clone, Debug, PartialEq)]
pub enum ZRangeBy {
    /// By rank (negative counts from the end).
    Rank {
        /// First rank.
        start: i64,
        /// Last rank, inclusive.
        stop: i64,
    },
    /// By score. For REV ranges `min` is still the lower bound.
    Score {
        /// Lower bound.
        min: ScoreBound,
        /// Upper bound.
        max: ScoreBound,
    },
    /// By member, all scores being equal.
    Lex {
        /// Lower bound.
        min: LexBound,
        /// Upper bound.
        max: LexBound,
    },
}
