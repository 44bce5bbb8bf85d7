//! TLS on both legs: a rustls acceptor for clients and a connector for the upstream.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::{ClientTls, UpstreamTlsMode};

/// ALPN protocol name PostgreSQL 17+ uses for TLS connections.
const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// A TLS setup problem found at start-up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A PEM file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM file holds no usable item.
    #[error("{path} holds no {what} in PEM format")]
    Empty {
        /// The file.
        path: String,
        /// What was expected.
        what: &'static str,
    },
    /// rustls refused the certificate or key.
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// The self-signed certificate could not be generated.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and key in DER form.
pub struct CertifiedKey {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
}

impl CertifiedKey {
    /// Generates a self-signed certificate for `localhost` and `127.0.0.1`.
    pub fn self_signed() -> Result<Self, TlsSetupError> {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
        let rcgen::CertifiedKey { cert, key_pair } = rcgen::generate_simple_self_signed(names)?;
        Ok(Self { chain: vec![cert.der().clone()], key: PrivateKeyDer::Pkcs8(key_pair.serialize_der().into()) })
    }

    /// The certificate chain and key as PEM text (used to configure PostgreSQL in tests).
    pub fn self_signed_pem() -> Result<(String, String), TlsSetupError> {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let rcgen::CertifiedKey { cert, key_pair } = rcgen::generate_simple_self_signed(names)?;
        Ok((cert.pem(), key_pair.serialize_pem()))
    }

    /// Loads a PEM chain and key.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsSetupError> {
        let chain = load_certs(cert)?;
        let key_bytes = read(key)?;
        let key = rustls_pemfile::private_key(&mut key_bytes.as_slice())
            .map_err(|source| TlsSetupError::Read { path: key.display().to_string(), source })?
            .ok_or(TlsSetupError::Empty { path: key.display().to_string(), what: "private key" })?;
        Ok(Self { chain, key })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsSetupError> {
    std::fs::read(path).map_err(|source| TlsSetupError::Read { path: path.display().to_string(), source })
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let bytes = read(path)?;
    let certs = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsSetupError::Read { path: path.display().to_string(), source })?;
    if certs.is_empty() {
        return Err(TlsSetupError::Empty { path: path.display().to_string(), what: "certificate" });
    }
    Ok(certs)
}

/// The client leg's TLS: the acceptor and the certificate it presents.
pub struct ClientTlsSetup {
    /// Accepts TLS handshakes.
    pub acceptor: TlsAcceptor,
    /// The leaf certificate clients see (SCRAM channel binding hashes it).
    pub leaf: CertificateDer<'static>,
}

/// Builds the client-leg acceptor, or `None` when TLS is off.
pub fn acceptor(choice: &ClientTls) -> Result<Option<ClientTlsSetup>, TlsSetupError> {
    let key = match choice {
        ClientTls::Off => return Ok(None),
        ClientTls::SelfSigned | ClientTls::LikeUpstream => CertifiedKey::self_signed()?,
        ClientTls::Files { cert, key } => CertifiedKey::from_pem_files(cert, key)?,
    };
    let leaf = key.chain[0].clone();
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(key.chain, key.key)?;
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    Ok(Some(ClientTlsSetup { acceptor: TlsAcceptor::from(Arc::new(config)), leaf }))
}

/// Builds the upstream connector for `mode`, or `None` for `disable`.
pub fn connector(mode: UpstreamTlsMode, ca: Option<&Path>) -> Result<Option<TlsConnector>, TlsSetupError> {
    let builder = ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let mut config = match mode {
        UpstreamTlsMode::Disable => return Ok(None),
        UpstreamTlsMode::Prefer | UpstreamTlsMode::Require => {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(EncryptOnly::new())).with_no_client_auth()
        }
        UpstreamTlsMode::VerifyFull => {
            let mut roots = RootCertStore::empty();
            match ca {
                Some(path) => {
                    for cert in load_certs(path)? {
                        roots.add(cert)?;
                    }
                }
                None => {
                    for cert in rustls_native_certs::load_native_certs().certs {
                        let _ = roots.add(cert);
                    }
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    Ok(Some(TlsConnector::from(Arc::new(config))))
}

/// The server name to present and verify for `host`.
pub fn server_name(host: &str) -> Result<ServerName<'static>, rustls::pki_types::InvalidDnsNameError> {
    ServerName::try_from(host.to_string())
}

/// Certificate verifier for sslmode prefer/require: libpq encrypts without verifying the
/// certificate in these modes, so we do the same, but still check the handshake signatures.
#[derive(Debug)]
pub struct EncryptOnly(Arc<CryptoProvider>);

impl EncryptOnly {
    /// A verifier using the ring provider pgvisor uses everywhere.
    pub fn new() -> Self {
        Self(provider())
    }
}

impl Default for EncryptOnly {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
