//! The typed client for the auxiliaries' control routes: `/health` and
//! `POST /internal/handoff`, every call signed with the cluster secret and
//! bounded in time. Background work gets domain errors from here, never an
//! HTTP error meant for a client.

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::config::MasterConfig;
use crate::control_api::{AuxHealth, HandoffReport, HandoffRequest};
use crate::error::StartError;
use crate::security::secret::Credentials;

/// Longest wait for one auxiliary's handoff.
pub const HANDOFF_TIMEOUT: Duration = Duration::from_secs(600);

/// Why a control call did not give an answer.
#[derive(Debug, Error)]
pub enum ControlError {
    /// Nothing listens there (or the network is unreachable): the node is
    /// certainly not serving.
    #[error("{addr}: connection refused: {message}")]
    Refused {
        /// The node's HTTP address.
        addr: String,
        /// What the client said.
        message: String,
    },
    /// No answer in time.
    #[error("{addr}: no answer within {waited_ms} ms")]
    TimedOut {
        /// The node's HTTP address.
        addr: String,
        /// How long it waited.
        waited_ms: u64,
    },
    /// An answer that is not a success, or not what the route returns.
    #[error("{addr}: {message}")]
    Failed {
        /// The node's HTTP address.
        addr: String,
        /// The status and body, or why the body did not parse.
        message: String,
    },
}

impl ControlError {
    /// True when nothing listens at the address: a node that refuses
    /// connections is down for certain, one slow answer is not.
    pub fn refused(&self) -> bool {
        matches!(self, ControlError::Refused { .. })
    }
}

/// Calls auxiliaries' control routes.
#[derive(Clone)]
pub struct AuxControl {
    http: reqwest::Client,
    credentials: Arc<Credentials>,
    timeout: Duration,
}

impl AuxControl {
    /// A client for a master with `config`.
    pub fn new(config: &MasterConfig, credentials: Arc<Credentials>) -> Result<Self, StartError> {
        let http = crate::security::tls::client_builder(config.security.cluster.tls_ca.as_deref())?
            .build()
            .map_err(|e| StartError::Client(e.to_string()))?;
        Ok(AuxControl {
            http,
            credentials,
            timeout: config.request_timeout(),
        })
    }

    /// The HTTP client, for calls to other masters.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The node's `/health`, within `REQUEST_TIMEOUT_MS`.
    pub async fn health(&self, addr: &str) -> Result<AuxHealth, ControlError> {
        self.health_as(addr).await
    }

    /// The node's `/health` read as `T` (a part of it), within
    /// `REQUEST_TIMEOUT_MS`.
    pub async fn health_as<T: serde::de::DeserializeOwned>(
        &self,
        addr: &str,
    ) -> Result<T, ControlError> {
        let url = format!("http://{addr}/health");
        let request = self.http.get(&url);
        self.send(addr, request, self.timeout).await
    }

    /// Asks the node to run `req` (`POST /internal/handoff`) and waits for
    /// its report, up to [`HANDOFF_TIMEOUT`].
    pub async fn handoff(
        &self,
        addr: &str,
        req: &HandoffRequest,
    ) -> Result<HandoffReport, ControlError> {
        let url = format!("http://{addr}/internal/handoff");
        let request = self.credentials.sign(self.http.post(&url)).json(req);
        self.send(addr, request, HANDOFF_TIMEOUT).await
    }

    /// Asks the node to write a snapshot now (`POST /internal/snapshot`),
    /// waiting up to `timeout`.
    pub async fn snapshot_now(&self, addr: &str, timeout: Duration) -> Result<(), ControlError> {
        let url = format!("http://{addr}/internal/snapshot");
        let request = self.credentials.sign(self.http.post(&url));
        self.send_raw(addr, request, timeout).await.map(|_| ())
    }

    /// The node's latest snapshot file (`GET /internal/snapshot`), waiting
    /// up to `timeout`.
    pub async fn snapshot_file(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> Result<bytes::Bytes, ControlError> {
        let url = format!("http://{addr}/internal/snapshot");
        let request = self.credentials.sign(self.http.get(&url));
        self.send_raw(addr, request, timeout).await
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        addr: &str,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<T, ControlError> {
        let body = self.send_raw(addr, request, timeout).await?;
        serde_json::from_slice(&body).map_err(|e| ControlError::Failed {
            addr: addr.to_string(),
            message: format!("unexpected answer: {e}"),
        })
    }

    /// Sends `request` and returns the body of a successful answer.
    async fn send_raw(
        &self,
        addr: &str,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<bytes::Bytes, ControlError> {
        let failed = |message: String| ControlError::Failed {
            addr: addr.to_string(),
            message,
        };
        let call = async {
            let resp = request.send().await.map_err(|e| {
                if e.is_connect() {
                    ControlError::Refused {
                        addr: addr.to_string(),
                        message: e.to_string(),
                    }
                } else {
                    failed(e.to_string())
                }
            })?;
            let status = resp.status();
            if !status.is_success() {
                let body = resp.text().await.unwrap_or_default();
                return Err(failed(format!("{status}: {body}")));
            }
            resp.bytes().await.map_err(|e| failed(e.to_string()))
        };
        tokio::time::timeout(timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(ControlError::TimedOut {
                    addr: addr.to_string(),
                    waited_ms: timeout.as_millis() as u64,
                })
            })
    }
}
