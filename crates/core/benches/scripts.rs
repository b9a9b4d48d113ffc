//! What a script costs beside the command it runs: `INCR` through the
//! keyspace's executor against `EVAL` of `return redis.call('INCR',
//! KEYS[1])`, one at a time over 10,000 keys, and the parts of a script's
//! run. The figures quoted in docs/performance.md ("Scripts"). Not a test:
//! run it with `cargo bench -p distcache-core --bench scripts`.

use std::time::Instant;

use bytes::Bytes;
use distcache_core::command::table;
use distcache_core::keyspace::Keyspace;
use rand::SeedableRng;
use rand::rngs::StdRng;

const NOW: u64 = 1_700_000_000_000;
const CALLS: usize = 200_000;
const ROUNDS: usize = 5;

fn args(words: &[&str]) -> Vec<Bytes> {
    words
        .iter()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect()
}

/// Nanoseconds per call of `make(i)`'s command, parsed and run.
fn time(ks: &mut Keyspace, rng: &mut StdRng, make: impl Fn(usize) -> Vec<Bytes>) -> f64 {
    let commands: Vec<_> = (0..CALLS)
        .map(|i| table::parse(&make(i)).expect("parses"))
        .collect();
    let started = Instant::now();
    for command in &commands {
        let outcome = ks.execute(command, NOW, rng);
        assert!(!outcome.reply.is_error(), "{:?}", outcome.reply);
    }
    started.elapsed().as_nanos() as f64 / CALLS as f64
}

fn main() {
    let mut ks = Keyspace::new();
    let mut rng = StdRng::seed_from_u64(1);
    let script = "return redis.call('INCR', KEYS[1])";
    for round in 1..=ROUNDS {
        let key = |i: usize| format!("counter:{}", i % 10_000);
        let incr = time(&mut ks, &mut rng, |i| args(&["INCR", &key(i)]));
        let eval = time(&mut ks, &mut rng, |i| args(&["EVAL", script, "1", &key(i)]));
        let empty = time(&mut ks, &mut rng, |i| {
            args(&["EVAL", "return 1", "1", &key(i)])
        });
        println!(
            "round {round}: INCR {incr:.0} ns, EVAL of INCR {eval:.0} ns ({:.0} ns more), EVAL of `return 1` {empty:.0} ns",
            eval - incr
        );
    }
}
