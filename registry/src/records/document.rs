//! Documents (the ID card as a travel document, ICAO 9303) and their status history.

use rusqlite::{params, OptionalExtension, Row};

use super::unique_conflict;
use crate::numbers::NumberState;
use crate::{now_rfc3339, validate, Actor, DocumentNumber, Error, Registry, Result, Tx};

/// Document status (ARCHITECTURE "Registry").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentStatus {
    Active,
    Suspended,
    Lost,
    Revoked,
    Expired,
}

impl DocumentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentStatus::Active => "active",
            DocumentStatus::Suspended => "suspended",
            DocumentStatus::Lost => "lost",
            DocumentStatus::Revoked => "revoked",
            DocumentStatus::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "active" => DocumentStatus::Active,
            "suspended" => DocumentStatus::Suspended,
            "lost" => DocumentStatus::Lost,
            "revoked" => DocumentStatus::Revoked,
            "expired" => DocumentStatus::Expired,
            _ => {
                return Err(Error::invalid(
                    "status",
                    s,
                    "must be one of active, suspended, lost, revoked, expired",
                ))
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub id: i64,
    pub number: DocumentNumber,
    pub holder_id: i64,
    pub office: String,
    pub date_of_issue: String,
    pub date_of_expiry: String,
    pub status: DocumentStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub status: String,
    pub reason: Option<String>,
    pub at: String,
    pub operator: String,
}

pub(super) fn document_from_row(r: &Row<'_>) -> rusqlite::Result<Document> {
    let series: String = r.get(1)?;
    let number: u32 = r.get(2)?;
    let status: String = r.get(7)?;
    let conv = |e: Error| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    };
    Ok(Document {
        id: r.get(0)?,
        number: DocumentNumber::new(&series, number).map_err(conv)?,
        holder_id: r.get(3)?,
        office: r.get(4)?,
        date_of_issue: r.get(5)?,
        date_of_expiry: r.get(6)?,
        status: DocumentStatus::parse(&status).map_err(conv)?,
    })
}

pub(super) const DOCUMENT_COLS: &str =
    "id, series, number, holder_id, office, date_of_issue, date_of_expiry, status";

impl Tx<'_> {
    /// Record an issued document (status `active`) and mark its number `used`.
    /// Fails with a conflict if the holder already has an active document.
    pub fn insert_document(
        &self,
        num: DocumentNumber,
        holder_id: i64,
        office: &str,
        date_of_issue: &str,
        date_of_expiry: &str,
        by: &Actor,
    ) -> Result<i64> {
        validate::office("office", office)?;
        validate::date("date_of_issue", date_of_issue)?;
        validate::after(
            "date_of_expiry",
            date_of_expiry,
            "date_of_issue",
            date_of_issue,
        )?;
        self.mark_document_number(num, NumberState::Used, None)?;
        self.conn()
            .execute(
                "INSERT INTO documents (series, number, holder_id, office, date_of_issue, date_of_expiry, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'active')",
                params![num.series_str(), num.number, holder_id, office, date_of_issue, date_of_expiry],
            )
            .map_err(|e| {
                unique_conflict(e, || {
                    format!("holder {holder_id} already has an active document: declare it lost or revoked first")
                })
            })?;
        let id = self.conn().last_insert_rowid();
        self.conn().execute(
            "INSERT INTO document_status_history (document_id, status, reason, at, operator)
             VALUES (?1, 'active', 'issued', ?2, ?3)",
            params![id, now_rfc3339(), by.operator],
        )?;
        Ok(id)
    }

    /// Change a document's status, keeping the history.
    pub fn set_document_status(
        &self,
        num: DocumentNumber,
        status: DocumentStatus,
        reason: &str,
        by: &Actor,
    ) -> Result<()> {
        self.change_status(num, status, reason, by, None)
    }

    /// Suspend a document, recording until when the suspension may be resumed (RFC 3339).
    pub fn suspend_document(
        &self,
        num: DocumentNumber,
        reason: &str,
        by: &Actor,
        resume_until: &str,
    ) -> Result<()> {
        validate::date_time("resume_until", resume_until)?;
        self.change_status(
            num,
            DocumentStatus::Suspended,
            reason,
            by,
            Some(resume_until),
        )
    }

    fn change_status(
        &self,
        num: DocumentNumber,
        status: DocumentStatus,
        reason: &str,
        by: &Actor,
        resume_until: Option<&str>,
    ) -> Result<()> {
        validate::text("reason", reason, 200)?;
        let id: i64 = self
            .conn()
            .query_row(
                "SELECT id FROM documents WHERE series = ?1 AND number = ?2",
                params![num.series_str(), num.number],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("document {num}")))?;
        self.conn()
            .execute(
                "UPDATE documents SET status = ?2 WHERE id = ?1",
                params![id, status.as_str()],
            )
            .map_err(|e| {
                unique_conflict(e, || {
                    format!("document {num} cannot become active: its holder has another active document")
                })
            })?;
        self.conn().execute(
            "INSERT INTO document_status_history (document_id, status, reason, at, operator, resume_until)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, status.as_str(), reason, now_rfc3339(), by.operator, resume_until],
        )?;
        Ok(())
    }
}

impl Registry {
    /// Document by series + number.
    pub fn document(&self, num: DocumentNumber) -> Result<Option<Document>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {DOCUMENT_COLS} FROM documents WHERE series = ?1 AND number = ?2"
            ))?
            .query_row(params![num.series_str(), num.number], document_from_row)
            .optional()?)
    }

    pub fn documents_of_holder(&self, holder_id: i64) -> Result<Vec<Document>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {DOCUMENT_COLS} FROM documents WHERE holder_id = ?1 ORDER BY id"
        ))?;
        let rows = st.query_map([holder_id], document_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn document_history(&self, document_id: i64) -> Result<Vec<StatusChange>> {
        let mut st = self.conn.prepare(
            "SELECT status, reason, at, operator FROM document_status_history WHERE document_id = ?1 ORDER BY id",
        )?;
        let rows = st.query_map([document_id], |r| {
            Ok(StatusChange {
                status: r.get(0)?,
                reason: r.get(1)?,
                at: r.get(2)?,
                operator: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
