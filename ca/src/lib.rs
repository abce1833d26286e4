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
//! let holder = ca::HolderSubject {
//!     pinfl: "31234567890123".into(), surname: "Karimova".into(),
//!     given_names: "Dilnoza".into(), common_name: "Dilnoza Karimova".into(), country: "UZ".into(),
//! };
//! let cert = ca::issue(store, profiles.cert("holder-sign")?, &esign, holder_spki, &holder, now)?;
//! println!("{}", ca::fingerprint_sha256(&cert.der)?);
//! # Ok(()) }
//! ```

use std::time::{Duration, SystemTime};

use const_oid::ObjectIdentifier;
use der::asn1::{BitString, Ia5String, OctetString, PrintableStringRef, Utf8StringRef};
use der::{Any, Decode, Encode};
use hsm::{HsmError, KeyStore};
use p256::ecdsa::{DerSignature, VerifyingKey};
use profiles::{
    AttributeKind, CertKind, CertProfile, CrlProfile, KeyUsageBit, ProfileError, SkiMethod,
};
use sha2::Digest;
use signature::Verifier;
use spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::certpolicy::{
    DisplayText, PolicyInformation, PolicyQualifierInfo, UserNotice,
};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CertificatePolicies, CrlDistributionPoints, CrlNumber, CrlReason, ExtendedKeyUsage, KeyUsage,
    KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, Extensions};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::request::CertReq;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

pub mod link;
pub mod qc;
mod signer;
mod template;

pub use link::{link_certificate, root_link_certificates, RootLinks};
use signer::HsmSigner;
pub use signer::ECDSA_WITH_SHA256;

/// id-ecPublicKey (RFC 5480 §2.1.1).
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp256r1 / prime256v1 (RFC 5480 §2.1.1.1).
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const ID_QT_CPS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.2.1");
const ID_QT_UNOTICE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.2.2");
const ID_AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
const ID_AD_CA_ISSUERS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.2");

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
    #[error("operating system random number generator failed: {0}")]
    Random(String),
}

pub type Result<T> = std::result::Result<T, CaError>;

fn enc<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> CaError {
    move |e| CaError::Encoding {
        what,
        reason: e.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Issuer
// ---------------------------------------------------------------------------------------------

/// Per-issuer memo of profile-derived extensions (see [`Issuer::extensions_for`]).
type ExtCache = std::sync::Arc<
    std::sync::Mutex<Vec<(CertProfile, std::sync::Arc<template::ExtensionTemplate>)>>,
>;

/// A CA that can sign: its HSM key label and its certificate, checked to belong together.
#[derive(Debug, Clone)]
pub struct Issuer {
    key_label: String,
    cert: Certificate,
    cert_der: Vec<u8>,
    public: VerifyingKey,
    key_id: Vec<u8>,
    key_id_hex: String,
    path_len: Option<u8>,
    /// The CA certificate's notAfter, converted once (every issuance checks against it).
    not_after: SystemTime,
    /// The issuer name and signature algorithm, encoded once for every certificate it signs.
    parts: template::IssuerParts,
    /// Extensions that depend only on (profile, this issuer), encoded, per profile seen; the
    /// SKI entry is replaced per certificate. Keyed by the profile's digest (its name and the
    /// text it was loaded from), so a profile edited and reloaded gets a new entry.
    ext_cache: ExtCache,
}

impl Issuer {
    /// Pair the HSM key `key_label` with its CA certificate (DER). Fails unless the
    /// certificate is a CA certificate (basicConstraints cA, keyUsage keyCertSign) whose public
    /// key is the HSM key's public key.
    pub fn new(store: &dyn KeyStore, key_label: &str, cert_der: &[u8]) -> Result<Issuer> {
        let cert = Certificate::from_der(cert_der).map_err(|e| CaError::Certificate {
            reason: e.to_string(),
        })?;
        let issuer_err = |rule: &str| CaError::Issuer {
            label: key_label.to_owned(),
            rule: rule.to_owned(),
        };
        let tbs = &cert.tbs_certificate();
        let bc = tbs
            .get_extension::<BasicConstraints>()
            .map_err(|e| issuer_err(&format!("basicConstraints does not decode: {e}")))?
            .map(|(_, bc)| bc)
            .filter(|bc| bc.ca)
            .ok_or_else(|| issuer_err("not a CA certificate (basicConstraints cA is not TRUE)"))?;
        if let Some((_, ku)) = tbs
            .get_extension::<KeyUsage>()
            .map_err(|e| issuer_err(&format!("keyUsage does not decode: {e}")))?
        {
            if !ku.key_cert_sign() {
                return Err(issuer_err("keyUsage lacks keyCertSign"));
            }
        }
        let cert_spki = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(enc("issuer public key"))?;
        let hsm_spki = store.public_key_spki(key_label)?;
        if hsm_spki != cert_spki {
            return Err(issuer_err(
                "the HSM key's public key is not the certificate's public key",
            ));
        }
        let public = p256_key(tbs.subject_public_key_info())?;
        let key_id = match tbs
            .get_extension::<SubjectKeyIdentifier>()
            .map_err(|e| issuer_err(&format!("subjectKeyIdentifier does not decode: {e}")))?
        {
            Some((_, ski)) => ski.0.as_bytes().to_vec(),
            None => key_identifier(SkiMethod::Rfc5280Sha1, tbs.subject_public_key_info()),
        };
        let not_after = tbs.validity().not_after.to_system_time();
        let parts = template::IssuerParts {
            name: template::Encoded::new(
                tbs.subject().to_der().map_err(enc("issuer name"))?,
                "issuer name",
            )?,
            algorithm: template::Encoded::new(
                spki::AlgorithmIdentifierOwned {
                    oid: ECDSA_WITH_SHA256,
                    parameters: None,
                }
                .to_der()
                .map_err(enc("signature algorithm"))?,
                "signature algorithm",
            )?,
        };
        Ok(Issuer {
            key_label: key_label.to_owned(),
            cert_der: cert_der.to_vec(),
            cert,
            public,
            key_id_hex: hex::encode(&key_id),
            key_id,
            path_len: bc.path_len_constraint,
            not_after,
            parts,
            ext_cache: Default::default(),
        })
    }

    /// HSM label of the signing key.
    pub fn key_label(&self) -> &str {
        &self.key_label
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA certificate, parsed.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// The key identifier (the certificate's subjectKeyIdentifier) that certificates and CRLs
    /// signed by this key carry as authorityKeyIdentifier.
    pub fn key_id(&self) -> &[u8] {
        &self.key_id
    }

    /// The CA certificate's notAfter.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    fn subject(&self) -> &Name {
        self.cert.tbs_certificate().subject()
    }

    /// [`extensions`] for `profile` under this issuer, from the cache when the same profile was
    /// used before, with the subjectKeyIdentifier set to `ctx.ski`.
    fn extensions_for(
        &self,
        profile: &CertProfile,
        ctx: &ExtContext<'_>,
    ) -> Result<std::sync::Arc<template::ExtensionTemplate>> {
        // Keyed by the profile's digest (name + source text), not by comparing whole profile
        // values: that comparison walked every string of two profile copies and cost about
        // 1 µs of an issuance (issue 2). Debug builds still compare the whole value.
        let cached = self.ext_cache.lock().ok().and_then(|c| {
            c.iter()
                .find(|(p, _)| {
                    if profile.digest() == &[0u8; 32] {
                        // Not made by profiles::parse_cert_profile: no digest to key on.
                        p == profile
                    } else {
                        p.digest() == profile.digest() && p.name == profile.name
                    }
                })
                .map(|(p, e)| {
                    debug_assert!(
                        p == profile,
                        "profile {} was changed in memory after loading",
                        profile.name
                    );
                    std::sync::Arc::clone(e)
                })
        });
        if let Some(e) = cached {
            return Ok(e);
        }
        let e = std::sync::Arc::new(template::ExtensionTemplate::new(&extensions(
            profile, ctx,
        )?)?);
        if let Ok(mut c) = self.ext_cache.lock() {
            if c.len() < 32 {
                c.push((profile.clone(), std::sync::Arc::clone(&e)));
            }
        }
        Ok(e)
    }
}

/// A certificate just issued, with what the registry records about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    pub der: Vec<u8>,
    /// Serial number, big-endian unsigned bytes (16 bytes).
    pub serial: Vec<u8>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// HSM label of the key that signed it.
    pub issuer_key_label: String,
}

impl IssuedCert {
    /// Serial number as lower-case hex.
    pub fn serial_hex(&self) -> String {
        hex::encode(&self.serial)
    }
}

/// The holder data an end-entity subject template is filled from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderSubject {
    /// Personal identification number (PINFL): 14 digits.
    pub pinfl: String,
    pub surname: String,
    /// Given name(s), space separated.
    pub given_names: String,
    /// Usually "given names surname".
    pub common_name: String,
    /// ISO 3166-1 alpha-2, e.g. "UZ".
    pub country: String,
}

