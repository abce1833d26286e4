//! The station's side of the audit log (ARCHITECTURE "Registry", "Roles"; format in
//! `docs/audit-format.md`): checkpoints signed by the HSM audit key, exports for auditors
//! signed by the same key with the chain [audit certificate, root links, root], offline verification of an
//! export folder (no database, no HSM), verification of the log in the database, and the outbox
//! of messages for other government systems.
//!
//! Roles are checked by the caller (`Station::authorize`); every function here that writes
//! records the operator in the audit log in the same transaction as the change.

use std::path::{Path, PathBuf};

use der::Decode;
use registry::{AuditEntry, ExportFormat, ExportRange, ExportRequest};
use serde::Serialize;
use x509_cert::Certificate;

use crate::error::StationError;
use crate::session::Session;
use crate::Station;

/// A signed checkpoint as the CLI reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CheckpointOutcome {
    pub seq: u64,
    /// Hash of the event at `seq`, lowercase hex.
    pub hash: String,
    pub time: String,
    /// HSM label of the key that signed it.
    pub key_label: String,
}

/// Append `action` as `session`'s event and sign a checkpoint over it with the HSM audit key,
/// in one transaction: the checkpoint covers the event recording it, so nothing the station has
/// written is left outside a signed checkpoint.
fn audited_checkpoint(
    st: &mut Station,
    session: &Session,
    action: &str,
    object: &str,
    details: &serde_json::Value,
) -> Result<CheckpointOutcome, StationError> {
    let label = st.config.ca.audit_key.clone();
    let keys = &st.keys;
    let sign = |m: &[u8]| keys.sign_p256_sha256(&label, m);
    let cp = st.registry.write(|tx| {
        tx.audit(&AuditEntry {
            actor: session.actor(),
            action,
            object,
            details,
        })?;
        tx.audit_checkpoint(&sign)
    })?;
    let cp = cp.ok_or_else(|| StationError::Other("audit log is empty after appending".into()))?;
    Ok(CheckpointOutcome {
        seq: cp.seq,
        hash: hex::encode(cp.hash),
        time: cp.time,
        key_label: label,
    })
}

/// Sign a checkpoint over the newest event inside `tx` with the HSM audit key `label`: every
/// state change a CA admin makes commits together with a signed checkpoint over it
/// (docs/audit.md); an HSM that cannot sign refuses the change.
pub(crate) fn checkpoint_in(
    tx: &registry::Tx<'_>,
    keys: &dyn hsm::KeyStore,
    label: &str,
) -> Result<(), StationError> {
    tx.audit_checkpoint(&|m: &[u8]| keys.sign_p256_sha256(label, m))?;
    Ok(())
}

/// Record the refusal `e` of `action` on `object` (details: the error), then return `e`; a
/// failure to write the event is logged, the refusal stands.
pub(crate) fn refused(
    st: &mut Station,
    session: &Session,
    action: &str,
    object: &str,
    e: StationError,
) -> StationError {
    let entry = AuditEntry {
        actor: session.actor(),
        action,
        object,
        details: &serde_json::json!({ "error": e.to_string() }),
    };
    if let Err(ae) = st.registry.audit(&entry) {
        tracing::error!(error = %ae, %action, "a refusal could not be audited");
    }
    e
}

/// Sign a checkpoint over the newest event after an issuance was rolled back or finished by
/// recovery, so that those outcomes end inside a signed checkpoint too (a completed issuance
/// commits its checkpoint with the completion). It runs after the outcome's own commit: an HSM
/// that cannot sign must not undo a rollback, so a failure is logged and left to the next
/// checkpoint.
pub fn checkpoint_after(st: &mut Station, what: &str) {
    let label = st.config.ca.audit_key.clone();
    let keys = &st.keys;
    let sign = |m: &[u8]| keys.sign_p256_sha256(&label, m);
    if let Err(e) = st.registry.write(|tx| tx.audit_checkpoint(&sign)) {
        tracing::warn!(error = %e, after = what, "could not sign an audit checkpoint; the next one covers these events");
    }
}

/// `idstation audit checkpoint`: record the request and sign a checkpoint over it.
pub fn checkpoint(st: &mut Station, session: &Session) -> Result<CheckpointOutcome, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "sign audit checkpoints",
        &[registry::Role::Clerk, registry::Role::CaAdmin],
    )?;
    let label = st.config.ca.audit_key.clone();
    audited_checkpoint(
        st,
        session,
        "audit.checkpoint",
        &format!("audit-key:{label}"),
        &serde_json::json!({ "key_label": label }),
    )
}

