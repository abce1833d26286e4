//! CA key rotation, root rollover and CA revocation under dual control (docs/rotation.md), and
//! the same for the chip-data PKI of ICAO 9303 Part 12: the
//! Document Signer (`document-signer`, alias `ds`: a new end-entity certificate under the
//! active CSCA, the old DS key retired so that it signs no new EF.SOD) and the CSCA (a new
//! self-signed CSCA plus link certificates, the NewWithOld one being Part 12's CSCA link
//! certificate). Each CA's rules are one [`RotatingCa`] entry; all share one execution path.
//!
//! A ca-admin files a request ([`request_rotation`], [`request_ca_revocation`]); it is executed
//! only once `rotation.quorum` other ca-admins (distinct, never the requester) approved it
//! ([`approve`]) before it expired. Every request, approval, refusal, expiry and refused attempt
//! is an audit event.
//!
//! Execution is journaled (`ca_request_steps`) before each side effect and every step is
//! idempotent, so a crash leaves the old key active (or, after the one-transaction switch, the
//! new one) and [`recover`] finishes the request:
//!
//! 1. `key.generate`: a new P-256 key `<ca>-ca-<N+1>` in the HSM, recorded with its SHA-256
//!    fingerprint, the requester and the approvers (state `generated`).
//! 2. `cert.sign`: the e-Signature CA certificate signed by the active root (RFC 5280 §4.2.1.9
//!    pathLen 0), or for a root the self-signed certificate plus the link certificates
//!    OldWithNew / NewWithOld (RFC 4210 §4.4.1); written to `DATA/ca/` and the registry.
//! 3. `switch`: one registry transaction retires the old key (it then signs only CRLs for what
//!    it issued) and activates the new one. Issuances read the active key once and sign all
//!    their certificates with it, so one issuance never mixes keys.
//!
//! CA revocation revokes the CA certificate in the registry, marks the key `revoked`, flags
//! every unrevoked holder certificate it issued `reissue_required` (one transaction), then the
//! root key that signed the CA certificate publishes its CRL listing it (RFC 5280 §5).
//!
//! Submodules: `execute` (the journaled steps of a rotation and of an operator change), `sign`
//! (a new key's certificates, link certificates included), `revoke` (CA revocation).

use std::path::PathBuf;

use registry::{Actor, AuditEntry, CaKeyState, CaRequest, Role};
use serde::Serialize;

use crate::datadir::{Work, WorkLock};
use crate::error::StationError;
use crate::failpoint::hit as failpoint;
use crate::session::Session;
use crate::Station;

/// Request kinds.
pub const KIND_ROTATE: &str = "rotate";
pub const KIND_REVOKE_CA: &str = "revoke-ca";
/// A new ca-admin (added disabled) becomes active once a second ca-admin approves (dual
/// control over who holds the CA role, docs/security.md).
pub const KIND_OPERATOR_ADD: &str = "operator-add";
/// A disabled ca-admin is enabled again.
pub const KIND_OPERATOR_ENABLE: &str = "operator-enable";
/// An operator's role changes to or from ca-admin.
pub const KIND_OPERATOR_ROLE: &str = "operator-role";
/// The request kinds that change an operator (their `ca` column holds the operator's name).
pub const OPERATOR_KINDS: &[&str] = &[KIND_OPERATOR_ADD, KIND_OPERATOR_ENABLE, KIND_OPERATOR_ROLE];

/// The CAs whose keys rotate under dual control (registry CA names; `ds` is accepted as an
/// alias of `document-signer`).
pub const ROTATING_CAS: &[&str] = &["esign", "root", "document-signer", "csca"];

