//! TLS with rustls and the `ring` crypto provider (aws-lc-rs would need
//! cmake and nasm to build): the public listener's server config from PEM
//! files, and HTTP clients that also trust the CAs in `TLS_CA`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Installs `ring` as the process's default rustls provider. Every entry
/// point that may speak TLS calls it; the second call is a no-op.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The certificates of a PEM file.
pub fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", path.display()))?;
    if certs.is_empty() {
        return Err(anyhow!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// The CA certificates of `TLS_CA`, as a message on error.
pub fn read_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    read_certs(path).map_err(|e| format!("{e:#}"))
}

/// A server config for the public listener: the chain in `cert`, the key in
/// `key` (PKCS#8, PKCS#1 or SEC1 PEM), HTTP/1.1 over ALPN.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs = read_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading a PEM private key from {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and key do not go together")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// An HTTP client builder that trusts the system's CAs and those in `ca`.
pub fn client_builder(ca: Option<&Path>) -> anyhow::Result<reqwest::ClientBuilder> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder();
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("parsing {}", ca.display()))?;
        builder = builder.tls_certs_merge(certs);
    }
    Ok(builder)
}
