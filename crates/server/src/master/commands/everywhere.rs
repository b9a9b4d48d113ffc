//! KEYS, SCAN, DBSIZE, RANDOMKEY and FLUSHALL (FLUSHDB): commands over the
//! whole keyspace, so over every auxiliary. Each key is held by several
//! replicas, so answers are merged by key.
//!
//! FLUSHALL goes to every live auxiliary with a version from this master's
//! clock; each deletes every key it holds at a version above that one and
//! above the key's own, leaving tombstones (as DEL does), so no replica's
//! older copy brings a key back. It answers OK once every live auxiliary
//! has flushed (its deletes are in its mutation log); an auxiliary that
//! does not answer makes it an error, and the flush can be sent again.
//!
//! SCAN's cursor is a position in the 64-bit key-hash space, halved so that
//! it fits a signed integer, the same on every node
//! (`distcache_core::keyspace::scan_cursor`): every node is asked to scan
//! from the cursor, and the answer is every key found below the lowest
//! place any node stopped, which becomes the next cursor. A key
//! present for the whole scan is returned at least once, wherever it lives
//! and however keys move meanwhile.
//!
//! DBSIZE counts on the auxiliaries and ships only counts. In a settled
//! map each key is held by the first live one of its replicas, its leader,
//! which [`distcache_core::ring::Ring::leader_ranges`] gives as ranges of
//! key positions (the hash the ring places keys by) that tile the hash
//! space: each live auxiliary is asked to count its live keys in its
//! ranges (`Request::CountKeys`), and the counts are summed, so every key
//! is counted once whatever its number of copies. The rule for when that
//! is exact: the view is settled (no round in progress, no committed or
//! abandoned ring besides the target, no node leaving) and every position
//! has a live replica in the target ring. Otherwise, and when the view
//! changed while the counts were taken, DBSIZE falls back to collecting
//! every node's keys (KEYS *, swept as below) and counting them once each.
//! A key a write reached at some replicas but not at its leader is not
//! counted, as GET, which reads the leader, does not find it either.
//!
//! KEYS, SCAN and RANDOMKEY take a key only from its leader when the view
//! allows counting by leaders (as DBSIZE does): a replica may still hold
//! a key its leader evicted, which GET, EXISTS and DEL, asking the leader,
//! no longer find, and which a listing must not show either. While keys
//! move they take every node's keys, merged.
//!
//! While keys move, every node is asked twice, the second time after
//! every first answer is in, and the answers are merged ([`Master::sweep`]):
//! a key moving from one node to another is dropped at its old home only
//! after its new home has it, so a key that both homes missed in the first
//! pass (the new one asked before the copy arrived, the old one after it
//! dropped its copy) was at its new home before the second pass began.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use distcache_core::command::{CommandSpec, Reply};
use distcache_core::keyspace::{key_position, scan_cursor};
use distcache_core::ring::{PositionRange, ranges_contain};
use futures_util::future::join_all;

use crate::http::ApiError;
use crate::master::data::{CallError, OpError, Route, unavailable};
use crate::master::{Master, NodeRef, RingView};

/// Every live auxiliary of the view, once each.
fn live_nodes(view: &RingView) -> Route {
    let mut nodes = Route::new();
    let placements = std::iter::once(&view.target)
        .chain(view.committed.as_ref())
        .chain(view.abandoned.iter());
    for placement in placements {
        for node in placement.nodes.iter().flatten() {
            if !nodes.iter().any(|n| n.id == node.id) {
                nodes.push(node.clone());
            }
        }
    }
    for node in &view.leaving {
        if !nodes.iter().any(|n| n.id == node.id) {
            nodes.push(node.clone());
        }
    }
    nodes
}

/// Each live auxiliary that leads some keys, with the ranges of positions
/// it leads (see the module's overview); `None` when DBSIZE cannot count
/// by leaders: keys may be moving, or some position has no live replica.
fn leader_shares(view: &RingView) -> Option<Vec<(Arc<NodeRef>, Vec<PositionRange>)>> {
    if view.rebalancing() || !view.leaving.is_empty() {
        return None;
    }
    let target = &view.target;
    let copies = view.replicas(target.ring.members().len());
    let ranges = target
        .ring
        .leader_ranges(copies, |member| target.nodes[member as usize].is_some())?;
    Some(
        target
            .nodes
            .iter()
            .zip(ranges)
            .filter_map(|(node, ranges)| Some((node.clone()?, ranges)))
            .filter(|(_, ranges)| !ranges.is_empty())
            .collect(),
    )
}

/// How many times RANDOMKEY asks every node while each answers only keys
/// their leaders evicted (see [`Master::random_key`]).
const RANDOM_KEY_ROUNDS: usize = 8;

