//! The script cache: the sources EVALSHA runs, by their SHA1, and SCRIPT's
//! subcommands over it.
//!
//! A script runs at the auxiliary that leads its keys
//! (`distcache_core::script`); the cache is the masters'. EVALSHA is
//! turned here into the EVAL of the source it names, so an auxiliary
//! never needs a cache of its own, and any master may be asked:
//!
//! - SCRIPT LOAD keeps a script on the master that loaded it; EVAL keeps
//!   it too, as Redis does, among the last [`MAX_EVALUATED`] scripts
//!   EVAL ran (Redis 7.4's bound: a client that builds a new script for
//!   every call cannot fill the memory).
//! - EVALSHA (and SCRIPT EXISTS) of a script this master does not know
//!   asks the other masters (`POST /internal/scripts/find`), and keeps
//!   what one of them knew. So a script loaded through one master behind
//!   a load balancer runs through every other, and a master that
//!   restarted learns its scripts again as they are asked for.
//! - SCRIPT FLUSH empties every master's cache (`POST
//!   /internal/scripts/flush`; a master that cannot be reached keeps its
//!   own, and answers for it until it is flushed again).
//!
//! The cache is not kept on disk, as Redis's is not: a client whose
//! EVALSHA finds no script gets `NOSCRIPT` and sends EVAL (every Redis
//! client library's script helper does).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use distcache_core::command::{CommandError, Reply};
use distcache_core::script::{self, ScriptOp};
use futures_util::future::join_all;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use tracing::debug;

use super::consensus::Peers;
use crate::security::secret::Credentials;

/// Scripts kept because EVAL ran them, at most; past it the oldest is
/// forgotten. Scripts SCRIPT LOAD kept are never forgotten but by FLUSH.
pub const MAX_EVALUATED: usize = 500;

/// How long EVALSHA waits for the other masters when it does not know a
/// script: past it, `NOSCRIPT`.
pub const PEER_WAIT: Duration = Duration::from_millis(500);

/// Where a master asks the others for a script.
pub const FIND_PATH: &str = "/internal/scripts/find";

/// Where a master tells the others to forget every script.
pub const FLUSH_PATH: &str = "/internal/scripts/flush";

/// The scripts this master knows, and the other masters to ask.
pub struct Scripts {
    known: Mutex<Known>,
    peers: Vec<String>,
    client: Peers,
}

#[derive(Default)]
struct Known {
    /// By SCRIPT LOAD (or found on another master).
    loaded: HashMap<String, Bytes>,
    /// By EVAL, oldest first.
    evaluated: IndexMap<String, Bytes>,
}

impl Known {
    fn get(&self, sha: &str) -> Option<Bytes> {
        self.loaded
            .get(sha)
            .or_else(|| self.evaluated.get(sha))
            .cloned()
    }
}

/// `{"sha": ...}`: which script a master asks for.
#[derive(Debug, Serialize, Deserialize)]
pub struct FindRequest {
    /// The SHA1, lower-case hex.
    pub sha: String,
}

/// The answer: the source in base64, if known.
#[derive(Debug, Serialize, Deserialize)]
pub struct FindAnswer {
    /// The script's source, base64.
    pub source: Option<String>,
}

/// The answer to a flush.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Flushed {
    /// Scripts the master forgot.
    pub forgotten: usize,
}

