//! Commands over HTTP, as Upstash's REST API takes them, so that its SDKs
//! work unchanged (DESIGN: protocols on the master; docs/commands.md says
//! what a client sees).
//!
//! - `POST /`: one command as a JSON array (`["HSET","k","f","v"]`),
//!   answered `{"result": ...}` (200) or `{"error": "ERR ..."}` (400; 403
//!   for `NOPERM`).
//! - `POST /pipeline`: an array of commands, each on its own, answered as
//!   if run one after another ([`Master::run_pipeline`], which sends those
//!   bound for one auxiliary together); 200 with an array of `{"result"}` /
//!   `{"error"}`.
//! - `POST /multi-exec`: an array of commands run as one transaction
//!   (MULTI ... EXEC through a [`CommandSession`]); 200 with an array of
//!   `{"result"}` / `{"error"}`, or a 400 `EXECABORT` (403 when a command
//!   needs a role the token lacks) when a command is refused while
//!   queueing: then none runs.
//!
//! The route table lets in any valid token ([`Need::Command`]); each
//! command then needs its own role from the command table. HTTP keeps no
//! session, so MULTI, EXEC and DISCARD are refused in a body: a
//! transaction is `/multi-exec`. [`body`] reads the requests, [`json`]
//! writes the replies.
//!
//! [`Need::Command`]: crate::security::auth::Need::Command

mod body;
pub mod json;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use distcache_core::command::table::flags;
use distcache_core::command::{CommandError, Reply, table};

use self::body::BodyError;
use self::json::Encoding;
use super::Master;
use super::commands::{CommandSession, Piped};
use crate::http::json_bytes;
use crate::metrics::{CommandMetrics, UNKNOWN_COMMAND};
use crate::security::auth::{self, Role};

/// The request header that asks for base64 strings, and its one value.
const ENCODING_HEADER: &str = "upstash-encoding";

/// Why MULTI, EXEC and DISCARD are refused over HTTP.
const NO_SESSION: &str = "MULTI, EXEC and DISCARD need a session, which HTTP does not keep: send a transaction's commands to POST /multi-exec";

/// `POST /`: one command.
pub(super) async fn command(
    State(master): State<Arc<Master>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let caller = Caller::of(&master, &headers, body)?;
    let args = body::command(&caller.body)?;
    let reply = caller.run(args).await;
    let mut out = Vec::with_capacity(64);
    json::write_answer(&reply, caller.encoding, &mut out);
    Ok(json_bytes(status_of(&reply), out))
}

/// `POST /pipeline`: commands one after another, each on its own.
pub(super) async fn pipeline(
    State(master): State<Arc<Master>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let caller = Caller::of(&master, &headers, body)?;
    let commands = caller.commands()?;
    let started = Instant::now();
    let labels: Vec<&'static str> = commands.iter().map(|args| label_of(args)).collect();
    // A refused command is answered at once and runs nowhere; the others
    // go to the cluster as one pipeline. PUBLISH and PUBSUB are answered
    // by this master, in their place: the data commands before one run
    // first, those after it after.
    let mut replies: Vec<Option<Reply>> = Vec::with_capacity(commands.len());
    let mut places = Vec::with_capacity(commands.len());
    let mut runnable = Vec::with_capacity(commands.len());
    for (place, args) in commands.into_iter().enumerate() {
        if let Some(reply) = answered_here(&args) {
            replies.push(Some(reply));
            continue;
        }
        match caller.check(&args) {
            Ok(()) if is_pubsub(&args) => {
                let before = std::mem::take(&mut runnable);
                let answers = master.run_pipeline(before).await;
                for (place, (reply, _)) in places.drain(..).zip(answers) {
                    replies[place] = Some(reply);
                }
                replies.push(Some(master.pubsub.command(&args).await));
            }
            Ok(()) => {
                replies.push(None);
                places.push(place);
                runnable.push(Piped::new(args));
            }
            Err(e) => replies.push(Some(Reply::Error(e))),
        }
    }
    for (place, (reply, _)) in places.into_iter().zip(master.run_pipeline(runnable).await) {
        replies[place] = Some(reply);
    }
    let took = started.elapsed();
    let mut out = Vec::with_capacity(64 * replies.len());
    out.push(b'[');
    for (i, (reply, label)) in replies.into_iter().zip(labels).enumerate() {
        let reply = reply.expect("every command of the pipeline was answered");
        master
            .metrics
            .commands
            .observe(label, !reply.is_error(), Some(took));
        if i > 0 {
            out.push(b',');
        }
        json::write_answer(&reply, caller.encoding, &mut out);
    }
    out.push(b']');
    Ok(json_bytes(StatusCode::OK, out))
}

