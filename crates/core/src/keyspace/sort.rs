//! SORT and SORT_RO over a list, a set or a sorted set, as Redis 7.0's
//! `sort.c` sorts (the parser, `crate::command::sort`, has already
//! refused what Redis Cluster refuses).
//!
//! Numbers compare as C's `strtod` reads them; equal numbers by their
//! bytes, so a numeric sort has one answer whatever order the elements
//! came in. ALPHA compares bytes; for a reply it stops at the first NUL,
//! as `strcoll` does in the C locale (elements equal up to it keep their
//! order: the sort is stable, as glibc's `qsort` is here), and for STORE
//! it compares every byte, as Redis does.

use std::cmp::Ordering;
use std::ops::Range;

use bytes::Bytes;

use super::{Exec, Result, misrouted};
use crate::command::sort::SortOptions;
use crate::command::{Command, CommandError, Reply};
use crate::value::{ListValue, Value};

/// The most members a set may have for Redis to keep it as an intset,
/// whose order (ascending) is the one `BY nosort` gives.
const INTSET_MAX_ENTRIES: usize = 512;

impl Exec<'_> {
    pub(super) fn sort_command(&mut self, c: &Command) -> Result<Reply> {
        let Command::Sort { key, options } = c else {
            return Err(misrouted(c));
        };
        let sorted = match self.entry(key).map(|e| &e.value) {
            None => Vec::new(),
            Some(Value::List(l)) => {
                let elements = l.iter().cloned().collect();
                sort_sequence(elements, options)?
            }
            Some(Value::ZSet(z)) => {
                let elements = z.iter().map(|(m, _)| m.clone()).collect();
                sort_sequence(elements, options)?
            }
            Some(Value::Set(s)) => {
                let elements = s.iter().cloned().collect();
                sort_set(elements, options)?
            }
            Some(_) => return Err(CommandError::WrongType),
        };
        let Some(dst) = &options.store else {
            return Ok(Reply::Array(sorted.into_iter().map(Reply::Bulk).collect()));
        };
        let n = sorted.len();
        let list = (n > 0).then(|| Value::List(sorted.into_iter().collect::<ListValue>()));
        Ok(self.store_result(dst, list, n))
    }
}

/// A list or a sorted set: under `BY nosort`, its own order (DESC
/// reverses it); otherwise sorted. LIMIT then takes its range.
fn sort_sequence(mut elements: Vec<Bytes>, options: &SortOptions) -> Result<Vec<Bytes>> {
    if options.dont_sort {
        if options.desc {
            elements.reverse();
        }
    } else {
        sort(&mut elements, options.alpha, options)?;
    }
    Ok(take_limit(elements, options.limit))
}

/// A set. Under `BY nosort` with STORE (or in a script), Redis sorts it
/// anyway, by bytes, so that what is stored does not depend on how the
/// set is laid out; without, it comes in the set's order (DESC ignored):
/// ascending for a set Redis keeps as an intset (integers only, at most
/// 512), this set's own order otherwise, as Redis's hash order is its own.
fn sort_set(mut elements: Vec<Bytes>, options: &SortOptions) -> Result<Vec<Bytes>> {
    if options.dont_sort && options.store.is_none() && !options.from_script {
        if let Some(mut numbers) = as_intset(&elements) {
            numbers.sort_by_key(|&(n, _)| n);
            elements = numbers.into_iter().map(|(_, e)| e).collect();
        }
    } else {
        sort(&mut elements, options.alpha || options.dont_sort, options)?;
    }
    Ok(take_limit(elements, options.limit))
}

/// The members with their values, when Redis would hold the set as an
/// intset: every member a canonical 64-bit integer, and few enough.
fn as_intset(elements: &[Bytes]) -> Option<Vec<(i64, Bytes)>> {
    if elements.len() > INTSET_MAX_ENTRIES {
        return None;
    }
    elements
        .iter()
        .map(|e| crate::command::number::parse_i64(e).map(|n| (n, e.clone())))
        .collect()
}

fn sort(elements: &mut [Bytes], alpha: bool, options: &SortOptions) -> Result<()> {
    if !alpha {
        return sort_numbers(elements, options.desc);
    }
    let order: fn(&Bytes, &Bytes) -> Ordering = if options.store.is_some() {
        |a, b| a.cmp(b)
    } else {
        |a, b| up_to_nul(a).cmp(up_to_nul(b))
    };
    // Stable: elements that compare equal keep their order, DESC too
    // (Redis negates the comparison, which leaves ties where they were).
    if options.desc {
        elements.sort_by(|a, b| order(b, a));
    } else {
        elements.sort_by(order);
    }
    Ok(())
}

