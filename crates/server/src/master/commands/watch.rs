//! WATCH over the cluster: optimistic locking for MULTI/EXEC.
//!
//! - **WATCH** reads what each key shows now (a live item's version, a
//!   tombstone's, or nothing) from its replicas, as a read does, and the
//!   session keeps it ([`distcache_core::store::Watched`]).
//! - **EXEC** sends those to the transaction's leader with the queued
//!   commands. The leader locks the watched keys with the transaction's,
//!   compares, and either runs the transaction or answers that a watched
//!   key changed, having run nothing; EXEC then answers nil.
//!
//! Every write or delete gives a key a higher version, at whatever master
//! it came through, so a version seen at WATCH and found again at EXEC
//! means no write between them. That needs the watched keys at the
//! transaction's leader: keys on other nodes are `CROSSSLOT`, as in
//! Redis Cluster.

use std::sync::Arc;

use bytes::Bytes;
use distcache_core::command::Reply;
use distcache_core::store::Watched;
use futures_util::future::join_all;

use super::error_reply;
use crate::master::Master;

impl Master {
    /// WATCH: what each of `keys` shows now, or the error to answer.
    pub async fn watch_keys(
        self: &Arc<Self>,
        keys: &[Bytes],
    ) -> Result<Vec<(Bytes, Watched)>, Reply> {
        let reads = join_all(
            keys.iter()
                .map(|key| self.fenced(|| self.lookup_replicas(key))),
        )
        .await;
        keys.iter()
            .zip(reads)
            .map(|(key, read)| match read {
                Ok(found) => Ok((key.clone(), Watched::of(&found))),
                Err(e) => Err(error_reply(e)),
            })
            .collect()
    }

    /// Whether every key of `watched` still shows what it showed: EXEC's
    /// check before the listener's own queued commands run (the leader
    /// checks again, atomically, with the data commands). A key that cannot
    /// be read now counts as unchanged: the leader's check decides.
    pub async fn watched_unchanged(self: &Arc<Self>, watched: &[(Bytes, Watched)]) -> bool {
        let keys: Vec<Bytes> = watched.iter().map(|(key, _)| key.clone()).collect();
        match self.watch_keys(&keys).await {
            Ok(now) => watched
                .iter()
                .zip(now)
                .all(|((_, then), (_, now))| then.still(now)),
            Err(_) => true,
        }
    }
}
