//! Audit export for auditors, and its verification without the database
//! (normative text: `docs/audit-format.md`, "Export folder").
//!
//! Folder layout: `events.jsonl` (or `events.csv`, RFC 4180), `manifest.json` (canonical JSON),
//! `manifest.sig` (DER ECDSA P-256/SHA-256 over the exact bytes of `manifest.json`) and
//! `chain.pem` (the signer's certificate first, then root link certificates, then the root that
//! issued the signer). [`verify_export`] needs only the folder and the root certificate (old or
//! new after a root rollover): it checks the certificate chain (RFC 5280 §6 basics:
//! names, signatures, CA flag, validity at export time), the manifest signature, every event
//! hash and link, the count, first and last hashes, and every checkpoint signature.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use der::{Decode, Encode, EncodePem};
use p256::ecdsa::{DerSignature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use rusqlite::params;
use serde_json::json;
use sha2::{Digest, Sha256};
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::Certificate;

use crate::audit::{event_hash, json_string, verify_der, Checkpoint, GENESIS_PREV_HASH};
use crate::{audit, now_rfc3339, Actor, Error, Registry, Result};

/// Version of the export folder format.
pub const EXPORT_FORMAT_VERSION: u32 = 1;
/// ecdsa-with-SHA256 (RFC 5758 §3.2).
const ECDSA_WITH_SHA256: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// The project's private arc: under the IANA example enterprise number 32473 (RFC 5612), as
/// the demo PKI's example.com names are; a deployment replaces it with its own arc
/// (docs/audit-format.md, "Object identifiers").
pub const IDSTATION_ARC: &str = "1.3.6.1.4.1.32473.1";
/// `id-kp-idstationAuditSigning` = {IDSTATION_ARC}.3.1: the extended key usage only the
/// station audit-signer profile carries (profiles/cert/audit-signer.toml). An export whose
/// signer certificate lacks it is refused, whatever it chains to.
pub const AUDIT_SIGNING_EKU: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.32473.1.3.1");
/// CSV header (column order of both formats).
pub const CSV_HEADER: &str = "seq,time,operator,role,station,action,object,details,prev_hash,hash";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

impl ExportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Csv => "csv",
        }
    }
    pub fn file_name(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "events.jsonl",
            ExportFormat::Csv => "events.csv",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "jsonl" => Ok(ExportFormat::Jsonl),
            "csv" => Ok(ExportFormat::Csv),
            _ => Err(Error::invalid("format", s, "must be jsonl or csv")),
        }
    }
}

/// Which events to export. Time bounds are RFC 3339 UTC strings or bare dates `YYYY-MM-DD`;
/// `from` is inclusive, `to` exclusive (a bare date `to` includes that whole day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportRange {
    All,
    Seq {
        from: u64,
        to: u64,
    },
    Time {
        from: Option<String>,
        to: Option<String>,
    },
}

pub struct ExportRequest<'a> {
    pub out_dir: &'a Path,
    pub range: ExportRange,
    pub format: ExportFormat,
    pub exporter: &'a Actor,
    /// DER certificates: the signer (audit key) first, then its issuers up to the root.
    pub chain_der: &'a [Vec<u8>],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub first_seq: u64,
    pub last_seq: u64,
    pub count: u64,
    pub last_hash: [u8; 32],
    pub checkpoints: usize,
}

/// What `verify_export_with` checks beyond the folder and the root.
#[derive(Debug, Clone, Default)]
pub struct VerifyChecks {
    /// CRLs (PEM or DER, with the file name for messages): each must be signed by a
    /// certificate of the export's path; a certificate of the path listed on one is refused.
    pub crls: Vec<(String, Vec<u8>)>,
    /// A previous export's (last_seq, last_hash): the export must hold that event with that
    /// hash (continuity; `audit verify --previous`).
    pub previous: Option<(u64, [u8; 32])>,
}

/// What a valid export holds: its events, last hash, checkpoints and signer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExportReport {
    pub count: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub last_hash: String,
    pub checkpoints: usize,
    pub signer_subject: String,
    pub exported_at: String,
}

