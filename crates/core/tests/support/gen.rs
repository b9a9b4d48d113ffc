//! A seeded generator of random Redis command sequences, shared by the
//! differential tests (against a real `redis-server`) and the store's
//! property test.
//!
//! The key space is tiny so that types collide (WRONGTYPE paths), and the
//! arguments mix valid and invalid values (bad integers, NaN, overflow,
//! negative indexes, wrong arity, unknown options, unknown commands).
//! Now and then a collection grows past the 128 elements where Redis
//! leaves its compact encodings.
//!
//! It depends on `rand` only, so that tests of other crates include it
//! with `#[path = "../../core/tests/support/gen.rs"] mod generator;`
//! (`gen` is a reserved word in Rust 2024). The same
//! seed gives the same sequence, always: tests print the seed to replay.
#![allow(dead_code)] // each including test uses its own part

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Keys shared by every type family (see `Gen::family`).
pub const KEYS: &[&str] = &["a", "b", "c"];
pub const LEX_KEYS: &[&str] = &["lz1", "lz2"];
pub const ELEMENTS: &[&str] = &[
    "", "x", "y", "z", "0", "1", "-1", "10", "3.5", "abc", "a*b", "hello",
];
pub const INTS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "3",
    "5",
    "-5",
    "100",
    "-100",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "abc",
    "1.5",
    "",
    "01",
    "+1",
    " 1",
];
pub const SMALL_INTS: &[&str] = &[
    "0", "1", "-1", "2", "3", "-2", "-3", "5", "10", "-10", "100", "abc",
];
pub const FLOATS: &[&str] = &[
    "0",
    "1",
    "-1",
    "1.5",
    "-2.5",
    "0.5",
    "3",
    "inf",
    "-inf",
    "+inf",
    "nan",
    "abc",
    "1e3",
    "-0",
    "1e400",
    "2.25",
    "",
    "1.1",
    "0.1",
    "1e16",
    "1e17",
    "123456789012345678",
    "1e-5",
    "0.0001",
    "-3.3e-7",
    "1e-400",
    " 1",
];
/// Increments for INCRBYFLOAT and HINCRBYFLOAT, many of them inexact in
/// binary so that the long double arithmetic shows.
pub const INCR_FLOATS: &[&str] = &[
    "0.1",
    "0.2",
    "-0.3",
    "1.5",
    "100.1",
    "1e20",
    "-1e20",
    "3.14159",
    "1e-20",
    "2.5e-5",
    "1.7976931348623157e308",
    "1e4000",
    "-0",
    "0",
    "inf",
    "-inf",
    "nan",
    "abc",
    "",
    " 1",
    "1e",
    ".5",
    "5.",
    "+7",
    "12345.678",
    "-1000.1",
];
pub const BOUNDS: &[&str] = &[
    "-inf", "+inf", "0", "1", "(1", "2", "(2.5", "-1", "10", "abc", "(", "nan",
];
pub const LEX: &[&str] = &["-", "+", "[a", "(a", "[b", "(c", "[", "a", "[x", "(z"];
pub const PATTERNS: &[&str] = &[
    "*", "a", "?", "[a-c]", "[^a]*", "*b*", "h*o", "\\*", "[a-", "*",
];

/// The generator: a seeded rng and what it remembers of the sequence so
/// far.
pub struct Gen {
    rng: StdRng,
    /// The type family of the command being generated: its keys come
    /// mostly from that family's own keys, so that most commands find a
    /// value of their type and do real work, and sometimes from the
    /// shared keys, where types collide.
    family: char,
    /// Sorted-set keys that have held more than 128 members.
    big: std::collections::HashSet<String>,
    /// Whether scripts may also be named by their SHA1 (EVALSHA, SCRIPT):
    /// the master's script cache answers those, so only a runner with a
    /// master sets it.
    pub by_sha: bool,
    /// The scripts EVAL or SCRIPT LOAD sent since the last SCRIPT FLUSH
    /// (indexes in [`SCRIPTS`]), which EVALSHA mostly picks from.
    sent_scripts: Vec<usize>,
    /// The milliseconds of the stream IDs XADD sends, mostly growing, so
    /// that most XADDs add an entry.
    stream_ms: u64,
    /// The streams and groups XGROUP CREATE named, which the group
    /// commands mostly pick from.
    groups: Vec<(String, String)>,
}

impl Gen {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Gen {
        Gen {
            rng: StdRng::seed_from_u64(seed),
            family: 'k',
            big: Default::default(),
            by_sha: false,
            sent_scripts: Vec::new(),
            stream_ms: 1,
            groups: Vec::new(),
        }
    }

    /// The generator's rng, for a runner's own choices that must replay
    /// with the seed (they change the sequence that follows).
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// Whether some sorted set may have held more than 128 members (Redis
    /// then prints ZSCAN's big integral scores as `1e+17`).
    pub fn may_have_big_zsets(&self) -> bool {
        !self.big.is_empty()
    }

    /// A MULTI block: MULTI, up to four commands (a command for which
    /// `random_output` holds is replaced by `INCR a`), sometimes a nested
    /// MULTI (an error), then EXEC or DISCARD.
    pub fn transaction(&mut self, random_output: impl Fn(&str) -> bool) -> Vec<Vec<String>> {
        let mut block = vec![vec!["MULTI".to_owned()]];
        for _ in 0..self.rng.random_range(0..5) {
            let mut words = self.command();
            if random_output(&words[0]) {
                words = vec!["INCR".into(), "a".into()];
            }
            block.push(words);
        }
        if self.chance(0.1) {
            block.push(vec!["MULTI".into()]);
        }
        block.push(vec![
            if self.chance(0.8) { "EXEC" } else { "DISCARD" }.into(),
        ]);
        block
    }

