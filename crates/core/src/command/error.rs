//! The errors a command can answer with. Each variant's `Display` is the
//! exact line Redis sends (without the leading `-`), so a front end writes
//! it as it is: the prefix (`ERR`, `WRONGTYPE`, `EXECABORT`) is the error
//! code RESP clients branch on.

use thiserror::Error;

/// An error reply.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CommandError {
    /// No command by that name.
    #[error("ERR unknown command '{name}', with args beginning with: {args}")]
    UnknownCommand {
        /// The name as the client sent it.
        name: String,
        /// The first arguments, each quoted and followed by a space, as Redis shows them.
        args: String,
    },
    /// Arity check failed (the name is the table's, lower case).
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(&'static str),
    /// Options that do not fit together or do not exist.
    #[error("ERR syntax error")]
    Syntax,
    /// An argument that must be a 64-bit integer is not one.
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// An argument (or a stored string) that must be a float is not one.
    #[error("ERR value is not a valid float")]
    NotFloat,
    /// The key holds another type than the command works on.
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// INCR and friends would leave the 64-bit range.
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    /// DECRBY with the one number whose negation overflows.
    #[error("ERR decrement would overflow")]
    DecrementOverflow,
    /// INCRBYFLOAT / HINCRBYFLOAT / ZINCRBY would reach NaN or infinity.
    #[error("ERR increment would produce NaN or Infinity")]
    NanOrInfinity,
    /// An expiry that is not positive or overflows (the command's name, lower case).
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpireTime(&'static str),
    /// RENAME of a missing key, LSET on a missing list.
    #[error("ERR no such key")]
    NoSuchKey,
    /// LSET past the end.
    #[error("ERR index out of range")]
    IndexOutOfRange,
    /// HINCRBY on a field that is not an integer.
    #[error("ERR hash value is not an integer")]
    HashNotInteger,
    /// HINCRBYFLOAT on a field that is not a float.
    #[error("ERR hash value is not a float")]
    HashNotFloat,
    /// An argument must be positive (`{0}` names it as Redis does, e.g. "value", "RANK").
    #[error("ERR {0}")]
    OutOfRange(&'static str),
    /// SETRANGE / APPEND past the largest string.
    #[error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")]
    StringTooLong,
    /// A ZRANGE / ZCOUNT bound that is not a score.
    #[error("ERR min or max is not a float")]
    MinMaxNotFloat,
    /// A ZRANGEBYLEX bound that is not `-`, `+`, `[x` or `(x`.
    #[error("ERR min or max not valid string range item")]
    MinMaxNotLex,
    /// EXPIRE ... NX XX GT LT that do not combine.
    #[error("ERR NX and XX, GT or LT options at the same time are not compatible")]
    ExpireOptions,
    /// ZADD NX with GT or LT, or NX with XX.
    #[error("ERR XX and NX options at the same time are not compatible")]
    ZAddXxNx,
    /// ZADD with GT/LT and NX.
    #[error("ERR GT, LT, and/or NX options at the same time are not compatible")]
    ZAddGtLtNx,
    /// ZADD INCR with more than one pair.
    #[error("ERR INCR option supports a single increment-element pair")]
    ZAddIncrPairs,
    /// ZINCRBY / ZADD INCR on a score that becomes NaN.
    #[error("ERR resulting score is not a number (NaN)")]
    ScoreNan,
    /// MULTI inside MULTI.
    #[error("ERR MULTI calls can not be nested")]
    NestedMulti,
    /// EXEC without MULTI.
    #[error("ERR EXEC without MULTI")]
    ExecWithoutMulti,
    /// DISCARD without MULTI.
    #[error("ERR DISCARD without MULTI")]
    DiscardWithoutMulti,
    /// EXEC after an error while queueing.
    #[error("EXECABORT Transaction discarded because of previous errors.")]
    ExecAbort,
    /// EXEC itself refused (its arity): Redis discards the transaction and
    /// names the refusal, without its `ERR `.
    #[error("EXECABORT Transaction discarded because of: {}", .0.to_string().trim_start_matches("ERR "))]
    ExecRefused(Box<CommandError>),
    /// A command that may not be queued inside MULTI (e.g. WATCH).
    #[error("ERR {0} inside MULTI is not allowed")]
    NotInMulti(&'static str),
    /// An option the command does not know (EXPIRE's wording).
    #[error("ERR Unsupported option {0}")]
    UnsupportedOption(String),
    /// SCAN's cursor is not a number.
    #[error("ERR invalid cursor")]
    InvalidCursor,
    /// Any other error, worded exactly as Redis words it (without "ERR ").
    #[error("ERR {0}")]
    Other(&'static str),

    /// The algebra of sorted sets (ZUNION...) with a count of keys below 1.
    #[error("ERR at least 1 input key is needed for '{0}' command")]
    AtLeastOneKey(&'static str),
    /// The keys of a command that must run in one place are on different
    /// nodes (Redis Cluster's error).
    #[error("CROSSSLOT Keys in request don't hash to the same slot")]
    CrossSlot,
    /// No auxiliary could serve the command now (Redis Cluster's word for
    /// it): why, with the cluster's error code.
    #[error("CLUSTERDOWN {0}")]
    ClusterDown(String),
    /// An error line relayed from the node that ran the command, exactly as
    /// that node wrote it (see `reply::codec`).
    #[error("{0}")]
    Relayed(String),
    /// The caller's token lacks the role the command needs (Redis's ACL
    /// error code, NOPERM; the wording is ours, since roles are not users).
    #[error("NOPERM this token has the {has} role; '{command}' needs the {needs} role")]
    NoPermission {
        /// The command, as the table names it.
        command: &'static str,
        /// The role it needs ([`super::Role::name`]).
        needs: &'static str,
        /// The token's role.
        has: &'static str,
    },
    /// An error a front end words in full, its code included (the RESP
    /// listener's `NOAUTH ...`, `WRONGPASS ...`, `NOPERM ...`), so that a
    /// refused command can doom a transaction like any other error.
    #[error("{0}")]
    Line(String),
}
