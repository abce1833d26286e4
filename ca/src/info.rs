//! What the registry and `ca show` record about a certificate: serial, subject, validity,
//! SHA-256 fingerprint and PEM text.

use std::time::SystemTime;

use der::Decode;
use sha2::Digest;
use x509_cert::certificate::Certificate;

use crate::error::{enc, CaError, Result};

/// SHA-256 fingerprint of a DER certificate, as `openssl x509 -fingerprint -sha256` prints it
/// (upper-case hex, colon separated). Fails if `cert_der` is not a certificate.
pub fn fingerprint_sha256(cert_der: &[u8]) -> Result<String> {
    Certificate::from_der(cert_der).map_err(|e| CaError::Certificate {
        reason: e.to_string(),
    })?;
    let digest = sha2::Sha256::digest(cert_der);
    Ok(digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// PEM text of a DER certificate (`CERTIFICATE`).
pub fn cert_pem(cert_der: &[u8]) -> Result<String> {
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, cert_der)
        .map_err(enc("certificate PEM"))
}

/// The SubjectPublicKeyInfo (DER) a certificate certifies.
pub fn certificate_spki(cert_der: &[u8]) -> Result<Vec<u8>> {
    use der::Encode;
    let cert = Certificate::from_der(cert_der).map_err(|e| CaError::Certificate {
        reason: e.to_string(),
    })?;
    cert.tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(enc("subjectPublicKeyInfo"))
}

/// A certificate's validity: notBefore and notAfter.
pub fn certificate_validity(cert_der: &[u8]) -> Result<(SystemTime, SystemTime)> {
    let cert = Certificate::from_der(cert_der).map_err(|e| CaError::Certificate {
        reason: e.to_string(),
    })?;
    let v = cert.tbs_certificate().validity();
    Ok((v.not_before.to_system_time(), v.not_after.to_system_time()))
}

/// The whole days a certificate issued at `now` under an issuer whose certificate ends at
/// `issuer_end` may last: `days` (its profile's), or fewer, so that it does not outlive its
/// issuer (which [`crate::issue_station_cert`] refuses); 0 when the issuer ends within a day.
pub fn days_within_issuer(days: u32, issuer_end: SystemTime, now: SystemTime) -> u32 {
    let left = issuer_end.duration_since(now).unwrap_or_default().as_secs() / 86_400;
    days.min(u32::try_from(left).unwrap_or(u32::MAX))
}

/// What the registry and `ca show` record about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Serial number as lower-case hex (as [`IssuedCert::serial_hex`]).
    pub serial_hex: String,
    /// Subject DN in RFC 4514 form.
    pub subject: String,
    /// Validity as RFC 3339 UTC timestamps.
    pub not_before: String,
    pub not_after: String,
    /// The end of the private key usage period (privateKeyUsagePeriod notAfter, RFC 3280
    /// §4.2.1.4), RFC 3339, when the certificate states one: a Document Signer's or CSCA's
    /// (ICAO Doc 9303-12 Table 6).
    pub key_usage_until: Option<String>,
}

impl CertInfo {
    pub fn parse(cert_der: &[u8]) -> Result<Self> {
        let cert = Certificate::from_der(cert_der).map_err(|e| CaError::Certificate {
            reason: e.to_string(),
        })?;
        let tbs = cert.tbs_certificate();
        let serial = tbs.serial_number().as_bytes();
        let serial = match serial {
            [0, rest @ ..] if !rest.is_empty() => rest,
            s => s,
        };
        let key_usage_until = key_usage_end(&cert)?.map(rfc3339);
        Ok(CertInfo {
            key_usage_until,
            serial_hex: hex::encode(serial),
            subject: tbs.subject().to_string(),
            not_before: rfc3339(tbs.validity().not_before.to_system_time()),
            not_after: rfc3339(tbs.validity().not_after.to_system_time()),
        })
    }
}

/// The end of a certificate's private key usage period (privateKeyUsagePeriod notAfter, RFC
/// 3280 §4.2.1.4), when it states one.
pub fn private_key_usage_end(cert_der: &[u8]) -> Result<Option<SystemTime>> {
    let cert = Certificate::from_der(cert_der).map_err(|e| CaError::Certificate {
        reason: e.to_string(),
    })?;
    key_usage_end(&cert)
}

fn key_usage_end(cert: &Certificate) -> Result<Option<SystemTime>> {
    Ok(cert
        .tbs_certificate()
        .get_extension::<x509_cert::ext::pkix::PrivateKeyUsagePeriod>()
        .map_err(|e| CaError::Certificate {
            reason: format!("privateKeyUsagePeriod: {e}"),
        })?
        .and_then(|(_, p)| p.not_after)
        .map(|t| t.to_system_time()))
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a time from a certificate or CRL (whole seconds, UTC).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from(t)
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}
