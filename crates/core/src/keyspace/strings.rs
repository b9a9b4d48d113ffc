//! Strings and counters.

use bytes::Bytes;

use super::{EffectOp, Exec, Result, misrouted};
use crate::command::long_double::LongDouble;
use crate::command::{
    Command, CommandError, Cond, Expiry, GetExExpiry, LcsOptions, Reply, SetExpiry,
};
use crate::value::{StrValue, Value};

/// The largest string Redis accepts (`proto-max-bulk-len`, 512 MiB).
pub const MAX_STRING_BYTES: usize = 512 * 1024 * 1024;

/// SET's and GETEX's expiry as an absolute time, refused as Redis's
/// `getExpireMillisecondsOrReply` refuses it: not positive, or past the
/// 64-bit range once made absolute.
pub(super) fn absolute_expiry(e: &Expiry, now: u64) -> Result<u64> {
    let invalid = CommandError::InvalidExpireTime(e.command);
    if e.amount <= 0 || (!e.millis && e.amount > i64::MAX / 1000) {
        return Err(invalid);
    }
    let mut ms = if e.millis { e.amount } else { e.amount * 1000 };
    if !e.absolute {
        ms = ms.checked_add(now as i64).ok_or(invalid.clone())?;
    }
    if ms <= 0 {
        return Err(invalid);
    }
    Ok(ms as u64)
}

/// Adds two floats given as text in INCRBYFLOAT's arithmetic (C's `long
/// double`, emulated) and formats the sum as Redis does (`%.17Lf`, then
/// trailing zeros and a bare point removed; `-0` becomes `0`). `current`
/// and `by` are refused with `current_error` and `NotFloat`.
pub(super) fn incr_float(
    current: Option<&[u8]>,
    by: &[u8],
    current_error: CommandError,
) -> Result<String> {
    let current = match current {
        None => LongDouble::parse(b"0").ok_or(CommandError::NotFloat)?,
        Some(text) => LongDouble::parse(text).ok_or(current_error)?,
    };
    let by = LongDouble::parse(by).ok_or(CommandError::NotFloat)?;
    let sum = current.checked_add(by).ok_or(CommandError::NanOrInfinity)?;
    if sum.is_infinite() {
        return Err(CommandError::NanOrInfinity);
    }
    let s = sum.format_fixed_17();
    let s = s.trim_end_matches('0').trim_end_matches('.');
    Ok(if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    })
}