/// How a rotating CA's new key gets its certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Certified {
    /// Self-signed, plus link certificates OldWithNew / NewWithOld (RFC 4210 §4.4.1; for a
    /// CSCA the NewWithOld one is ICAO 9303 Part 12's CSCA link certificate).
    SelfSigned,
    /// A CA certificate signed by the active key of the named CA.
    SubordinateOf(&'static str),
    /// An end-entity certificate signed by the active key of the named CA (the Document
    /// Signer, ICAO 9303 Part 12 §5: certified by the CSCA).
    EndEntityOf(&'static str),
}

/// What a key rotation of one CA does: the label of its keys, the registry role, the
/// certificate profile and who certifies the new key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotatingCa {
    /// Registry CA name (`ca_keys.ca`).
    pub name: &'static str,
    /// HSM labels are `<label_prefix><N>`.
    pub label_prefix: &'static str,
    /// Registry key role (`ca_keys.role`).
    pub role: &'static str,
    /// Certificate profile of the new key's certificate.
    pub profile: &'static str,
    pub certified: Certified,
    /// Common name of an end-entity certificate, `{n}` replaced by the key number.
    pub common_name: &'static str,
    /// What the retired key may still do (recorded in its state history).
    pub retired_note: &'static str,
}

/// The rotation rules of every CA that rotates (see [`ROTATING_CAS`]).
pub const ROTATING: &[RotatingCa] = &[
    RotatingCa {
        name: "esign",
        label_prefix: "esign-ca-",
        role: "issuing",
        profile: "esign-ca",
        certified: Certified::SubordinateOf("root"),
        common_name: "",
        retired_note: "signs only CRLs for what it issued",
    },
    RotatingCa {
        name: "root",
        label_prefix: "root-ca-",
        role: "root",
        profile: "root-ca",
        certified: Certified::SelfSigned,
        common_name: "",
        retired_note: "signs only CRLs for what it issued",
    },
    RotatingCa {
        name: crate::hierarchy::DS_CA,
        label_prefix: "ds-",
        role: "document-signing",
        profile: "document-signer",
        certified: Certified::EndEntityOf(crate::hierarchy::CSCA_CA),
        common_name: "idstation Document Signer {n}",
        retired_note: "signs no new EF.SOD; its certificate stays valid for the documents it signed (ICAO 9303 Part 12)",
    },
    RotatingCa {
        name: crate::hierarchy::CSCA_CA,
        label_prefix: "csca-",
        role: "csca",
        profile: "csca",
        certified: Certified::SelfSigned,
        common_name: "",
        retired_note: "signs only CRLs for what it issued",
    },
];

/// The rotation rules of CA `name` (registry name or the alias `ds`).
pub fn rotating_ca(name: &str) -> Option<&'static RotatingCa> {
    let name = if name == "ds" {
        crate::hierarchy::DS_CA
    } else {
        name
    };
    ROTATING.iter().find(|c| c.name == name)
}

/// Journal step names.
pub mod steps {
    pub const KEY_GENERATE: &str = "key.generate";
    pub const CERT_SIGN: &str = "cert.sign";
    pub const SWITCH: &str = "switch";
    pub const REVOKE: &str = "revoke";
    pub const CRL_PUBLISH: &str = "crl.publish";
}

/// A dual-control request as the CLI and the GUI show it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestView {
    pub id: i64,
    pub kind: String,
    pub ca: String,
    /// CA revocation: the key whose certificate is revoked; rotation: the key being replaced.
    pub key: Option<String>,
    /// CA revocation: the RFC 5280 CRLReason.
    pub reason: Option<String>,
    /// `pending`, `approved` (quorum reached, executing), `executed`, `refused` (vetoed by
    /// another ca-admin), [`WITHDRAWN`] (refused by its own requester), `expired`.
    pub state: String,
    pub requested_by: String,
    pub created_at: String,
    pub expires_at: String,
    pub quorum: u32,
    pub approvals: Vec<String>,
    pub outcome: Option<String>,
    /// Why it was filed, in the requester's words (a root rollover needs one in the GUI).
    pub note: Option<String>,
}

/// The state a request refused by its own requester is shown in. The registry records it as
/// `refused` with the outcome "withdrawn by NAME" (audited `ca.request.withdrawn`).
pub const WITHDRAWN: &str = "withdrawn";