/// Which events an export holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Range {
    All,
    /// Inclusive sequence numbers; `None` = open end.
    Seq {
        from: Option<u64>,
        to: Option<u64>,
    },
    /// `from` inclusive, `to` exclusive (a bare date `to` includes that day); RFC 3339 or
    /// `YYYY-MM-DD`.
    Time {
        from: Option<String>,
        to: Option<String>,
    },
}

impl Range {
    /// The registry's range; an open sequence end is the newest event, `last`.
    fn to_registry(&self, last: u64) -> ExportRange {
        match self {
            Range::All => ExportRange::All,
            Range::Seq { from, to } => ExportRange::Seq {
                from: from.unwrap_or(1),
                to: to.unwrap_or(last),
            },
            Range::Time { from, to } => ExportRange::Time {
                from: from.clone(),
                to: to.clone(),
            },
        }
    }

    fn describe(&self) -> serde_json::Value {
        match self {
            Range::All => serde_json::json!({ "kind": "all" }),
            Range::Seq { from, to } => serde_json::json!({ "kind": "seq", "from": from, "to": to }),
            Range::Time { from, to } => {
                serde_json::json!({ "kind": "time", "from": from, "to": to })
            }
        }
    }
}

/// What `idstation audit export` reports.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ExportOutcome {
    pub out_dir: PathBuf,
    pub manifest: PathBuf,
    pub format: String,
    pub count: u64,
    /// `None` when the range held no events.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Hash of the last exported event, lowercase hex (empty when no events).
    pub last_hash: String,
    /// Checkpoints inside the exported range (their signatures are in the manifest).
    pub checkpoints: usize,
    /// The checkpoint signed just before the export (over the export's own audit event).
    pub checkpoint: CheckpointOutcome,
    pub signer_key: String,
}

/// The chain that signs an export (DER), from the registry: the audit key's certificate, then
/// for every root rollover since its root certified it the link certificate "old root key
/// certified by the next root" (`link-old-with-new`), then the root that issued the audit
/// certificate. A verifier trusting the old root stops at the audit certificate's issuer; one
/// trusting a newer root follows the links to it (docs/audit-format.md, "chain.pem").
pub fn audit_chain(st: &Station) -> Result<Vec<Vec<u8>>, StationError> {
    let label = &st.config.ca.audit_key;
    let key = st.registry.ca_key_by_label(label)?.ok_or_else(|| {
        StationError::Other(format!("audit key {label} is not recorded in the registry"))
    })?;
    let audit_der = key.certificate.ok_or_else(|| {
        StationError::Other(format!(
            "audit key {label} has no certificate in the registry"
        ))
    })?;
    // The root key that really signed the audit certificate (after a root rollover the newest
    // root has the same name but another key).
    let (_, issuer) = crate::hierarchy::certifying_key(st, label, &audit_der)?;
    let issuer_der = issuer.certificate.clone().ok_or_else(|| {
        StationError::Other(format!(
            "root key {} (issuer of the audit certificate {label}) has no certificate",
            issuer.label
        ))
    })?;
    let links = st.registry.certificates_with_purpose("link-old-with-new")?;
    let mut chain = vec![audit_der];
    let mut current = issuer;
    let mut seen = vec![current.id];
    loop {
        let want = subject_key(&current.public_key)?;
        let next = links.iter().find(|l| {
            !seen.contains(&l.data.issuer_key_id)
                && certificate_key(&l.data.der).ok().as_deref() == Some(&want[..])
        });
        let Some(link) = next else { break };
        let Some(signer) = st.registry.ca_key(link.data.issuer_key_id)? else {
            break;
        };
        chain.push(link.data.der.clone());
        seen.push(signer.id);
        current = signer;
    }
    chain.push(issuer_der);
    Ok(chain)
}

/// The subjectPublicKey bits of a SubjectPublicKeyInfo (DER).
fn subject_key(spki_der: &[u8]) -> Result<Vec<u8>, StationError> {
    let spki = x509_cert::spki::SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|e| StationError::Other(format!("public key: {e}")))?;
    Ok(spki.subject_public_key.raw_bytes().to_vec())
}