impl HolderSubject {
    /// Check the fields before they go into a certificate.
    pub fn validate(&self) -> Result<()> {
        let holder = |field, rule: String| Err(CaError::Holder { field, rule });
        if !(self.pinfl.len() == 14 && self.pinfl.bytes().all(|b| b.is_ascii_digit())) {
            return holder(
                "pinfl",
                format!(
                    "must be exactly 14 digits (got {} characters)",
                    self.pinfl.chars().count()
                ),
            );
        }
        if !(self.country.len() == 2 && self.country.bytes().all(|b| b.is_ascii_uppercase())) {
            return holder(
                "country",
                "must be an ISO 3166-1 alpha-2 code (two capital letters)".into(),
            );
        }
        for (field, v) in [
            ("surname", &self.surname),
            ("given_names", &self.given_names),
            ("common_name", &self.common_name),
        ] {
            if v.trim().is_empty() {
                return holder(field, "must not be empty".into());
            }
            if v.chars().any(char::is_control) {
                return holder(field, "must not contain control characters".into());
            }
            if v.trim() != v {
                return holder(field, "must not start or end with spaces".into());
            }
        }
        Ok(())
    }

    fn placeholder(&self, name: &str) -> Option<&str> {
        Some(match name {
            "pinfl" => &self.pinfl,
            "surname" => &self.surname,
            "given_names" => &self.given_names,
            "common_name" => &self.common_name,
            "country" => &self.country,
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Issuance
// ---------------------------------------------------------------------------------------------

/// Create the self-signed root certificate for the HSM key `key_label` under a `root-ca`
/// profile. Returns the root as an [`Issuer`].
pub fn create_root(
    store: &dyn KeyStore,
    profile: &CertProfile,
    key_label: &str,
    now: SystemTime,
) -> Result<Issuer> {
    expect_kind(profile, CertKind::RootCa, "create_root")?;
    let spki_der = store.public_key_spki(key_label)?;
    let (spki, public) = checked_p256_spki(&spki_der)?;
    let subject = render_subject(profile, None)?;
    let ski = key_identifier(profile.subject_key_identifier, &spki);
    let (not_before, not_after) = validity(profile, now, None)?;
    let ski_hex = hex::encode(&ski);
    let ctx = ExtContext {
        issuer_label: key_label,
        issuer_key_id: &ski,
        issuer_key_id_hex: &ski_hex,
        ski: &ski,
    };
    let extensions = extensions(profile, &ctx)?;
    let cert = sign_certificate(
        store,
        key_label,
        public,
        Prepared {
            issuer: subject.clone(),
            subject,
            extensions,
        },
        spki,
        not_before,
        not_after,
    )?;
    tracing::info!(key = key_label, profile = %profile.name, "created self-signed root certificate");
    Issuer::new(store, key_label, &cert.der)
}

/// Create a subordinate CA certificate (e.g. the e-Signature CA) for the HSM key
/// `key_label`, signed by `parent`. Returns the new CA as an [`Issuer`].
pub fn create_subordinate_ca(
    store: &dyn KeyStore,
    profile: &CertProfile,
    parent: &Issuer,
    key_label: &str,
    now: SystemTime,
) -> Result<Issuer> {
    expect_kind(profile, CertKind::SubordinateCa, "create_subordinate_ca")?;
    if parent.path_len == Some(0) {
        return Err(CaError::Issuer {
            label: parent.key_label.clone(),
            rule: "pathLenConstraint 0: this CA may not certify another CA (RFC 5280 §4.2.1.9)"
                .into(),
        });
    }
    let spki_der = store.public_key_spki(key_label)?;
    let cert = issue_for_spki(store, profile, parent, &spki_der, None, now)?;
    tracing::info!(key = key_label, issuer = %parent.key_label, profile = %profile.name, "created subordinate CA certificate");
    Issuer::new(store, key_label, &cert.der)
}

/// Issue an end-entity certificate for `spki_der` (a SubjectPublicKeyInfo, which must be a
/// valid P-256 point) to `holder` under an end-entity `profile`, signed by `issuer`.
pub fn issue(
    store: &dyn KeyStore,
    profile: &CertProfile,
    issuer: &Issuer,
    spki_der: &[u8],
    holder: &HolderSubject,
    now: SystemTime,
) -> Result<IssuedCert> {
    expect_kind(profile, CertKind::EndEntity, "issue")?;
    holder.validate()?;
    let cert = issue_for_spki(store, profile, issuer, spki_der, Some(holder), now)?;
    tracing::info!(issuer = %issuer.key_label, profile = %profile.name, serial = %cert.serial_hex(), "issued certificate");
    Ok(cert)
}

/// Issue an end-entity certificate from a PKCS#10 request (DER or PEM) after checking its
/// self-signature (proof of possession). Only the request's public key is used; the subject
/// comes from `holder` and the profile, never from the request.
pub fn issue_from_csr(
    store: &dyn KeyStore,
    profile: &CertProfile,
    issuer: &Issuer,
    csr: &[u8],
    holder: &HolderSubject,
    now: SystemTime,
) -> Result<IssuedCert> {
    let spki_der = verify_csr(csr)?;
    issue(store, profile, issuer, &spki_der, holder, now)
}

/// A PKCS#10 request (RFC 2986) given as DER or PEM.
fn parse_csr(csr: &[u8]) -> Result<CertReq> {
    if csr.starts_with(b"-----BEGIN") {
        use der::DecodePem;
        CertReq::from_pem(csr)
    } else {
        CertReq::from_der(csr)
    }
    .map_err(|e| CaError::CsrMalformed {
        reason: e.to_string(),
    })
}

/// Parse a PKCS#10 request (DER or PEM), check that its key is P-256 and that it is signed
/// by that key with ecdsa-with-SHA256. Returns the request's SubjectPublicKeyInfo, DER.
pub fn verify_csr(csr: &[u8]) -> Result<Vec<u8>> {
    let req = parse_csr(csr)?;
    let key = p256_key(&req.info.public_key)?;
    if req.algorithm.oid != ECDSA_WITH_SHA256 {
        return Err(CaError::CsrAlgorithm {
            oid: req.algorithm.oid.to_string(),
        });
    }
    let sig_bytes = req.signature.as_bytes().ok_or(CaError::CsrSignature)?;
    let sig = DerSignature::from_bytes(sig_bytes).map_err(|_| CaError::CsrSignature)?;
    let info = req.info.to_der().map_err(|e| CaError::CsrMalformed {
        reason: e.to_string(),
    })?;
    key.verify(&info, &sig).map_err(|_| CaError::CsrSignature)?;
    req.info.public_key.to_der().map_err(enc("CSR public key"))
}

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

/// PEM text of a DER CRL (`X509 CRL`).
pub fn crl_pem(crl_der: &[u8]) -> Result<String> {
    der::pem::encode_string("X509 CRL", der::pem::LineEnding::LF, crl_der).map_err(enc("CRL PEM"))
}

/// The CRL URL certificates signed by `issuer` point to under `profile` (its
/// `crl_distribution_point` template filled in), if the profile has one.
pub fn crl_url(profile: &CertProfile, issuer: &Issuer) -> Result<Option<String>> {
    profile
        .crl_distribution_point
        .as_deref()
        .map(|t| render_url(t, &issuer.key_label, &issuer.key_id_hex))
        .transpose()
}

fn expect_kind(profile: &CertProfile, expected: CertKind, operation: &'static str) -> Result<()> {
    if profile.kind != expected {
        return Err(CaError::WrongProfileKind {
            profile: profile.name.clone(),
            operation,
            expected,
            actual: profile.kind,
        });
    }
    Ok(())
}

fn issue_for_spki(
    store: &dyn KeyStore,
    profile: &CertProfile,
    issuer: &Issuer,
    spki_der: &[u8],
    holder: Option<&HolderSubject>,
    now: SystemTime,
) -> Result<IssuedCert> {
    // The key is checked (P-256, on the curve). A key given in the canonical uncompressed
    // encoding is recognised by its DER prefix and used as given; anything else is decoded,
    // checked and re-encoded uncompressed.
    let (canonical_der, canonical_point);
    let prefix = p256_spki_prefix();
    let (spki_bytes, point): (&[u8], &[u8]) = if !prefix.is_empty()
        && spki_der.len() == prefix.len() + 65
        && spki_der.starts_with(prefix)
    {
        let point = &spki_der[prefix.len()..];
        p256_point(point)?;
        (spki_der, point)
    } else {
        let (owned, _) = checked_p256_spki(spki_der)?;
        canonical_der = owned.to_der().map_err(enc("subjectPublicKeyInfo"))?;
        canonical_point = owned.subject_public_key.raw_bytes().to_vec();
        (&canonical_der, &canonical_point)
    };
    let subject = subject_values(profile, holder)?;
    let ski = key_identifier_of(profile.subject_key_identifier, point);
    let (not_before, not_after) = validity(profile, now, Some(issuer))?;
    let ctx = ExtContext {
        issuer_label: &issuer.key_label,
        issuer_key_id: &issuer.key_id,
        issuer_key_id_hex: &issuer.key_id_hex,
        ski: &ski,
    };
    let extensions = issuer.extensions_for(profile, &ctx)?;
    let serial = random_serial()?;
    let tbs_der = template::encode_tbs(
        &issuer.parts,
        &extensions,
        template::PerCertificate {
            serial: &serial,
            validity: Validity::new(not_before, not_after),
            subject: &subject,
            spki_der: spki_bytes,
            ski: &ski,
        },
    )?;
    // The store returns a checked, low-S, DER ECDSA-Sig-Value: it goes into the BIT STRING as
    // it is, next to the issuer's pre-encoded signature algorithm.
    let signature = store.sign_p256_sha256(&issuer.key_label, &tbs_der)?;
    let der = CertificateRef {
        tbs: der::asn1::AnyRef::from_der(&tbs_der).map_err(enc("tbsCertificate"))?,
        algorithm: issuer.parts.algorithm.any(),
        signature: der::asn1::BitStringRef::from_bytes(&signature).map_err(enc("signature"))?,
    }
    .to_der()
    .map_err(enc("certificate"))?;
    Ok(IssuedCert {
        der,
        serial,
        not_before: not_before.to_system_time(),
        not_after: not_after.to_system_time(),
        issuer_key_label: issuer.key_label.clone(),
    })
}

/// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }`
/// (RFC 5280 §4.1), every part already encoded.
#[derive(der::Sequence)]
struct CertificateRef<'a> {
    tbs: der::asn1::AnyRef<'a>,
    algorithm: der::asn1::AnyRef<'a>,
    signature: der::asn1::BitStringRef<'a>,
}

/// A profile resolved for one certificate, handed to `x509-cert`'s builder.
struct Prepared {
    issuer: Name,
    subject: Name,
    extensions: Vec<Extension>,
}

impl BuilderProfile for Prepared {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        _spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        Ok(self.extensions.clone())
    }
}

fn sign_certificate(
    store: &dyn KeyStore,
    signer_label: &str,
    signer_public: VerifyingKey,
    prepared: Prepared,
    spki: SubjectPublicKeyInfoOwned,
    not_before: Time,
    not_after: Time,
) -> Result<IssuedCert> {
    let serial = random_serial()?;
    let serial_number = SerialNumber::new(&serial).map_err(enc("serial number"))?;
    let validity = Validity::new(not_before, not_after);
    let mut builder = CertificateBuilder::new(prepared, serial_number, validity, spki)
        .map_err(enc("certificate"))?;
    let signer = HsmSigner::new(store, signer_label, signer_public);
    // x509-cert's builder assembles and encodes the tbsCertificate; the signed certificate is
    // then written around those exact bytes (Builder::build followed by to_der would encode the
    // whole tbsCertificate a second time, the largest software cost of an issuance).
    let tbs_der = builder.finalize(&signer).map_err(enc("tbsCertificate"))?;
    sign_tbs(&signer, tbs_der, serial, not_before, not_after)
}

/// Sign an encoded tbsCertificate in the HSM and wrap it into the Certificate.
fn sign_tbs(
    signer: &HsmSigner<'_>,
    tbs_der: Vec<u8>,
    serial: Vec<u8>,
    not_before: Time,
    not_after: Time,
) -> Result<IssuedCert> {
    let signature: DerSignature =
        signature::Signer::try_sign(signer, &tbs_der).map_err(|e| match signer.take_error() {
            Some(h) => CaError::Hsm(h),
            None => CaError::Encoding {
                what: "certificate signature from the HSM",
                reason: e.to_string(),
            },
        })?;
    let der = SignedBytes {
        tbs: der::asn1::AnyRef::from_der(&tbs_der).map_err(enc("tbsCertificate"))?,
        algorithm: spki::DynSignatureAlgorithmIdentifier::signature_algorithm_identifier(signer)
            .map_err(enc("signature algorithm"))?,
        signature: spki::SignatureBitStringEncoding::to_bitstring(&signature)
            .map_err(enc("signature"))?,
    }
    .to_der()
    .map_err(enc("certificate"))?;
    Ok(IssuedCert {
        der,
        serial,
        not_before: not_before.to_system_time(),
        not_after: not_after.to_system_time(),
        issuer_key_label: signer.key_label().to_owned(),
    })
}

/// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }`
/// (RFC 5280 §4.1) around an already encoded tbsCertificate.
#[derive(der::Sequence)]
struct SignedBytes<'a> {
    tbs: der::asn1::AnyRef<'a>,
    algorithm: spki::AlgorithmIdentifierOwned,
    signature: BitString,
}

/// 16 bytes from the OS CSPRNG, made positive (top bit clear) and of fixed length (second bit
/// set): 126 random bits, RFC 5280 §4.1.2.2 (positive, at most 20 octets). The bytes come from
/// [`serial_randomness`].
fn random_serial() -> Result<Vec<u8>> {
    let mut b = vec![0u8; 16];
    serial_randomness(&mut b)?;
    b[0] = (b[0] & 0x7f) | 0x40;
    Ok(b)
}

/// Bytes of OS CSPRNG output (`getrandom`) fetched per thread in blocks of [`POOL_BYTES`]
/// and handed out once each: one system call per 64 serial numbers instead of one per
/// certificate. Issue 2's benchmark measured the per-certificate `getrandom` call at about
/// 1.5–2 µs of an issuance interleaved with SoftHSM2 (the call itself, and what it evicts).
///
/// A forked child inherits a copy of this thread-local pool, so parent and child would hand
/// out the same bytes. A `pthread_atfork` child handler therefore bumps [`FORK_GENERATION`],
/// and a pool filled in another generation is discarded before use. (Processes started with
/// `std::process::Command` exec at once and never run this code.) Handed-out bytes are zeroed
/// in the pool.
fn serial_randomness(out: &mut [u8]) -> Result<()> {
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicU64, Ordering};

