//! Documents taken out of use (`POST /v1/documents/{document}/revoke`): a station's clerk
//! declares a card lost, stolen, damaged, replaced, its holder deceased or their data changed.
//! Any enrolled station may do it (a holder may go to any office). In one transaction the
//! document's state changes, every certificate of its issuance is revoked with the reason's
//! CRL reason (RFC 5280 §5.3.1), and the change is audited naming the station and the
//! operator. A repeated request for a document already out of use answers with its state and
//! the certificates revoked, and changes nothing.

use crate::db::Prepared;
use centre_api::{RevokeRequest, RevokeResponse};

use crate::audit;
use crate::enrol::WhoAmI;
use crate::error::{CentralError, Refusal, Result};
use crate::pki::Centre;

/// The document state and the CRL reason of a revocation reason (the station's mapping:
/// `station::records::revocation_for`).
pub fn revocation_for(reason: &str) -> Result<(&'static str, &'static str)> {
    Ok(match reason {
        // The private keys may be in someone else's hands.
        "lost" | "stolen" => ("lost", "keyCompromise"),
        "damaged" | "deceased" => ("revoked", "cessationOfOperation"),
        "replaced" => ("revoked", "superseded"),
        // A replacement because the holder's name changed (the station's `replace --reason
        // name-change`): the old certificates name someone who no longer exists by that name.
        "name-change" => ("revoked", "superseded"),
        "data-changed" => ("revoked", "affiliationChanged"),
        _ => return Err(CentralError::invalid(
            "reason",
            "must be one of lost, stolen, damaged, deceased, replaced, name-change, data-changed",
        )),
    })
}

/// Take `document` out of use (see the module documentation).
pub async fn revoke(
    centre: &Centre,
    who: &WhoAmI,
    document: &str,
    req: &RevokeRequest,
) -> Result<RevokeResponse> {
    crate::issuance::check_operator(&req.operator)?;
    let (state, crl_reason) = revocation_for(&req.reason)?;
    let (series, number) = crate::numbers::parse_document(document)?;
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .prepared_opt(
            "SELECT job, state, office, id, holder_id FROM documents WHERE series = $1 AND number = $2 FOR UPDATE",
            &[&series, &number],
        )
        .await?
        .ok_or_else(|| {
            CentralError::refused(
                Refusal::NotFound,
                "document-not-found",
                format!("the centre has no issued document {document}"),
            )
        })?;
    let (job, current, office): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    let (id, holder): (i64, i64) = (row.get(3), row.get(4));
    if let Some(new) = &req.replaced_by {
        link_replacement(&tx, id, holder, new).await?;
    }
    if current != "active" && current != "suspended" {
        let revoked = revoked_of(&tx, &job).await?;
        return Ok(RevokeResponse {
            document: document.to_owned(),
            state: current,
            revoked,
            crl_reason: String::new(),
        });
    }
    let by = crate::issuance::actor(who, &req.operator);
    tx.prepared_execute(
        "UPDATE documents SET state = $2, state_reason = $3, state_changed_at = now(), state_changed_by = $4,
                suspended_at = NULL
         WHERE job = $1",
        &[&job, &state, &req.reason, &format!("{}/{}", who.station, req.operator)],
    )
    .await?;
    tx.execute(
        // A certificate on hold (a suspended document) takes the final reason.
        "UPDATE certificates SET state = 'revoked', revocation_reason = $2, revoked_at = now()
         WHERE job = $1 AND (state <> 'revoked' OR revocation_reason = 'certificateHold')",
        &[&job, &crl_reason],
    )
    .await?;
    let revoked = revoked_of(&tx, &job).await?;
    let details = serde_json::json!({
        "document": document, "issued_by_office": office, "reason": req.reason,
        "replaced_by": req.replaced_by, "office": who.office,
        "state": state, "crl_reason": crl_reason, "certificates": revoked,
    });
    audit::append(
        &tx,
        &by,
        "document.revoked",
        &format!("document:{document}"),
        &details,
    )
    .await?;
    tx.commit().await?;
    Ok(RevokeResponse {
        document: document.to_owned(),
        state: state.to_owned(),
        revoked,
        crl_reason: crl_reason.to_owned(),
    })
}

/// Link document `old` (of `holder`) to the active document `new` of the same holder that
/// replaces it.
async fn link_replacement(
    tx: &deadpool_postgres::Transaction<'_>,
    old: i64,
    holder: i64,
    new: &str,
) -> Result<()> {
    let (series, number) = crate::numbers::parse_document(new).map_err(|_| {
        CentralError::invalid("replaced_by", "must be a document number (e.g. AA0000042)")
    })?;
    let row = tx
        .prepared_opt(
            "SELECT id FROM documents WHERE series = $1 AND number = $2 AND holder_id = $3 AND state = 'active'",
            &[&series, &number, &holder],
        )
        .await?
        .ok_or_else(|| {
            CentralError::invalid(
                "replaced_by",
                format!("{new} is not an active document of the same holder"),
            )
        })?;
    let new_id: i64 = row.get(0);
    tx.prepared_execute(
        "UPDATE documents SET replaced_by = $2 WHERE id = $1",
        &[&old, &new_id],
    )
    .await?;
    Ok(())
}

async fn revoked_of(tx: &deadpool_postgres::Transaction<'_>, job: &str) -> Result<Vec<String>> {
    Ok(tx
        .prepared_query(
            "SELECT serial FROM certificates WHERE job = $1 AND state = 'revoked' ORDER BY slot",
            &[&job],
        )
        .await?
        .iter()
        .map(|r| hex::encode_upper(r.get::<_, &[u8]>(0)))
        .collect())
}