/// The subjectPublicKey bits of a certificate (DER).
fn certificate_key(der: &[u8]) -> Result<Vec<u8>, StationError> {
    let c = Certificate::from_der(der).map_err(|e| StationError::Other(e.to_string()))?;
    Ok(c.tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes()
        .to_vec())
}

/// `idstation audit export`: record the export (who, range, format), sign a checkpoint over
/// that event, then write the folder signed by the audit key with the chain of
/// [`audit_chain`]. A failure after the first step is recorded as
/// `audit.export-failed`.
pub fn export(
    st: &mut Station,
    session: &Session,
    out_dir: &Path,
    range: &Range,
    format: ExportFormat,
) -> Result<ExportOutcome, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "export the audit log",
        &[registry::Role::Auditor, registry::Role::CaAdmin],
    )?;
    let chain = audit_chain(st)?;
    let label = st.config.ca.audit_key.clone();
    let details = serde_json::json!({
        "filter": range.describe(),
        "format": format.as_str(),
        "signer_key": label,
    });
    let checkpoint = audited_checkpoint(st, session, "audit.export", "audit-log", &details)?;
    let keys = &st.keys;
    let sign = |m: &[u8]| keys.sign_p256_sha256(&label, m);
    let req = ExportRequest {
        out_dir,
        range: range.to_registry(checkpoint.seq),
        format,
        exporter: session.actor(),
        chain_der: &chain,
    };
    match st.registry.export_audit(&req, &sign) {
        Ok(s) => {
            let empty = s.count == 0;
            Ok(ExportOutcome {
                out_dir: out_dir.to_path_buf(),
                manifest: out_dir.join("manifest.json"),
                format: format.as_str().into(),
                count: s.count,
                first_seq: (!empty).then_some(s.first_seq),
                last_seq: (!empty).then_some(s.last_seq),
                last_hash: if empty {
                    String::new()
                } else {
                    hex::encode(s.last_hash)
                },
                checkpoints: s.checkpoints,
                checkpoint,
                signer_key: label,
            })
        }
        Err(e) => {
            let reason = e.to_string();
            let failed = st.registry.audit(&AuditEntry {
                actor: session.actor(),
                action: "audit.export-failed",
                object: "audit-log",
                details: &serde_json::json!({ "reason": reason }),
            });
            if let Err(a) = failed {
                tracing::error!(error = %a, "could not audit a failed export");
            }
            Err(e.into())
        }
    }
}

/// What `idstation audit verify` reports for a valid export.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VerifyOutcome {
    pub dir: PathBuf,
    /// The trusted root certificate file and its SHA-256 fingerprint.
    pub root: PathBuf,
    pub root_sha256: String,
    /// What the export holds (serialized inline: count, first_seq, last_seq, …).
    #[serde(flatten)]
    pub export: registry::ExportReport,
}

/// The root certificate to trust: `root` if given, else the data dir's own root certificate
/// (`DATA/ca/root-ca-1.pem`, a standalone station's) or the National Root an enrolled
/// station received at enrolment (`DATA/ca/centre-root-ca.pem`, which certified its audit
/// key), whichever exists.
pub fn root_file(root: Option<&Path>, data_dir: &Path) -> Result<PathBuf, StationError> {
    if let Some(r) = root {
        return Ok(r.to_path_buf());
    }
    let layout = crate::datadir::Layout::new(data_dir);
    let own = layout.ca_cert(crate::hierarchy::ROOT_KEY);
    let national = layout.ca_cert(crate::init_centre::CENTRE_ROOT);
    if own.is_file() {
        return Ok(own);
    }
    if national.is_file() {
        return Ok(national);
    }
    Err(StationError::invalid(
        "root",
        format!(
            "no --root given and neither {} nor {} exists: pass --root ROOT.pem (the \
                 national root certificate, PEM or DER)",
            own.display(),
            national.display()
        ),
    ))
}

/// `idstation audit verify`: check an export folder against a trusted root. Needs neither the
/// database nor the HSM. Every way the folder can fail (missing file, bad signature, broken
/// chain at sequence N, wrong root) is an `Invalid` error naming the folder (exit code 2).
pub fn verify(dir: &Path, root: &Path) -> Result<VerifyOutcome, StationError> {
    verify_with(dir, root, &TrustInputs::default())
}

/// What an auditor brings besides the root: CRLs (`--crl FILE`, repeatable) and an earlier
/// export (`--previous DIR`) whose head the log must still hold.
#[derive(Debug, Clone, Default)]
pub struct TrustInputs {
    pub crls: Vec<PathBuf>,
    pub previous: Option<PathBuf>,
}

