//! A hostile count must not make the decoder allocate for it.
//!
//! Unsafe code is forbidden, so there is no counting allocator here. The test
//! watches the process's peak virtual size instead (`VmPeak`, Linux): a
//! `Vec::with_capacity` sized by an unchecked count of a few hundred thousand
//! maps tens of MiB, and shows there even if it is never touched. It is the
//! only test in this binary, so nothing else moves the peak while it runs.

#![cfg(target_os = "linux")]

use bytes::{Bytes, BytesMut};
use distcache_core::{Entry, Lookup, Version};
use distcache_wire::frame::{
    KeyedEntry, MAX_BATCH_ITEMS, WriteStatus, decode_request, decode_response, encode_request,
    encode_response,
};
use distcache_wire::{Request, Response};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Peak virtual memory of this process, in KiB.
fn vm_peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmPeak:"))
        .expect("VmPeak in /proc/self/status");
    line.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmPeak value")
}

fn entry(n: u8) -> Entry {
    Entry {
        value: Bytes::from(vec![n; usize::from(n)]),
        expires_at_ms: Some(u64::from(n) + 1),
        version: Version {
            millis: 1,
            counter: 2,
            origin: 3,
        },
    }
}

/// A batch frame of each kind with `n` items, and where its count sits.
fn batch_frames(n: u8) -> Vec<(bool, BytesMut)> {
    let mut frames = Vec::new();
    let items = 0..n;
    let mut buf = BytesMut::new();
    let keys = items.clone().map(|i| Bytes::from(vec![i; 3])).collect();
    encode_request(1, 5, &Request::GetMany { keys }, &mut buf);
    frames.push((true, buf));
    let mut buf = BytesMut::new();
    let entries = items
        .clone()
        .map(|i| KeyedEntry {
            key: Bytes::from(vec![i; 2]),
            entry: entry(i),
        })
        .collect();
    encode_request(2, 5, &Request::SetMany { entries }, &mut buf);
    frames.push((true, buf));
    let mut buf = BytesMut::new();
    let slots = items
        .clone()
        .map(|i| match i % 3 {
            0 => Lookup::Live(entry(i)),
            1 => Lookup::Deleted(entry(i).version),
            _ => Lookup::Absent,
        })
        .collect();
    encode_response(3, &Response::Values(slots), &mut buf);
    frames.push((false, buf));
    let mut buf = BytesMut::new();
    let statuses = items
        .map(|i| WriteStatus::Stale {
            held: entry(i).version,
        })
        .collect();
    encode_response(4, &Response::WrittenMany(statuses), &mut buf);
    frames.push((false, buf));
    frames
}

/// Offset of the count in a batch frame: after length, id and opcode, and in
/// a request after its epoch too.
fn count_at(is_request: bool) -> usize {
    4 + 8 + 1 + if is_request { 8 } else { 0 }
}

#[test]
fn large_counts_are_refused_without_allocating_for_them() {
    // Warm up this thread's allocator so its arena is already mapped.
    for n in [0, 3, 17] {
        for (is_request, mut buf) in batch_frames(n) {
            if is_request {
                decode_request(&mut buf).unwrap().unwrap();
            } else {
                decode_response(&mut buf).unwrap().unwrap();
            }
        }
    }
    let baseline = vm_peak_kib();

    let counts = prop_oneof![
        // Within the batch limit: only the check against the remaining bytes
        // stops these. Unchecked, each maps 16 to 96 MiB.
        (MAX_BATCH_ITEMS as u32 / 2)..=(MAX_BATCH_ITEMS as u32),
        // Over it.
        (MAX_BATCH_ITEMS as u32 + 1)..=u32::MAX,
        // Just past what the frame holds.
        1u32..64,
    ];
    let mut runner = TestRunner::new(Config::with_cases(256));
    runner
        .run(&(0u8..24, counts, 0usize..4), |(n, extra, which)| {
            let (is_request, mut buf) = batch_frames(n).swap_remove(which);
            let at = count_at(is_request);
            let real = u32::from_le_bytes(buf[at..at + 4].try_into().unwrap());
            let count = real.saturating_add(extra);
            buf[at..at + 4].copy_from_slice(&count.to_le_bytes());
            if is_request {
                let got = decode_request(&mut buf);
                prop_assert!(got.is_err(), "count {} decoded as {:?}", count, got);
            } else {
                let got = decode_response(&mut buf);
                prop_assert!(got.is_err(), "count {} decoded as {:?}", count, got);
            }
            Ok(())
        })
        .unwrap();

    let grown_kib = vm_peak_kib().saturating_sub(baseline);
    assert!(
        grown_kib < 8 * 1024,
        "decoding hostile counts raised peak virtual memory by {grown_kib} KiB"
    );
}
