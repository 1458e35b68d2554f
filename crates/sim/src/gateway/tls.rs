//! The gateway's TLS side: a self-signed certificate made at start with rcgen for the
//! configured DNS names (what a `Gateway` server's `credentialName` secret holds in a
//! cluster), served with rustls and the ring provider, ALPN `http/1.1` only.

use std::sync::Arc;

use rcgen::{CertificateParams, DnType, KeyPair};
use rustls::{
    ServerConfig,
    pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
};

use super::GatewayError;

/// The server side of the gateway's TLS, and the certificate a client should trust.
pub(crate) struct Identity {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) certificate_pem: String,
}

/// Makes a fresh key and a self-signed certificate whose subject alternative names are
/// `names` (`*.example.test` wildcards included), and a rustls server configuration for it.
pub(crate) fn identity(names: &[String]) -> Result<Identity, GatewayError> {
    if names.is_empty() {
        return Err(GatewayError::Config(
            "certificate_names must name at least one DNS name".into(),
        ));
    }
    let mut params = CertificateParams::new(names.to_vec()).map_err(GatewayError::Certificate)?;
    params
        .distinguished_name
        .push(DnType::CommonName, names[0].clone());
    params
        .distinguished_name
        .push(DnType::OrganizationName, "codeserver-sim gateway");
    let key = KeyPair::generate().map_err(GatewayError::Certificate)?;
    let certificate = params
        .self_signed(&key)
        .map_err(GatewayError::Certificate)?;
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    // NB: the provider is passed in, so the process-wide default need not be installed.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(GatewayError::Tls)?
        .with_no_client_auth()
        .with_single_cert(vec![certificate.der().clone()], private)
        .map_err(GatewayError::Tls)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Identity {
        config: Arc::new(config),
        certificate_pem: certificate.pem(),
    })
}
