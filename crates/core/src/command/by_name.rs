//! Rows of a command table found by name, in any case: the data commands'
//! table here, and the RESP listener's own commands in the server. A name
//! is looked up on every request, so by a hash of its lower-cased bytes
//! (a binary search's string comparisons came to a tenth of the master's
//! instructions for pipelined GETs: docs/performance.md).

use foldhash::fast::FixedState;
use hashbrown::HashMap;

/// Longest name any table may hold: names are lower-cased on the stack.
pub const MAX_NAME_BYTES: usize = 32;

/// A table's rows by name.
pub struct ByName<T: 'static> {
    rows: HashMap<&'static [u8], &'static T, FixedState>,
}

impl<T> ByName<T> {
    /// `rows` by `name`, which must be lower case and at most
    /// [`MAX_NAME_BYTES`] long (the tables' own tests check theirs).
    pub fn new(rows: &'static [T], name: impl Fn(&T) -> &'static str) -> Self {
        ByName {
            rows: rows.iter().map(|row| (name(row).as_bytes(), row)).collect(),
        }
    }

    /// The row named `name`, in any case.
    pub fn get(&self, name: &[u8]) -> Option<&'static T> {
        if name.len() > MAX_NAME_BYTES {
            return None;
        }
        // Lower-cased on the stack: a heap copy of the name on each lookup
        // showed in the master's profile (docs/performance.md, "Commands
        // over RESP").
        let mut buf = [0u8; MAX_NAME_BYTES];
        let lower = &mut buf[..name.len()];
        lower.copy_from_slice(name);
        lower.make_ascii_lowercase();
        self.rows.get(&*lower).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static ROWS: &[(&str, u8)] = &[("get", 1), ("hello", 2), ("a", 3)];

    #[test]
    fn rows_are_found_in_any_case_and_nothing_else_is() {
        let by_name = ByName::new(ROWS, |row| row.0);
        for (name, n) in ROWS {
            assert_eq!(by_name.get(name.as_bytes()).map(|r| r.1), Some(*n));
            let upper = name.to_ascii_uppercase();
            assert_eq!(by_name.get(upper.as_bytes()).map(|r| r.1), Some(*n));
        }
        assert_eq!(by_name.get(b"HeLLo").map(|r| r.1), Some(2));
        for name in [&b""[..], b"ge", b"gets", b"b", &[b'g'; 40], "é".as_bytes()] {
            assert!(by_name.get(name).is_none(), "{name:?}");
        }
    }
}