impl Exec<'_> {
    /// The string at `key`, `WRONGTYPE` if it holds something else.
    pub(super) fn string(&mut self, key: &[u8]) -> Result<Option<&StrValue>> {
        match self.entry(key).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s)),
            Some(_) => Err(CommandError::WrongType),
        }
    }

    fn string_bytes(&mut self, key: &[u8]) -> Result<Option<Bytes>> {
        Ok(self.string(key)?.map(|s| Bytes::copy_from_slice(&s.bytes)))
    }

    pub(super) fn string_command(&mut self, c: &Command) -> Result<Reply> {
        match c {
            Command::Get { key } => Ok(self.string_bytes(key)?.map_or(Reply::Null, Reply::Bulk)),
            Command::Set {
                key,
                value,
                cond,
                expiry,
                get,
            } => self.set_string(key, value, *cond, *expiry, *get),
            Command::SetNx { key, value } => {
                if self.exists(key) {
                    return Ok(Reply::Integer(0));
                }
                self.put_string(key, value, None);
                Ok(Reply::Integer(1))
            }
            Command::GetDel { key } => {
                let old = self.string_bytes(key)?;
                if old.is_some() {
                    self.emit(key, EffectOp::Delete);
                }
                Ok(old.map_or(Reply::Null, Reply::Bulk))
            }
            Command::GetEx { key, expiry } => {
                let Some(old) = self.string_bytes(key)? else {
                    return Ok(Reply::Null);
                };
                let expiry = expiry.clone()?;
                let at = match &expiry {
                    GetExExpiry::At(e) => Some(absolute_expiry(e, self.now)?),
                    _ => None,
                };
                match (&expiry, at) {
                    (GetExExpiry::At(_), Some(at)) if at <= self.now => {
                        self.emit(key, EffectOp::Delete)
                    }
                    (GetExExpiry::At(_), Some(at)) => self.emit(key, EffectOp::SetExpiry(Some(at))),
                    (GetExExpiry::Persist, _)
                        if self.entry(key).is_some_and(|e| e.expire_at_ms.is_some()) =>
                    {
                        self.emit(key, EffectOp::SetExpiry(None));
                    }
                    _ => {}
                }
                Ok(Reply::Bulk(old))
            }
            Command::MGet { keys } => Ok(Reply::Array(
                keys.iter()
                    .map(|k| match self.string(k) {
                        Ok(Some(s)) => Reply::bulk(&s.bytes),
                        _ => Reply::Null,
                    })
                    .collect(),
            )),
            Command::MSet {
                pairs,
                only_if_none_exist,
            } => {
                if *only_if_none_exist && pairs.iter().any(|(k, _)| self.exists(k)) {
                    return Ok(Reply::Integer(0));
                }
                for (k, v) in pairs {
                    self.put_string(k, v, None);
                }
                Ok(if *only_if_none_exist {
                    Reply::Integer(1)
                } else {
                    Reply::OK
                })
            }
            Command::Append { key, value } => {
                let len = self.string(key)?.map_or(0, |s| s.bytes.len());
                if len + value.len() > MAX_STRING_BYTES {
                    return Err(CommandError::StringTooLong);
                }
                self.fits(len + value.len())?;
                self.emit(key, EffectOp::Append(value.clone()));
                Ok(Reply::Integer((len + value.len()) as i64))
            }
            Command::StrLen { key } => Ok(Reply::Integer(
                self.string(key)?.map_or(0, |s| s.bytes.len()) as i64,
            )),
            Command::GetRange { key, start, end } => {
                let Some(s) = self.string(key)? else {
                    return Ok(Reply::bulk(b""));
                };
                Ok(Reply::bulk(substring(&s.bytes, *start, *end)))
            }
            Command::Lcs { a, b, options } => {
                let mut string = |key: &[u8]| match self.entry(key).map(|e| &e.value) {
                    None => Ok(Bytes::new()),
                    Some(Value::Str(s)) => Ok(Bytes::copy_from_slice(&s.bytes)),
                    Some(_) => Err(CommandError::Other(
                        "The specified keys must contain string values",
                    )),
                };
                let (a, b) = (string(a)?, string(b)?);
                lcs(&a, &b, options.clone()?)
            }
            Command::SetRange { key, offset, value } => {
                let len = match self.string(key)? {
                    None if value.is_empty() => return Ok(Reply::Integer(0)),
                    None => 0,
                    Some(s) if value.is_empty() => return Ok(Reply::Integer(s.bytes.len() as i64)),
                    Some(s) => s.bytes.len(),
                };
                if offset.saturating_add(value.len()) > MAX_STRING_BYTES {
                    return Err(CommandError::StringTooLong);
                }
                self.fits(len.max(offset + value.len()))?;
                self.emit(
                    key,
                    EffectOp::SetRange {
                        offset: *offset,
                        bytes: value.clone(),
                    },
                );
                Ok(Reply::Integer(len.max(offset + value.len()) as i64))
            }
            Command::IncrBy { key, by } => {
                let current = match self.string(key)? {
                    None => 0,
                    Some(s) => crate::command::number::parse_i64(&s.bytes)
                        .ok_or(CommandError::NotInteger)?,
                };
                let next = current.checked_add(*by).ok_or(CommandError::Overflow)?;
                self.emit(key, EffectOp::SetString(next.to_string().into_bytes()));
                Ok(Reply::Integer(next))
            }
            Command::IncrByFloat { key, by } => {
                let current = self.string(key)?.map(|s| s.bytes.clone());
                let text = incr_float(current.as_deref(), by, CommandError::NotFloat)?;
                self.emit(key, EffectOp::SetString(text.clone().into_bytes()));
                Ok(Reply::Bulk(Bytes::from(text)))
            }
            other => Err(misrouted(other)),
        }
    }

    fn set_string(
        &mut self,
        key: &Bytes,
        value: &Bytes,
        cond: Cond,
        expiry: SetExpiry,
        get: bool,
    ) -> Result<Reply> {
        let at = match expiry {
            SetExpiry::At(e) => Some(absolute_expiry(&e, self.now)?),
            _ => None,
        };
        let old = if get {
            Some(self.string_bytes(key)?)
        } else {
            None
        };
        let found = self.entry(key);
        let exists = found.is_some();
        let old_expiry = found.and_then(|e| e.expire_at_ms);
        let refused = match cond {
            Cond::Always => false,
            Cond::IfMissing => exists,
            Cond::IfExists => !exists,
        };
        if !refused {
            let expire_at = match expiry {
                SetExpiry::Clear => None,
                SetExpiry::Keep => old_expiry,
                SetExpiry::At(_) => at,
            };
            self.put_string(key, value, expire_at);
        }
        Ok(match old {
            Some(old) => old.map_or(Reply::Null, Reply::Bulk),
            None if refused => Reply::Null,
            None => Reply::OK,
        })
    }

    fn put_string(&mut self, key: &Bytes, value: &Bytes, expire_at_ms: Option<u64>) {
        self.emit(
            key,
            EffectOp::Put {
                value: Value::string(value.to_vec()),
                expire_at_ms,
            },
        );
    }
}

