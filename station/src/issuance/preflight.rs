//! The checks of an issuance that need no card, made before the first APDU so that a doomed
//! issuance costs no card.

use crate::error::StationError;
use crate::holder::ValidHolder;
use crate::registrar::Registrar;
use crate::Station;

/// The checks of an issuance that need no card, run before the first APDU: the
/// active e-Signature CA key (its certificate, its key in the HSM), the active Document Signer
/// (its certificate, its key in the HSM, its private key usage period not ended) and the CSCA
/// certificate that certified it, the card master key and the audit key in the HSM, a document
/// number left in the office's blocks, and no active card or running issuance for the holder.
/// Each refusal says what to do; a missing or unusable key is a conflict with the station's
/// state (exit 5), an HSM that does not answer or lacks a key is exit 4.
pub fn preflight(
    st: &Station,
    holder: &ValidHolder,
    registrar: &dyn Registrar,
) -> Result<(), StationError> {
    let enrolled = st.config.centre.is_some();
    // What to run about the Document Signer: an enrolled station's comes from the centre's CSCA.
    let renew_ds = |standalone: &str| {
        if enrolled {
            "run `idstation centre renew-document-signer` (a ca-admin)".to_owned()
        } else {
            standalone.to_owned()
        }
    };
    let rotate = |ca: &str, what: &str| {
        let next = renew_ds(&format!(
            "run `idstation ca rotate --ca {ca}` and have another ca-admin approve it"
        ));
        StationError::Conflict(format!(
            "no active {what} key with a certificate, so no card can be issued; {next}"
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
            "the CSCA key {} that certified Document Signer {} is {}; {}",
            csca.label,
            ds.label,
            csca.state.as_str(),
            renew_ds("run `idstation ca rotate --ca csca`, then `idstation ca rotate --ca ds`")
        )));
    }
    let ds_spki = st.keys.public_key_spki(&ds.label)?;
    if ca::CertInfo::parse(&ds_der).is_err() || !certificate_has_key(&ds_der, &ds_spki) {
        return Err(StationError::Conflict(format!(
            "the HSM key {} is not the Document Signer certificate's key; {}",
            ds.label,
            renew_ds("run `idstation ca rotate --ca ds`")
        )));
    }
    key_usage_current_at(&ds.label, &ds_der, enrolled, std::time::SystemTime::now())?;
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

/// The Document Signer `label` (certificate `der`) is within its private key usage period at
/// `now` (ICAO Doc 9303-12 Table 1: about three months; after it, the key signs no EF.SOD);
/// `enrolled` picks the command the refusal names.
fn key_usage_current_at(
    label: &str,
    der: &[u8],
    enrolled: bool,
    now: std::time::SystemTime,
) -> Result<(), StationError> {
    let Some(until) = ca::CertInfo::parse(der)?.key_usage_until else {
        return Ok(());
    };
    let end = crate::time_util::parse_rfc3339(&until)
        .map_err(|e| StationError::Other(format!("Document Signer {label}: {e}")))?;
    if end > now {
        return Ok(());
    }
    let next = if enrolled {
        "run `idstation centre renew-document-signer` (a ca-admin)"
    } else {
        "run `idstation ca rotate --ca ds` and have another ca-admin approve it"
    };
    Err(StationError::Conflict(format!(
        "the private key usage period of Document Signer {label} ended at {until}: it signs no new EF.SOD, so no card can be issued; {next}"
    )))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_document_signer_past_its_private_key_usage_period_signs_no_card() {
        use hsm::KeyStore;
        let dir = hsm::pkcs11::SoftHsm2Token::process_dir()
            .expect("run through cargo: the runner sets SOFTHSM2_CONF");
        std::fs::create_dir_all(&dir).unwrap();
        let pin = "preflight-test-pin-1";
        let token = hsm::pkcs11::SoftHsm2Token::create(&dir, "preflight-pkup", "so-pin-1234", pin)
            .expect("a test token");
        let store = token.open(zeroize::Zeroizing::new(pin.to_owned())).unwrap();
        store.generate_p256("csca-1").unwrap();
        store.generate_p256("ds-1").unwrap();
        let p = profiles::builtin().unwrap();
        let now = SystemTime::now();
        let csca = ca::create_root(&store, p.cert("csca").unwrap(), "csca-1", now).unwrap();
        let spki = store.public_key_spki("ds-1").unwrap();
        let ds = ca::issue_station_cert(
            &store,
            p.cert("document-signer").unwrap(),
            &csca,
            &spki,
            "Document Signer",
            now,
        )
        .unwrap();
        key_usage_current_at("ds-1", &ds.der, false, now).unwrap();
        // The shipped profile: 92 days of key usage.
        let day = Duration::from_secs(86_400);
        key_usage_current_at("ds-1", &ds.der, false, now + 91 * day).unwrap();
        let e = key_usage_current_at("ds-1", &ds.der, false, now + 93 * day)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Document Signer ds-1") && e.contains("idstation ca rotate --ca ds"),
            "{e}"
        );
        let e = key_usage_current_at("ds-1", &ds.der, true, now + 93 * day)
            .unwrap_err()
            .to_string();
        assert!(e.contains("idstation centre renew-document-signer"), "{e}");
    }
}