    pub fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.rng.random_range(0..from.len())]
    }
    fn key(&mut self) -> String {
        let family = if self.family == 'k' {
            self.pick(&["s", "h", "l", "t", "z", "x", "g", "p"])
                .chars()
                .next()
                .unwrap_or('s')
        } else {
            self.family
        };
        if self.chance(0.7) {
            format!("{family}{}", self.rng.random_range(0..3))
        } else {
            self.pick(KEYS).to_owned()
        }
    }
    fn el(&mut self) -> String {
        self.pick(ELEMENTS).to_owned()
    }
    fn els(&mut self, max: usize) -> Vec<String> {
        let n = self.rng.random_range(1..=max);
        (0..n).map(|_| self.el()).collect()
    }
    fn keys(&mut self, max: usize) -> Vec<String> {
        let n = self.rng.random_range(1..=max);
        (0..n).map(|_| self.key()).collect()
    }
    fn int(&mut self) -> String {
        if self.rng.random_bool(0.7) {
            self.pick(SMALL_INTS).to_owned()
        } else {
            self.pick(INTS).to_owned()
        }
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }
    fn ttl_secs(&mut self) -> String {
        if self.chance(0.1) {
            self.pick(&["0", "-1", "abc", "9223372036854775807", "99999999999999999"])
                .to_owned()
        } else {
            self.rng.random_range(100..100_000).to_string()
        }
    }

    /// One command as an argument vector (strings).
    pub fn command(&mut self) -> Vec<String> {
        let which = self.rng.random_range(0..146);
        self.family = match which {
            134..=139 => 'p',
            0..=20 | 112..=115 | 140..=142 => 's',
            116..=125 => 'x',
            126..=133 => 'g',
            31..=43 => 'h',
            44..=61 | 104 | 106 => 'l',
            62..=74 => 't',
            75..=95 | 100..=103 | 105 | 107 => 'z',
            _ => 'k',
        };
        let k = self.key();
        let mut v: Vec<String> = match which {
            // Strings and counters.
            0..=2 => vec!["GET".into(), k],
            3..=6 => {
                let mut v = vec!["SET".into(), k, self.el()];
                for _ in 0..self.rng.random_range(0..3) {
                    match self.rng.random_range(0..8) {
                        0 => v.push("NX".into()),
                        1 => v.push("XX".into()),
                        2 => v.push("GET".into()),
                        3 => v.push("KEEPTTL".into()),
                        4 => v.extend(["EX".into(), self.ttl_secs()]),
                        5 => v.extend(["PX".into(), self.ttl_secs()]),
                        6 => v.extend(["EXAT".into(), "99999999999".into()]),
                        _ => v.push(self.pick(&["BOGUS", "EX", "px"]).into()),
                    }
                }
                v
            }
            7 => vec!["SETNX".into(), k, self.el()],
            8 => vec![
                self.pick(&["SETEX", "PSETEX"]).into(),
                k,
                self.ttl_secs(),
                self.el(),
            ],
            9 => vec!["GETSET".into(), k, self.el()],
            10 => vec!["GETDEL".into(), k],
            11 => {
                let mut v = vec!["GETEX".into(), k];
                match self.rng.random_range(0..6) {
                    0 => v.push("PERSIST".into()),
                    1 => v.extend(["EX".into(), self.ttl_secs()]),
                    2 => v.extend(["PXAT".into(), "99999999999999".into()]),
                    3 => v.extend(["EX".into(), "10".into(), "PX".into(), "10".into()]),
                    4 => v.push("NX".into()),
                    _ => {}
                }
                v
            }
            12 => {
                let mut v = vec!["MGET".into()];
                v.extend(self.keys(4));
                v
            }
            13 => {
                let mut v = vec![self.pick(&["MSET", "MSETNX"]).into()];
                for _ in 0..self.rng.random_range(1..4) {
                    v.push(self.key());
                    v.push(self.el());
                }
                v
            }
            14 => vec!["APPEND".into(), k, self.el()],
            15 => vec!["STRLEN".into(), k],
            16 => vec!["GETRANGE".into(), k, self.int(), self.int()],
            17 => vec![
                "SETRANGE".into(),
                k,
                self.pick(&["0", "1", "3", "-1", "abc", "5"]).into(),
                self.el(),
            ],
            18..=20 => match self.rng.random_range(0..5) {
                0 => vec!["INCR".into(), k],
                1 => vec!["DECR".into(), k],
                2 => vec!["INCRBY".into(), k, self.int()],
                3 => vec!["DECRBY".into(), k, self.int()],
                _ => vec!["INCRBYFLOAT".into(), k, self.pick(INCR_FLOATS).into()],
            },
            // Keys.
            21..=22 => {
                let mut v = vec![self.pick(&["DEL", "UNLINK", "EXISTS", "TOUCH"]).into()];
                v.extend(self.keys(3));
                v
            }
            23 => vec!["TYPE".into(), k],
            24..=25 => {
                let name = self.pick(&["EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"]);
                let amount = match name {
                    "EXPIRE" => self.ttl_secs(),
                    "PEXPIRE" => (self.rng.random_range(100_000..10_000_000u64)).to_string(),
                    "EXPIREAT" => self.pick(&["99999999999", "1", "abc", "4102444800"]).into(),
                    _ => self.pick(&["99999999999999", "1", "4102444800000"]).into(),
                };
                let mut v = vec![name.into(), k, amount];
                if self.chance(0.4) {
                    v.push(
                        self.pick(&["NX", "XX", "GT", "LT", "nx", "BAD", "b\na\rd"])
                            .into(),
                    );
                }
                if self.chance(0.1) {
                    v.push(self.pick(&["NX", "XX", "GT", "LT"]).into());
                }
                v
            }
            26 => vec![
                self.pick(&["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME", "PERSIST"])
                    .into(),
                k,
            ],
            27 => vec![self.pick(&["RENAME", "RENAMENX"]).into(), k, self.key()],
            28 => {
                let mut v = vec!["COPY".into(), k, self.key()];
                if self.chance(0.5) {
                    v.push("REPLACE".into());
                }
                if self.chance(0.1) {
                    v.extend(["DB".into(), "0".into()]);
                }
                v
            }
            29 => vec!["KEYS".into(), self.pick(PATTERNS).into()],
            30 => match self.rng.random_range(0..3) {
                0 => vec!["DBSIZE".into()],
                1 => vec!["RANDOMKEY".into()],
                _ => {
                    let mut v = vec!["SCAN".into(), "0".into()];
                    if self.chance(0.5) {
                        v.extend(["MATCH".into(), self.pick(PATTERNS).into()]);
                    }
                    if self.chance(0.5) {
                        v.extend([
                            "COUNT".into(),
                            self.pick(&["1", "2", "10", "0", "abc"]).into(),
                        ]);
                    }
                    if self.chance(0.3) {
                        v.extend([
                            "TYPE".into(),
                            self.pick(&["string", "list", "hash", "set", "zset", "bogus"])
                                .into(),
                        ]);
                    }
                    v
                }
            },
            // Hashes.
            31..=34 => {
                let mut v = vec![self.pick(&["HSET", "HSET", "HMSET"]).into(), k];
                for _ in 0..self.rng.random_range(1..4) {
                    v.push(self.el());
                    v.push(self.el());
                }
                v
            }
            35 => vec!["HSETNX".into(), k, self.el(), self.el()],
            36 => vec!["HGET".into(), k, self.el()],
            37 => {
                let mut v = vec![self.pick(&["HMGET", "HDEL"]).into(), k];
                v.extend(self.els(3));
                v
            }
            38 => vec![self.pick(&["HEXISTS", "HSTRLEN"]).into(), k, self.el()],
            39 => vec![self.pick(&["HLEN", "HKEYS", "HVALS", "HGETALL"]).into(), k],
            40 => vec!["HINCRBY".into(), k, self.el(), self.int()],
            41 => vec![
                "HINCRBYFLOAT".into(),
                k,
                self.el(),
                self.pick(INCR_FLOATS).into(),
            ],
            42 => {
                let mut v = vec!["HRANDFIELD".into(), k];
                if self.chance(0.7) {
                    v.push(self.pick(&["0", "1", "2", "5", "-3", "-1", "abc"]).into());
                    if self.chance(0.5) {
                        v.push(self.pick(&["WITHVALUES", "withvalues", "BAD"]).into());
                    }
                }
                v
            }
            43 => {
                let name = self.pick(&["HSCAN", "SSCAN", "ZSCAN"]);
                self.family = match name {
                    "SSCAN" => 't',
                    "ZSCAN" => 'z',
                    _ => 'h',
                };
                let key = if self.chance(0.1) { k } else { self.key() };
                let mut v = vec![name.into(), key, self.pick(&["0", "0", "abc"]).into()];
                if self.chance(0.5) {
                    v.extend(["MATCH".into(), self.pick(PATTERNS).into()]);
                }
                if self.chance(0.3) {
                    v.extend(["COUNT".into(), self.pick(&["1", "100", "0"]).into()]);
                }
                v
            }
            // Lists.
            44..=48 => {
                let mut v = vec![
                    self.pick(&["LPUSH", "RPUSH", "LPUSH", "RPUSH", "LPUSHX", "RPUSHX"])
                        .into(),
                    k,
                ];
                v.extend(self.els(4));
                v
            }
            49..=50 => {
                let mut v = vec![self.pick(&["LPOP", "RPOP"]).into(), k];
                if self.chance(0.5) {
                    v.push(self.pick(&["0", "1", "2", "10", "-1", "abc"]).into());
                }
                v
            }
            51 => vec!["LLEN".into(), k],
            52..=53 => vec!["LRANGE".into(), k, self.int(), self.int()],
            54 => vec!["LINDEX".into(), k, self.int()],
            55 => vec!["LSET".into(), k, self.int(), self.el()],
            56 => vec![
                "LINSERT".into(),
                k,
                self.pick(&["BEFORE", "AFTER", "after", "MIDDLE"]).into(),
                self.el(),
                self.el(),
            ],
            57 => vec!["LREM".into(), k, self.int(), self.el()],
            58 => vec!["LTRIM".into(), k, self.int(), self.int()],
            59 => {
                let mut v = vec!["LPOS".into(), k, self.el()];
                for _ in 0..self.rng.random_range(0..3) {
                    let opt = self.pick(&["RANK", "COUNT", "MAXLEN", "BAD"]);
                    v.push(opt.into());
                    v.push(self.pick(&["1", "2", "-1", "-2", "0", "abc", "3"]).into());
                }
                v
            }
            60 => vec![
                "LMOVE".into(),
                k,
                self.key(),
                self.pick(&["LEFT", "RIGHT", "left", "UP"]).into(),
                self.pick(&["LEFT", "RIGHT"]).into(),
            ],
            61 => vec!["RPOPLPUSH".into(), k, self.key()],
            // Sets.
            62..=65 => {
                let mut v = vec![self.pick(&["SADD", "SADD", "SREM"]).into(), k];
                v.extend(self.els(4));
                v
            }
            66 => vec![self.pick(&["SMEMBERS", "SCARD"]).into(), k],
            67 => vec!["SISMEMBER".into(), k, self.el()],
            68 => {
                let mut v = vec!["SMISMEMBER".into(), k];
                v.extend(self.els(3));
                v
            }
            69 => {
                let mut v = vec!["SPOP".into(), k];
                if self.chance(0.6) {
                    v.push(self.pick(&["0", "1", "2", "10", "-1", "abc"]).into());
                }
                v
            }
            70 => {
                let mut v = vec!["SRANDMEMBER".into(), k];
                if self.chance(0.7) {
                    v.push(self.pick(&["0", "1", "2", "10", "-1", "-5", "abc"]).into());
                }
                v
            }
            71 => vec!["SMOVE".into(), k, self.key(), self.el()],
            72..=73 => {
                let name = self.pick(&[
                    "SINTER",
                    "SUNION",
                    "SDIFF",
                    "SINTERSTORE",
                    "SUNIONSTORE",
                    "SDIFFSTORE",
                ]);
                let mut v = vec![name.into()];
                v.extend(self.keys(3));
                v
            }
            74 => {
                let keys = self.keys(3);
                let mut v = vec![
                    "SINTERCARD".into(),
                    if self.chance(0.9) {
                        keys.len().to_string()
                    } else {
                        self.pick(&["0", "5", "abc"]).into()
                    },
                ];
                v.extend(keys);
                if self.chance(0.4) {
                    v.extend(["LIMIT".into(), self.pick(&["0", "1", "2", "-1"]).into()]);
                }
                v
            }
            // Sorted sets.
            75..=79 => {
                let key = if self.chance(0.2) {
                    self.pick(LEX_KEYS).to_owned()
                } else {
                    k
                };
                let lex = key.starts_with("lz");
                let mut v = vec!["ZADD".into(), key];
                if !lex {
                    for _ in 0..self.rng.random_range(0..3) {
                        v.push(self.pick(&["NX", "XX", "GT", "LT", "CH", "INCR"]).into());
                    }
                }
                for _ in 0..self.rng.random_range(1..4) {
                    v.push(if lex {
                        "0".into()
                    } else {
                        self.score_for(&v[1].clone())
                    });
                    v.push(self.el());
                }
                v
            }
            80 => {
                let mut v = vec!["ZREM".into(), k];
                v.extend(self.els(3));
                v
            }
            81 => vec!["ZSCORE".into(), k, self.el()],
            82 => {
                let mut v = vec!["ZMSCORE".into(), k];
                v.extend(self.els(3));
                v
            }
            83 => vec!["ZINCRBY".into(), k.clone(), self.score_for(&k), self.el()],
            84 => vec!["ZCARD".into(), k],
            85 => vec![
                "ZCOUNT".into(),
                k,
                self.pick(BOUNDS).into(),
                self.pick(BOUNDS).into(),
            ],
            86 => vec![
                "ZLEXCOUNT".into(),
                self.pick(LEX_KEYS).into(),
                self.pick(LEX).into(),
                self.pick(LEX).into(),
            ],
            87 => vec![self.pick(&["ZRANK", "ZREVRANK"]).into(), k, self.el()],
            88..=90 => self.zrange(k),
            91 => {
                let mut v = vec![self.pick(&["ZPOPMIN", "ZPOPMAX"]).into(), k];
                if self.chance(0.6) {
                    v.push(self.pick(&["0", "1", "2", "10", "-1", "abc"]).into());
                }
                v
            }
            92 => {
                let mut v = vec!["ZRANDMEMBER".into(), k];
                if self.chance(0.7) {
                    v.push(self.pick(&["0", "1", "2", "5", "-3", "abc"]).into());
                    if self.chance(0.5) {
                        v.push(self.pick(&["WITHSCORES", "BAD"]).into());
                    }
                }
                v
            }
            93 => vec!["ZREMRANGEBYRANK".into(), k, self.int(), self.int()],
            94 => vec![
                "ZREMRANGEBYSCORE".into(),
                k,
                self.pick(BOUNDS).into(),
                self.pick(BOUNDS).into(),
            ],
            95 => vec![
                "ZREMRANGEBYLEX".into(),
                self.pick(LEX_KEYS).into(),
                self.pick(LEX).into(),
                self.pick(LEX).into(),
            ],
            // Unknown commands and odd names.
            96 => {
                // Unknown commands: Redis quotes their first arguments, cut
                // at 128 bytes and at NUL, on one line.
                let long = "x".repeat(self.rng.random_range(100..200));
                let mut v = vec![self.pick(&["FOO", "getx", "hsett", "bad\ncmd"]).into(), k];
                for _ in 0..self.rng.random_range(0..4) {
                    v.push(
                        self.pick(&["a\nb", "x\0y", "c\r", &long, "", "q"])
                            .to_owned(),
                    );
                }
                v
            }
            100..=101 => self.zalgebra(),
            102 => {
                let mut v = self.zrange(k);
                if v[0].eq_ignore_ascii_case("ZRANGE") {
                    v[0] = "ZRANGESTORE".into();
                } else {
                    v = vec!["ZRANGESTORE".into(), v[1].clone(), self.int(), self.int()];
                }
                v.insert(1, self.key());
                v
            }
            103 | 104 => {
                let (name, sides) = if which == 103 {
                    ("ZMPOP", ["MIN", "MAX", "max", "LEFT"])
                } else {
                    ("LMPOP", ["LEFT", "RIGHT", "right", "MIN"])
                };
                let keys = self.keys(3);
                let mut v = vec![name.into(), self.numkeys(keys.len())];
                v.extend(keys);
                v.push(self.pick(&sides).into());
                if self.chance(0.5) {
                    v.extend([
                        "COUNT".into(),
                        self.pick(&["1", "2", "5", "0", "-1", "abc"]).into(),
                    ]);
                }
                v
            }
            106 => self.blocking_pop(k, true),
            107 => self.blocking_pop(k, false),
            108..=111 => self.eval(),
            112..=115 => self.bits(k),
            116..=125 => self.stream(k),
            126..=133 => self.geo(k),
            134..=139 => self.hyperloglog(k),
            140..=141 => self.lcs(k),
            142 => match self.rng.random_range(0..5) {
                0 => vec!["OBJECT".into(), "FREQ".into(), k],
                // OBJECT HELP below, and among the edge cases.
                1 => vec!["MEMORY".into(), "USAGE".into(), k],
                2 => vec![
                    "OBJECT".into(),
                    self.pick(&["bogus", "HELP", "refcount"]).into(),
                ],
                _ => vec!["SUBSTR".into(), k, self.int(), self.int()],
            },
            143..=145 => self.sort(),
            _ => vec!["EXISTS".into(), k],
        };
        // Now and then a big collection, past the 128 elements where Redis
        // leaves its compact encodings (cursors page, orders change).
        if self.chance(0.01) {
            let n = self.rng.random_range(120..200);
            let start = self.rng.random_range(0..50);
            v = match self.family {
                'h' => {
                    let mut v = vec!["HSET".into(), k_big(&v)];
                    for i in start..start + n {
                        v.extend([format!("f{i}"), i.to_string()]);
                    }
                    v
                }
                'l' => {
                    let mut v = vec!["RPUSH".into(), k_big(&v)];
                    v.extend((start..start + n).map(|i| format!("e{}", i % 40)));
                    v
                }
                't' => {
                    let mut v = vec!["SADD".into(), k_big(&v)];
                    v.extend((start..start + n).map(|i| {
                        if i % 2 == 0 {
                            i.to_string()
                        } else {
                            format!("m{i}")
                        }
                    }));
                    v
                }
                'z' => {
                    let key = k_big(&v);
                    // Sorted sets this big leave Redis's compact encoding,
                    // which keeps -0 as -0 (see docs/commands.md): no -0
                    // for them from now on. Lex keys keep score 0.
                    self.big.insert(key.clone());
                    let lex = key.starts_with("lz");
                    let mut v = vec!["ZADD".into(), key];
                    for i in start..start + n {
                        v.extend([
                            if lex {
                                "0".to_owned()
                            } else {
                                (i % 17).to_string()
                            },
                            format!("m{i}"),
                        ]);
                    }
                    v
                }
                _ => v,
            };
        }
        // Now and then: a wrong number of arguments, or a name in odd case.
        if self.chance(0.03) && v.len() > 1 {
            v.pop();
        } else if self.chance(0.02) {
            let extra = self.el();
            // Not after a bare PX or EX: `SET k v px 1` would be a valid
            // expiry of a millisecond, which the two sides' clocks race.
            let after_unit = v
                .last()
                .is_some_and(|w| w.eq_ignore_ascii_case("px") || w.eq_ignore_ascii_case("ex"));
            v.push(if after_unit { "abc".into() } else { extra });
        }
        if self.chance(0.2) {
            v[0] = v[0].to_lowercase();
        }
        v
    }

    /// EVAL or EVAL_RO of one of [`SCRIPTS`], with its keys and arguments
    /// (now and then a bad `numkeys`).
    ///
    /// With [`Gen::by_sha`]: now and then EVALSHA or EVALSHA_RO of one of
    /// them (which runs once EVAL or SCRIPT LOAD has seen it, and answers
    /// NOSCRIPT before), or SCRIPT LOAD, EXISTS or FLUSH.
    fn eval(&mut self) -> Vec<String> {
        let mut which = self.rng.random_range(0..SCRIPTS.len());
        let by_sha = self.by_sha && self.chance(0.5);
        if by_sha && !self.sent_scripts.is_empty() && self.chance(0.8) {
            which = self.sent_scripts[self.rng.random_range(0..self.sent_scripts.len())];
        }
        let (source, nkeys, nargs) = SCRIPTS[which];
        let sha = || distcache_core::script::sha1_hex(source.as_bytes());
        if self.by_sha && self.chance(0.15) {
            return match self.rng.random_range(0..20) {
                0..=11 => {
                    self.sent_scripts.push(which);
                    vec!["SCRIPT".into(), "LOAD".into(), source.into()]
                }
                12..=18 => vec!["SCRIPT".into(), "EXISTS".into(), sha(), "0000".into()],
                _ => {
                    self.sent_scripts.clear();
                    vec!["SCRIPT".into(), "FLUSH".into()]
                }
            };
        }
        if !by_sha {
            self.sent_scripts.push(which);
        }
        let name = match (by_sha, self.chance(if by_sha { 0.3 } else { 0.15 })) {
            (true, true) => "EVALSHA_RO",
            (true, false) => "EVALSHA",
            (false, true) => "EVAL_RO",
            (false, false) => "EVAL",
        };
        let script = if name.starts_with("EVALSHA") {
            sha()
        } else {
            source.to_owned()
        };
        let mut v = vec![name.to_owned(), script];
        v.push(if self.chance(0.05) {
            self.pick(&["-1", "abc", "99"]).to_owned()
        } else {
            nkeys.to_string()
        });
        for _ in 0..nkeys {
            v.push(self.key());
        }
        for _ in 0..nargs {
            v.push(if self.chance(0.5) {
                self.el()
            } else {
                self.int()
            });
        }
        v
    }

    /// A HyperLogLog command over `k`: PFADD of a few elements or (now and
    /// then) thousands, which turns it dense; PFCOUNT of one key (which
    /// caches the count in the value) or several; PFMERGE; GET of its
    /// bytes, compared with Redis's; and now and then a damaged one.
    fn hyperloglog(&mut self, k: String) -> Vec<String> {
        match self.rng.random_range(0..20) {
            0..=7 => {
                let mut v = vec!["PFADD".into(), k];
                let n = if self.chance(0.05) {
                    self.rng.random_range(1500..3000)
                } else {
                    self.rng.random_range(0..6)
                };
                let base = self.rng.random_range(0..1_000_000u32);
                for i in 0..n {
                    v.push(if self.chance(0.3) {
                        self.el()
                    } else {
                        (base + i).to_string()
                    });
                }
                v
            }
            8..=11 => {
                let mut v = vec!["PFCOUNT".into(), k];
                if self.chance(0.3) {
                    v.push(self.key());
                }
                v
            }
            12..=14 => {
                let mut v = vec!["PFMERGE".into(), self.key(), k];
                if self.chance(0.5) {
                    v.push(self.key());
                }
                v
            }
            15..=17 => vec!["GET".into(), k],
            18 => vec![
                "SETRANGE".into(),
                k,
                self.pick(&["4", "15", "17", "20"]).into(),
                self.pick(&["\x02", "z", "zzzz"]).into(),
            ],
            _ => vec!["APPEND".into(), k, self.pick(&["x", "\x7f\x7f"]).into()],
        }
    }

    /// A geospatial command over `k`: points from a fixed table (each
    /// member has its own point, so that no two members are as far from
    /// a centre and the order of equal distances never matters), searches
    /// of every shape, option and unit, and now and then a bad argument.
    fn geo(&mut self, k: String) -> Vec<String> {
        const POINTS: &[(&str, &str)] = &[
            ("13.361389", "38.115556"),
            ("15.087269", "37.502669"),
            ("13.583333", "37.316667"),
            ("12.758489", "38.788135"),
            ("14.2681", "40.8518"),
            ("2.2944", "48.8584"),
            ("-73.985656", "40.748433"),
            ("0", "0"),
            ("179.9", "-85"),
            ("-179.95", "84.9"),
            ("14.9", "37.8"),
            ("13.0001", "38.0002"),
        ];
        let member = |g: &mut Gen| -> (String, usize) {
            let i = g.rng.random_range(0..POINTS.len());
            (format!("m{i}"), i)
        };
        let unit = |g: &mut Gen| {
            g.pick(&["km", "km", "KM", "mi", "m", "ft", "km", "yd"])
                .to_owned()
        };
        let radius = |g: &mut Gen| {
            g.pick(&["50", "200", "1000", "0", "7000", "200", "100", "-1", "x"])
                .to_owned()
        };
        let centre = |g: &mut Gen| -> Vec<String> {
            match g.rng.random_range(0..16) {
                0 => vec!["200".into(), "10".into()],
                1 => vec!["abc".into(), "10".into()],
                i => vec![POINTS[i % 12].0.into(), POINTS[i % 12].1.into()],
            }
        };
        let options = |g: &mut Gen, v: &mut Vec<String>| {
            for _ in 0..g.rng.random_range(0..4) {
                match g.rng.random_range(0..16) {
                    0..=2 => v.push("WITHDIST".into()),
                    3 | 4 => v.push("WITHHASH".into()),
                    5..=7 => v.push("WITHCOORD".into()),
                    8..=10 => v.push(g.pick(&["ASC", "DESC"]).into()),
                    11..=13 => v.extend([
                        "COUNT".into(),
                        g.pick(&["1", "2", "5", "3", "0", "x"]).into(),
                    ]),
                    14 => v.push("ANY".into()),
                    _ => v.push(g.pick(&["BOGUS", "COUNT"]).into()),
                }
            }
        };
        match self.rng.random_range(0..20) {
            0..=5 => {
                let mut v = vec!["GEOADD".into(), k];
                if self.chance(0.2) {
                    v.push(self.pick(&["NX", "XX", "CH", "ch"]).into());
                }
                for _ in 0..self.rng.random_range(1..4) {
                    let (m, i) = member(self);
                    if self.chance(0.05) {
                        v.extend([
                            self.pick(&["181", "x", "0"]).into(),
                            self.pick(&["86", "1", "nan"]).into(),
                        ]);
                    } else {
                        v.extend([POINTS[i].0.into(), POINTS[i].1.into()]);
                    }
                    v.push(m);
                }
                v
            }
            6 => {
                let mut v = vec!["GEOPOS".into(), k];
                for _ in 0..self.rng.random_range(0..3) {
                    v.push(member(self).0);
                }
                v
            }
            7 => {
                let mut v = vec!["GEODIST".into(), k, member(self).0, member(self).0];
                if self.chance(0.6) {
                    v.push(unit(self));
                }
                v
            }
            8 => vec!["GEOHASH".into(), k, member(self).0, member(self).0],
            9..=13 => {
                let store = self.chance(0.25);
                let mut v = if store {
                    vec!["GEOSEARCHSTORE".into(), self.key(), k]
                } else {
                    vec!["GEOSEARCH".into(), k]
                };
                if self.chance(0.5) {
                    v.extend(["FROMMEMBER".into(), member(self).0]);
                } else {
                    v.push("FROMLONLAT".into());
                    v.extend(centre(self));
                }
                if self.chance(0.6) {
                    v.extend(["BYRADIUS".into(), radius(self), unit(self)]);
                } else {
                    v.extend(["BYBOX".into(), radius(self), radius(self), unit(self)]);
                }
                if store && self.chance(0.4) {
                    v.push("STOREDIST".into());
                }
                options(self, &mut v);
                v
            }
            _ => {
                let (name, by_member) = match self.rng.random_range(0..4) {
                    0 => ("GEORADIUS", false),
                    1 => ("GEORADIUS_RO", false),
                    2 => ("GEORADIUSBYMEMBER", true),
                    _ => ("GEORADIUSBYMEMBER_RO", true),
                };
                let mut v = vec![name.into(), k];
                if by_member {
                    v.push(member(self).0);
                } else {
                    v.extend(centre(self));
                }
                v.extend([radius(self), unit(self)]);
                options(self, &mut v);
                if !name.ends_with("_RO") && self.chance(0.3) {
                    v.extend([self.pick(&["STORE", "STOREDIST"]).into(), self.key()]);
                }
                v
            }
        }
    }

    /// A stream ID: mostly small and valid, now and then a special one
    /// or garbage. Never `*`, whose ID comes from each server's clock.
    fn stream_id(&mut self) -> String {
        if self.chance(0.1) {
            return self
                .pick(&[
                    "-",
                    "+",
                    "$",
                    ">",
                    "abc",
                    "1-",
                    "0-0",
                    "(3",
                    "18446744073709551615-18446744073709551615",
                    "2-x",
                ])
                .to_owned();
        }
        let ms = self.rng.random_range(0..self.stream_ms + 3);
        if self.chance(0.4) {
            ms.to_string()
        } else {
            format!("{ms}-{}", self.rng.random_range(0..3))
        }
    }

    /// A range bound for XRANGE, XPENDING and XAUTOCLAIM.
    fn stream_bound(&mut self) -> String {
        match self.rng.random_range(0..10) {
            0 => "-".into(),
            1 => "+".into(),
            2 => format!("({}", self.stream_id()),
            _ => self.stream_id(),
        }
    }

    /// XADD's and XTRIM's trimming options.
    fn stream_trim(&mut self, v: &mut Vec<String>) {
        let strategy = self.pick(&["MAXLEN", "MINID", "maxlen", "LIMIT"]);
        v.push(strategy.into());
        if self.chance(0.5) {
            v.push(self.pick(&["~", "=", "~"]).into());
        }
        v.push(if strategy.eq_ignore_ascii_case("minid") {
            self.stream_id()
        } else {
            self.pick(&["0", "1", "2", "3", "5", "10", "-1", "abc"])
                .into()
        });
        if self.chance(0.3) {
            v.extend([
                "LIMIT".into(),
                self.pick(&["0", "1", "2", "100", "-1"]).into(),
            ]);
        }
    }

    /// A stream command over `k`: entries, ranges, trimming, XREAD, and
    /// consumer groups (times are compared loosely: `idle` and delivery
    /// times come from each server's clock).
    fn stream(&mut self, k: String) -> Vec<String> {
        let mut k = k;
        let mut group = self.pick(&["g1", "g2", "g1"]).to_owned();
        let consumer = self.pick(&["alice", "bob", "alice"]).to_owned();
        let which = self.rng.random_range(0..30);
        if !self.groups.is_empty() && self.chance(0.8) && matches!(which, 14..=24) {
            (k, group) = self.groups[self.rng.random_range(0..self.groups.len())].clone();
        }
        if matches!(which, 14..=24) && self.chance(0.15) {
            // Groups go with their keys, which other commands delete or
            // replace: make one again now and then.
            self.groups.push((k.clone(), group.clone()));
            return vec![
                "XGROUP".into(),
                "CREATE".into(),
                k,
                group,
                "0".into(),
                "MKSTREAM".into(),
            ];
        }
        match which {
            0..=6 => {
                let mut v = vec!["XADD".into(), k];
                if self.chance(0.1) {
                    v.push("NOMKSTREAM".into());
                }
                if self.chance(0.2) {
                    self.stream_trim(&mut v);
                }
                self.stream_ms += self.rng.random_range(0..3);
                v.push(match self.rng.random_range(0..10) {
                    0..=4 => self.stream_ms.to_string(),
                    5..=6 => format!("{}-*", self.stream_ms),
                    _ => self.stream_id(),
                });
                for _ in 0..self.rng.random_range(1..3) {
                    v.extend([self.pick(&["f", "g", "name"]).into(), self.el()]);
                }
                v
            }
            7 => vec!["XLEN".into(), k],
            8..=9 => {
                let rev = self.chance(0.3);
                let mut v = vec![if rev { "XREVRANGE" } else { "XRANGE" }.into(), k];
                v.push(self.stream_bound());
                v.push(self.stream_bound());
                if self.chance(0.3) {
                    v.extend([
                        "COUNT".into(),
                        self.pick(&["1", "2", "0", "-1", "abc"]).into(),
                    ]);
                }
                v
            }
            10 => {
                let mut v = vec!["XDEL".into(), k];
                for _ in 0..self.rng.random_range(1..3) {
                    v.push(self.stream_id());
                }
                v
            }
            11 => {
                let mut v = vec!["XTRIM".into(), k];
                self.stream_trim(&mut v);
                v
            }
            12..=13 => {
                let mut v = vec!["XREAD".into()];
                if self.chance(0.3) {
                    v.extend(["COUNT".into(), self.pick(&["1", "2", "0", "-1"]).into()]);
                }
                if self.chance(0.1) {
                    v.extend(["BLOCK".into(), "10".into()]);
                }
                v.push("STREAMS".into());
                let keys = self.keys(2);
                let n = keys.len();
                v.extend(keys);
                for _ in 0..n {
                    v.push(if self.chance(0.2) {
                        "$".into()
                    } else {
                        self.stream_id()
                    });
                }
                if self.chance(0.05) {
                    v.pop();
                }
                v
            }
            14..=16 => {
                let mut v = vec!["XREADGROUP".into(), "GROUP".into(), group, consumer];
                if self.chance(0.3) {
                    v.extend(["COUNT".into(), self.pick(&["1", "2", "0"]).into()]);
                }
                if self.chance(0.2) {
                    v.push("NOACK".into());
                }
                v.extend(["STREAMS".into(), k]);
                v.push(if self.chance(0.7) {
                    ">".into()
                } else {
                    self.stream_id()
                });
                v
            }
            17..=18 => {
                let mut v = vec!["XGROUP".into()];
                match self.rng.random_range(0..9) {
                    0..=4 => {
                        self.groups.push((k.clone(), group.clone()));
                        v.extend(["CREATE".into(), k, group]);
                        v.push(if self.chance(0.3) {
                            "$".into()
                        } else {
                            self.stream_id()
                        });
                        if self.chance(0.6) {
                            v.push("MKSTREAM".into());
                        }
                        if self.chance(0.2) {
                            v.extend([
                                "ENTRIESREAD".into(),
                                self.pick(&["0", "2", "-1", "-2", "x"]).into(),
                            ]);
                        }
                    }
                    5 => {
                        v.extend(["SETID".into(), k, group]);
                        v.push(if self.chance(0.3) {
                            "$".into()
                        } else {
                            self.stream_id()
                        });
                        if self.chance(0.3) {
                            v.extend(["ENTRIESREAD".into(), self.pick(&["0", "3", "-1"]).into()]);
                        }
                    }
                    6 => v.extend(["DESTROY".into(), k, group]),
                    7 => v.extend(["CREATECONSUMER".into(), k, group, consumer]),
                    _ => v.extend(["DELCONSUMER".into(), k, group, consumer]),
                }
                v
            }
            19 => {
                let mut v = vec!["XACK".into(), k, group];
                for _ in 0..self.rng.random_range(1..3) {
                    v.push(self.stream_id());
                }
                v
            }
            20..=21 => {
                let mut v = vec!["XPENDING".into(), k, group];
                if self.chance(0.6) {
                    if self.chance(0.2) {
                        v.extend(["IDLE".into(), self.pick(&["0", "3600000"]).into()]);
                    }
                    v.push(self.stream_bound());
                    v.push(self.stream_bound());
                    v.push(self.pick(&["10", "1", "0", "-1"]).into());
                    if self.chance(0.3) {
                        v.push(consumer);
                    }
                }
                v
            }
            22 => {
                let mut v = vec!["XCLAIM".into(), k, group, consumer];
                v.push(
                    self.pick(&["0", "0", "0", "3600000", "-5", "0", "x"])
                        .into(),
                );
                for _ in 0..self.rng.random_range(1..3) {
                    v.push(self.stream_id());
                }
                for _ in 0..self.rng.random_range(0..2) {
                    match self.rng.random_range(0..9) {
                        0 | 1 => v.push("JUSTID".into()),
                        2 | 3 => v.push("FORCE".into()),
                        4 | 5 => {
                            v.extend(["RETRYCOUNT".into(), self.pick(&["3", "0", "x"]).into()])
                        }
                        6 | 7 => v.extend(["LASTID".into(), self.stream_id()]),
                        _ => v.push("BOGUS".into()),
                    }
                }
                v
            }
            23 => {
                let mut v = vec!["XAUTOCLAIM".into(), k, group, consumer];
                v.push(self.pick(&["0", "0", "3600000"]).into());
                v.push(if self.chance(0.5) {
                    self.pick(&["0-0", "-"]).into()
                } else {
                    self.stream_bound()
                });
                if self.chance(0.4) {
                    v.extend(["COUNT".into(), self.pick(&["1", "2", "5", "0", "x"]).into()]);
                }
                if self.chance(0.3) {
                    v.push("JUSTID".into());
                }
                v
            }
            24 => {
                // Mostly above the last entry, which XSETID needs.
                let id = if self.chance(0.6) {
                    format!("{}-0", self.stream_ms + 5)
                } else {
                    self.stream_id()
                };
                let mut v = vec!["XSETID".into(), k, id];
                if self.chance(0.3) {
                    v.extend([
                        "ENTRIESADDED".into(),
                        self.pick(&["0", "5", "100", "-1"]).into(),
                    ]);
                }
                if self.chance(0.2) {
                    v.extend(["MAXDELETEDID".into(), self.stream_id()]);
                }
                v
            }
            25..=26 => match self.rng.random_range(0..5) {
                0 => vec!["XINFO".into(), "STREAM".into(), k],
                1 => vec!["XINFO".into(), "STREAM".into(), k, "FULL".into()],
                2 => vec!["XINFO".into(), "GROUPS".into(), k],
                3 => vec!["XINFO".into(), "CONSUMERS".into(), k, group],
                _ => vec!["XINFO".into(), self.pick(&["HELP", "BOGUS"]).into()],
            },
            27 => vec![
                "XGROUP".into(),
                self.pick(&["HELP", "BOGUS", "CREATE"]).into(),
            ],
            _ => {
                // Enough entries for the nodes of 100 that `~` trims whole.
                let mut v = vec!["XADD".into(), k, "MAXLEN".into(), "~".into()];
                v.push(self.pick(&["0", "50", "150", "250"]).into());
                self.stream_ms += 1;
                v.push(format!("{}-*", self.stream_ms));
                v.extend(["f".into(), self.el()]);
                v
            }
        }
    }

    /// A bitmap command over `k` (SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP,
    /// BITFIELD, BITFIELD_RO), with offsets mostly within a few bytes
    /// and now and then a bad one.
    /// SORT or SORT_RO of a list, a set or a sorted set (now and then
    /// another type), with options in any order. `BY nosort` comes with
    /// STORE only: without it a set comes in its hash table's order,
    /// which is Redis's own (the edge cases cover lists and sorted sets).
    fn sort(&mut self) -> Vec<String> {
        self.family = self
            .pick(&["l", "t", "z", "l", "t", "z", "s"])
            .chars()
            .next()
            .unwrap_or('l');
        let ro = self.chance(0.3);
        let key = self.key();
        // Redis converts a sorted set it sorts to its big encoding, as
        // one past 128 members, which keeps `-0` (see `big`).
        if self.family == 'z' || KEYS.contains(&key.as_str()) {
            self.big.insert(key.clone());
        }
        let mut v = vec![if ro { "SORT_RO" } else { "SORT" }.into(), key];
        let mut store = false;
        let mut nosort = false;
        for _ in 0..self.rng.random_range(0..4) {
            match self.rng.random_range(0..10) {
                0..=2 => v.push(self.pick(&["ALPHA", "alpha"]).into()),
                3 => v.push("DESC".into()),
                4 => v.push("ASC".into()),
                5..=6 => {
                    v.push("LIMIT".into());
                    v.push(self.pick(&["0", "1", "2", "-1", "5", "x"]).into());
                    v.push(self.pick(&["0", "1", "2", "-1", "3", "100"]).into());
                }
                7 if !ro => store = true,
                8 => nosort = true,
                _ => v.push(self.pick(&["BAD", "LIMIT"]).into()),
            }
        }
        if nosort && !ro {
            v.extend(["BY".into(), "nosort".into()]);
            store = true;
        }
        if store {
            v.push("STORE".into());
            v.push(self.key());
        }
        v
    }

    /// LCS of two strings (or of a missing key, or another type), with
    /// its options in any order, now and then a wrong one.
    fn lcs(&mut self, k: String) -> Vec<String> {
        let mut v = vec!["LCS".into(), k, self.key()];
        for _ in 0..self.rng.random_range(0..4) {
            match self.rng.random_range(0..9) {
                0..=1 => v.push(self.pick(&["IDX", "idx"]).into()),
                2..=3 => v.push("WITHMATCHLEN".into()),
                4..=5 => {
                    v.push("MINMATCHLEN".into());
                    v.push(self.pick(&["0", "1", "2", "3", "-1", "abc"]).into());
                }
                6 => v.push("LEN".into()),
                7 => v.push("MINMATCHLEN".into()),
                _ => v.push("BAD".into()),
            }
        }
        v
    }

    fn bits(&mut self, k: String) -> Vec<String> {
        let offset = |g: &mut Gen| -> String {
            if g.chance(0.05) {
                g.pick(&["-1", "4294967296", "abc", "#3", ""]).to_owned()
            } else {
                g.rng.random_range(0..80).to_string()
            }
        };
        let index = |g: &mut Gen| -> String {
            if g.chance(0.1) {
                g.pick(&["-100", "100", "x", "9223372036854775807"])
                    .to_owned()
            } else {
                g.rng.random_range(-12i64..12).to_string()
            }
        };
        match self.rng.random_range(0..9) {
            0 | 1 => vec![
                "SETBIT".into(),
                k,
                offset(self),
                self.pick(&["1", "1", "0", "2", "-1", "x"]).into(),
            ],
            2 => vec!["GETBIT".into(), k, offset(self)],
            3 => {
                let mut v = vec!["BITCOUNT".into(), k];
                match self.rng.random_range(0..4) {
                    0 => {}
                    1 => v.push(index(self)),
                    _ => {
                        v.push(index(self));
                        v.push(index(self));
                        if self.chance(0.5) {
                            v.push(self.pick(&["BIT", "BYTE", "bit", "WORD"]).into());
                        }
                    }
                }
                v
            }
            4 => {
                let mut v = vec!["BITPOS".into(), k, self.pick(&["0", "1", "1", "2"]).into()];
                for _ in 0..self.rng.random_range(0..3) {
                    v.push(index(self));
                }
                if v.len() == 5 && self.chance(0.5) {
                    v.push(self.pick(&["BIT", "BYTE", "bits"]).into());
                }
                v
            }
            5 => {
                let op = self.pick(&["AND", "OR", "XOR", "NOT", "not", "NAND"]);
                let mut v = vec!["BITOP".into(), op.into(), self.key()];
                let n = if op.eq_ignore_ascii_case("not") && self.chance(0.8) {
                    1
                } else {
                    self.rng.random_range(1..4)
                };
                for _ in 0..n {
                    v.push(self.key());
                }
                v
            }
            _ => {
                let ro = self.chance(0.2);
                let mut v = vec![if ro { "BITFIELD_RO" } else { "BITFIELD" }.into(), k];
                for _ in 0..self.rng.random_range(0..4) {
                    let kind = self.pick(&[
                        "i8", "u8", "i5", "u1", "i64", "u63", "u64", "i16", "x8", "u4",
                    ]);
                    match self.rng.random_range(0..5) {
                        0 => v.extend([
                            "OVERFLOW".into(),
                            self.pick(&["WRAP", "SAT", "FAIL", "fail", "BAD"]).into(),
                        ]),
                        1 | 2 => v.extend(["GET".into(), kind.into(), offset(self)]),
                        3 => v.extend(["SET".into(), kind.into(), offset(self), self.int()]),
                        _ => v.extend(["INCRBY".into(), kind.into(), offset(self), self.int()]),
                    }
                }
                v
            }
        }
    }

    /// A blocking pop (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP; or
    /// BZPOPMIN, BZPOPMAX, BZMPOP) with a timeout of 10 ms, so that Redis
    /// answers nil soon when the keys are empty, or now and then a bad
    /// timeout (never 0: Redis would wait for ever).
    fn blocking_pop(&mut self, k: String, list: bool) -> Vec<String> {
        let timeout = if self.chance(0.9) {
            "0.01".to_owned()
        } else {
            self.pick(&["abc", "-1", "nan", "inf", "-0.0001x", "1e400", ""])
                .to_owned()
        };
        let keys = self.keys(2);
        if list {
            // BLMPOP twice as often as each other: it is the one that can
            // fail in five ways, and each run must see it succeed.
            match self.rng.random_range(0..6) {
                0 | 1 => {
                    let mut v = vec![self.pick(&["BLPOP", "BRPOP"]).to_owned(), k];
                    v.extend(keys);
                    v.push(timeout);
                    v
                }
                2 => vec![
                    "BLMOVE".into(),
                    k,
                    self.key(),
                    self.pick(&["LEFT", "RIGHT", "left", "UP"]).into(),
                    self.pick(&["LEFT", "RIGHT"]).into(),
                    timeout,
                ],
                3 => vec!["BRPOPLPUSH".into(), k, self.key(), timeout],
                _ => {
                    // The family's key first, so that it pops now and then.
                    let keys: Vec<String> = std::iter::once(k).chain(keys).take(2).collect();
                    let mut v = vec!["BLMPOP".into(), timeout, self.numkeys(keys.len())];
                    v.extend(keys);
                    // Mostly valid: BLMPOP is rare among the commands, and
                    // each run must see it succeed (LMPOP meets the errors).
                    v.push(self.pick(&["LEFT", "RIGHT", "LEFT", "right", "MIN"]).into());
                    if self.chance(0.5) {
                        v.extend([
                            "COUNT".into(),
                            self.pick(&["1", "2", "3", "1", "abc"]).into(),
                        ]);
                    }
                    v
                }
            }
        } else if self.chance(0.6) {
            let mut v = vec![self.pick(&["BZPOPMIN", "BZPOPMAX"]).to_owned(), k];
            v.extend(keys);
            v.push(timeout);
            v
        } else {
            let mut v = vec!["BZMPOP".into(), timeout, self.numkeys(keys.len())];
            v.extend(keys);
            v.push(self.pick(&["MIN", "MAX", "LEFT"]).into());
            if self.chance(0.5) {
                v.extend(["COUNT".into(), self.pick(&["1", "2", "0", "abc"]).into()]);
            }
            v
        }
    }

    /// The count before a command's keys: mostly right, sometimes wrong.
    fn numkeys(&mut self, right: usize) -> String {
        if self.chance(0.9) {
            right.to_string()
        } else {
            self.pick(&["0", "-1", "5", "abc"]).into()
        }
    }

    /// ZUNION, ZINTER, ZDIFF, their STORE variants or ZINTERCARD, over
    /// sorted sets and now and then a set (read with scores of 1), with
    /// weights that meet infinities.
    fn zalgebra(&mut self) -> Vec<String> {
        let name = self.pick(&[
            "ZUNION",
            "ZINTER",
            "ZDIFF",
            "ZUNIONSTORE",
            "ZINTERSTORE",
            "ZDIFFSTORE",
            "ZINTERCARD",
        ]);
        let mut v = vec![name.to_owned()];
        if name.ends_with("STORE") {
            v.push(self.key());
        }
        let n = self.rng.random_range(1..=3);
        let keys: Vec<String> = (0..n)
            .map(|_| {
                if self.chance(0.15) {
                    format!("t{}", self.rng.random_range(0..3))
                } else {
                    self.key()
                }
            })
            .collect();
        v.push(self.numkeys(n));
        v.extend(keys);
        // Mostly options the command takes, now and then any.
        let combines = !name.starts_with("ZDIFF") && name != "ZINTERCARD";
        for _ in 0..self.rng.random_range(0..3) {
            let fits = self.chance(0.85);
            let option = self.rng.random_range(0..4);
            match option {
                0 if combines || !fits => {
                    v.push("WEIGHTS".into());
                    let weights = if self.chance(0.9) { n } else { n - 1 };
                    for _ in 0..weights {
                        v.push(
                            self.pick(&[
                                "1", "2", "-1", "0", "0.5", "inf", "-inf", "nan", "abc", "1e308",
                            ])
                            .into(),
                        );
                    }
                }
                1 if combines || !fits => v.extend([
                    "AGGREGATE".into(),
                    self.pick(&["SUM", "MIN", "MAX", "max", "AVG"]).into(),
                ]),
                2 if (!name.ends_with("STORE") && name != "ZINTERCARD") || !fits => {
                    v.push("WITHSCORES".into())
                }
                3 if name == "ZINTERCARD" || !fits => v.extend([
                    "LIMIT".into(),
                    self.pick(&["0", "1", "2", "-1", "abc"]).into(),
                ]),
                _ if !fits => v.push("BAD".into()),
                _ => {}
            }
        }
        v
    }

    /// A score for ZADD or ZINCRBY on `key`. Never `-0` once the key may
    /// have left Redis's compact encoding: Redis then keeps `-0`, where we
    /// (and its compact encoding) store 0; a member can reach a big set by
    /// COPY or RENAME too, so "may" means any key once any set was big.
    fn score_for(&mut self, _key: &str) -> String {
        let score = self.pick(FLOATS);
        if score == "-0" && !self.big.is_empty() {
            "1".into()
        } else {
            score.into()
        }
    }

    fn zrange(&mut self, k: String) -> Vec<String> {
        let lex_key = self.pick(LEX_KEYS).to_owned();
        match self.rng.random_range(0..7) {
            0 => vec!["ZRANGE".into(), k, self.int(), self.int()],
            1 => {
                let mut v = vec!["ZRANGE".into(), k, self.int(), self.int()];
                if self.chance(0.5) {
                    v.push("WITHSCORES".into());
                }
                if self.chance(0.3) {
                    v.push("REV".into());
                }
                v
            }
            2 => {
                let mut v = vec![
                    "ZRANGE".into(),
                    k,
                    self.pick(BOUNDS).into(),
                    self.pick(BOUNDS).into(),
                    "BYSCORE".into(),
                ];
                if self.chance(0.4) {
                    v.push("REV".into());
                }
                if self.chance(0.4) {
                    v.push("WITHSCORES".into());
                }
                if self.chance(0.4) {
                    v.extend([
                        "LIMIT".into(),
                        self.pick(&["0", "1", "-1"]).into(),
                        self.pick(&["1", "2", "-1", "0"]).into(),
                    ]);
                }
                v
            }
            3 => {
                let mut v = vec![
                    "ZRANGE".into(),
                    lex_key,
                    self.pick(LEX).into(),
                    self.pick(LEX).into(),
                    "BYLEX".into(),
                ];
                if self.chance(0.4) {
                    v.push("REV".into());
                }
                if self.chance(0.2) {
                    v.push("WITHSCORES".into());
                }
                if self.chance(0.3) {
                    v.extend(["LIMIT".into(), "1".into(), "2".into()]);
                }
                v
            }
            4 => {
                let mut v = vec![
                    self.pick(&["ZRANGEBYSCORE", "ZREVRANGEBYSCORE"]).into(),
                    k,
                    self.pick(BOUNDS).into(),
                    self.pick(BOUNDS).into(),
                ];
                if self.chance(0.5) {
                    v.push("WITHSCORES".into());
                }
                if self.chance(0.3) {
                    v.extend([
                        "LIMIT".into(),
                        self.pick(&["0", "1"]).into(),
                        self.pick(&["1", "-1"]).into(),
                    ]);
                }
                v
            }
            5 => {
                let mut v = vec![
                    self.pick(&["ZRANGEBYLEX", "ZREVRANGEBYLEX"]).into(),
                    lex_key,
                    self.pick(LEX).into(),
                    self.pick(LEX).into(),
                ];
                if self.chance(0.3) {
                    v.extend(["LIMIT".into(), "0".into(), "2".into()]);
                }
                if self.chance(0.1) {
                    v.push("WITHSCORES".into());
                }
                v
            }
            _ => {
                let mut v = vec!["ZREVRANGE".into(), k, self.int(), self.int()];
                if self.chance(0.5) {
                    v.push("WITHSCORES".into());
                }
                if self.chance(0.1) {
                    v.extend(["LIMIT".into(), "0".into(), "1".into()]);
                }
                if self.chance(0.05) {
                    v.push(self.pick(&["REV", "BYSCORE", "BYLEX"]).into());
                }
                v
            }
        }
    }
}

