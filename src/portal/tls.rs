//! The client's TLS: rustls with the ring provider, TLS 1.2 or later, the operating system's roots
//! (rustls-platform-verifier) plus an optional extra CA bundle, optional SHA-256 pins of the
//! server certificate's SubjectPublicKeyInfo checked after normal validation, and an optional
//! client certificate for mutual TLS.
//!
//! A refused certificate surfaces as [`PortalError::Tls`](super::PortalError::Tls) or
//! [`PortalError::PinMismatch`](super::PortalError::PinMismatch): see [`classify`].

use super::config::TlsConfig;
use super::error::ConfigError;
use base64::Engine as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use sha2::{Digest, Sha256};
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// The ring provider, installed as the process default once (other rustls users in the process,
/// such as a proxy tunnel, then find it too).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    let provider = rustls::crypto::ring::default_provider();
    // Already installed (by us or by the process) is fine.
    let _ = provider.clone().install_default();
    Arc::new(provider)
}

/// Builds the rustls client configuration for `config`.
pub(crate) fn client_config(config: &TlsConfig) -> Result<rustls::ClientConfig, ConfigError> {
    let provider = provider();
    let versions: &[&'static rustls::SupportedProtocolVersion] = match config.min_version.as_deref()
    {
        None | Some("1.2") => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Some("1.3") => &[&rustls::version::TLS13],
        Some(other) => {
            return Err(ConfigError::Tls(format!(
                "min_version {other:?} is not supported (use \"1.2\" or \"1.3\")"
            )));
        }
    };
    let extra_roots = match &config.ca_bundle {
        Some(path) => {
            let certs = read_certs(path)?;
            if certs.is_empty() {
                return Err(ConfigError::Tls(format!(
                    "CA bundle {} holds no certificate",
                    path.display()
                )));
            }
            certs
        }
        None => Vec::new(),
    };
    let pins = config
        .spki_sha256_pins
        .iter()
        .map(|pin| parse_pin(pin))
        .collect::<Result<Vec<_>, _>>()?;
    let roots: Arc<dyn ServerCertVerifier> =
        match rustls_platform_verifier::Verifier::new_with_extra_roots(
            extra_roots,
            provider.clone(),
        ) {
            Ok(verifier) => Arc::new(verifier),
            // No system roots and no extra bundle: every certificate is refused, clearly.
            Err(error) => Arc::new(NoRoots {
                reason: error.to_string(),
                provider: provider.clone(),
            }),
        };
    let verifier = Arc::new(PinningVerifier { inner: roots, pins });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| ConfigError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut tls = match (&config.client_cert, &config.client_key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            if chain.is_empty() {
                return Err(ConfigError::Tls(format!(
                    "client certificate file {} holds no certificate",
                    cert.display()
                )));
            }
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| ConfigError::Tls(format!("client key {}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ConfigError::Tls(format!("client certificate: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(ConfigError::Tls(
                "client_cert and client_key must be given together".into(),
            ));
        }
    };
    // HTTP/1.1 only: one long stream per transfer, and friendliest to inspecting proxies.
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

fn read_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::Tls(format!("{}: {e}", path.display())))
}

/// Parses a pin: 64 hexadecimal digits, or standard base64 of 32 bytes.
pub fn parse_pin(pin: &str) -> Result<[u8; 32], ConfigError> {
    let pin = pin.trim();
    let bytes = if pin.len() == 64 && pin.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&pin[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|e| ConfigError::Tls(format!("pin {pin:?}: {e}")))?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(pin)
            .map_err(|e| ConfigError::Tls(format!("pin {pin:?} is neither hex nor base64: {e}")))?
    };
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        ConfigError::Tls(format!(
            "pin {pin:?} is {} bytes, a SHA-256 is 32",
            bytes.len()
        ))
    })
}

/// The SHA-256 of a DER certificate's SubjectPublicKeyInfo (what a pin names).
pub fn spki_sha256(cert_der: &[u8]) -> Result<[u8; 32], String> {
    let der = CertificateDer::from(cert_der);
    let cert = webpki::EndEntityCert::try_from(&der).map_err(|e| e.to_string())?;
    let spki = cert.subject_public_key_info();
    Ok(Sha256::digest(spki.as_ref()).into())
}

/// The server certificate's public key matches no configured pin.
#[derive(Debug)]
pub(crate) struct PinMismatch {
    pub(crate) actual_base64: String,
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "certificate public key pin mismatch (SPKI SHA-256 {})",
            self.actual_base64
        )
    }
}

impl StdError for PinMismatch {}

/// Validates normally, then checks the pins.
#[derive(Debug)]
struct PinningVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    pins: Vec<[u8; 32]>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        if self.pins.is_empty() {
            return Ok(verified);
        }
        let actual = spki_sha256(end_entity.as_ref())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if self.pins.contains(&actual) {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch {
                    actual_base64: base64::engine::general_purpose::STANDARD.encode(actual),
                })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Trusts nothing: the system has no roots and no bundle was configured.
#[derive(Debug)]
struct NoRoots {
    reason: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoRoots {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Err(rustls::Error::General(format!(
            "no trusted CA certificates ({}); configure tls.ca_bundle",
            self.reason
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What a refused handshake means, found in an error's source chain: a pin mismatch (with the
/// actual pin) or another certificate problem (described).
pub(crate) enum Refusal {
    Pin(String),
    Certificate(String),
}

/// Looks through `error`'s sources for a rustls error.
pub(crate) fn classify(error: &(dyn StdError + 'static)) -> Option<Refusal> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        // An I/O error wrapping another error hides it from `source()`: unwrap it.
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            current = Some(inner);
            continue;
        }
        if let Some(pin) = e.downcast_ref::<PinMismatch>() {
            return Some(Refusal::Pin(pin.actual_base64.clone()));
        }
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            if let rustls::Error::InvalidCertificate(CertificateError::Other(other)) = tls
                && let Some(pin) = other.0.downcast_ref::<PinMismatch>()
            {
                return Some(Refusal::Pin(pin.actual_base64.clone()));
            }
            return Some(Refusal::Certificate(describe(tls)));
        }
        current = e.source();
    }
    None
}

fn describe(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "it is not signed by a trusted CA (unknown issuer); add the portal's CA to \
             tls.ca_bundle if it is a private CA"
                .into()
        }
        rustls::Error::InvalidCertificate(CertificateError::NotValidForName)
        | rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            "it is not valid for the portal's host name".into()
        }
        rustls::Error::InvalidCertificate(CertificateError::Expired)
        | rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
            "it has expired".into()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_as_hex_or_base64() {
        let hex = "00".repeat(31) + "ff";
        assert_eq!(parse_pin(&hex).expect("hex")[31], 0xff);
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(parse_pin(&b64).expect("base64"), [7u8; 32]);
        assert!(parse_pin("abc").is_err());
        assert!(parse_pin(&base64::engine::general_purpose::STANDARD.encode([1u8; 16])).is_err());
    }
}
