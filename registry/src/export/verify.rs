//! Verifying an export with nothing but its folder and a trusted root: the manifest and its
//! signature, every checkpoint, and the walk over the events (docs/audit-format.md, section 7).

use std::path::Path;

use p256::ecdsa::VerifyingKey;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

use super::chain::{key_of, parse_certs, signer_path};
use super::{bad, read, ExportReport, VerifyChecks, CSV_HEADER, EXPORT_FORMAT_VERSION};
use crate::audit::{event_hash, verify_der};
use crate::{audit, Error, Result};

/// Manifest as read back (fields the verifier uses).
#[derive(serde::Deserialize)]
pub(super) struct Manifest {
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
pub(super) struct ManifestCheckpoint {
    seq: u64,
    hash: String,
    time: String,
    signature: String,
}

#[derive(serde::Deserialize)]
pub(super) struct JsonEvent {
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

pub(super) fn hex32(s: &str, what: &str) -> Result<[u8; 32]> {
    let v = hex::decode(s).map_err(|_| bad(format!("{what}: not hexadecimal")))?;
    v.try_into()
        .map_err(|_| bad(format!("{what}: not 32 bytes")))
}

/// Parse RFC 4180 CSV (quoted fields may hold commas, quotes doubled, and line breaks).
pub(super) fn parse_csv(text: &str) -> Result<Vec<Vec<String>>> {
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
pub(super) fn unix(t: &str, what: &str) -> Result<u64> {
    Ok(
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .map_err(|_| bad(format!("{what}: {t} is not RFC 3339")))?
            .unix_timestamp()
            .max(0) as u64,
    )
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
pub(super) fn read_manifest(manifest_bytes: &[u8]) -> Result<(Manifest, u64)> {
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
pub(super) fn check_signature(
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
pub(super) fn checkpoint_hashes(
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
pub(super) fn read_events(
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
pub(super) fn read_csv_events(
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
pub(super) struct EventWalk {
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
