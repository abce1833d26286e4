//! Writing an export: the events walked and checked link by link into the events file,
//! the manifest over them signed by the audit key, and the signer's chain (docs/audit-format.md,
//! "Export folder").

use std::io::{BufWriter, Write};
use std::path::Path;

use der::{Decode, EncodePem};
use p256::ecdsa::DerSignature;
use rusqlite::params;
use serde_json::json;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

use super::{
    ExportFormat, ExportRange, ExportRequest, ExportSummary, CSV_HEADER, EXPORT_FORMAT_VERSION,
};
use crate::audit::{json_string, Checkpoint, GENESIS_PREV_HASH};
use crate::{audit, now_rfc3339, Error, Registry, Result};

/// `io::Write` that hashes what passes through.
pub(super) struct HashingWriter<W: Write> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

pub(super) fn csv_field(s: &str, out: &mut String) {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

pub(super) fn day_end(s: &str) -> String {
    // Bare date as exclusive upper bound → sorts after every time of that day.
    if s.len() == 10 {
        format!("{s}T99")
    } else {
        s.to_string()
    }
}

impl Registry {
    /// Export a range of the audit log into `req.out_dir` (created; must not already hold an
    /// export) and sign its manifest with `sign`. The chain being exported is verified on the way:
    /// a broken log is refused rather than signed.
    pub fn export_audit<E: std::fmt::Display>(
        &self,
        req: &ExportRequest<'_>,
        sign: &crate::SignFn<'_, E>,
    ) -> Result<ExportSummary> {
        if req.chain_der.is_empty() {
            return Err(Error::invalid(
                "chain",
                "",
                "the signer's certificate chain must not be empty",
            ));
        }
        let (from, to) = self.export_bounds(&req.range)?;
        // 0700 when made here; a link at the export folder's name is refused (crate::files).
        crate::files::create_dir_private(req.out_dir).map_err(|e| Error::io(req.out_dir, e))?;
        let manifest_path = req.out_dir.join("manifest.json");
        // symlink_metadata, not exists(): a dangling link counts as something in the way.
        if std::fs::symlink_metadata(&manifest_path).is_ok() {
            return Err(Error::Conflict(format!(
                "{} already holds an export",
                req.out_dir.display()
            )));
        }
        let events_path = req.out_dir.join(req.format.file_name());
        let others = [
            events_path.clone(),
            req.out_dir.join("chain.pem"),
            req.out_dir.join("manifest.sig"),
        ];
        for p in &others {
            crate::files::check_absent(p)
                .map_err(|e| Error::Conflict(format!("{}: {e}", p.display())))?;
        }
        let out = self.write_export(req, sign, from, to, &events_path, &manifest_path);
        if out.is_err() {
            // Leave no half-written export behind (manifest.json is written last, so a crash
            // leaves a folder that does not verify).
            for f in others {
                let _ = std::fs::remove_file(f);
            }
        }
        out
    }

    /// The sequence numbers `range` covers, `from..=to` (`(1, 0)` when a time range holds no
    /// event).
    fn export_bounds(&self, range: &ExportRange) -> Result<(u64, u64)> {
        match range {
            ExportRange::All => Ok((1u64, i64::MAX as u64)),
            ExportRange::Seq { from, to } => {
                if to < from || *from == 0 {
                    return Err(Error::invalid(
                        "range",
                        format!("{from}..{to}"),
                        "sequence range must satisfy 1 <= from <= to",
                    ));
                }
                Ok((*from, *to))
            }
            ExportRange::Time { from, to } => {
                for (f, v) in [("from", from), ("to", to)] {
                    if let Some(v) = v {
                        check_time_bound(f, v)?;
                    }
                }
                let lo: Option<i64> = self.conn.query_row(
                    "SELECT min(seq) FROM audit_events WHERE time >= ?1",
                    [from.clone().unwrap_or_default()],
                    |r| r.get(0),
                )?;
                let hi: Option<i64> = self.conn.query_row(
                    "SELECT max(seq) FROM audit_events WHERE time < ?1",
                    [to.as_deref().map(day_end).unwrap_or_else(|| "9999".into())],
                    |r| r.get(0),
                )?;
                match (lo, hi) {
                    (Some(l), Some(h)) if l <= h => Ok((l as u64, h as u64)),
                    _ => Ok((1, 0)), // empty
                }
            }
        }
    }

    /// The export's files: the events (verified link by link on the way), then chain.pem,
    /// manifest.sig and, last, manifest.json.
    fn write_export<E: std::fmt::Display>(
        &self,
        req: &ExportRequest<'_>,
        sign: &crate::SignFn<'_, E>,
        from: u64,
        to: u64,
        events_path: &Path,
        manifest_path: &Path,
    ) -> Result<ExportSummary> {
        let written = self.write_events(req, from, to, events_path)?;
        let checkpoints: Vec<Checkpoint> = self
            .audit_checkpoints()?
            .into_iter()
            .filter(|c| {
                written.count > 0 && c.seq >= written.first_seq && c.seq <= written.last_seq
            })
            .collect();
        let manifest = manifest_json(req, &written, &checkpoints);
        let manifest_bytes = audit::canonical_json(&manifest)?.into_bytes();
        let signature = sign(&manifest_bytes).map_err(|e| Error::Signer(e.to_string()))?;
        if DerSignature::from_bytes(&signature).is_err() {
            return Err(Error::Signer(
                "the signing function did not return a DER ECDSA P-256 signature".into(),
            ));
        }
        let pem = chain_pem(req.chain_der)?;
        write_synced(&req.out_dir.join("chain.pem"), pem.as_bytes())?;
        write_synced(&req.out_dir.join("manifest.sig"), &signature)?;
        write_synced(manifest_path, &manifest_bytes)?;
        let Written {
            first_seq,
            last_seq,
            count,
            last_hash,
            ..
        } = written;
        tracing::info!(count, first_seq, last_seq, dir = %req.out_dir.display(), "audit export written");
        Ok(ExportSummary {
            first_seq,
            last_seq,
            count,
            last_hash,
            checkpoints: checkpoints.len(),
        })
    }

    /// The hash of event `from - 1` (the genesis value before event 1): the export's
    /// first_prev_hash, and the link its first event is checked against.
    fn hash_before(&self, from: u64) -> Result<[u8; 32]> {
        if from <= 1 {
            return Ok(GENESIS_PREV_HASH);
        }
        let h: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT hash FROM audit_events WHERE seq = ?1",
                [(from - 1) as i64],
                |r| r.get(0),
            )
            .ok();
        match h {
            Some(h) => h.as_slice().try_into().map_err(|_| Error::AuditBroken {
                seq: from - 1,
                reason: "hash is not 32 bytes".into(),
            }),
            None => Err(Error::AuditBroken {
                seq: from - 1,
                reason: "event before the export range is missing".into(),
            }),
        }
    }

    /// Write events `from..=to` to `events_path` in `req.format`, checking each event's link
    /// and hash as it goes (a broken log is refused rather than exported), and sync the file.
    fn write_events(
        &self,
        req: &ExportRequest<'_>,
        from: u64,
        to: u64,
        events_path: &Path,
    ) -> Result<Written> {
        let events_path = events_path.to_path_buf();
        let file =
            crate::files::create_new(&events_path).map_err(|e| Error::io(&events_path, e))?;
        let mut w = HashingWriter {
            inner: BufWriter::with_capacity(1 << 20, file),
            hash: Sha256::new(),
        };
        let first_prev_hash = self.hash_before(from)?;
        let mut prev = first_prev_hash;
        if req.format == ExportFormat::Csv {
            w.write_all(CSV_HEADER.as_bytes())
                .and_then(|_| w.write_all(b"\n"))
                .map_err(|e| Error::io(&events_path, e))?;
        }
        let mut st = self.conn.prepare(
            "SELECT seq, time, operator, role, station, action, object, details, prev_hash, hash
             FROM audit_events WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq",
        )?;
        let mut rows = st.query(params![from as i64, to.min(i64::MAX as u64) as i64])?;
        let mut line = String::with_capacity(1024);
        let (mut count, mut expected, mut first_seq) = (0u64, from, 0u64);
        let mut hasher = crate::audit::EventHasher::default();
        while let Some(r) = rows.next()? {
            let seq = r.get_ref(0)?.as_i64()? as u64;
            if seq != expected {
                return Err(Error::AuditBroken {
                    seq: expected,
                    reason: format!("event {expected} is missing (next present is {seq})"),
                });
            }
            if count == 0 {
                first_seq = seq;
            }
            let s = |i: usize| -> Result<&str> { Ok(r.get_ref(i)?.as_str()?) };
            let fields = [s(1)?, s(2)?, s(3)?, s(4)?, s(5)?, s(6)?, s(7)?];
            let h = hasher.hash(seq, fields.map(str::as_bytes), &prev);
            check_stored_link(
                seq,
                r.get_ref(8)?.as_blob()?,
                &prev,
                r.get_ref(9)?.as_blob()?,
                &h,
            )?;
            event_line(req.format, seq, fields, &prev, &h, &mut line);
            w.write_all(line.as_bytes())
                .map_err(|e| Error::io(&events_path, e))?;
            prev = h;
            expected = seq + 1;
            count += 1;
        }
        if count > 0 && matches!(req.range, ExportRange::Seq { .. }) && expected <= to {
            return Err(Error::NotFound(format!(
                "audit events {expected}..={to} do not exist (log ends at {})",
                expected - 1
            )));
        }
        w.flush().map_err(|e| Error::io(&events_path, e))?;
        let HashingWriter { inner, hash } = w;
        let file = inner
            .into_inner()
            .map_err(|e| Error::io(&events_path, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&events_path, e))?;
        Ok(Written {
            first_prev_hash,
            first_seq,
            last_seq: if count == 0 {
                from.saturating_sub(1)
            } else {
                expected - 1
            },
            count,
            last_hash: prev,
            events_sha256: hex::encode(hash.finalize()),
        })
    }
}

