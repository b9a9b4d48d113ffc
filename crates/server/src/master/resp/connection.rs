//! One RESP connection: a task that reads requests, runs them in order and
//! writes their replies, pipelined: every whole request that has arrived
//! is run before the replies go out, in one write.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use distcache_core::command::{CommandError, Protocol, Reply, table};
use distcache_wire::resp::parse_request;
use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{Instrument, debug, debug_span};

use super::front::{self, Flow};
use super::{ClientInfo, REPLY_FLUSH_BYTES, Registered, RespServer};
use crate::master::commands::CommandSession;
use crate::security::auth::Role;

/// Connection ids, as `CLIENT ID` reports them: unique for the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The read buffer starts at, and shrinks back to, this size.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// The state of one connection that its commands read and change.
pub(super) struct Connection {
    pub(super) server: Arc<RespServer>,
    pub(super) registered: Registered,
    pub(super) id: u64,
    pub(super) protocol: Protocol,
    /// The role AUTH gave (`None`: not authenticated; with no tokens
    /// configured every connection is admin from the start).
    pub(super) role: Option<Role>,
    pub(super) session: CommandSession,
    /// This connection's `resp_commands_total` counters, by command.
    counters: Vec<(&'static str, IntCounter)>,
}

impl Connection {
    /// The role a connection has before any AUTH.
    pub(super) fn initial_role(server: &RespServer) -> Option<Role> {
        server.master.gate.is_open().then_some(Role::Admin)
    }

    /// Runs one request and appends its reply to `out`.
    async fn execute(&mut self, args: Vec<Bytes>, out: &mut Vec<u8>) -> Flow {
        let front = front::lookup(&args[0]);
        let name = match front {
            Some(command) => command.name,
            None => table::lookup(&args[0]).map_or("unknown", |spec| spec.name),
        };
        self.command_counter(name).inc();
        // What CLIENT LIST shows while the command runs, as in Redis.
        self.registered.update(|c| {
            c.last_command_at = Instant::now();
            c.last_command = name;
        });
        let (reply, flow) = match front {
            Some(command) => front::run(self, command, &args).await,
            None => (self.data_command(args).await, Flow::Continue),
        };
        let (protocol, multi) = (self.protocol, self.queued());
        self.registered.update(|c| {
            c.protocol = protocol;
            c.multi = multi;
        });
        reply.write_resp(self.protocol, out);
        flow
    }

    /// The `resp_commands_total` counter of `name`, looked up in the
    /// metric family once per connection and command: the family's lookup
    /// hashes the label and takes its lock, which a pipeline of thousands
    /// of GETs would pay for each.
    fn command_counter(&mut self, name: &'static str) -> &IntCounter {
        let i = match self.counters.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                let counter = self
                    .server
                    .master
                    .metrics
                    .resp
                    .commands
                    .with_label_values(&[name]);
                self.counters.push((name, counter));
                self.counters.len() - 1
            }
        };
        &self.counters[i].1
    }

    /// Commands queued in the transaction, -1 outside one.
    fn queued(&self) -> i64 {
        if self.session.in_transaction() { 0 } else { -1 }
    }

    /// A command of the data table (or an unknown one), after the checks
    /// Redis makes before running it, in its order: the name and the
    /// arity, authentication, then the role.
    async fn data_command(&mut self, args: Vec<Bytes>) -> Reply {
        let spec = match table::resolve(&args) {
            Ok(spec) => spec,
            Err(e) => return self.session.refuse(e),
        };
        let Some(role) = self.role else {
            return self.session.refuse(noauth());
        };
        if !permits(role, spec.role()) {
            return self.session.refuse(noperm(spec.name));
        }
        self.session.handle(&self.server.master, args).await
    }
}

/// Whether a token's role may run a command that needs `need`.
pub(super) fn permits(role: Role, need: table::Role) -> bool {
    let need = match need {
        table::Role::Read => Role::Read,
        table::Role::Write => Role::Write,
        table::Role::Admin => Role::Admin,
    };
    role >= need
}

/// Redis's answer to a command before AUTH when a password is set.
pub(super) fn noauth() -> CommandError {
    CommandError::Line("NOAUTH Authentication required.".into())
}

