//! Bitmaps: strings read and written as arrays of bits (SETBIT, GETBIT,
//! BITCOUNT, BITPOS, BITOP, BITFIELD), as Redis 7.0's `bitops.c` does.
//!
//! Bit 0 is the most significant bit of byte 0. Reading past the end of a
//! string reads zeros; writing past it grows the string with zero bytes.
//! A write ships as the bytes it changed (`SetRange`), so a bit set in a
//! large bitmap costs its replicas one byte, not the whole value; BITOP,
//! which makes a new value, ships it whole.

use bytes::Bytes;

use super::{EffectOp, Exec, Result, misrouted};
use crate::command::{
    BitFieldAction, BitFieldOp, BitOpKind, BitPosRange, BitRange, Command, Overflow, Reply,
};
use crate::value::Value;

impl Exec<'_> {
    /// The string at `key` as bytes (empty when missing), `WRONGTYPE` if
    /// it holds something else.
    fn bits_of(&mut self, key: &[u8]) -> Result<Option<&[u8]>> {
        Ok(self.string(key)?.map(|s| s.bytes.as_slice()))
    }

    pub(super) fn bit_command(&mut self, c: &Command) -> Result<Reply> {
        match c {
            Command::SetBit { key, offset, bit } => {
                let byte = (offset >> 3) as usize;
                let mask = 0x80u8 >> (offset & 7);
                let len = self.bits_of(key)?.map_or(0, <[u8]>::len);
                self.fits(len.max(byte + 1))?;
                let old = self
                    .bits_of(key)?
                    .and_then(|b| b.get(byte).copied())
                    .unwrap_or(0);
                let new = if *bit { old | mask } else { old & !mask };
                self.emit(
                    key,
                    EffectOp::SetRange {
                        offset: byte,
                        bytes: Bytes::copy_from_slice(&[new]),
                    },
                );
                Ok(Reply::Integer(i64::from(old & mask != 0)))
            }
            Command::GetBit { key, offset } => {
                let byte = (offset >> 3) as usize;
                let set = self
                    .bits_of(key)?
                    .and_then(|b| b.get(byte))
                    .is_some_and(|b| b & (0x80 >> (offset & 7)) != 0);
                Ok(Reply::Integer(i64::from(set)))
            }
            Command::BitCount { key, range } => {
                let Some(bytes) = self.bits_of(key)? else {
                    return Ok(Reply::Integer(0));
                };
                Ok(Reply::Integer(bit_count(bytes, range.clone()?)))
            }
            Command::BitPos { key, bit, range } => {
                let Some(bytes) = self.bits_of(key)? else {
                    // An infinite run of zeros.
                    return Ok(Reply::Integer(if *bit { -1 } else { 0 }));
                };
                let BitPosRange { start, end, bits } = range.clone()?;
                Ok(Reply::Integer(bit_pos(bytes, *bit, start, end, bits)))
            }
            Command::BitOp { op, dest, keys } => self.bit_op(*op, dest, keys),
            Command::BitField { key, ops } => self.bit_field(key, ops),
            other => Err(misrouted(other)),
        }
    }

    fn bit_op(&mut self, op: BitOpKind, dest: &Bytes, keys: &[Bytes]) -> Result<Reply> {
        let mut sources: Vec<Vec<u8>> = Vec::with_capacity(keys.len());
        for key in keys {
            sources.push(self.bits_of(key)?.map(<[u8]>::to_vec).unwrap_or_default());
        }
        let len = sources.iter().map(Vec::len).max().unwrap_or(0);
        let byte = |source: &Vec<u8>, i: usize| source.get(i).copied().unwrap_or(0);
        let result: Vec<u8> = (0..len)
            .map(|i| {
                let first = byte(&sources[0], i);
                let rest = sources[1..].iter().map(|s| byte(s, i));
                match op {
                    BitOpKind::Not => !first,
                    BitOpKind::And => rest.fold(first, |a, b| a & b),
                    BitOpKind::Or => rest.fold(first, |a, b| a | b),
                    BitOpKind::Xor => rest.fold(first, |a, b| a ^ b),
                }
            })
            .collect();
        if result.is_empty() {
            if self.exists(dest) {
                self.emit(dest, EffectOp::Delete);
            }
        } else {
            self.emit(
                dest,
                EffectOp::Put {
                    value: Value::string(result),
                    expire_at_ms: None,
                },
            );
        }
        Ok(Reply::Integer(len as i64))
    }

    fn bit_field(&mut self, key: &Bytes, ops: &[BitFieldOp]) -> Result<Reply> {
        let writes = ops.iter().filter(|op| op.action != BitFieldAction::Get);
        // The string grows first to hold the furthest field written, as in
        // Redis (so a key is made even when every write fails).
        let needed = writes
            .map(|op| ((op.offset + u64::from(op.width) - 1) >> 3) as usize + 1)
            .max();
        let len = self.bits_of(key)?.map_or(0, <[u8]>::len);
        if let Some(needed) = needed {
            self.fits(needed.max(len))?;
        }
        if let Some(needed) = needed
            && (needed > len || !self.exists(key))
        {
            self.emit(
                key,
                EffectOp::SetRange {
                    offset: len,
                    bytes: Bytes::from(vec![0; needed.saturating_sub(len)]),
                },
            );
        }
        let mut replies = Vec::with_capacity(ops.len());
        for op in ops {
            let old = read_field(self.bits_of(key)?.unwrap_or_default(), op);
            let (reply, new) = match op.action {
                BitFieldAction::Get => (Reply::Integer(old), None),
                BitFieldAction::Set(value) => match fit(op, value, 0) {
                    Some(new) => (Reply::Integer(old), Some(new)),
                    None => (Reply::Null, None),
                },
                BitFieldAction::IncrBy(by) => match fit(op, old, by) {
                    Some(new) => (Reply::Integer(new), Some(new)),
                    None => (Reply::Null, None),
                },
            };
            if let Some(new) = new {
                let first = (op.offset >> 3) as usize;
                let last = ((op.offset + u64::from(op.width) - 1) >> 3) as usize;
                let mut bytes = self.bits_of(key)?.unwrap_or_default()[first..=last].to_vec();
                write_field(&mut bytes, op.offset & 7, op.width, new as u64);
                self.emit(
                    key,
                    EffectOp::SetRange {
                        offset: first,
                        bytes: Bytes::from(bytes),
                    },
                );
            }
            replies.push(reply);
        }
        Ok(Reply::Array(replies))
    }
}