/// `POST /multi-exec`: commands as one transaction.
pub(super) async fn multi_exec(
    State(master): State<Arc<Master>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let caller = Caller::of(&master, &headers, body)?;
    let commands = caller.commands()?;
    let metrics = &master.metrics.commands;
    let labels: Vec<&'static str> = commands.iter().map(|args| label_of(args)).collect();
    let mut session = CommandSession::new();
    session
        .handle(&master, vec![Bytes::from_static(b"MULTI")])
        .await;
    // The first command refused while queueing, for the EXECABORT message.
    let mut refused: Option<(usize, CommandError)> = None;
    for (i, args) in commands.into_iter().enumerate() {
        let queued = match caller.check_in_transaction(&args) {
            Ok(()) => session.handle(&master, args).await,
            Err(e) => session.refuse(e),
        };
        if let Reply::Error(e) = queued {
            metrics.observe(labels[i], false, None);
            refused.get_or_insert((i, e));
        }
    }
    let started = Instant::now();
    let reply = session
        .handle(&master, vec![Bytes::from_static(b"EXEC")])
        .await;
    metrics.observe("exec", !reply.is_error(), Some(started.elapsed()));
    Ok(exec_answer(
        reply,
        refused,
        &labels,
        metrics,
        caller.encoding,
    ))
}

/// EXEC's answer as `/multi-exec` gives it: an array of `{"result"}` /
/// `{"error"}` (each command counted by its result), or the EXECABORT
/// refusal naming the first command refused while queueing.
fn exec_answer(
    reply: Reply,
    refused: Option<(usize, CommandError)>,
    labels: &[&'static str],
    metrics: &CommandMetrics,
    encoding: Encoding,
) -> Response {
    match reply {
        Reply::Array(replies) => {
            let mut out = Vec::with_capacity(64 * replies.len());
            out.push(b'[');
            for (i, reply) in replies.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let label = labels.get(i).copied().unwrap_or(UNKNOWN_COMMAND);
                metrics.observe(label, !reply.is_error(), None);
                json::write_answer(reply, encoding, &mut out);
            }
            out.push(b']');
            json_bytes(StatusCode::OK, out)
        }
        Reply::Error(abort) => match refused {
            Some((i, first)) => Refusal {
                status: status_of_error(&first),
                message: format!("{abort} Command {i} was refused: {first}"),
            },
            None => Refusal {
                status: StatusCode::BAD_REQUEST,
                message: abort.to_string(),
            },
        }
        .into_response(),
        other => {
            let mut out = Vec::new();
            json::write_answer(&other, encoding, &mut out);
            json_bytes(StatusCode::OK, out)
        }
    }
}

/// One request to a command route: who asks, for which strings.
struct Caller {
    master: Arc<Master>,
    /// The role granted to the request (admin when tokens are off).
    role: Role,
    encoding: Encoding,
    body: Bytes,
}

impl Caller {
    fn of(
        master: &Arc<Master>,
        headers: &HeaderMap,
        body: Result<Bytes, BytesRejection>,
    ) -> Result<Caller, Refusal> {
        let body = body.map_err(|r| Refusal {
            status: r.status(),
            message: format!("ERR {}", r.body_text()),
        })?;
        // The route's edge check let in only valid tokens; a request
        // without one here is refused all the same.
        let role = master.gate.granted_role(headers).ok_or_else(|| Refusal {
            status: StatusCode::UNAUTHORIZED,
            message: "ERR this route needs a bearer token".into(),
        })?;
        let encoding = match headers.get(ENCODING_HEADER) {
            Some(v) if v.as_bytes().eq_ignore_ascii_case(b"base64") => Encoding::Base64,
            _ => Encoding::Text,
        };
        Ok(Caller {
            master: master.clone(),
            role,
            encoding,
            body,
        })
    }

    /// The commands of a pipeline or transaction body, at most
    /// `MAX_BATCH` of them.
    fn commands(&self) -> Result<Vec<Vec<Bytes>>, Refusal> {
        let commands = body::commands(&self.body)?;
        let limit = self.master.config.max_batch;
        if commands.len() > limit {
            return Err(Refusal {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message: format!(
                    "ERR {} commands; the limit is {limit} (MAX_BATCH)",
                    commands.len()
                ),
            });
        }
        Ok(commands)
    }