/// Each node's reply to a command sent to every live auxiliary, and
/// the positions each node leads when the view allows taking keys from
/// their leaders only.
struct Answers {
    replies: Vec<(Arc<NodeRef>, Reply)>,
    shares: Option<Vec<(Arc<NodeRef>, Vec<PositionRange>)>>,
}

impl Answers {
    /// Whether `key`, found at `node`, is to be taken: always while keys
    /// may move; else only from its leader.
    fn takes(&self, node: &NodeRef, key: &[u8]) -> bool {
        let Some(shares) = &self.shares else {
            return true;
        };
        shares
            .iter()
            .find(|(leader, _)| leader.id == node.id)
            .is_some_and(|(_, ranges)| ranges_contain(ranges, key_position(key)))
    }

    /// The keys of the nodes' replies (arrays of keys), each with its
    /// position, those [`Answers::takes`] takes; an error reply stops it.
    fn keys(
        &self,
        found: impl Fn(&Reply) -> Option<&[Reply]>,
    ) -> Result<Vec<(u64, Bytes)>, ApiError> {
        let mut keys = Vec::new();
        for (node, reply) in &self.replies {
            if reply.is_error() {
                return Err(relayed(reply.clone()));
            }
            for item in found(reply).unwrap_or_default() {
                if let Reply::Bulk(key) = item
                    && self.takes(node, key)
                {
                    keys.push((key_position(key), key.clone()));
                }
            }
        }
        Ok(keys)
    }
}

impl Master {
    pub(super) async fn everywhere(
        self: &Arc<Self>,
        spec: &CommandSpec,
        args: Vec<Bytes>,
    ) -> Result<Reply, ApiError> {
        match spec.name {
            "keys" => Ok(Reply::Array(
                self.all_keys(args)
                    .await?
                    .into_iter()
                    .map(|(_, key)| Reply::Bulk(key))
                    .collect(),
            )),
            "dbsize" => self.db_size().await,
            "randomkey" => self.random_key(args).await,
            "flushall" | "flushdb" => self.flush_all(args).await,
            _ => self.scan(args).await,
        }
    }

    /// `args` run on every live auxiliary; the replies, in node order.
    async fn on_every_node(&self, args: &[Bytes]) -> Result<Answers, ApiError> {
        self.on_every_node_at(args, false).await
    }

    /// FLUSHALL: every live auxiliary deletes every key it holds.
    async fn flush_all(&self, args: Vec<Bytes>) -> Result<Reply, ApiError> {
        for (_, reply) in self.on_every_node_at(&args, true).await?.replies {
            if reply.is_error() {
                return Err(relayed(reply));
            }
        }
        self.clear_near();
        Ok(Reply::OK)
    }

    /// `args` run on every live auxiliary, with a version from this
    /// master's clock when `write`; the replies, in node order.
    async fn on_every_node_at(&self, args: &[Bytes], write: bool) -> Result<Answers, ApiError> {
        self.fenced(|| async {
            let view = self.view.load_full();
            let nodes = live_nodes(&view);
            if nodes.is_empty() {
                return Err(crate::master::data::no_auxiliaries().into());
            }
            let calls = nodes.iter().map(|node| {
                let version = write.then(|| self.versions.tick((self.clock)()));
                let request = self.execute_request(version, Arc::from([args.to_vec()]), true);
                self.call(node, view.epoch, "execute", request)
            });
            let mut replies = Vec::with_capacity(nodes.len());
            for (node, answer) in nodes.iter().zip(join_all(calls).await) {
                match answer {
                    Ok(distcache_wire::Response::Executed {
                        replies: bytes,
                        version,
                        ..
                    }) => {
                        if let Some(version) = version {
                            self.versions.observe(version);
                        }
                        let mut decoded = super::leader::decode_replies(&bytes, 1)?;
                        replies.push((node.clone(), decoded.pop().unwrap_or(Reply::Null)));
                    }
                    Ok(_) => {
                        return Err(
                            unavailable("the command", 0, 1, Some(CallError::Unexpected)).into(),
                        );
                    }
                    Err(CallError::StaleEpoch(current)) => return Err(OpError::Fenced(current)),
                    Err(e) => {
                        return Err(unavailable("the command", 0, nodes.len(), Some(e)).into());
                    }
                }
            }
            // Taken from leaders only if the view still allows it now
            // that every answer is in.
            let now = self.view.load();
            let shares =
                leader_shares(&view).filter(|_| now.epoch == view.epoch && !now.rebalancing());
            Ok(Answers { replies, shares })
        })
        .await
    }

    /// `args` on every node, and while keys move, on every node again once
    /// the first answers are in (see the module's overview).
    async fn sweep(&self, args: &[Bytes]) -> Result<Answers, ApiError> {
        let mut answers = self.on_every_node(args).await?;
        if self.view.load().rebalancing() {
            let again = self.on_every_node(args).await?;
            answers.replies.extend(again.replies);
            answers.shares = None;
        }
        Ok(answers)
    }