    const POOL_BYTES: usize = 1024;
    static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
    static AT_FORK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    extern "C" fn forked_child() {
        // Async-signal-safe: one atomic increment.
        FORK_GENERATION.fetch_add(1, Ordering::SeqCst);
    }
    struct Pool {
        bytes: [u8; POOL_BYTES],
        next: usize,
        generation: u64,
    }
    thread_local! {
        static POOL: RefCell<Pool> = const {
            RefCell::new(Pool { bytes: [0; POOL_BYTES], next: POOL_BYTES, generation: 0 })
        };
    }
    let random = |e: getrandom::Error| CaError::Random(e.to_string());
    if out.len() > POOL_BYTES {
        return getrandom::fill(out).map_err(random);
    }
    let registered = *AT_FORK.get_or_init(|| {
        // SAFETY: registers a handler that only performs an atomic increment.
        unsafe { libc::pthread_atfork(None, None, Some(forked_child)) == 0 }
    });
    if !registered {
        // Without the fork guard, no pool.
        return getrandom::fill(out).map_err(random);
    }
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let generation = FORK_GENERATION.load(Ordering::SeqCst);
        if pool.generation != generation || pool.next + out.len() > POOL_BYTES {
            getrandom::fill(&mut pool.bytes).map_err(random)?;
            pool.next = 0;
            pool.generation = generation;
        }
        let at = pool.next;
        out.copy_from_slice(&pool.bytes[at..at + out.len()]);
        pool.bytes[at..at + out.len()].fill(0);
        pool.next += out.len();
        Ok(())
    })
}

