//! Certificates the station issued, their status and revocation (RFC 5280 reasons).

use rusqlite::{params, OptionalExtension, Row};

use super::unique_conflict;
use crate::{now_rfc3339, validate, Error, Registry, Result, Tx};

/// Certificate status in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    /// Signed by the CA, not (yet) on a locked card.
    Issued,
    Active,
    Revoked,
    Expired,
}

impl CertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CertStatus::Issued => "issued",
            CertStatus::Active => "active",
            CertStatus::Revoked => "revoked",
            CertStatus::Expired => "expired",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "issued" => CertStatus::Issued,
            "active" => CertStatus::Active,
            "revoked" => CertStatus::Revoked,
            _ => CertStatus::Expired,
        }
    }
}

/// CRLReason names (RFC 5280 §5.3.1).
pub const REVOCATION_REASONS: &[&str] = &[
    "unspecified",
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    "privilegeWithdrawn",
    "aACompromise",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCertificate {
    pub issuer_key_id: i64,
    /// Serial number as lowercase hex without leading `0x`.
    pub serial: String,
    pub subject: String,
    /// e.g. `holder-auth`, `holder-sign`, `ca`.
    pub purpose: String,
    /// RFC 3339 UTC.
    pub not_before: String,
    pub not_after: String,
    pub holder_id: Option<i64>,
    pub card_id: Option<i64>,
    pub job_id: Option<i64>,
    pub der: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub id: i64,
    pub data: NewCertificate,
    pub status: CertStatus,
    pub revocation_reason: Option<String>,
    pub revoked_at: Option<String>,
    pub created_at: String,
}

pub(super) fn cert_from_row(r: &Row<'_>) -> rusqlite::Result<Certificate> {
    let s: String = r.get(7)?;
    Ok(Certificate {
        id: r.get(0)?,
        data: NewCertificate {
            issuer_key_id: r.get(1)?,
            serial: r.get(2)?,
            subject: r.get(3)?,
            purpose: r.get(4)?,
            not_before: r.get(5)?,
            not_after: r.get(6)?,
            holder_id: r.get(10)?,
            card_id: r.get(11)?,
            job_id: r.get(12)?,
            der: r.get(13)?,
        },
        status: CertStatus::parse(&s),
        revocation_reason: r.get(8)?,
        revoked_at: r.get(9)?,
        created_at: r.get(14)?,
    })
}

pub(crate) const CERT_COLS: &str = "id, issuer_key_id, serial, subject, purpose, not_before, \
    not_after, status, revocation_reason, revoked_at, holder_id, card_id, job_id, der, created_at";

impl Tx<'_> {
    /// Record a certificate the CA has signed (status `issued` until its card is locked).
    pub fn insert_certificate(&self, c: &NewCertificate) -> Result<i64> {
        if c.serial.is_empty()
            || !c
                .serial
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(Error::invalid(
                "serial",
                &c.serial,
                "must be lowercase hexadecimal",
            ));
        }
        validate::text("subject", &c.subject, 1000)?;
        if c.not_after <= c.not_before {
            return Err(Error::invalid(
                "not_after",
                &c.not_after,
                format!("must be after not_before ({})", c.not_before),
            ));
        }
        if c.der.is_empty() {
            return Err(Error::invalid(
                "der",
                "",
                "certificate DER must not be empty",
            ));
        }
        // A certificate signed by a key whose CA certificate was revoked (docs/rotation.md,
        // emergency revocation) is refused:
        // SQLite serialises this with the revocation, so every holder certificate of a revoked
        // key is either flagged for re-issuance by the revocation or never recorded.
        let issuer: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT label, state FROM ca_keys WHERE id = ?1",
                [c.issuer_key_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((label, state)) = issuer {
            if state == "revoked" {
                return Err(Error::Conflict(format!(
                    "CA key {label} is revoked: certificates it signed are not recorded (issue under the active key)"
                )));
            }
        }
        self.conn()
            .execute(
                "INSERT INTO certificates (issuer_key_id, serial, subject, purpose, not_before, not_after,
                    status, holder_id, card_id, job_id, der, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'issued', ?7, ?8, ?9, ?10, ?11)",
                params![
                    c.issuer_key_id,
                    c.serial,
                    c.subject,
                    c.purpose,
                    c.not_before,
                    c.not_after,
                    c.holder_id,
                    c.card_id,
                    c.job_id,
                    c.der,
                    now_rfc3339()
                ],
            )
            .map_err(|e| {
                unique_conflict(e, || {
                    format!("serial {} already issued by key {}", c.serial, c.issuer_key_id)
                })
            })?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Mark an issued certificate active (its card passed read-back and is locked).
    pub fn activate_certificate(&self, cert_id: i64, card_id: i64) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE certificates SET status = 'active', card_id = ?2 WHERE id = ?1 AND status = 'issued'",
            params![cert_id, card_id],
        )?;
        if n == 0 {
            return Err(Error::Conflict(format!(
                "certificate {cert_id} is not in state issued"
            )));
        }
        Ok(())
    }

    /// Revoke a certificate with an RFC 5280 CRLReason name.
    pub fn revoke_certificate(&self, cert_id: i64, reason: &str, at: &str) -> Result<()> {
        if !REVOCATION_REASONS.contains(&reason) {
            return Err(Error::invalid(
                "revocation_reason",
                reason,
                format!(
                    "must be an RFC 5280 CRLReason: {}",
                    REVOCATION_REASONS.join(", ")
                ),
            ));
        }
        let n = self.conn().execute(
            "UPDATE certificates SET status = 'revoked', revocation_reason = ?2, revoked_at = ?3
             WHERE id = ?1 AND status IN ('issued', 'active')",
            params![cert_id, reason, at],
        )?;
        if n == 0 {
            return Err(Error::Conflict(format!(
                "certificate {cert_id} does not exist or is already revoked or expired"
            )));
        }
        Ok(())
    }

    /// After an issuing key is revoked: flag every unrevoked holder certificate it issued for
    /// re-issuance. Returns how many were flagged.
    pub fn mark_reissue_for_issuer(&self, issuer_key_id: i64) -> Result<usize> {
        Ok(self.conn().execute(
            "UPDATE certificates SET reissue_required = 1
             WHERE issuer_key_id = ?1 AND holder_id IS NOT NULL AND status IN ('issued', 'active')",
            [issuer_key_id],
        )?)
    }
}

