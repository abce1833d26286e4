//! The idstation certificate authority: X.509 certificates (RFC 5280 §4) and v2 CRLs
//! (RFC 5280 §5) built from [`profiles`] and signed inside the HSM through [`hsm::KeyStore`].
//!
//! The hierarchy (ARCHITECTURE.md, "The PKI"): a self-signed National Root CA
//! ([`create_root`]), the e-Signature issuing CA signed by it ([`create_subordinate_ca`]),
//! and holder certificates issued by that CA ([`issue`], [`issue_from_csr`]). Every issuing
//! key signs its own CRL ([`issue_crl`]). Keys are ECDSA P-256; the private keys stay in the
//! HSM, only the to-be-signed bytes go in and a DER `Ecdsa-Sig-Value` comes back.
//!
//! The CA generates no keys: the caller creates the HSM key (`KeyStore::generate_p256`) and
//! passes its label. Each call takes `now` so the caller (and tests) decide the clock.
//!
//! ```no_run
//! # fn demo(store: &dyn hsm::KeyStore, holder_spki: &[u8]) -> Result<(), ca::CaError> {
//! use std::time::SystemTime;
//! let profiles = profiles::builtin()?;
//! let now = SystemTime::now();
//! store.generate_p256("root-2026")?;
//! let root = ca::create_root(store, profiles.cert("root-ca")?, "root-2026", now)?;
//! store.generate_p256("esign-2026")?;
//! let esign = ca::create_subordinate_ca(store, profiles.cert("esign-ca")?, &root, "esign-2026", now)?;
//! let country = profiles.document("id-card")?.country.clone();
//! let holder = ca::HolderSubject {
//!     pinfl: "31234567890123".into(), surname: "Karimova".into(),
//!     given_names: "Dilnoza".into(), common_name: "Dilnoza Karimova".into(), country,
//! };
//! let cert = ca::issue(store, profiles.cert("holder-sign")?, &esign, holder_spki, &holder, now)?;
//! println!("{}", ca::fingerprint_sha256(&cert.der)?);
//! # Ok(()) }
//! ```
//!
//! One module per noun: [`Issuer`] (`issuer`), the subject ([`HolderSubject`], `subject`),
//! issuance (`issue`) and signing (`sign`), PKCS#10 requests (`csr`), public keys (`keys`), subject alternative names (`san`),
//! extensions (`extensions`), CRLs (`crl`), link certificates (`link`), the CSCA Master List
//! (`master_list`), QC statements (`qc`),
//! and what the registry records about a certificate (`info`).

mod crl;
mod csr;
mod error;
mod extensions;
mod info;
mod issue;
mod issuer;
mod keys;
pub mod link;
pub mod master_list;
mod possession;
pub mod qc;
mod san;
mod sign;
mod signer;
mod subject;
mod template;

pub use crl::{crl_pem, crl_url, issue_crl, CrlInfo, RevocationReason, RevokedEntry};
pub use csr::{csr_for_hsm_key, holder_subject_from_csr, verify_csr};
pub use error::{CaError, Result};
pub use info::{
    cert_pem, certificate_spki, certificate_validity, days_within_issuer, fingerprint_sha256,
    private_key_usage_end, CertInfo,
};
pub use issue::{
    create_root, create_subordinate_ca, issue, issue_from_csr, issue_station_cert,
    issue_station_cert_with_names,
};
pub use issuer::Issuer;
pub use keys::spki_from_der_or_pem;
pub use link::{link_certificate, root_link_certificates, RootLinks};
pub use possession::{holder_subject, issued_by, verify_possession};
pub use san::SubjectAltNames;
pub use sign::IssuedCert;
pub use signer::ECDSA_WITH_SHA256;
pub use subject::HolderSubject;

#[cfg(test)]
mod memstore;

#[cfg(test)]
mod tests;
