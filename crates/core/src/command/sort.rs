//! SORT and SORT_RO: their options and parsers, and where SORT's STORE key
//! is among its arguments.
//!
//! They run as Redis 7.0 runs them in cluster mode: `BY` with a pattern
//! (a `*` in it) and `GET` read other keys, which a cluster cannot promise
//! to hold on the sorted key's node, so both are refused while parsing, in
//! argument order, with Redis Cluster's words. `BY` with a constant
//! (`BY nosort`) stays: it asks for no sorting at all.

use bytes::Bytes;

use super::command::Command;
use super::error::CommandError;
use super::number::parse_i64;

type Result<T> = std::result::Result<T, CommandError>;

/// How to sort, and where to put the result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SortOptions {
    /// `BY` a constant: the value's own order (a list's, a sorted set's by
    /// score), no sorting.
    pub dont_sort: bool,
    /// LIMIT offset count.
    pub limit: Option<(i64, i64)>,
    /// DESC.
    pub desc: bool,
    /// ALPHA: compare bytes, not numbers.
    pub alpha: bool,
    /// STORE: the key that gets the result as a list (SORT only).
    pub store: Option<Bytes>,
    /// Called from a script, where Redis sorts a set even under `BY
    /// nosort`, so that the reply does not depend on the set's layout.
    pub from_script: bool,
}

fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// SORT key [BY constant] [LIMIT offset count] [ASC|DESC] [ALPHA] [STORE destination].
pub(super) fn sort(a: &[Bytes]) -> Result<Command> {
    parse(a, true)
}

/// SORT_RO: SORT without STORE.
pub(super) fn sort_ro(a: &[Bytes]) -> Result<Command> {
    parse(a, false)
}

/// Options in any order, any number of times, the last one winning, as
/// Redis's `sortCommandGeneric` reads them: the first bad one is the
/// error.
fn parse(a: &[Bytes], may_store: bool) -> Result<Command> {
    let mut options = SortOptions::default();
    let mut j = 2;
    while j < a.len() {
        let left = a.len() - j - 1;
        let word = &a[j];
        if is(word, "ASC") {
            options.desc = false;
        } else if is(word, "DESC") {
            options.desc = true;
        } else if is(word, "ALPHA") {
            options.alpha = true;
        } else if is(word, "LIMIT") && left >= 2 {
            let number = |arg: &[u8]| parse_i64(arg).ok_or(CommandError::NotInteger);
            options.limit = Some((number(&a[j + 1])?, number(&a[j + 2])?));
            j += 2;
        } else if is(word, "STORE") && left >= 1 && may_store {
            options.store = Some(a[j + 1].clone());
            j += 1;
        } else if is(word, "BY") && left >= 1 {
            if a[j + 1].contains(&b'*') {
                return Err(CommandError::Other(
                    "BY option of SORT denied in Cluster mode.",
                ));
            }
            options.dont_sort = true;
            j += 1;
        } else if is(word, "GET") && left >= 1 {
            return Err(CommandError::Other(
                "GET option of SORT denied in Cluster mode.",
            ));
        } else {
            return Err(CommandError::Syntax);
        }
        j += 1;
    }
    Ok(Command::Sort {
        key: a[1].clone(),
        options,
    })
}

/// The position of SORT's STORE key: the options walked as the parser
/// walks them (LIMIT, BY, GET and STORE take their arguments), the last
/// STORE counting. Redis's own `sortGetKeys` does not skip STORE's
/// argument, so `SORT k STORE limit STORE x` would be routed by `limit`
/// and write `x`; here the key routed, locked and written is the same.
pub fn store_key(args: &[Bytes]) -> Option<usize> {
    let mut found = None;
    let mut i = 2;
    while i < args.len() {
        let left = args.len() - i - 1;
        let word = &args[i];
        if is(word, "LIMIT") && left >= 2 {
            i += 2;
        } else if (is(word, "GET") || is(word, "BY")) && left >= 1 {
            i += 1;
        } else if is(word, "STORE") && left >= 1 {
            found = Some(i + 1);
            i += 1;
        }
        i += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn options(line: &str) -> Result<SortOptions> {
        match sort(&args(line))? {
            Command::Sort { options, .. } => Ok(options),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn options_repeat_and_the_last_one_wins() {
        let o = options("SORT k DESC ASC LIMIT 0 1 LIMIT 2 3 ALPHA STORE a STORE b").unwrap();
        assert!(!o.desc && o.alpha && !o.dont_sort);
        assert_eq!(o.limit, Some((2, 3)));
        assert_eq!(o.store.as_deref(), Some(&b"b"[..]));
        assert!(options("SORT k by nosort").unwrap().dont_sort);
    }

    #[test]
    fn patterns_are_refused_as_redis_cluster_refuses_them_in_argument_order() {
        let by = "ERR BY option of SORT denied in Cluster mode.";
        let get = "ERR GET option of SORT denied in Cluster mode.";
        let cases = [
            ("SORT k BY w_*", by),
            ("SORT k BY {k}w_*", by),
            ("SORT k GET #", get),
            ("SORT k BY nosort GET #", get),
            ("SORT k BY w_* GET #", by),
            ("SORT k GET # BY w_*", get),
            (
                "SORT k LIMIT x y BY w_*",
                "ERR value is not an integer or out of range",
            ),
            ("SORT k badopt BY w_*", "ERR syntax error"),
            ("SORT k LIMIT 0", "ERR syntax error"),
            ("SORT k STORE", "ERR syntax error"),
        ];
        for (line, error) in cases {
            assert_eq!(options(line).unwrap_err().to_string(), error, "{line}");
        }
        assert_eq!(
            sort_ro(&args("SORT_RO k STORE x")).unwrap_err().to_string(),
            "ERR syntax error"
        );
    }

    #[test]
    fn the_store_key_is_found_past_the_options_arguments() {
        assert_eq!(store_key(&args("SORT k STORE d")), Some(3));
        assert_eq!(store_key(&args("SORT k BY store STORE d")), Some(5));
        assert_eq!(
            store_key(&args("SORT k LIMIT store store STORE d")),
            Some(6)
        );
        assert_eq!(store_key(&args("SORT k STORE a DESC STORE b")), Some(6));
        assert_eq!(store_key(&args("SORT k STORE")), None);
        assert_eq!(store_key(&args("SORT k")), None);
    }

    /// The key finder and the parser agree on the key written, whatever
    /// words the keys are named (a review found `SORT L STORE limit
    /// STORE X` routed by `limit` and writing `X`).
    #[test]
    fn the_key_found_is_the_key_the_parser_stores_into() {
        let words = [
            "STORE", "LIMIT", "BY", "GET", "limit", "store", "by", "0", "1", "DESC", "x",
        ];
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize
        };
        let mut stored = 0;
        for _ in 0..20_000 {
            let mut line = vec!["SORT".to_owned(), "k".to_owned()];
            for _ in 0..next() % 7 {
                line.push(words[next() % words.len()].to_owned());
            }
            let a: Vec<Bytes> = line
                .iter()
                .map(|w| Bytes::copy_from_slice(w.as_bytes()))
                .collect();
            if let Ok(Command::Sort { options, .. }) = sort(&a) {
                stored += usize::from(options.store.is_some());
                assert_eq!(
                    options.store,
                    store_key(&a).map(|i| a[i].clone()),
                    "{line:?}"
                );
            }
        }
        assert!(stored > 100, "{stored} parsed STOREs");
        assert_eq!(store_key(&args("SORT L STORE limit STORE X")), Some(5));
    }
}
