//! Commands over the store, against the executor on a plain keyspace.
//!
//! Generated command sequences (the differential tests' generator) run
//! three ways: on a reference [`Keyspace`], on a leader [`Store`] through
//! [`Store::execute`] (each write at a version from a counter, one in five
//! from a master whose clock is behind, which the leader must stamp above
//! what the keys hold), and on a replica [`Store`] that only ever sees the
//! leader's changes, through [`Store::apply_changes`]. After every command
//! the leader answered as the reference did (same reply and effects), the
//! replica applied every change, and the three hold the same keys, values
//! and expiries (the replica at the leader's versions too).
//!
//! The clock is a counter: it moves by a few seconds per command and now
//! and then by hours, so relative TTLs compare exactly and keys expire in
//! the middle of a sequence. Random picks (SPOP, SRANDMEMBER...) are
//! compared by kind and size (a collection decoded from its stored form
//! iterates in another order than the reference's, so one seeded rng picks
//! other members), and after SPOP the reference takes the leader's set.
//! Unordered replies (SMEMBERS, HGETALL...) are compared sorted.
//! KEYS, SCAN, DBSIZE and RANDOMKEY run over the whole store
//! (`Store::execute_everywhere`) on the leader and the replica. Left out:
//! MULTI/EXEC/DISCARD (a session's, not the store's).
//!
//! Set `STORE_SEED=n` to replay one seed.

#[path = "support/gen.rs"]
mod generator;

use bytes::Bytes;
use distcache_core::command::table::{self, flags};
use distcache_core::command::{Command, Reply};
use distcache_core::keyspace::{Effect, EffectOp, Entry as KsEntry, Keyspace};
use distcache_core::store::{ApplyOutcome, Entry, Executed, KeyChanges, Store, StoreConfig};
use distcache_core::value::stored;
use distcache_core::version::Version;
use generator::Gen;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// 2025-06-15: the clock every run starts at.
const START_MS: u64 = 1_750_000_000_000;
/// A value limit no generated value reaches.
const NO_LIMIT: usize = 1 << 20;

/// What a run counted, to prove it tested something.
#[derive(Debug, Default)]
struct Tally {
    ran: usize,
    writes_with_changes: usize,
    too_large: usize,
    diverged: usize,
    repaired_by_expiry: usize,
    everywhere: usize,
}

struct Run {
    seed: u64,
    reference: Keyspace,
    leader: Store,
    replica: Store,
    now: u64,
    counter: u32,
    max_value_bytes: usize,
    /// Keys whose changes were kept from the replica on purpose, until it
    /// answers `Diverged` for them and is repaired.
    missed: Vec<Bytes>,
    history: Vec<String>,
    tally: Tally,
}

fn store() -> Store {
    Store::new(StoreConfig {
        max_items: 100_000,
        max_bytes: None,
        shards: 4,
        ..StoreConfig::default()
    })
}

fn argv(words: &[String]) -> Vec<Bytes> {
    words
        .iter()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect()
}