fn validity(
    profile: &CertProfile,
    now: SystemTime,
    issuer: Option<&Issuer>,
) -> Result<(Time, Time)> {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| enc::<&str>("validity")("clock is before 1970"))?
        .as_secs();
    let nb = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    // notAfter is inclusive (RFC 5280 §4.1.2.5): the last second of the `days` period.
    let days = u64::from(profile.validity.days.max(1));
    let na = nb + Duration::from_secs(days * 86_400 - 1);
    if let Some(i) = issuer {
        if na > i.not_after() {
            return Err(CaError::OutlivesIssuer {
                not_after: Time::try_from(na)
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
                issuer_not_after: i.cert.tbs_certificate().validity().not_after.to_string(),
            });
        }
    }
    Ok((
        Time::try_from(nb).map_err(enc("notBefore"))?,
        Time::try_from(na).map_err(enc("notAfter"))?,
    ))
}

// ---------------------------------------------------------------------------------------------
// Public keys
// ---------------------------------------------------------------------------------------------

/// Decode an SPKI and check it is an uncompressed-or-compressed P-256 point on the curve
/// (RFC 5480 §2). Returns the SPKI re-encoded canonically (uncompressed point) and the key.
fn checked_p256_spki(spki_der: &[u8]) -> Result<(SubjectPublicKeyInfoOwned, VerifyingKey)> {
    let spki = SubjectPublicKeyInfoOwned::from_der(spki_der).map_err(|e| CaError::NotP256 {
        reason: format!("not a SubjectPublicKeyInfo: {e}"),
    })?;
    let key = p256_key(&spki)?;
    if is_uncompressed_p256(&spki) {
        return Ok((spki, key));
    }
    let canonical = SubjectPublicKeyInfoOwned::from_key(&key).map_err(enc("public key"))?;
    Ok((canonical, key))
}

