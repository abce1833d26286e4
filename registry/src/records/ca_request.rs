//! Dual-control CA requests (rotation, CA revocation) and their approvals by distinct ca-admins.

use rusqlite::{params, OptionalExtension};

use super::unique_conflict;
use crate::{now_rfc3339, validate, Actor, Error, Registry, Result, Tx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaRequest {
    pub id: i64,
    pub kind: String,
    pub ca: String,
    pub payload: String,
    pub quorum: u32,
    pub requested_by: String,
    pub created_at: String,
    pub expires_at: String,
    pub state: String,
    pub approvals: Vec<String>,
}

impl Tx<'_> {
    /// Open a dual-control request (rotation, root rollover, CA revocation).
    pub fn create_ca_request(
        &self,
        kind: &str,
        ca: &str,
        payload: &serde_json::Value,
        quorum: u32,
        expires_at: &str,
        by: &Actor,
    ) -> Result<i64> {
        validate::text("kind", kind, 40)?;
        if quorum < 1 {
            return Err(Error::invalid("quorum", "0", "must be at least 1"));
        }
        let now = now_rfc3339();
        if expires_at <= now.as_str() {
            return Err(Error::invalid(
                "expires_at",
                expires_at,
                "must be in the future",
            ));
        }
        self.conn().execute(
            "INSERT INTO ca_requests (kind, ca, payload, quorum, requested_by, created_at, expires_at, state, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?6)",
            params![kind, ca, crate::audit::canonical_json(payload)?, quorum, by.operator, now, expires_at],
        )?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Record an approval; returns the number of distinct approvals. Refuses the requester,
    /// a second approval by the same operator, and an expired or settled request.
    pub fn approve_ca_request(&self, request_id: i64, by: &Actor) -> Result<u32> {
        let (requested_by, state, expires_at): (String, String, String) = self
            .conn()
            .query_row(
                "SELECT requested_by, state, expires_at FROM ca_requests WHERE id = ?1",
                [request_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("CA request {request_id}")))?;
        if state != "pending" {
            return Err(Error::Conflict(format!(
                "CA request {request_id} is {state}, not pending"
            )));
        }
        let now = now_rfc3339();
        if now >= expires_at {
            return Err(Error::Conflict(format!(
                "CA request {request_id} expired at {expires_at}"
            )));
        }
        if requested_by == by.operator {
            return Err(Error::Conflict(format!(
                "{} requested CA request {request_id} and cannot also approve it (dual control)",
                by.operator
            )));
        }
        // Only someone who already held their role when the request was filed may approve it:
        // a ca-admin created, enabled or given the role afterwards could be the requester's
        // own creation.
        let filed: String = self.conn().query_row(
            "SELECT created_at FROM ca_requests WHERE id = ?1",
            [request_id],
            |r| r.get(0),
        )?;
        let since: Option<Option<String>> = self
            .conn()
            .query_row(
                "SELECT role_since FROM operators WHERE name = ?1",
                [&by.operator],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(Some(since)) = since {
            if since > filed {
                return Err(Error::Conflict(format!(
                    "approver {} holds the role since {since}, after CA request {request_id} was filed at {filed}; only an operator who was already a ca-admin when a request was filed may approve it",
                    by.operator
                )));
            }
        }
        self.conn()
            .execute(
                "INSERT INTO ca_request_approvals (request_id, operator, at) VALUES (?1, ?2, ?3)",
                params![request_id, by.operator, now],
            )
            .map_err(|e| {
                unique_conflict(e, || {
                    format!("{} already approved CA request {request_id}", by.operator)
                })
            })?;
        Ok(self.conn().query_row(
            "SELECT count(*) FROM ca_request_approvals WHERE request_id = ?1",
            [request_id],
            |r| r.get(0),
        )?)
    }

    /// Settle a request: `approved`, `executed`, `refused` or `expired`.
    pub fn set_ca_request_state(&self, request_id: i64, state: &str) -> Result<()> {
        if !["approved", "executed", "refused", "expired"].contains(&state) {
            return Err(Error::invalid(
                "state",
                state,
                "must be approved, executed, refused or expired",
            ));
        }
        let n = self.conn().execute(
            "UPDATE ca_requests SET state = ?2, updated_at = ?3 WHERE id = ?1",
            params![request_id, state, now_rfc3339()],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!("CA request {request_id}")));
        }
        Ok(())
    }
}

impl Registry {
    pub fn ca_request(&self, id: i64) -> Result<Option<CaRequest>> {
        request_by_id(&self.conn, id)
    }
}

/// The columns [`request_from_row`] reads, in its order.
pub(crate) const REQUEST_COLS: &str =
    "id, kind, ca, payload, quorum, requested_by, created_at, expires_at, state";

/// A request from a row of [`REQUEST_COLS`] (its approvals are read apart).
pub(crate) fn request_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CaRequest> {
    Ok(CaRequest {
        id: r.get(0)?,
        kind: r.get(1)?,
        ca: r.get(2)?,
        payload: r.get(3)?,
        quorum: r.get(4)?,
        requested_by: r.get(5)?,
        created_at: r.get(6)?,
        expires_at: r.get(7)?,
        state: r.get(8)?,
        approvals: Vec::new(),
    })
}

/// The operators who approved request `id`, in the order they approved.
pub(crate) fn approvals(conn: &rusqlite::Connection, id: i64) -> Result<Vec<String>> {
    let mut st = conn.prepare(
        "SELECT operator FROM ca_request_approvals WHERE request_id = ?1 ORDER BY at, operator",
    )?;
    let rows = st.query_map([id], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Request `id` with its approvals, read on `conn` (the registry's or a transaction's).
pub(crate) fn request_by_id(conn: &rusqlite::Connection, id: i64) -> Result<Option<CaRequest>> {
    let req = conn
        .query_row(
            &format!("SELECT {REQUEST_COLS} FROM ca_requests WHERE id = ?1"),
            [id],
            request_from_row,
        )
        .optional()?;
    let Some(mut req) = req else { return Ok(None) };
    req.approvals = approvals(conn, id)?;
    Ok(Some(req))
}
