//! Snapshot and restore of 1M entries (16-byte keys, 100-byte values), the
//! figures quoted in docs/backups.md. Not a test: run it with
//! `cargo bench -p distcache-core --bench snapshot` (add `-- N` for another
//! entry count). It measures what an auxiliary does:
//!
//! - snapshot: encode the store shard by shard (`encode_store`), write the
//!   file and fsync it;
//! - restore: read the file, check it in full, insert into an empty store
//!   (`restore_bytes`).

use std::io::{BufWriter, Write};
use std::time::Instant;

use bytes::Bytes;
use distcache_core::snapshot;
use distcache_core::{Entry, Store, StoreConfig, Version};

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let now = 1_700_000_000_000u64;
    // Room to spare, so that no shard evicts: every entry is kept.
    let config = StoreConfig {
        max_items: 2 * n,
        ..StoreConfig::default()
    };
    let store = Store::new(config.clone());
    let value = Bytes::from(vec![b'v'; 100]);
    for i in 0..n {
        let key = format!("key-{i:012}"); // 16 bytes
        store.set(
            key.as_bytes(),
            Entry {
                value: Bytes::copy_from_slice(&value),
                expires_at_ms: (i % 2 == 0).then_some(now + 3_600_000),
                version: Version {
                    millis: now,
                    counter: i as u32,
                    origin: 1,
                },
            },
            now,
        );
    }
    let dir = std::env::temp_dir().join(format!("distcache-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("bench.snap");

    let runs = 3;
    let mut best_snapshot = f64::MAX;
    let mut best_restore = f64::MAX;
    let mut size = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let encoded = snapshot::encode_store(&store, now);
        let copied = started.elapsed();
        let file = std::fs::File::create(&path).expect("create");
        let (out, bytes) = snapshot::write_encoded(
            BufWriter::with_capacity(1 << 20, file),
            snapshot::Origin {
                node_id: "bench",
                created_at_ms: now,
                shard_count: store.shard_count() as u32,
                log_generation: 0,
            },
            &encoded,
        )
        .expect("encode");
        let file = out.into_inner().expect("flush");
        let written = started.elapsed();
        file.sync_all().expect("fsync");
        let held = encoded.len();
        drop(encoded);
        let took = started.elapsed().as_secs_f64();
        size = bytes;
        println!(
            "snapshot: {held} entries, {:.1} MB in {:.3} s (copy {:.3} s, write {:.3} s, fsync {:.3} s)",
            bytes as f64 / 1e6,
            took,
            copied.as_secs_f64(),
            (written - copied).as_secs_f64(),
            took - written.as_secs_f64(),
        );
        best_snapshot = best_snapshot.min(took);

        let started = Instant::now();
        let data = std::fs::read(&path).expect("read");
        let read = started.elapsed();
        let target = Store::new(config.clone());
        let (_, counts) = snapshot::restore_bytes(&data, &target, now).expect("valid");
        let took = started.elapsed().as_secs_f64();
        drop(data);
        assert_eq!(counts.restored, held);
        println!(
            "restore:  {n} entries in {took:.3} s (read {:.3} s, check and insert {:.3} s)",
            read.as_secs_f64(),
            took - read.as_secs_f64()
        );
        best_restore = best_restore.min(took);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "best of {runs}: snapshot {best_snapshot:.3} s, restore {best_restore:.3} s, file {:.1} MB",
        size as f64 / 1e6
    );
}
