//! The cluster secret: one shared value that marks a caller as part of the
//! cluster. Internal HTTP calls carry it in [`SECRET_HEADER`]; internal
//! protocol connections present it with `Hello` before anything else.
//!
//! Comparison hashes both sides with SHA-256 and compares the digests in
//! constant time, so neither the secret's bytes nor its length leak through
//! timing.

use std::sync::Arc;

use axum::http::HeaderMap;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ClusterConfig;
use crate::config::ConfigError;

/// The header internal HTTP calls carry the secret in.
pub const SECRET_HEADER: &str = "x-distcache-secret";

/// The cluster secret, if one is configured.
#[derive(Clone)]
pub struct ClusterSecret {
    value: Bytes,
    digest: [u8; 32],
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl ClusterSecret {
    /// A secret from its value.
    pub fn new(value: impl Into<Bytes>) -> Self {
        let value = value.into();
        ClusterSecret {
            digest: sha256(&value),
            value,
        }
    }

    /// `CLUSTER_SECRET` or the contents of `CLUSTER_SECRET_FILE`; `None`
    /// when neither is set.
    pub fn load(config: &ClusterConfig) -> Result<Option<Self>, ConfigError> {
        let invalid = |setting, reason: String| ConfigError { setting, reason };
        let value = match (&config.cluster_secret, &config.cluster_secret_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "CLUSTER_SECRET_FILE",
                    "set CLUSTER_SECRET or CLUSTER_SECRET_FILE, not both".into(),
                ));
            }
            (Some(s), None) => s.trim().to_string(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| invalid("CLUSTER_SECRET_FILE", format!("{}: {e}", path.display())))?
                .trim()
                .to_string(),
            (None, None) => return Ok(None),
        };
        let setting = if config.cluster_secret.is_some() {
            "CLUSTER_SECRET"
        } else {
            "CLUSTER_SECRET_FILE"
        };
        if value.is_empty() {
            return Err(invalid(setting, "the secret is empty".into()));
        }
        if value.len() > 4096 || value.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
            return Err(invalid(
                setting,
                "the secret must be 1 to 4096 printable ASCII characters without spaces".into(),
            ));
        }
        Ok(Some(ClusterSecret::new(value)))
    }

    /// The secret's bytes, to present to other nodes.
    pub fn value(&self) -> &Bytes {
        &self.value
    }

    /// True if `presented` is the secret, in time independent of both.
    pub fn matches(&self, presented: &[u8]) -> bool {
        sha256(presented).ct_eq(&self.digest).into()
    }

    /// True if the request's headers carry the secret.
    pub fn presented_in(&self, headers: &HeaderMap) -> bool {
        headers
            .get(SECRET_HEADER)
            .is_some_and(|v| self.matches(v.as_bytes()))
    }
}

/// What a node presents when it calls other nodes.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The cluster secret.
    pub secret: Option<ClusterSecret>,
}

impl Credentials {
    /// Loads the secret of `config`.
    pub fn load(config: &ClusterConfig) -> Result<Arc<Self>, ConfigError> {
        Ok(Arc::new(Credentials {
            secret: ClusterSecret::load(config)?,
        }))
    }

    /// `req` with the secret header added, when a secret is set.
    pub fn sign(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.secret {
            Some(s) => req.header(SECRET_HEADER, s.value().as_ref()),
            None => req,
        }
    }

    /// The bytes to present with `Hello` on the internal protocol (empty:
    /// no `Hello`).
    pub fn wire_secret(&self) -> Bytes {
        self.secret
            .as_ref()
            .map(|s| s.value().clone())
            .unwrap_or_default()
    }
}

/// Middleware for an auxiliary's HTTP port: every `/internal/*` route needs
/// the cluster secret when one is set (401 otherwise); `/health` and
/// `/metrics` stay open for probes and scrapers.
pub async fn require_for_internal(
    axum::extract::State(secret): axum::extract::State<Option<ClusterSecret>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let internal = req.uri().path().starts_with("/internal/");
    match &secret {
        Some(s) if internal && !s.presented_in(req.headers()) => crate::http::ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "unauthorized",
            "internal routes need the cluster secret (x-distcache-secret)",
        )
        .into_response(),
        _ => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_secret_matches() {
        let s = ClusterSecret::new("s3cret-value");
        assert!(s.matches(b"s3cret-value"));
        assert!(!s.matches(b"s3cret-valu"));
        assert!(!s.matches(b"s3cret-value "));
        assert!(!s.matches(b""));
    }

    #[test]
    fn a_secret_comes_from_the_variable_or_the_file_not_both() {
        let dir = std::env::temp_dir().join(format!("dc-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, "from-file\n").unwrap();
        let from_file = ClusterSecret::load(&ClusterConfig {
            cluster_secret_file: Some(file.clone()),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
        assert!(from_file.matches(b"from-file"));
        let both = ClusterSecret::load(&ClusterConfig {
            cluster_secret: Some("x".into()),
            cluster_secret_file: Some(file),
            ..Default::default()
        });
        assert_eq!(both.unwrap_err().setting, "CLUSTER_SECRET_FILE");
        let empty = ClusterSecret::load(&ClusterConfig {
            cluster_secret: Some("  ".into()),
            ..Default::default()
        });
        assert_eq!(empty.unwrap_err().setting, "CLUSTER_SECRET");
        assert!(
            ClusterSecret::load(&ClusterConfig::default())
                .unwrap()
                .is_none()
        );
    }
}