/// The SPKI (already checked by [`p256_key`]) carries an uncompressed point and the named-curve
/// parameter: [`checked_p256_spki`] returns it as decoded, so its DER is the caller's input.
fn is_uncompressed_p256(spki: &SubjectPublicKeyInfoOwned) -> bool {
    spki.subject_public_key.as_bytes().map(<[u8]>::len) == Some(65)
        && spki.algorithm.parameters.as_ref().map(|p| p.value().len()) == Some(8)
}

fn p256_key(spki: &SubjectPublicKeyInfoOwned) -> Result<VerifyingKey> {
    p256_key_of(
        &spki.algorithm.oid,
        spki.algorithm.parameters.as_ref().map(Into::into),
        spki.subject_public_key.as_bytes(),
    )
}

/// The P-256 public key of an SPKI given by parts: id-ecPublicKey, the prime256v1 named curve,
/// a subjectPublicKey without unused bits holding a point on the curve.
fn p256_key_of(
    algorithm: &ObjectIdentifier,
    parameters: Option<der::asn1::AnyRef<'_>>,
    point: Option<&[u8]>,
) -> Result<VerifyingKey> {
    let not = |reason: String| CaError::NotP256 { reason };
    if *algorithm != ID_EC_PUBLIC_KEY {
        return Err(not(format!(
            "algorithm is {algorithm}, not id-ecPublicKey (1.2.840.10045.2.1){}",
            if algorithm.to_string() == "1.2.840.113549.1.1.1" {
                " (this is an RSA key)"
            } else {
                ""
            }
        )));
    }
    let curve = parameters
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
        .ok_or_else(|| not("EC parameters are not a named curve OID".into()))?;
    if curve != SECP256R1 {
        return Err(not(format!(
            "curve is {curve}, not prime256v1 (1.2.840.10045.3.1.7)"
        )));
    }
    let point = point.ok_or_else(|| not("subjectPublicKey has unused bits".into()))?;
    p256_point(point)
}

/// A SEC 1 encoded P-256 point, checked to be on the curve.
fn p256_point(point: &[u8]) -> Result<VerifyingKey> {
    VerifyingKey::from_sec1_bytes(point).map_err(|_| CaError::NotP256 {
        reason: "the point does not decode or is not on the curve".into(),
    })
}

/// The DER of an uncompressed P-256 SubjectPublicKeyInfo up to its 65-byte point (RFC 5480
/// §2: id-ecPublicKey, the prime256v1 named curve, a BIT STRING without unused bits), encoded
/// once with `spki`/`der`. Every canonical P-256 SPKI is this prefix followed by the point.
/// Empty if it could not be encoded (then every key takes the decoding path).
fn p256_spki_prefix() -> &'static [u8] {
    static PREFIX: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    PREFIX.get_or_init(|| {
        let point = [0u8; 65];
        let spki = SubjectPublicKeyInfoRef {
            algorithm: spki::AlgorithmIdentifierRef {
                oid: ID_EC_PUBLIC_KEY,
                parameters: der::asn1::AnyRef::new(
                    der::Tag::ObjectIdentifier,
                    SECP256R1.as_bytes(),
                )
                .ok(),
            },
            subject_public_key: match der::asn1::BitStringRef::from_bytes(&point) {
                Ok(b) => b,
                Err(_) => return Vec::new(),
            },
        };
        match spki.to_der() {
            Ok(der) if der.len() > point.len() => der[..der.len() - point.len()].to_vec(),
            _ => Vec::new(),
        }
    })
}

/// Key identifier of an SPKI: SHA-1 (RFC 5280 §4.2.1.2 (1)) or the leftmost 160 bits of
/// SHA-256 (RFC 7093 §2 (1)) over the subjectPublicKey BIT STRING value.
fn key_identifier(method: SkiMethod, spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    key_identifier_of(method, spki.subject_public_key.raw_bytes())
}

/// [`key_identifier`] over the subjectPublicKey BIT STRING value `bits`.
fn key_identifier_of(method: SkiMethod, bits: &[u8]) -> Vec<u8> {
    match method {
        SkiMethod::Rfc5280Sha1 => sha1::Sha1::digest(bits).to_vec(),
        SkiMethod::Rfc7093Sha256 => sha2::Sha256::digest(bits)[..20].to_vec(),
    }
}

// ---------------------------------------------------------------------------------------------
// Subject and extensions
// ---------------------------------------------------------------------------------------------

/// The subject attributes of `profile` filled from `holder`, in profile order, each checked
/// against its RFC 5280 Appendix A.1 upper bound and, for PrintableString attributes, its
/// character set.
fn subject_values<'a>(
    profile: &'a CertProfile,
    holder: Option<&'a HolderSubject>,
) -> Result<Vec<template::SubjectValue<'a>>> {
    let mut values = Vec::with_capacity(profile.subject.len());
    for attr in &profile.subject {
        let value =
            profiles::render_template(&attr.value, |n| holder.and_then(|h| h.placeholder(n)))?;
        let field = attr.attribute.short_name();
        let chars = value.chars().count();
        if chars > attr.attribute.max_chars() {
            return Err(CaError::Holder {
                field: holder_field(attr.attribute),
                rule: format!(
                    "subject {field} would be {chars} characters; at most {} (RFC 5280 Appendix A.1 upper bounds)",
                    attr.attribute.max_chars()
                ),
            });
        }
        let printable = attr.attribute.is_printable_string();
        if printable {
            PrintableStringRef::new(value.as_bytes()).map_err(|_| CaError::Holder {
                field: holder_field(attr.attribute),
                rule: format!(
                    "subject {field} allows only PrintableString characters (A-Z a-z 0-9 space '()+,-./:=?)"
                ),
            })?;
        }
        values.push(template::SubjectValue {
            oid: attr.attribute.oid(),
            printable,
            value,
        });
    }
    Ok(values)
}

