//! Every error of the CA, as one enum with messages that name the field and the rule.

use hsm::HsmError;
use profiles::{CertKind, ProfileError};

/// Every error of the CA. Messages name the field and the rule; none carries key material.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
    #[error("CSR is not a valid PKCS#10 request (RFC 2986 §4): {reason}")]
    CsrMalformed { reason: String },
    #[error("CSR signature algorithm {oid} is not ecdsa-with-SHA256 (1.2.840.10045.4.3.2)")]
    CsrAlgorithm { oid: String },
    #[error("CSR signature does not verify (proof of possession failed, RFC 2986 §3)")]
    CsrSignature,
    #[error("public key is not a P-256 point: {reason}")]
    NotP256 { reason: String },
    #[error("holder {field}: {rule}")]
    Holder { field: &'static str, rule: String },
    #[error(
        "profile '{profile}' is a {actual:?} profile; {operation} needs a {expected:?} profile"
    )]
    WrongProfileKind {
        profile: String,
        operation: &'static str,
        expected: CertKind,
        actual: CertKind,
    },
    #[error("issuer certificate for key '{label}': {rule}")]
    Issuer { label: String, rule: String },
    #[error("certificate notAfter {not_after} would be later than the issuing CA's notAfter {issuer_not_after} (shorten the profile validity or rotate the CA)")]
    OutlivesIssuer {
        not_after: String,
        issuer_not_after: String,
    },
    #[error("revoked entry {index}: {rule}")]
    Revocation { index: usize, rule: String },
    #[error("not a valid X.509 certificate: {reason}")]
    Certificate { reason: String },
    #[error("cannot encode {what}: {reason}")]
    Encoding { what: &'static str, reason: String },
    #[error("CSCA Master List (ICAO Doc 9303-12 §9): {rule}")]
    MasterList { rule: String },
    #[error("operating system random number generator failed: {0}")]
    Random(String),
}

pub type Result<T> = std::result::Result<T, CaError>;

pub(crate) fn enc<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> CaError {
    move |e| CaError::Encoding {
        what,
        reason: e.to_string(),
    }
}
