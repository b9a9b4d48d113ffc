//! The cluster map and its transitions, as a pure engine: events in,
//! commands out.
//!
//! [`ClusterMap`] is the state machine the masters replicate through Raft.
//! It holds the auxiliaries and their states, the decommissioned
//! incarnations, the committed ring (whose copies are in place), the target
//! ring (the up nodes), the rebalance round in progress, and the epoch.
//! [`ClusterMap::apply`] takes one [`Event`] and returns an [`Applied`]: the
//! outcome, and the [`Command`]s for the leader's runtime. It reads no
//! clock, draws no random number and does no I/O, so every master that
//! applies the same log ends with the same map, and routes every key the
//! same way.
//!
//! # How a runtime uses it
//!
//! - **Every master** applies each committed log entry with `apply`, then
//!   rebuilds its routing from [`ClusterMap::routing`]: a
//!   [`Ring`](crate::Ring) over `target`, one over `committed` while it
//!   differs, connections to the live nodes' data addresses, and
//!   [`Routing::epoch`] on every data request. Writes go to the live
//!   replicas of both rings; reads that miss ask the committed ring, then
//!   the rings in [`Routing::abandoned`], then the [`Routing::leaving`]
//!   nodes.
//! - **The leader** also carries out the commands, in order, and turns
//!   what it observes into events: registrations it receives
//!   ([`Event::Register`]), its health verdicts ([`Event::Verdict`]),
//!   operators' requests ([`Event::Decommission`], [`Event::Rebalance`]),
//!   and the reports of the rounds it runs ([`Event::RoundFinished`],
//!   [`Event::RoundFailed`]). It may call [`ClusterMap::preview`] first to
//!   skip proposing events that would change nothing (auxiliaries
//!   re-register every few seconds), and answer clients from the outcome.
//! - **A new leader** calls [`ClusterMap::resume`] for the commands still in
//!   force (the epoch to announce, the round to run).
//! - After installing a snapshot, [`ClusterMap::check`] tells whether it is
//!   a map this engine could have produced.
//!
//! # The epoch
//!
//! [`ClusterMap::epoch`] grows by one on every event that changes routing
//! or what clients see of the nodes: the committed ring, a node's state,
//! whether it answers, its data address, the set of nodes, or the
//! abandoned rings reads may consult. It never changes otherwise (a round
//! starting, a new HTTP address, a rejected event), so auxiliaries fence
//! exactly the masters whose routing is out of date.
//!
//! # Rounds
//!
//! A round asks every source (every live node) to hand its copies off from
//! the committed ring to the target ring, with the rule in
//! [`handoff`](crate::handoff). While a round runs, its handoff is always
//! the one the map would plan now: when the target ring, a member's data
//! address or the set of live nodes changes, the round is superseded by a
//! new one (a new id; reports about the old one are refused). When it
//! finishes, its target becomes the committed ring and the leaving nodes
//! among its sources are removed.
//!
//! A round re-places every copy (it is *full*, `from` unknown) when the
//! plain rule would rest on copies that may not be in place:
//!
//! - before the first commit (nothing is known to be anywhere);
//! - after a round was given up (failed or superseded) since the last
//!   commit: it may have moved copies to its target's owners and dropped
//!   them at their old homes;
//! - when a member of the committed ring that stopped answering (down, or
//!   restarted) answers again: it may have missed writes, so its copies
//!   cannot stand for the committed ring's;
//! - when an operator asks ([`Event::Rebalance`]).
//!
//! A full round costs more traffic (every holder offers each copy to each
//! other replica; versions decide), which is the price of not trusting a
//! placement that may be wrong.
//!
//! # Never removing the only copy
//!
//! The engine cannot see keys, so "the only copy" is stated over rings: the
//! copies that count are those on nodes that answer, because only they can
//! be read or handed over. A node leaves the map in exactly two ways:
//!
//! 1. After a round in which it was a source, was leaving, and was not in
//!    the target: it answered throughout and handed every copy it held to
//!    the target's owners, and that target is now the committed ring. It
//!    held no copy that is not also elsewhere.
//! 2. By decommission while it does not answer (down, joining, or leaving
//!    and silent). Its copies could not be read or moved anyway; each of
//!    its keys survives on the other `REPLICAS - 1` replicas, from which
//!    the next round copies it. This is the operator's explicit choice:
//!    with `REPLICAS = 1`, or when every replica of a key is down, that
//!    key is given up (as the promise allows: it covers the loss of
//!    `REPLICAS - 1` auxiliaries).
//!
//! The last up node that answers is never decommissioned. A removed node
//! may still be a member of the committed ring, as a dead one: the next
//! round treats it as such.
//!
//! # Waiting for silent copies
//!
//! While most of the committed ring's nodes are silent (down or restarting,
//! not decommissioned), and so some keys have no replica in it that
//! answers, no round starts: committing any target would route
//! those keys to nodes that never held them. The committed ring stays, so
//! that masters know where those copies are: a read of such a key that finds
//! nothing is refused rather than answered as a miss from nodes that never
//! had it. Writes still go to the target's live replicas; that ring is kept
//! among the abandoned ones, so reads ask it and the next round is full.
//! When one of the silent nodes answers again the map plans a full round,
//! in which versions decide; an operator who
//! decommissions the silent nodes gives those keys up instead. This is what
//! a cluster whose every auxiliary restarted at once goes through: the
//! first one back does not become the only home of every key.

