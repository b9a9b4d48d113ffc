//! Commands on keys of any type.

use bytes::Bytes;

use super::{EffectOp, Exec, Result, misrouted, scan_cursor, scan_start};
use crate::command::glob::pattern_allows;
use crate::command::{Command, CommandError, ExpireCond, Expiry, Reply, ScanOpts};
use crate::value::ValueType;

/// EXPIRE's time as absolute milliseconds, refused as Redis refuses it
/// (overflow only: a time in the past is allowed and deletes the key).
fn expire_at(e: &Expiry, now: u64) -> Result<i64> {
    let invalid = CommandError::InvalidExpireTime(e.command);
    let mut when = e.amount;
    if !e.millis {
        if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&when) {
            return Err(invalid);
        }
        when *= 1000;
    }
    if !e.absolute {
        if when > i64::MAX - now as i64 {
            return Err(invalid);
        }
        when += now as i64;
    }
    Ok(when)
}

impl Exec<'_> {
    pub(super) fn key_command(&mut self, c: &Command) -> Result<Reply> {
        match c {
            Command::Del { keys } => {
                let mut n = 0;
                for k in keys {
                    if self.exists(k) {
                        self.emit(k, EffectOp::Delete);
                        n += 1;
                    }
                }
                Ok(Reply::Integer(n))
            }
            Command::Exists { keys } | Command::Touch { keys } => Ok(Reply::Integer(
                keys.iter().filter(|k| self.exists(k)).count() as i64,
            )),
            Command::Type { key } => Ok(Reply::Status(
                self.entry(key)
                    .map_or("none", |e| e.value.value_type().name())
                    .into(),
            )),
            Command::Expire { key, when, cond } => self.expire(key, when, *cond),
            Command::Ttl { key, ms } => Ok(Reply::Integer(match self.entry(key) {
                None => -2,
                Some(e) => match e.expire_at_ms {
                    None => -1,
                    Some(at) => {
                        let left = at.saturating_sub(self.now) as i64;
                        if *ms { left } else { (left + 500) / 1000 }
                    }
                },
            })),
            Command::ExpireTime { key, ms } => Ok(Reply::Integer(match self.entry(key) {
                None => -2,
                Some(e) => match e.expire_at_ms {
                    None => -1,
                    Some(at) if *ms => at as i64,
                    Some(at) => (at / 1000) as i64,
                },
            })),
            Command::Persist { key } => {
                if self.entry(key).is_some_and(|e| e.expire_at_ms.is_some()) {
                    self.emit(key, EffectOp::SetExpiry(None));
                    Ok(Reply::Integer(1))
                } else {
                    Ok(Reply::Integer(0))
                }
            }
            Command::Rename { src, dst, nx } => {
                let Some(entry) = self.entry(src).cloned() else {
                    return Err(CommandError::NoSuchKey);
                };
                if src == dst {
                    return Ok(if *nx { Reply::Integer(0) } else { Reply::OK });
                }
                if *nx && self.exists(dst) {
                    return Ok(Reply::Integer(0));
                }
                self.emit(
                    dst,
                    EffectOp::Put {
                        value: entry.value,
                        expire_at_ms: entry.expire_at_ms,
                    },
                );
                self.emit(src, EffectOp::Delete);
                Ok(if *nx { Reply::Integer(1) } else { Reply::OK })
            }
            Command::Copy { src, dst, replace } => {
                if src == dst {
                    return Err(CommandError::Other(
                        "source and destination objects are the same",
                    ));
                }
                let Some(entry) = self.entry(src).cloned() else {
                    return Ok(Reply::Integer(0));
                };
                if !*replace && self.exists(dst) {
                    return Ok(Reply::Integer(0));
                }
                self.emit(
                    dst,
                    EffectOp::Put {
                        value: entry.value,
                        expire_at_ms: entry.expire_at_ms,
                    },
                );
                Ok(Reply::Integer(1))
            }
            Command::Keys { pattern } => {
                self.ks.remove_expired(self.now);
                Ok(Reply::Array(
                    self.ks
                        .iter()
                        .filter(|(k, _)| pattern_allows(pattern, k))
                        .map(|(k, _)| Reply::Bulk(k.clone()))
                        .collect(),
                ))
            }
            Command::DbSize => {
                self.ks.remove_expired(self.now);
                Ok(Reply::Integer(self.ks.len() as i64))
            }
            Command::FlushAll => {
                self.ks.remove_expired(self.now);
                let keys: Vec<Bytes> = self.ks.iter().map(|(k, _)| k.clone()).collect();
                for key in &keys {
                    self.emit(key, EffectOp::Delete);
                }
                Ok(Reply::OK)
            }
            Command::RandomKey => {
                self.ks.remove_expired(self.now);
                if self.ks.is_empty() {
                    return Ok(Reply::Null);
                }
                let i = self.random_index(self.ks.len());
                Ok(self
                    .ks
                    .iter()
                    .nth(i)
                    .map_or(Reply::Null, |(k, _)| Reply::Bulk(k.clone())))
            }
            Command::Scan { cursor, opts } => Ok(self.scan(*cursor, opts)),
            other => Err(misrouted(other)),
        }
    }

    fn expire(&mut self, key: &Bytes, when: &Expiry, cond: ExpireCond) -> Result<Reply> {
        let when = expire_at(when, self.now)?;
        let Some(entry) = self.entry(key) else {
            return Ok(Reply::Integer(0));
        };
        let current = entry.expire_at_ms.map(|at| at as i64);
        let refused = (cond.nx && current.is_some())
            || (cond.xx && current.is_none())
            || (cond.gt && current.is_none_or(|cur| when <= cur))
            || (cond.lt && current.is_some_and(|cur| when >= cur));
        if refused {
            return Ok(Reply::Integer(0));
        }
        if when <= self.now as i64 {
            self.emit(key, EffectOp::Delete);
        } else {
            self.emit(key, EffectOp::SetExpiry(Some(when as u64)));
        }
        Ok(Reply::Integer(1))
    }

    /// SCAN: the keys from `cursor` on in hash order, until `count`
    /// distinct cursors ([`scan_cursor`]: positions halved) were visited,
    /// filtered; the next cursor is the first one not visited, or 0 at the
    /// end. Keys sharing a cursor are always answered together, so a
    /// cursor never splits them.
    fn scan(&mut self, cursor: u64, opts: &ScanOpts) -> Reply {
        self.ks.remove_expired(self.now);
        let type_filter = opts.type_name.as_ref().map(|t| ValueType::from_name(t));
        let mut keys = Vec::new();
        let mut next = 0;
        let mut visited = 0;
        let mut last = None;
        for (pos, k, e) in self.ks.iter_from(scan_start(cursor)) {
            let at = scan_cursor(pos);
            if last != Some(at) {
                if visited == opts.count {
                    next = at;
                    break;
                }
                visited += 1;
                last = Some(at);
            }
            let type_ok = match type_filter {
                None => true,
                Some(None) => false,
                Some(Some(t)) => e.value.value_type() == t,
            };
            if type_ok && opts.pattern.as_ref().is_none_or(|p| pattern_allows(p, k)) {
                keys.push(Reply::Bulk(k.clone()));
            }
        }
        Reply::Array(vec![
            Reply::Bulk(Bytes::from(next.to_string())),
            Reply::Array(keys),
        ])
    }
}