    /// DBSIZE: the leaders' counts summed, or, when the view does not
    /// allow that, every node's keys counted once each (see the module's
    /// overview).
    async fn db_size(&self) -> Result<Reply, ApiError> {
        if let Some(count) = self.fenced(|| self.count_by_leaders()).await? {
            return Ok(Reply::Integer(i64::try_from(count).unwrap_or(i64::MAX)));
        }
        let all = vec![Bytes::from_static(b"KEYS"), Bytes::from_static(b"*")];
        Ok(Reply::Integer(self.all_keys(all).await?.len() as i64))
    }

    /// Each leader's count of its live keys, summed; `None` when the view
    /// does not allow counting by leaders, before or after the counts.
    async fn count_by_leaders(&self) -> Result<Option<u64>, OpError> {
        let view = self.view.load_full();
        let Some(shares) = leader_shares(&view) else {
            return Ok(None);
        };
        let (asked, epoch) = (shares.len(), view.epoch);
        let calls = shares.into_iter().map(|(node, ranges)| async move {
            let request = distcache_wire::Request::CountKeys { ranges };
            self.call(&node, epoch, "count_keys", request).await
        });
        let mut total: u64 = 0;
        for answer in join_all(calls).await {
            match answer {
                Ok(distcache_wire::Response::Counted { keys }) => {
                    total = total.saturating_add(keys);
                }
                Ok(_) => {
                    return Err(
                        unavailable("the command", 0, 1, Some(CallError::Unexpected)).into(),
                    );
                }
                Err(CallError::StaleEpoch(current)) => return Err(OpError::Fenced(current)),
                Err(e) => return Err(unavailable("the command", 0, asked, Some(e)).into()),
            }
        }
        // A round that began meanwhile may have moved a key out of the
        // ranges it was looked for in: count again by the sweep.
        let now = self.view.load();
        if now.epoch != epoch || now.rebalancing() {
            return Ok(None);
        }
        Ok(Some(total))
    }

    /// KEYS over every node, each key once, in hash order.
    async fn all_keys(&self, args: Vec<Bytes>) -> Result<BTreeSet<(u64, Bytes)>, ApiError> {
        let answers = self.sweep(&args).await?;
        let keys = answers.keys(|reply| match reply {
            Reply::Array(items) => Some(items),
            _ => None,
        })?;
        Ok(keys.into_iter().collect())
    }

    /// A random key of a random node, taken as KEYS takes keys; when
    /// every node answered a key it does not lead, the first of them (in
    /// a random order) that its leader holds (EXISTS, routed as any
    /// command). A node may answer a key its leader evicted: then every
    /// node is asked again, up to [`RANDOM_KEY_ROUNDS`] times, so that
    /// RANDOMKEY answers nil only when no key is found.
    async fn random_key(self: &Arc<Self>, args: Vec<Bytes>) -> Result<Reply, ApiError> {
        use rand::seq::{IndexedRandom, SliceRandom};
        for _ in 0..RANDOM_KEY_ROUNDS {
            let answers = self.on_every_node(&args).await?;
            let mut taken = Vec::new();
            let mut others = Vec::new();
            for (node, reply) in &answers.replies {
                match reply {
                    Reply::Bulk(key) if answers.takes(node, key) => taken.push(key.clone()),
                    Reply::Bulk(key) => others.push(key.clone()),
                    _ => {}
                }
            }
            if let Some(key) = taken.choose(&mut rand::rng()) {
                return Ok(Reply::Bulk(key.clone()));
            }
            if others.is_empty() {
                break;
            }
            others.shuffle(&mut rand::rng());
            for key in others {
                let exists = vec![Bytes::from_static(b"EXISTS"), key.clone()];
                // Boxed: `run_command` may call this function (through
                // RANDOMKEY), so its future's type would contain itself.
                if Box::pin(self.run_command(exists)).await == Reply::Integer(1) {
                    return Ok(Reply::Bulk(key));
                }
            }
        }
        Ok(Reply::Null)
    }

