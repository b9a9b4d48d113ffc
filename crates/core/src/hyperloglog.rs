//! HyperLogLog as Redis 7.0 keeps it, byte for byte: a string holding a
//! 16-byte header and 16,384 six-bit registers, sparse (runs of equal
//! registers as opcodes) while small, dense (the registers packed) once
//! large. PFADD, PFCOUNT and PFMERGE read and write these bytes exactly as
//! Redis's `hyperloglog.c` does, so that GET of a HyperLogLog and every
//! count are Redis's (the differential tests compare them).
//!
//! # Layout
//!
//! ```text
//! "HYLL" · encoding u8 (0 dense, 1 sparse) · 3 unused · cached count u64 LE
//! dense:  16,384 × 6 bits, low bits first (12,288 bytes)
//! sparse: ZERO 00xxxxxx (1..64 zero registers), XZERO 01xxxxxx xxxxxxxx
//!         (1..16384), VAL 1vvvvvxx (1..4 registers of value 1..32)
//! ```
//!
//! The cache is valid while bit 7 of byte 15 is clear; a change sets it.

/// Registers.
pub const REGISTERS: usize = 1 << 14;
/// Header bytes.
pub const HEADER: usize = 16;
/// A dense HyperLogLog's length.
pub const DENSE_LEN: usize = HEADER + REGISTERS * 6 / 8;
/// The longest sparse form (Redis's `hll-sparse-max-bytes`), header included.
pub const SPARSE_MAX: usize = 3000;
/// The largest value a sparse VAL holds.
const SPARSE_VAL_MAX: u8 = 32;

/// Why bytes are not a HyperLogLog Redis would take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Not a HyperLogLog string at all (`WRONGTYPE Key is not a valid
    /// HyperLogLog string value.`).
    NotHll,
    /// A sparse form whose runs do not cover the registers
    /// (`INVALIDOBJ Corrupted HLL object detected`).
    Corrupt,
}

