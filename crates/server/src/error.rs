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
    /// A listener could not be bound. One line for the operator: the
    /// cause is part of the message and deliberately not a `#[source]`,
    /// since `{:#}` would print it a second time.
    #[error("cannot listen on {addr} ({setting}): {cause}{}", hint_text(.hint))]
    Bind {
        /// The address.
        addr: String,
        /// What chose the port, as the operator gave it: the variable
        /// (`PORT`) until [`StartError::naming_setting`] says otherwise.
        setting: String,
        /// Why the bind failed.
        cause: std::io::Error,
        /// What to do about it, when the caller knows.
        hint: Option<String>,
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

fn hint_text(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default()
}

impl StartError {
    /// A failed bind of `addr`, whose port the setting `setting` chose.
    pub fn bind(addr: String, setting: &str, cause: std::io::Error) -> StartError {
        StartError::Bind {
            addr,
            setting: setting.to_owned(),
            cause,
            hint: None,
        }
    }

    /// The setting whose port a failed bind was for (`PORT`, `RESP_PORT`).
    pub fn bind_setting(&self) -> Option<&str> {
        match self {
            StartError::Bind { setting, .. } => Some(setting),
            _ => None,
        }
    }

    /// The same error, with a bind's setting named as the operator gave it
    /// (`name` maps the variable, `PORT`, to `--port` when the flag chose
    /// the port). Other errors are unchanged.
    pub fn naming_setting(self, name: impl FnOnce(&str) -> String) -> StartError {
        match self {
            StartError::Bind {
                addr,
                setting,
                cause,
                hint,
            } => StartError::Bind {
                setting: name(&setting),
                addr,
                cause,
                hint,
            },
            other => other,
        }
    }

    /// The same error, with a hint on what to do when a bind failed.
    pub fn with_bind_hint(self, text: String) -> StartError {
        match self {
            StartError::Bind {
                addr,
                setting,
                cause,
                ..
            } => StartError::Bind {
                addr,
                setting,
                cause,
                hint: Some(text),
            },
            other => other,
        }
    }

    /// An I/O error while doing `what`.
    pub fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> StartError {
        move |source| StartError::Io { what, source }
    }
}
