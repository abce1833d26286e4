//! `idcentral audit export|verify`: the centre's audit log in the station's export format
//! (docs/audit-format.md, "Export folder"; `registry::export`): `events.jsonl` (or
//! `events.csv`), `manifest.json` (canonical JSON), `manifest.sig` (DER ECDSA P-256/SHA-256 by
//! the centre's audit key over the manifest's bytes) and `chain.pem` (the audit certificate,
//! then the National Root CA). The station's offline verifier (`idstation audit verify`,
//! [`registry::export::verify_export`]) accepts it, and [`verify`] is that verifier.

use crate::db::Prepared;
use std::io::Write;
use std::path::{Path, PathBuf};

use registry::audit::{canonical_json, GENESIS_PREV_HASH};
use registry::export::{ExportFormat, CSV_HEADER, EXPORT_FORMAT_VERSION};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::audit::{self, AuditSigner};
use crate::error::{CentralError, Result};
use crate::operators::Session;

/// Which events an export holds (the station's ranges).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Range {
    All,
    /// Sequence numbers `from..=to`.
    Seq {
        from: u64,
        to: u64,
    },
    /// `from` (inclusive) to `to` (exclusive; a bare date `YYYY-MM-DD` includes that day), each
    /// a date or an RFC 3339 UTC time.
    Time {
        from: Option<String>,
        to: Option<String>,
    },
}

/// What `audit export` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportOutcome {
    pub dir: PathBuf,
    pub manifest: PathBuf,
    pub format: String,
    pub count: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub last_hash: String,
    pub checkpoints: usize,
    pub signer_key: String,
}

/// A time bound, when given: a date `YYYY-MM-DD` or an RFC 3339 time.
pub(crate) fn check_time_bound(field: &'static str, v: Option<&str>) -> Result<()> {
    let Some(v) = v else { return Ok(()) };
    let ok = if v.len() == 10 {
        registry::validate::date(field, v).is_ok()
    } else {
        time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).is_ok()
    };
    if ok {
        Ok(())
    } else {
        Err(CentralError::invalid(
            field,
            format!(
                "{:?} must be YYYY-MM-DD or an RFC 3339 time",
                registry::audit::bounded_name(v)
            ),
        ))
    }
}