impl Registry {
    /// Certificates with this serial (lowercase hex), one per issuer key at most.
    pub fn certificates_by_serial(&self, serial: &str) -> Result<Vec<Certificate>> {
        let serial = serial.trim_start_matches("0x").to_ascii_lowercase();
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {CERT_COLS} FROM certificates WHERE serial = ?1 ORDER BY id"
        ))?;
        let rows = st.query_map([serial], cert_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Certificates issued within a job (for recovery).
    pub fn certificates_of_job(&self, job_id: i64) -> Result<Vec<Certificate>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {CERT_COLS} FROM certificates WHERE job_id = ?1 ORDER BY id"
        ))?;
        let rows = st.query_map([job_id], cert_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revoked, unexpired-at-`now` certificates of one issuer key (CRL input).
    pub fn revoked_certificates(&self, issuer_key_id: i64) -> Result<Vec<Certificate>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {CERT_COLS} FROM certificates WHERE issuer_key_id = ?1 AND status = 'revoked' ORDER BY id"
        ))?;
        let rows = st.query_map([issuer_key_id], cert_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether key `issuer_key_id` issued a certificate still valid at `now` (RFC 3339 UTC, as
    /// `not_after` is stored): its CRL must go on being published.
    pub fn has_unexpired_certificates(&self, issuer_key_id: i64, now: &str) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM certificates WHERE issuer_key_id = ?1 AND not_after > ?2)",
            rusqlite::params![issuer_key_id, now],
            |r| r.get(0),
        )?)
    }

    /// Certificates recorded with this purpose (e.g. `link-old-with-new`), oldest first.
    pub fn certificates_with_purpose(&self, purpose: &str) -> Result<Vec<Certificate>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {CERT_COLS} FROM certificates WHERE purpose = ?1 ORDER BY id"
        ))?;
        let rows = st.query_map([purpose], cert_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Holder certificates flagged for re-issuance (emergency CA revocation), oldest first.
    pub fn certificates_needing_reissue(&self) -> Result<Vec<Certificate>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {CERT_COLS} FROM certificates WHERE reissue_required = 1 ORDER BY id"
        ))?;
        let rows = st.query_map([], cert_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