impl TrustInputs {
    fn crls(&self) -> Result<Vec<(String, Vec<u8>)>, StationError> {
        self.crls
            .iter()
            .map(|p| {
                std::fs::read(p)
                    .map(|b| (p.display().to_string(), b))
                    .map_err(|e| {
                        StationError::invalid("crl", format!("cannot read {}: {e}", p.display()))
                    })
            })
            .collect()
    }

    /// The previous export's (last_seq, last_hash), after verifying that export itself against
    /// the same root and CRLs.
    fn previous_head(
        &self,
        root_bytes: &[u8],
        crls: &[(String, Vec<u8>)],
    ) -> Result<Option<(u64, [u8; 32])>, StationError> {
        let Some(prev) = &self.previous else {
            return Ok(None);
        };
        let checks = registry::VerifyChecks {
            crls: crls.to_vec(),
            previous: None,
        };
        let r = registry::export::verify_export_with(prev, root_bytes, &checks).map_err(|e| {
            StationError::invalid(
                "previous",
                format!("previous export {} does not verify: {e}", prev.display()),
            )
        })?;
        if r.count == 0 {
            return Err(StationError::invalid(
                "previous",
                format!(
                    "previous export {} holds no events: it has no head to continue from",
                    prev.display()
                ),
            ));
        }
        let hash: [u8; 32] = hex::decode(&r.last_hash)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| StationError::invalid("previous", "last_hash is not 32 bytes of hex"))?;
        Ok(Some((r.last_seq, hash)))
    }
}

/// [`verify`] with CRLs and a previous export (`audit verify --crl … --previous …`).
pub fn verify_with(
    dir: &Path,
    root: &Path,
    trust: &TrustInputs,
) -> Result<VerifyOutcome, StationError> {
    let root_bytes = std::fs::read(root).map_err(|e| {
        StationError::invalid("root", format!("cannot read {}: {e}", root.display()))
    })?;
    let root_der = registry::export::parse_root(&root_bytes)
        .map_err(|e| StationError::invalid("root", format!("{}: {e}", root.display())))?;
    let root_sha256 = ca::fingerprint_sha256(&root_der)?;
    if !dir.is_dir() {
        return Err(StationError::invalid(
            "dir",
            format!("{} is not a directory", dir.display()),
        ));
    }
    // The registry names the first bad sequence number of an edited, deleted, inserted or
    // reordered event before it compares the events file's hash with the manifest.
    let crls = trust.crls()?;
    let previous = trust.previous_head(&root_bytes, &crls)?;
    let checks = registry::VerifyChecks { crls, previous };
    let r = registry::export::verify_export_with(dir, &root_bytes, &checks).map_err(|e| {
        StationError::invalid(format!("audit export {}", dir.display()), e.to_string())
    })?;
    Ok(VerifyOutcome {
        dir: dir.to_path_buf(),
        root: root.to_path_buf(),
        root_sha256,
        export: r,
    })
}

/// What a log of this station is verified with: its audit key (for the checkpoint
/// signatures), from its certificate chain checked against the trusted `root` file (the
/// audit-signing mark, the links, `trust.crls`) — never from a key table in a database (no
/// HSM); and with `trust.previous` the anchor of that earlier export's last event.
pub fn checkpoint_trust(
    st: &Station,
    root: &Path,
    trust: &TrustInputs,
) -> Result<registry::VerifyOptions, StationError> {
    let label = &st.config.ca.audit_key;
    let root_bytes = std::fs::read(root).map_err(|e| {
        StationError::invalid("root", format!("cannot read {}: {e}", root.display()))
    })?;
    let crls = trust.crls()?;
    let chain = audit_chain(st)?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
    let key =
        registry::export::audit_key_from_chain(&chain, &root_bytes, now, &crls).map_err(|e| {
            StationError::invalid("audit key", format!("audit certificate {label}: {e}"))
        })?;
    Ok(registry::VerifyOptions {
        checkpoint_key: Some(key),
        anchor: trust.previous_head(&root_bytes, &crls)?,
    })
}

/// What `idstation audit verify-log` reports.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VerifyLogOutcome {
    pub events: u64,
    pub last_seq: u64,
    pub last_hash: String,
    pub checkpoints: u64,
    pub checkpoint_signatures_checked: bool,
    pub key_label: String,
}