mod event;
mod node;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ring::{DEFAULT_VIRTUAL_NODES, MAX_REPLICAS, MAX_VIRTUAL_NODES, Ring};

pub use event::{Accepted, Applied, Command, Event, Handoff, Rejection, Round};
pub use node::{MAX_NODE_ID_BYTES, Member, Node, NodeId, NodeState};

/// What every master must agree on beside the members: how many copies of
/// each key, and how many ring points per member. Part of the map so that
/// a snapshot carries it; masters must start with the same values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// Copies of each key (`REPLICAS`), 1 to [`MAX_REPLICAS`].
    pub replicas: usize,
    /// Ring points per member (`VIRTUAL_NODES`), 1 to [`MAX_VIRTUAL_NODES`].
    pub virtual_nodes: u32,
}

impl ClusterConfig {
    /// A configuration, with both values clamped to their ranges (the
    /// server validates the settings; the engine must not panic on any).
    pub fn new(replicas: usize, virtual_nodes: u32) -> Self {
        ClusterConfig {
            replicas: replicas.clamp(1, MAX_REPLICAS),
            virtual_nodes: virtual_nodes.clamp(1, MAX_VIRTUAL_NODES),
        }
    }

    /// Copies of each key in a ring of `members` nodes.
    pub fn replicas_for(&self, members: usize) -> usize {
        self.replicas.min(members)
    }
}

impl Default for ClusterConfig {
    /// Two copies (DESIGN's default), [`DEFAULT_VIRTUAL_NODES`] points.
    fn default() -> Self {
        ClusterConfig::new(2, DEFAULT_VIRTUAL_NODES)
    }
}

/// How a master routes now: everything it needs to build its rings and
/// connections, as one value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routing {
    /// The map's epoch: stamp it on every data request.
    pub epoch: u64,
    /// Replicas and ring points.
    pub config: ClusterConfig,
    /// The target ring's members (the up nodes), sorted.
    pub target: Vec<NodeId>,
    /// The committed ring's members (copies in place), sorted; `None`
    /// before the first round finished. Equal to `target` when steady.
    pub committed: Option<Vec<NodeId>>,
    /// Targets of rounds given up since the last commit, oldest first:
    /// copies may have moved there, so reads that miss elsewhere ask them
    /// too. Empty when steady.
    pub abandoned: Vec<Vec<NodeId>>,
    /// Live nodes that are leaving, sorted: they hold copies until a round
    /// removes them, even when no ring names them (a leaving node that was
    /// silent when a round committed), so reads that miss everywhere else
    /// ask them last.
    pub leaving: Vec<NodeId>,
    /// Data addresses of the live nodes (up, or leaving and answering):
    /// the only nodes to send requests to.
    pub live: BTreeMap<NodeId, String>,
    /// A round is in progress: keys may be moving.
    pub rebalancing: bool,
}

/// An invariant of the map does not hold (a corrupt snapshot, or a bug).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cluster map invariant broken: {0}")]
pub struct BrokenInvariant(pub String);

