//! Redis's data commands over the cluster: the executor both command front
//! ends (`POST /` and the RESP listener) call.
//!
//! - [`Master::run_command`] runs one argument vector and answers with its
//!   [`Reply`]; [`Master::run_transaction`] runs a MULTI block's queued
//!   commands as one atomic batch (EXEC's answer).
//! - [`CommandSession`] keeps one client's MULTI/EXEC state in front of
//!   them.
//!
//! A front end resolves the command in the table
//! (`distcache_core::command::table::resolve`), checks that the caller's
//! role is at least `spec.role()`, then hands the arguments to a session.

mod session;

use std::sync::Arc;

use bytes::Bytes;
use distcache_core::command::Reply;

pub use session::CommandSession;

use super::Master;

impl Master {
    /// Runs one command (any data command of the table; MULTI, EXEC and
    /// DISCARD belong to a [`CommandSession`]) and answers with its reply.
    pub async fn run_command(self: &Arc<Self>, args: Vec<Bytes>) -> Reply {
        scratch::run(vec![args]).pop().unwrap_or(Reply::Null)
    }

    /// Runs a transaction's queued commands atomically and answers with
    /// EXEC's array of replies.
    pub async fn run_transaction(self: &Arc<Self>, queued: Vec<Vec<Bytes>>) -> Reply {
        Reply::Array(scratch::run(queued))
    }
}

/// TEMPORARY, never to land on `main`: one in-memory keyspace per process,
/// so that the front ends can be built and tried while the distributed
/// executor is written. It is replaced by the real one.
mod scratch {
    use std::sync::{LazyLock, Mutex};

    use bytes::Bytes;
    use distcache_core::command::{Reply, table};
    use distcache_core::keyspace::Keyspace;

    static KEYSPACE: LazyLock<Mutex<Keyspace>> = LazyLock::new(|| Mutex::new(Keyspace::new()));

    pub(super) fn run(commands: Vec<Vec<Bytes>>) -> Vec<Reply> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut ks = KEYSPACE.lock().unwrap_or_else(|p| p.into_inner());
        let mut rng = rand::rng();
        commands
            .iter()
            .map(|args| match table::parse(args) {
                Ok(c) => ks.execute(&c, now, &mut rng).reply,
                Err(e) => Reply::Error(e),
            })
            .collect()
    }
}