/// A store's live entries, sorted by key.
fn entries(store: &Store, now: u64) -> Vec<(Bytes, Entry)> {
    let mut all = store.export(now);
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// Entries decoded, as a keyspace.
fn decoded(entries: &[(Bytes, Entry)]) -> Keyspace {
    let mut ks = Keyspace::new();
    for (key, entry) in entries {
        let value = stored::from_stored(&entry.value)
            .unwrap_or_else(|e| panic!("{key:?} holds a value that does not decode: {e}"));
        ks.put(
            key.clone(),
            KsEntry {
                value,
                expire_at_ms: entry.expires_at_ms,
            },
        );
    }
    ks
}

/// A random reply's kind and size: which members were picked differs
/// between the reference and the leader, whose collections come back from
/// their stored form in another internal order.
/// Effects grouped by key, in the order keys were first changed, each
/// key's in order: how the store hands them out ([`KeyChanges`]).
fn grouped(effects: &[Effect]) -> Vec<(Bytes, Vec<EffectOp>)> {
    let mut groups: Vec<(Bytes, Vec<EffectOp>)> = Vec::new();
    for effect in effects {
        match groups.iter_mut().find(|(key, _)| *key == effect.key) {
            Some((_, ops)) => ops.push(effect.op.clone()),
            None => groups.push((effect.key.clone(), vec![effect.op.clone()])),
        }
    }
    groups
}

/// The store's changes as [`grouped`] gives a reference's effects.
fn by_key(changes: &[KeyChanges]) -> Vec<(Bytes, Vec<EffectOp>)> {
    changes
        .iter()
        .map(|c| (c.key.clone(), c.ops.clone()))
        .collect()
}

fn shape(reply: &Reply) -> String {
    match reply {
        Reply::Array(v) | Reply::Set(v) => format!("array of {}", v.len()),
        Reply::Map(v) | Reply::Pairs(v) => format!("pairs of {}", v.len()),
        Reply::Bulk(_) => "bulk".into(),
        other => format!("{other:?}"),
    }
}

/// An unordered reply's elements, sorted.
fn sorted(reply: &Reply) -> Vec<String> {
    let mut items: Vec<String> = match reply {
        Reply::Array(v) | Reply::Set(v) => v.iter().map(|r| format!("{r:?}")).collect(),
        Reply::Map(v) | Reply::Pairs(v) => v.iter().map(|r| format!("{r:?}")).collect(),
        other => vec![format!("{other:?}")],
    };
    items.sort();
    items
}

impl Run {
    fn new(seed: u64, max_value_bytes: usize) -> Run {
        Run {
            seed,
            reference: Keyspace::new(),
            leader: store(),
            replica: store(),
            now: START_MS,
            counter: 0,
            max_value_bytes,
            missed: Vec::new(),
            history: Vec::new(),
            tally: Tally::default(),
        }
    }

    fn fail(&self, msg: String) -> ! {
        let tail: Vec<&str> = self
            .history
            .iter()
            .rev()
            .take(20)
            .rev()
            .map(|s| s.as_str())
            .collect();
        panic!(
            "seed {} (max_value_bytes {}): {msg}\nlast commands:\n{}",
            self.seed,
            self.max_value_bytes,
            tail.join("\n")
        );
    }

    /// The version a master's clock gives the next write: one command in
    /// five from a master whose clock is a minute behind, so that the
    /// leader has to stamp it above what its keys hold.
    fn next_version(&mut self) -> Version {
        self.counter += 1;
        if self.counter % 5 == 0 {
            Version {
                millis: self.now - 60_000,
                counter: self.counter,
                origin: 8,
            }
        } else {
            Version {
                millis: self.now,
                counter: self.counter,
                origin: 7,
            }
        }
    }

    /// Runs one command three ways; `drop_one` keeps one changed key's
    /// changes from the replica. Returns false for a command left out.
    fn step(&mut self, words: &[String], drop_one: bool) -> bool {
        self.history
            .push(format!("@{} {}", self.now, words.join(" ")));
        let args = argv(words);
        let Ok(spec) = table::resolve(&args) else {
            return false;
        };
        let Ok(command) = table::parse(&args) else {
            return false;
        };
        if matches!(spec.name, "keys" | "scan" | "dbsize" | "randomkey") {
            self.everywhere(words, &command);
            return true;
        }
        let mut keys: Vec<Bytes> = spec.key_positions(&args).map(|i| args[i].clone()).collect();
        if keys.is_empty() {
            return false;
        }
        keys.sort_unstable();
        keys.dedup();
        let now = self.now;
        let pick_seed: u64 = self.seed.wrapping_mul(31).wrapping_add(self.counter as u64);
        // What a refusal or a random pick needs to undo (cloned only then:
        // the run is timed).
        let limited = self.max_value_bytes != NO_LIMIT;
        let before = (limited || spec.has(flags::RANDOM_OUTPUT)).then(|| self.reference.clone());
        let expected = self
            .reference
            .execute(&command, now, &mut StdRng::seed_from_u64(pick_seed));
        let version = spec.has(flags::WRITE).then(|| self.next_version());
        let held_before = keys
            .iter()
            .filter_map(|k| self.leader.lookup(k, now).version())
            .max();
        let leader_before = limited.then(|| entries(&self.leader, now));
        let executed = self.leader.execute(
            &keys,
            version,
            now,
            self.max_value_bytes,
            &|| true,
            |ks| Some(ks.execute(&command, now, &mut StdRng::seed_from_u64(pick_seed))),
            &mut |_| {},
        );
        self.tally.ran += 1;
        match executed {
            Executed::Ran {
                version: written,
                reply,
                changes,
            } => {
                // The leader's effects come grouped by key (each key's in
                // order): the reference's are compared grouped the same way.
                let effects = by_key(&changes);
                // Written at the master's version, or just above what the
                // keys held when that is newer.
                let stamped = match (version, written) {
                    (None, None) => true,
                    (Some(given), Some(w)) => w >= given && held_before.is_none_or(|h| w > h),
                    _ => false,
                };
                if !stamped {
                    self.fail(format!(
                        "{words:?} given {version:?} over {held_before:?} was written at {written:?}"
                    ));
                }
                let random = spec.has(flags::RANDOM_OUTPUT);
                let expected_effects = grouped(&expected.effects);
                let same = if random {
                    shape(&reply) == shape(&expected.reply)
                } else if spec.has(flags::UNORDERED_OUTPUT) {
                    sorted(&reply) == sorted(&expected.reply) && effects == expected_effects
                } else {
                    reply == expected.reply && effects == expected_effects
                };
                if !same {
                    self.fail(format!(
                        "{words:?}:\n  reference: {expected:?}\n  leader:    {reply:?} {effects:?}"
                    ));
                }
                for c in &changes {
                    let held = self.leader.get(&c.key, now);
                    // What the limit bounds: the stored form, a stream's
                    // entries only (`stored::limited_len`).
                    if let Some(e) = held {
                        let limited = distcache_core::value::stored::from_stored(&e.value)
                            .map_or(e.value.len(), |v| {
                                distcache_core::value::stored::limited_len(&v)
                            });
                        if limited > self.max_value_bytes {
                            self.fail(format!("{:?} holds {limited} bytes", c.key));
                        }
                    }
                }
                if random && !effects.is_empty() {
                    // SPOP popped other members here: the reference takes
                    // the leader's set, to stay in step.
                    self.reference = before.expect("cloned for a random command");
                    for effect in effects.into_iter().flat_map(|(key, ops)| {
                        ops.into_iter().map(move |op| Effect {
                            key: key.clone(),
                            op,
                        })
                    }) {
                        self.reference.apply_effect(&effect).unwrap();
                    }
                }
                if let Some(version) = written
                    && !changes.is_empty()
                {
                    for c in &changes {
                        let at = self.leader.lookup(&c.key, now).version();
                        if at.is_some_and(|at| at != version) {
                            self.fail(format!("{:?} holds {at:?}, not {version}", c.key));
                        }
                    }
                    self.tally.writes_with_changes += 1;
                    self.ship(&changes, version, drop_one);
                }
            }
            Executed::TooLarge => {
                // Only a result over the limit may be refused, and the
                // refusal changes nothing anywhere.
                let over = self.reference.iter().any(|(k, e)| {
                    keys.iter().any(|key| key == k)
                        && stored::to_stored(&e.value).len() > self.max_value_bytes
                });
                if !over {
                    self.fail(format!(
                        "{words:?} refused as too large; the reference answered {expected:?}"
                    ));
                }
                if Some(entries(&self.leader, now)) != leader_before {
                    self.fail(format!("{words:?} refused as too large changed the leader"));
                }
                self.reference = before.expect("cloned under a limit");
                self.tally.too_large += 1;
            }
            Executed::Refused => self.fail(format!("{words:?} admitted, yet refused")),
            Executed::WatchFailed => self.fail(format!("{words:?}: nothing was watched")),
            Executed::Undeclared { key } => self.fail(format!(
                "{words:?} changed {key:?}, which its key finder did not name"
            )),
        }
        self.check();
        true
    }

    /// KEYS, SCAN, DBSIZE and RANDOMKEY over the whole store
    /// (`Store::execute_everywhere`): as the reference answers (RANDOMKEY by
    /// shape), on the leader and on a replica that missed nothing.
    fn everywhere(&mut self, words: &[String], command: &Command) {
        let now = self.now;
        let mut rng = StdRng::seed_from_u64(self.seed);
        self.reference.remove_expired(now);
        let expected = self.reference.execute(command, now, &mut rng).reply;
        let random = matches!(command, Command::RandomKey);
        let comparable = |r: &Reply| {
            if random { vec![shape(r)] } else { sorted(r) }
        };
        let mut stores = vec![("leader", &self.leader)];
        if self.missed.is_empty() {
            stores.push(("replica", &self.replica));
        }
        for (name, store) in stores {
            let Some(reply) = store.execute_everywhere(command, now, &mut rng) else {
                self.fail(format!("{words:?} did not run over the whole {name}"));
            };
            // SCAN's [cursor, keys] is compared as it is: both walk the same
            // positions.
            let same = match command {
                Command::Scan { .. } => reply == expected,
                _ => comparable(&reply) == comparable(&expected),
            };
            if !same {
                self.fail(format!(
                    "{words:?}:\n  reference: {expected:?}\n  {name}: {reply:?}"
                ));
            }
        }
        self.tally.ran += 1;
        self.tally.everywhere += 1;
    }

    /// Ships the leader's changes to the replica (all but one key's with
    /// `drop_one`), and repairs keys that answer `Diverged`.
    fn ship(&mut self, changes: &[KeyChanges], version: Version, drop_one: bool) {
        let now = self.now;
        let mut shipped: Vec<KeyChanges> = changes.to_vec();
        if drop_one {
            let dropped = shipped.remove(0);
            if !self.missed.contains(&dropped.key) {
                self.missed.push(dropped.key);
            }
        }
        let replica_before = entries(&self.replica, now);
        let outcomes =
            self.replica
                .apply_changes(&shipped, version, now, self.max_value_bytes, &mut |_| {});
        for (change, outcome) in shipped.iter().zip(outcomes) {
            let missed = self.missed.iter().position(|k| *k == change.key);
            match (outcome, missed) {
                (ApplyOutcome::Applied, None) => {}
                (ApplyOutcome::Applied, Some(i)) => {
                    // The key expired on both sides since: the leader's
                    // changes start from nothing, as the replica's do.
                    if change.base.is_some() {
                        self.fail(format!(
                            "the replica applied {change:?} over a missed change"
                        ));
                    }
                    self.missed.swap_remove(i);
                    self.tally.repaired_by_expiry += 1;
                }
                (ApplyOutcome::Diverged, Some(i)) => {
                    let find = |all: &[(Bytes, Entry)]| {
                        all.iter()
                            .find(|(k, _)| *k == change.key)
                            .map(|(_, e)| e.clone())
                    };
                    if find(&entries(&self.replica, now)) != find(&replica_before) {
                        self.fail(format!("a diverged {:?} changed", change.key));
                    }
                    self.tally.diverged += 1;
                    self.missed.swap_remove(i);
                    self.repair(&change.key, version);
                }
                (other, _) => self.fail(format!("the replica answered {other:?} to {change:?}")),
            }
        }
    }

    /// What the master does for a diverged replica: the leader's whole
    /// value at its version, or a delete.
    fn repair(&mut self, key: &[u8], version: Version) {
        match self.leader.get(key, self.now) {
            Some(entry) => {
                self.replica.set(key, entry, self.now);
            }
            None => {
                self.replica.delete(key, version, self.now);
            }
        }
    }

    /// Leader and reference hold the same; the replica holds the leader's
    /// entries exactly, except at keys it missed.
    fn check(&mut self) {
        let now = self.now;
        self.reference.remove_expired(now);
        let leader_entries = entries(&self.leader, now);
        let leader_values = decoded(&leader_entries);
        if !leader_values.same_as(&self.reference) {
            let ours: Vec<_> = leader_values
                .iter()
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect();
            let theirs: Vec<_> = self
                .reference
                .iter()
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect();
            self.fail(format!(
                "the leader holds\n  {ours:?}\nthe reference\n  {theirs:?}"
            ));
        }
        let outside = |all: Vec<(Bytes, Entry)>, missed: &[Bytes]| -> Vec<(Bytes, Entry)> {
            all.into_iter()
                .filter(|(k, _)| !missed.contains(k))
                .collect()
        };
        let leader = outside(leader_entries, &self.missed);
        let replica = outside(entries(&self.replica, now), &self.missed);
        if leader != replica {
            self.fail(format!(
                "the replica holds\n  {replica:?}\nthe leader\n  {leader:?}"
            ));
        }
    }

    /// Moves the clock: a few seconds, now and then hours.
    fn tick(&mut self, rng: &mut StdRng) {
        self.now += if rng.random_bool(0.02) {
            rng.random_range(0..30_000_000)
        } else {
            rng.random_range(0..3_000)
        };
    }
}

fn run_seed(seed: u64, commands: usize) -> Tally {
    // Even seeds with a value limit that the big collections (and some
    // APPENDs and SUNIONSTOREs) pass.
    let limit = if seed % 2 == 0 { 300 } else { NO_LIMIT };
    let mut run = Run::new(seed, limit);
    let mut generator = Gen::new(seed);
    let mut rng = StdRng::seed_from_u64(seed ^ 0xc10c);
    let mut done = 0;
    let mut left_out = 0;
    while done < commands {
        let words = generator.command();
        let drop_one = rng.random_bool(0.03);
        if run.step(&words, drop_one) {
            done += 1;
        } else {
            left_out += 1;
        }
        run.tick(&mut rng);
        assert!(
            left_out < commands,
            "the generator gives mostly left-out commands"
        );
    }
    run.tally
}

fn seeds(default: std::ops::Range<u64>) -> Vec<u64> {
    match std::env::var("STORE_SEED") {
        Ok(s) => vec![s.parse().expect("STORE_SEED is a number")],
        Err(_) => default.collect(),
    }
}

#[test]
fn generated_commands_give_the_same_replies_and_values_on_the_leader_replica_and_reference() {
    let mut total = Tally::default();
    // 8,000 commands: about a second of CPU in a debug build.
    for seed in seeds(0..8) {
        let t = run_seed(seed, 1_000);
        total.ran += t.ran;
        total.writes_with_changes += t.writes_with_changes;
        total.too_large += t.too_large;
        total.diverged += t.diverged;
        total.repaired_by_expiry += t.repaired_by_expiry;
        total.everywhere += t.everywhere;
    }
    eprintln!("{total:?}");
    if std::env::var_os("STORE_SEED").is_none() {
        // The run exercised what it claims to.
        assert!(total.writes_with_changes > 2_000, "{total:?}");
        assert!(total.too_large >= 10, "{total:?}");
        assert!(total.diverged >= 30, "{total:?}");
        assert!(total.everywhere >= 100, "{total:?}");
    }
}

fn words(line: &str) -> Vec<String> {
    line.split(' ').map(str::to_owned).collect()
}

/// Runs `lines` in order, every change shipped; panics on any difference.
fn script(run: &mut Run, lines: &[&str]) {
    for line in lines {
        assert!(run.step(&words(line), false), "{line} was left out");
    }
}

#[test]
fn a_replica_that_missed_a_change_answers_diverged_for_that_key_only_and_keeps_it_unchanged() {
    let mut run = Run::new(0, NO_LIMIT);
    script(&mut run, &["SET a 1", "SET b 1", "SADD c x"]);
    let now = run.now;
    let b_before = run.replica.get(b"b", now).unwrap();
    // The replica misses APPEND's change to b.
    assert!(run.step(&words("APPEND b x"), true));
    assert_eq!(run.missed, vec![Bytes::from_static(b"b")]);
    assert_eq!(run.replica.get(b"b", now), Some(b_before.clone()));

    // MSET a and b: a applies, b diverges (checked inside `ship`), by hand
    // here so that the repair does not hide what the replica answered.
    let args = argv(&words("MSET a 2 b 3"));
    let command = table::parse(&args).unwrap();
    let given = run.next_version();
    let Executed::Ran {
        changes,
        version: Some(version),
        ..
    } = run.leader.execute(
        &[Bytes::from_static(b"a"), Bytes::from_static(b"b")],
        Some(given),
        now,
        NO_LIMIT,
        &|| true,
        |ks| Some(ks.execute(&command, now, &mut rand::rng())),
        &mut |_| {},
    )
    else {
        panic!("MSET did not run")
    };
    let keys: Vec<&[u8]> = changes.iter().map(|c| c.key.as_ref()).collect();
    assert_eq!(keys, [b"a".as_ref(), b"b".as_ref()]);
    let c_before = run.replica.get(b"c", now);
    let outcomes = run
        .replica
        .apply_changes(&changes, version, now, NO_LIMIT, &mut |_| {});
    assert_eq!(outcomes, [ApplyOutcome::Applied, ApplyOutcome::Diverged]);
    assert_eq!(run.replica.get(b"a", now), run.leader.get(b"a", now));
    assert_eq!(run.replica.get(b"b", now), Some(b_before));
    assert_eq!(run.replica.get(b"c", now), c_before);
    assert_ne!(run.replica.get(b"b", now), run.leader.get(b"b", now));
}

#[test]
fn expiries_follow_the_given_clock_on_the_leader_and_its_replica() {
    let mut run = Run::new(0, NO_LIMIT);
    let t = run.now;
    script(
        &mut run,
        &[
            "SET k v EX 10",
            "RPUSH l a b",
            "PEXPIRE l 2500",
            "HSET h f v",
            "EXPIREAT h 1750000100",
        ],
    );
    let expiry = |store: &Store, key: &[u8], now| store.get(key, now).and_then(|e| e.expires_at_ms);
    for store in [&run.leader, &run.replica] {
        assert_eq!(expiry(store, b"k", t), Some(t + 10_000));
        assert_eq!(expiry(store, b"l", t), Some(t + 2_500));
        assert_eq!(expiry(store, b"h", t), Some(1_750_000_100_000));
    }
    run.now = t + 2_000;
    let before = run.reference.clone();
    script(&mut run, &["TTL k", "PTTL l", "EXPIRETIME h"]);
    assert!(run.reference.same_as(&before));
    run.now = t + 2_500;
    script(&mut run, &["LLEN l", "PERSIST k", "GETEX h PX 1"]);
    assert!(run.leader.get(b"l", run.now).is_none());
    assert!(run.replica.get(b"l", run.now).is_none());
    run.now = t + 1_000_000;
    script(&mut run, &["TTL k", "EXISTS k h l"]);
    let keys: Vec<Bytes> = entries(&run.replica, run.now)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, [Bytes::from_static(b"k")]);
    assert_eq!(expiry(&run.replica, b"k", run.now), None);
}

#[test]
fn a_result_over_the_value_limit_is_refused_and_changes_nothing() {
    let mut run = Run::new(0, 64);
    script(&mut run, &["RPUSH l a b c", "SET s small", "SADD t x y"]);
    let now = run.now;
    let leader = entries(&run.leader, now);
    let replica = entries(&run.replica, now);
    let big = "x".repeat(70);
    let many: Vec<String> = (0..40).map(|i| format!("e{i}")).collect();
    for line in [
        format!("RPUSH l {}", many.join(" ")),
        format!("SET s {big}"),
        format!("APPEND s {big}"),
        format!("MSET a 1 s {big}"),
        format!("SADD t {}", many.join(" ")),
    ] {
        assert!(run.step(&words(&line), false));
    }
    assert_eq!(run.tally.too_large, 5, "{:?}", run.history);
    assert_eq!(entries(&run.leader, now), leader);
    assert_eq!(entries(&run.replica, now), replica);
    assert!(
        run.leader.get(b"a", now).is_none(),
        "MSET is all or nothing"
    );
    // Under the limit, the same commands run.
    script(&mut run, &["RPUSH l d", "APPEND s x"]);
    assert_eq!(run.tally.too_large, 5);
}
