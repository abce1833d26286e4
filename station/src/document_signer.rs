//! `idstation centre renew-document-signer` (docs/centre.md "Document Signer renewal"): an
//! enrolled station's next Document Signer. ICAO Doc 9303-12 Table 1 bounds a Document
//! Signer's private key usage to about three months; the centre's CSCA certifies each one.
//!
//! The steps, each safe to repeat, so a crash, a lost answer or a pulled cable leaves nothing
//! that a second run does not finish:
//!
//! 1. the key: `ds-<N+1>` (N: the highest Document Signer number in the registry) generated in
//!    the station's HSM, or taken as it is when an interrupted run left it there;
//! 2. its PKCS#10 request to `POST /v1/document-signer/renew` over the mutual-TLS connection:
//!    the centre answers with the same certificate for a key it certified before;
//! 3. the answer checked: the certificate certifies that key, its private key usage period has
//!    not ended, and a CSCA this station trusts signed it; a CSCA the station does not hold yet
//!    is accepted only through a `new-with-old` CSCA link certificate signed by one it holds
//!    (ICAO Doc 9303-12's CSCA Link certificate), recorded as `centre-<label>`;
//! 4. one registry transaction: the new key with its certificate becomes the active Document
//!    Signer, the one before is retired (it signs no new EF.SOD; its certificate stays valid for
//!    the documents it signed), a learnt CSCA becomes the active one, and the event is audited
//!    (`centre.document-signer-renewed`). Issuances read the active Document Signer once per
//!    EF.SOD, so each card is signed by one key or the other, never a mix.
//!
//! A refused answer is audited (`centre.rollover-refused`) and nothing is recorded. One renewal
//! runs at a time (a lock in `DIR/locks/`; a second is refused, exit 5).
//!
//! The station also renews by itself ([`renew_when_due`]): once `[centre]
//! renew_document_signer_days` (default 14) or fewer are left of the active Document Signer's
//! key usage, a `centre sync` (the GUI runs one every few minutes) or an issuance ([`before_issue`])
//! runs the same four steps in the session of the clerk or ca-admin at work, audited as
//! automatic, so an office does not stop issuing because nobody renewed in time.

use centre_api::anchors::{
    DocumentSignerRenewRequest, DocumentSignerRenewResponse, DOCUMENT_SIGNER_RENEW_PATH,
};
use registry::{Actor, AuditEntry, CaKeyState, Role};
use serde::Serialize;

use crate::centre::anchors::{check_new_root, refused, signed_by_any};
use crate::centre::files::pem_to_der;
use crate::centre::status::DocumentSignerUse;
use crate::centre::CentreClient;
use crate::datadir::{Work, WorkLock};
use crate::error::StationError;
use crate::hierarchy::{CSCA_CA, DS_CA};
use crate::session::Session;
use crate::Station;

/// HSM labels of Document Signer keys: `ds-<N>`.
const LABEL_PREFIX: &str = "ds-";

/// What [`renew`] did.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentSignerRenewal {
    /// The new active Document Signer key.
    pub key: String,
    pub serial: String,
    /// The centre's CSCA key that certified it.
    pub csca: String,
    /// End of the new key's private key usage period.
    pub key_usage_until: Option<String>,
    /// Whole days until then.
    pub days_left: Option<i64>,
    /// The key it replaces (retired now).
    pub previous_key: Option<String>,
    /// A CSCA this station learnt now through its link certificate (`centre-<label>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csca_learnt: Option<String>,
    /// `false` when the centre had certified this key before (an interrupted run finished).
    pub issued_now: bool,
    /// Renewed by the station itself ([`renew_when_due`]), not by a ca-admin's command.
    pub automatic: bool,
}

