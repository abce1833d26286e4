//! A card of this station renewed at another office (docs/station.md "Card services on an issued
//! card"): on a station enrolled with the national centre any office renews a card under the
//! centre's card key, and the centre — not this registry — is told. When such a card is back in
//! this station's reader it carries certificates this registry has never seen; before the card
//! is matched, [`renewed_elsewhere`] asks the centre (`POST /v1/cards/lookup`): when every one of
//! them is the document's `active` certificate there and was signed by an e-Signature CA key this
//! station knows, they are recorded here as the document's active certificates and the ones they
//! replace revoked `superseded`, in one transaction audited `certificates.mirrored`. A
//! certificate the centre revoked `cessationOfOperation` (a renewal at another office the centre
//! aborted after the card got it) is recorded as revoked so: the card carries it, and it still
//! shows the card is the document's (`renew::carried_certificates`) until the next renewal.
//! Anything else is left to the match, which refuses the card as before.

use personalization::piv::services::IssuedCard;
use profiles::card::CardProfile;
use registry::{AuditEntry, CertStatus};
use serde_json::json;

use super::IssuedDocument;
use crate::card::{serial_text, slot_name};
use crate::error::StationError;
use crate::session::Session;
use crate::Station;

/// Bring `doc`'s certificates here up to date with a renewal made at another office, when the
/// card in the reader (`card`) shows one (see the module documentation). `true` when it did:
/// the caller reads the document again.
pub(crate) fn renewed_elsewhere(
    st: &mut Station,
    session: &Session,
    profile: &CardProfile,
    doc: &IssuedDocument,
    card: &IssuedCard,
) -> Result<bool, StationError> {
    if st.config.centre.is_none() {
        return Ok(false);
    }
    let known = st.registry.certificates_of_job(doc.issuance_job)?;
    let unknown: Vec<(String, &[u8], String)> = profile
        .keys
        .iter()
        .filter_map(|k| {
            let der = card.certificate(k.slot)?;
            (!known.iter().any(|c| c.data.der == der))
                .then(|| (slot_name(k.slot), der, k.certificate_profile.clone()))
        })
        .collect();
    if unknown.is_empty() {
        return Ok(false);
    }
    let serial = serial_text(card.serial);
    let number = doc.document.number.to_string();
    let Some(found) = super::elsewhere::own_card(st, session.operator(), card, &serial, &number)?
    else {
        return Ok(false);
    };
    // Each the document's there: active (a renewal completed), or revoked cessationOfOperation
    // (a renewal the centre aborted after the card got its certificates: the card still carries
    // them, and the next renewal replaces them).
    let mut certs: Vec<(&[u8], String, bool)> = Vec::new();
    for (slot, der, purpose) in &unknown {
        let info = ca::CertInfo::parse(der)?;
        let there = found
            .record
            .certificates
            .iter()
            .find(|c| c.serial.eq_ignore_ascii_case(&info.serial_hex) && &c.slot == slot);
        let left = match there {
            Some(c) if c.state == "active" => false,
            Some(c)
                if c.state == "revoked" && c.reason.as_deref() == Some("cessationOfOperation") =>
            {
                true
            }
            _ => return Ok(false),
        };
        certs.push((*der, purpose.clone(), left));
    }
    take_certificates(
        st,
        session.actor(),
        doc,
        &certs,
        "the national centre, by another office",
    )?;
    Ok(true)
}