/// A withdrawal's outcome text: "withdrawn by NAME".
fn withdrawn_by(name: &str) -> String {
    format!("withdrawn by {name}")
}

impl RequestView {
    fn new(r: &CaRequest, outcome: Option<String>) -> Self {
        let payload: serde_json::Value = serde_json::from_str(&r.payload).unwrap_or_default();
        let text = |k: &str| payload.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let withdrawn = r.state == "refused"
            && outcome.as_deref() == Some(withdrawn_by(&r.requested_by).as_str());
        RequestView {
            id: r.id,
            kind: r.kind.clone(),
            ca: r.ca.clone(),
            key: text("key"),
            reason: text("reason"),
            state: if withdrawn {
                WITHDRAWN.to_owned()
            } else {
                r.state.clone()
            },
            requested_by: r.requested_by.clone(),
            created_at: r.created_at.clone(),
            expires_at: r.expires_at.clone(),
            quorum: r.quorum,
            approvals: r.approvals.clone(),
            outcome,
            note: text("note"),
        }
    }
}

/// What an executed request did.
#[derive(Debug, Clone, Serialize)]
pub struct Execution {
    pub request_id: i64,
    pub kind: String,
    pub ca: String,
    /// Rotation: the key retired (none when the CA had no active key, e.g. after revocation).
    pub old_key: Option<String>,
    /// Rotation: the new active key; revocation: the revoked key.
    pub key: String,
    /// SHA-256 fingerprint of the new or revoked CA certificate (openssl format).
    pub certificate_sha256: String,
    /// Files written to the data dir (CA certificate, link certificates, CRL).
    pub files: Vec<PathBuf>,
    /// Revocation: holder certificates flagged for re-issuance.
    pub reissue_required: usize,
    pub seconds: f64,
}

/// What an approval did.
#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    pub request: RequestView,
    /// Present when this approval reached the quorum and the request was executed.
    pub executed: Option<Execution>,
}

/// One entry of the clerks' re-issuance list: the registry's entry, serialized as the list
/// shows it.
pub use registry::ReissueEntry as ReissueItem;

