//! TLS with rustls and the `ring` crypto provider (aws-lc-rs would need
//! cmake and nasm to build): the public listener's server config from PEM
//! files, and HTTP clients that also trust the CAs in `TLS_CA`.

use std::path::Path;
use std::sync::Arc;

use crate::error::StartError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Installs `ring` as the process's default rustls provider. Every entry
/// point that may speak TLS calls it; the second call is a no-op.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The certificates of a PEM file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, StartError> {
    let tls = |what, reason: String| StartError::Tls {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls("reading", e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls("parsing", e.to_string()))?;
    if certs.is_empty() {
        return Err(tls("reading", "it holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// The CA certificates of `TLS_CA`, as a message on error.
pub fn read_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    read_certs(path).map_err(|e| e.to_string())
}

/// A server config for the public listener: the chain in `cert`, the key in
/// `key` (PKCS#8, PKCS#1 or SEC1 PEM), HTTP/1.1 over ALPN.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, StartError> {
    let certs = read_certs(cert)?;
    let tls = |what, path: &Path, reason: String| StartError::Tls {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| tls("reading a PEM private key from", key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls("choosing TLS versions for", cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| {
            tls(
                "pairing the certificate with the key in",
                key,
                format!("they do not go together: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// An HTTP client builder that trusts the system's CAs and those in `ca`.
pub fn client_builder(ca: Option<&Path>) -> Result<reqwest::ClientBuilder, StartError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder();
    if let Some(ca) = ca {
        let tls = |what, reason: String| StartError::Tls {
            what,
            path: ca.to_path_buf(),
            reason,
        };
        let pem = std::fs::read(ca).map_err(|e| tls("reading", e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| tls("parsing", e.to_string()))?;
        builder = builder.tls_certs_merge(certs);
    }
    Ok(builder)
}
