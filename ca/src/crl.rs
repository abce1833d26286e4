//! Certificate revocation lists (RFC 5280 §5): revocation reasons, v2 CRLs signed in the HSM,
//! and what the registry records about one.

use std::time::{Duration, SystemTime};

use der::asn1::{BitString, OctetString};
use der::{Decode, Encode};
use hsm::KeyStore;
use p256::ecdsa::DerSignature;
use profiles::{CertProfile, CrlProfile};
use x509_cert::certificate::Version;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber, CrlReason, KeyUsage};
use x509_cert::ext::Extensions;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

use crate::error::{enc, CaError, Result};
use crate::extensions::{ext, render_url};
use crate::info::rfc3339;
use crate::issuer::Issuer;
use crate::signer::ECDSA_WITH_SHA256;

/// The CRL URL certificates signed by `issuer` point to under `profile` (its
/// `crl_distribution_point` template filled in), if the profile has one.
pub fn crl_url(profile: &CertProfile, issuer: &Issuer) -> Result<Option<String>> {
    profile
        .crl_distribution_point
        .as_deref()
        .map(|t| render_url(t, &issuer.key_label, &issuer.key_id_hex))
        .transpose()
}

/// PEM text of a DER CRL (`X509 CRL`).
pub fn crl_pem(crl_der: &[u8]) -> Result<String> {
    der::pem::encode_string("X509 CRL", der::pem::LineEnding::LF, crl_der).map_err(enc("CRL PEM"))
}

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

    pub(crate) fn crl_reason(self) -> CrlReason {
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
/// certificate with its revocation date and (unless the profile says `entry_reasons = false`)
/// its reason code (§5.3.1). Returns the CRL, DER.
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
    check_crl_signer(issuer)?;
    let this_secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| enc::<&str>("thisUpdate")("clock is before 1970"))?
        .as_secs();
    let this_update = SystemTime::UNIX_EPOCH + Duration::from_secs(this_secs);
    let next_update =
        this_update + Duration::from_secs(u64::from(profile.next_update_hours) * 3600);

    let entries = revoked_certs(revoked, this_update, profile.entry_reasons)?;

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

/// RFC 5280 §4.2.1.3: a key that signs CRLs has the cRLSign bit in its certificate.
fn check_crl_signer(issuer: &Issuer) -> Result<()> {
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
    Ok(())
}

/// The CRL entries (RFC 5280 §5.1.2.6): each serial once, revoked no later than thisUpdate,
/// with its reasonCode entry extension when a reason is given (§5.3.1) and the profile keeps
/// entry reasons.
fn revoked_certs(
    revoked: &[RevokedEntry],
    this_update: SystemTime,
    entry_reasons: bool,
) -> Result<Vec<RevokedCert>> {
    use const_oid::AssociatedOid;
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
        let crl_entry_extensions = match r.reason.filter(|_| entry_reasons) {
            Some(reason) => Some(vec![ext(CrlReason::OID, false, &reason.crl_reason())?]),
            None => None,
        };
        entries.push(RevokedCert {
            serial_number: serial,
            revocation_date: Time::try_from(r.revoked_at).map_err(enc("revocationDate"))?,
            crl_entry_extensions,
        });
    }
    Ok(entries)
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
