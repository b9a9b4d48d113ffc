//! Security (DESIGN: security): who may call what, and what no caller can
//! do to a node however hostile its bytes.
//!
//! # Layout
//!
//! - [`auth`]: bearer tokens with roles (`AUTH_TOKENS`, `AUTH_TOKENS_FILE`),
//!   the table of what each public route needs, and the middleware that
//!   answers 401 and 403.
//! - [`secret`]: the cluster secret (`CLUSTER_SECRET`, `CLUSTER_SECRET_FILE`)
//!   that every internal call carries: registrations, decommissions, peer
//!   forwarding, `/internal/*` on auxiliaries, and `Hello` on the wire.
//! - [`tls`]: rustls for the public listener (`TLS_CERT`, `TLS_KEY`) and the
//!   HTTP client that trusts `TLS_CA` for `https://` masters.
//! - [`limits`]: header size (431) and the body-read timeout (408), plus the
//!   body size (413) checked while reading.
//! - [`serve`]: the hardened HTTP accept loop both roles use: a cap on
//!   concurrent connections (503 past it), hyper's header-read timeout, TLS.
//!
//! The settings are grouped in the structs below, flattened into each role's
//! config so that `--help` lists them with the others.

pub mod auth;
pub mod limits;
pub mod secret;
pub mod serve;
pub mod tls;

use std::path::PathBuf;

use clap::Args;

use crate::config::ConfigError;

/// Default largest total size of a request's headers, in bytes.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Default most concurrent connections on an HTTP port.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default longest wait for a request's headers, in milliseconds.
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// Default longest wait for a request's whole body, in milliseconds.
pub const DEFAULT_BODY_READ_TIMEOUT_MS: u64 = 30_000;

/// The cluster secret and how to reach other nodes; both roles.
#[derive(Args, Debug, Clone, Default)]
pub struct ClusterConfig {
    /// Shared secret every internal call must carry (registration, peer forwarding, /internal/*, the data protocol) [default: none: internal traffic is open]
    #[arg(long, env = "CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,

    /// File holding the cluster secret (surrounding whitespace ignored), instead of CLUSTER_SECRET
    #[arg(long, env = "CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,

    /// PEM file of CA certificates to trust (besides the system's) when calling https:// masters
    #[arg(long, env = "TLS_CA")]
    pub tls_ca: Option<PathBuf>,
}

/// Limits of an HTTP listener; both roles.
#[derive(Args, Debug, Clone)]
pub struct HttpLimits {
    /// Largest total size of a request's headers, in bytes (over it: 431)
    #[arg(long, env = "MAX_HEADER_BYTES", default_value_t = DEFAULT_MAX_HEADER_BYTES)]
    pub max_header_bytes: usize,

    /// Most concurrent connections on the HTTP port (past it: 503 and close)
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Longest wait for a request's headers (and between requests on an idle connection), in milliseconds; then the connection is closed
    #[arg(long, env = "HEADER_READ_TIMEOUT_MS", default_value_t = DEFAULT_HEADER_READ_TIMEOUT_MS)]
    pub header_read_timeout_ms: u64,

    /// Longest wait for a request's whole body, in milliseconds (over it: 408 and close)
    #[arg(long, env = "BODY_READ_TIMEOUT_MS", default_value_t = DEFAULT_BODY_READ_TIMEOUT_MS)]
    pub body_read_timeout_ms: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout_ms: DEFAULT_HEADER_READ_TIMEOUT_MS,
            body_read_timeout_ms: DEFAULT_BODY_READ_TIMEOUT_MS,
        }
    }
}

/// Who may call the public API, and TLS on it; masters only.
#[derive(Args, Debug, Clone, Default)]
pub struct PublicAuthConfig {
    /// Bearer tokens with roles, `token:role,...` (role: read, write or admin; `sha256:<hex>:role` for a hashed token) [default: none: the API is open]
    #[arg(long, env = "AUTH_TOKENS", hide_env_values = true)]
    pub auth_tokens: Option<String>,

    /// File of bearer tokens, one `token:role` or `sha256:<hex>:role` a line (# comments)
    #[arg(long, env = "AUTH_TOKENS_FILE")]
    pub auth_tokens_file: Option<PathBuf>,

