//! The memory limit this process runs under, from its cgroup, so that
//! `distcache_memory_limit_bytes` can tell an operator (and an alert) how
//! close the resident memory is to an out-of-memory kill. Containers see
//! their own cgroup at the root of `/sys/fs/cgroup`.

use std::path::Path;

/// cgroup v2's limit file, and v1's.
const LIMIT_FILES: [&str; 2] = [
    "/sys/fs/cgroup/memory.max",
    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
];

/// Limits at or above this are "no limit" (cgroup v1 writes a page-rounded
/// `i64::MAX` rather than a word).
const UNLIMITED_FROM: u64 = 1 << 60;

/// The memory limit of this process's cgroup, if it has one.
pub fn memory_limit_bytes() -> Option<u64> {
    LIMIT_FILES
        .iter()
        .filter_map(|f| std::fs::read_to_string(Path::new(f)).ok())
        .find_map(|text| parse_limit(&text))
}

/// Parses a limit file's contents: a number of bytes, or `max` (v2) or a
/// huge number (v1) for none.
pub fn parse_limit(text: &str) -> Option<u64> {
    let n: u64 = text.trim().parse().ok()?;
    (n > 0 && n < UNLIMITED_FROM).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::parse_limit;

    #[test]
    fn limits_parse_and_unlimited_is_none() {
        assert_eq!(parse_limit("536870912\n"), Some(536_870_912));
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit(""), None);
        assert_eq!(parse_limit("0"), None);
    }
}