/// By number; equal numbers by their bytes, so that the order is one
/// whatever the input's (NaN cannot occur: [`score`] refuses it).
fn sort_numbers(elements: &mut [Bytes], desc: bool) -> Result<()> {
    let mut scored = Vec::with_capacity(elements.len());
    for e in elements.iter() {
        let score = score(e).ok_or(CommandError::Other(
            "One or more scores can't be converted into double",
        ))?;
        scored.push((score, e.clone()));
    }
    let by_number = |a: &(f64, Bytes), b: &(f64, Bytes)| {
        a.0.partial_cmp(&b.0)
            .unwrap_or(Ordering::Equal)
            .then_with(|| a.1.cmp(&b.1))
    };
    if desc {
        scored.sort_by(|a, b| by_number(b, a));
    } else {
        scored.sort_by(by_number);
    }
    for (slot, (_, e)) in elements.iter_mut().zip(scored) {
        *slot = e;
    }
    Ok(())
}

fn up_to_nul(b: &[u8]) -> &[u8] {
    &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())]
}

/// LIMIT offset count over `n` elements, as Redis 7.0 clamps it: a
/// negative offset is 0, a negative count means the rest.
fn limit_range(limit: Option<(i64, i64)>, n: usize) -> Range<usize> {
    let n = n as i64;
    let (offset, count) = limit.unwrap_or((0, -1));
    let start = offset.clamp(0, n);
    let count = count.clamp(-1, n);
    if start >= n {
        return 0..0;
    }
    let end = if count < 0 { n - 1 } else { start + count - 1 }.min(n - 1);
    if end < start {
        0..0
    } else {
        start as usize..end as usize + 1
    }
}

fn take_limit(mut elements: Vec<Bytes>, limit: Option<(i64, i64)>) -> Vec<Bytes> {
    let range = limit_range(limit, elements.len());
    elements.truncate(range.end);
    elements.drain(..range.start);
    elements
}

