//! Issuing certificates: the self-signed root, subordinate CAs, holder certificates from a
//! public key or a PKCS#10 request, and certificates for the station's own keys.

use std::time::SystemTime;

use der::{Decode, Encode};
use hsm::KeyStore;
use profiles::{CertKind, CertProfile};
use x509_cert::time::Validity;

use crate::csr::verify_csr;
use crate::error::{enc, CaError, Result};
use crate::extensions::{extensions, private_key_usage_period, ExtContext};
use crate::issuer::Issuer;
use crate::keys::{
    checked_p256_spki, key_identifier, key_identifier_of, p256_point, p256_spki_prefix,
};
use crate::san::{san_extension, SubjectAltNames};
use crate::sign::{
    random_serial, sign_certificate, validity, CertificateRef, IssuedCert, Prepared,
};
use crate::subject::{render_subject, subject_values, HolderSubject};
use crate::template;

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
    let mut extensions = extensions(profile, &ctx)?;
    extensions.extend(san_extension(profile, &SubjectAltNames::default())?);
    extensions.extend(private_key_usage_period(
        profile,
        not_before.to_system_time(),
    )?);
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
    let cert = issue_for_spki(
        store,
        profile,
        parent,
        &spki_der,
        None,
        &Default::default(),
        now,
    )?;
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
    let cert = issue_for_spki(
        store,
        profile,
        issuer,
        spki_der,
        Some(holder),
        &Default::default(),
        now,
    )?;
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

pub(crate) fn expect_kind(
    profile: &CertProfile,
    expected: CertKind,
    operation: &'static str,
) -> Result<()> {
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

pub(crate) fn issue_for_spki(
    store: &dyn KeyStore,
    profile: &CertProfile,
    issuer: &Issuer,
    spki_der: &[u8],
    holder: Option<&HolderSubject>,
    names: &SubjectAltNames,
    now: SystemTime,
) -> Result<IssuedCert> {
    let (not_before, not_after) = validity(profile, now, Some(issuer))?;
    // The extensions that differ between certificates of one profile and issuer; the others
    // come from the issuer's cache.
    let mut own_extensions = Vec::new();
    for e in san_extension(profile, names)?
        .into_iter()
        .chain(private_key_usage_period(
            profile,
            not_before.to_system_time(),
        )?)
    {
        e.encode_to_vec(&mut own_extensions)
            .map_err(enc("certificate extension"))?;
    }
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
            own_extensions: &own_extensions,
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
    issue_station_cert_with_names(
        store,
        profile,
        issuer,
        spki_der,
        common_name,
        &SubjectAltNames::default(),
        now,
    )
}

/// [`issue_station_cert`] with subject alternative names (e.g. the centre's TLS server
/// certificate: its DNS name and address), checked against the profile's `subject_alt_name`.
pub fn issue_station_cert_with_names(
    store: &dyn KeyStore,
    profile: &CertProfile,
    issuer: &Issuer,
    spki_der: &[u8],
    common_name: &str,
    names: &SubjectAltNames,
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
    issue_for_spki(store, profile, issuer, spki_der, Some(&subject), names, now)
}