/// The cluster map: auxiliaries, rings, the round in progress, the epoch.
/// See the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMap {
    config: ClusterConfig,
    epoch: u64,
    nodes: BTreeMap<NodeId, Node>,
    /// Decommissioned ids and the incarnation running then.
    decommissioned: BTreeMap<NodeId, Option<u64>>,
    /// Members of the ring whose copies are in place; `None` until the
    /// first round finishes.
    committed: Option<Vec<NodeId>>,
    /// Members of the committed ring that stopped answering since it was
    /// committed: they may have missed writes.
    out_of_date: BTreeSet<NodeId>,
    /// Targets of rounds given up since the last commit.
    abandoned: Vec<Vec<NodeId>>,
    round: Option<Round>,
    /// The id of the last round started; ids are never reused.
    last_round: u64,
}

/// Commands gathered while an event is applied, emitted in a fixed order.
#[derive(Default)]
struct Effects {
    removed: Vec<NodeId>,
    probe: Vec<NodeId>,
    clean_up: Option<Handoff>,
}

/// What a round to plan must be: asked for by an operator, or a retry.
#[derive(Clone, Copy, Default)]
struct Ask {
    full: bool,
    retry_of: Option<u32>,
}

impl Default for ClusterMap {
    /// An empty map with the default settings.
    fn default() -> Self {
        ClusterMap::new(ClusterConfig::default())
    }
}

impl ClusterMap {
    /// An empty map at epoch 0.
    pub fn new(config: ClusterConfig) -> Self {
        ClusterMap {
            config: ClusterConfig::new(config.replicas, config.virtual_nodes),
            epoch: 0,
            nodes: BTreeMap::new(),
            decommissioned: BTreeMap::new(),
            committed: None,
            out_of_date: BTreeSet::new(),
            abandoned: Vec::new(),
            round: None,
            last_round: 0,
        }
    }

    /// Applies one event. Deterministic; never panics. A rejected event
    /// leaves the map unchanged and returns no commands.
    pub fn apply(&mut self, event: Event) -> Applied {
        let before = self.routing_state();
        let mut fx = Effects::default();
        // The epoch this event must end above (a registering node's).
        let mut floor = 0;
        let mut ask = Ask::default();
        let outcome = match event {
            Event::Configure { config } => self.configure(config),
            Event::Register {
                id,
                addr,
                data_addr,
                incarnation,
                seen_epoch,
            } => {
                floor = seen_epoch.unwrap_or(0);
                self.register(id, addr, data_addr, incarnation, &mut fx)
            }
            Event::Verdict {
                id,
                healthy,
                data_addr,
                probed,
            } => self.verdict(&id, healthy, data_addr, probed),
            Event::Decommission { id } => self.decommission(&id, &mut fx),
            Event::Rebalance => {
                if self.target_members().is_empty() {
                    Err(Rejection::NoAuxiliaries)
                } else {
                    ask.full = true;
                    Ok(Accepted::Changed)
                }
            }
            Event::RoundFinished { round } => self.finish_round(round, &mut fx),
            Event::RoundFailed { round } => match self.current_round(round) {
                Ok(failed) => {
                    ask = Ask {
                        full: failed.full,
                        retry_of: Some(failed.attempt),
                    };
                    self.abandon_round();
                    Ok(Accepted::Changed)
                }
                Err(e) => Err(e),
            },
        };
        if outcome.is_err() {
            return Applied {
                outcome,
                commands: Vec::new(),
            };
        }
        let mut commands: Vec<Command> = fx
            .removed
            .into_iter()
            .map(|id| Command::Removed { id })
            .chain(fx.probe.into_iter().map(|id| Command::Probe { id }))
            .collect();
        // A round is superseded before the epoch is compared: giving one up
        // adds its target to the abandoned rings, which reads consult.
        let start = self.settle(ask);
        let raised = self.epoch < floor;
        if self.routing_state() != before || raised {
            self.epoch = self.epoch.max(floor) + 1;
            if let Some(round) = &mut self.round {
                if start {
                    round.epoch = self.epoch;
                }
            }
            commands.push(Command::AnnounceEpoch { epoch: self.epoch });
        }
        commands.extend(fx.clean_up.map(Command::CleanUp));
        if start {
            commands.extend(self.round.clone().map(Command::StartRound));
        }
        let outcome = match outcome {
            // Nothing else changed, but the epoch did: the event counts.
            Ok(Accepted::Unchanged) if raised => Ok(Accepted::Changed),
            other => other,
        };
        Applied { outcome, commands }
    }

    /// What [`apply`](Self::apply) would answer, without changing the map:
    /// lets the leader skip proposing events that change nothing.
    pub fn preview(&self, event: &Event) -> Result<Accepted, Rejection> {
        self.clone().apply(event.clone()).outcome
    }