/// Redis 7.0's answer to a command the user's ACL does not allow.
pub(super) fn noperm(command: &str) -> CommandError {
    CommandError::Line(format!(
        "NOPERM this user has no permissions to run the '{command}' command"
    ))
}

/// Serves one connection until the client leaves, a limit closes it, or
/// the master shuts down.
pub(super) async fn run<S>(server: Arc<RespServer>, stream: S, addr: SocketAddr, laddr: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let span = debug_span!("resp_connection", id, peer = %addr);
    serve(server, stream, id, addr, laddr)
        .instrument(span)
        .await
}

async fn serve<S>(
    server: Arc<RespServer>,
    mut stream: S,
    id: u64,
    addr: SocketAddr,
    laddr: SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let now = Instant::now();
    let registered = server.register(ClientInfo {
        id,
        addr,
        laddr,
        created: now,
        last_command_at: now,
        name: None,
        lib_name: None,
        lib_ver: None,
        protocol: Protocol::Resp2,
        multi: -1,
        last_command: "NULL",
    });
    let mut conn = Connection {
        role: Connection::initial_role(&server),
        server: server.clone(),
        registered,
        id,
        protocol: Protocol::Resp2,
        session: CommandSession::new(),
        counters: Vec::new(),
    };
    let shutdown = server.master.shutdown.clone();
    let rejected = &server.master.metrics.resp.rejected;
    let mut input = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let mut out: Vec<u8> = Vec::with_capacity(READ_BUFFER_BYTES);
    debug!("RESP connection open");
    loop {
        // Run every whole request that has arrived, up to a flush's worth
        // of replies.
        let mut flow = Flow::Continue;
        let mut more = false;
        loop {
            match parse_request(&mut input, &server.limits) {
                Ok(Some(args)) => {
                    flow = conn.execute(args, &mut out).await;
                    if flow == Flow::Close {
                        break;
                    }
                    if out.len() >= REPLY_FLUSH_BYTES {
                        more = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // Redis answers a protocol error, then closes.
                    rejected.with_label_values(&["protocol"]).inc();
                    debug!(error = %e, "RESP protocol error");
                    out.extend_from_slice(format!("-ERR {e}\r\n").as_bytes());
                    flow = Flow::Close;
                    break;
                }
            }
        }
        if !out.is_empty() {
            let write = async {
                stream.write_all(&out).await?;
                stream.flush().await
            };
            match tokio::time::timeout(server.output_timeout, write).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    debug!(error = %e, "RESP write failed");
                    return;
                }
                Err(_) => {
                    rejected.with_label_values(&["output_stalled"]).inc();
                    debug!(
                        unsent = out.len(),
                        "RESP client does not read its replies: disconnected"
                    );
                    return;
                }
            }
            out.clear();
            if out.capacity() > 4 * REPLY_FLUSH_BYTES {
                out.shrink_to(READ_BUFFER_BYTES);
            }
        }
        if flow == Flow::Close {
            let _ = stream.shutdown().await;
            return;
        }
        if more {
            continue;
        }
        if input.len() > server.max_query_bytes {
            rejected.with_label_values(&["query_buffer"]).inc();
            debug!(
                buffered = input.len(),
                "RESP request past the read limit: disconnected"
            );
            return;
        }
        if input.is_empty() && input.capacity() > 4 * READ_BUFFER_BYTES {
            input = BytesMut::with_capacity(READ_BUFFER_BYTES);
        }
        input.reserve(READ_BUFFER_BYTES);
        let read = tokio::select! {
            _ = shutdown.triggered() => return,
            read = stream.read_buf(&mut input) => read,
        };
        match read {
            Ok(0) => {
                debug!("RESP connection closed by the client");
                return;
            }
            Ok(_) => {}
            Err(e) => {
                debug!(error = %e, "RESP read failed");
                return;
            }
        }
    }
}

/// Answers a connection over `MAX_CLIENTS` as Redis does, and closes it.
pub(super) async fn refuse_max_clients(mut stream: TcpStream) {
    let answer = b"-ERR max number of clients reached\r\n";
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), stream.write_all(answer)).await;
}
