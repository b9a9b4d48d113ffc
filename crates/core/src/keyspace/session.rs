//! MULTI/EXEC/DISCARD: per-connection queueing in front of a keyspace.
//!
//! Redis checks only the name and the arity while queueing; an error there
//! answers the command and dooms the transaction (EXEC then answers
//! EXECABORT). Every other error (syntax, WRONGTYPE...) happens when EXEC
//! runs the command, and is one element of EXEC's answer while the other
//! commands still run: Redis has no rollback, and neither do we.

use bytes::Bytes;
use rand::RngCore;

use super::{Keyspace, Outcome, Result};
use crate::command::{Command, CommandError, Reply, table};

/// One connection's transaction state.
#[derive(Clone, Debug, Default)]
pub struct Session {
    /// Commands queued since MULTI (`None`: not in a transaction).
    queued: Option<Vec<Vec<Bytes>>>,
    /// A command was refused while queueing.
    doomed: bool,
}

/// MULTI, EXEC and DISCARD outside a session.
pub(super) fn outside(c: &Command) -> Result<Reply> {
    Err(match c {
        Command::Exec => CommandError::ExecWithoutMulti,
        Command::Discard => CommandError::DiscardWithoutMulti,
        _ => CommandError::Other("MULTI is only available through a session"),
    })
}

impl Session {
    /// A session outside any transaction.
    pub fn new() -> Session {
        Session::default()
    }

    /// Whether MULTI was called and EXEC or DISCARD not yet.
    pub fn in_transaction(&self) -> bool {
        self.queued.is_some()
    }

    /// Handles one argument vector from this connection: queues it inside
    /// a transaction, runs it outside one.
    pub fn handle(
        &mut self,
        ks: &mut Keyspace,
        args: &[Bytes],
        now_ms: u64,
        rng: &mut dyn RngCore,
    ) -> Outcome {
        let reply_only = |reply: Reply| Outcome {
            reply,
            effects: Vec::new(),
        };
        let spec = match table::resolve(args) {
            Ok(spec) => spec,
            // A refused EXEC ends the transaction, in MULTI or not, as in
            // Redis (`execCommandAbort`).
            Err(e @ CommandError::WrongArity("exec")) => {
                self.queued = None;
                self.doomed = false;
                return reply_only(Reply::Error(CommandError::ExecRefused(Box::new(e))));
            }
            Err(e) => {
                if self.queued.is_some() {
                    self.doomed = true;
                }
                return reply_only(Reply::Error(e));
            }
        };
        match (spec.name, self.queued.is_some()) {
            ("multi", true) => reply_only(Reply::Error(CommandError::NestedMulti)),
            ("multi", false) => {
                self.queued = Some(Vec::new());
                self.doomed = false;
                reply_only(Reply::OK)
            }
            ("discard", true) => {
                self.queued = None;
                self.doomed = false;
                reply_only(Reply::OK)
            }
            ("exec", true) => {
                let queued = self.queued.take().unwrap_or_default();
                if std::mem::take(&mut self.doomed) {
                    return reply_only(Reply::Error(CommandError::ExecAbort));
                }
                let mut replies = Vec::with_capacity(queued.len());
                let mut effects = Vec::new();
                for args in &queued {
                    let outcome = run(ks, args, now_ms, rng);
                    replies.push(outcome.reply);
                    effects.extend(outcome.effects);
                }
                Outcome {
                    reply: Reply::Array(replies),
                    effects,
                }
            }
            (_, true) => {
                if let Some(q) = self.queued.as_mut() {
                    q.push(args.to_vec());
                }
                reply_only(Reply::Status("QUEUED".into()))
            }
            (_, false) => run(ks, args, now_ms, rng),
        }
    }
}

/// Parses and executes one argument vector (name and arity already good).
fn run(ks: &mut Keyspace, args: &[Bytes], now_ms: u64, rng: &mut dyn RngCore) -> Outcome {
    match table::parse(args) {
        Ok(command) => ks.execute(&command, now_ms, rng),
        Err(e) => Outcome {
            reply: Reply::Error(e),
            effects: Vec::new(),
        },
    }
}
