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
//! - [`clock`]: wall-clock milliseconds, the one place the time is read.
//!
//! Data flows one way: a master validates a [`key`], stamps a [`version`],
//! asks the [`ring`] for the key's replicas, and each replica applies the
//! write to its [`store`], keeping whichever version is higher.

pub mod clock;
pub mod cluster;
pub mod command;
pub mod handoff;
pub mod key;
pub mod keyspace;
pub mod ring;
pub mod snapshot;
pub mod store;
pub mod value;
pub mod version;

pub use key::{KeyError, MAX_KEY_BYTES, validate_key};
pub use ring::{DEFAULT_VIRTUAL_NODES, MAX_REPLICAS, ReplicaSet, Ring, key_hash};
pub use store::{
    DeleteOutcome, Entry, EntryRef, Lookup, SetOutcome, Store, StoreConfig, StoreStats,
};
pub use version::{HybridClock, Version};
