//! TLS beyond the API's own listener: the console's TCP listener speaks TLS with the API's
//! certificate (`[api.tls]`), and `leased console attach --tls` verifies it.
//!
//! Why here: the API crate already owns the rustls policy (ring provider, TLS 1.2 and 1.3,
//! PEM loading); the console reuses it rather than growing a second one.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use leased_config::TlsSettings;
pub use rustls;
pub use tokio_rustls::TlsAcceptor;

/// The first byte of a TLS connection (a handshake record); anything else is plaintext.
pub const HANDSHAKE_RECORD: u8 = 0x16;

/// The console's TLS acceptor: the API's certificate and key, no ALPN (the console speaks its
/// own line protocol, not HTTP).
pub fn console_acceptor(tls: &TlsSettings) -> anyhow::Result<TlsAcceptor> {
    let mut config = crate::tls_config(tls)?;
    config.alpn_protocols.clear();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A client config that trusts the PEM certificates in `ca` (a private CA, or a self-signed
/// server certificate itself), or else the Mozilla root store (webpki-roots).
pub fn client_config(ca: Option<&Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .with_context(|| format!("cannot read CA file {}", path.display()))?
                .collect::<Result<_, _>>()
                .with_context(|| format!("bad PEM in {}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(anyhow!("no usable certificate in {}", path.display()));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
