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

use std::path::PathBuf;
use std::time::SystemTime;

use registry::{Actor, AuditEntry, CaKey, CaKeyState, CaRequest, KeyGeneration, Role};
use serde::Serialize;

use crate::datadir::{write_atomic, Work, WorkLock};
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
    /// `pending`, `approved` (quorum reached, executing), `executed`, `refused`, `expired`.
    pub state: String,
    pub requested_by: String,
    pub created_at: String,
    pub expires_at: String,
    pub quorum: u32,
    pub approvals: Vec<String>,
    pub outcome: Option<String>,
}

impl RequestView {
    fn new(r: &CaRequest, outcome: Option<String>) -> Self {
        let payload: serde_json::Value = serde_json::from_str(&r.payload).unwrap_or_default();
        let text = |k: &str| payload.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        RequestView {
            id: r.id,
            kind: r.kind.clone(),
            ca: r.ca.clone(),
            key: text("key"),
            reason: text("reason"),
            state: r.state.clone(),
            requested_by: r.requested_by.clone(),
            created_at: r.created_at.clone(),
            expires_at: r.expires_at.clone(),
            quorum: r.quorum,
            approvals: r.approvals.clone(),
            outcome,
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

/// File a rotation request for CA `ca` (`esign` or `root`).
pub fn request_rotation(
    st: &mut Station,
    session: &Session,
    ca: &str,
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
    let from = st.registry.active_ca_key(ca)?.map(|k| k.label);
    let payload = serde_json::json!({ "key": from });
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
/// request, the requester included (withdrawal).
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
    {
        let tx = st.registry.transaction()?;
        tx.set_ca_request_state(id, "refused")?;
        tx.set_ca_request_outcome(id, &format!("refused by {}", session.actor().operator))?;
        tx.audit(&AuditEntry {
            actor: session.actor(),
            action: "ca.request.refused",
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

/// Audit a refused attempt and return the error naming the rule.
fn refused_attempt(
    st: &mut Station,
    actor: &Actor,
    id: i64,
    action: &str,
    rule: &str,
) -> StationError {
    let audited = st.registry.audit(&AuditEntry {
        actor,
        action: "ca.request.refused-attempt",
        object: &format!("ca-request:{id}"),
        details: &serde_json::json!({ "attempt": action, "rule": rule }),
    });
    if let Err(e) = audited {
        tracing::error!(error = %e, "could not audit a refused CA request attempt");
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

// ---------------------------------------------------------------------------------------------
// Execution
// ---------------------------------------------------------------------------------------------

/// Execute (or resume) an approved request. Every step is idempotent: what the journal and
/// the registry show as done is not done again.
fn execute(st: &mut Station, actor: &Actor, id: i64) -> Result<Execution, StationError> {
    let _lock = WorkLock::acquire(&st.layout.root, Work::CaRequest(id))?;
    let req = load(st, id)?;
    let started = std::time::Instant::now();
    let mut out = match req.kind.as_str() {
        KIND_ROTATE => execute_rotation(st, actor, &req)?,
        KIND_REVOKE_CA => execute_revocation(st, actor, &req)?,
        k if OPERATOR_KINDS.contains(&k) => execute_operator_change(st, actor, &req)?,
        other => {
            return Err(StationError::Other(format!(
                "CA request {id} has unknown kind {other:?}"
            )))
        }
    };
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

fn step_details(
    st: &Station,
    id: i64,
    step: &str,
) -> Result<Option<(i64, String, serde_json::Value)>, StationError> {
    Ok(st
        .registry
        .request_steps(id)?
        .into_iter()
        .rev()
        .find(|s| s.step == step)
        .map(|s| {
            let d = serde_json::from_str(&s.details).unwrap_or_default();
            (s.id, s.state, d)
        }))
}

fn journal(
    st: &mut Station,
    id: i64,
    step: &str,
    details: serde_json::Value,
) -> Result<i64, StationError> {
    Ok(st
        .registry
        .write(|tx| tx.journal_request_step(id, step, &details))?)
}

/// The next free label `<prefix><N+1>` (N = the highest number among the CA's keys).
fn next_label(st: &Station, spec: &RotatingCa) -> Result<String, StationError> {
    let (ca, prefix) = (spec.name, spec.label_prefix);
    let mut n = st
        .registry
        .ca_keys(ca)?
        .iter()
        .filter_map(|k| k.label.strip_prefix(prefix)?.parse::<u32>().ok())
        .max()
        .unwrap_or(0)
        + 1;
    // A key under the label that no journal names (a foreign object) is never reused.
    while st.keys.find(&format!("{prefix}{n}"))?.is_some()
        || st
            .registry
            .ca_key_by_label(&format!("{prefix}{n}"))?
            .is_some()
    {
        n += 1;
    }
    Ok(format!("{prefix}{n}"))
}

fn execute_rotation(
    st: &mut Station,
    actor: &Actor,
    req: &CaRequest,
) -> Result<Execution, StationError> {
    let id = req.id;
    let spec = rotating_ca(&req.ca).ok_or_else(|| {
        StationError::Other(format!("CA request {id}: CA {:?} does not rotate", req.ca))
    })?;
    let run = RotationRun {
        req,
        spec,
        approvers: req.approvals.iter().map(String::as_str).collect(),
        requester: Actor::new(&req.requested_by, Role::CaAdmin.as_str(), &actor.station),
    };
    // 1. key.generate, 2. cert.sign, 3. switch: each journaled, each resumable.
    let key = generated_key(st, actor, &run)?;
    let label = key.label.clone();
    let old = st.registry.active_ca_key(&req.ca)?;
    let (key, cert_der, files) = certified_key(st, actor, &run, key, old.as_ref())?;
    let old_label = switch_to(st, actor, &run, &key, old.as_ref(), &cert_der)?;
    failpoint("rotation.switched");
    Ok(Execution {
        request_id: id,
        kind: KIND_ROTATE.into(),
        ca: req.ca.clone(),
        old_key: old_label,
        key: label,
        certificate_sha256: ca::fingerprint_sha256(&cert_der)?,
        files,
        reissue_required: 0,
        seconds: 0.0,
    })
}

/// What every step of one rotation request needs.
struct RotationRun<'a> {
    req: &'a CaRequest,
    spec: &'static RotatingCa,
    approvers: Vec<&'a str>,
    /// The ca-admin who filed the request (the key generation is recorded in their name).
    requester: Actor,
}

/// Step 1, `key.generate`: the new key's label (journaled before the key exists), the key in
/// the HSM, and its record in the registry.
fn generated_key(
    st: &mut Station,
    actor: &Actor,
    run: &RotationRun<'_>,
) -> Result<CaKey, StationError> {
    let (id, ca, spec, req) = (run.req.id, run.req.ca.as_str(), run.spec, run.req);
    let (approvers, requester) = (run.approvers.as_slice(), &run.requester);
    let label = match step_details(st, id, steps::KEY_GENERATE)? {
        Some((_, _, d)) => d
            .get("label")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                StationError::Other(format!(
                    "CA request {id}: key.generate journaled without a label"
                ))
            })?,
        None => {
            let label = next_label(st, spec)?;
            journal(
                st,
                id,
                steps::KEY_GENERATE,
                serde_json::json!({ "label": label }),
            )?;
            label
        }
    };
    let key = match st.registry.ca_key_by_label(&label)? {
        Some(k) => k,
        None => {
            if st.keys.find(&label)?.is_none() {
                st.keys.generate_p256(&label)?;
            }
            failpoint("rotation.key-generated");
            let spki = st.keys.public_key_spki(&label)?;
            let (step_id, _, _) = step_details(st, id, steps::KEY_GENERATE)?
                .ok_or_else(|| StationError::Other("key.generate step vanished".into()))?;
            let role = spec.role;
            let key_id = {
                let tx = st.registry.transaction()?;
                let key_id = tx.record_key_generation(
                    &KeyGeneration {
                        label: &label,
                        ca,
                        role,
                        public_key: &spki,
                        approvers,
                        request_id: id,
                    },
                    requester,
                )?;
                let fp = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&spki));
                tx.finish_request_step(
                    step_id,
                    Some(&serde_json::json!({ "label": label, "spki_sha256": fp })),
                )?;
                tx.audit(&AuditEntry {
                    actor,
                    action: "ca.key.generated",
                    object: &format!("ca-key:{label}"),
                    details: &serde_json::json!({
                        "ca": ca, "request": id, "spki_sha256": fp,
                        "requested_by": req.requested_by, "approvers": approvers,
                    }),
                })?;
                tx.commit()?;
                key_id
            };
            failpoint("rotation.key-recorded");
            st.registry
                .ca_key(key_id)?
                .ok_or_else(|| StationError::Other(format!("CA key {label} vanished")))?
        }
    };

    Ok(key)
}

/// Step 2, `cert.sign`: the new key's certificate (self-signed with link certificates for a
/// root, else by its parent), and the PEM in the data dir rewritten from the registry. Returns
/// the key as recorded now, its certificate and the files written.
fn certified_key(
    st: &mut Station,
    actor: &Actor,
    run: &RotationRun<'_>,
    mut key: CaKey,
    old: Option<&CaKey>,
) -> Result<(CaKey, Vec<u8>, Vec<PathBuf>), StationError> {
    let (id, spec, req) = (run.req.id, run.spec, run.req);
    let label = key.label.clone();
    let mut files = vec![st.layout.ca_cert(&label)];
    if key.certificate.is_none() {
        if step_details(st, id, steps::CERT_SIGN)?.is_none() {
            journal(
                st,
                id,
                steps::CERT_SIGN,
                serde_json::json!({ "label": label }),
            )?;
        }
        let (step_id, _, _) = step_details(st, id, steps::CERT_SIGN)?
            .ok_or_else(|| StationError::Other("cert.sign step vanished".into()))?;
        let now = SystemTime::now();
        if spec.certified == Certified::SelfSigned {
            sign_root(st, actor, req, spec, &key, old, step_id, now, &mut files)?;
        } else {
            sign_subordinate(st, actor, req, spec, &key, step_id, now)?;
        }
        failpoint("rotation.cert-recorded");
        key = st
            .registry
            .ca_key(key.id)?
            .ok_or_else(|| StationError::Other(format!("CA key {label} vanished")))?;
    } else if spec.certified == Certified::SelfSigned {
        if let Some(o) = old {
            files.push(link_path(st, &o.label, &label));
            files.push(link_path(st, &label, &o.label));
        }
    }
    let cert_der = key
        .certificate
        .clone()
        .ok_or_else(|| StationError::Other(format!("CA key {label} has no certificate")))?;
    // The PEM in the data dir is (re)written from the registry: idempotent.
    let pem = st.layout.ca_cert(&label);
    write_atomic(&pem, ca::cert_pem(&cert_der)?.as_bytes())
        .map_err(|e| StationError::io(&pem, e))?;

    Ok((key, cert_der, files))
}

/// Step 3, `switch`: in one transaction the old key retires, the new one becomes active, the
/// request is executed and the rotation audited. Returns the retired key's label.
fn switch_to(
    st: &mut Station,
    actor: &Actor,
    run: &RotationRun<'_>,
    key: &CaKey,
    old: Option<&CaKey>,
    cert_der: &[u8],
) -> Result<Option<String>, StationError> {
    let (id, ca, spec, req, approvers) = (
        run.req.id,
        run.req.ca.as_str(),
        run.spec,
        run.req,
        run.approvers.as_slice(),
    );
    let label = &key.label;
    let old_label = old.filter(|o| o.id != key.id).map(|o| o.label.clone());
    if key.state != CaKeyState::Active {
        let tx = st.registry.transaction()?;
        let step_id = tx.journal_request_step(
            id,
            steps::SWITCH,
            &serde_json::json!({ "from": old_label, "to": label }),
        )?;
        if let Some(o) = old.filter(|o| o.id != key.id) {
            tx.set_ca_key_state(
                o.id,
                CaKeyState::Retired,
                actor,
                approvers,
                Some(&format!(
                    "retired by CA request {id}: {}",
                    spec.retired_note
                )),
            )?;
        }
        tx.set_ca_key_state(
            key.id,
            CaKeyState::Active,
            actor,
            approvers,
            Some(&format!("activated by CA request {id}")),
        )?;
        tx.finish_request_step(step_id, None)?;
        tx.set_ca_request_state(id, "executed")?;
        let outcome = match &old_label {
            Some(o) => format!("{label} active, {o} retired"),
            None => format!("{label} active"),
        };
        tx.set_ca_request_outcome(id, &outcome)?;
        tx.audit(&AuditEntry {
            actor,
            action: "ca.key.rotated",
            object: &format!("ca-key:{label}"),
            details: &serde_json::json!({
                "ca": ca, "request": id, "from": old_label, "to": label,
                "certificate_sha256": ca::fingerprint_sha256(cert_der)?,
                "requested_by": req.requested_by, "approvers": approvers,
            }),
        })?;
        tx.commit()?;
        tracing::info!(ca, from = ?old_label, to = %label, request = id, "CA key rotated");
    }
    Ok(old_label)
}

/// Carry out an approved operator change: the operator becomes active (add, enable) or gets
/// the role (role), `role_since` restarts, one transaction with its audit event.
fn execute_operator_change(
    st: &mut Station,
    actor: &Actor,
    req: &CaRequest,
) -> Result<Execution, StationError> {
    let payload: serde_json::Value = serde_json::from_str(&req.payload).unwrap_or_default();
    let role = payload
        .get("role")
        .and_then(|r| r.as_str())
        .ok_or_else(|| StationError::Other(format!("CA request {} names no role", req.id)))?;
    let role = Role::parse(role)?;
    let name = req.ca.as_str();
    let id = req.id;
    let (action, outcome) = {
        let tx = st.registry.transaction()?;
        let (action, outcome) = if req.kind == KIND_OPERATOR_ROLE {
            tx.set_operator_role(name, role)?;
            (
                "operator.role-changed",
                format!("{name} is {}", role.as_str()),
            )
        } else {
            tx.set_operator_active(name, true)?;
            (
                "operator.enabled",
                format!("{name} enabled as {}", role.as_str()),
            )
        };
        tx.set_ca_request_state(id, "executed")?;
        tx.set_ca_request_outcome(id, &outcome)?;
        tx.audit(&AuditEntry {
            actor,
            action,
            object: &format!("operator:{name}"),
            details: &serde_json::json!({
                "request": id, "kind": req.kind, "role": role.as_str(),
                "requested_by": req.requested_by, "approvers": req.approvals,
            }),
        })?;
        tx.commit()?;
        (action, outcome)
    };
    tracing::info!(
        request = id,
        operator = name,
        action,
        "operator change executed"
    );
    Ok(Execution {
        request_id: id,
        kind: req.kind.clone(),
        ca: name.into(),
        old_key: None,
        key: outcome,
        certificate_sha256: String::new(),
        files: Vec::new(),
        reissue_required: 0,
        seconds: 0.0,
    })
}

/// The file of the link certificate certifying `certified`'s key, signed by `signer`.
pub fn link_path(st: &Station, certified: &str, signer: &str) -> PathBuf {
    st.layout
        .ca_dir()
        .join(format!("link-{certified}-by-{signer}.pem"))
}

fn sign_subordinate(
    st: &mut Station,
    actor: &Actor,
    req: &CaRequest,
    spec: &RotatingCa,
    key: &CaKey,
    step_id: i64,
    now: SystemTime,
) -> Result<(), StationError> {
    let (issuer_ca, end_entity) = match spec.certified {
        Certified::SubordinateOf(i) => (i, false),
        Certified::EndEntityOf(i) => (i, true),
        Certified::SelfSigned => {
            return Err(StationError::Other(format!(
                "CA {} is self-signed, not certified by another CA",
                spec.name
            )))
        }
    };
    let (root_key, root) = crate::hierarchy::active_issuer(st, issuer_ca)?;
    let profile = st.profiles.cert(spec.profile)?.clone();
    let new_der = if end_entity {
        // The key number of the label names the certificate (`ds-2` → "… Document Signer 2").
        let n = key
            .label
            .strip_prefix(spec.label_prefix)
            .unwrap_or(&key.label);
        let spki = st.keys.public_key_spki(&key.label)?;
        let cn = spec.common_name.replace("{n}", n);
        ca::issue_station_cert(st.keys.as_ref(), &profile, &root, &spki, &cn, now)?.der
    } else {
        ca::create_subordinate_ca(st.keys.as_ref(), &profile, &root, &key.label, now)?
            .cert_der()
            .to_vec()
    };
    failpoint("rotation.cert-signed");
    let record = crate::hierarchy::cert_record(root_key.id, &new_der, &req.ca)?;
    let tx = st.registry.transaction()?;
    tx.set_ca_key_certificate(key.id, &new_der)?;
    tx.insert_certificate(&record)?;
    tx.finish_request_step(
        step_id,
        Some(&serde_json::json!({ "label": key.label, "issuer": root_key.label, "serial": record.serial })),
    )?;
    tx.audit(&AuditEntry {
        actor,
        action: "ca.certificate.signed",
        object: &format!("ca-key:{}", key.label),
        details: &serde_json::json!({
            "request": req.id, "issuer": root_key.label, "serial": record.serial,
            "certificate_sha256": ca::fingerprint_sha256(&new_der)?,
        }),
    })?;
    tx.commit()?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn sign_root(
    st: &mut Station,
    actor: &Actor,
    req: &CaRequest,
    spec: &RotatingCa,
    key: &CaKey,
    old: Option<&CaKey>,
    step_id: i64,
    now: SystemTime,
    files: &mut Vec<PathBuf>,
) -> Result<(), StationError> {
    let profile = st.profiles.cert(spec.profile)?.clone();
    let new = ca::create_root(st.keys.as_ref(), &profile, &key.label, now)?;
    let links = match old {
        Some(o) => {
            let der = o.certificate.as_deref().ok_or_else(|| {
                StationError::Other(format!("CA key {} has no certificate", o.label))
            })?;
            let old_issuer = ca::Issuer::new(st.keys.as_ref(), &o.label, der)?;
            Some((
                o,
                ca::root_link_certificates(st.keys.as_ref(), &old_issuer, &new, now)?,
            ))
        }
        None => None,
    };
    failpoint("rotation.cert-signed");
    // Link files first: a crash before the registry commit only leaves files the resumed
    // step overwrites.
    let mut records = Vec::new();
    if let Some((o, l)) = &links {
        for (certified, signer, signer_id, der, purpose) in [
            (
                &o.label,
                &key.label,
                key.id,
                &l.old_with_new.der,
                "link-old-with-new",
            ),
            (
                &key.label,
                &o.label,
                o.id,
                &l.new_with_old.der,
                "link-new-with-old",
            ),
        ] {
            let path = link_path(st, certified, signer);
            write_atomic(&path, ca::cert_pem(der)?.as_bytes())
                .map_err(|e| StationError::io(&path, e))?;
            files.push(path);
            records.push(crate::hierarchy::cert_record(signer_id, der, purpose)?);
        }
    }
    let tx = st.registry.transaction()?;
    tx.set_ca_key_certificate(key.id, new.cert_der())?;
    for r in &records {
        tx.insert_certificate(r)?;
    }
    tx.finish_request_step(
        step_id,
        Some(&serde_json::json!({
            "label": key.label,
            "links": records.iter().map(|r| serde_json::json!({"purpose": r.purpose, "serial": r.serial})).collect::<Vec<_>>(),
        })),
    )?;
    tx.audit(&AuditEntry {
        actor,
        action: "ca.certificate.signed",
        object: &format!("ca-key:{}", key.label),
        details: &serde_json::json!({
            "request": req.id, "self_signed": true,
            "certificate_sha256": ca::fingerprint_sha256(new.cert_der())?,
            "links": records.iter().map(|r| serde_json::json!({"purpose": r.purpose, "serial": r.serial})).collect::<Vec<_>>(),
        }),
    })?;
    tx.commit()?;
    Ok(())
}

fn execute_revocation(
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

fn tx_started_step(st: &Station, id: i64, step: &str) -> Result<Option<i64>, StationError> {
    Ok(step_details(st, id, step)?
        .filter(|(_, state, _)| state == "started")
        .map(|(sid, _, _)| sid))
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
    }
}