/// `io::Write` that hashes what passes through.
struct HashingWriter<W: Write> {
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

fn csv_field(s: &str, out: &mut String) {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

fn day_end(s: &str) -> String {
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
struct Written {
    first_prev_hash: [u8; 32],
    first_seq: u64,
    last_seq: u64,
    count: u64,
    last_hash: [u8; 32],
    events_sha256: String,
}

/// A time bound of an export range: a date `YYYY-MM-DD` or an RFC 3339 time.
fn check_time_bound(field: &str, v: &str) -> Result<()> {
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
fn check_stored_link(
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
fn event_line(
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
fn manifest_json(
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
fn chain_pem(chain_der: &[Vec<u8>]) -> Result<String> {
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

fn write_synced(p: &Path, data: &[u8]) -> Result<()> {
    // New, 0600, never through a link (crate::files).
    let mut f = crate::files::create_new(p).map_err(|e| Error::io(p, e))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(p, e))
}

fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &str {
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

fn hex_into<'b>(bytes: &[u8; 32], buf: &'b mut [u8; 64]) -> &'b str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        buf[2 * i] = HEX[(b >> 4) as usize];
        buf[2 * i + 1] = HEX[(b & 15) as usize];
    }
    std::str::from_utf8(buf).unwrap_or("")
}

fn bad(msg: impl Into<String>) -> Error {
    Error::ExportInvalid(msg.into())
}

fn read(p: &Path) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    File::open(p)
        .and_then(|mut f| f.read_to_end(&mut v))
        .map_err(|e| Error::io(p, e))?;
    Ok(v)
}

fn parse_certs(bytes: &[u8], what: &str) -> Result<Vec<Certificate>> {
    let is_pem = std::str::from_utf8(bytes)
        .map(|s| s.contains("-----BEGIN CERTIFICATE"))
        .unwrap_or(false);
    if is_pem {
        let v = Certificate::load_pem_chain(bytes)
            .map_err(|e| bad(format!("{what}: not PEM certificates: {e}")))?;
        if v.is_empty() {
            return Err(bad(format!("{what}: no certificate found")));
        }
        Ok(v)
    } else {
        Ok(vec![Certificate::from_der(bytes).map_err(|e| {
            bad(format!("{what}: not a DER certificate: {e}"))
        })?])
    }
}

fn key_of(c: &Certificate) -> Result<VerifyingKey> {
    let spki = c
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| bad(e.to_string()))?;
    VerifyingKey::from_public_key_der(&spki).map_err(|_| {
        bad(format!(
            "{}: public key is not ECDSA P-256",
            c.tbs_certificate().subject()
        ))
    })
}

/// Check `child` was issued and signed by `parent` and both are valid at `at` (unix seconds).
fn check_link(child: &Certificate, parent: &Certificate, at: u64, idx: usize) -> Result<()> {
    let (ct, pt) = (child.tbs_certificate(), parent.tbs_certificate());
    let who = format!("chain certificate {idx} ({})", ct.subject());
    if ct.issuer() != pt.subject() {
        return Err(bad(format!(
            "{who}: issuer {} is not the next certificate's subject {}",
            ct.issuer(),
            pt.subject()
        )));
    }
    if child.signature_algorithm().oid != ECDSA_WITH_SHA256 {
        return Err(bad(format!(
            "{who}: signature algorithm {} is not ecdsa-with-SHA256",
            child.signature_algorithm().oid
        )));
    }
    match pt.get_extension::<BasicConstraints>() {
        Ok(Some((_, bc))) if bc.ca => {}
        _ => {
            return Err(bad(format!(
                "{who}: its issuer {} is not a CA (basicConstraints cA)",
                pt.subject()
            )))
        }
    }
    let tbs = ct.to_der().map_err(|e| bad(format!("{who}: {e}")))?;
    let sig = child
        .signature()
        .as_bytes()
        .ok_or_else(|| bad(format!("{who}: signature bit string has unused bits")))?;
    if !verify_der(&key_of(parent)?, &tbs, sig) {
        return Err(bad(format!(
            "{who}: signature does not verify with {}'s key",
            pt.subject()
        )));
    }
    let nb = ct.validity().not_before.to_unix_duration().as_secs();
    let na = ct.validity().not_after.to_unix_duration().as_secs();
    if at < nb || at > na {
        return Err(bad(format!("{who}: not valid at the export time")));
    }
    Ok(())
}

/// Manifest as read back (fields the verifier uses).
#[derive(serde::Deserialize)]
struct Manifest {
    format_version: u32,
    hash_encoding: String,
    events_file: String,
    events_format: String,
    events_sha256: String,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    count: u64,
    first_prev_hash: String,
    last_hash: String,
    checkpoints: Vec<ManifestCheckpoint>,
    exported_at: String,
}

#[derive(serde::Deserialize)]
struct ManifestCheckpoint {
    seq: u64,
    hash: String,
    time: String,
    signature: String,
}

#[derive(serde::Deserialize)]
struct JsonEvent {
    seq: u64,
    time: String,
    operator: String,
    role: String,
    station: String,
    action: String,
    object: String,
    details: String,
    prev_hash: String,
    hash: String,
}

fn hex32(s: &str, what: &str) -> Result<[u8; 32]> {
    let v = hex::decode(s).map_err(|_| bad(format!("{what}: not hexadecimal")))?;
    v.try_into()
        .map_err(|_| bad(format!("{what}: not 32 bytes")))
}

/// Parse RFC 4180 CSV (quoted fields may hold commas, quotes doubled, and line breaks).
fn parse_csv(text: &str) -> Result<Vec<Vec<String>>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut in_quotes = false;
    let mut at_field_start = true;
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                in_quotes = true;
                at_field_start = false;
            }
            ',' => {
                row.push(std::mem::take(&mut field));
                at_field_start = true;
            }
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                at_field_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            c => {
                field.push(c);
                at_field_start = false;
            }
        }
    }
    if in_quotes {
        return Err(bad("events.csv: unterminated quoted field"));
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

/// Verify an export folder with nothing but the folder and the trusted root certificate
/// (PEM or DER bytes).
pub fn verify_export(dir: &Path, root: &[u8]) -> Result<ExportReport> {
    verify_export_with(dir, root, &VerifyChecks::default())
}

/// Unix seconds of an RFC 3339 time in the manifest or an event.
fn unix(t: &str, what: &str) -> Result<u64> {
    Ok(
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .map_err(|_| bad(format!("{what}: {t} is not RFC 3339")))?
            .unix_timestamp()
            .max(0) as u64,
    )
}

/// The signer must be a station audit certificate: its extendedKeyUsage holds
/// `id-kp-idstationAuditSigning` (no holder, CA or Document Signer certificate carries it).
fn check_audit_signer(signer: &Certificate) -> Result<()> {
    let tbs = signer.tbs_certificate();
    let eku = tbs
        .get_extension::<x509_cert::ext::pkix::ExtendedKeyUsage>()
        .map_err(|e| {
            bad(format!(
                "chain.pem: signer {}: extendedKeyUsage: {e}",
                tbs.subject()
            ))
        })?;
    match eku {
        Some((_, eku)) if eku.0.contains(&AUDIT_SIGNING_EKU) => Ok(()),
        _ => Err(bad(format!(
            "chain.pem: signer {} is not a station audit certificate: its extendedKeyUsage lacks \
             id-kp-idstationAuditSigning ({AUDIT_SIGNING_EKU}); only the audit-signer profile may sign an export \
             (an audit certificate issued before this rule must be re-certified, docs/audit.md)",
            tbs.subject()
        ))),
    }
}

/// Check `path` (signer first, then its issuers, `root` last) against `crls`: each CRL must be
/// signed by a certificate of the path, and no certificate of the path may be on a CRL of its
/// issuer.
fn check_crls(path: &[&Certificate], crls: &[(String, Vec<u8>)]) -> Result<()> {
    use der::DecodePem as _;
    use x509_cert::crl::CertificateList;
    for (name, bytes) in crls {
        let crl = match std::str::from_utf8(bytes)
            .ok()
            .filter(|s| s.contains("-----BEGIN X509 CRL"))
        {
            Some(pem) => CertificateList::from_pem(pem.as_bytes()),
            None => CertificateList::from_der(bytes),
        }
        .map_err(|e| bad(format!("CRL {name}: not a CRL (PEM or DER): {e}")))?;
        let issuer = &crl.tbs_cert_list.issuer;
        let candidates: Vec<&&Certificate> = path
            .iter()
            .filter(|c| c.tbs_certificate().subject() == issuer)
            .collect();
        if candidates.is_empty() {
            return Err(bad(format!(
                "CRL {name}: issuer {issuer} is not a certificate of the export's chain"
            )));
        }
        if crl.signature_algorithm.oid != ECDSA_WITH_SHA256 {
            return Err(bad(format!(
                "CRL {name}: signature algorithm {} is not ecdsa-with-SHA256",
                crl.signature_algorithm.oid
            )));
        }
        let tbs = crl
            .tbs_cert_list
            .to_der()
            .map_err(|e| bad(format!("CRL {name}: {e}")))?;
        let sig = crl
            .signature
            .as_bytes()
            .ok_or_else(|| bad(format!("CRL {name}: signature bit string has unused bits")))?;
        let Some(crl_signer) = candidates.iter().find(|c| {
            key_of(c)
                .map(|k| verify_der(&k, &tbs, sig))
                .unwrap_or(false)
        }) else {
            return Err(bad(format!(
                "CRL {name}: signature does not verify with the key of {issuer} in the chain"
            )));
        };
        let signer_key = crl_signer.tbs_certificate().subject_public_key_info();
        for (i, c) in path.iter().enumerate() {
            let ct = c.tbs_certificate();
            if ct.issuer() != issuer {
                continue;
            }
            // Only certificates that this CRL's key issued (the next certificate in the path
            // with that key is the issuer).
            let issued_by_it = path
                .get(i + 1)
                .map(|p| p.tbs_certificate().subject_public_key_info() == signer_key)
                .unwrap_or(false);
            if !issued_by_it {
                continue;
            }
            if let Some(r) = crl
                .tbs_cert_list
                .revoked_certificates
                .iter()
                .flatten()
                .find(|r| r.serial_number == *ct.serial_number())
            {
                return Err(bad(format!(
                    "chain certificate {i} ({}): serial {} is revoked on CRL {name} (since {}); \
                     a revoked certificate cannot vouch for an export",
                    ct.subject(),
                    ct.serial_number(),
                    r.revocation_date
                )));
            }
        }
    }
    Ok(())
}

/// Check a signer path (the signer first, then link certificates, then its root, as in
/// chain.pem) against the trusted `root` at `at` (unix seconds): every link, the signer's
/// audit-signing extended key usage, and `crls`.
fn signer_path(
    path: &[Certificate],
    root: &Certificate,
    at: u64,
    crls: &[(String, Vec<u8>)],
) -> Result<()> {
    // Certificate chain: signer → ... → the trusted root. The path ends at the first
    // certificate the trusted root issued: after a root rollover the chain is [signer, link
    // "old root key by new root", …, old root], so a verifier trusting the old root stops at
    // the signer and one trusting the new root follows the links (docs/audit-format.md).
    let root_der = root.to_der().map_err(|e| bad(e.to_string()))?;
    if path.is_empty() || path[0].to_der().ok() == Some(root_der.clone()) {
        return Err(bad("chain.pem: the signer must not be the root itself"));
    }
    // Each step either reaches the trusted root or links to the next certificate; the last
    // certificate must reach the root (its error is the one reported).
    for i in 0..path.len() {
        match check_link(&path[i], root, at, i) {
            Ok(()) => break,
            Err(e) if i + 1 == path.len() => return Err(e),
            Err(_) => check_link(&path[i], &path[i + 1], at, i)?,
        }
    }
    let signer = &path[0];
    check_audit_signer(signer)?;
    // The audit-signer profile is issued by the root directly (after a root rollover the
    // root's name stays, only its key changes): an audit-signing certificate some issuing CA
    // minted is not the station's.
    let (issuer, root_name) = (
        signer.tbs_certificate().issuer(),
        root.tbs_certificate().subject(),
    );
    if issuer != root_name {
        return Err(bad(format!(
            "chain.pem: signer {} was issued by {issuer}, not by the root {root_name}: a station \
             audit certificate is issued by the root directly",
            signer.tbs_certificate().subject()
        )));
    }
    // The certificates actually used: the path up to the one that links to the root, then
    // the root.
    let mut used: Vec<&Certificate> = Vec::new();
    for c in path {
        used.push(c);
        if check_link(c, root, at, 0).is_ok() {
            break;
        }
    }
    used.push(root);
    check_crls(&used, crls)?;
    Ok(())
}

/// The audit public key from its certificate chain (DER, signer first, as `chain.pem`),
/// checked against the trusted root (PEM or DER) at `at` (unix seconds) like an export's
/// signer (docs/audit-format.md section 7, step 1), CRLs included. `audit verify-log` takes
/// the key from here, never from a key table in the database.
pub fn audit_key_from_chain(
    chain_der: &[Vec<u8>],
    root: &[u8],
    at: u64,
    crls: &[(String, Vec<u8>)],
) -> Result<VerifyingKey> {
    let roots = parse_certs(root, "root certificate")?;
    let path = chain_der
        .iter()
        .map(|d| Certificate::from_der(d).map_err(|e| bad(format!("audit chain: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    signer_path(&path, &roots[0], at, crls)?;
    key_of(&path[0])
}

/// Verify an export folder as [`verify_export`] does, and also against CRLs and a previous
/// export's head (`checks`).
pub fn verify_export_with(dir: &Path, root: &[u8], checks: &VerifyChecks) -> Result<ExportReport> {
    verify_export_files(&|name: &str| read(&dir.join(name)), root, checks)
}

/// The verification of [`verify_export_with`] over files given by `load(name)` (the folder's
/// plain file names: `manifest.json`, `manifest.sig`, `chain.pem`, the events file). The
/// fuzz target (registry/fuzz, `export_verify`) calls it with bytes held in memory.
pub fn verify_export_files(
    load: &dyn Fn(&str) -> Result<Vec<u8>>,
    root: &[u8],
    checks: &VerifyChecks,
) -> Result<ExportReport> {
    let roots = parse_certs(root, "root certificate")?;
    let root = &roots[0];
    let manifest_bytes = load("manifest.json")?;
    let sig = load("manifest.sig")?;
    let path = parse_certs(&load("chain.pem")?, "chain.pem")?;
    let (m, at) = read_manifest(&manifest_bytes)?;
    signer_path(&path, root, at, &checks.crls)?;
    let signer = &path[0];
    let key = check_signature(signer, &m, &manifest_bytes, &sig)?;

    // Events.
    if m.events_file.contains('/') || m.events_file.contains('\\') || m.events_file.starts_with('.')
    {
        return Err(bad("manifest.json: events_file must be a plain file name"));
    }
    let data = load(&m.events_file)?;
    // The file hash is checked after the walk below, so that an edited, deleted, inserted or
    // reordered event is reported by its sequence number, not only as "the file changed".
    let file_hash_ok = hex::encode(Sha256::digest(&data)) == m.events_sha256;
    let text =
        std::str::from_utf8(&data).map_err(|_| bad(format!("{} is not UTF-8", m.events_file)))?;
    let first_prev = hex32(&m.first_prev_hash, "first_prev_hash")?;
    let cps = checkpoint_hashes(&m, &key)?;
    let mut walk = EventWalk::start(&m, first_prev, cps, checks.previous)?;
    read_events(&m, text, &mut |ev| walk.check(ev))?;
    let count = walk.finish(&m, file_hash_ok, at)?;
    Ok(ExportReport {
        count,
        first_seq: m.first_seq.unwrap_or(0),
        last_seq: m.last_seq.unwrap_or(0),
        last_hash: m.last_hash,
        checkpoints: m.checkpoints.len(),
        signer_subject: signer.tbs_certificate().subject().to_string(),
        exported_at: m.exported_at,
    })
}

/// manifest.json parsed, its format checked, and its export time (unix seconds).
fn read_manifest(manifest_bytes: &[u8]) -> Result<(Manifest, u64)> {
    let m: Manifest =
        serde_json::from_slice(manifest_bytes).map_err(|e| bad(format!("manifest.json: {e}")))?;
    if m.format_version != EXPORT_FORMAT_VERSION || m.hash_encoding != audit::EVENT_DOMAIN {
        return Err(bad(format!(
            "manifest.json: unsupported format_version {} / hash_encoding {}",
            m.format_version, m.hash_encoding
        )));
    }
    let at = time::OffsetDateTime::parse(
        &m.exported_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|_| bad("manifest.json: exported_at is not RFC 3339"))?
    .unix_timestamp()
    .max(0) as u64;
    Ok((m, at))
}

/// The signer's key, once every checkpoint time lies within the signer certificate's
/// validity and manifest.sig verifies with it.
fn check_signature(
    signer: &Certificate,
    m: &Manifest,
    manifest_bytes: &[u8],
    sig: &[u8],
) -> Result<VerifyingKey> {
    let (nb, na) = {
        let v = signer.tbs_certificate().validity();
        (
            v.not_before.to_unix_duration().as_secs(),
            v.not_after.to_unix_duration().as_secs(),
        )
    };
    for c in &m.checkpoints {
        let t = unix(&c.time, &format!("checkpoint {} time", c.seq))?;
        if t < nb || t > na {
            return Err(bad(format!(
                "checkpoint {} was signed at {}, outside the signer certificate's validity: \
                 the audit certificate must be valid when its checkpoints were signed",
                c.seq, c.time
            )));
        }
    }
    let key = key_of(signer)?;
    if !verify_der(&key, manifest_bytes, sig) {
        return Err(bad(
            "manifest.sig does not verify with the signer certificate's key",
        ));
    }
    Ok(key)
}

/// The manifest's checkpoints by sequence number, each signature verified with `key`.
fn checkpoint_hashes(
    m: &Manifest,
    key: &VerifyingKey,
) -> Result<std::collections::BTreeMap<u64, [u8; 32]>> {
    let mut cps: std::collections::BTreeMap<u64, [u8; 32]> = Default::default();
    for c in &m.checkpoints {
        let h = hex32(&c.hash, "checkpoint hash")?;
        let s = hex::decode(&c.signature).map_err(|_| bad("checkpoint signature: not hex"))?;
        if !verify_der(key, &audit::checkpoint_message(c.seq, &h, &c.time), &s) {
            return Err(Error::AuditBroken {
                seq: c.seq,
                reason: "checkpoint signature does not verify with the signer's key".into(),
            });
        }
        cps.insert(c.seq, h);
    }
    Ok(cps)
}

/// Feed each event of the events file (`m.events_format`) to `check`, in file order.
fn read_events(
    m: &Manifest,
    text: &str,
    check: &mut dyn FnMut(JsonEvent) -> Result<()>,
) -> Result<()> {
    match m.events_format.as_str() {
        "jsonl" => {
            for (i, line) in text.lines().enumerate() {
                if line.is_empty() {
                    continue;
                }
                let ev: JsonEvent = serde_json::from_str(line)
                    .map_err(|e| bad(format!("{} line {}: {e}", m.events_file, i + 1)))?;
                check(ev)?;
            }
            Ok(())
        }
        "csv" => read_csv_events(&m.events_file, text, check),
        other => Err(bad(format!("manifest.json: unknown events_format {other}"))),
    }
}

/// The RFC 4180 events file: the header, then one record of ten fields per event.
fn read_csv_events(
    file: &str,
    text: &str,
    check: &mut dyn FnMut(JsonEvent) -> Result<()>,
) -> Result<()> {
    let rows = parse_csv(text)?;
    let mut it = rows.into_iter();
    match it.next() {
        Some(h) if h.join(",") == CSV_HEADER => {}
        _ => return Err(bad(format!("{file}: header must be {CSV_HEADER}"))),
    }
    for (i, r) in it.enumerate() {
        let [seq, time, operator, role, station, action, object, details, prev_hash, hash]: [String;
            10] = r
            .try_into()
            .map_err(|_| bad(format!("{file} record {}: 10 fields expected", i + 1)))?;
        let seq = seq
            .parse()
            .map_err(|_| bad(format!("{file} record {}: seq is not a number", i + 1)))?;
        check(JsonEvent {
            seq,
            time,
            operator,
            role,
            station,
            action,
            object,
            details,
            prev_hash,
            hash,
        })?;
    }
    Ok(())
}

/// The walk over an export's events in order: each must be the next sequence number, link
/// to the one before, hash to its contents, match its signed checkpoint and, with
/// `--previous`, the earlier export's last event (docs/audit-format.md section 7).
struct EventWalk {
    prev: [u8; 32],
    count: u64,
    expected: u64,
    last_time: String,
    /// The previous export's (last_seq, last_hash), and whether this export reached it.
    previous: Option<(u64, [u8; 32])>,
    previous_seen: bool,
    cps: std::collections::BTreeMap<u64, [u8; 32]>,
}

impl EventWalk {
    /// Before the first event: an export that starts right after the previous one must
    /// start from its last hash.
    fn start(
        m: &Manifest,
        first_prev: [u8; 32],
        cps: std::collections::BTreeMap<u64, [u8; 32]>,
        previous: Option<(u64, [u8; 32])>,
    ) -> Result<Self> {
        let mut previous_seen = false;
        if let Some((pseq, phash)) = previous {
            if m.first_seq.is_some_and(|f| f > 0 && pseq == f - 1) {
                if phash != first_prev {
                    return Err(Error::AuditBroken {
                        seq: pseq,
                        reason: "history rewritten: first_prev_hash differs from the previous export's last_hash".into(),
                    });
                }
                previous_seen = true;
            }
        }
        Ok(EventWalk {
            prev: first_prev,
            count: 0,
            expected: m.first_seq.unwrap_or(1),
            last_time: String::new(),
            previous,
            previous_seen,
            cps,
        })
    }

    fn check(&mut self, ev: JsonEvent) -> Result<()> {
        let expected = self.expected;
        if ev.seq != expected {
            return Err(Error::AuditBroken {
                seq: expected,
                reason: if ev.seq > expected {
                    format!("event {expected} is missing (next present is {})", ev.seq)
                } else {
                    format!("event {} is out of order", ev.seq)
                },
            });
        }
        let stored_prev = hex32(&ev.prev_hash, "prev_hash")?;
        if stored_prev != self.prev {
            return Err(Error::AuditBroken {
                seq: ev.seq,
                reason: "prev_hash does not match the previous event".into(),
            });
        }
        let fields = [
            &ev.time,
            &ev.operator,
            &ev.role,
            &ev.station,
            &ev.action,
            &ev.object,
            &ev.details,
        ];
        let h = event_hash(ev.seq, fields.map(String::as_str), &self.prev);
        if hex32(&ev.hash, "hash")? != h {
            return Err(Error::AuditBroken {
                seq: ev.seq,
                reason: "hash does not match the event's contents".into(),
            });
        }
        if self.cps.get(&ev.seq).is_some_and(|c| *c != h) {
            return Err(Error::AuditBroken {
                seq: ev.seq,
                reason: "event hash differs from the signed checkpoint".into(),
            });
        }
        if let Some((pseq, phash)) = self.previous {
            if pseq == ev.seq {
                if phash != h {
                    return Err(Error::AuditBroken {
                        seq: ev.seq,
                        reason: "history rewritten: the event's hash differs from the previous export's last_hash at this sequence".into(),
                    });
                }
                self.previous_seen = true;
            }
        }
        self.prev = h;
        self.expected = ev.seq + 1;
        self.count += 1;
        self.last_time = ev.time;
        Ok(())
    }

    /// After the last event: the walk must agree with the manifest (count, last_seq,
    /// last_hash), cover every checkpoint, match the file hash, precede the export time and
    /// reach the previous export. Returns the number of events.
    fn finish(self, m: &Manifest, file_hash_ok: bool, at: u64) -> Result<u64> {
        let EventWalk {
            prev,
            count,
            expected,
            ..
        } = self;
        if count != m.count {
            return Err(Error::AuditBroken {
                seq: expected,
                reason: format!("export holds {count} events, the manifest says {}", m.count),
            });
        }
        if count > 0 && m.last_seq != Some(expected - 1) {
            return Err(bad(format!(
                "last_seq {:?} differs from the last event {}",
                m.last_seq,
                expected - 1
            )));
        }
        if hex::encode(prev) != m.last_hash {
            return Err(Error::AuditBroken {
                seq: expected.saturating_sub(1),
                reason: "last event's hash differs from the manifest's last_hash".into(),
            });
        }
        if let Some((&s, _)) = self.cps.range(expected..).next() {
            return Err(Error::AuditBroken {
                seq: expected,
                reason: format!("export truncated: a checkpoint covers {s}"),
            });
        }
        if !file_hash_ok {
            return Err(bad(format!(
                "{}: SHA-256 differs from the manifest",
                m.events_file
            )));
        }
        if count > 0 && at < unix(&self.last_time, "last event time")? {
            return Err(bad(format!(
                "manifest.json: exported_at {} is before the last event's time {}",
                m.exported_at, self.last_time
            )));
        }
        self.check_reached_previous(m)?;
        Ok(count)
    }

    /// With `--previous`: the previous export's last event must be in this one.
    fn check_reached_previous(&self, m: &Manifest) -> Result<()> {
        let Some((pseq, _)) = self.previous else {
            return Ok(());
        };
        if self.previous_seen {
            return Ok(());
        }
        let last = self.expected.saturating_sub(1);
        Err(if self.count > 0 && pseq > last {
            Error::AuditBroken {
                seq: last + 1,
                reason: format!(
                    "history truncated: the previous export ends at sequence {pseq}, this one at {last}"
                ),
            }
        } else {
            bad(format!(
                "previous export: its last event {pseq} is not in this export ({}..{last}); export a range that holds it (--from-seq {pseq} or earlier)",
                m.first_seq.unwrap_or(0)
            ))
        })
    }
}

/// Parse a root certificate given as PEM or DER (for callers that want to check it early).
pub fn parse_root(bytes: &[u8]) -> Result<Vec<u8>> {
    let c = parse_certs(bytes, "root certificate")?;
    c[0].to_der().map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::audit::tests::{signer, test_key};
    use crate::testutil::{actor, temp_registry};
    use crate::AuditEntry;
    use p256::ecdsa::SigningKey;
    use std::str::FromStr;
    use std::time::Duration;
    use x509_cert::builder::{profile::BuilderProfile, Builder, CertificateBuilder};
    use x509_cert::ext::pkix::{KeyUsage, KeyUsages};
    use x509_cert::ext::{Extension, ToExtension};
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::time::Validity;

    struct Leaf {
        issuer: Name,
        subject: Name,
        audit_eku: bool,
        ca: bool,
    }
    impl BuilderProfile for Leaf {
        fn get_issuer(&self, _subject: &Name) -> Name {
            self.issuer.clone()
        }
        fn get_subject(&self) -> Name {
            self.subject.clone()
        }
        fn build_extensions(
            &self,
            _spk: spki::SubjectPublicKeyInfoRef<'_>,
            _issuer_spk: spki::SubjectPublicKeyInfoRef<'_>,
            tbs: &x509_cert::TbsCertificate,
        ) -> x509_cert::builder::Result<Vec<Extension>> {
            let bc = BasicConstraints {
                ca: self.ca,
                path_len_constraint: None,
            }
            .to_extension(tbs.subject(), &[])?;
            let mut v = vec![bc];
            v.push(KeyUsage(KeyUsages::DigitalSignature.into()).to_extension(tbs.subject(), &v)?);
            if self.audit_eku {
                v.push(
                    x509_cert::ext::pkix::ExtendedKeyUsage(vec![AUDIT_SIGNING_EKU])
                        .to_extension(tbs.subject(), &v)?,
                );
            }
            Ok(v)
        }
    }

    pub struct Pki {
        pub root_der: Vec<u8>,
        pub audit_key: SigningKey,
        pub audit_der: Vec<u8>,
    }

    fn spki_of(k: &SigningKey) -> spki::SubjectPublicKeyInfoOwned {
        use p256::pkcs8::EncodePublicKey;
        let der = k.verifying_key().to_public_key_der().unwrap();
        spki::SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).unwrap()
    }

    /// Test root + audit certificate built with x509-cert's builder and software P-256 keys.
    pub fn pki(root_seed: u8) -> Pki {
        pki_with(root_seed, true)
    }

    /// As [`pki`]; `audit_eku: false` gives an audit certificate as issued before the
    /// audit-signing extended key usage existed.
    pub fn pki_with(root_seed: u8, audit_eku: bool) -> Pki {
        let root_key = SigningKey::from_slice(&[root_seed; 32]).unwrap();
        let audit_key = test_key();
        let root_name = Name::from_str("CN=Test National Root CA,O=idstation test,C=UZ").unwrap();
        let validity = Validity::from_now(Duration::from_secs(3600 * 24 * 365)).unwrap();
        let profile =
            x509_cert::builder::profile::cabf::Root::new(false, root_name.clone()).unwrap();
        let root = CertificateBuilder::new(
            profile,
            SerialNumber::from(1u32),
            validity,
            spki_of(&root_key),
        )
        .unwrap()
        .build::<_, DerSignature>(&root_key)
        .unwrap();
        let leaf = Leaf {
            issuer: root_name,
            subject: Name::from_str("CN=Station TAS01-ST1 audit,O=idstation test,C=UZ").unwrap(),
            audit_eku,
            ca: false,
        };
        let audit = CertificateBuilder::new(
            leaf,
            SerialNumber::from(2u32),
            validity,
            spki_of(&audit_key),
        )
        .unwrap()
        .build::<_, DerSignature>(&root_key)
        .unwrap();
        Pki {
            root_der: root.to_der().unwrap(),
            audit_der: audit.to_der().unwrap(),
            audit_key,
        }
    }

    fn filled(n: u64, k: &SigningKey) -> (tempfile::TempDir, Registry) {
        let (d, mut reg) = temp_registry();
        let a = actor();
        for i in 1..=n {
            reg.audit(&AuditEntry {
                actor: &a,
                action: "issuance.completed",
                object: &format!("document:AA{i:07}"),
                details: &json!({"job": i, "text": "a,b \"c\"\nd"}),
            })
            .unwrap();
            if i % 10 == 0 {
                reg.audit_checkpoint(&signer(k)).unwrap();
            }
        }
        (d, reg)
    }

    fn export(
        reg: &Registry,
        p: &Pki,
        dir: &Path,
        range: ExportRange,
        format: ExportFormat,
    ) -> ExportSummary {
        let a = Actor::new("audrey", "auditor", "TAS01-ST1");
        reg.export_audit(
            &ExportRequest {
                out_dir: dir,
                range,
                format,
                exporter: &a,
                chain_der: &[p.audit_der.clone(), p.root_der.clone()],
            },
            &signer(&p.audit_key),
        )
        .unwrap()
    }

    #[test]
    fn jsonl_and_csv_exports_verify_with_only_the_folder_and_the_root() {
        let p = pki(7);
        let (_d, reg) = filled(35, &p.audit_key);
        for f in [ExportFormat::Jsonl, ExportFormat::Csv] {
            // Export into a folder of its own, away from the database.
            let elsewhere = tempfile::tempdir().unwrap();
            let out = elsewhere.path().join(format!("export-{}", f.as_str()));
            let s = export(&reg, &p, &out, ExportRange::All, f);
            assert_eq!(
                (s.count, s.first_seq, s.last_seq, s.checkpoints),
                (35, 1, 35, 3)
            );
            let root_pem = Certificate::from_der(&p.root_der)
                .unwrap()
                .to_pem(der::pem::LineEnding::LF)
                .unwrap();
            let r = verify_export(&out, root_pem.as_bytes()).unwrap();
            assert_eq!((r.count, r.last_seq, r.checkpoints), (35, 35, 3));
            assert!(r.signer_subject.contains("audit"));
            verify_export(&out, &p.root_der).unwrap();
        }
    }

    #[test]
    fn a_sequence_range_export_starts_from_the_previous_hash() {
        let p = pki(7);
        let (d, reg) = filled(35, &p.audit_key);
        let out = d.path().join("range");
        let s = export(
            &reg,
            &p,
            &out,
            ExportRange::Seq { from: 11, to: 25 },
            ExportFormat::Jsonl,
        );
        assert_eq!((s.count, s.checkpoints), (15, 1), "checkpoint 20 only");
        let r = verify_export(&out, &p.root_der).unwrap();
        assert_eq!((r.first_seq, r.last_seq), (11, 25));
        let out2 = d.path().join("today");
        let today = &crate::now_rfc3339()[..10];
        let s = export(
            &reg,
            &p,
            &out2,
            ExportRange::Time {
                from: Some(today.into()),
                to: Some(today.into()),
            },
            ExportFormat::Csv,
        );
        assert_eq!(s.count, 35);
        verify_export(&out2, &p.root_der).unwrap();
    }

    fn rewrite(out: &Path, f: impl Fn(&mut Vec<String>)) {
        let p = out.join("events.jsonl");
        let mut lines: Vec<String> = std::fs::read_to_string(&p)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        f(&mut lines);
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    }

    #[test]
    fn tampered_exports_fail() {
        let p = pki(7);
        let (_d, reg) = filled(35, &p.audit_key);
        let out_root = tempfile::tempdir().unwrap();
        let fresh = |name: &str| {
            let out = out_root.path().join(name);
            export(&reg, &p, &out, ExportRange::All, ExportFormat::Jsonl);
            out
        };
        // A wrong root.
        let other = pki(9);
        let out = fresh("wrong-root");
        let e = verify_export(&out, &other.root_der).unwrap_err();
        assert!(e.to_string().contains("signature does not verify"), "{e}");
        // An edited event: the file no longer matches the signed manifest.
        let out = fresh("edited");
        rewrite(&out, |l| l[4] = l[4].replace("\"alice\"", "\"mallory\""));
        let e = verify_export(&out, &p.root_der).unwrap_err();
        assert!(
            matches!(&e, Error::AuditBroken { reason, .. } if reason.contains("hash does not match")),
            "an edited event is named by its sequence number: {e}"
        );
        // Only the file's bytes changed (a trailing blank line): the file hash still catches it.
        let out = fresh("whitespace");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(out.join("events.jsonl"))
            .unwrap();
        std::io::Write::write_all(&mut f, b"\n").unwrap();
        let e = verify_export(&out, &p.root_der).unwrap_err();
        assert!(e.to_string().contains("SHA-256 differs"), "{e}");
        // An edited manifest.
        let out = fresh("manifest");
        let m = std::fs::read_to_string(out.join("manifest.json"))
            .unwrap()
            .replace("\"count\":35", "\"count\":34");
        std::fs::write(out.join("manifest.json"), m).unwrap();
        let e = verify_export(&out, &p.root_der).unwrap_err();
        assert!(
            e.to_string().contains("manifest.sig does not verify"),
            "{e}"
        );
    }

    #[test]
    fn event_level_checks_name_the_sequence_number() {
        // Bypass the file hash to exercise the per-event checks: re-sign a manifest whose
        // events_sha256 matches the tampered file (as an insider with the audit key could).
        let p = pki(7);
        let (d, reg) = filled(35, &p.audit_key);
        type Tamper = Box<dyn Fn(&mut Vec<String>)>;
        let cases: Vec<(&str, Tamper, u64)> = vec![
            (
                "edit",
                Box::new(|l: &mut Vec<String>| l[9] = l[9].replace("\"alice\"", "\"mallory\"")),
                10,
            ),
            (
                "delete",
                Box::new(|l: &mut Vec<String>| {
                    l.remove(14);
                }),
                15,
            ),
            ("swap", Box::new(|l: &mut Vec<String>| l.swap(19, 21)), 20),
            (
                "truncate",
                Box::new(|l: &mut Vec<String>| l.truncate(28)),
                29,
            ),
        ];
        for (name, f, seq) in cases {
            let out = d.path().join(name);
            export(&reg, &p, &out, ExportRange::All, ExportFormat::Jsonl);
            rewrite(&out, f);
            let data = std::fs::read(out.join("events.jsonl")).unwrap();
            let mut m: serde_json::Value =
                serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
            m["events_sha256"] = json!(hex::encode(Sha256::digest(&data)));
            let bytes = audit::canonical_json(&m).unwrap().into_bytes();
            std::fs::write(out.join("manifest.json"), &bytes).unwrap();
            std::fs::write(
                out.join("manifest.sig"),
                signer(&p.audit_key)(&bytes).unwrap(),
            )
            .unwrap();
            match verify_export(&out, &p.root_der) {
                Err(Error::AuditBroken { seq: s, .. }) => assert_eq!(s, seq, "{name}"),
                other => panic!("{name}: expected broken chain, got {other:?}"),
            }
        }
    }

    #[test]
    fn exports_verify_with_an_independent_python_and_openssl_verifier() {
        // registry/tests/verify_export.py is written from docs/audit-format.md alone.
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/verify_export.py");
        let p = pki(7);
        let (d, reg) = filled(25, &p.audit_key);
        let root_pem = d.path().join("root.pem");
        let pem = Certificate::from_der(&p.root_der)
            .unwrap()
            .to_pem(der::pem::LineEnding::LF)
            .unwrap();
        std::fs::write(&root_pem, pem).unwrap();
        let run = |dir: &Path| {
            let out = std::process::Command::new("python3")
                .arg(&script)
                .arg(dir)
                .arg(&root_pem)
                .output()
                .expect("python3 and openssl are needed for this test");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).to_string(),
            )
        };
        for f in [ExportFormat::Jsonl, ExportFormat::Csv] {
            let out = d.path().join(format!("py-{}", f.as_str()));
            export(&reg, &p, &out, ExportRange::Seq { from: 3, to: 25 }, f);
            let (ok, text) = run(&out);
            assert!(ok, "{text}");
            assert_eq!(text.trim(), "OK 23 25");
        }
        let out = d.path().join("py-edited");
        export(&reg, &p, &out, ExportRange::All, ExportFormat::Jsonl);
        rewrite(&out, |l| l[3] = l[3].replace("\"alice\"", "\"mallory\""));
        let (ok, text) = run(&out);
        assert!(!ok && text.contains("FAIL"), "{text}");
    }

    #[test]
    fn a_broken_log_is_not_exported_and_leaves_no_files() {
        let p = pki(7);
        let (d, reg) = filled(15, &p.audit_key);
        reg.connection()
            .execute_batch("DROP TRIGGER audit_events_no_update; UPDATE audit_events SET object = 'x' WHERE seq = 5;")
            .unwrap();
        let out = d.path().join("broken");
        let a = Actor::new("audrey", "auditor", "TAS01-ST1");
        let e = reg
            .export_audit(
                &ExportRequest {
                    out_dir: &out,
                    range: ExportRange::All,
                    format: ExportFormat::Jsonl,
                    exporter: &a,
                    chain_der: &[p.audit_der.clone(), p.root_der.clone()],
                },
                &signer(&p.audit_key),
            )
            .unwrap_err();
        assert!(matches!(e, Error::AuditBroken { seq: 5, .. }), "{e}");
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "no files left");
    }

    #[test]
    fn an_audit_certificate_without_the_audit_signing_eku_may_not_sign_an_export() {
        // An audit certificate issued before the marker existed (or any other certificate
        // under the root) is refused, naming the rule.
        let p = pki_with(7, false);
        let (d, reg) = filled(3, &p.audit_key);
        let out = d.path().join("legacy");
        export(&reg, &p, &out, ExportRange::All, ExportFormat::Jsonl);
        let e = verify_export(&out, &p.root_der).unwrap_err().to_string();
        assert!(e.contains("is not a station audit certificate"), "{e}");
        assert!(e.contains("1.3.6.1.4.1.32473.1.3.1"), "{e}");
    }

    #[test]
    fn an_audit_signing_certificate_from_an_issuing_ca_is_not_the_stations() {
        // An issuing CA under the root mints a certificate with the audit-signing mark for a
        // key of its choosing: the path is sound, the mark is there, but the root did not
        // issue it.
        let p = pki(7);
        let root_key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let ca_key = SigningKey::from_slice(&[9u8; 32]).unwrap();
        let root_name = Name::from_str("CN=Test National Root CA,O=idstation test,C=UZ").unwrap();
        let ca_name = Name::from_str("CN=Test e-Signature CA,O=idstation test,C=UZ").unwrap();
        let validity = Validity::from_now(Duration::from_secs(3600 * 24 * 365)).unwrap();
        let build = |leaf: Leaf, serial: u32, key: &SigningKey, by: &SigningKey| {
            CertificateBuilder::new(leaf, SerialNumber::from(serial), validity, spki_of(key))
                .unwrap()
                .build::<_, DerSignature>(by)
                .unwrap()
                .to_der()
                .unwrap()
        };
        let ca_der = build(
            Leaf {
                issuer: root_name.clone(),
                subject: ca_name.clone(),
                audit_eku: false,
                ca: true,
            },
            3,
            &ca_key,
            &root_key,
        );
        let minted = build(
            Leaf {
                issuer: ca_name,
                subject: Name::from_str("CN=Not the station,O=idstation test,C=UZ").unwrap(),
                audit_eku: true,
                ca: false,
            },
            4,
            &p.audit_key,
            &ca_key,
        );
        let (d, reg) = filled(3, &p.audit_key);
        let out = d.path().join("minted");
        let a = Actor::new("audrey", "auditor", "TAS01-ST1");
        reg.export_audit(
            &ExportRequest {
                out_dir: &out,
                range: ExportRange::All,
                format: ExportFormat::Jsonl,
                exporter: &a,
                chain_der: &[minted, ca_der, p.root_der.clone()],
            },
            &signer(&p.audit_key),
        )
        .unwrap();
        let e = verify_export(&out, &p.root_der).unwrap_err().to_string();
        assert!(
            e.contains("a station audit certificate is issued by the root directly"),
            "{e}"
        );
    }

    #[test]
    fn previous_export_head_catches_a_rewritten_or_truncated_history() {
        let p = pki(7);
        let (d, mut reg) = filled(12, &p.audit_key);
        let old = d.path().join("old");
        let s = export(&reg, &p, &old, ExportRange::All, ExportFormat::Jsonl);
        let head = (s.last_seq, s.last_hash);
        // The same history, later: continuity holds, also for a range that starts right after.
        for i in 13..=15 {
            reg.audit(&AuditEntry {
                actor: &actor(),
                action: "holder.enrolled",
                object: &format!("holder:{i}"),
                details: &json!({}),
            })
            .unwrap();
        }
        let new = d.path().join("new");
        export(&reg, &p, &new, ExportRange::All, ExportFormat::Jsonl);
        let with = |h| VerifyChecks {
            crls: vec![],
            previous: Some(h),
        };
        verify_export_with(&new, &p.root_der, &with(head)).unwrap();
        let next = d.path().join("next");
        export(
            &reg,
            &p,
            &next,
            ExportRange::Seq {
                from: head.0 + 1,
                to: head.0 + 2,
            },
            ExportFormat::Csv,
        );
        verify_export_with(&next, &p.root_der, &with(head)).unwrap();
        // Another hash at the old head's sequence: rewritten.
        let mut other = head;
        other.1[0] ^= 1;
        let e = verify_export_with(&new, &p.root_der, &with(other)).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("broken at sequence {}", head.0))
                && e.to_string().contains("history rewritten"),
            "{e}"
        );
        // A history that ends before the old head: truncated.
        let e = verify_export_with(&new, &p.root_der, &with((99, head.1))).unwrap_err();
        assert!(e.to_string().contains("history truncated"), "{e}");
    }

    #[test]
    fn csv_parser_round_trips_quotes_commas_and_newlines() {
        let mut line = String::new();
        for v in ["plain", "a,b", "say \"hi\"", "two\nlines"] {
            csv_field(v, &mut line);
            line.push(',');
        }
        line.pop();
        line.push('\n');
        let rows = parse_csv(&line).unwrap();
        assert_eq!(rows, vec![vec!["plain", "a,b", "say \"hi\"", "two\nlines"]]);
    }
}
