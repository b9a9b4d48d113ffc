//! PFADD, PFCOUNT and PFMERGE over HyperLogLog strings
//! (`crate::hyperloglog`), as Redis 7.0 runs them. A change ships as the
//! bytes it changed: a few registers of a dense HyperLogLog cost the
//! replicas a few bytes, not 12 KiB.

use bytes::Bytes;

use super::{EffectOp, Exec, Result};
use crate::command::{CommandError, Reply};
use crate::hyperloglog::{self as hll, Invalid, REGISTERS};
use crate::value::Value;

fn refused(why: Invalid) -> CommandError {
    CommandError::Relayed(
        match why {
            Invalid::NotHll => "WRONGTYPE Key is not a valid HyperLogLog string value.",
            Invalid::Corrupt => "INVALIDOBJ Corrupted HLL object detected",
        }
        .into(),
    )
}

/// Bytes apart by fewer than this are shipped in one range.
const GAP: usize = 8;

impl Exec<'_> {
    /// The HyperLogLog at `key`, a copy of its bytes, if the key exists.
    fn hll(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.entry(key).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::Str(s)) => {
                hll::check(&s.bytes).map_err(refused)?;
                Ok(Some(s.bytes.clone()))
            }
            Some(_) => Err(CommandError::WrongType),
        }
    }

    /// Replaces the string at `key` (`old` before) with `new`: the ranges
    /// that differ when the length is the same, else the whole string.
    fn emit_hll(&mut self, key: &Bytes, old: Option<&[u8]>, new: Vec<u8>) {
        let Some(old) = old.filter(|o| o.len() == new.len()) else {
            self.emit(key, EffectOp::SetString(new));
            return;
        };
        let mut i = 0;
        while i < new.len() {
            if old[i] == new[i] {
                i += 1;
                continue;
            }
            let start = i;
            let mut end = i + 1;
            while end < new.len()
                && new[end..]
                    .iter()
                    .zip(&old[end..])
                    .take(GAP)
                    .any(|(a, b)| a != b)
            {
                end += 1;
            }
            // Trim the equal bytes the look-ahead took in.
            while end > start + 1 && old[end - 1] == new[end - 1] {
                end -= 1;
            }
            self.emit(
                key,
                EffectOp::SetRange {
                    offset: start,
                    bytes: Bytes::copy_from_slice(&new[start..end]),
                },
            );
            i = end;
        }
    }

    pub(super) fn hll_command(&mut self, c: &crate::command::Command) -> Result<Reply> {
        use crate::command::Command as C;
        match c {
            C::PfAdd { key, elements } => {
                let old = self.hll(key)?;
                let (mut b, mut updated) = match &old {
                    Some(b) => (b.clone(), false),
                    None => (hll::empty(), true),
                };
                for e in elements {
                    let (index, value) = hll::pattern(e);
                    match hll::set(&mut b, index, value) {
                        Ok(changed) => updated |= changed,
                        Err(why) => {
                            // What was added before stays, as in Redis.
                            if updated {
                                self.emit_hll(key, old.as_deref(), b);
                            }
                            return Err(refused(why));
                        }
                    }
                }
                if updated {
                    hll::invalidate(&mut b);
                    self.emit_hll(key, old.as_deref(), b);
                }
                Ok(Reply::Integer(i64::from(updated)))
            }
            C::PfCount { keys } if keys.len() == 1 => {
                let key = &keys[0];
                let Some(b) = self.hll(key)? else {
                    return Ok(Reply::Integer(0));
                };
                if let Some(count) = hll::cached(&b) {
                    return Ok(Reply::Integer(count as i64));
                }
                let count = hll::estimate(&hll::registers(&b).map_err(refused)?);
                let mut cached = b.clone();
                hll::cache(&mut cached, count);
                self.emit_hll(key, Some(&b), cached);
                Ok(Reply::Integer(count as i64))
            }
            C::PfCount { keys } => {
                let mut max = vec![0u8; REGISTERS];
                for key in keys {
                    if let Some(b) = self.hll(key)? {
                        merge_into(&mut max, &b)?;
                    }
                }
                Ok(Reply::Integer(hll::estimate(&max) as i64))
            }
            C::PfMerge { dest, sources } => {
                let mut max = vec![0u8; REGISTERS];
                let mut dense = false;
                let old = self.hll(dest)?;
                for b in old.iter() {
                    dense |= b[4] == 0;
                    merge_into(&mut max, b)?;
                }
                for key in sources {
                    if let Some(b) = self.hll(key)? {
                        dense |= b[4] == 0;
                        merge_into(&mut max, &b)?;
                    }
                }
                let mut b = old.clone().unwrap_or_else(hll::empty);
                if dense && b[4] == 1 {
                    // One register at its own value turns it dense, the
                    // header kept, as Redis's conversion does.
                    hll::make_dense(&mut b).map_err(refused)?;
                }
                for (index, &value) in max.iter().enumerate() {
                    if value != 0 {
                        hll::set(&mut b, index, value).map_err(refused)?;
                    }
                }
                hll::invalidate(&mut b);
                self.emit_hll(dest, old.as_deref(), b);
                Ok(Reply::OK)
            }
            _ => Err(super::misrouted(c)),
        }
    }
}

/// Raises `max` to the registers of `b`.
fn merge_into(max: &mut [u8], b: &[u8]) -> Result<()> {
    let regs = hll::registers(b).map_err(refused)?;
    for (m, r) in max.iter_mut().zip(regs) {
        *m = (*m).max(r);
    }
    Ok(())
}
