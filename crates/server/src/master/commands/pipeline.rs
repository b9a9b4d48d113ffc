//! A pipeline: one client's commands, each on its own, answered in order
//! as if they ran one after another (RESP pipelining, `POST /pipeline`).
//!
//! Run one by one, a pipeline of 16 GETs costs 16 round trips to the
//! auxiliaries, each in its own frame and system calls. Here the commands
//! whose keys share their replicas are sent to their leader together, in
//! one `Execute` frame, in the client's order; the batches of different
//! nodes go out at the same time.
//!
//! Why the answers are those of one-by-one:
//!
//! - A key's commands are all in one batch (a key has one route), in the
//!   client's order, and the leader runs a batch in order. Batches of
//!   different nodes share no key, so none can see another's effect.
//! - A command that is not run at one leader (KEYS, an MGET split over
//!   nodes, a transaction's own commands, one the planner refuses) waits
//!   for every batch before it and runs alone before anything after it.
//! - The leader runs a batch atomically, at one version: more than a
//!   pipeline promises, and no cost to it. If nothing ran (the map moved
//!   so the keys are no longer together, one result would exceed the
//!   value limit or the store, or the answer would not fit one frame
//!   back), the batch's commands run again one by one; nothing having
//!   run, none runs twice.
//! - An error that leaves a batch's fate unknown (a timeout) answers each
//!   of its commands with that error, as it would have answered each alone.

use std::sync::Arc;

use bytes::Bytes;
use distcache_core::command::{Reply, table};
use futures_util::future::join_all;

use super::error_reply;
use super::leader::AtLeader;
use crate::master::data::Route;
use crate::master::{Master, RingView};

/// Commands in the batches waiting to go out, at most: past it they are
/// sent before the next is planned. It bounds a batch's frame, the keys
/// its leader locks at once and the replies held for one connection.
const MAX_PENDING_COMMANDS: usize = 64;

/// Argument bytes in the batches waiting to go out, at most (as above).
const MAX_PENDING_BYTES: usize = 256 * 1024;

/// One command's answer: its reply, and for a write at one leader how
/// many replicas beyond the leader it reached (WAIT's answer; see
/// [`Master::run_command_reached`]).
pub type Answer = (Reply, Option<usize>);

/// Commands bound for one leader, in the client's order.
struct Batch {
    route: Route,
    /// Their keys, sorted, without repeats.
    keys: Vec<Bytes>,
    /// Each command's place in the pipeline, and whether it writes.
    members: Vec<(usize, bool)>,
    commands: Vec<Vec<Bytes>>,
}

/// The batches planned and not yet sent.
#[derive(Default)]
struct Pending {
    batches: Vec<Batch>,
    commands: usize,
    bytes: usize,
}

impl Pending {
    fn add(&mut self, place: usize, args: Vec<Bytes>, plan: Planned) {
        self.commands += 1;
        self.bytes += args.iter().map(Bytes::len).sum::<usize>();
        let same = |b: &&mut Batch| {
            b.route.len() == plan.route.len()
                && b.route.iter().zip(&plan.route).all(|(a, c)| a.id == c.id)
        };
        let batch = match self.batches.iter_mut().find(same) {
            Some(batch) => batch,
            None => {
                self.batches.push(Batch {
                    route: plan.route,
                    keys: Vec::new(),
                    members: Vec::new(),
                    commands: Vec::new(),
                });
                self.batches.last_mut().expect("just pushed")
            }
        };
        for key in plan.keys {
            if let Err(at) = batch.keys.binary_search(&key) {
                batch.keys.insert(at, key);
            }
        }
        batch.members.push((place, plan.write));
        batch.commands.push(args);
    }

    fn full(&self) -> bool {
        self.commands >= MAX_PENDING_COMMANDS || self.bytes >= MAX_PENDING_BYTES
    }
}