/// An element's number as Redis's SORT reads it with C's `strtod`: the
/// bytes up to the first NUL (the empty string is 0), leading white space
/// skipped, a decimal or hexadecimal (`0x1p3`) number or `inf`/`infinity`
/// that must reach that end; refused: NaN, and a result out of a double's
/// range, where glibc reports `ERANGE`: an overflow, or an underflow (a
/// result below the smallest normal double that had to be rounded).
fn score(element: &[u8]) -> Option<f64> {
    let text = up_to_nul(element);
    if text.is_empty() {
        return Some(0.0);
    }
    let text = std::str::from_utf8(text).ok()?;
    let body = text.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (negative, unsigned) = match body.as_bytes().first()? {
        b'-' => (true, &body[1..]),
        b'+' => (false, &body[1..]),
        _ => (false, body),
    };
    if unsigned.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = if unsigned.len() > 2 && unsigned[..2].eq_ignore_ascii_case("0x") {
        hex_float(&unsigned[2..])?
    } else {
        let value = unsigned.parse::<f64>().ok()?;
        let spelled_infinity = unsigned.starts_with(['i', 'I']);
        if value.is_nan() || (value.is_infinite() && !spelled_infinity) {
            return None;
        }
        // A decimal below the smallest normal double is never exact: an
        // underflow, unless every digit of its mantissa is 0.
        let nonzero = unsigned
            .bytes()
            .take_while(|b| !matches!(b, b'e' | b'E'))
            .any(|b| (b'1'..=b'9').contains(&b));
        if value < f64::MIN_POSITIVE && nonzero {
            return None;
        }
        value
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// The digits of a C hexadecimal float after `0x` (hex digits with an
/// optional point, then an optional binary exponent, `p-3`), rounded to
/// the nearest double as glibc rounds them; `None` where `strtod` would
/// fail: no digit, trailing bytes, an overflow, or an inexact result
/// below the smallest normal double.
fn hex_float(text: &str) -> Option<f64> {
    let (digits, exponent) = match text.find(['p', 'P']) {
        Some(at) => (&text[..at], parse_exponent(&text[at + 1..])?),
        None => (text, 0),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    // The first 60 bits of the digits, exactly; whether any digit past
    // them was not 0; and the power of two of the mantissa's last bit.
    let (mut mantissa, mut sticky, mut scale) = (0u64, false, exponent);
    for (i, c) in whole.chars().chain(fraction.chars()).enumerate() {
        let digit = u64::from(c.to_digit(16)?);
        let in_fraction = i >= whole.len();
        if mantissa >> 56 == 0 {
            mantissa = mantissa * 16 + digit;
            if in_fraction {
                scale -= 4;
            }
        } else {
            sticky |= digit != 0;
            if !in_fraction {
                scale += 4;
            }
        }
    }
    if mantissa == 0 {
        return Some(0.0);
    }
    round_to_double(mantissa, sticky, scale)
}

/// A binary exponent: decimal digits with an optional sign, saturated far
/// past a double's range so that no arithmetic overflows.
fn parse_exponent(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = digits
        .bytes()
        .fold(0i64, |n, b| (n * 10 + i64::from(b - b'0')).min(1 << 40));
    Some(if negative { -magnitude } else { magnitude })
}

/// `mantissa` × 2^`scale` (with `sticky`: something more, below its last
/// bit) as the nearest double, ties to even; `None` on overflow or on an
/// inexact subnormal result (glibc's `ERANGE`).
fn round_to_double(mantissa: u64, sticky: bool, scale: i64) -> Option<f64> {
    // The power of two of the mantissa's leading bit.
    let top = scale + 63 - i64::from(mantissa.leading_zeros());
    if top > 1023 {
        return None;
    }
    // The lowest power of two the double can keep: 52 bits below a normal
    // leading bit, and never below 2^-1074.
    let lowest = (top - 52).max(-1074);
    let drop = lowest - scale;
    let (kept, exact) = if drop <= 0 {
        (mantissa << (-drop).min(63), !sticky)
    } else if drop >= 64 {
        // Everything is below the last bit: 0, or up to the smallest
        // subnormal if it is more than half of it (it cannot be: the
        // mantissa is below 2^64 and the half is 2^(lowest-1)).
        (0, false)
    } else {
        let rest = mantissa & ((1u64 << drop) - 1);
        let half = 1u64 << (drop - 1);
        let mut kept = mantissa >> drop;
        if rest > half || (rest == half && (sticky || kept & 1 == 1)) {
            kept += 1;
        }
        (kept, rest == 0 && !sticky)
    };
    let subnormal_result = kept < (1u64 << 52);
    if subnormal_result && !exact {
        return None;
    }
    // A subnormal's bits are its mantissa; a normal's exponent field is
    // its leading bit's power plus 1023, and a rounding that carried into
    // bit 53 moves it up one.
    let bits = if kept >= (1u64 << 52) {
        let (kept, lowest) = if kept >= (1u64 << 53) {
            (kept >> 1, lowest + 1)
        } else {
            (kept, lowest)
        };
        let exponent_field = lowest + 52 + 1023;
        if exponent_field >= 2047 {
            return None;
        }
        ((exponent_field as u64) << 52) | (kept & ((1u64 << 52) - 1))
    } else {
        kept
    };
    Some(f64::from_bits(bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_what_strtod_reads_up_to_the_first_nul() {
        let accepted: &[(&[u8], f64)] = &[
            (b"", 0.0),
            (b" 1", 1.0),
            (b"\t5", 5.0),
            (b"+3", 3.0),
            (b"-.5e1", -5.0),
            (b"5.", 5.0),
            (b"0x10", 16.0),
            (b"0x1p3", 8.0),
            (b"0X.8", 0.5),
            (b"-Infinity", f64::NEG_INFINITY),
            (b"inf", f64::INFINITY),
            (b"5\x00abc", 5.0),
            (b"1e3", 1000.0),
            (b"2.2250738585072014e-308", f64::MIN_POSITIVE),
            (b"0.000", 0.0),
            (b"-0", -0.0),
        ];
        for &(text, want) in accepted {
            assert_eq!(
                score(text),
                Some(want),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
        let refused: &[&[u8]] = &[
            b"   ",
            b"+",
            b"-",
            b"1 ",
            b"nan",
            b"nan(123)",
            b"1e400",
            b"1e-310",
            b"1e-400",
            b"abc",
            b"0x",
            b"1e",
            b"+-1",
            b"\xff",
        ];
        for &text in refused {
            assert_eq!(score(text), None, "{:?}", String::from_utf8_lossy(text));
        }
    }

    /// Hexadecimal floats read as glibc's `strtod` reads them: exact
    /// subnormals accepted, inexact ones refused, rounding that counts
    /// the digits past a double's precision, huge exponents.
    #[test]
    fn hex_floats_round_as_strtod_does() {
        let exact: &[(&str, f64)] = &[
            ("0x1p-1074", f64::from_bits(1)),
            ("0x1000000000000p-1070", f64::MIN_POSITIVE),
            ("0x0p99999999999999999999", 0.0),
            ("0x1.8p1", 3.0),
            ("0x1.fffffffffffffp1023", f64::MAX),
            ("0xffffffffffffffffffff", 2f64.powi(80)),
            ("0x1.000000000000080000000001p0", 1.0 + f64::EPSILON),
            ("0x1.00000000000008p0", 1.0),
            ("0x1.00000000000018p0", 1.0 + 2.0 * f64::EPSILON),
        ];
        for &(text, want) in exact {
            assert_eq!(score(text.as_bytes()), Some(want), "{text}");
        }
        for text in [
            "0x1p1024",
            "0x1p-1075",
            "0x3p-1076",
            "0x1p99999999999999999999",
            "0xg",
            "0x1p",
            "0x1p+",
        ] {
            assert_eq!(score(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn limit_clamps_as_redis_does() {
        let n = 6;
        let cases = [
            (None, 0..6),
            (Some((0, 0)), 0..0),
            (Some((0, -1)), 0..6),
            (Some((-5, 2)), 0..2),
            (Some((2, -3)), 2..6),
            (Some((5, 10)), 5..6),
            (Some((6, 1)), 0..0),
            (Some((0, i64::MAX)), 0..6),
            (Some((i64::MAX, i64::MAX)), 0..0),
            (Some((i64::MIN, 3)), 0..3),
        ];
        for (limit, want) in cases {
            assert_eq!(limit_range(limit, n), want, "{limit:?}");
        }
        assert_eq!(limit_range(None, 0), 0..0);
    }
}
