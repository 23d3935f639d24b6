//! Mutual TLS for the partner link (`[ha.tls]`): each server presents its certificate, and
//! each checks that the other's chains to the pair's CA *and names the partner* (a DNS name
//! equal to the partner's peer name in `[[ha.peers]]`). A certificate of the same CA issued to
//! another host is refused, so one CA can serve several pairs.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use leased_config::HaTls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::frames::LinkError;

/// Both directions' TLS settings and the name the partner's certificate must carry.
#[derive(Clone)]
pub(crate) struct LinkTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    partner: ServerName<'static>,
}

impl std::fmt::Debug for LinkTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkTls")
            .field("partner", &self.partner)
            .finish_non_exhaustive()
    }
}

fn certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad PEM in {}", path.display()))?;
    if certs.is_empty() {
        return Err(anyhow!("no certificate in {}", path.display()));
    }
    Ok(certs)
}

/// Loads `[ha.tls]` for a link to the peer named `partner`.
pub(crate) fn load(tls: &HaTls, partner: &str) -> anyhow::Result<LinkTls> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs(&tls.cert)?;
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .with_context(|| format!("cannot read the private key {}", tls.key.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs(&tls.ca)?);
    if added == 0 {
        return Err(anyhow!("no usable CA certificate in {}", tls.ca.display()));
    }
    let roots = Arc::new(roots);
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
            .build()
            .context("[ha.tls] client certificate verifier")?;
    let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .context("[ha.tls] cert and key")?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .context("[ha.tls] cert and key")?;
    let partner = ServerName::try_from(partner.to_owned()).map_err(|_| {
        anyhow!("the partner's peer name {partner:?} is no DNS name a certificate can carry")
    })?;
    Ok(LinkTls {
        acceptor: TlsAcceptor::from(Arc::new(server)),
        connector: TlsConnector::from(Arc::new(client)),
        partner,
    })
}

/// A TLS stream of either direction.
pub(crate) enum TlsStream {
    /// This server connected.
    Client(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// This server accepted.
    Server(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl LinkTls {
    /// The client handshake: the partner's certificate must name the partner.
    pub(crate) async fn connect(&self, tcp: TcpStream) -> Result<TlsStream, LinkError> {
        self.connector
            .connect(self.partner.clone(), tcp)
            .await
            .map(|s| TlsStream::Client(Box::new(s)))
            .map_err(|e| LinkError::Tls(e.to_string()))
    }

    /// The server handshake: the client must present a certificate of the pair's CA, and it
    /// must name the partner.
    pub(crate) async fn accept(&self, tcp: TcpStream) -> Result<TlsStream, LinkError> {
        let s = self
            .acceptor
            .accept(tcp)
            .await
            .map_err(|e| LinkError::Tls(e.to_string()))?;
        let (_, conn) = s.get_ref();
        let leaf = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| LinkError::Tls("the partner sent no certificate".into()))?;
        let cert = webpki::EndEntityCert::try_from(leaf)
            .map_err(|e| LinkError::Tls(format!("the partner's certificate: {e}")))?;
        cert.verify_is_valid_for_subject_name(&self.partner)
            .map_err(|_| {
                LinkError::Tls(format!(
                    "the client certificate does not name the partner {:?}",
                    self.partner.to_str()
                ))
            })?;
        Ok(TlsStream::Server(Box::new(s)))
    }
}

impl tokio::io::AsyncRead for TlsStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Client(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::Server(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for TlsStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Client(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::Server(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Client(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
            Self::Server(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Client(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
            Self::Server(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
