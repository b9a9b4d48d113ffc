//! The pure core of distcache: everything that decides *where* a key lives and
//! *what* a node keeps, with no sockets, no threads of its own and no hidden
//! clock (every function that needs the time takes `now_ms`).
//!
//! # Layout
//!
//! - [`key`]: what a valid key is.
//! - [`version`]: hybrid-logical-clock versions; the higher version wins.
//! - [`ring`]: consistent hashing (xxh3-64, virtual nodes, replica sets, epoch).
//! - [`store`]: the sharded LRU store with TTLs, byte limits, tombstones and
//!   counters that every auxiliary serves.
//! - [`handoff`]: which copies move, and where, when the ring changes.
//! - [`cluster`]: the cluster map the masters replicate (nodes and their
//!   states, committed and target rings, rebalance rounds, the epoch), as a
//!   pure engine: events in, commands out.
//! - [`snapshot`]: the versioned, checksummed snapshot format of a store.
//! - [`mutation_log`]: the checksummed records of every mutation between
//!   snapshots, replayed on top of the last one at start.
//! - [`clock`]: wall-clock milliseconds, the one place the time is read.
//! - [`value`]: typed values (string, hash, list, set, sorted set), their
//!   memory accounting and their byte encoding.
//! - [`command`]: the command table, typed commands, the parser, replies.
//! - [`hyperloglog`]: HyperLogLog strings, byte for byte as Redis keeps
//!   them.
//! - [`geohash`]: the geohashes, distances and search cells of the
//!   geospatial commands, as Redis computes them.
//! - [`keyspace`]: one node's keys and the executor of commands over them,
//!   which returns each command's reply and the effects replicas replay.
//!
//! Data flows one way: a master validates a [`key`], stamps a [`version`],
//! asks the [`ring`] for the key's replicas, and each replica applies the
//! write to its [`store`], keeping whichever version is higher. Commands
//! will take the same road: a front end parses an argument vector against
//! the [`command`] table, and the key's leader executes it on its
//! [`keyspace`] (clock and dice passed in) and ships the effects.

pub mod clock;
pub mod cluster;
mod codec;
pub mod command;
pub mod geohash;
pub mod handoff;
pub mod hyperloglog;
pub mod key;
pub mod keyspace;
pub mod mutation_log;
pub mod ring;
pub mod script;
pub mod snapshot;
pub mod store;
pub mod value;
pub mod version;

pub use key::{KeyError, MAX_KEY_BYTES, validate_key};
pub use ring::{
    DEFAULT_VIRTUAL_NODES, MAX_REPLICAS, ReplicaSet, Ring, hash_tag, key_hash, placement_hash,
};
pub use store::{
    DeleteOutcome, Entry, EntryRef, Lookup, SetOutcome, Store, StoreConfig, StoreStats,
};
pub use version::{HybridClock, Version};