/// A bound as the log's times are stored, so that the two compare as text in time order: a
/// time in UTC with six fractional digits (`registry::format_time`; an offset or a shorter
/// fraction would sort wrongly against `…T02:12:56.027870Z`), a bare date as it is.
pub(crate) fn bound_text(s: &str) -> String {
    if s.len() == 10 {
        return s.to_owned();
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(registry::format_time)
        .unwrap_or_else(|_| s.to_owned())
}

/// A bare date as exclusive upper bound sorts after every time of that day.
pub(crate) fn day_end(s: &str) -> String {
    if s.len() == 10 {
        format!("{s}T99")
    } else {
        bound_text(s)
    }
}

impl Range {
    fn check(&self) -> Result<()> {
        match self {
            Range::All => Ok(()),
            Range::Seq { from, to } => {
                if *from == 0 || to < from {
                    Err(CentralError::invalid(
                        "from-seq",
                        format!("{from}..{to}: a sequence range must satisfy 1 <= from <= to"),
                    ))
                } else {
                    Ok(())
                }
            }
            Range::Time { from, to } => {
                check_time_bound("from", from.as_deref())?;
                check_time_bound("to", to.as_deref())
            }
        }
    }

    fn filter(&self) -> serde_json::Value {
        match self {
            Range::All => json!({"kind": "all"}),
            Range::Seq { from, to } => json!({"kind": "seq", "from": from, "to": to}),
            Range::Time { from, to } => json!({"kind": "time", "from": from, "to": to}),
        }
    }

    /// The sequence numbers the range covers, `from..=to` (`(1, 0)` when none).
    async fn bounds(&self, client: &tokio_postgres::Transaction<'_>) -> Result<(u64, u64)> {
        match self {
            Range::All => Ok((1, i64::MAX as u64)),
            Range::Seq { from, to } => Ok((*from, *to)),
            Range::Time { from, to } => {
                let lo: Option<i64> = client
                    .query_one(
                        "SELECT min(seq) FROM audit_log WHERE time >= $1",
                        &[&from.as_deref().map(bound_text).unwrap_or_default()],
                    )
                    .await?
                    .get(0);
                let hi: Option<i64> = client
                    .query_one(
                        "SELECT max(seq) FROM audit_log WHERE time < $1",
                        &[&to.as_deref().map(day_end).unwrap_or_else(|| "9999".into())],
                    )
                    .await?
                    .get(0);
                match (lo, hi) {
                    (Some(l), Some(h)) if l <= h => Ok((l as u64, h as u64)),
                    _ => Ok((1, 0)),
                }
            }
        }
    }
}

/// Export `range` of the audit log into `out` (created 0700; must not hold an export yet),
/// files 0600. The export is itself audited first (`audit.export`) and a checkpoint signed over
/// that event, so the export ends with a signed head; a failed export is audited as
/// `audit.export-failed` and leaves no files behind. The chain is checked link by link on the
/// way: a broken log is refused, not signed.
pub async fn export(
    pool: &deadpool_postgres::Pool,
    store: &dyn hsm::KeyStore,
    centre: &str,
    session: &Session,
    out: &Path,
    range: &Range,
    format: ExportFormat,
) -> Result<ExportOutcome> {
    let files = [
        out.join("manifest.json"),
        out.join("manifest.sig"),
        out.join("chain.pem"),
        out.join(format.file_name()),
    ];
    let refused = range.check().and_then(|()| {
        files.iter().try_for_each(|f| {
            registry::files::check_absent(f).map_err(|e| {
                CentralError::Conflict(format!(
                    "{}: {e}: the folder already holds an export",
                    f.display()
                ))
            })
        })
    });
    if let Err(e) = refused {
        // Nothing written: the files in the way are someone else's and stay.
        audit_failed(pool, session, range, &e).await;
        return Err(e);
    }
    let signer = audit::ensure_signer(pool, store, centre).await?;
    let details = json!({
        "filter": range.filter(),
        "format": format.as_str(),
        "dir": out.display().to_string(),
        "key_label": signer.label,
    });
    {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        audit::append(&tx, session.actor(), "audit.export", "audit-log", &details).await?;
        tx.commit().await?;
    }
    audit::checkpoint(pool, store, centre).await?;
    let mut created = Vec::new();
    let written = write(
        pool,
        store,
        session,
        (out, &mut created),
        range,
        format,
        &signer,
    )
    .await;
    match written {
        Ok(o) => Ok(o),
        Err(e) => {
            // Only what this export created (another's files stay).
            for f in &created {
                let _ = std::fs::remove_file(f);
            }
            audit_failed(pool, session, range, &e).await;
            Err(e)
        }
    }
}

/// Record a refused or failed export as `audit.export-failed` with the error.
async fn audit_failed(
    pool: &deadpool_postgres::Pool,
    session: &Session,
    range: &Range,
    e: &CentralError,
) {
    let failed = async {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        let d = json!({ "filter": range.filter(), "error": e.to_string() });
        audit::append(&tx, session.actor(), "audit.export-failed", "audit-log", &d).await?;
        tx.commit().await?;
        Ok::<_, CentralError>(())
    };
    if let Err(a) = failed.await {
        tracing::error!(error = %a, "could not audit a failed export");
    }
}

/// The export's files from one snapshot of the log: events, chain.pem, manifest.sig and, last,
/// manifest.json.
async fn write(
    pool: &deadpool_postgres::Pool,
    store: &dyn hsm::KeyStore,
    session: &Session,
    (out, created): (&Path, &mut Vec<PathBuf>),
    range: &Range,
    format: ExportFormat,
    signer: &AuditSigner,
) -> Result<ExportOutcome> {
    let mut client = pool.get().await?;
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let (from, to) = range.bounds(&tx).await?;
    let first_prev_hash = if from <= 1 {
        GENESIS_PREV_HASH
    } else {
        let row = tx
            .prepared_opt(
                "SELECT hash FROM audit_log WHERE seq = $1",
                &[&((from - 1) as i64)],
            )
            .await?
            .ok_or_else(|| {
                CentralError::Conflict(format!(
                    "audit log broken at sequence {}: the event before the range is missing",
                    from - 1
                ))
            })?;
        row.get::<_, Vec<u8>>(0)
            .try_into()
            .map_err(|_| CentralError::Database("audit_log.hash is not 32 bytes".into()))?
    };
    let events = if from > to {
        Vec::new()
    } else {
        audit::events(&*tx, from, to).await?
    };
    if let Range::Seq { to, .. } = range {
        let last = events
            .last()
            .map(|e| e.seq)
            .unwrap_or(from.saturating_sub(1));
        if last < *to {
            return Err(CentralError::NotFound(format!(
                "audit events {}..={to} do not exist (the log ends at {last})",
                last + 1
            )));
        }
    }
    let mut cps = Vec::new();
    for (c, label) in audit::checkpoints(&*tx).await? {
        if !events.is_empty() && c.seq >= from && c.seq <= events[events.len() - 1].seq {
            if label != signer.label {
                // An export carries one signer's chain: checkpoints of an earlier key stay in
                // the database (verify-log checks them).
                continue;
            }
            cps.push(c);
        }
    }
    tx.commit().await?;

    // Events, checked link by link.
    let mut text = String::new();
    if format == ExportFormat::Csv {
        text.push_str(CSV_HEADER);
        text.push('\n');
    }
    let mut prev = first_prev_hash;
    for (i, e) in events.iter().enumerate() {
        if e.seq != from + i as u64 || e.prev_hash != prev || e.compute_hash() != e.hash {
            return Err(CentralError::Conflict(format!(
                "audit log broken at sequence {}: refusing to export it",
                from + i as u64
            )));
        }
        event_line(format, e, &mut text)?;
        prev = e.hash;
    }
    let count = events.len() as u64;
    let (first_seq, last_seq) = match (events.first(), events.last()) {
        (Some(f), Some(l)) => (Some(f.seq), Some(l.seq)),
        _ => (None, None),
    };
    let manifest = json!({
        "format_version": EXPORT_FORMAT_VERSION,
        "hash_encoding": registry::audit::EVENT_DOMAIN,
        "checkpoint_encoding": registry::audit::CHECKPOINT_DOMAIN,
        "events_file": format.file_name(),
        "events_format": format.as_str(),
        "events_sha256": hex::encode(Sha256::digest(text.as_bytes())),
        "filter": range.filter(),
        "first_seq": first_seq,
        "last_seq": last_seq,
        "count": count,
        "first_prev_hash": hex::encode(first_prev_hash),
        "last_hash": hex::encode(prev),
        "checkpoints": cps.iter().map(|c| json!({
            "seq": c.seq, "hash": hex::encode(c.hash), "time": c.time,
            "signature": hex::encode(&c.signature),
        })).collect::<Vec<_>>(),
        "exported_at": registry::now_rfc3339(),
        "exporter": {
            "operator": session.actor().operator,
            "role": session.actor().role,
            "station": session.actor().station,
        },
    });
    let manifest_bytes = canonical_json(&manifest)
        .map_err(|e| CentralError::Other(format!("manifest.json: {e}")))?
        .into_bytes();
    let signature = store.sign_p256_sha256(&signer.label, &manifest_bytes)?;
    let mut pem = String::new();
    for der in &signer.chain_der {
        pem.push_str(&ca::cert_pem(der)?);
    }
    registry::files::create_dir_private(out).map_err(|e| CentralError::io(out, e))?;
    write_new(&out.join(format.file_name()), text.as_bytes(), created)?;
    write_new(&out.join("chain.pem"), pem.as_bytes(), created)?;
    write_new(&out.join("manifest.sig"), &signature, created)?;
    let manifest_path = out.join("manifest.json");
    write_new(&manifest_path, &manifest_bytes, created)?;
    tracing::info!(count, dir = %out.display(), "audit export written");
    Ok(ExportOutcome {
        dir: out.to_owned(),
        manifest: manifest_path,
        format: format.as_str().to_owned(),
        count,
        first_seq,
        last_seq,
        last_hash: if count == 0 {
            String::new()
        } else {
            hex::encode(prev)
        },
        checkpoints: cps.len(),
        signer_key: signer.label.clone(),
    })
}

/// One event as a line of the events file: a JSON object, or an RFC 4180 record in
/// [`CSV_HEADER`]'s column order.
fn event_line(format: ExportFormat, e: &registry::AuditEvent, out: &mut String) -> Result<()> {
    let fields = [
        &e.time,
        &e.operator,
        &e.role,
        &e.station,
        &e.action,
        &e.object,
        &e.details,
    ];
    match format {
        ExportFormat::Jsonl => {
            out.push_str(&format!("{{\"seq\":{}", e.seq));
            for (name, v) in [
                "time", "operator", "role", "station", "action", "object", "details",
            ]
            .iter()
            .zip(fields)
            {
                let s = serde_json::to_string(v).map_err(|x| CentralError::Other(x.to_string()))?;
                out.push_str(&format!(",\"{name}\":{s}"));
            }
            out.push_str(&format!(
                ",\"prev_hash\":\"{}\",\"hash\":\"{}\"}}\n",
                hex::encode(e.prev_hash),
                hex::encode(e.hash)
            ));
        }
        ExportFormat::Csv => {
            out.push_str(&e.seq.to_string());
            for v in fields {
                out.push(',');
                if v.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
                    out.push('"');
                    out.push_str(&v.replace('"', "\"\""));
                    out.push('"');
                } else {
                    out.push_str(v);
                }
            }
            out.push_str(&format!(
                ",{},{}\n",
                hex::encode(e.prev_hash),
                hex::encode(e.hash)
            ));
        }
    }
    Ok(())
}

/// A new file, 0600, never through a link, synced; recorded in `created` once made.
fn write_new(p: &Path, data: &[u8], created: &mut Vec<PathBuf>) -> Result<()> {
    let mut f = registry::files::create_new(p).map_err(|e| CentralError::io(p, e))?;
    created.push(p.to_owned());
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| CentralError::io(p, e))
}

/// `idcentral audit verify DIR --root ROOT`: the station's offline verification of an export
/// folder with nothing but the folder and the trusted National Root certificate (PEM or DER):
/// the signer's chain and audit-signing EKU, the manifest signature, every checkpoint signature,
/// every event hash and link, the count and the file hash. Needs no database and no HSM.
pub fn verify(dir: &Path, root: &Path) -> Result<registry::export::ExportReport> {
    let root_bytes = std::fs::read(root).map_err(|e| CentralError::io(root, e))?;
    registry::export::verify_export(dir, &root_bytes)
        .map_err(|e| CentralError::invalid("export", e.to_string()))
}
