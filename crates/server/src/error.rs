//! Why a node could not start or stopped early: the one error type the
//! roles' `bind` and `run` return. Errors a client sees are [`ApiError`]s;
//! these are for the operator, and each names the setting or file at fault.
//!
//! [`ApiError`]: crate::http::ApiError

use std::path::PathBuf;

use crate::config::ConfigError;

/// A node could not start, or its server failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting has a value that cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be bound.
    #[error("binding {addr} ({setting}): {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The setting that chose the port.
        setting: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A TLS file could not be used.
    #[error("{what} {}: {reason}", path.display())]
    Tls {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        reason: String,
    },
    /// Another I/O failure: reading a bound socket's address, or the HTTP
    /// server itself.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client for cluster traffic could not be built.
    #[error("building the HTTP client: {0}")]
    Client(String),
    /// The masters' consensus could not start (a bad master address, or a
    /// damaged Raft directory).
    #[error("starting the masters' consensus: {0}")]
    Consensus(String),
}

impl StartError {
    /// An I/O error while doing `what`.
    pub fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> StartError {
        move |source| StartError::Io { what, source }
    }
}