/// BITCOUNT: the set bits of `bytes`, or of a range of them (negative
/// ends count from the end; a range in bits masks its first and last
/// bytes).
fn bit_count(bytes: &[u8], range: Option<BitRange>) -> i64 {
    let Some(BitRange { start, end, bits }) = range else {
        return ones(bytes);
    };
    let total = if bits {
        (bytes.len() as i64) << 3
    } else {
        bytes.len() as i64
    };
    let (start, end) = clamp(start, end, total);
    if start > end {
        return 0;
    }
    if !bits {
        return ones(&bytes[start as usize..=end as usize]);
    }
    let (first, last) = ((start >> 3) as usize, (end >> 3) as usize);
    let first_mask = !((1u16 << (8 - (start & 7))) - 1) as u8;
    let last_mask = ((1u16 << (7 - (end & 7))) - 1) as u8;
    ones(&bytes[first..=last])
        - i64::from((bytes[first] & first_mask).count_ones())
        - i64::from((bytes[last] & last_mask).count_ones())
}

fn ones(bytes: &[u8]) -> i64 {
    bytes.iter().map(|b| i64::from(b.count_ones())).sum()
}

/// Redis's range rules: negative from the end, then both at least 0 and
/// the end at most the last index.
fn clamp(start: i64, end: i64, total: i64) -> (i64, i64) {
    let from_end = |i: i64| if i < 0 { total.saturating_add(i) } else { i };
    let start = from_end(start).max(0);
    let end = from_end(end).max(0).min(total - 1);
    (start, end)
}

/// BITPOS over an existing string: Redis's `bitposCommand`, quirks
/// included (looking for 0 with no end given, a string of ones answers
/// the first bit past its end; with an end given, -1).
fn bit_pos(bytes: &[u8], bit: bool, start: Option<i64>, end: Option<i64>, bits: bool) -> i64 {
    let len = bytes.len() as i64;
    // An end is read only after a start.
    let end_given = end.is_some();
    let (mut start, mut end) = match start {
        None => (0, len - 1),
        Some(start) => {
            let total = if bits { len << 3 } else { len };
            // BIT comes only after an end.
            let end = end.unwrap_or(len - 1);
            clamp(start, end, total)
        }
    };
    if start > end {
        return -1;
    }
    let (mut first_mask, mut last_mask) = (0u8, 0u8);
    if bits {
        first_mask = !((1u16 << (8 - (start & 7))) - 1) as u8;
        last_mask = ((1u16 << (7 - (end & 7))) - 1) as u8;
        start >>= 3;
        end >>= 3;
    }
    let mut count = end - start + 1;
    let masked = |byte: u8, mask: u8| if bit { byte & !mask } else { byte | mask };
    let pos = 'found: {
        if first_mask != 0 {
            let mut one = masked(bytes[start as usize], first_mask);
            if last_mask != 0 && count == 1 {
                one = masked(one, last_mask);
            }
            let pos = first_bit(&[one], bit);
            if count == 1 || (pos != -1 && pos != 8) {
                break 'found pos;
            }
            start += 1;
            count -= 1;
        }
        let whole = count - i64::from(last_mask != 0);
        if whole > 0 {
            let from = start as usize;
            let pos = first_bit(&bytes[from..from + whole as usize], bit);
            if count == whole || (pos != -1 && pos != whole << 3) {
                break 'found pos;
            }
            start += whole;
            count -= whole;
        }
        first_bit(&[masked(bytes[end as usize], last_mask)], bit)
    };
    if end_given && !bit && pos == count << 3 {
        return -1;
    }
    if pos == -1 { -1 } else { pos + (start << 3) }
}