/// [`subject_values`] as an `x509-cert` [`Name`], one attribute per RDN.
fn render_subject(profile: &CertProfile, holder: Option<&HolderSubject>) -> Result<Name> {
    let mut seq = RdnSequence::default();
    for v in subject_values(profile, holder)? {
        let any = if v.printable {
            let s =
                PrintableStringRef::new(v.value.as_bytes()).map_err(enc("subject attribute"))?;
            Any::encode_from(&s)
        } else {
            let s = Utf8StringRef::new(v.value.as_bytes()).map_err(enc("subject attribute"))?;
            Any::encode_from(&s)
        }
        .map_err(enc("subject attribute"))?;
        let atv = AttributeTypeAndValue {
            oid: v.oid,
            value: any,
        };
        let rdn = RelativeDistinguishedName::try_from(vec![atv]).map_err(enc("subject"))?;
        seq.push(rdn);
    }
    Ok(Name::hazmat_from_rdn_sequence(seq))
}

fn holder_field(kind: AttributeKind) -> &'static str {
    match kind {
        AttributeKind::SerialNumber => "pinfl",
        AttributeKind::GivenName => "given_names",
        AttributeKind::Surname => "surname",
        AttributeKind::CommonName => "common_name",
        AttributeKind::Country => "country",
        _ => "subject",
    }
}

fn render_url(template: &str, issuer_label: &str, issuer_key_id_hex: &str) -> Result<String> {
    if !issuer_label
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(CaError::Issuer {
            label: issuer_label.to_owned(),
            rule: "a key label named in a URL may use only letters, digits, '-', '_' and '.'"
                .into(),
        });
    }
    Ok(profiles::render_template(template, |n| match n {
        "issuer_key" => Some(issuer_label),
        "issuer_key_id" => Some(issuer_key_id_hex),
        _ => None,
    })?
    .into_owned())
}

struct ExtContext<'a> {
    issuer_label: &'a str,
    issuer_key_id: &'a [u8],
    issuer_key_id_hex: &'a str,
    ski: &'a [u8],
}

fn ext<T: Encode>(oid: ObjectIdentifier, critical: bool, value: &T) -> Result<Extension> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der().map_err(enc("extension"))?)
            .map_err(enc("extension"))?,
    })
}

fn ia5(s: &str) -> Result<Ia5String> {
    Ia5String::new(s).map_err(enc("URI"))
}

fn extensions(profile: &CertProfile, ctx: &ExtContext<'_>) -> Result<Vec<Extension>> {
    use const_oid::AssociatedOid;
    let mut out = Vec::with_capacity(10);

    if let Some(bc) = &profile.basic_constraints {
        out.push(ext(
            BasicConstraints::OID,
            bc.ca,
            &BasicConstraints {
                ca: bc.ca,
                path_len_constraint: bc.path_len,
            },
        )?);
    }

    let mut ku = der::flagset::FlagSet::<KeyUsages>::default();
    for bit in &profile.key_usage {
        ku |= match bit {
            KeyUsageBit::DigitalSignature => KeyUsages::DigitalSignature,
            KeyUsageBit::NonRepudiation => KeyUsages::NonRepudiation,
            KeyUsageBit::KeyEncipherment => KeyUsages::KeyEncipherment,
            KeyUsageBit::DataEncipherment => KeyUsages::DataEncipherment,
            KeyUsageBit::KeyAgreement => KeyUsages::KeyAgreement,
            KeyUsageBit::KeyCertSign => KeyUsages::KeyCertSign,
            KeyUsageBit::CrlSign => KeyUsages::CRLSign,
        };
    }
    out.push(ext(KeyUsage::OID, true, &KeyUsage(ku))?);

    if !profile.extended_key_usage.is_empty() {
        let ekus = ExtendedKeyUsage(profile.extended_key_usage.iter().map(|e| e.0).collect());
        out.push(ext(ExtendedKeyUsage::OID, false, &ekus)?);
    }

    let ski = SubjectKeyIdentifier(OctetString::new(ctx.ski).map_err(enc("SKI"))?);
    out.push(ext(SubjectKeyIdentifier::OID, false, &ski)?);

    if profile.authority_key_identifier {
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(ctx.issuer_key_id).map_err(enc("AKI"))?),
            ..Default::default()
        };
        out.push(ext(AuthorityKeyIdentifier::OID, false, &aki)?);
    }

    if !profile.policies.is_empty() {
        let mut policies = Vec::with_capacity(profile.policies.len());
        for p in &profile.policies {
            let mut qualifiers = Vec::new();
            if let Some(cps) = &p.cps_uri {
                qualifiers.push(PolicyQualifierInfo {
                    policy_qualifier_id: ID_QT_CPS,
                    qualifier: Some(Any::encode_from(&ia5(cps)?).map_err(enc("CPS URI"))?),
                });
            }
            if let Some(text) = &p.user_notice {
                let notice = UserNotice {
                    notice_ref: None,
                    explicit_text: Some(DisplayText::Utf8String(text.clone())),
                };
                qualifiers.push(PolicyQualifierInfo {
                    policy_qualifier_id: ID_QT_UNOTICE,
                    qualifier: Some(Any::encode_from(&notice).map_err(enc("user notice"))?),
                });
            }
            policies.push(PolicyInformation {
                policy_identifier: p.oid.0,
                policy_qualifiers: (!qualifiers.is_empty()).then_some(qualifiers),
            });
        }
        out.push(ext(
            CertificatePolicies::OID,
            false,
            &CertificatePolicies(policies),
        )?);
    }

    if let Some(t) = &profile.crl_distribution_point {
        let url = render_url(t, ctx.issuer_label, ctx.issuer_key_id_hex)?;
        let dp = DistributionPoint {
            distribution_point: Some(DistributionPointName::FullName(vec![
                GeneralName::UniformResourceIdentifier(ia5(&url)?),
            ])),
            reasons: None,
            crl_issuer: None,
        };
        out.push(ext(
            CrlDistributionPoints::OID,
            false,
            &CrlDistributionPoints(vec![dp]),
        )?);
    }

    if let Some(aia) = &profile.authority_info_access {
        let mut access = Vec::new();
        if let Some(t) = &aia.ocsp {
            access.push(AccessDescription {
                access_method: ID_AD_OCSP,
                access_location: GeneralName::UniformResourceIdentifier(ia5(&render_url(
                    t,
                    ctx.issuer_label,
                    ctx.issuer_key_id_hex,
                )?)?),
            });
        }
        if let Some(t) = &aia.ca_issuers {
            access.push(AccessDescription {
                access_method: ID_AD_CA_ISSUERS,
                access_location: GeneralName::UniformResourceIdentifier(ia5(&render_url(
                    t,
                    ctx.issuer_label,
                    ctx.issuer_key_id_hex,
                )?)?),
            });
        }
        out.push(ext(
            AuthorityInfoAccessSyntax::OID,
            false,
            &AuthorityInfoAccessSyntax(access),
        )?);
    }

    if let Some(qc_rule) = &profile.qc_statements {
        let statements = qc::statements(qc_rule).map_err(enc("QC statements"))?;
        out.push(ext(qc::ID_PE_QC_STATEMENTS, false, &statements)?);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// CRLs
// ---------------------------------------------------------------------------------------------

/// Why a certificate was revoked (RFC 5280 §5.3.1). `unspecified` is expressed by giving no
/// reason (the reasonCode entry extension is then omitted, as §5.3.1 recommends);
/// `removeFromCRL` exists only in delta CRLs, which this CA does not issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationReason {
    KeyCompromise,
    CaCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    CertificateHold,
    PrivilegeWithdrawn,
    AaCompromise,
}