/// What [`Registry::write_events`] wrote: the manifest's figures.
pub(super) struct Written {
    first_prev_hash: [u8; 32],
    first_seq: u64,
    last_seq: u64,
    count: u64,
    last_hash: [u8; 32],
    events_sha256: String,
}

/// A time bound of an export range: a date `YYYY-MM-DD` or an RFC 3339 time.
pub(super) fn check_time_bound(field: &str, v: &str) -> Result<()> {
    if v.len() == 10 {
        crate::validate::date(field, v)?;
    } else if time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .is_err()
    {
        return Err(Error::invalid(
            field,
            v,
            "must be YYYY-MM-DD or an RFC 3339 time",
        ));
    }
    Ok(())
}

/// An event as stored must link to the one before (`stored_prev`) and hash to what its
/// contents hash to (`computed`), or the log is broken at `seq`.
pub(super) fn check_stored_link(
    seq: u64,
    stored_prev: &[u8],
    prev: &[u8; 32],
    stored_hash: &[u8],
    computed: &[u8; 32],
) -> Result<()> {
    if stored_prev != prev {
        return Err(Error::AuditBroken {
            seq,
            reason: "prev_hash does not match the previous event".into(),
        });
    }
    if stored_hash != computed {
        return Err(Error::AuditBroken {
            seq,
            reason: "stored hash does not match the event's contents".into(),
        });
    }
    Ok(())
}

