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

/// Bytes of the scripts kept because EVAL ran them, at most.
pub const MAX_EVALUATED_BYTES: usize = 64 << 20;

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
    /// The bytes of their sources.
    evaluated_bytes: usize,
}

impl Known {
    /// Keeps a script EVAL ran, forgetting the oldest past
    /// [`MAX_EVALUATED`] scripts or [`MAX_EVALUATED_BYTES`].
    fn remember_evaluated(&mut self, sha: String, source: Bytes) {
        if self.loaded.contains_key(&sha) || self.evaluated.contains_key(&sha) {
            return;
        }
        self.evaluated_bytes += source.len();
        self.evaluated.insert(sha, source);
        while self.evaluated.len() > MAX_EVALUATED || self.evaluated_bytes > MAX_EVALUATED_BYTES {
            let Some((_, oldest)) = self.evaluated.shift_remove_index(0) else {
                break;
            };
            self.evaluated_bytes -= oldest.len();
        }
    }

    fn get(&self, sha: &str) -> Option<Bytes> {
        self.loaded
            .get(sha)
            .or_else(|| self.evaluated.get(sha))
            .cloned()
    }
}

/// `{"shas": [...]}`: which scripts a master asks for.
#[derive(Debug, Serialize, Deserialize)]
pub struct FindRequest {
    /// The SHA1s, lower-case hex.
    pub shas: Vec<String>,
}

/// The answer: each script's source in base64, if known, in the order
/// asked.
#[derive(Debug, Serialize, Deserialize)]
pub struct FindAnswer {
    /// The scripts' sources, base64.
    pub sources: Vec<Option<String>>,
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
        self.known().remember_evaluated(sha, source.clone());
    }

    /// SCRIPT LOAD: keeps `source` and answers its SHA1, or the
    /// compiler's error for a script that does not compile.
    pub fn load(&self, source: &Bytes) -> Result<String, CommandError> {
        script::compile(source)?;
        let sha = script::sha1_hex(source);
        let mut known = self.known();
        if let Some(evaluated) = known.evaluated.shift_remove(&sha) {
            known.evaluated_bytes -= evaluated.len();
        }
        known.loaded.insert(sha.clone(), source.clone());
        Ok(sha)
    }

    /// The source of the script `sha` names, from this master or another.
    pub async fn find(&self, sha: &[u8]) -> Option<Bytes> {
        self.find_all(std::slice::from_ref(&Bytes::copy_from_slice(sha)))
            .await
            .pop()
            .flatten()
    }

    /// The sources of the scripts `shas` name, in order: this master's,
    /// then, for those it does not know, the other masters' (one call to
    /// each, whatever the number), kept here for next time.
    pub async fn find_all(&self, shas: &[Bytes]) -> Vec<Option<Bytes>> {
        let shas: Vec<String> = shas
            .iter()
            .map(|sha| String::from_utf8_lossy(sha).to_ascii_lowercase())
            .collect();
        let mut found: Vec<Option<Bytes>> = {
            let known = self.known();
            shas.iter().map(|sha| known.get(sha)).collect()
        };
        let missing: Vec<String> = shas
            .iter()
            .zip(&found)
            .filter(|(sha, source)| source.is_none() && sha.len() == 40)
            .map(|(sha, _)| sha.clone())
            .collect();
        if missing.is_empty() || self.peers.is_empty() {
            return found;
        }
        let body = FindRequest {
            shas: missing.clone(),
        };
        let (body, missing_ref) = (&body, &missing);
        let asks = self.peers.iter().map(|peer| async move {
            let answer: Result<FindAnswer, _> =
                self.client.post(peer, FIND_PATH, body, PEER_WAIT).await;
            match answer {
                Ok(answer) if answer.sources.len() == missing_ref.len() => answer.sources,
                Ok(_) => Vec::new(),
                Err(e) => {
                    debug!(peer = %peer, error = %e, "a master could not be asked for scripts");
                    Vec::new()
                }
            }
        });
        let answers = join_all(asks).await;
        let mut learned = HashMap::new();
        for answer in answers {
            for (sha, source) in missing.iter().zip(answer) {
                let Some(source) = source.and_then(|s| STANDARD.decode(s).ok()) else {
                    continue;
                };
                // Only a source whose SHA1 is the one asked for is kept.
                if script::sha1_hex(&source) == *sha {
                    learned.insert(sha.clone(), Bytes::from(source));
                }
            }
        }
        for (sha, source) in shas.iter().zip(found.iter_mut()) {
            if source.is_none() {
                *source = learned.get(sha).cloned();
            }
        }
        // Kept as EVAL keeps scripts (bounded): what another master knew
        // may have been only evaluated there.
        let mut known = self.known();
        for (sha, source) in learned {
            known.remember_evaluated(sha, source);
        }
        found
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
                let found = self.find_all(shas).await;
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
        // SCRIPT EXISTS may ask for many at once: 42 bytes of JSON each.
        .layer(DefaultBodyLimit::max(16 << 20))
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
        sources: request
            .shas
            .iter()
            .map(|sha| scripts.local(sha).map(|source| STANDARD.encode(source)))
            .collect(),
    })
}

async fn flush(State(scripts): State<Arc<Scripts>>) -> axum::Json<Flushed> {
    axum::Json(Flushed {
        forgotten: scripts.forget_all(),
    })
}