/// MurmurHash64A, as Redis seeds and reads it (little-endian blocks).
fn murmur64a(key: &[u8]) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h: u64 = 0xadc8_3b19 ^ (key.len() as u64).wrapping_mul(M);
    let blocks = key.chunks_exact(8);
    let tail = blocks.remainder();
    for block in blocks {
        let mut k = u64::from_le_bytes(block.try_into().expect("8 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    if !tail.is_empty() {
        for (j, b) in tail.iter().enumerate() {
            h ^= u64::from(*b) << (8 * j);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register `element` falls in and the value it proposes (1..=51).
pub fn pattern(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element);
    let index = (hash & 0x3fff) as usize;
    let rest = (hash >> 14) | (1 << 50);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// An empty HyperLogLog: sparse, one run of 16,384 zeros, its cache not
/// computed.
pub fn empty() -> Vec<u8> {
    let mut b = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80".to_vec();
    b.extend_from_slice(&xzero(REGISTERS));
    b
}

/// Whether `b` is a HyperLogLog string, as Redis checks one.
pub fn check(b: &[u8]) -> Result<(), Invalid> {
    let ok =
        b.len() >= HEADER && &b[..4] == b"HYLL" && b[4] <= 1 && (b[4] == 1 || b.len() == DENSE_LEN);
    if ok { Ok(()) } else { Err(Invalid::NotHll) }
}

fn is_sparse(b: &[u8]) -> bool {
    b[4] == 1
}

/// Marks the cached count stale.
pub fn invalidate(b: &mut [u8]) {
    b[15] |= 0x80;
}

fn xzero(n: usize) -> [u8; 2] {
    let n = n - 1;
    [0x40 | (n >> 8) as u8, (n & 0xff) as u8]
}

/// A run of `n` zero registers as the shortest opcode.
fn zero_run(n: usize, out: &mut Vec<u8>) {
    if n > 64 {
        out.extend_from_slice(&xzero(n));
    } else {
        out.push((n - 1) as u8);
    }
}

fn val(value: u8, run: usize) -> u8 {
    0x80 | ((value - 1) << 2) | (run - 1) as u8
}

/// One sparse opcode at `p` (< `b.len()`): (value, run, its length in
/// bytes). An XZERO cut off by the end (a damaged value) reads its missing
/// second byte as 0, as Redis does: it reads the terminating NUL that
/// follows every string it holds.
fn opcode(b: &[u8], p: usize) -> Result<(u8, usize, usize), Invalid> {
    let op = b[p];
    Ok(if op & 0xc0 == 0 {
        (0, usize::from(op & 0x3f) + 1, 1)
    } else if op & 0xc0 == 0x40 {
        let next = b.get(p + 1).copied().unwrap_or(0);
        (
            0,
            ((usize::from(op & 0x3f) << 8) | usize::from(next)) + 1,
            2,
        )
    } else {
        (((op >> 2) & 0x1f) + 1, usize::from(op & 0x3) + 1, 1)
    })
}

fn dense_get(regs: &[u8], i: usize) -> u8 {
    let bit = i * 6;
    let (byte, fb) = (bit / 8, bit % 8);
    let lo = u32::from(regs[byte]) >> fb;
    let hi = regs.get(byte + 1).map_or(0, |&b| u32::from(b) << (8 - fb));
    ((lo | hi) & 63) as u8
}

fn dense_set(regs: &mut [u8], i: usize, v: u8) {
    let bit = i * 6;
    let (byte, fb) = (bit / 8, bit % 8);
    // In `u32`, as C's promotions compute it: a shift by 8 gives 0.
    let v = u32::from(v);
    regs[byte] &= !((63u32 << fb) as u8);
    regs[byte] |= (v << fb) as u8;
    if byte + 1 < regs.len() {
        regs[byte + 1] &= !((63u32 >> (8 - fb)) as u8);
        regs[byte + 1] |= (v >> (8 - fb)) as u8;
    }
}

/// Every register of `b` (valid per [`check`]).
pub fn registers(b: &[u8]) -> Result<Vec<u8>, Invalid> {
    let mut regs = vec![0u8; REGISTERS];
    if !is_sparse(b) {
        for (i, r) in regs.iter_mut().enumerate() {
            *r = dense_get(&b[HEADER..], i);
        }
        return Ok(regs);
    }
    let mut at = 0;
    let mut p = HEADER;
    while p < b.len() {
        let (value, run, len) = opcode(b, p)?;
        if at + run > REGISTERS {
            return Err(Invalid::Corrupt);
        }
        regs[at..at + run].fill(value);
        at += run;
        p += len;
    }
    if at != REGISTERS {
        return Err(Invalid::Corrupt);
    }
    Ok(regs)
}

/// Turns a sparse `b` into its dense form, the header kept.
pub fn make_dense(b: &mut Vec<u8>) -> Result<(), Invalid> {
    let regs = registers(b)?;
    let mut dense = vec![0u8; DENSE_LEN];
    dense[..HEADER].copy_from_slice(&b[..HEADER]);
    dense[4] = 0;
    for (i, &r) in regs.iter().enumerate() {
        if r != 0 {
            dense_set(&mut dense[HEADER..], i, r);
        }
    }
    *b = dense;
    Ok(())
}

/// Raises register `index` of `b` to `value`: whether it changed. A
/// sparse form that would pass [`SPARSE_MAX`], or a value too large for
/// it, turns dense first.
pub fn set(b: &mut Vec<u8>, index: usize, value: u8) -> Result<bool, Invalid> {
    if !is_sparse(b) {
        let regs = &mut b[HEADER..];
        if dense_get(regs, index) >= value {
            return Ok(false);
        }
        dense_set(regs, index, value);
        return Ok(true);
    }
    if value > SPARSE_VAL_MAX {
        return promote_and_set(b, index, value);
    }
    // The opcode covering `index`, and the one before it.
    let (mut first, mut p, mut prev) = (0usize, HEADER, None);
    let (cur, run, len) = loop {
        if p >= b.len() {
            return Err(Invalid::Corrupt);
        }
        let (v, run, len) = opcode(b, p)?;
        if index < first + run {
            break (v, run, len);
        }
        prev = Some(p);
        p += len;
        first += run;
    };
    let last = first + run - 1;
    let is_val = b[p] & 0x80 != 0;
    if is_val && cur >= value {
        return Ok(false);
    }
    if run == 1 && (is_val || len == 1) {
        b[p] = val(value, 1);
    } else {
        let mut seq = Vec::with_capacity(5);
        if is_val {
            if index != first {
                seq.push(val(cur, index - first));
            }
            seq.push(val(value, 1));
            if index != last {
                seq.push(val(cur, last - index));
            }
        } else {
            if index != first {
                zero_run(index - first, &mut seq);
            }
            seq.push(val(value, 1));
            if index != last {
                zero_run(last - index, &mut seq);
            }
        }
        if seq.len() > len && b.len() + seq.len() - len > SPARSE_MAX {
            return promote_and_set(b, index, value);
        }
        if p + len <= b.len() {
            b.splice(p..p + len, seq);
        } else {
            // The run was an XZERO cut off by the end. Redis writes the new
            // opcodes over it but grows the string by their length less
            // the XZERO's two bytes, so the last byte written falls past
            // the end.
            let kept = b.len() + seq.len() - len;
            b.truncate(p);
            b.extend_from_slice(&seq);
            b.truncate(kept);
        }
    }
    merge_vals(b, prev.unwrap_or(HEADER));
    Ok(true)
}

fn promote_and_set(b: &mut Vec<u8>, index: usize, value: u8) -> Result<bool, Invalid> {
    make_dense(b)?;
    dense_set(&mut b[HEADER..], index, value);
    Ok(true)
}

/// Joins VAL opcodes of one value next to each other (up to four
/// registers), looking at five opcodes from `from`, as Redis does.
fn merge_vals(b: &mut Vec<u8>, from: usize) {
    let mut p = from;
    let mut scan = 5;
    while p < b.len() && scan > 0 {
        scan -= 1;
        let op = b[p];
        if op & 0xc0 == 0x40 {
            p += 2;
            continue;
        }
        if op & 0x80 == 0 {
            p += 1;
            continue;
        }
        if p + 1 < b.len() && b[p + 1] & 0x80 != 0 {
            // Both are VALs, one byte each.
            let (v1, r1) = (((op >> 2) & 0x1f) + 1, usize::from(op & 0x3) + 1);
            let next = b[p + 1];
            let (v2, r2) = (((next >> 2) & 0x1f) + 1, usize::from(next & 0x3) + 1);
            if v1 == v2 && r1 + r2 <= 4 {
                b[p + 1] = val(v1, r1 + r2);
                b.remove(p);
                continue;
            }
        }
        p += 1;
    }
}

/// Redis's σ of the estimator.
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let z0 = z;
        z += x * y;
        y += y;
        if z0 == z {
            return z;
        }
    }
}

/// Redis's τ of the estimator.
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let z0 = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if z0 == z {
            return z / 3.0;
        }
    }
}