/// One event as a line of the events file (`line` is cleared first): a JSON object, or an
/// RFC 4180 record in [`CSV_HEADER`]'s column order.
pub(super) fn event_line(
    format: ExportFormat,
    seq: u64,
    fields: [&str; 7],
    prev: &[u8; 32],
    hash: &[u8; 32],
    line: &mut String,
) {
    let mut hexbuf = [0u8; 64];
    line.clear();
    match format {
        ExportFormat::Jsonl => {
            line.push_str("{\"seq\":");
            line.push_str(itoa(seq, &mut [0u8; 20]));
            for (name, v) in [
                "time", "operator", "role", "station", "action", "object", "details",
            ]
            .iter()
            .zip(fields)
            {
                line.push_str(",\"");
                line.push_str(name);
                line.push_str("\":");
                json_string(v, line);
            }
            line.push_str(",\"prev_hash\":\"");
            line.push_str(hex_into(prev, &mut hexbuf));
            line.push_str("\",\"hash\":\"");
            line.push_str(hex_into(hash, &mut hexbuf));
            line.push_str("\"}\n");
        }
        ExportFormat::Csv => {
            line.push_str(itoa(seq, &mut [0u8; 20]));
            for v in fields {
                line.push(',');
                csv_field(v, line);
            }
            line.push(',');
            line.push_str(hex_into(prev, &mut hexbuf));
            line.push(',');
            line.push_str(hex_into(hash, &mut hexbuf));
            line.push('\n');
        }
    }
}

