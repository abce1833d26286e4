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
use std::io::Read;
use std::path::Path;

use crate::{Actor, Error, Result};

mod chain;
mod verify;
mod write;

pub use chain::{audit_key_from_chain, parse_root};
pub use verify::{verify_export, verify_export_files, verify_export_with};

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

/// An export that does not verify, with what is wrong.
pub(super) fn bad(msg: impl Into<String>) -> Error {
    Error::ExportInvalid(msg.into())
}

/// A file of the export folder.
pub(super) fn read(p: &Path) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    File::open(p)
        .and_then(|mut f| f.read_to_end(&mut v))
        .map_err(|e| Error::io(p, e))?;
    Ok(v)
}

#[cfg(test)]
pub(crate) mod tests;