/// The key a generated command works on (its second word).
fn k_big(v: &[String]) -> String {
    v.get(1).cloned().unwrap_or_else(|| "a".to_owned())
}

/// Scripts for EVAL: (source, keys, arguments). Each touches only its
/// declared keys (a cluster refuses others) and answers the same whatever
/// order Lua walks a table in.
const SCRIPTS: &[(&str, usize, usize)] = &[
    ("return redis.call('GET', KEYS[1])", 1, 0),
    // PFCOUNT caches its count: a write for EVAL_RO, as in Redis 7.0.
    ("return redis.pcall('PFCOUNT', KEYS[1])", 1, 0),
    // Streams: a read at once, a group read, and BLOCK (refused).
    (
        "return redis.pcall('XADD', KEYS[1], '5-*', 'f', ARGV[1])",
        1,
        1,
    ),
    (
        "return redis.pcall('XREAD', 'COUNT', 2, 'STREAMS', KEYS[1], '0')",
        1,
        0,
    ),
    (
        "redis.pcall('XGROUP', 'CREATE', KEYS[1], 'lua', '0') return redis.pcall('XREADGROUP', 'GROUP', 'lua', 'c', 'STREAMS', KEYS[1], '>')",
        1,
        0,
    ),
    (
        "return redis.pcall('XREAD', 'BLOCK', 10, 'STREAMS', KEYS[1], '$')",
        1,
        0,
    ),
    ("return redis.call('INCR', KEYS[1])", 1, 0),
    ("return redis.pcall('LPUSH', KEYS[1], ARGV[1])", 1, 1),
    ("return redis.call('SET', KEYS[1], ARGV[1], 'GET')", 1, 1),
    (
        "local r = redis.call('HGETALL', KEYS[1]) table.sort(r) return r",
        1,
        0,
    ),
    ("return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])", 1, 2),
    ("return redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])", 1, 2),
    (
        "return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')",
        1,
        0,
    ),
    ("return redis.call('ZSCORE', KEYS[1], ARGV[1])", 1, 1),
    (
        "redis.setresp(3) return redis.call('ZSCORE', KEYS[1], ARGV[1])",
        1,
        1,
    ),
    (
        "redis.setresp(3) local r = redis.call('HGETALL', KEYS[1]) local n = 0 for _ in pairs(r.map) do n = n + 1 end return n",
        1,
        0,
    ),
    (
        "redis.setresp(3) return redis.call('GET', KEYS[1]) == nil",
        1,
        0,
    ),
    ("return redis.call('GET', KEYS[1]) == false", 1, 0),
    ("return redis.call('LRANGE', KEYS[1], 0, -1)", 1, 0),
    (
        "local m = redis.call('SMEMBERS', KEYS[1]) table.sort(m) return m",
        1,
        0,
    ),
    ("return redis.call('TYPE', KEYS[1])", 1, 0),
    ("return redis.call('EXISTS', KEYS[1], KEYS[2])", 2, 0),
    (
        "return redis.call('COPY', KEYS[1], KEYS[2], 'REPLACE')",
        2,
        0,
    ),
    ("return {KEYS[1], ARGV[1], #KEYS, #ARGV}", 1, 1),
    (
        "return {1, 'x', 3.99, -2.5, true, false, {2, {3}}, nil, 'after nil'}",
        0,
        0,
    ),
    ("return {err = 'MYERR custom'}", 0, 0),
    ("return {err = 5}", 0, 0),
    ("return {ok = 'FINE'}", 0, 0),
    ("return redis.status_reply('DONE')", 0, 0),
    ("return redis.error_reply('E failed')", 0, 0),
    ("return {double = 2.5}", 0, 0),
    ("return 1e20", 0, 0),
    ("return 0/0", 0, 0),
    ("return redis.call('GET')", 0, 0),
    ("return redis.call('NOPE', 'x')", 0, 0),
    ("return redis.call()", 0, 0),
    ("return redis.call('SET', KEYS[1], {})", 1, 0),
    ("return redis.call('SET', KEYS[1], true)", 1, 0),
    ("return redis.call('SET', KEYS[1], 1.5)", 1, 0),
    ("return redis.call('MULTI')", 0, 0),
    ("return redis.call('EVAL', 'return 1', 0)", 0, 0),
    ("local x = 1\nreturn redis.call('LPUSH', KEYS[1])", 1, 0),
    (
        "local ok, e = pcall(redis.call, 'INCR', KEYS[1]) return {ok and 1 or 0, e}",
        1,
        0,
    ),
    (
        "local e = redis.pcall('INCR', KEYS[1]) return type(e)",
        1,
        0,
    ),
    ("error('boom')", 0, 0),
    ("error({err = 'TABLE raised'})", 0, 0),
    ("local t = nil\nreturn t.field", 0, 0),
    ("return undefined_global", 0, 0),
    ("x = 1", 0, 0),
    ("string.custom = 1", 0, 0),
    ("rawset(_G, 'y', 1)", 0, 0),
    ("return 1 +", 0, 0),
    ("return type(os)", 0, 0),
    ("return type(print)", 0, 0),
    ("return redis.setresp(4)", 0, 0),
    ("return redis.sha1hex(ARGV[1])", 0, 1),
    ("return redis.sha1hex()", 0, 0),
    ("return cjson.encode({1, 2, 'x/y', {true, false}})", 0, 0),
    ("return cjson.encode({})", 0, 0),
    ("return cjson.encode({name = ARGV[1]})", 0, 1),
    (
        "local t = cjson.decode('[1, 2.5, \"s\", null, {\"a\": [true]}]') return {t[1], t[3], t[4] == cjson.null, t[5].a[1]}",
        0,
        0,
    ),
    (
        "return {bit.band(ARGV[1], 255), bit.bor(1, 2, 4), bit.bxor(5, 3), bit.lshift(1, 40), bit.rshift(-1, 28), bit.arshift(-256, 4), bit.tohex(255), bit.tohex(-1, -4), bit.bnot(0), bit.tobit(4294967297)}",
        0,
        1,
    ),
    (
        "return {string.rep('ab', 3), string.format('%5.2f', 3.14159), table.concat({'a', 'b'}, ','), math.floor(-3.5), tostring(1/3)}",
        0,
        0,
    ),
    ("return tonumber(ARGV[1])", 0, 1),
    (
        "return redis.call('TIME') ~= nil and redis.call('PING') and redis.call('ECHO', 'hi')",
        0,
        0,
    ),
    (
        "return redis.REDIS_VERSION ~= nil and redis.LOG_WARNING",
        0,
        0,
    ),
    ("return loadstring('return 5')()", 0, 0),
    (
        "return cmsgpack.pack(1, -1, 127, 128, 255, 256, 65536, 4294967296, -33, -129, -32769, -2147483649)",
        0,
        0,
    ),
    (
        "return cmsgpack.pack(1.5, 0.1, true, false, nil, {1, 2, 3}, {}, {a = 1}, {1, nil, 3}, 1e20, 2^63, ARGV[1])",
        0,
        1,
    ),
    (
        "return cmsgpack.pack(string.rep('b', 40), string.rep('c', 300), string.rep('d', 70000))",
        0,
        0,
    ),
    (
        "local t = {cmsgpack.unpack(cmsgpack.pack(1, 'x', {1, {2}}, 2.5, -7, {k = 'v'}))} return {t[1], t[2], t[3][2][1], tostring(t[4]), t[5], t[6].k}",
        0,
        0,
    ),
    (
        "return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 1)}",
        0,
        0,
    ),
    (
        "return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2)}",
        0,
        0,
    ),
    ("return {cmsgpack.unpack(ARGV[1])}", 0, 1),
    ("return cmsgpack.pack()", 0, 0),
    ("return cmsgpack.unpack(string.char(0xcd, 1))", 0, 0),
    ("return cmsgpack.unpack(string.char(0xc1))", 0, 0),
    (
        "local t = {} for i = 1, 20 do t = {t} end return cmsgpack.pack(t)",
        0,
        0,
    ),
    ("return redis.log()", 0, 0),
    ("return redis.log(redis.LOG_WARNING)", 0, 0),
    ("return redis.log(99, 'x')", 0, 0),
    ("return redis.log('a', 'x')", 0, 0),
    (
        "return redis.log(redis.LOG_NOTICE, 'logged', ARGV[1])",
        0,
        1,
    ),
    ("return cjson.encode(1, 2)", 0, 0),
    ("return cjson.decode()", 0, 0),
];