    /// The commands still in force, for a master that just became leader:
    /// the current epoch to announce, and the round in progress to run.
    pub fn resume(&self) -> Vec<Command> {
        let mut commands = vec![Command::AnnounceEpoch { epoch: self.epoch }];
        commands.extend(self.round.clone().map(Command::StartRound));
        commands
    }

    /// The epoch: grows with every change of routing (see the module docs).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Replicas and ring points.
    pub fn config(&self) -> ClusterConfig {
        self.config
    }

    /// Every node, by id.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    /// One node.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.get(id)
    }

    /// A node's state as clients see it: up but not yet in the committed
    /// ring (its keys have not reached it) shows as joining.
    pub fn shown_state(&self, node: &Node) -> NodeState {
        let committed = self
            .committed
            .as_ref()
            .is_some_and(|c| c.contains(&node.id));
        if node.state == NodeState::Up && !committed {
            NodeState::Joining
        } else {
            node.state
        }
    }

    /// Whether `id` was decommissioned, and the incarnation running then.
    pub fn decommissioned(&self, id: &str) -> Option<Option<u64>> {
        self.decommissioned.get(id).copied()
    }

    /// The target ring's members: the up nodes, sorted.
    pub fn target_members(&self) -> Vec<NodeId> {
        self.target().into_iter().map(|m| m.id).collect()
    }

    /// The committed ring's members; `None` before the first commit.
    pub fn committed_members(&self) -> Option<&[NodeId]> {
        self.committed.as_deref()
    }

    /// The round in progress.
    pub fn round(&self) -> Option<&Round> {
        self.round.as_ref()
    }

    /// How a master routes now.
    pub fn routing(&self) -> Routing {
        Routing {
            epoch: self.epoch,
            config: self.config,
            target: self.target_members(),
            committed: self.committed.clone(),
            abandoned: self.abandoned.clone(),
            leaving: self
                .nodes
                .values()
                .filter(|n| n.is_live() && n.state == NodeState::Leaving)
                .map(|n| n.id.clone())
                .collect(),
            live: self
                .nodes
                .values()
                .filter(|n| n.is_live())
                .filter_map(|n| Some((n.id.clone(), n.data_addr.clone()?)))
                .collect(),
            rebalancing: self.round.is_some(),
        }
    }

    /// Checks the map's invariants: each node's fields agree with its
    /// state, the rings are well formed, and the round in progress is the
    /// one the map would plan now (or none is needed). For tests, and for a
    /// runtime that installs a snapshot it did not build itself.
    pub fn check(&self) -> Result<(), BrokenInvariant> {
        let broken = |what: String| Err(BrokenInvariant(what));
        if self.config != ClusterConfig::new(self.config.replicas, self.config.virtual_nodes) {
            return broken(format!("config out of range: {:?}", self.config));
        }
        for (id, node) in &self.nodes {
            if *id != node.id || !node::valid_id(id) {
                return broken(format!("node {id:?} filed under the wrong or a bad id"));
            }
            if node.state == NodeState::Up && !node.answering {
                return broken(format!("{id} is up but not answering"));
            }
            if node.answering
                && (node.data_addr.is_none()
                    || !matches!(node.state, NodeState::Up | NodeState::Leaving))
            {
                return broken(format!(
                    "{id} answers as {:?} without a data address or not up/leaving",
                    node.state
                ));
            }
            if self.decommissioned.contains_key(id) {
                return broken(format!("{id} is both a node and decommissioned"));
            }
        }
        let well_formed =
            |ring: &[NodeId]| !ring.is_empty() && ring.windows(2).all(|w| w[0] < w[1]);
        if let Some(committed) = &self.committed {
            if !well_formed(committed) {
                return broken(format!("committed ring {committed:?} is empty or unsorted"));
            }
        }
        for id in &self.out_of_date {
            let committed = self.committed.as_ref().is_some_and(|c| c.contains(id));
            if !committed || !self.nodes.contains_key(id) {
                return broken(format!("{id} is out of date but not a committed node"));
            }
        }
        for (i, ring) in self.abandoned.iter().enumerate() {
            if !well_formed(ring)
                || self.abandoned[..i].contains(ring)
                || self.committed.as_ref() == Some(ring)
            {
                return broken(format!("abandoned ring {ring:?} is malformed or repeated"));
            }
        }
        match (&self.round, self.wanted(false)) {
            (None, None) => Ok(()),
            (Some(round), Some((full, handoff)))
                if round.full == full && round.handoff == handoff =>
            {
                if round.id > self.last_round || round.epoch > self.epoch {
                    return broken(format!("round {} is from the future", round.id));
                }
                Ok(())
            }
            (round, wanted) => broken(format!(
                "round {round:?} is not the one to run ({wanted:?})"
            )),
        }
    }

    fn configure(&mut self, config: ClusterConfig) -> Result<Accepted, Rejection> {
        let config = ClusterConfig::new(config.replicas, config.virtual_nodes);
        if config == self.config {
            return Ok(Accepted::Unchanged);
        }
        let pristine = self.epoch == 0 && self.nodes.is_empty() && self.decommissioned.is_empty();
        if !pristine {
            return Err(Rejection::Configured {
                current: self.config,
            });
        }
        self.config = config;
        Ok(Accepted::Changed)
    }

    fn register(
        &mut self,
        id: NodeId,
        addr: String,
        data_addr: Option<String>,
        incarnation: Option<u64>,
        fx: &mut Effects,
    ) -> Result<Accepted, Rejection> {
        if !node::valid_id(&id) {
            return Err(Rejection::BadId { id });
        }
        for a in std::iter::once(&addr).chain(&data_addr) {
            if !node::valid_addr(a) {
                return Err(Rejection::BadAddr { addr: a.clone() });
            }
        }
        if let (Some(Some(gone)), Some(now)) = (self.decommissioned.get(&id), incarnation) {
            if *gone == now {
                return Err(Rejection::Decommissioned {
                    id,
                    incarnation: now,
                });
            }
        }
        // Checks done: from here on the event is accepted. A decommissioned
        // id has no node, so it comes back as a new one.
        self.decommissioned.remove(&id);
        let Some(node) = self.nodes.get_mut(&id) else {
            fx.probe.push(id.clone());
            self.nodes.insert(
                id.clone(),
                Node {
                    id,
                    addr,
                    data_addr,
                    state: NodeState::Joining,
                    incarnation,
                    answering: false,
                },
            );
            return Ok(Accepted::Added);
        };
        let restarted = matches!((node.incarnation, incarnation), (Some(a), Some(b)) if a != b);
        let same = node.addr == addr
            && (data_addr.is_none() || node.data_addr == data_addr)
            && (incarnation.is_none() || node.incarnation == incarnation);
        if same {
            return Ok(Accepted::Unchanged);
        }
        node.addr = addr;
        if data_addr.is_some() {
            node.data_addr = data_addr;
        }
        if incarnation.is_some() {
            node.incarnation = incarnation;
        }
        if restarted {
            // A new process may have lost what the old one held: it must
            // prove itself healthy, and is no longer trusted to hold the
            // committed ring's copies.
            node.answering = false;
            if node.state == NodeState::Up {
                node.state = NodeState::Joining;
            }
            self.mark_out_of_date(&id);
        }
        fx.probe.push(id);
        Ok(Accepted::Changed)
    }

    fn verdict(
        &mut self,
        id: &str,
        healthy: bool,
        data_addr: Option<String>,
        probed: Option<String>,
    ) -> Result<Accepted, Rejection> {
        let Some(node) = self.nodes.get(id) else {
            return Err(Rejection::UnknownNode { id: id.to_string() });
        };
        if probed.is_some_and(|addr| addr != node.addr) {
            return Ok(Accepted::Unchanged);
        }
        if !healthy {
            if !node.answering && node.state != NodeState::Joining {
                return Ok(Accepted::Unchanged);
            }
            let node = self.nodes.get_mut(id).expect("looked up above");
            node.answering = false;
            if node.state != NodeState::Leaving {
                node.state = NodeState::Down;
            }
            self.mark_out_of_date(id);
            return Ok(Accepted::Changed);
        }
        let Some(data_addr) = data_addr.or_else(|| node.data_addr.clone()) else {
            return Err(Rejection::NoDataAddr { id: id.to_string() });
        };
        if !node::valid_addr(&data_addr) {
            return Err(Rejection::BadAddr { addr: data_addr });
        }
        let state = match node.state {
            NodeState::Leaving => NodeState::Leaving,
            _ => NodeState::Up,
        };
        if node.answering && node.state == state && node.data_addr.as_ref() == Some(&data_addr) {
            return Ok(Accepted::Unchanged);
        }
        let node = self.nodes.get_mut(id).expect("looked up above");
        node.answering = true;
        node.state = state;
        node.data_addr = Some(data_addr);
        Ok(Accepted::Changed)
    }

    fn decommission(&mut self, id: &str, fx: &mut Effects) -> Result<Accepted, Rejection> {
        let Some(node) = self.nodes.get(id) else {
            return Err(Rejection::UnknownNode { id: id.to_string() });
        };
        if node.is_live() {
            if node.state == NodeState::Leaving {
                return Ok(Accepted::Unchanged);
            }
            let others_up = self
                .nodes
                .values()
                .any(|n| n.id != id && n.state == NodeState::Up);
            if !others_up {
                return Err(Rejection::LastNode { id: id.to_string() });
            }
            self.nodes.get_mut(id).expect("looked up above").state = NodeState::Leaving;
            return Ok(Accepted::Changed);
        }
        self.remove(id, fx);
        Ok(Accepted::Removed)
    }

    fn finish_round(&mut self, round: u64, fx: &mut Effects) -> Result<Accepted, Rejection> {
        let finished = self.current_round(round)?.clone();
        self.round = None;
        let to = finished.handoff.to_ids();
        for id in &finished.handoff.sources {
            let leaving = self
                .nodes
                .get(id)
                .is_some_and(|n| n.state == NodeState::Leaving);
            if leaving && !to.contains(id) {
                self.remove(id, fx);
            }
        }
        self.committed = Some(to.clone());
        // Every member of the new committed ring answered throughout the
        // round (else it would have been superseded) and received every
        // copy it owns: nothing is out of date, nothing stray is readable.
        self.out_of_date.clear();
        self.abandoned.clear();
        fx.clean_up = Some(Handoff {
            from: Some(to.clone()),
            from_replicas: finished.handoff.to_replicas,
            sources: to,
            ..finished.handoff
        });
        Ok(Accepted::Changed)
    }

    fn current_round(&self, round: u64) -> Result<&Round, Rejection> {
        match &self.round {
            Some(r) if r.id == round => Ok(r),
            other => Err(Rejection::StaleRound {
                round,
                current: other.as_ref().map(|r| r.id),
            }),
        }
    }

    /// Removes a node from the map and remembers its incarnation.
    fn remove(&mut self, id: &str, fx: &mut Effects) {
        if let Some(node) = self.nodes.remove(id) {
            self.decommissioned
                .insert(node.id.clone(), node.incarnation);
            self.out_of_date.remove(id);
            fx.removed.push(node.id);
        }
    }

    fn mark_out_of_date(&mut self, id: &str) {
        if self
            .committed
            .as_ref()
            .is_some_and(|c| c.iter().any(|m| m == id))
        {
            self.out_of_date.insert(id.to_string());
        }
    }

    /// Gives up the round in progress, remembering where it may have moved
    /// copies.
    fn abandon_round(&mut self) {
        if let Some(round) = self.round.take() {
            let to = round.handoff.to_ids();
            let known = self.committed.as_ref() == Some(&to) || self.abandoned.contains(&to);
            if !known {
                self.abandoned.push(to);
            }
        }
    }

    /// Brings the round in line with the map: keeps it if it is still the
    /// one to run, supersedes it if not, starts one if keys must move.
    /// Returns whether a round was started.
    fn settle(&mut self, ask: Ask) -> bool {
        if let (Some(round), Some((full, handoff))) = (&self.round, self.wanted(ask.full)) {
            if !ask.full && round.full == full && round.handoff == handoff {
                return false;
            }
        }
        // An operator's full round stays full when it is superseded.
        let full_asked = ask.full || self.round.as_ref().is_some_and(|r| r.full);
        // Planned again after giving the old round up: that may make the
        // next one full, or make one necessary.
        self.abandon_round();
        if self.copies_out_of_reach() {
            // No round while waiting, but writes land on the target's live
            // replicas meanwhile: reads must find them there, and the next
            // round must re-place them, as for a round given up.
            let to: Vec<NodeId> = self.target().into_iter().map(|m| m.id).collect();
            let known = self.committed.as_ref() == Some(&to) || self.abandoned.contains(&to);
            if !to.is_empty() && !known {
                self.abandoned.push(to);
            }
        }
        let Some((full, handoff)) = self.wanted(full_asked) else {
            return false;
        };
        self.last_round += 1;
        self.round = Some(Round {
            id: self.last_round,
            attempt: ask.retry_of.map_or(0, |a| a.saturating_add(1)),
            epoch: self.epoch,
            full,
            handoff,
        });
        true
    }

    /// The round the map would run now, and whether it is full; `None`
    /// when no key needs to move or nobody is up to take them.
    fn wanted(&self, full_asked: bool) -> Option<(bool, Handoff)> {
        let to = self.target();
        if to.is_empty() || self.copies_out_of_reach() {
            return None;
        }
        let full =
            full_asked || self.round.as_ref().is_some_and(|r| r.full) || self.must_replace_all();
        let to_ids: Vec<NodeId> = to.iter().map(|m| m.id.clone()).collect();
        let needed = full
            || self.committed.as_ref() != Some(&to_ids)
            || self
                .nodes
                .values()
                .any(|n| n.is_live() && n.state != NodeState::Up);
        needed.then(|| (full, self.plan(to, full)))
    }

    /// True when some keys have no committed replica that answers, and at
    /// least one that is still in the map: their copies can be neither read
    /// nor moved, and a round that committed without them would route those
    /// keys to nodes that never held them (a read would find nothing where
    /// an acknowledged write exists). See "Waiting for silent copies" in the
    /// module docs.
    fn copies_out_of_reach(&self) -> bool {
        let Some(committed) = &self.committed else {
            return false;
        };
        let silent = |id: &str| self.nodes.get(id).is_some_and(|n| !n.is_live());
        // Only an outage of most of the committed ring is waited out: a
        // minority of silent nodes is routed around, as it always was (their
        // keys beyond the promise are given up), so that joins, graceful
        // leaves and rebalances go on.
        let silent_count = committed.iter().filter(|id| silent(id)).count();
        if 2 * silent_count <= committed.len() {
            return false;
        }
        let live = |id: &str| self.nodes.get(id).is_some_and(Node::is_live);
        let ring = Ring::new(committed.iter().cloned(), self.config.virtual_nodes);
        let n = self.config.replicas_for(committed.len());
        ring.replica_sets(n).any(|set| {
            let ids = || {
                set.as_slice()
                    .iter()
                    .map(|&i| ring.members()[i as usize].as_str())
            };
            !ids().any(live) && ids().any(silent)
        })
    }

    /// True when copies may not be where the committed ring says: see
    /// "Rounds" in the module docs.
    fn must_replace_all(&self) -> bool {
        self.committed.is_none()
            || !self.abandoned.is_empty()
            || self
                .out_of_date
                .iter()
                .any(|id| self.nodes.get(id).is_some_and(Node::is_live))
    }

    fn plan(&self, to: Vec<Member>, full: bool) -> Handoff {
        let from = if full { None } else { self.committed.clone() };
        Handoff {
            from_replicas: self.config.replicas_for(from.as_ref().map_or(0, Vec::len)),
            from,
            to_replicas: self.config.replicas_for(to.len()),
            to,
            sources: self
                .nodes
                .values()
                .filter(|n| n.is_live())
                .map(|n| n.id.clone())
                .collect(),
            virtual_nodes: self.config.virtual_nodes,
        }
    }

    /// The target ring: the up nodes (each has a data address), sorted.
    fn target(&self) -> Vec<Member> {
        self.nodes
            .values()
            .filter(|n| n.state == NodeState::Up)
            .filter_map(|n| {
                Some(Member {
                    id: n.id.clone(),
                    data_addr: n.data_addr.clone()?,
                })
            })
            .collect()
    }

    /// What the epoch stands for: see "The epoch" in the module docs.
    fn routing_state(&self) -> RoutingState {
        RoutingState {
            committed: self.committed.clone(),
            abandoned: self.abandoned.clone(),
            nodes: self
                .nodes
                .values()
                .map(|n| (n.id.clone(), n.state, n.answering, n.data_addr.clone()))
                .collect(),
        }
    }
}

/// The part of the map the epoch names.
#[derive(PartialEq)]
struct RoutingState {
    committed: Option<Vec<NodeId>>,
    abandoned: Vec<Vec<NodeId>>,
    nodes: Vec<(NodeId, NodeState, bool, Option<String>)>,
}
