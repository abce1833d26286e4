//! Executing an approved CA revocation: the CA certificate revoked, its key marked revoked,
//! its holder certificates flagged for re-issuance, and the parent's CRL published (RFC 5280 §5).

use registry::{Actor, AuditEntry, CaKeyState, CaRequest};

use super::*;
use crate::error::StationError;
use crate::failpoint::hit as failpoint;
use crate::Station;

pub(super) fn execute_revocation(
    st: &mut Station,
    actor: &Actor,
    req: &CaRequest,
) -> Result<Execution, StationError> {
    let id = req.id;
    let view = RequestView::new(req, None);
    let approvers: Vec<&str> = req.approvals.iter().map(String::as_str).collect();
    let label = view
        .key
        .clone()
        .ok_or_else(|| StationError::Other(format!("CA request {id} names no key")))?;
    let reason = view.reason.clone().unwrap_or_else(|| "unspecified".into());
    let key = st
        .registry
        .ca_key_by_label(&label)?
        .ok_or_else(|| StationError::Other(format!("CA key {label} is not in the registry")))?;
    let der = key
        .certificate
        .clone()
        .ok_or_else(|| StationError::Other(format!("CA key {label} has no certificate")))?;
    let info = ca::CertInfo::parse(&der)?;
    let (cert_row, signer) = crate::hierarchy::certifying_key(st, &label, &der)?;
    let mut flagged = 0;
    if key.state != CaKeyState::Revoked {
        let at = registry::now_rfc3339();
        let tx = st.registry.transaction()?;
        let step =
            tx.journal_request_step(id, steps::REVOKE, &serde_json::json!({ "key": label }))?;
        tx.revoke_certificate(cert_row.id, &reason, &at)?;
        tx.set_ca_key_state(
            key.id,
            CaKeyState::Revoked,
            actor,
            &approvers,
            Some(&format!(
                "CA certificate revoked ({reason}) by CA request {id}"
            )),
        )?;
        flagged = tx.mark_reissue_for_issuer(key.id)?;
        tx.finish_request_step(
            step,
            Some(&serde_json::json!({ "key": label, "reissue_required": flagged })),
        )?;
        tx.journal_request_step(
            id,
            steps::CRL_PUBLISH,
            &serde_json::json!({ "key": signer.label }),
        )?;
        tx.audit(&AuditEntry {
            actor,
            action: "ca.revoked",
            object: &format!("ca-key:{label}"),
            details: &serde_json::json!({
                "request": id, "reason": reason, "serial": info.serial_hex,
                "reissue_required": flagged, "requested_by": req.requested_by, "approvers": approvers,
            }),
        })?;
        tx.commit()?;
        tracing::warn!(key = %label, reason = %reason, flagged, "CA certificate revoked");
    }
    failpoint("rotation.revoked");
    // The root key that signed the CA certificate lists it on its CRL.
    let out = st.layout.crl(&signer.label);
    crate::ca_admin::crl_as(st, actor, Some(&signer.label), &out)?;
    {
        let started = tx_started_step(st, id, steps::CRL_PUBLISH)?;
        let tx = st.registry.transaction()?;
        if let Some(s) = started {
            tx.finish_request_step(s, None)?;
        }
        if req.state != "executed" {
            tx.set_ca_request_state(id, "executed")?;
            tx.set_ca_request_outcome(
                id,
                &format!("{label} revoked ({reason}); {} lists it", signer.label),
            )?;
        }
        tx.commit()?;
    }
    let flagged_total = if flagged > 0 {
        flagged
    } else {
        st.registry
            .reissue_list()?
            .iter()
            .filter(|e| e.issuer_key == label)
            .count()
    };
    Ok(Execution {
        request_id: id,
        kind: KIND_REVOKE_CA.into(),
        ca: req.ca.clone(),
        old_key: None,
        key: label,
        certificate_sha256: ca::fingerprint_sha256(&der)?,
        files: vec![out],
        reissue_required: flagged_total,
        seconds: 0.0,
    })
}

pub(super) fn tx_started_step(
    st: &Station,
    id: i64,
    step: &str,
) -> Result<Option<i64>, StationError> {
    Ok(super::execute::step_details(st, id, step)?
        .filter(|(_, state, _)| state == "started")
        .map(|(sid, _, _)| sid))
}
