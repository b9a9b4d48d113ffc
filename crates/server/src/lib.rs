//! The distcache servers: the two roles of the cluster and what they share.
//!
//! # Layout
//!
//! - [`master`]: the coordinator. Public REST API and the Redis protocol
//!   (RESP) for Redis clients, the cluster map agreed
//!   with the other masters through Raft, health checks and rebalancing
//!   rounds (by the Raft leader), and the data path that sends each key to
//!   its replicas.
//! - [`auxiliary`]: the storage node. A [`distcache_core::Store`] served over
//!   the internal protocol ([`distcache_wire`]), `/health` and `/metrics`
//!   over HTTP, registration with the masters, active expiry.
//! - [`config`]: one settings struct per role, from env and flags.
//! - [`control_api`]: the request and report types of the auxiliaries'
//!   control routes, shared by both roles.
//! - [`metrics`]: every metric, declared once; [`cgroup`]: the memory
//!   limit it reports.
//! - [`http`]: the JSON error shape and request tracking both roles share.
//! - [`security`]: tokens and roles, the cluster secret, TLS, request
//!   limits, and the hardened HTTP accept loop both roles serve with.
//! - [`shutdown`]: the one way every task stops.
//! - [`snapshot_file`]: durable, atomic snapshot files for both roles.
//!
//! Each role is started the same way: bind its listeners, then call its
//! `run(config, listeners, clock, shutdown)`, which returns once the node
//! has stopped. `main` does this for one role; tests and `distcache local`
//! do it on port 0.

pub mod auxiliary;
pub mod cgroup;
pub mod config;
pub mod control_api;
pub mod error;
pub mod http;
pub mod master;
pub mod metrics;
pub mod security;
pub mod shutdown;
pub mod snapshot_file;
