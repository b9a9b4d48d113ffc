//! One client's command state, shared by both front ends (`POST /` and
//! RESP): MULTI/EXEC/DISCARD queueing in front of [`Master::run_command`]
//! and [`Master::run_transaction`].
//!
//! Redis checks only the name and the arity while queueing; an error there
//! (or a refused role, which the front end reports with
//! [`CommandSession::refuse`]) answers the command and dooms the
//! transaction: EXEC then answers EXECABORT. Every other error (syntax,
//! WRONGTYPE...) happens when EXEC runs, and is one element of EXEC's
//! answer while the other commands still run, as in Redis.
//!
//! WATCH remembers what its keys show ([`Master::watch_keys`]) until EXEC,
//! DISCARD, UNWATCH or RESET forget it; EXEC sends it with the transaction
//! (see `super::watch`). WATCH inside MULTI is refused without dooming
//! the transaction; UNWATCH inside MULTI is queued, as in Redis.

use std::sync::Arc;

use bytes::Bytes;
use distcache_core::command::{CommandError, Reply, table};
use distcache_core::store::Watched;

use crate::master::Master;

/// One client's transaction state.
#[derive(Debug, Default)]
pub struct CommandSession {
    /// Commands queued since MULTI (`None`: not in a transaction).
    queued: Option<Vec<Vec<Bytes>>>,
    /// A command was refused while queueing.
    doomed: bool,
    /// Replicas beyond the leader the last write reached (WAIT's answer).
    last_write_reached: usize,
    /// The keys WATCH named and what each showed then, first watch first.
    watched: Vec<(Bytes, Watched)>,
}

impl CommandSession {
    /// A session outside any transaction.
    pub fn new() -> CommandSession {
        CommandSession::default()
    }

    /// How many replicas beyond its keys' leader this session's last write
    /// reached before it was acknowledged (0 before any write): WAIT's
    /// answer. Only a write that ran at one leader counts.
    pub fn last_write_reached(&self) -> usize {
        self.last_write_reached
    }

    /// Whether MULTI was called and EXEC or DISCARD not yet.
    pub fn in_transaction(&self) -> bool {
        self.queued.is_some()
    }

    /// The front end refused a command (its role, say) with `error`: the
    /// answer to give, after dooming a transaction in progress.
    pub fn refuse(&mut self, error: CommandError) -> Reply {
        if self.queued.is_some() {
            self.doomed = true;
        }
        Reply::Error(error)
    }

    /// The front end refused EXEC itself (its arity, or NOAUTH): as Redis's
    /// `execCommandAbort`, that discards the transaction, in MULTI or not,
    /// and EXECABORT names the refusal.
    pub fn refuse_exec(&mut self, error: CommandError) -> Reply {
        self.queued = None;
        self.doomed = false;
        self.watched.clear();
        Reply::Error(CommandError::ExecRefused(Box::new(error)))
    }

    /// Handles one argument vector: queues it inside a transaction, runs
    /// it outside one. The front end has checked the caller's role.
    pub async fn handle(&mut self, master: &Arc<Master>, args: Vec<Bytes>) -> Reply {
        let spec = match table::resolve(&args) {
            Ok(spec) => spec,
            Err(e @ CommandError::WrongArity("exec")) => return self.refuse_exec(e),
            Err(e) => return self.refuse(e),
        };
        match (spec.name, self.queued.is_some()) {
            ("multi", true) => Reply::Error(CommandError::NestedMulti),
            ("multi", false) => {
                self.queued = Some(Vec::new());
                self.doomed = false;
                Reply::OK
            }
            ("discard", true) => {
                self.queued = None;
                self.doomed = false;
                self.watched.clear();
                Reply::OK
            }
            ("exec", true) => match self.take_queued() {
                Ok(queued) => {
                    let watched = self.take_watched();
                    master.run_transaction(queued, watched).await
                }
                Err(refused) => refused,
            },
            ("watch", true) => Reply::Error(CommandError::NotInMulti("WATCH")),
            ("watch", false) => self.watch(master, &args[1..]).await,
            ("unwatch", false) => {
                self.watched.clear();
                Reply::OK
            }
            ("exec", false) => Reply::Error(CommandError::ExecWithoutMulti),
            ("discard", false) => Reply::Error(CommandError::DiscardWithoutMulti),
            (_, true) => self.queue(args),
            (_, false) => {
                let (reply, reached) = master.run_command_reached(args).await;
                self.ran(reached);
                reply
            }
        }
    }

    /// Queues `args` in the transaction in progress (a front end's own
    /// command, which it runs itself at EXEC: see
    /// [`CommandSession::take_queued`]).
    pub fn queue(&mut self, args: Vec<Bytes>) -> Reply {
        if let Some(q) = self.queued.as_mut() {
            q.push(args);
        }
        Reply::Status("QUEUED".into())
    }

    /// Ends the transaction for EXEC: the commands queued since MULTI, or
    /// the refusal EXEC answers (EXECABORT when a command was refused
    /// while queueing; an error outside a transaction). A front end that
    /// queued commands of its own takes them here and runs the rest with
    /// [`Master::run_transaction`].
    /// The watches go with it: take them with
    /// [`CommandSession::take_watched`]; after EXECABORT they are gone.
    pub fn take_queued(&mut self) -> Result<Vec<Vec<Bytes>>, Reply> {
        let Some(queued) = self.queued.take() else {
            return Err(Reply::Error(CommandError::ExecWithoutMulti));
        };
        if std::mem::take(&mut self.doomed) {
            self.watched.clear();
            return Err(Reply::Error(CommandError::ExecAbort));
        }
        Ok(queued)
    }

    /// The watched keys, for EXEC, which forgets them whatever comes of
    /// it (as Redis's EXEC does).
    pub fn take_watched(&mut self) -> Vec<(Bytes, Watched)> {
        std::mem::take(&mut self.watched)
    }

    /// WATCH outside MULTI: remembers what `keys` show now. A key already
    /// watched keeps what it showed first, as in Redis. Nothing is
    /// remembered if a key could not be read.
    async fn watch(&mut self, master: &Arc<Master>, keys: &[Bytes]) -> Reply {
        match master.watch_keys(keys).await {
            Ok(seen) => {
                for (key, shows) in seen {
                    if !self.watched.iter().any(|(k, _)| *k == key) {
                        self.watched.push((key, shows));
                    }
                }
                Reply::OK
            }
            Err(reply) => reply,
        }
    }

    /// Notes the answer of a command this session's client ran outside a
    /// transaction without [`CommandSession::handle`] (a pipeline's,
    /// through [`Master::run_pipeline`]): what it reached, for WAIT.
    pub fn ran(&mut self, reached: Option<usize>) {
        if let Some(reached) = reached {
            self.last_write_reached = reached;
        }
    }
}
