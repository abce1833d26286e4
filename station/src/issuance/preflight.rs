//! The checks of an issuance that need no card, made before the first APDU so that a doomed
//! issuance costs no card.

use crate::error::StationError;
use crate::holder::ValidHolder;
use crate::registrar::Registrar;
use crate::Station;

/// The checks of an issuance that need no card, run before the first APDU: the
/// active e-Signature CA key (its certificate, its key in the HSM), the active Document Signer
/// (its certificate, its key in the HSM) and the CSCA certificate that certified it, the card
/// master key and the audit key in the HSM, a document number left in the office's blocks, and
/// no active card or running issuance for the holder. Each refusal says what to do; a missing
/// or unusable key is a conflict with the station's state (exit 5), an HSM that does not answer
/// or lacks a key is exit 4.
pub fn preflight(
    st: &Station,
    holder: &ValidHolder,
    registrar: &dyn Registrar,
) -> Result<(), StationError> {
    let rotate = |ca: &str, what: &str| {
        StationError::Conflict(format!(
            "no active {what} key with a certificate, so no card can be issued; run `idstation ca rotate --ca {ca}` and have another ca-admin approve it"
        ))
    };
    // e-Signature CA: the key that signs the holder certificates (the centre's, when the
    // station is enrolled to one: it checks its own key).
    if st.config.centre.is_none() {
        esign_ready(st, &rotate)?;
    }
    // Document Signer (signs EF.SOD) and the CSCA that certified it.
    let ds = st
        .registry
        .active_ca_key(crate::hierarchy::DS_CA)?
        .filter(|k| k.certificate.is_some())
        .ok_or_else(|| rotate("ds", "Document Signer"))?;
    let ds_der = ds.certificate.clone().unwrap_or_default();
    let (_, csca) = crate::hierarchy::certifying_key(st, &ds.label, &ds_der)?;
    if csca.certificate.is_none()
        || !matches!(
            csca.state,
            registry::CaKeyState::Active | registry::CaKeyState::Retired
        )
    {
        return Err(StationError::Conflict(format!(
            "the CSCA key {} that certified Document Signer {} is {}; run `idstation ca rotate --ca csca`, then `idstation ca rotate --ca ds`",
            csca.label,
            ds.label,
            csca.state.as_str()
        )));
    }
    let ds_spki = st.keys.public_key_spki(&ds.label)?;
    if ca::CertInfo::parse(&ds_der).is_err() || !certificate_has_key(&ds_der, &ds_spki) {
        return Err(StationError::Conflict(format!(
            "the HSM key {} is not the Document Signer certificate's key; run `idstation ca rotate --ca ds`",
            ds.label
        )));
    }
    // The other HSM keys an issuance uses: the card master key and the audit key.
    for label in [&st.config.ca.card_master_key, &st.config.ca.audit_key] {
        if st.keys.find(label)?.is_none() {
            return Err(hsm::HsmError::KeyNotFound {
                label: label.clone(),
            }
            .into());
        }
    }
    // A document number left, no active card for the holder.
    registrar.precheck(st, holder)
}

/// Whether the certificate `der` certifies the public key `spki` (same subjectPublicKey bits).
fn certificate_has_key(der: &[u8], spki: &[u8]) -> bool {
    use der::Decode;
    let Ok(c) = x509_cert::Certificate::from_der(der) else {
        return false;
    };
    let Ok(k) = x509_cert::spki::SubjectPublicKeyInfoRef::from_der(spki) else {
        return false;
    };
    c.tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes()
        == k.subject_public_key.raw_bytes()
}

/// The station's active e-Signature CA key has a certificate and can issue.
fn esign_ready(
    st: &Station,
    rotate: &dyn Fn(&str, &str) -> StationError,
) -> Result<(), StationError> {
    st.registry
        .active_ca_key("esign")?
        .filter(|k| k.certificate.is_some())
        .ok_or_else(|| rotate("esign", "e-Signature CA"))?;
    crate::hierarchy::active_issuer(st, "esign").map_err(|e| match e {
        StationError::Ca(ca::CaError::Issuer { label, rule }) => StationError::Conflict(format!(
            "e-Signature CA key {label} cannot issue: {rule}; run `idstation ca rotate --ca esign`"
        )),
        e => e,
    })?;
    Ok(())
}