/// `idstation audit verify-log`: verify the chain in the database, checkpoint signatures
/// included, with the audit key taken from its certificate chain checked against the trusted
/// `root` file (the audit-signing mark, the links, `trust.crls`) — never from a key table in
/// the same database (no HSM). With `trust.previous`, the log must hold that export's last
/// event with its hash. A broken chain is an `Invalid` error naming the sequence number
/// (exit code 2).
pub fn verify_log(
    st: &Station,
    root: &Path,
    trust: &TrustInputs,
) -> Result<VerifyLogOutcome, StationError> {
    let label = st.config.ca.audit_key.clone();
    let r = verify_chain(st, &checkpoint_trust(st, root, trust)?)?;
    Ok(VerifyLogOutcome {
        events: r.events,
        last_seq: r.last_seq,
        last_hash: hex::encode(r.last_hash),
        checkpoints: r.checkpoints,
        checkpoint_signatures_checked: r.checkpoint_signatures_checked,
        key_label: label,
    })
}

/// The chain in the database verified with `opts` ([`checkpoint_trust`]'s); a broken chain is
/// an `Invalid` error naming the sequence number.
pub(crate) fn verify_chain(
    st: &Station,
    opts: &registry::VerifyOptions,
) -> Result<registry::VerifyReport, StationError> {
    st.registry.verify_audit(opts).map_err(|e| match e {
        registry::Error::AuditBroken { .. } => StationError::invalid("audit log", e.to_string()),
        e => e.into(),
    })
}

/// An outbox message as `idstation outbox list` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OutboxItem {
    pub id: i64,
    pub topic: String,
    pub created_at: String,
    /// The payload (canonical JSON in the registry), parsed.
    pub payload: serde_json::Value,
}

/// Messages not yet acknowledged, oldest first.
pub fn outbox_pending(reg: &registry::Registry) -> Result<Vec<OutboxItem>, StationError> {
    reg.outbox_pending()?
        .into_iter()
        .map(|m| {
            let payload = serde_json::from_str(&m.payload).map_err(|e| {
                StationError::Other(format!("outbox message {}: payload: {e}", m.id))
            })?;
            Ok(OutboxItem {
                id: m.id,
                topic: m.topic,
                created_at: m.created_at,
                payload,
            })
        })
        .collect()
}

/// Acknowledge outbox message `id` (delivered to its receiver), audited as `session`'s act in
/// the same transaction.
pub fn outbox_ack(
    st: &mut Station,
    session: &Session,
    id: i64,
) -> Result<OutboxItem, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "acknowledge outbox messages",
        &[registry::Role::Clerk, registry::Role::CaAdmin],
    )?;
    let item = outbox_pending(&st.registry)?
        .into_iter()
        .find(|m| m.id == id)
        .ok_or_else(|| {
            StationError::invalid("id", format!("no unacknowledged outbox message {id}"))
        })?;
    st.registry.write(|tx| {
        tx.outbox_ack(id, session.actor())?;
        tx.audit(&AuditEntry {
            actor: session.actor(),
            action: "outbox.acked",
            object: &format!("outbox:{id}"),
            details: &serde_json::json!({ "topic": item.topic }),
        })
    })?;
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_descriptions_name_their_kind() {
        assert_eq!(Range::All.describe()["kind"], "all");
        let r = Range::Seq {
            from: Some(2),
            to: None,
        };
        assert_eq!(r.describe()["from"], 2);
        assert_eq!(r.to_registry(9), ExportRange::Seq { from: 2, to: 9 });
    }

    #[test]
    fn root_file_without_root_or_data_dir_names_the_root_option() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let e = root_file(None, &tmp.path().join("missing")).expect_err("no root");
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--root"), "{e}");
        let given = tmp.path().join("r.pem");
        assert_eq!(root_file(Some(&given), tmp.path()).expect("given"), given);
        // An enrolled station's: the National Root of its enrolment.
        let ca = tmp.path().join("ca");
        std::fs::create_dir(&ca).expect("mkdir");
        std::fs::write(ca.join("centre-root-ca.pem"), "x").expect("write");
        assert_eq!(
            root_file(None, tmp.path()).expect("enrolled"),
            ca.join("centre-root-ca.pem")
        );
        std::fs::write(ca.join("root-ca-1.pem"), "x").expect("write");
        assert_eq!(
            root_file(None, tmp.path()).expect("own"),
            ca.join("root-ca-1.pem")
        );
    }
}
