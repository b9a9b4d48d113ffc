//! The commands `--commands` measures through the HTTP command endpoint
//! (`POST /`, a JSON array answered with `{"result": ...}`), and the
//! arguments each one sends.
//!
//! The shapes mirror the custom commands `bench/run.sh --cases commands`
//! gives redis-benchmark (`LPUSH bench-list:__rand_int__ <value>` ...), so
//! that both sides do the same work: every key, field and member is drawn
//! from `--keys` values, and a list, set, hash or sorted set grows by about
//! requests / keys elements in a run instead of all of them landing on one
//! key (which redis-benchmark's own `-t lpush,sadd,hset,zadd` tests do).

use serde::Serialize;

/// One command a run can measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Command {
    /// `SET PREFIX<k> <value>`
    Set,
    /// `GET PREFIX<k>`: a nil answer is a miss.
    Get,
    /// `INCR PREFIXcounter:<k>`
    Incr,
    /// `LPUSH PREFIXlist:<k> <value>`
    Lpush,
    /// `SADD PREFIXset:<k> element:<m>`
    Sadd,
    /// `HSET PREFIXhash:<k> element:<m> <value>`
    Hset,
    /// `ZADD PREFIXzset:<k> <score> element:<m>`
    Zadd,
}

impl Command {
    /// Every command, in the order a run measures them: redis-benchmark's
    /// order, so that SET fills the keys GET then reads.
    pub const ALL: [Command; 7] = [
        Command::Set,
        Command::Get,
        Command::Incr,
        Command::Lpush,
        Command::Sadd,
        Command::Hset,
        Command::Zadd,
    ];

    /// The command's name, as sent and as reported.
    pub fn name(self) -> &'static str {
        match self {
            Command::Set => "SET",
            Command::Get => "GET",
            Command::Incr => "INCR",
            Command::Lpush => "LPUSH",
            Command::Sadd => "SADD",
            Command::Hset => "HSET",
            Command::Zadd => "ZADD",
        }
    }

    /// Parses one name, in any case: `incr`, `HSET`.
    pub fn parse(name: &str) -> Result<Command, String> {
        let name = name.trim();
        Command::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                let names: Vec<&str> = Command::ALL.iter().map(|c| c.name()).collect();
                format!(
                    "unknown command `{name}` ({})",
                    names.join(", ").to_lowercase()
                )
            })
    }

    /// The commands named, each once, in `ALL`'s order.
    pub fn in_run_order(named: &[Command]) -> Vec<Command> {
        Command::ALL
            .into_iter()
            .filter(|c| named.contains(c))
            .collect()
    }

    /// The key of number `k`: the commands on other types have key spaces
    /// of their own, so that no key is asked to hold two types.
    pub fn key(self, prefix: &str, k: u64) -> String {
        match self {
            Command::Set | Command::Get => format!("{prefix}{k}"),
            Command::Incr => format!("{prefix}counter:{k}"),
            Command::Lpush => format!("{prefix}list:{k}"),
            Command::Sadd => format!("{prefix}set:{k}"),
            Command::Hset => format!("{prefix}hash:{k}"),
            Command::Zadd => format!("{prefix}zset:{k}"),
        }
    }

    /// The JSON body of one request: key number `k`, member (or field)
    /// number `m`, `score` for ZADD and `value` for the commands that write
    /// one.
    pub fn body(self, prefix: &str, k: u64, m: u64, score: u64, value: &str) -> String {
        let key = self.key(prefix, k);
        let member = format!("element:{m}");
        let score = score.to_string();
        let args: Vec<&str> = match self {
            Command::Set => vec![self.name(), &key, value],
            Command::Get | Command::Incr => vec![self.name(), &key],
            Command::Lpush => vec![self.name(), &key, value],
            Command::Sadd => vec![self.name(), &key, &member],
            Command::Hset => vec![self.name(), &key, &member, value],
            Command::Zadd => vec![self.name(), &key, &score, &member],
        };
        serde_json::to_string(&args).expect("strings serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_in_any_case_and_run_in_one_order() {
        let named: Vec<Command> = ["zadd", "INCR", "get", "Set", "zadd"]
            .into_iter()
            .map(|n| Command::parse(n).unwrap())
            .collect();
        assert_eq!(
            Command::in_run_order(&named),
            vec![Command::Set, Command::Get, Command::Incr, Command::Zadd]
        );
        assert!(Command::parse("rpush").is_err());
        assert!(Command::parse("").is_err());
    }

    #[test]
    fn bodies_are_the_commands_as_json_arrays() {
        assert_eq!(
            Command::Hset.body("b-", 3, 7, 9, "v"),
            r#"["HSET","b-hash:3","element:7","v"]"#
        );
        assert_eq!(
            Command::Zadd.body("b-", 3, 7, 9, "v"),
            r#"["ZADD","b-zset:3","9","element:7"]"#
        );
        assert_eq!(
            Command::Incr.body("a\"", 0, 1, 2, "v"),
            r#"["INCR","a\"counter:0"]"#
        );
        assert_eq!(Command::Get.body("b-", 5, 0, 0, "v"), r#"["GET","b-5"]"#);
    }
}