/// Where a command runs when it runs at one leader.
struct Planned {
    route: Route,
    keys: Vec<Bytes>,
    write: bool,
}

impl Master {
    /// Runs a pipeline: see the module's overview. The answers are in the
    /// commands' order.
    pub async fn run_pipeline(self: &Arc<Self>, commands: Vec<Vec<Bytes>>) -> Vec<Answer> {
        if commands.len() == 1 {
            let mut commands = commands;
            let args = commands.pop().expect("one command");
            return vec![self.run_command_reached(args).await];
        }
        let mut answers: Vec<Option<Answer>> = Vec::new();
        answers.resize_with(commands.len(), || None);
        let mut pending = Pending::default();
        let mut view = self.view.load_full();
        for (place, args) in commands.into_iter().enumerate() {
            // Every command waiting to go out is planned over one map: over
            // two, a key whose route changed between them would be in two
            // batches, which go out at the same time in no set order.
            if pending.commands == 0 {
                view = self.view.load_full();
            }
            let Some(plan) = self.at_one_leader(&view, &args) else {
                self.send(std::mem::take(&mut pending), &mut answers).await;
                answers[place] = Some(self.run_command_reached(args).await);
                continue;
            };
            pending.add(place, args, plan);
            if pending.full() {
                self.send(std::mem::take(&mut pending), &mut answers).await;
            }
        }
        self.send(pending, &mut answers).await;
        answers
            .into_iter()
            .map(|answer| answer.expect("every command of the pipeline was sent"))
            .collect()
    }

    /// The leader `args` runs at, if it runs at one leader as it is (a
    /// valid data command, not a transaction's own, over keys that share
    /// their replicas); `None` for anything else, which runs alone.
    fn at_one_leader(&self, view: &RingView, args: &[Bytes]) -> Option<Planned> {
        let spec = table::resolve(args).ok()?;
        if spec.has(table::flags::TRANSACTION) || super::runs_everywhere(spec.name) {
            return None;
        }
        (spec.parse)(args).ok()?;
        let keys = super::plan::keys_of(spec, args);
        let first = keys.first()?;
        if !self.together(view, &keys).ok()? {
            return None;
        }
        Some(Planned {
            route: self.route(view, first).ok()?,
            keys,
            write: spec.has(table::flags::WRITE),
        })
    }

    /// Sends every pending batch, at the same time, and puts their answers
    /// in their places.
    async fn send(self: &Arc<Self>, pending: Pending, answers: &mut [Option<Answer>]) {
        let runs = pending
            .batches
            .into_iter()
            .map(|batch| self.run_batch(batch));
        for (place, answer) in join_all(runs).await.into_iter().flatten() {
            answers[place] = Some(answer);
        }
    }

    /// One batch at its leader, or its commands one by one if nothing ran.
    async fn run_batch(self: &Arc<Self>, batch: Batch) -> Vec<(usize, Answer)> {
        let Batch {
            keys,
            members,
            commands,
            ..
        } = batch;
        if commands.len() == 1 {
            let args = commands.into_iter().next().expect("one command");
            return vec![(members[0].0, self.run_command_reached(args).await)];
        }
        let write = members.iter().any(|&(_, write)| write);
        match self.at_leader_answer(&keys, &commands, write).await {
            Ok(AtLeader::Ran(replies, reached)) => members
                .into_iter()
                .zip(replies)
                .map(|((place, write), reply)| (place, (reply, write.then_some(reached))))
                .collect(),
            Ok(AtLeader::Moved | AtLeader::TooLarge) => {
                let mut answers = Vec::with_capacity(commands.len());
                for ((place, _), args) in members.into_iter().zip(commands) {
                    answers.push((place, self.run_command_reached(args).await));
                }
                answers
            }
            Err(e) => {
                let reply = error_reply(e);
                members
                    .into_iter()
                    .map(|(place, _)| (place, (reply.clone(), None)))
                    .collect()
            }
        }
    }
}