impl Scripts {
    /// A cache that asks `peers` (the other masters' HTTP addresses)
    /// through `client`.
    pub fn new(peers: Vec<String>, client: Peers) -> Scripts {
        Scripts {
            known: Mutex::new(Known::default()),
            peers,
            client,
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// EVAL is to run `source`: keep it for EVALSHA, if it compiles.
    pub fn evaluated(&self, source: &Bytes) {
        let sha = script::sha1_hex(source);
        {
            let known = self.known();
            if known.loaded.contains_key(&sha) || known.evaluated.contains_key(&sha) {
                return;
            }
        }
        if script::compile(source).is_err() {
            return;
        }
        let mut known = self.known();
        if known.evaluated.len() >= MAX_EVALUATED {
            known.evaluated.shift_remove_index(0);
        }
        known.evaluated.insert(sha, source.clone());
    }

    /// SCRIPT LOAD: keeps `source` and answers its SHA1, or the
    /// compiler's error for a script that does not compile.
    pub fn load(&self, source: &Bytes) -> Result<String, CommandError> {
        script::compile(source)?;
        let sha = script::sha1_hex(source);
        let mut known = self.known();
        known.evaluated.shift_remove(&sha);
        known.loaded.insert(sha.clone(), source.clone());
        Ok(sha)
    }

    /// The source of the script `sha` names, from this master or another.
    pub async fn find(&self, sha: &[u8]) -> Option<Bytes> {
        let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
        if sha.len() != 40 {
            return None;
        }
        if let Some(source) = self.known().get(&sha) {
            return Some(source);
        }
        let asks = self.peers.iter().map(|peer| {
            let body = FindRequest { sha: sha.clone() };
            async move {
                let answer: Result<FindAnswer, _> =
                    self.client.post(peer, FIND_PATH, &body, PEER_WAIT).await;
                match answer {
                    Ok(answer) => answer.source.and_then(|s| STANDARD.decode(s).ok()),
                    Err(e) => {
                        debug!(peer = %peer, error = %e, "a master could not be asked for a script");
                        None
                    }
                }
            }
        });
        let source: Bytes = join_all(asks).await.into_iter().flatten().next()?.into();
        // Only a source whose SHA1 is the one asked for is kept.
        if script::sha1_hex(&source) != sha {
            return None;
        }
        self.known().loaded.insert(sha, source.clone());
        Some(source)
    }

    /// This master's own copy of the script `sha` names.
    fn local(&self, sha: &str) -> Option<Bytes> {
        self.known().get(&sha.to_ascii_lowercase())
    }

    /// Forgets every script here; answers how many.
    fn forget_all(&self) -> usize {
        let mut known = self.known();
        let n = known.loaded.len() + known.evaluated.len();
        *known = Known::default();
        n
    }

    /// SCRIPT and its subcommands.
    pub async fn run(&self, op: &ScriptOp) -> Reply {
        match op {
            ScriptOp::Load(source) => match self.load(source) {
                Ok(sha) => Reply::Bulk(sha.into()),
                Err(e) => Reply::Error(e),
            },
            ScriptOp::Exists(shas) => {
                let found = join_all(shas.iter().map(|sha| self.find(sha))).await;
                Reply::Array(
                    found
                        .into_iter()
                        .map(|source| Reply::Integer(i64::from(source.is_some())))
                        .collect(),
                )
            }
            ScriptOp::Flush => {
                self.forget_all();
                let flushes = self.peers.iter().map(|peer| async move {
                    let answer: Result<Flushed, _> = self
                        .client
                        .post(peer, FLUSH_PATH, &Flushed::default(), PEER_WAIT)
                        .await;
                    if let Err(e) = answer {
                        tracing::warn!(peer = %peer, error = %e, "SCRIPT FLUSH did not reach a master: it keeps its scripts");
                    }
                });
                join_all(flushes).await;
                Reply::OK
            }
            ScriptOp::Kill => Reply::Error(CommandError::Relayed(
                "NOTBUSY No scripts in execution right now.".into(),
            )),
            ScriptOp::Help => Reply::Array(
                script::HELP
                    .iter()
                    .map(|line| Reply::Status((*line).into()))
                    .collect(),
            ),
        }
    }
}

/// The routes the other masters call, behind the cluster secret as every
/// internal route.
pub fn router(scripts: Arc<Scripts>, credentials: Arc<Credentials>) -> Router {
    Router::new()
        .route(FIND_PATH, post(find))
        .route(FLUSH_PATH, post(flush))
        .layer(DefaultBodyLimit::max(4096))
        .with_state(scripts)
        .layer(axum::middleware::from_fn_with_state(
            credentials.secret.clone(),
            crate::security::secret::require_for_internal,
        ))
}

async fn find(
    State(scripts): State<Arc<Scripts>>,
    axum::Json(request): axum::Json<FindRequest>,
) -> axum::Json<FindAnswer> {
    axum::Json(FindAnswer {
        source: scripts
            .local(&request.sha)
            .map(|source| STANDARD.encode(source)),
    })
}

async fn flush(State(scripts): State<Arc<Scripts>>) -> axum::Json<Flushed> {
    axum::Json(Flushed {
        forgotten: scripts.forget_all(),
    })
}