/// The cardinality the registers estimate (Ertl's estimator, as Redis 7
/// computes it, rounded half away from zero).
pub fn estimate(regs: &[u8]) -> u64 {
    let mut hist = [0u32; 64];
    for &r in regs {
        hist[usize::from(r & 63)] += 1;
    }
    let m = REGISTERS as f64;
    let mut z = m * tau((m - f64::from(hist[51])) / m);
    for j in (1..=50).rev() {
        z += f64::from(hist[j]);
        z *= 0.5;
    }
    z += m * sigma(f64::from(hist[0]) / m);
    (0.721_347_520_444_481_7 * m * m / z).round() as u64
}

/// The cached count, if valid.
pub fn cached(b: &[u8]) -> Option<u64> {
    (b[15] & 0x80 == 0).then(|| u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")))
}

/// Stores `count` as the cached count (valid).
pub fn cache(b: &mut [u8], count: u64) {
    b[8..16].copy_from_slice(&count.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// One element into an empty HyperLogLog: its register, its value,
    /// and the bytes, as redis-server 7.0.15 gave them.
    #[test]
    fn single_elements_give_redis_s_registers_and_bytes() {
        let cases: [(&[u8], usize, u8, &str); 5] = [
            (b"a", 12711, 2, "48594c4c01000000000000000000008071a6844e57"),
            (
                b"foo",
                7348,
                5,
                "48594c4c0100000000000000000000805cb390634a",
            ),
            (
                b"hello world",
                9399,
                4,
                "48594c4c01000000000000000000008064b68c5b47",
            ),
            (b"", 5938, 2, "48594c4c01000000000000000000008057318468cc"),
            (
                b"redis-hll-123456789",
                1341,
                1,
                "48594c4c010000000000000000000080453c807ac1",
            ),
        ];
        for (element, index, value, bytes) in cases {
            assert_eq!(pattern(element), (index, value));
            let mut b = empty();
            assert!(set(&mut b, index, value).unwrap());
            assert_eq!(hex(&b), bytes);
        }
    }

    /// Damaged sparse runs (an XZERO cut off by the end that leaves the
    /// registers short, runs past the registers) are refused by a count,
    /// never a panic.
    #[test]
    fn damaged_sparse_runs_are_refused() {
        let header = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80".to_vec();
        for tail in [
            &[0x7fu8][..],
            &[0x7f, 0xff, 0x00],
            &[0x7f, 0xfe],
            &[0xff; 8],
        ] {
            let mut b = header.clone();
            b.extend_from_slice(tail);
            assert!(check(&b).is_ok());
            assert_eq!(registers(&b), Err(Invalid::Corrupt), "{tail:?}");
            for element in [&b"x"[..], b"a", b"foo"] {
                let (i, v) = pattern(element);
                // Either refused, or (a register before the damage) set.
                let _ = set(&mut b.clone(), i, v);
            }
        }
    }

    /// A PFADD into an XZERO cut off by the end: Redis reads the missing
    /// byte as the string's terminating 0, writes the new opcodes over the
    /// run, and keeps all but their last byte. Bytes and answers taken from
    /// redis-server 7.0.15 (SET of the damaged value, then the PFADDs).
    #[test]
    fn an_add_into_a_run_cut_off_by_the_end_does_what_redis_does() {
        let damaged = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\xfa\x57\x31\x84\x4c\xa7\x88\x41\x25\x80\x47\x32\x94\x4e\x0d\x88\x34\x7a";
        let mut b = damaged.to_vec();
        let mut changed = false;
        for element in [&b"248474"[..], b"248475", b"x"] {
            let (i, v) = pattern(element);
            changed |= set(&mut b, i, v).unwrap();
        }
        assert!(changed);
        let mut want = damaged[..damaged.len() - 1].to_vec();
        want.extend_from_slice(&[0x45, 0x7a, 0x84, 0x74]);
        assert_eq!(b, want);
        // Still short of 16,384 registers: a count refuses it, as Redis's.
        assert_eq!(registers(&b), Err(Invalid::Corrupt));
    }

    #[test]
    fn two_elements_count_two_and_the_estimate_of_nothing_is_zero() {
        let mut b = empty();
        for e in [&b"a"[..], b"b"] {
            let (i, v) = pattern(e);
            set(&mut b, i, v).unwrap();
        }
        assert_eq!(estimate(&registers(&b).unwrap()), 2);
        assert_eq!(estimate(&registers(&empty()).unwrap()), 0);
    }

    #[test]
    fn many_elements_go_dense_and_keep_every_register() {
        let mut b = empty();
        let mut regs = vec![0u8; REGISTERS];
        for n in 0..5000u32 {
            let (i, v) = pattern(n.to_string().as_bytes());
            set(&mut b, i, v).unwrap();
            regs[i] = regs[i].max(v);
            assert!(b.len() <= SPARSE_MAX || b.len() == DENSE_LEN);
        }
        assert_eq!(b.len(), DENSE_LEN);
        assert_eq!(registers(&b).unwrap(), regs);
    }
}
