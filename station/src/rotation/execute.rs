//! Executing an approved CA request: its journaled, idempotent steps (key.generate, cert.sign,
//! switch for a rotation; the operator change of a dual-control operator request).

use std::path::PathBuf;
use std::time::SystemTime;

use registry::{Actor, AuditEntry, CaKey, CaKeyState, CaRequest, KeyGeneration, Role};

use super::sign::{sign_root, sign_subordinate};
use super::*;
use crate::datadir::write_atomic;
use crate::error::StationError;
use crate::failpoint::hit as failpoint;
use crate::Station;

pub(super) fn step_details(
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

pub(super) fn journal(
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
pub(super) fn next_label(st: &Station, spec: &RotatingCa) -> Result<String, StationError> {
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

pub(super) fn execute_rotation(
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
pub(super) struct RotationRun<'a> {
    req: &'a CaRequest,
    spec: &'static RotatingCa,
    approvers: Vec<&'a str>,
    /// The ca-admin who filed the request (the key generation is recorded in their name).
    requester: Actor,
}

/// Step 1, `key.generate`: the new key's label (journaled before the key exists), the key in
/// the HSM, and its record in the registry.
pub(super) fn generated_key(
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
pub(super) fn certified_key(
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
pub(super) fn switch_to(
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
pub(super) fn execute_operator_change(
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