    /// Whether this front end runs `args` for this caller: a command of
    /// the table, of the right arity, not one of the transaction's own,
    /// and within the caller's role.
    fn check(&self, args: &[Bytes]) -> Result<(), CommandError> {
        let spec = table::resolve(args)?;
        if matches!(spec.name, "watch" | "unwatch") {
            return Err(CommandError::Relayed(
                super::commands::WATCH_NEEDS_RESP.into(),
            ));
        }
        if spec.has(flags::SUBSCRIPTION) {
            return Err(CommandError::Relayed(
                super::pubsub::commands::SUBSCRIBE_NEEDS_RESP.into(),
            ));
        }
        if spec.has(flags::TRANSACTION) {
            return Err(CommandError::Other(NO_SESSION));
        }
        let needs = spec.role();
        if Role::from(needs) > self.role {
            return Err(CommandError::NoPermission {
                command: spec.name,
                needs: needs.name(),
                has: auth::role_name(self.role),
            });
        }
        Ok(())
    }

    /// [`Caller::check`], for a command of `/multi-exec`: PUBLISH and
    /// PUBSUB are answered by this master, which a transaction run at
    /// its keys' leader cannot hold.
    fn check_in_transaction(&self, args: &[Bytes]) -> Result<(), CommandError> {
        self.check(args)?;
        if is_pubsub(args) {
            return Err(CommandError::Relayed(
                super::pubsub::commands::PUBSUB_NOT_IN_TRANSACTION.into(),
            ));
        }
        Ok(())
    }

    /// Runs one command on its own, counted and timed.
    async fn run(&self, args: Vec<Bytes>) -> Reply {
        let started = Instant::now();
        let label = label_of(&args);
        if let Some(reply) = answered_here(&args) {
            return reply;
        }
        let reply = match self.check(&args) {
            Ok(()) if is_pubsub(&args) => self.master.pubsub.command(&args).await,
            Ok(()) => self.master.run_command(args).await,
            Err(e) => Reply::Error(e),
        };
        self.master
            .metrics
            .commands
            .observe(label, !reply.is_error(), Some(started.elapsed()));
        reply
    }
}

/// PING and ECHO, which the RESP listener answers itself and Upstash's
/// REST API answers too (its SDKs' `ping()` is a common health check):
/// PONG, or the argument back. Not in the command table (they touch no
/// key), so not in a `/multi-exec` body either.
fn answered_here(args: &[Bytes]) -> Option<Reply> {
    let name = args.first()?;
    if name.eq_ignore_ascii_case(b"ping") {
        Some(match args {
            [_] => Reply::Status("PONG".into()),
            [_, message] => Reply::Bulk(message.clone()),
            _ => Reply::Error(CommandError::WrongArity("ping")),
        })
    } else if name.eq_ignore_ascii_case(b"echo") {
        Some(match args {
            [_, message] => Reply::Bulk(message.clone()),
            _ => Reply::Error(CommandError::WrongArity("echo")),
        })
    } else {
        None
    }
}

/// Whether `args` is PUBLISH or PUBSUB (the SUBSCRIBE family is refused
/// by [`Caller::check`]).
fn is_pubsub(args: &[Bytes]) -> bool {
    table::resolve(args).is_ok_and(|spec| spec.has(flags::PUBSUB))
}

/// The metrics label of a command: its name in the table, or `unknown`.
fn label_of(args: &[Bytes]) -> &'static str {
    CommandMetrics::label(args.first().map_or(&[][..], |name| name.as_ref()))
}

/// 200 for a reply, else as [`status_of_error`].
fn status_of(reply: &Reply) -> StatusCode {
    match reply {
        Reply::Error(e) => status_of_error(e),
        _ => StatusCode::OK,
    }
}

/// 403 for a refused role, 503 when no replica could serve, 400 for any
/// other error.
fn status_of_error(error: &CommandError) -> StatusCode {
    match error {
        CommandError::NoPermission { .. } => StatusCode::FORBIDDEN,
        // The client did nothing wrong: no replica could serve it now.
        CommandError::ClusterDown(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// A request answered with an error before any command ran: its status
/// and an error line, as `{"error": "..."}`.
pub(super) struct Refusal {
    status: StatusCode,
    message: String,
}

impl From<BodyError> for Refusal {
    fn from(e: BodyError) -> Refusal {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            message: format!("ERR {e}"),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        json_bytes(self.status, json::error_body(&self.message))
    }
}