/// A request `recover` resumed.
#[derive(Debug, Clone, Serialize)]
pub struct Recovered {
    pub request_id: i64,
    pub outcome: String,
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// File a rotation request for CA `ca` (`esign`, `root`, `document-signer`, `csca`), with the
/// requester's reason `note` (recorded in the request and its audit event; blank is none).
pub fn request_rotation(
    st: &mut Station,
    session: &Session,
    ca: &str,
    note: Option<&str>,
) -> Result<RequestView, StationError> {
    require_ca_admin(st, session, "request a CA key rotation", None)?;
    let ca = rotating_ca(ca)
        .ok_or_else(|| {
            StationError::invalid(
                "ca",
                format!(
                    "{ca:?}: rotation is for {} (ds = document-signer)",
                    ROTATING_CAS.join(", ")
                ),
            )
        })?
        .name;
    if st.config.centre.is_some() {
        let rule = if ca == crate::hierarchy::DS_CA {
            "this station is enrolled to the national centre, whose CSCA certifies its Document Signer: a new one comes from `idstation centre renew-document-signer`".into()
        } else {
            format!("this station is enrolled to the national centre, which holds the {ca} CA's key: its rotations are made there (`idcentral ca rotate`)")
        };
        return Err(refused_filing(st, session.actor(), KIND_ROTATE, ca, &rule));
    }
    let from = st.registry.active_ca_key(ca)?.map(|k| k.label);
    let mut payload = serde_json::json!({ "key": from });
    if let Some(n) = note.map(str::trim).filter(|n| !n.is_empty()) {
        payload["note"] = serde_json::Value::from(n);
    }
    create(st, session, KIND_ROTATE, ca, payload)
}

/// File a request to revoke the certificate of CA key `key` (default: the active key of `ca`)
/// for `reason` (an RFC 5280 CRLReason name, e.g. keyCompromise or cACompromise).
pub fn request_ca_revocation(
    st: &mut Station,
    session: &Session,
    ca: &str,
    key: Option<&str>,
    reason: &str,
) -> Result<RequestView, StationError> {
    require_ca_admin(st, session, "request a CA revocation", None)?;
    if st.config.centre.is_some() {
        let rule = format!("this station is enrolled to the national centre, which holds the {ca} CA's key: its certificate is revoked there (`idcentral ca revoke-ca`)");
        return Err(refused_filing(
            st,
            session.actor(),
            KIND_REVOKE_CA,
            ca,
            &rule,
        ));
    }
    if ca != "esign" {
        return Err(StationError::invalid(
            "ca",
            format!("{ca:?}: only the e-Signature CA certificate can be revoked (a root is withdrawn by distrusting it)"),
        ));
    }
    if !registry::REVOCATION_REASONS.contains(&reason) || reason == "certificateHold" {
        return Err(StationError::invalid(
            "reason",
            format!(
                "{reason:?} must be an RFC 5280 CRLReason other than certificateHold: {}",
                registry::REVOCATION_REASONS
                    .iter()
                    .filter(|r| **r != "certificateHold")
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let target = match key {
        Some(label) => st.registry.ca_key_by_label(label)?.ok_or_else(|| {
            StationError::invalid(
                "key",
                format!("no CA key labelled {label:?} in the registry"),
            )
        })?,
        None => st.registry.active_ca_key(ca)?.ok_or_else(|| {
            StationError::invalid(
                "key",
                format!("CA {ca} has no active key; name one with --key"),
            )
        })?,
    };
    if target.ca != ca {
        return Err(StationError::invalid(
            "key",
            format!("{} is a key of CA {}, not {ca}", target.label, target.ca),
        ));
    }
    if !matches!(target.state, CaKeyState::Active | CaKeyState::Retired) {
        return Err(StationError::invalid(
            "key",
            format!(
                "{} is {}; only an active or retired key's certificate can be revoked",
                target.label,
                target.state.as_str()
            ),
        ));
    }
    let payload = serde_json::json!({ "key": target.label, "reason": reason });
    create(st, session, KIND_REVOKE_CA, ca, payload)
}

/// File a dual-control request that changes ca-admin `name` (for the operators module's `add`,
/// `enable` and `set_role`, which call this one): `kind` is one of
/// [`OPERATOR_KINDS`], `role` the role the operator has once it is approved. Executed, like a
/// rotation, by the approval that reaches `rotation.quorum`.
pub fn request_operator_change(
    st: &mut Station,
    session: &Session,
    kind: &str,
    name: &str,
    role: Role,
) -> Result<RequestView, StationError> {
    require_ca_admin(st, session, "request operator changes", None)?;
    if !OPERATOR_KINDS.contains(&kind) {
        return Err(StationError::invalid(
            "kind",
            format!("{kind:?} is not one of {}", OPERATOR_KINDS.join(", ")),
        ));
    }
    let payload = serde_json::json!({ "operator": name, "role": role.as_str() });
    create(st, session, kind, name, payload)
}

fn create(
    st: &mut Station,
    session: &Session,
    kind: &str,
    ca: &str,
    payload: serde_json::Value,
) -> Result<RequestView, StationError> {
    expire_overdue(st, session.actor())?;
    if let Some(open) = st
        .registry
        .ca_requests(Some(&["pending", "approved"]))?
        .into_iter()
        .find(|r| r.kind == kind && r.ca == ca)
    {
        return Err(StationError::Conflict(format!(
            "CA request {} ({kind} {ca}) is still {}; settle it before filing another",
            open.id, open.state
        )));
    }
    let quorum = st.config.rotation.quorum;
    let expires_at = registry::time_in(st.config.rotation.request_expiry_seconds);
    let id = {
        let tx = st.registry.transaction()?;
        let id = tx.create_ca_request(kind, ca, &payload, quorum, &expires_at, session.actor())?;
        tx.audit(&AuditEntry {
            actor: session.actor(),
            action: "ca.request.created",
            object: &format!("ca-request:{id}"),
            details: &serde_json::json!({
                "kind": kind, "ca": ca, "payload": payload, "quorum": quorum, "expires_at": expires_at,
            }),
        })?;
        crate::audit::checkpoint_in(&tx, st.keys.as_ref(), &st.config.ca.audit_key)?;
        tx.commit()?;
        id
    };
    tracing::info!(request = id, kind, ca, "CA request filed");
    view(st, id)
}

/// Approve request `id`. Refused (and audited) for a non-ca-admin, the requester, a second
/// approval by the same admin, and a request that is expired or no longer pending. The
/// approval that reaches the quorum executes the request.
pub fn approve(st: &mut Station, session: &Session, id: i64) -> Result<Approval, StationError> {
    require_ca_admin(st, session, "approve CA requests", Some(id))?;
    expire_overdue(st, session.actor())?;
    let req = load(st, id)?;
    if let Some(rule) = settled_rule(&req) {
        return Err(refused_attempt(st, session.actor(), id, "approve", &rule));
    }
    if let Some(rule) = centre_held(st, &req) {
        return Err(refused_attempt(st, session.actor(), id, "approve", &rule));
    }
    let reached = {
        let tx = st.registry.transaction()?;
        match tx.approve_ca_request(id, session.actor()) {
            Ok(count) => {
                tx.audit(&AuditEntry {
                    actor: session.actor(),
                    action: "ca.request.approved",
                    object: &format!("ca-request:{id}"),
                    details: &serde_json::json!({ "approvals": count, "quorum": req.quorum }),
                })?;
                let reached = count >= req.quorum;
                if reached {
                    tx.set_ca_request_state(id, "approved")?;
                }
                crate::audit::checkpoint_in(&tx, st.keys.as_ref(), &st.config.ca.audit_key)?;
                tx.commit()?;
                reached
            }
            Err(registry::Error::Conflict(why)) => {
                drop(tx);
                let rule = format!("dual control: {why}");
                return Err(refused_attempt(st, session.actor(), id, "approve", &rule));
            }
            Err(e) => return Err(e.into()),
        }
    };
    if !reached {
        return Ok(Approval {
            request: view(st, id)?,
            executed: None,
        });
    }
    failpoint("rotation.approved");
    let executed = execute(st, session.actor(), id)?;
    // The execution's events (new key, certificates, CRL, state) end inside a checkpoint too.
    crate::audit::checkpoint_after(st, "ca.request.executed");
    Ok(Approval {
        request: view(st, id)?,
        executed: Some(executed),
    })
}

/// Refuse (veto) request `id`: it can no longer be approved. Any ca-admin may refuse a pending
/// request; the requester's own refusal is a withdrawal (shown [`WITHDRAWN`], audited
/// `ca.request.withdrawn`).
pub fn refuse(
    st: &mut Station,
    session: &Session,
    id: i64,
    note: Option<&str>,
) -> Result<RequestView, StationError> {
    require_ca_admin(st, session, "refuse CA requests", Some(id))?;
    expire_overdue(st, session.actor())?;
    let req = load(st, id)?;
    if let Some(rule) = settled_rule(&req) {
        return Err(refused_attempt(st, session.actor(), id, "refuse", &rule));
    }
    let by = &session.actor().operator;
    let withdrawn = req.requested_by == *by;
    {
        let tx = st.registry.transaction()?;
        tx.set_ca_request_state(id, "refused")?;
        let outcome = if withdrawn {
            withdrawn_by(by)
        } else {
            format!("refused by {by}")
        };
        tx.set_ca_request_outcome(id, &outcome)?;
        tx.audit(&AuditEntry {
            actor: session.actor(),
            action: if withdrawn {
                "ca.request.withdrawn"
            } else {
                "ca.request.refused"
            },
            object: &format!("ca-request:{id}"),
            details: &serde_json::json!({ "note": note }),
        })?;
        crate::audit::checkpoint_in(&tx, st.keys.as_ref(), &st.config.ca.audit_key)?;
        tx.commit()?;
    }
    view(st, id)
}

/// Every request, newest first. Pending requests past their expiry are first marked
/// `expired` (audited, by `actor`).
pub fn list_requests(st: &mut Station, actor: &Actor) -> Result<Vec<RequestView>, StationError> {
    expire_overdue(st, actor)?;
    st.registry
        .ca_requests(None)?
        .iter()
        .map(|r| Ok(RequestView::new(r, st.registry.ca_request_outcome(r.id)?)))
        .collect()
}

/// Holder certificates whose issuing CA was revoked: the clerks' re-issuance list (clerk or
/// ca-admin; each holder's read is audited, `holder.read`).
pub fn reissue_list(st: &mut Station, session: &Session) -> Result<Vec<ReissueItem>, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "read the re-issuance list",
        &[Role::Clerk, Role::CaAdmin],
    )?;
    let entries = st.registry.reissue_list()?;
    let mut pinfls: Vec<&str> = entries.iter().map(|e| e.pinfl.as_str()).collect();
    pinfls.sort_unstable();
    pinfls.dedup();
    let pinfls: Vec<String> = pinfls.into_iter().map(str::to_owned).collect();
    let refs: Vec<&str> = pinfls.iter().map(String::as_str).collect();
    crate::records::audit_holder_reads(st, session, &refs, "ca reissue-list")?;
    Ok(entries)
}

/// The actor recorded for housekeeping no operator asked for (expiry seen by a reader).
pub fn system_actor(st: &Station) -> Actor {
    Actor::new("idstation", "system", &st.config.station.name)
}

fn view(st: &Station, id: i64) -> Result<RequestView, StationError> {
    let r = load(st, id)?;
    Ok(RequestView::new(&r, st.registry.ca_request_outcome(id)?))
}

fn load(st: &Station, id: i64) -> Result<CaRequest, StationError> {
    st.registry
        .ca_request(id)?
        .ok_or_else(|| StationError::NotFound(format!("CA request {id}")))
}

/// Why a request can no longer be approved or refused, if it cannot.
fn settled_rule(req: &CaRequest) -> Option<String> {
    match req.state.as_str() {
        "pending" => None,
        "expired" => Some(format!(
            "CA request {} expired at {}: a request must be approved before it expires (rotation.request_expiry_seconds); file a new one",
            req.id, req.expires_at
        )),
        s => Some(format!("CA request {} is {s}, not pending", req.id)),
    }
}

fn require_ca_admin(
    st: &mut Station,
    session: &Session,
    action: &str,
    id: Option<i64>,
) -> Result<(), StationError> {
    // The account must still be what it was at log-in (enabled, not locked, same role).
    crate::session::require_current(
        &mut st.registry,
        session,
        action,
        &[Role::Clerk, Role::CaAdmin, Role::Auditor],
    )?;
    if session.role() == Role::CaAdmin {
        return Ok(());
    }
    let rule = format!(
        "role {} may not {action}: CA key changes need ca-admins (dual control)",
        session.role().as_str()
    );
    Err(refused_attempt(
        st,
        session.actor(),
        id.unwrap_or(0),
        action,
        &rule,
    ))
}

/// Why request `req` may not be approved or run here: on a station enrolled to the national
/// centre a CA rotation or revocation (filed by an older version, which did not refuse them)
/// would act on keys the centre holds, and the centre's CRL and OCSP would not follow.
fn centre_held(st: &Station, req: &registry::CaRequest) -> Option<String> {
    if st.config.centre.is_none() || !matches!(req.kind.as_str(), KIND_ROTATE | KIND_REVOKE_CA) {
        return None;
    }
    Some(if req.ca == crate::hierarchy::DS_CA {
        "this station is enrolled to the national centre, whose CSCA certifies its Document Signer: a new one comes from `idstation centre renew-document-signer`".into()
    } else {
        format!(
            "this station is enrolled to the national centre, which holds the {} CA's key: a {} request is made there (`idcentral ca {}`)",
            req.ca, req.kind, req.kind
        )
    })
}

/// Audit a request refused at filing and return the error naming the rule.
fn refused_filing(
    st: &mut Station,
    actor: &Actor,
    kind: &str,
    ca: &str,
    rule: &str,
) -> StationError {
    let entry = AuditEntry {
        actor,
        action: "ca.request.refused-filing",
        object: &format!("ca:{ca}"),
        details: &serde_json::json!({ "kind": kind, "rule": rule }),
    };
    audited_refusal(st, &entry, rule)
}

/// Audit a refused attempt and return the error naming the rule.
fn refused_attempt(
    st: &mut Station,
    actor: &Actor,
    id: i64,
    action: &str,
    rule: &str,
) -> StationError {
    let entry = AuditEntry {
        actor,
        action: "ca.request.refused-attempt",
        object: &format!("ca-request:{id}"),
        details: &serde_json::json!({ "attempt": action, "rule": rule }),
    };
    audited_refusal(st, &entry, rule)
}

/// Write `entry` (a refusal) to the audit log and return NotPermitted naming `rule`; a failed
/// write is logged, the refusal stands.
fn audited_refusal(st: &mut Station, entry: &AuditEntry<'_>, rule: &str) -> StationError {
    if let Err(e) = st.registry.audit(entry) {
        tracing::error!(error = %e, action = entry.action, "could not audit a refused CA request");
    }
    StationError::NotPermitted(rule.to_owned())
}

fn expire_overdue(st: &mut Station, actor: &Actor) -> Result<(), StationError> {
    let tx = st.registry.transaction()?;
    let ids = tx.expire_ca_requests()?;
    for id in &ids {
        tx.audit(&AuditEntry {
            actor,
            action: "ca.request.expired",
            object: &format!("ca-request:{id}"),
            details: &serde_json::json!({}),
        })?;
    }
    tx.commit()?;
    Ok(())
}

mod execute;
mod revoke;
mod sign;

pub use sign::link_path;

/// Execute (or resume) an approved request. Every step is idempotent: what the journal and
/// the registry show as done is not done again.
fn execute(st: &mut Station, actor: &Actor, id: i64) -> Result<Execution, StationError> {
    let _lock = WorkLock::acquire(&st.layout.root, Work::CaRequest(id))?;
    let req = load(st, id)?;
    // `recover` comes here too, with requests approved by an older version.
    if let Some(rule) = centre_held(st, &req) {
        return Err(refused_attempt(st, actor, id, "execute", &rule));
    }
    let started = std::time::Instant::now();
    let mut out = match req.kind.as_str() {
        KIND_ROTATE => execute::execute_rotation(st, actor, &req)?,
        KIND_REVOKE_CA => revoke::execute_revocation(st, actor, &req)?,
        k if OPERATOR_KINDS.contains(&k) => execute::execute_operator_change(st, actor, &req)?,
        other => {
            return Err(StationError::Other(format!(
                "CA request {id} has unknown kind {other:?}"
            )))
        }
    };
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Recovery
// ---------------------------------------------------------------------------------------------

/// Finish every request whose execution was interrupted (quorum reached but not executed, or a
/// journaled step left `started`) and that no live process is executing. All steps are
/// idempotent, so finishing is always the way forward; until it succeeds the old key stays
/// active.
pub(crate) fn recover(st: &mut Station, actor: &Actor) -> Result<Vec<Recovered>, StationError> {
    let mut out = Vec::new();
    let mut candidates: Vec<i64> = st
        .registry
        .ca_requests(Some(&["approved"]))?
        .iter()
        .map(|r| r.id)
        .collect();
    for r in st.registry.ca_requests(Some(&["executed"]))? {
        if st
            .registry
            .request_steps(r.id)?
            .iter()
            .any(|s| s.state == "started")
        {
            candidates.push(r.id);
        }
    }
    candidates.sort_unstable();
    for id in candidates {
        if WorkLock::is_held(&st.layout.root, Work::CaRequest(id)) {
            out.push(Recovered {
                request_id: id,
                outcome: "left: another process is executing it".into(),
            });
            continue;
        }
        match execute(st, actor, id) {
            Ok(e) => out.push(Recovered {
                request_id: id,
                outcome: format!("finished: {} {} now {}", e.kind, e.ca, e.key),
            }),
            Err(e) => {
                tracing::error!(request = id, error = %e, "could not finish CA request");
                out.push(Recovered {
                    request_id: id,
                    outcome: format!("left (old key stays active): {e}"),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(state: &str, payload: &str) -> CaRequest {
        CaRequest {
            id: 7,
            kind: KIND_REVOKE_CA.into(),
            ca: "esign".into(),
            payload: payload.into(),
            quorum: 1,
            requested_by: "alice".into(),
            created_at: "2026-01-01T00:00:00.000000Z".into(),
            expires_at: "2026-01-02T00:00:00.000000Z".into(),
            state: state.into(),
            approvals: vec!["bob".into()],
        }
    }

    #[test]
    fn ds_is_an_alias_of_the_document_signer_which_is_certified_by_the_csca_as_end_entity() {
        let ds = rotating_ca("ds").unwrap();
        assert_eq!(ds, rotating_ca("document-signer").unwrap());
        assert_eq!(ds.certified, Certified::EndEntityOf("csca"));
        assert_eq!(ds.label_prefix, "ds-");
        assert_eq!(
            rotating_ca("csca").unwrap().certified,
            Certified::SelfSigned
        );
        assert_eq!(rotating_ca("audit"), None);
        for name in ROTATING_CAS {
            assert_eq!(rotating_ca(name).unwrap().name, *name);
        }
    }

    #[test]
    fn only_pending_requests_can_be_approved_or_refused_and_the_rule_is_named() {
        assert_eq!(settled_rule(&req("pending", "{}")), None);
        let expired = settled_rule(&req("expired", "{}")).unwrap();
        assert!(expired.contains("CA request 7 expired at 2026-01-02T00:00:00.000000Z"));
        assert!(expired.contains("must be approved before it expires"));
        for s in ["approved", "executed", "refused"] {
            assert_eq!(
                settled_rule(&req(s, "{}")).unwrap(),
                format!("CA request 7 is {s}, not pending")
            );
        }
    }

    #[test]
    fn a_request_view_shows_the_key_and_reason_of_its_payload() {
        let v = RequestView::new(
            &req(
                "pending",
                r#"{"key":"esign-ca-2","reason":"keyCompromise"}"#,
            ),
            None,
        );
        assert_eq!(v.key.as_deref(), Some("esign-ca-2"));
        assert_eq!(v.reason.as_deref(), Some("keyCompromise"));
        assert_eq!(v.approvals, vec!["bob"]);
        let v = RequestView::new(&req("pending", "not json"), Some("x".into()));
        assert_eq!(v.key, None);
        assert_eq!(v.outcome.as_deref(), Some("x"));
        let v = RequestView::new(
            &req("pending", r#"{"key":"root-ca-1","note":"ten years"}"#),
            None,
        );
        assert_eq!(v.note.as_deref(), Some("ten years"));
    }

    #[test]
    fn a_request_refused_by_its_requester_is_withdrawn_and_by_another_refused() {
        let own = RequestView::new(&req("refused", "{}"), Some(withdrawn_by("alice")));
        assert_eq!(own.state, WITHDRAWN);
        let vetoed = RequestView::new(&req("refused", "{}"), Some("refused by bob".into()));
        assert_eq!(vetoed.state, "refused");
        // Only the requester's own withdrawal: another's name in the outcome is not one.
        let other = RequestView::new(&req("refused", "{}"), Some(withdrawn_by("bob")));
        assert_eq!(other.state, "refused");
    }
}