/// Record `certs` (DER, certificate profile, revoked) — certificates a renewal at another
/// office issued for the document — as `doc`'s here: an active one at the centre as its active
/// certificate, the active one of the same profile revoked `superseded`; one the centre revoked
/// `cessationOfOperation` (its renewal aborted after the card got it) as revoked so, the active
/// ones untouched. One transaction audited `certificates.mirrored` (`renewed_at` says where).
/// Each must be signed by an e-Signature CA key this station knows
/// (an error otherwise: [`esign_key_known`] asks first). The serials made active and superseded.
pub(crate) fn take_certificates(
    st: &mut Station,
    actor: &registry::Actor,
    doc: &IssuedDocument,
    certs: &[(&[u8], String, bool)],
    renewed_at: &str,
) -> Result<(Vec<String>, Vec<String>), StationError> {
    let number = doc.document.number.to_string();
    let esign = st.registry.ca_keys("esign")?;
    let mut adopted = Vec::new();
    for (der, purpose, revoked) in certs {
        let info = ca::CertInfo::parse(der)?;
        let issuer = esign.iter().find(|k| {
            k.certificate
                .as_deref()
                .is_some_and(|i| ca::issued_by(der, i).unwrap_or(false))
        });
        let Some(issuer) = issuer else {
            return Err(StationError::Other(unknown_esign_key(
                &info.serial_hex.to_uppercase(),
                &number,
            )));
        };
        adopted.push((
            issuer.id,
            *der,
            purpose.clone(),
            info.serial_hex.to_uppercase(),
            *revoked,
        ));
    }
    let now = registry::now_rfc3339();
    let superseded: Vec<(i64, String)> = doc
        .certificates
        .iter()
        .filter(|c| {
            c.status == CertStatus::Active && adopted.iter().any(|a| !a.4 && a.2 == c.data.purpose)
        })
        .map(|c| (c.id, c.data.serial.clone()))
        .collect();
    st.registry.write(|t| {
        for (issuer_key_id, der, purpose, _, revoked) in &adopted {
            let mut rec = crate::hierarchy::cert_record(*issuer_key_id, der, purpose)
                .map_err(|e| registry::Error::Conflict(e.to_string()))?;
            rec.holder_id = Some(doc.holder.id);
            rec.job_id = Some(doc.issuance_job);
            let id = t.insert_certificate(&rec)?;
            if *revoked {
                t.revoke_certificate(id, "cessationOfOperation", &now)?;
            } else {
                t.activate_certificate(id, doc.card.id)?;
            }
        }
        for (id, _) in &superseded {
            t.revoke_certificate(*id, "superseded", &now)?;
        }
        t.audit(&AuditEntry {
            actor,
            action: "certificates.mirrored",
            object: &format!("document:{number}"),
            details: &json!({
                "card": doc.card.chip_serial,
                "active": adopted.iter().filter(|a| !a.4).map(|a| &a.3).collect::<Vec<_>>(),
                "revoked": adopted.iter().filter(|a| a.4).map(|a| &a.3).collect::<Vec<_>>(),
                "superseded": superseded.iter().map(|s| &s.1).collect::<Vec<_>>(),
                "renewed_at": renewed_at,
            }),
        })
    })?;
    tracing::info!(document = %number, "certificates renewed at another office brought here");
    Ok((
        adopted.into_iter().filter(|a| !a.4).map(|a| a.3).collect(),
        superseded.into_iter().map(|s| s.1).collect(),
    ))
}

/// Why a renewed certificate cannot be taken here: its issuing key is new to this station.
fn unknown_esign_key(serial: &str, number: &str) -> String {
    format!(
        "certificate {serial}: document {number} was renewed at the national centre under an \
         e-Signature CA key this station has not met yet; issue a card here first (the station \
         learns the centre's new key then), and try again"
    )
}

/// Whether this station knows the e-Signature CA key that signed `der`.
pub(crate) fn esign_key_known(st: &Station, der: &[u8]) -> Result<bool, StationError> {
    Ok(st.registry.ca_keys("esign")?.iter().any(|k| {
        k.certificate
            .as_deref()
            .is_some_and(|i| ca::issued_by(der, i).unwrap_or(false))
    }))
}

/// [`renewed_elsewhere`] for the card in the reader when it is one of this station's, `true`
/// when it brought certificates here: what the desk shows (`identify`) is then the renewed
/// card. A centre that cannot be asked changes nothing here (the card is shown as this
/// registry has it, and the match says so).
pub(crate) fn for_card(
    st: &mut Station,
    session: &Session,
    profile: &CardProfile,
    card: &IssuedCard,
) -> bool {
    let Ok(Some(rec)) = st.registry.card(&serial_text(card.serial)) else {
        return false;
    };
    let (Some(holder_id), Some(document_id)) = (rec.holder_id, rec.document_id) else {
        return false;
    };
    let number = match st.registry.documents_of_holder(holder_id) {
        Ok(docs) => docs
            .into_iter()
            .find(|d| d.id == document_id)
            .map(|d| d.number),
        Err(_) => None,
    };
    let Some(doc) = number.and_then(|n| super::issued_document(st, &n.to_string()).ok()) else {
        return false;
    };
    renewed_elsewhere(st, session, profile, &doc, card).unwrap_or_else(|e| {
        tracing::warn!(card = %rec.chip_serial, error = %e, "a renewal at another office could not be brought here");
        false
    })
}
