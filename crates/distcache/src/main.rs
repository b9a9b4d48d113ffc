//! The `distcache` binary.
fn main() {}
