//! The centre's TLS certificate fingerprint: how an operator types it (`--centre-fingerprint`,
//! as `idcentral serve` prints it) and the verifier of the enrolment connection, which accepts
//! exactly the certificate with that SHA-256 and no other (RFC 8446 §4.4.2; the handshake
//! signature is still checked, §4.4.3).

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::error::StationError;

/// A SHA-256 fingerprint in `ca::fingerprint_sha256`'s form (upper-case hex, colons).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Parse `text`: 64 hex digits, upper or lower case, with or without colons.
    pub fn parse(field: &str, text: &str) -> Result<Fingerprint, StationError> {
        let hex: String = text
            .trim()
            .chars()
            .filter(|c| *c != ':')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(StationError::invalid(
                field,
                format!(
                    "{text:?} is not a SHA-256 fingerprint: it must be 64 hex digits, with or \
                     without colons (as `idcentral serve` prints it: `TLS SHA256 Fingerprint=…`)"
                ),
            ));
        }
        Ok(Fingerprint(colons(&hex)))
    }

    /// The SHA-256 of a certificate (DER).
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(colons(&hex::encode_upper(Sha256::digest(der))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn colons(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

/// Accepts exactly the server certificate whose SHA-256 is `expected`; remembers the one it
/// saw otherwise, so that the refusal can name it.
#[derive(Debug)]
pub struct PinnedVerifier {
    expected: Fingerprint,
    seen: Mutex<Option<Fingerprint>>,
    provider: Arc<CryptoProvider>,
}

impl PinnedVerifier {
    pub fn new(expected: Fingerprint, provider: Arc<CryptoProvider>) -> Self {
        PinnedVerifier {
            expected,
            seen: Mutex::new(None),
            provider,
        }
    }

    pub fn expected(&self) -> &Fingerprint {
        &self.expected
    }

    /// The fingerprint of a certificate the server presented that was not the expected one.
    pub fn mismatch(&self) -> Option<Fingerprint> {
        self.seen.lock().ok().and_then(|s| s.clone())
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = Fingerprint::of(end_entity.as_ref());
        if seen == self.expected {
            return Ok(ServerCertVerified::assertion());
        }
        if let Ok(mut s) = self.seen.lock() {
            *s = Some(seen);
        }
        Err(rustls::Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ))
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The client offers TLS 1.3 only.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls13RequiredForQuic,
        ))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_accepted_with_or_without_colons_in_either_case() {
        let up = "AB:".repeat(31) + "CD";
        let a = Fingerprint::parse("f", &up).unwrap();
        let b = Fingerprint::parse("f", &up.replace(':', "").to_lowercase()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), up);
        let e = Fingerprint::parse("centre-fingerprint", "AB:CD")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("centre-fingerprint") && e.contains("64 hex digits"),
            "{e}"
        );
        assert!(Fingerprint::parse("f", &"ZZ".repeat(32)).is_err());
    }

    #[test]
    fn the_fingerprint_is_sha256_in_upper_case_hex_with_colons() {
        // FIPS 180-2 appendix B.1: SHA-256("abc").
        assert_eq!(
            Fingerprint::of(b"abc").as_str(),
            "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        );
    }
}
