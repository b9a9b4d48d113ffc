//! Hashes.

use bytes::Bytes;

use super::strings::incr_float;
use super::{EffectOp, Exec, Result, misrouted};
use crate::command::glob::pattern_allows;
use crate::command::long_double::LongDouble;
use crate::command::number::parse_i64;
use crate::command::{Command, CommandError, Reply, ScanOpts};
use crate::value::{HashValue, Value};

impl Exec<'_> {
    fn hash(&mut self, key: &[u8]) -> Result<Option<&HashValue>> {
        match self.entry(key).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::Hash(h)) => Ok(Some(h)),
            Some(_) => Err(CommandError::WrongType),
        }
    }

    pub(super) fn hash_command(&mut self, c: &Command) -> Result<Reply> {
        match c {
            Command::HSet { key, pairs, legacy } => {
                let h = self.hash(key)?;
                let mut seen = std::collections::HashSet::new();
                let added = pairs
                    .iter()
                    .filter(|(f, _)| h.is_none_or(|h| h.get(f).is_none()) && seen.insert(f.clone()))
                    .count();
                self.emit(key, EffectOp::HashSet(pairs.clone()));
                Ok(if *legacy {
                    Reply::OK
                } else {
                    Reply::Integer(added as i64)
                })
            }
            Command::HSetNx { key, field, value } => {
                if self.hash(key)?.is_some_and(|h| h.get(field).is_some()) {
                    return Ok(Reply::Integer(0));
                }
                self.emit(key, EffectOp::HashSet(vec![(field.clone(), value.clone())]));
                Ok(Reply::Integer(1))
            }
            Command::HGet { key, field } => Ok(self
                .hash(key)?
                .and_then(|h| h.get(field))
                .map_or(Reply::Null, |v| Reply::Bulk(v.clone()))),
            Command::HMGet { key, fields } => {
                let h = self.hash(key)?;
                Ok(Reply::Array(
                    fields
                        .iter()
                        .map(|f| {
                            h.and_then(|h| h.get(f))
                                .map_or(Reply::Null, |v| Reply::Bulk(v.clone()))
                        })
                        .collect(),
                ))
            }
            Command::HDel { key, fields } => {
                let Some(h) = self.hash(key)? else {
                    return Ok(Reply::Integer(0));
                };
                let present = super::distinct_kept(fields, |f| h.get(f).is_some());
                let n = present.len();
                if n > 0 {
                    self.emit(key, EffectOp::HashDel(present));
                }
                Ok(Reply::Integer(n as i64))
            }
            Command::HExists { key, field } => Ok(Reply::Integer(i64::from(
                self.hash(key)?.is_some_and(|h| h.get(field).is_some()),
            ))),
            Command::HLen { key } => {
                Ok(Reply::Integer(self.hash(key)?.map_or(0, |h| h.len()) as i64))
            }
            Command::HKeys { key } => Ok(Reply::Array(
                self.hash(key)?
                    .map(|h| h.iter().map(|(f, _)| Reply::Bulk(f.clone())).collect())
                    .unwrap_or_default(),
            )),
            Command::HVals { key } => Ok(Reply::Array(
                self.hash(key)?
                    .map(|h| h.iter().map(|(_, v)| Reply::Bulk(v.clone())).collect())
                    .unwrap_or_default(),
            )),
            Command::HGetAll { key } => Ok(Reply::Map(
                self.hash(key)?
                    .map(|h| {
                        h.iter()
                            .map(|(f, v)| (Reply::Bulk(f.clone()), Reply::Bulk(v.clone())))
                            .collect()
                    })
                    .unwrap_or_default(),
            )),
            Command::HIncrBy { key, field, by } => {
                let current = match self.hash(key)?.and_then(|h| h.get(field)) {
                    None => 0,
                    Some(v) => parse_i64(v).ok_or(CommandError::HashNotInteger)?,
                };
                let next = current.checked_add(*by).ok_or(CommandError::Overflow)?;
                self.emit(
                    key,
                    EffectOp::HashSet(vec![(field.clone(), Bytes::from(next.to_string()))]),
                );
                Ok(Reply::Integer(next))
            }
            Command::HIncrByFloat { key, field, by } => {
                // Redis refuses an infinite increment before it looks at the key.
                match LongDouble::parse(by) {
                    None => return Err(CommandError::NotFloat),
                    Some(v) if v.is_infinite() => {
                        return Err(CommandError::Other("value is NaN or Infinity"));
                    }
                    Some(_) => {}
                }
                let current = self.hash(key)?.and_then(|h| h.get(field)).cloned();
                let text = Bytes::from(incr_float(
                    current.as_deref(),
                    by,
                    CommandError::HashNotFloat,
                )?);
                self.emit(key, EffectOp::HashSet(vec![(field.clone(), text.clone())]));
                Ok(Reply::Bulk(text))
            }
            Command::HStrLen { key, field } => Ok(Reply::Integer(
                self.hash(key)?
                    .and_then(|h| h.get(field))
                    .map_or(0, |v| v.len()) as i64,
            )),
            Command::HRandField {
                key,
                count,
                with_values,
            } => self.hrandfield(key, *count, *with_values),
            Command::HScan { key, cursor, opts } => {
                let Some(h) = self.hash(key)? else {
                    return Ok(empty_scan());
                };
                let opts = opts.clone()?;
                let mut items = Vec::new();
                let push = |(f, v): (&Bytes, &Bytes)| {
                    if matches(&opts, f) {
                        items.push(Reply::Bulk(f.clone()));
                        items.push(Reply::Bulk(v.clone()));
                    }
                };
                // Redis answers a listpack whole, in the order its fields
                // were added, whatever the cursor and COUNT.
                if super::object::is_listpack_hash(h) {
                    h.iter().for_each(push);
                    return Ok(scan_reply(0, items));
                }
                let (window, next) = scan_window(h.len(), *cursor, opts.count);
                window.rev().filter_map(|i| h.get_index(i)).for_each(push);
                Ok(scan_reply(next, items))
            }
            other => Err(misrouted(other)),
        }
    }

    fn hrandfield(&mut self, key: &[u8], count: Option<i64>, with_values: bool) -> Result<Reply> {
        check_repeat_count(count)?;
        let Some(len) = self.hash(key)?.map(|h| h.len()) else {
            return Ok(if count.is_some() {
                Reply::Array(vec![])
            } else {
                Reply::Null
            });
        };
        let picks = match count {
            None => {
                let i = self.random_index(len);
                let h = self.hash(key)?.ok_or(CommandError::NoSuchKey)?;
                return Ok(h
                    .get_index(i)
                    .map_or(Reply::Null, |(f, _)| Reply::Bulk(f.clone())));
            }
            Some(n) => self.random_picks(len, n),
        };
        let h = self.hash(key)?.ok_or(CommandError::NoSuchKey)?;
        let chosen = picks.into_iter().filter_map(|i| h.get_index(i));
        Ok(if with_values {
            Reply::Pairs(
                chosen
                    .map(|(f, v)| (Reply::Bulk(f.clone()), Reply::Bulk(v.clone())))
                    .collect(),
            )
        } else {
            Reply::Array(chosen.map(|(f, _)| Reply::Bulk(f.clone())).collect())
        })
    }

    /// Positions for HRANDFIELD, SRANDMEMBER, ZRANDMEMBER: `n >= 0` gives
    /// `min(n, len)` distinct ones, `n < 0` gives `|n|` with repetition
    /// (callers bound `|n|` first: see [`check_repeat_count`]).
    pub(super) fn random_picks(&mut self, len: usize, n: i64) -> Vec<usize> {
        if n >= 0 {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if n >= len {
                return (0..len).collect();
            }
            rand::seq::index::sample(&mut *self.rng, len, n).into_vec()
        } else {
            let n = usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX);
            (0..n).map(|_| self.random_index(len)).collect()
        }
    }
}