impl RevocationReason {
    /// The reason from its RFC 5280 §5.3.1 CRLReason name (`keyCompromise`,
    /// `cessationOfOperation`, ...); `None` for `unspecified` and unknown names.
    pub fn from_rfc5280_name(name: &str) -> Option<Self> {
        Some(match name {
            "keyCompromise" => RevocationReason::KeyCompromise,
            "cACompromise" => RevocationReason::CaCompromise,
            "affiliationChanged" => RevocationReason::AffiliationChanged,
            "superseded" => RevocationReason::Superseded,
            "cessationOfOperation" => RevocationReason::CessationOfOperation,
            "certificateHold" => RevocationReason::CertificateHold,
            "privilegeWithdrawn" => RevocationReason::PrivilegeWithdrawn,
            "aACompromise" => RevocationReason::AaCompromise,
            _ => return None,
        })
    }

    fn crl_reason(self) -> CrlReason {
        match self {
            RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
            RevocationReason::CaCompromise => CrlReason::CaCompromise,
            RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
            RevocationReason::Superseded => CrlReason::Superseded,
            RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
            RevocationReason::CertificateHold => CrlReason::CertificateHold,
            RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
            RevocationReason::AaCompromise => CrlReason::AaCompromise,
        }
    }
}

/// One revoked certificate for a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Serial number, big-endian unsigned bytes (as in [`IssuedCert::serial`]).
    pub serial: Vec<u8>,
    pub revoked_at: SystemTime,
    pub reason: Option<RevocationReason>,
}

/// Issue a v2 CRL (RFC 5280 §5) signed by `issuer`'s HSM key: cRLNumber `crl_number` (the
/// caller keeps it strictly increasing per key, §5.2.3), authorityKeyIdentifier of the signing
/// key (§5.2.1), thisUpdate `now`, nextUpdate from the profile, and one entry per revoked
/// certificate with its revocation date and reason code (§5.3.1). Returns the CRL, DER.
///
/// The CRL is built here rather than with `x509_cert::builder::CrlBuilder`, which copies the
/// issuer certificate's own authorityKeyIdentifier (the key that signed the CA, not the key
/// that signs the CRL).
pub fn issue_crl(
    store: &dyn KeyStore,
    profile: &CrlProfile,
    issuer: &Issuer,
    crl_number: u64,
    revoked: &[RevokedEntry],
    now: SystemTime,
) -> Result<Vec<u8>> {
    use const_oid::AssociatedOid;
    // RFC 5280 §4.2.1.3: a key that signs CRLs has the cRLSign bit in its certificate.
    let ku = issuer
        .cert
        .tbs_certificate()
        .get_extension::<KeyUsage>()
        .map_err(|e| CaError::Issuer {
            label: issuer.key_label.clone(),
            rule: format!("keyUsage does not decode: {e}"),
        })?;
    if let Some((_, ku)) = ku {
        if !ku.crl_sign() {
            return Err(CaError::Issuer {
                label: issuer.key_label.clone(),
                rule: "keyUsage lacks cRLSign: this key does not sign CRLs (RFC 5280 §4.2.1.3)"
                    .into(),
            });
        }
    }
    let this_secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| enc::<&str>("thisUpdate")("clock is before 1970"))?
        .as_secs();
    let this_update = SystemTime::UNIX_EPOCH + Duration::from_secs(this_secs);
    let next_update =
        this_update + Duration::from_secs(u64::from(profile.next_update_hours) * 3600);

    let mut entries = Vec::with_capacity(revoked.len());
    let mut seen = std::collections::BTreeSet::new();
    for (index, r) in revoked.iter().enumerate() {
        let bad = |rule: &str| CaError::Revocation {
            index,
            rule: rule.to_owned(),
        };
        if !seen.insert(r.serial.as_slice()) {
            return Err(bad("serial number listed twice"));
        }
        let serial =
            SerialNumber::<x509_cert::certificate::Rfc5280>::new(&r.serial).map_err(|e| {
                bad(&format!(
                    "serial number is not a positive integer of at most 20 octets: {e}"
                ))
            })?;
        if r.revoked_at > this_update {
            return Err(bad("revocation date is after thisUpdate"));
        }
        let crl_entry_extensions = match r.reason {
            Some(reason) => Some(vec![ext(CrlReason::OID, false, &reason.crl_reason())?]),
            None => None,
        };
        entries.push(RevokedCert {
            serial_number: serial,
            revocation_date: Time::try_from(r.revoked_at).map_err(enc("revocationDate"))?,
            crl_entry_extensions,
        });
    }

    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(issuer.key_id()).map_err(enc("AKI"))?),
        ..Default::default()
    };
    let number = CrlNumber::try_from(crl_number).map_err(enc("cRLNumber"))?;
    let crl_extensions: Extensions = vec![
        ext(AuthorityKeyIdentifier::OID, false, &aki)?,
        ext(CrlNumber::OID, false, &number)?,
    ];
    let algorithm = spki::AlgorithmIdentifierOwned {
        oid: ECDSA_WITH_SHA256,
        parameters: None,
    };
    let tbs = TbsCertList {
        version: Version::V2,
        signature: algorithm.clone(),
        issuer: issuer.subject().clone(),
        this_update: Time::try_from(this_update).map_err(enc("thisUpdate"))?,
        next_update: Some(Time::try_from(next_update).map_err(enc("nextUpdate"))?),
        revoked_certificates: (!entries.is_empty()).then_some(entries),
        crl_extensions: Some(crl_extensions),
    };
    let tbs_der = tbs.to_der().map_err(enc("CRL"))?;
    let sig = store.sign_p256_sha256(&issuer.key_label, &tbs_der)?;
    DerSignature::from_bytes(&sig).map_err(|e| CaError::Encoding {
        what: "CRL signature from the HSM",
        reason: e.to_string(),
    })?;
    let crl = CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: algorithm,
        signature: BitString::from_bytes(&sig).map_err(enc("CRL signature"))?,
    };
    let der = crl.to_der().map_err(enc("CRL"))?;
    tracing::info!(issuer = %issuer.key_label, crl_number, entries = revoked.len(), "issued CRL");
    Ok(der)
}

