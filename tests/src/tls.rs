//! Client-side TLS for tests: rustls that accepts any server certificate, as libpq's
//! `sslmode=require` does (encryption without verification).

use std::sync::Arc;

use pgvisor::net::tls::EncryptOnly;
use tokio_postgres_rustls::MakeRustlsConnect;

/// A tokio-postgres TLS connector that encrypts without verifying the server's certificate.
pub fn unverified_tls() -> MakeRustlsConnect {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(EncryptOnly::new()))
        .with_no_client_auth();
    MakeRustlsConnect::new(config)
}