/// The most picks a negative count may ask for. Redis 7.0 answers any
/// count, and a client asking for -9223372036854775807 makes it build a
/// reply it cannot hold; we refuse such a count instead.
pub const MAX_REPEATED_PICKS: u64 = 1 << 20;

/// Refuses a negative count beyond [`MAX_REPEATED_PICKS`].
pub(super) fn check_repeat_count(count: Option<i64>) -> Result<()> {
    match count {
        Some(n) if n < 0 && n.unsigned_abs() > MAX_REPEATED_PICKS => {
            Err(CommandError::OutOfRange("value is out of range"))
        }
        _ => Ok(()),
    }
}

pub(super) fn matches(opts: &ScanOpts, item: &[u8]) -> bool {
    opts.pattern
        .as_ref()
        .is_none_or(|p| pattern_allows(p, item))
}

/// Collections up to this size answer HSCAN, SSCAN and ZSCAN whole, with
/// cursor 0, as Redis does for its compact encodings.
pub const SCAN_WHOLE_UP_TO: usize = 128;

/// The positions one HSCAN, SSCAN or ZSCAN call visits in the collection's
/// index map, and the cursor to answer.
///
/// Positions are walked from the top down, `count` at a time, and the
/// cursor is the lowest position visited so far (0: done). An index map
/// removes by moving its last element into the hole (or, in a hash of up
/// to 512 fields, by moving every element above the hole down one), and
/// adds at the end, so elements only ever move down and an element present
/// for the whole scan is never skipped: it either stays below the cursor
/// until visited, or moves down from above it, which it can only do once
/// it has been visited already, so at worst it comes twice, which SCAN
/// allows. Elements added during the scan may or may not come.
pub(super) fn scan_window(len: usize, cursor: u64, count: usize) -> (std::ops::Range<usize>, u64) {
    // Whatever the cursor, as Redis answers its compact encodings (a
    // collection that shrank to this size mid-scan is then returned whole,
    // which SCAN's guarantee allows).
    if len <= SCAN_WHOLE_UP_TO {
        return (0..len, 0);
    }
    let top = if cursor == 0 {
        len
    } else {
        usize::try_from(cursor).unwrap_or(usize::MAX).min(len)
    };
    let bottom = top.saturating_sub(count.max(1));
    (bottom..top, bottom as u64)
}

/// A scan reply: the next cursor and the items.
pub(super) fn scan_reply(next: u64, items: Vec<Reply>) -> Reply {
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(next.to_string())),
        Reply::Array(items),
    ])
}

pub(super) fn empty_scan() -> Reply {
    scan_reply(0, Vec::new())
}
