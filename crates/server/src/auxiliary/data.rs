//! The auxiliary's side of the internal protocol: each request is one
//! store operation, answered inline on the connection's task.

use std::sync::Arc;

use distcache_core::clock::Clock;
use distcache_core::store::{DeleteOutcome, Lookup, SetOutcome, Store};
use distcache_wire::frame::{DeleteStatus, WriteStatus, error_code};
use distcache_wire::{ConnState, Handler, Request, Response};
use prometheus::IntCounter;

use crate::metrics::AuxMetrics;
use crate::security::secret::ClusterSecret;

/// Answers internal-protocol requests from the store.
pub struct DataHandler {
    store: Arc<Store>,
    clock: Clock,
    ops: OpCounters,
    /// When set, a connection must present it with `Hello` before anything
    /// else; until then every request is refused and the connection closed.
    secret: Option<ClusterSecret>,
}

/// Counters resolved once, so that the request path does no label lookup.
struct OpCounters {
    get: IntCounter,
    set: IntCounter,
    delete: IntCounter,
    get_many: IntCounter,
    set_many: IntCounter,
    delete_many: IntCounter,
    other: IntCounter,
}

impl DataHandler {
    /// A handler over `store`, reading the time from `clock`.
    pub fn new(store: Arc<Store>, clock: Clock, metrics: AuxMetrics) -> Self {
        let op = |name: &str| metrics.data_requests.with_label_values(&[name]);
        DataHandler {
            ops: OpCounters {
                get: op("get"),
                set: op("set"),
                delete: op("delete"),
                get_many: op("get_many"),
                set_many: op("set_many"),
                delete_many: op("delete_many"),
                other: op("other"),
            },
            store,
            clock,
            secret: None,
        }
    }

    /// Requires `secret` (if any) on every connection.
    pub fn with_secret(mut self, secret: Option<ClusterSecret>) -> Self {
        self.secret = secret;
        self
    }
}

fn write_status(outcome: SetOutcome) -> WriteStatus {
    match outcome {
        SetOutcome::Stored => WriteStatus::Stored,
        SetOutcome::Stale { held } => WriteStatus::Stale { held },
        SetOutcome::Expired => WriteStatus::Expired,
        SetOutcome::TooLarge => WriteStatus::TooLarge,
    }
}

impl Handler for DataHandler {
    fn handle(&self, req: Request, conn: &mut ConnState) -> Response {
        if let Some(secret) = &self.secret {
            if let Request::Hello { secret: presented } = &req {
                self.ops.other.inc();
                conn.authenticated = secret.matches(presented);
                if conn.authenticated {
                    return Response::Ok;
                }
                conn.close = true;
                return Response::error(error_code::UNAUTHORIZED, "wrong cluster secret");
            }
            if !conn.authenticated {
                self.ops.other.inc();
                conn.close = true;
                return Response::error(
                    error_code::UNAUTHORIZED,
                    "present the cluster secret with Hello first",
                );
            }
        }
        let now = (self.clock)();
        match req {
            Request::Get { key } => {
                self.ops.get.inc();
                // A tombstone is reported with its version, not as a plain
                // miss: a reader that falls back to another replica must be
                // able to tell "deleted" from "not arrived yet".
                match self.store.lookup(&key, now) {
                    Lookup::Live(entry) => Response::Value(entry),
                    Lookup::Deleted(version) => Response::Tombstone(version),
                    Lookup::Absent => Response::NotFound,
                }
            }
            Request::Set { key, entry } => {
                self.ops.set.inc();
                Response::Written(write_status(self.store.set(&key, entry, now)))
            }
            Request::Delete { key, version } => {
                self.ops.delete.inc();
                Response::Deleted(match self.store.delete(&key, version, now) {
                    DeleteOutcome::Deleted => DeleteStatus::Deleted,
                    DeleteOutcome::NotFound => DeleteStatus::NotFound,
                    DeleteOutcome::Stale { held } => DeleteStatus::Stale { held },
                })
            }
            Request::GetMany { keys } => {
                self.ops.get_many.inc();
                Response::Values(keys.iter().map(|k| self.store.lookup(k, now)).collect())
            }
            Request::SetMany { entries } => {
                self.ops.set_many.inc();
                Response::WrittenMany(
                    entries
                        .into_iter()
                        .map(|e| write_status(self.store.set(&e.key, e.entry, now)))
                        .collect(),
                )
            }
            Request::DeleteMany { keys } => {
                self.ops.delete_many.inc();
                for (key, version) in keys {
                    self.store.delete(&key, version, now);
                }
                Response::Ok
            }
            Request::Ping => {
                self.ops.other.inc();
                Response::Pong
            }
            Request::Hello { .. } => {
                // No cluster secret is configured: every peer is welcome.
                self.ops.other.inc();
                Response::Ok
            }
        }
    }
}