/// GETRANGE's rules: negative offsets count from the end; out-of-range ends
/// are clamped; an empty or inverted range is the empty string.
fn substring(s: &[u8], start: i64, end: i64) -> &[u8] {
    let len = s.len() as i64;
    if start < 0 && end < 0 && start > end {
        return b"";
    }
    let mut start = if start < 0 { len + start } else { start };
    let mut end = if end < 0 { len + end } else { end };
    if start < 0 {
        start = 0;
    }
    if end < 0 {
        end = 0;
    }
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return b"";
    }
    &s[start as usize..=end as usize]
}

/// The most memory LCS's table may take: (len(a) + 1) × (len(b) + 1)
/// four-byte cells. Redis bounds it by `proto-max-bulk-len` (512 MiB by
/// default); a cache node that serves other keys meanwhile stops at 16 MiB,
/// about four million cells, a few milliseconds of work.
pub const LCS_MAX_TABLE_BYTES: u64 = 16 << 20;

/// LCS as Redis computes it: the dynamic-programming table of common
/// lengths, then a walk back from its corner that takes a match where the
/// bytes agree and otherwise steps along `a` only when that keeps a longer
/// subsequence (so which of several equally long answers comes out, and the
/// order of IDX's ranges, last first, are Redis's).
fn lcs(a: &[u8], b: &[u8], options: LcsOptions) -> Result<Reply> {
    let cells = (a.len() as u64 + 1) * (b.len() as u64 + 1);
    if cells.saturating_mul(4) > LCS_MAX_TABLE_BYTES {
        return Err(CommandError::Other(
            "Insufficient memory, transient memory for LCS exceeds the 16 MiB limit",
        ));
    }
    let width = b.len() + 1;
    let mut table = vec![0u32; cells as usize];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    let len = table[a.len() * width + b.len()];
    if options.len {
        return Ok(Reply::Integer(i64::from(len)));
    }
    let mut common = vec![0u8; len as usize];
    let mut matches = Vec::new();
    // The range being grown backwards: (a's start, a's end, b's start, b's end).
    let mut range: Option<(usize, usize, usize, usize)> = None;
    let (mut i, mut j, mut left) = (a.len(), b.len(), len as usize);
    while i > 0 && j > 0 {
        let emit = if a[i - 1] == b[j - 1] {
            common[left - 1] = a[i - 1];
            left -= 1;
            let grown = match range {
                None => (i - 1, i - 1, j - 1, j - 1),
                // Contiguous: every match after a match is (the walk
                // steps both ways at once, and any other step closes it).
                Some((_, a_end, _, b_end)) => (i - 1, a_end, j - 1, b_end),
            };
            range = Some(grown);
            i -= 1;
            j -= 1;
            grown.0 == 0 || grown.2 == 0
        } else {
            if table[(i - 1) * width + j] > table[i * width + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            range.is_some()
        };
        if emit {
            if let Some((a_start, a_end, b_start, b_end)) = range.take() {
                let match_len = (a_end - a_start + 1) as u64;
                if match_len >= options.min_match_len {
                    let pair = |start: usize, end: usize| {
                        Reply::Array(vec![
                            Reply::Integer(start as i64),
                            Reply::Integer(end as i64),
                        ])
                    };
                    let mut item = vec![pair(a_start, a_end), pair(b_start, b_end)];
                    if options.with_match_len {
                        item.push(Reply::Integer(match_len as i64));
                    }
                    matches.push(Reply::Array(item));
                }
            }
        }
    }
    if !options.idx {
        return Ok(Reply::Bulk(Bytes::from(common)));
    }
    Ok(Reply::Map(vec![
        (Reply::bulk(b"matches"), Reply::Array(matches)),
        (Reply::bulk(b"len"), Reply::Integer(i64::from(len))),
    ]))
}