/// manifest.json's content (docs/audit-format.md, "Export folder"), before canonicalization.
pub(super) fn manifest_json(
    req: &ExportRequest<'_>,
    w: &Written,
    checkpoints: &[Checkpoint],
) -> serde_json::Value {
    let filter = match &req.range {
        ExportRange::All => json!({"kind": "all"}),
        ExportRange::Seq { from, to } => json!({"kind": "seq", "from": from, "to": to}),
        ExportRange::Time { from, to } => json!({"kind": "time", "from": from, "to": to}),
    };
    let count = w.count;
    json!({
        "format_version": EXPORT_FORMAT_VERSION,
        "hash_encoding": audit::EVENT_DOMAIN,
        "checkpoint_encoding": audit::CHECKPOINT_DOMAIN,
        "events_file": req.format.file_name(),
        "events_format": req.format.as_str(),
        "events_sha256": w.events_sha256,
        "filter": filter,
        "first_seq": if count == 0 { serde_json::Value::Null } else { json!(w.first_seq) },
        "last_seq": if count == 0 { serde_json::Value::Null } else { json!(w.last_seq) },
        "count": count,
        "first_prev_hash": hex::encode(w.first_prev_hash),
        "last_hash": hex::encode(w.last_hash),
        "checkpoints": checkpoints.iter().map(|c| json!({
            "seq": c.seq, "hash": hex::encode(c.hash), "time": c.time, "signature": hex::encode(&c.signature),
        })).collect::<Vec<_>>(),
        "exported_at": now_rfc3339(),
        "exporter": {"operator": req.exporter.operator, "role": req.exporter.role, "station": req.exporter.station},
    })
}

/// chain.pem: the signer's chain (DER, signer first) as PEM blocks.
pub(super) fn chain_pem(chain_der: &[Vec<u8>]) -> Result<String> {
    let mut pem = String::new();
    for (i, der) in chain_der.iter().enumerate() {
        let c = Certificate::from_der(der).map_err(|e| {
            Error::invalid(
                "chain",
                format!("certificate {i}"),
                format!("is not a DER X.509 certificate: {e}"),
            )
        })?;
        pem.push_str(
            &c.to_pem(der::pem::LineEnding::LF)
                .map_err(|e| Error::invalid("chain", format!("certificate {i}"), e.to_string()))?,
        );
    }
    Ok(pem)
}

pub(super) fn write_synced(p: &Path, data: &[u8]) -> Result<()> {
    // New, 0600, never through a link (crate::files).
    let mut f = crate::files::create_new(p).map_err(|e| Error::io(p, e))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(p, e))
}

pub(super) fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

pub(super) fn hex_into<'b>(bytes: &[u8; 32], buf: &'b mut [u8; 64]) -> &'b str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        buf[2 * i] = HEX[(b >> 4) as usize];
        buf[2 * i + 1] = HEX[(b & 15) as usize];
    }
    std::str::from_utf8(buf).unwrap_or("")
}