    async fn scan(&self, args: Vec<Bytes>) -> Result<Reply, ApiError> {
        let mut bound: Option<u64> = None;
        let answers = self.sweep(&args).await?;
        for (_, reply) in &answers.replies {
            let Reply::Array(parts) = reply else {
                return Err(relayed(reply.clone()));
            };
            let [Reply::Bulk(cursor), Reply::Array(_)] = parts.as_slice() else {
                return Err(ApiError::internal(
                    "unexpected_answer",
                    "an auxiliary's SCAN answer",
                ));
            };
            let next: u64 = std::str::from_utf8(cursor)
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            if next != 0 {
                bound = Some(bound.map_or(next, |b| b.min(next)));
            }
        }
        let found = answers.keys(|reply| match reply {
            Reply::Array(parts) => match parts.as_slice() {
                [_, Reply::Array(found)] => Some(found),
                _ => None,
            },
            _ => None,
        })?;
        let keys: BTreeSet<(u64, Bytes)> = found
            .into_iter()
            .filter(|(position, _)| bound.is_none_or(|b| scan_cursor(*position) < b))
            .collect();
        let cursor = bound.unwrap_or(0).to_string();
        Ok(Reply::Array(vec![
            Reply::Bulk(Bytes::from(cursor)),
            Reply::Array(keys.into_iter().map(|(_, k)| Reply::Bulk(k)).collect()),
        ]))
    }
}

/// An auxiliary's error reply, passed on.
fn relayed(reply: Reply) -> ApiError {
    let text = match reply {
        Reply::Error(e) => e.to_string(),
        other => format!("unexpected reply {other:?}"),
    };
    ApiError::bad_request("command_error", text)
}

#[cfg(test)]
mod tests {
    use distcache_core::Ring;
    use distcache_core::cluster::ClusterConfig;
    use distcache_core::ring::ranges_contain;
    use distcache_wire::client::ClientConfig;

    use super::*;
    use crate::master::Placement;

    fn node(id: &str) -> Arc<NodeRef> {
        Arc::new(NodeRef {
            id: id.to_string(),
            // Never connects: nothing is called.
            client: distcache_wire::Client::new("127.0.0.1:1", ClientConfig::default()),
        })
    }

    fn placement(members: &[&str], down: &[&str]) -> Placement {
        let ring = Ring::new(members.iter().copied(), 64);
        let nodes = ring
            .members()
            .iter()
            .map(|id| (!down.contains(&id.as_str())).then(|| node(id)))
            .collect();
        Placement { ring, nodes }
    }

    /// A settled view over `members` with `replicas` copies, the `down`
    /// ones not live.
    fn view(members: &[&str], down: &[&str], replicas: usize) -> RingView {
        let mut view = RingView::empty(ClusterConfig::new(replicas, 64));
        view.target = placement(members, down);
        view
    }

    /// The ids of the live nodes leading `position` in `shares`.
    fn leaders(shares: &[(Arc<NodeRef>, Vec<PositionRange>)], position: u64) -> Vec<String> {
        shares
            .iter()
            .filter(|(_, ranges)| ranges_contain(ranges, position))
            .map(|(node, _)| node.id.clone())
            .collect()
    }

    #[test]
    fn a_settled_view_gives_every_position_one_live_leader() {
        let members = ["a", "b", "c", "d"];
        for down in [&[][..], &["b"], &["a", "c"]] {
            let view = view(&members, down, 3);
            let shares = leader_shares(&view).expect("every position has a live replica");
            assert!(
                shares
                    .iter()
                    .all(|(node, _)| !down.contains(&node.id.as_str()))
            );
            for key in (0..2000).map(|i| format!("key:{i}")) {
                let position = key_position(key.as_bytes());
                let route = view.target.ring.replicas_for(key.as_bytes(), 3);
                let first_live = route
                    .as_slice()
                    .iter()
                    .map(|&i| view.target.ring.members()[i as usize].clone())
                    .find(|id| !down.contains(&id.as_str()));
                assert_eq!(leaders(&shares, position), Vec::from_iter(first_live));
            }
        }
    }

    #[test]
    fn counting_by_leaders_is_refused_while_keys_may_move_or_a_position_has_no_live_replica() {
        let members = ["a", "b", "c"];
        assert!(leader_shares(&view(&members, &[], 2)).is_some());
        // One copy per key, and its holder down.
        assert!(leader_shares(&view(&members, &["b"], 1)).is_none());
        // Two copies, both down somewhere on the ring.
        assert!(leader_shares(&view(&members, &["a", "b"], 2)).is_none());
        let mut moving = view(&members, &[], 2);
        moving.moving = true;
        assert!(leader_shares(&moving).is_none());
        let mut committed = view(&members, &[], 2);
        committed.committed = Some(placement(&["a", "b"], &[]));
        assert!(leader_shares(&committed).is_none());
        let mut abandoned = view(&members, &[], 2);
        abandoned
            .abandoned
            .push(placement(&["a", "b", "c", "d"], &[]));
        assert!(leader_shares(&abandoned).is_none());
        let mut leaving = view(&members, &[], 2);
        leaving.leaving.push(node("d"));
        assert!(leader_shares(&leaving).is_none());
        // No auxiliaries: nothing to count by (the sweep says so).
        assert!(leader_shares(&view(&[], &[], 2)).is_none());
    }
}