/// The label of the next Document Signer key: one above the highest `ds-<N>` the registry
/// holds.
fn next_label(st: &Station) -> Result<String, StationError> {
    let highest = st
        .registry
        .ca_keys(DS_CA)?
        .iter()
        .filter_map(|k| k.label.strip_prefix(LABEL_PREFIX)?.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    Ok(format!("{LABEL_PREFIX}{}", highest + 1))
}

/// A checked answer: the certificate (DER) and how its CSCA is known.
struct Checked {
    der: Vec<u8>,
    csca: CscaOrigin,
}

enum CscaOrigin {
    /// A CSCA key the registry holds (its id).
    Held(i64),
    /// A CSCA learnt through its link: its registry label (`centre-<label>`), certificate and
    /// SPKI (DER).
    Learnt {
        label: String,
        der: Vec<u8>,
        spki: Vec<u8>,
    },
}

/// The registry's CSCA keys with a certificate that are not revoked (withdrawn by the centre):
/// (id, DER).
fn held_cscas(st: &Station) -> Result<Vec<(i64, Vec<u8>)>, StationError> {
    Ok(st
        .registry
        .ca_keys(CSCA_CA)?
        .into_iter()
        .filter(|k| k.state != registry::CaKeyState::Revoked)
        .filter_map(|k| Some((k.id, k.certificate?)))
        .collect())
}

/// The CSCA of the answer, known or checked through the centre's CSCA link certificates, and
/// its certificate (DER).
fn check_csca(
    st: &Station,
    r: &DocumentSignerRenewResponse,
) -> Result<(CscaOrigin, Vec<u8>), StationError> {
    let der = pem_to_der("csca_cert", &r.csca_cert)?;
    let held = held_cscas(st)?;
    if let Some((id, _)) = held.iter().find(|(_, d)| *d == der) {
        return Ok((CscaOrigin::Held(*id), der));
    }
    let links = r
        .csca_links
        .iter()
        .map(|l| {
            let d = pem_to_der(&format!("csca_links[{}]", l.certified), &l.cert)?;
            Ok((l.certified.clone(), d))
        })
        .collect::<Result<Vec<_>, StationError>>()?;
    let held: Vec<Vec<u8>> = held.into_iter().map(|(_, d)| d).collect();
    check_linked_csca(&held, &r.csca, &der, &links)?;
    let spki = ca::certificate_spki(&der)?;
    let label = format!("centre-{}", r.csca);
    let learnt = CscaOrigin::Learnt {
        label,
        der: der.clone(),
        spki,
    };
    Ok((learnt, der))
}

/// A CSCA `csca` (DER) named `label` that this station does not hold is accepted when one of
/// `links` (certified label, `new-with-old` link DER) certifies it and is reachable from a
/// `held` CSCA: signed by one, or by a link that is (a station may have missed several
/// rollovers); the CSCA itself must be self-signed, a CA and valid now.
pub fn check_linked_csca(
    held: &[Vec<u8>],
    label: &str,
    csca: &[u8],
    links: &[(String, Vec<u8>)],
) -> Result<(), StationError> {
    let mut trust = held.to_vec();
    while let Some((_, l)) = links
        .iter()
        .find(|(_, l)| !trust.contains(l) && signed_by_any(l, &trust))
    {
        trust.push(l.clone());
    }
    let link = links
        .iter()
        .find(|(certified, l)| certified == label && trust.contains(l))
        .map(|(_, l)| l)
        .ok_or_else(|| {
            StationError::invalid(
                "csca_cert",
                format!(
                    "{label} is not a CSCA this station holds, and no CSCA link certificate from one it holds certifies it: refused, nothing stored"
                ),
            )
        })?;
    check_new_root(&trust, label, link, csca)
}

/// Check the centre's answer for key `label` (see the module documentation).
fn check(
    st: &Station,
    label: &str,
    r: &DocumentSignerRenewResponse,
) -> Result<Checked, StationError> {
    let field = "document_signer_cert";
    let der = pem_to_der(field, &r.document_signer_cert)?;
    if ca::certificate_spki(&der)? != st.keys.public_key_spki(label)? {
        return Err(StationError::invalid(
            field,
            format!("does not certify this station's key {label}: refused, nothing stored"),
        ));
    }
    let info = ca::CertInfo::parse(&der)?;
    if let Some(until) = &info.key_usage_until {
        let t = crate::time_util::parse_rfc3339(until)
            .map_err(|e| StationError::invalid(field, format!("privateKeyUsagePeriod: {e}")))?;
        if t <= std::time::SystemTime::now() {
            return Err(StationError::invalid(
                field,
                format!("its private key usage period ended at {until}: refused, nothing stored"),
            ));
        }
    }
    let (csca, csca_der) = check_csca(st, r)?;
    if !ca::issued_by(&der, &csca_der)? {
        return Err(StationError::invalid(
            field,
            format!(
                "is not signed by the CSCA {} the centre named: refused, nothing stored",
                r.csca
            ),
        ));
    }
    Ok(Checked { der, csca })
}

/// Write `der` as the PEM file of CA key `label` in `DATA/ca/` (0600, atomically).
fn write_pem(st: &Station, label: &str, der: &[u8]) -> Result<(), StationError> {
    let path = st.layout.ca_cert(label);
    registry::files::write_atomic(&path, ca::cert_pem(der)?.as_bytes())
        .map_err(|e| StationError::io(&path, e))
}

/// Step 4: the switch, in one registry transaction.
fn switch(
    st: &mut Station,
    actor: &Actor,
    label: &str,
    r: &DocumentSignerRenewResponse,
    c: &Checked,
    automatic: bool,
) -> Result<DocumentSignerRenewal, StationError> {
    let spki = st.keys.public_key_spki(label)?;
    let previous = st.registry.active_ca_key(DS_CA)?;
    let old_csca = st.registry.active_ca_key(CSCA_CA)?;
    let learnt = match &c.csca {
        CscaOrigin::Learnt { label, .. } => Some(label.clone()),
        CscaOrigin::Held(_) => None,
    };
    write_pem(st, label, &c.der)?;
    if let CscaOrigin::Learnt { label, der, .. } = &c.csca {
        write_pem(st, label, der)?;
    }
    let info = ca::CertInfo::parse(&c.der)?;
    let details = serde_json::json!({
        "key": label, "serial": info.serial_hex, "csca": r.csca,
        "certificate_sha256": ca::fingerprint_sha256(&c.der)?,
        "key_usage_until": info.key_usage_until, "previous_key": previous.as_ref().map(|k| &k.label),
        "csca_learnt": learnt, "issued_now": r.issued_now, "automatic": automatic,
    });
    let object = format!("centre:{}", st.config.station.name);
    // Its issuer is set in the transaction (a learnt CSCA gets its id there).
    let record = crate::hierarchy::cert_record(0, &c.der, DS_CA)?;
    st.registry.write(|tx| {
        let csca_id = match &c.csca {
            CscaOrigin::Held(id) => *id,
            CscaOrigin::Learnt { label: l, der, spki } => {
                if let Some(o) = &old_csca {
                    let why = Some("the centre rolled its CSCA over");
                    tx.set_ca_key_state(o.id, CaKeyState::Retired, actor, &[], why)?;
                }
                let id = tx.insert_ca_key(l, CSCA_CA, "csca", spki, actor)?;
                tx.set_ca_key_certificate(id, der)?;
                let note = "the centre's CSCA, learnt through its CSCA link certificate";
                tx.set_ca_key_state(id, CaKeyState::Active, actor, &[], Some(note))?;
                id
            }
        };
        let id = tx.insert_ca_key(label, DS_CA, "document-signing", &spki, actor)?;
        tx.set_ca_key_certificate(id, &c.der)?;
        tx.insert_certificate(&registry::NewCertificate {
            issuer_key_id: csca_id,
            ..record.clone()
        })?;
        if let Some(p) = &previous {
            let why = Some("signs no new EF.SOD; its certificate stays valid for the documents it signed (ICAO 9303 Part 12)");
            tx.set_ca_key_state(p.id, CaKeyState::Retired, actor, &[], why)?;
        }
        let note = format!("certified by the national centre's CSCA {}", r.csca);
        tx.set_ca_key_state(id, CaKeyState::Active, actor, &[], Some(&note))?;
        tx.audit(&AuditEntry {
            actor,
            action: "centre.document-signer-renewed",
            object: &object,
            details: &details,
        })?;
        Ok(())
    })?;
    Ok(DocumentSignerRenewal {
        key: label.to_owned(),
        serial: info.serial_hex,
        csca: r.csca.clone(),
        days_left: info
            .key_usage_until
            .as_deref()
            .map(|t| crate::centre::status::days_until(t, "privateKeyUsagePeriod"))
            .transpose()?,
        key_usage_until: info.key_usage_until,
        previous_key: previous.map(|k| k.label),
        csca_learnt: learnt,
        issued_now: r.issued_now,
        automatic,
    })
}

/// `idstation centre renew-document-signer` (a ca-admin; see the module documentation).
pub fn renew(st: &mut Station, session: &Session) -> Result<DocumentSignerRenewal, StationError> {
    let action = "renew the Document Signer";
    crate::session::require_current(&mut st.registry, session, action, &[Role::CaAdmin])?;
    run(st, session, false)?
        .ok_or_else(|| StationError::Other("the renewal by hand ended without a renewal".into()))
}

/// Who may be at work when the station renews its Document Signer by itself: those who serve
/// its documents. The renewal leaves them nothing to choose (the next key, its name and profile
/// are fixed, and the centre's CSCA decides), so it is no ca-admin's decision.
pub const AUTOMATIC_ROLES: &[Role] = &[Role::Clerk, Role::CaAdmin];

/// The active Document Signer, when the station is to renew it by itself now: an enrolled
/// station with `[centre] renew_document_signer_days` above 0, whose active Document Signer's
/// key usage ends within that many whole days or has ended.
pub fn due(st: &Station) -> Result<Option<DocumentSignerUse>, StationError> {
    let days = match &st.config.centre {
        Some(c) if c.renew_document_signer_days > 0 => i64::from(c.renew_document_signer_days),
        _ => return Ok(None),
    };
    Ok(crate::centre::status::document_signer(st)?
        .filter(|d| d.days_left.is_some_and(|left| left <= days)))
}

/// The automatic renewal (see the module documentation): when [`due`], the same renewal as
/// [`renew`] in `session` (a clerk's or ca-admin's), audited with `"automatic": true`. `None`
/// when nothing is due, or while another renewal runs (it does the work).
pub fn renew_when_due(
    st: &mut Station,
    session: &Session,
) -> Result<Option<DocumentSignerRenewal>, StationError> {
    let action = "renew the Document Signer when its key usage is about to end";
    crate::session::require_current(&mut st.registry, session, action, AUTOMATIC_ROLES)?;
    if due(st)?.is_none() || WorkLock::is_held(&st.layout.root, Work::DocumentSignerRenewal) {
        return Ok(None);
    }
    let client = CentreClient::for_station(st)?;
    match long_enough(st).and_then(|()| same_clock(&client)) {
        Err(e @ StationError::Conflict(_)) => {
            return Err(refused(st, session.actor(), "document-signer", e))
        }
        Err(e) => return Err(e),
        Ok(()) => {}
    }
    run(st, session, true)
}

/// A Document Signer whose whole key usage period is not more than twice the days before its
/// end at which the station renews would be due again as soon as it was made (a centre profile
/// of a few days, say): the station then does not renew by itself, rather than at every sync.
fn long_enough(st: &Station) -> Result<(), StationError> {
    let days = st
        .config
        .centre
        .as_ref()
        .map_or(0, |c| i64::from(c.renew_document_signer_days));
    let Some(der) = st
        .registry
        .active_ca_key(DS_CA)?
        .and_then(|k| k.certificate)
    else {
        return Ok(());
    };
    let info = ca::CertInfo::parse(&der)?;
    let Some(until) = info.key_usage_until.as_deref() else {
        return Ok(());
    };
    let parse = |t: &str| {
        crate::time_util::parse_rfc3339(t).map_err(|e| StationError::Other(format!("{t}: {e}")))
    };
    let period = parse(until)?
        .duration_since(parse(&info.not_before)?)
        .map(|d| (d.as_secs() / 86_400) as i64)
        .unwrap_or(0);
    if period > 2 * days {
        return Ok(());
    }
    Err(StationError::Conflict(format!(
        "the Document Signer's key usage period is {period} days, not more than twice [centre] \
         renew_document_signer_days ({days}): a new one would be due again at once, so the \
         station does not renew it by itself; lower the setting, or have a ca-admin renew it \
         with `idstation centre renew-document-signer`"
    )))
}

/// How far this station's clock may be from the centre's for the station to judge by it that
/// its Document Signer is due.
const CLOCK_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(86_400);

/// The station judges by its own clock whether its Document Signer is due, so before it renews
/// by itself it compares that clock with the centre's (`time` of `GET /v1/status`): a station
/// whose clock ran months ahead would otherwise renew again at every sync, each new Document
/// Signer looking as old as the last. A centre that does not state its time is taken as agreeing.
fn same_clock(client: &CentreClient) -> Result<(), StationError> {
    let status: centre_api::StationStatus = client.get(centre_api::paths::STATUS)?;
    let Some(theirs) = status.time else {
        return Ok(());
    };
    let ahead = crate::centre::status::clock_ahead(&theirs)?;
    if ahead.unsigned_abs() <= CLOCK_TOLERANCE.as_secs() {
        return Ok(());
    }
    let (how, by) = if ahead > 0 {
        ("ahead of", ahead)
    } else {
        ("behind", -ahead)
    };
    Err(StationError::Conflict(format!(
        "this station's clock is {} days {how} the national centre's ({theirs} there): the \
         station does not renew its Document Signer by itself by a clock that far off; set the \
         clock (or have a ca-admin renew it with `idstation centre renew-document-signer`)",
        by / 86_400
    )))
}

/// Before an issuance: a Document Signer that is [`due`] is renewed first. A failed renewal
/// stops the issuance (before any card is touched) only when the centre cannot be reached —
/// the issuance needs it too — or the active Document Signer's key usage has ended; otherwise
/// the card is signed by the active one, the failure is logged, and the next sync or issuance
/// tries again.
pub fn before_issue(
    st: &mut Station,
    session: &Session,
) -> Result<Option<DocumentSignerRenewal>, StationError> {
    let e = match renew_when_due(st, session) {
        Ok(Some(r)) => {
            tracing::info!(key = %r.key, "renewed the Document Signer before an issuance");
            return Ok(Some(r));
        }
        Ok(None) => return Ok(None),
        Err(e) => e,
    };
    let ended = due(st)?
        .and_then(|d| d.days_left)
        .is_some_and(|left| left < 0);
    if ended || matches!(e, StationError::CentreUnreachable { .. }) {
        return Err(e);
    }
    tracing::warn!(error = %e, "the Document Signer is due for renewal and its renewal failed; \
        the card is signed by the active one");
    Ok(None)
}

/// The four steps (see the module documentation), by hand or `automatic`; `None` when an
/// automatic renewal finds, once it holds the lock, that another process renewed meanwhile.
fn run(
    st: &mut Station,
    session: &Session,
    automatic: bool,
) -> Result<Option<DocumentSignerRenewal>, StationError> {
    let actor = session.actor().clone();
    let client = CentreClient::for_station(st)?;
    // Two renewals at once would both take the same next label.
    let _lock = WorkLock::acquire(&st.layout.root, Work::DocumentSignerRenewal)?;
    if automatic && due(st)?.is_none() {
        return Ok(None);
    }
    let label = next_label(st)?;
    if st.keys.find(&label)?.is_none() {
        st.keys.generate_p256(&label)?;
    }
    crate::failpoint::hit("centre.ds-renew.key-generated");
    let name = format!("{} Document Signer", st.config.station.name);
    let csr = ca::csr_for_hsm_key(st.keys.as_ref(), &label, &name)?;
    let req = DocumentSignerRenewRequest {
        operator: session.operator().to_owned(),
        document_signer_csr: hex::encode(csr),
    };
    let r: DocumentSignerRenewResponse = match client.post(DOCUMENT_SIGNER_RENEW_PATH, &req) {
        Ok(r) => r,
        Err(e @ StationError::CentreRefused { .. }) => {
            return Err(refused(st, &actor, "document-signer", e))
        }
        Err(e) => return Err(e),
    };
    crate::failpoint::hit("centre.ds-renew.answered");
    let checked = match check(st, &label, &r) {
        Ok(c) => c,
        Err(e) => return Err(refused(st, &actor, "document-signer", e)),
    };
    switch(st, &actor, &label, &r, &checked, automatic).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::centre::anchors::tests::world;

    #[test]
    fn a_new_csca_is_accepted_only_through_a_link_from_one_the_station_holds() {
        let w = world();
        let links = vec![("csca-2".to_owned(), w.new_with_old.clone())];
        check_linked_csca(std::slice::from_ref(&w.root1), "csca-2", &w.root2, &links).unwrap();
        // Held: another CSCA; the link is not signed by it.
        let e = check_linked_csca(std::slice::from_ref(&w.other), "csca-2", &w.root2, &links)
            .unwrap_err()
            .to_string();
        assert!(e.contains("csca_cert") && e.contains("refused"), "{e}");
        // A link signed by a CSCA the station does not hold.
        let forged = vec![("csca-2".to_owned(), w.forged_link.clone())];
        let e = check_linked_csca(std::slice::from_ref(&w.root1), "csca-2", &w.root2, &forged)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no CSCA link certificate"), "{e}");
        // The right link presented for another key.
        let e = check_linked_csca(std::slice::from_ref(&w.root1), "csca-2", &w.other, &links)
            .unwrap_err()
            .to_string();
        assert!(e.contains("certifies another key or name"), "{e}");
        // No links at all.
        assert!(
            check_linked_csca(std::slice::from_ref(&w.root1), "csca-2", &w.root2, &[]).is_err()
        );
    }
}
