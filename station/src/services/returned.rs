//! `idstation card returned`: a card brought back to the office (damaged, replaced, found
//! after a loss) recorded as returned and destroyed: a `card_returns` row, the card's
//! lifecycle destroyed, one audit event, in one transaction. Only the card of a document out
//! of use (revoked, lost, expired) is taken back: an active or suspended document's card is
//! still the holder's.

use registry::{AuditEntry, CardLifecycle, DocumentStatus};
use serde::Serialize;

use crate::error::StationError;
use crate::session::Session;
use crate::Station;

use super::refused;

#[derive(Debug, Clone, Serialize)]
pub struct CardReturnReport {
    pub document: String,
    pub card_serial: String,
    pub document_status: String,
    pub destroyed: bool,
    pub returned_at: String,
}

/// Record the card of document `num` as returned and destroyed.
pub fn card_returned(
    st: &mut Station,
    session: &Session,
    num: &str,
) -> Result<CardReturnReport, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "record returned cards",
        &[registry::Role::Clerk],
    )?;
    let checked = (|| {
        let number = crate::records::parse_document(num)?;
        let doc = st
            .registry
            .document(number)?
            .ok_or_else(|| StationError::NotFound(format!("document: no document {number}")))?;
        if matches!(
            doc.status,
            DocumentStatus::Active | DocumentStatus::Suspended
        ) {
            return Err(StationError::Conflict(format!(
                "document status: document {number} is {}; a card is taken back only when its \
                 document is out of use (revoke or replace it first)",
                doc.status.as_str()
            )));
        }
        let card = st.registry.card_of_document(doc.id)?.ok_or_else(|| {
            StationError::NotFound(format!("document {number} has no card on record"))
        })?;
        if card.lifecycle == CardLifecycle::Destroyed || st.registry.card_return(card.id)?.is_some()
        {
            return Err(StationError::Conflict(format!(
                "card: card {} of document {number} was already returned",
                card.chip_serial
            )));
        }
        Ok((doc, card))
    })();
    let (doc, card) = checked.map_err(|e| refused(st, session, "card.returned", num, e))?;
    let number = doc.number;
    let tx = st.registry.transaction()?;
    tx.record_card_return(card.id, doc.id, true, session.actor())?;
    tx.audit(&AuditEntry {
        actor: session.actor(),
        action: "card.returned",
        object: &format!("document:{number}"),
        details: &serde_json::json!({
            "card_serial": card.chip_serial,
            "document_status": doc.status.as_str(),
            "destroyed": true,
        }),
    })?;
    tx.commit()?;
    let r = st
        .registry
        .card_return(card.id)?
        .ok_or_else(|| StationError::Other(format!("card {} return not recorded", card.id)))?;
    Ok(CardReturnReport {
        document: number.to_string(),
        card_serial: card.chip_serial,
        document_status: doc.status.as_str().into(),
        destroyed: r.destroyed,
        returned_at: r.returned_at,
    })
}
