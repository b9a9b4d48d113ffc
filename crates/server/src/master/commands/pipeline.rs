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
use distcache_core::command::{CommandSpec, Reply, table};
use futures_util::future::join_all;

use super::error_reply;
use super::leader::AtLeader;
use super::plan::same_nodes;
use crate::master::data::Route;
use crate::master::{Master, RingView};

/// Commands in the batches waiting to go out, at most: past it they are
/// sent before the next is planned. It bounds a batch's frame, the keys
/// its leader locks at once and the replies held for one connection.
const MAX_PENDING_COMMANDS: usize = 64;

/// Argument bytes in the batches waiting to go out, at most (as above).
const MAX_PENDING_BYTES: usize = 256 * 1024;

/// The commands a batch has room for before it grows.
const BATCH_CAPACITY: usize = 8;

/// One command's answer: its reply, and for a write at one leader how
/// many replicas beyond the leader it reached (WAIT's answer; see
/// [`Master::run_command_reached`]).
pub type Answer = (Reply, Option<usize>);

/// Commands bound for one leader, in the client's order.
struct Batch {
    /// The map the batch was planned over, and its route by that map.
    /// (Its keys are found again only if that map is gone by the time it
    /// is sent: see `Master::at_leader_answer`.)
    view: Arc<RingView>,
    route: Route,
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
    /// Adds the command at `place` to its leader's batch.
    fn add(&mut self, place: usize, command: Piped, plan: Planned, view: &Arc<RingView>) {
        let args = command.args;
        self.commands += 1;
        self.bytes += args.iter().map(Bytes::len).sum::<usize>();
        let batch = match self
            .batches
            .iter_mut()
            .position(|b| same_nodes(&b.route, &plan.route))
        {
            Some(i) => &mut self.batches[i],
            None => {
                // A window's commands usually spread over a few nodes.
                self.batches.push(Batch {
                    view: view.clone(),
                    route: plan.route,
                    members: Vec::with_capacity(BATCH_CAPACITY),
                    commands: Vec::with_capacity(BATCH_CAPACITY),
                });
                self.batches.last_mut().expect("just pushed")
            }
        };
        batch
            .members
            .push((place, plan.spec.has(table::flags::WRITE)));
        batch.commands.push(args);
    }

    fn full(&self) -> bool {
        self.commands >= MAX_PENDING_COMMANDS || self.bytes >= MAX_PENDING_BYTES
    }
}

/// A pipeline's command, with its row of the command table when its name
/// and arity pass (looked up once, by whoever read the command).
pub struct Piped {
    /// The command's row of the table; `None` for an unknown command or a
    /// wrong number of arguments.
    pub spec: Option<&'static CommandSpec>,
    /// The command's name and arguments.
    pub args: Vec<Bytes>,
}

impl Piped {
    /// `args`, looked up in the command table.
    pub fn new(args: Vec<Bytes>) -> Self {
        Piped {
            spec: table::resolve(&args).ok(),
            args,
        }
    }
}

/// Where a command runs when it runs at one leader.
struct Planned {
    spec: &'static CommandSpec,
    route: Route,
}

impl Master {
    /// Runs a pipeline: see the module's overview. The answers are in the
    /// commands' order.
    pub async fn run_pipeline(self: &Arc<Self>, commands: Vec<Piped>) -> Vec<Answer> {
        if commands.len() == 1 {
            let mut commands = commands;
            let command = commands.pop().expect("one command");
            return vec![self.run_command_reached(command.args).await];
        }
        let mut answers: Vec<Option<Answer>> = Vec::new();
        answers.resize_with(commands.len(), || None);
        let mut pending = Pending::default();
        let mut view = self.view.load_full();
        for (place, command) in commands.into_iter().enumerate() {
            // Every command waiting to go out is planned over one map: over
            // two, a key whose route changed between them would be in two
            // batches, which go out at the same time in no set order.
            if pending.commands == 0 {
                view = self.view.load_full();
            }
            let Some(plan) = self.at_one_leader(&view, &command) else {
                self.send(std::mem::take(&mut pending), &mut answers).await;
                answers[place] = Some(self.run_command_reached(command.args).await);
                continue;
            };
            pending.add(place, command, plan, &view);
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

    /// The leader `command` runs at, if it runs at one leader as it is (a
    /// command of the table, not a transaction's own, over keys that share
    /// their replicas); `None` for anything else, which runs alone.
    ///
    /// A read whose arguments do not parse goes with the others: its
    /// leader parses it and answers the error in its place, having run
    /// nothing, as it would alone. A write is parsed first, and one that
    /// does not parse runs alone: in a batch it would make the batch a
    /// write, which only the leader may take (a read beside it would lose
    /// its fallback to the next replica).
    fn at_one_leader(&self, view: &RingView, command: &Piped) -> Option<Planned> {
        let spec = command.spec?;
        // SCRIPT and EVALSHA need the master's script cache first.
        if spec.has(table::flags::TRANSACTION | table::flags::SCRIPTING)
            || super::runs_everywhere(spec.name)
        {
            return None;
        }
        let args = &command.args;
        if spec.has(table::flags::WRITE) && (spec.parse)(args).is_err() {
            return None;
        }
        let mut keys = spec.key_positions(args).map(|i| &args[i]);
        let route = self.route(view, keys.next()?).ok()?;
        for key in keys {
            if !same_nodes(&self.route(view, key).ok()?, &route) {
                return None;
            }
        }
        Some(Planned { spec, route })
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
            view,
            route,
            members,
            commands,
        } = batch;
        if commands.len() == 1 {
            let args = commands.into_iter().next().expect("one command");
            return vec![(members[0].0, self.run_command_reached(args).await)];
        }
        let write = members.iter().any(|&(_, write)| write);
        let commands: Arc<[Vec<Bytes>]> = commands.into();
        match self
            .at_leader_answer(None, commands.clone(), write, Some((&view, &route)), &[])
            .await
        {
            Ok(AtLeader::Ran(replies, reached)) => members
                .into_iter()
                .zip(replies)
                .map(|((place, write), reply)| {
                    let counted = super::counted_write(write, &reply, reached);
                    (place, (reply, counted))
                })
                .collect(),
            Ok(AtLeader::WatchFailed) => unreachable!("nothing was watched"),
            Ok(AtLeader::Moved | AtLeader::TooLarge) => {
                let mut answers = Vec::with_capacity(commands.len());
                for ((place, _), args) in members.into_iter().zip(commands.iter()) {
                    answers.push((place, self.run_command_reached(args.clone()).await));
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