#[cfg(test)]
mod memstore;

#[cfg(test)]
mod tests;

// ---------------------------------------------------------------------------------------------
// Station certificates, inspection helpers
// ---------------------------------------------------------------------------------------------

/// Issue a certificate for one of the station's own keys (e.g. the audit signer) under an
/// end-entity `profile` whose subject uses only `{common_name}`, signed by `issuer`.
pub fn issue_station_cert(
    store: &dyn KeyStore,
    profile: &CertProfile,
    issuer: &Issuer,
    spki_der: &[u8],
    common_name: &str,
    now: SystemTime,
) -> Result<IssuedCert> {
    expect_kind(profile, CertKind::EndEntity, "issue_station_cert")?;
    if common_name.trim().is_empty() || common_name.chars().any(char::is_control) {
        return Err(CaError::Holder {
            field: "common_name",
            rule: "must be non-empty text without control characters".into(),
        });
    }
    let subject = HolderSubject {
        pinfl: String::new(),
        surname: String::new(),
        given_names: String::new(),
        common_name: common_name.to_owned(),
        country: String::new(),
    };
    for attr in &profile.subject {
        let names = profiles::rules::placeholders(&attr.value).map_err(|rule| CaError::Holder {
            field: "subject",
            rule,
        })?;
        if names.iter().any(|n| n != "common_name") {
            return Err(CaError::Holder {
                field: "subject",
                rule: format!(
                    "profile '{}' uses placeholders other than {{common_name}}; it is not a station profile",
                    profile.name
                ),
            });
        }
    }
    issue_for_spki(store, profile, issuer, spki_der, Some(&subject), now)
}

/// A SubjectPublicKeyInfo given as DER or as PEM (`PUBLIC KEY`), checked to be a P-256 key;
/// returned as DER.
pub fn spki_from_der_or_pem(bytes: &[u8]) -> Result<Vec<u8>> {
    let der = if bytes.starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(bytes).map_err(|_| CaError::NotP256 {
            reason: "PEM input is not text".into(),
        })?;
        let (label, der) = der::pem::decode_vec(text.as_bytes()).map_err(|e| CaError::NotP256 {
            reason: format!("not a PEM public key: {e}"),
        })?;
        if label != "PUBLIC KEY" {
            return Err(CaError::NotP256 {
                reason: format!("PEM label is {label:?}, expected \"PUBLIC KEY\""),
            });
        }
        der
    } else {
        bytes.to_vec()
    };
    checked_p256_spki(&der)?;
    Ok(der)
}

/// The holder subject named in a PKCS#10 request: serialNumber `PNOUZ-<PINFL>` (ETSI
/// EN 319 412-1 §5.1.3 semantics identifier), givenName, surname, optional CN and C.
pub fn holder_subject_from_csr(csr: &[u8]) -> Result<HolderSubject> {
    let req = parse_csr(csr)?;
    let mut found: std::collections::BTreeMap<&'static str, String> = Default::default();
    {
        for atv in req.info.subject.iter() {
            let key = match atv.oid {
                o if o == const_oid::db::rfc4519::SERIAL_NUMBER => "serialNumber",
                o if o == const_oid::db::rfc4519::GIVEN_NAME => "givenName",
                o if o == const_oid::db::rfc4519::SN => "surname",
                o if o == const_oid::db::rfc4519::CN => "CN",
                o if o == const_oid::db::rfc4519::C => "C",
                _ => continue,
            };
            let value = atv
                .value
                .decode_as::<Utf8StringRef<'_>>()
                .map(|s| s.to_string())
                .or_else(|_| {
                    atv.value
                        .decode_as::<PrintableStringRef<'_>>()
                        .map(|s| s.to_string())
                })
                .map_err(|e| CaError::CsrMalformed {
                    reason: format!("subject {key} is not a string: {e}"),
                })?;
            found.insert(key, value);
        }
    }
    let need = |k: &'static str| {
        found.get(k).cloned().ok_or_else(|| CaError::Holder {
            field: "subject",
            rule: format!("the CSR subject has no {k} attribute (give --subject FILE instead)"),
        })
    };
    let serial = need("serialNumber")?;
    let pinfl = serial
        .strip_prefix("PNOUZ-")
        .ok_or_else(|| CaError::Holder {
            field: "pinfl",
            rule: format!(
                "CSR serialNumber {serial:?} is not PNOUZ-<PINFL> (ETSI EN 319 412-1 §5.1.3)"
            ),
        })?
        .to_owned();
    let given_names = need("givenName")?;
    let surname = need("surname")?;
    let subject = HolderSubject {
        common_name: found
            .get("CN")
            .cloned()
            .unwrap_or_else(|| format!("{given_names} {surname}")),
        country: found.get("C").cloned().unwrap_or_else(|| "UZ".into()),
        pinfl,
        surname,
        given_names,
    };
    subject.validate()?;
    Ok(subject)
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
        Ok(CertInfo {
            serial_hex: hex::encode(serial),
            subject: tbs.subject().to_string(),
            not_before: rfc3339(tbs.validity().not_before.to_system_time()),
            not_after: rfc3339(tbs.validity().not_after.to_system_time()),
        })
    }
}

/// What the registry records about a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlInfo {
    pub this_update: String,
    pub next_update: String,
    pub revoked: usize,
}

impl CrlInfo {
    pub fn parse(crl_der: &[u8]) -> Result<Self> {
        let crl =
            CertificateList::<x509_cert::certificate::Rfc5280>::from_der(crl_der).map_err(|e| {
                CaError::Certificate {
                    reason: format!("not a CRL: {e}"),
                }
            })?;
        let tbs = &crl.tbs_cert_list;
        Ok(CrlInfo {
            this_update: rfc3339(tbs.this_update.to_system_time()),
            next_update: tbs
                .next_update
                .map(|t| rfc3339(t.to_system_time()))
                .unwrap_or_default(),
            revoked: tbs.revoked_certificates.as_ref().map_or(0, |r| r.len()),
        })
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a time from a certificate or CRL (whole seconds, UTC).
fn rfc3339(t: SystemTime) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from(t)
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}