/// Redis's `redisBitpos`: the first bit equal to `bit` in `bytes`; for a
/// 1 not found, -1; for a 0 not found, the first bit past the end.
fn first_bit(bytes: &[u8], bit: bool) -> i64 {
    for (i, byte) in bytes.iter().enumerate() {
        let byte = if bit { *byte } else { !*byte };
        if byte != 0 {
            return ((i as i64) << 3) + i64::from(byte.leading_zeros());
        }
    }
    if bit { -1 } else { (bytes.len() as i64) << 3 }
}

/// The field `op` names, read from `bytes` (zeros past the end), signed
/// or not.
fn read_field(bytes: &[u8], op: &BitFieldOp) -> i64 {
    let mut value: u64 = 0;
    for i in 0..u64::from(op.width) {
        let at = op.offset + i;
        let bit = bytes
            .get((at >> 3) as usize)
            .is_some_and(|b| b & (0x80 >> (at & 7)) != 0);
        value = (value << 1) | u64::from(bit);
    }
    if op.signed && op.width < 64 && value & (1 << (op.width - 1)) != 0 {
        value |= u64::MAX << op.width;
    }
    value as i64
}

/// Writes the low `width` bits of `value` at bit `offset` of `bytes`.
fn write_field(bytes: &mut [u8], offset: u64, width: u32, value: u64) {
    for i in 0..u64::from(width) {
        let at = offset + i;
        let mask = 0x80u8 >> (at & 7);
        let byte = &mut bytes[(at >> 3) as usize];
        if (value >> (u64::from(width) - 1 - i)) & 1 == 1 {
            *byte |= mask;
        } else {
            *byte &= !mask;
        }
    }
}

/// `value + by` as the field `op` can hold it, by its OVERFLOW: wrapped,
/// held at the bound, or `None` (FAIL). SET checks its value with `by` 0.
fn fit(op: &BitFieldOp, value: i64, by: i64) -> Option<i64> {
    let width = op.width;
    let wrapped = || {
        let sum = (value as u64).wrapping_add(by as u64);
        if width >= 64 {
            return sum as i64;
        }
        let mask = u64::MAX << width;
        if op.signed && sum & (1 << (width - 1)) != 0 {
            (sum | mask) as i64
        } else {
            (sum & !mask) as i64
        }
    };
    let (overflow, bound) = if op.signed {
        let max = if width == 64 {
            i64::MAX
        } else {
            (1i64 << (width - 1)) - 1
        };
        let min = -max - 1;
        let (max_by, min_by) = (max.wrapping_sub(value), min.wrapping_sub(value));
        if value > max || (width != 64 && by > max_by) || (value >= 0 && by > 0 && by > max_by) {
            (true, max)
        } else if value < min
            || (width != 64 && by < min_by)
            || (value < 0 && by < 0 && by < min_by)
        {
            (true, min)
        } else {
            (false, 0)
        }
    } else {
        let max = (1u64 << width) - 1;
        let unsigned = value as u64;
        let max_by = max.wrapping_sub(unsigned) as i64;
        let min_by = unsigned.wrapping_neg() as i64;
        if unsigned > max || (by > 0 && by > max_by) {
            (true, max as i64)
        } else if by < 0 && by < min_by {
            (true, 0)
        } else {
            (false, 0)
        }
    };
    if !overflow {
        return Some(value.wrapping_add(by));
    }
    match op.overflow {
        Overflow::Wrap => Some(wrapped()),
        Overflow::Sat => Some(bound),
        Overflow::Fail => None,
    }
}
