//! Certificates of a new CA key: by its parent (RFC 5280 §4.2.1.9), or self-signed with the
//! link certificates OldWithNew / NewWithOld of a root or CSCA rollover (RFC 4210 §4.4.1,
//! ICAO 9303 Part 12 §5.2).

use std::path::PathBuf;
use std::time::SystemTime;

use registry::{Actor, AuditEntry, CaKey, CaRequest};

use super::*;
use crate::datadir::write_atomic;
use crate::error::StationError;
use crate::failpoint::hit as failpoint;
use crate::Station;

/// The file of the link certificate certifying `certified`'s key, signed by `signer`.
pub fn link_path(st: &Station, certified: &str, signer: &str) -> PathBuf {
    st.layout
        .ca_dir()
        .join(format!("link-{certified}-by-{signer}.pem"))
}

pub(super) fn sign_subordinate(
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
pub(super) fn sign_root(
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
                ca::root_link_certificates(st.keys.as_ref(), &old_issuer, &new, &profile, now)?,
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