    /// Who may read /metrics: `none` (anyone) or `read` (a token of any role, or the cluster secret)
    #[arg(long, env = "METRICS_AUTH", default_value = "none")]
    pub metrics_auth: auth::MetricsAuth,

    /// PEM certificate chain for TLS on the public port (with TLS_KEY) [default: plain HTTP]
    #[arg(long, env = "TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of TLS_CERT
    #[arg(long, env = "TLS_KEY")]
    pub tls_key: Option<PathBuf>,
}

/// Every security setting of a master.
#[derive(Args, Debug, Clone, Default)]
pub struct MasterSecurity {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub auth: PublicAuthConfig,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterConfig,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub limits: HttpLimits,
}

/// Every security setting of an auxiliary.
#[derive(Args, Debug, Clone, Default)]
pub struct AuxSecurity {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterConfig,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub limits: HttpLimits,
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        reason: reason.into(),
    }
}

impl HttpLimits {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(1024..=1024 * 1024).contains(&self.max_header_bytes) {
            return Err(invalid(
                "MAX_HEADER_BYTES",
                "must be between 1024 and 1048576",
            ));
        }
        if self.max_connections == 0 || self.max_connections > 1_000_000 {
            return Err(invalid("MAX_CONNECTIONS", "must be between 1 and 1000000"));
        }
        if self.header_read_timeout_ms == 0 || self.header_read_timeout_ms > 3_600_000 {
            return Err(invalid(
                "HEADER_READ_TIMEOUT_MS",
                "must be between 1 and 3600000",
            ));
        }
        if self.body_read_timeout_ms == 0 || self.body_read_timeout_ms > 3_600_000 {
            return Err(invalid(
                "BODY_READ_TIMEOUT_MS",
                "must be between 1 and 3600000",
            ));
        }
        Ok(())
    }

    /// The header-read timeout.
    pub fn header_read_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.header_read_timeout_ms)
    }

    /// The body-read timeout.
    pub fn body_read_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.body_read_timeout_ms)
    }
}

impl ClusterConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        secret::ClusterSecret::load(self)?;
        if let Some(ca) = &self.tls_ca {
            tls::read_ca(ca).map_err(|e| invalid("TLS_CA", e))?;
        }
        Ok(())
    }
}

impl MasterSecurity {
    /// Checks every security setting, reading the files they name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.limits.validate()?;
        self.cluster.validate()?;
        let tokens = auth::Tokens::load(&self.auth)?;
        let secret = secret::ClusterSecret::load(&self.cluster)?;
        if !tokens.is_empty() && secret.is_none() {
            return Err(invalid(
                "CLUSTER_SECRET",
                "AUTH_TOKENS is set but CLUSTER_SECRET is not: auxiliaries could not \
                 register and masters could not pass registrations on; set \
                 CLUSTER_SECRET (or CLUSTER_SECRET_FILE) on every node",
            ));
        }
        match (&self.auth.tls_cert, &self.auth.tls_key) {
            (Some(cert), Some(key)) => {
                tls::server_config(cert, key).map_err(|e| invalid("TLS_CERT", format!("{e:#}")))?;
            }
            (Some(_), None) => return Err(invalid("TLS_KEY", "TLS_CERT is set; set TLS_KEY too")),
            (None, Some(_)) => return Err(invalid("TLS_CERT", "TLS_KEY is set; set TLS_CERT too")),
            (None, None) => {}
        }
        Ok(())
    }
}

impl AuxSecurity {
    /// Checks every security setting, reading the files they name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.limits.validate()?;
        self.cluster.validate()
    }
}

/// The base URL of a node address: `host:port` means `http://host:port`;
/// `http://` and `https://` addresses are kept (without a trailing `/`).
pub fn base_url(addr: &str) -> String {
    let addr = addr.trim_end_matches('/');
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// True for `host:port`, `http://host:port` or `https://host:port`.
pub fn is_node_address(addr: &str) -> bool {
    let rest = addr
        .strip_prefix("https://")
        .or_else(|| addr.strip_prefix("http://"))
        .unwrap_or(addr);
    crate::config::is_host_port(rest.trim_end_matches('/'))
}
