//! Sets.

use bytes::Bytes;

use super::hashes::{check_repeat_count, empty_scan, matches, scan_reply, scan_window};
use super::{EffectOp, Exec, Result, misrouted};
use crate::command::{Command, CommandError, Reply, SetOp};
use crate::value::{SetValue, Value};

impl Exec<'_> {
    fn set(&mut self, key: &[u8]) -> Result<Option<&SetValue>> {
        match self.entry(key).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::Set(s)) => Ok(Some(s)),
            Some(_) => Err(CommandError::WrongType),
        }
    }

    pub(super) fn set_command(&mut self, c: &Command) -> Result<Reply> {
        match c {
            Command::SAdd { key, members } => {
                let s = self.set(key)?;
                let new = super::distinct_kept(members, |m| s.is_none_or(|s| !s.contains(m)));
                let n = new.len();
                if n > 0 {
                    self.emit(key, EffectOp::SetAdd(new));
                }
                Ok(Reply::Integer(n as i64))
            }
            Command::SRem { key, members } => {
                let Some(s) = self.set(key)? else {
                    return Ok(Reply::Integer(0));
                };
                let gone = super::distinct_kept(members, |m| s.contains(m));
                let n = gone.len();
                if n > 0 {
                    self.emit(key, EffectOp::SetRemove(gone));
                }
                Ok(Reply::Integer(n as i64))
            }
            // An intset's members in Redis's order: ascending numbers.
            Command::SMembers { key } => Ok(Reply::Set(match self.set(key)? {
                None => Vec::new(),
                Some(s) => match super::object::intset_order(s) {
                    Some(ordered) => ordered
                        .into_iter()
                        .map(|m| Reply::Bulk(m.clone()))
                        .collect(),
                    None => s.iter().map(|m| Reply::Bulk(m.clone())).collect(),
                },
            })),
            Command::SIsMember { key, member } => Ok(Reply::Integer(i64::from(
                self.set(key)?.is_some_and(|s| s.contains(member)),
            ))),
            Command::SMIsMember { key, members } => {
                let s = self.set(key)?;
                Ok(Reply::Array(
                    members
                        .iter()
                        .map(|m| Reply::Integer(i64::from(s.is_some_and(|s| s.contains(m)))))
                        .collect(),
                ))
            }
            Command::SCard { key } => {
                Ok(Reply::Integer(self.set(key)?.map_or(0, |s| s.len()) as i64))
            }
            Command::SPop { key, count } => {
                let Some(len) = self.set(key)?.map(|s| s.len()) else {
                    return Ok(if count.is_some() {
                        Reply::Set(vec![])
                    } else {
                        Reply::Null
                    });
                };
                let picks = self.random_picks(len, count.unwrap_or(1) as i64);
                let s = self.set(key)?.ok_or(CommandError::NoSuchKey)?;
                let popped: Vec<Bytes> = picks
                    .into_iter()
                    .filter_map(|i| s.get_index(i).cloned())
                    .collect();
                if popped.len() == len {
                    self.emit(key, EffectOp::Delete);
                } else if !popped.is_empty() {
                    self.emit(key, EffectOp::SetRemove(popped.clone()));
                }
                Ok(match count {
                    Some(_) => Reply::Set(popped.into_iter().map(Reply::Bulk).collect()),
                    None => popped.into_iter().next().map_or(Reply::Null, Reply::Bulk),
                })
            }
            Command::SRandMember { key, count } => {
                check_repeat_count(*count)?;
                let Some(len) = self.set(key)?.map(|s| s.len()) else {
                    return Ok(if count.is_some() {
                        Reply::Array(vec![])
                    } else {
                        Reply::Null
                    });
                };
                let picks = self.random_picks(len, count.unwrap_or(1));
                let s = self.set(key)?.ok_or(CommandError::NoSuchKey)?;
                let chosen: Vec<Reply> = picks
                    .into_iter()
                    .filter_map(|i| s.get_index(i).map(|m| Reply::Bulk(m.clone())))
                    .collect();
                Ok(match count {
                    Some(_) => Reply::Array(chosen),
                    None => chosen.into_iter().next().unwrap_or(Reply::Null),
                })
            }
            Command::SMove { src, dst, member } => {
                let src_has = match self.set(src)? {
                    None => return Ok(Reply::Integer(0)),
                    Some(s) => s.contains(member),
                };
                self.set(dst)?;
                if src == dst {
                    return Ok(Reply::Integer(i64::from(src_has)));
                }
                if !src_has {
                    return Ok(Reply::Integer(0));
                }
                self.emit(src, EffectOp::SetRemove(vec![member.clone()]));
                if !self.set(dst)?.is_some_and(|s| s.contains(member)) {
                    self.emit(dst, EffectOp::SetAdd(vec![member.clone()]));
                }
                Ok(Reply::Integer(1))
            }
            Command::SetAlgebra { op, keys, store } => {
                let result = self.algebra(*op, keys)?;
                match store {
                    None => Ok(Reply::Set(
                        result.iter().map(|m| Reply::Bulk(m.clone())).collect(),
                    )),
                    Some(dst) => {
                        let n = result.len();
                        Ok(self.store_result(dst, (n > 0).then_some(Value::Set(result)), n))
                    }
                }
            }
            Command::SInterCard { keys, limit } => {
                let result = self.algebra(SetOp::Inter, keys)?;
                let n = if *limit == 0 {
                    result.len()
                } else {
                    result.len().min(*limit)
                };
                Ok(Reply::Integer(n as i64))
            }
            Command::SScan { key, cursor, opts } => {
                let Some(s) = self.set(key)? else {
                    return Ok(empty_scan());
                };
                let opts = opts.clone()?;
                // Redis answers an intset whole, in its order, whatever
                // the cursor and COUNT.
                if let Some(ordered) = super::object::intset_order(s) {
                    let items = ordered
                        .into_iter()
                        .filter(|m| matches(&opts, m))
                        .map(|m| Reply::Bulk(m.clone()))
                        .collect();
                    return Ok(scan_reply(0, items));
                }
                let (window, next) = scan_window(s.len(), *cursor, opts.count);
                Ok(scan_reply(
                    next,
                    window
                        .rev()
                        .filter_map(|i| s.get_index(i))
                        .filter(|m| matches(&opts, m))
                        .map(|m| Reply::Bulk(m.clone()))
                        .collect(),
                ))
            }
            other => Err(misrouted(other)),
        }
    }

    /// SINTER, SUNION, SDIFF over `keys` (missing keys are empty sets; every
    /// key is type-checked first, as Redis does).
    fn algebra(&mut self, op: SetOp, keys: &[Bytes]) -> Result<SetValue> {
        let mut sets: Vec<Option<SetValue>> = Vec::with_capacity(keys.len());
        for k in keys {
            sets.push(self.set(k)?.cloned());
        }
        let empty = SetValue::new();
        let mut result = SetValue::new();
        match op {
            SetOp::Inter => {
                if sets.iter().any(Option::is_none) {
                    return Ok(result);
                }
                let all: Vec<&SetValue> = sets.iter().flatten().collect();
                let Some(smallest) = all.iter().min_by_key(|s| s.len()) else {
                    return Ok(result);
                };
                for m in smallest.iter() {
                    if all.iter().all(|s| s.contains(m)) {
                        result.insert(m.clone());
                    }
                }
            }
            SetOp::Union => {
                for s in sets.iter().flatten() {
                    for m in s.iter() {
                        result.insert(m.clone());
                    }
                }
            }
            SetOp::Diff => {
                let first = sets.first().and_then(Option::as_ref).unwrap_or(&empty);
                for m in first.iter() {
                    if !sets[1..].iter().flatten().any(|s| s.contains(m)) {
                        result.insert(m.clone());
                    }
                }
            }
        }
        Ok(result)
    }
}
