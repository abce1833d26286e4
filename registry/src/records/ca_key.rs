//! CA keys (HSM labels) with their certificate and state history; one active key per CA.

use rusqlite::{params, OptionalExtension, Row};

use super::unique_conflict;
use crate::{now_rfc3339, validate, Actor, Error, Registry, Result, Tx};

/// CA key state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaKeyState {
    Generated,
    Active,
    /// Signs only CRLs for what it issued.
    Retired,
    Revoked,
    Destroyed,
}

impl CaKeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            CaKeyState::Generated => "generated",
            CaKeyState::Active => "active",
            CaKeyState::Retired => "retired",
            CaKeyState::Revoked => "revoked",
            CaKeyState::Destroyed => "destroyed",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "generated" => CaKeyState::Generated,
            "active" => CaKeyState::Active,
            "retired" => CaKeyState::Retired,
            "revoked" => CaKeyState::Revoked,
            _ => CaKeyState::Destroyed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaKey {
    pub id: i64,
    pub label: String,
    /// Which CA: `root`, `esign`, `csca`, `document-signer`, `audit`.
    pub ca: String,
    pub role: String,
    /// SubjectPublicKeyInfo DER.
    pub public_key: Vec<u8>,
    /// SHA-256 of the SPKI DER, lowercase hex.
    pub fingerprint: String,
    pub state: CaKeyState,
    pub certificate: Option<Vec<u8>>,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaKeyStateChange {
    pub state: String,
    pub at: String,
    pub operator: String,
    pub approvers: Vec<String>,
    pub note: Option<String>,
}

fn ca_key_from_row(r: &Row<'_>) -> rusqlite::Result<CaKey> {
    let s: String = r.get(6)?;
    Ok(CaKey {
        id: r.get(0)?,
        label: r.get(1)?,
        ca: r.get(2)?,
        role: r.get(3)?,
        public_key: r.get(4)?,
        fingerprint: r.get(5)?,
        state: CaKeyState::parse(&s),
        certificate: r.get(7)?,
        created_at: r.get(8)?,
    })
}

const CA_KEY_COLS: &str =
    "id, label, ca, role, public_key, fingerprint, state, certificate, created_at";

impl Tx<'_> {
    /// Record a new CA key (state `generated`). `public_key` is the SPKI DER.
    pub fn insert_ca_key(
        &self,
        label: &str,
        ca: &str,
        role: &str,
        public_key: &[u8],
        by: &Actor,
    ) -> Result<i64> {
        use sha2::Digest;
        validate::text("label", label, 100)?;
        validate::text("ca", ca, 40)?;
        if public_key.is_empty() {
            return Err(Error::invalid(
                "public_key",
                "",
                "SPKI DER must not be empty",
            ));
        }
        let fp = hex::encode(sha2::Sha256::digest(public_key));
        let now = now_rfc3339();
        self.conn()
            .execute(
                "INSERT INTO ca_keys (label, ca, role, public_key, fingerprint, state, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'generated', ?6)",
                params![label, ca, role, public_key, fp, now],
            )
            .map_err(|e| {
                unique_conflict(e, || {
                    format!("CA key {label} or fingerprint {fp} already recorded")
                })
            })?;
        let id = self.conn().last_insert_rowid();
        self.conn().execute(
            "INSERT INTO ca_key_states (key_id, state, at, operator) VALUES (?1, 'generated', ?2, ?3)",
            params![id, now, by.operator],
        )?;
        Ok(id)
    }

    /// Attach the CA certificate for a key.
    pub fn set_ca_key_certificate(&self, key_id: i64, der: &[u8]) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE ca_keys SET certificate = ?2 WHERE id = ?1",
            params![key_id, der],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!("CA key {key_id}")));
        }
        Ok(())
    }

    /// Change a CA key's state, recording who did it and who approved. At most one key per CA
    /// is `active`: retire the old key and activate the new one in the same transaction.
    pub fn set_ca_key_state(
        &self,
        key_id: i64,
        state: CaKeyState,
        by: &Actor,
        approvers: &[&str],
        note: Option<&str>,
    ) -> Result<()> {
        let n = self
            .conn()
            .execute(
                "UPDATE ca_keys SET state = ?2 WHERE id = ?1",
                params![key_id, state.as_str()],
            )
            .map_err(|e| {
                unique_conflict(e, || {
                    format!("CA key {key_id} cannot become active while another key of its CA is active")
                })
            })?;
        if n == 0 {
            return Err(Error::NotFound(format!("CA key {key_id}")));
        }
        let approvers = serde_json::to_string(approvers).unwrap_or_else(|_| "[]".into());
        self.conn().execute(
            "INSERT INTO ca_key_states (key_id, state, at, operator, approvers, note)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                key_id,
                state.as_str(),
                now_rfc3339(),
                by.operator,
                approvers,
                note
            ],
        )?;
        Ok(())
    }
}

impl Registry {
    pub fn ca_key(&self, id: i64) -> Result<Option<CaKey>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {CA_KEY_COLS} FROM ca_keys WHERE id = ?1"),
                [id],
                ca_key_from_row,
            )
            .optional()?)
    }

    /// A CA key by its HSM label.
    pub fn ca_key_by_label(&self, label: &str) -> Result<Option<CaKey>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {CA_KEY_COLS} FROM ca_keys WHERE label = ?1"),
                [label],
                ca_key_from_row,
            )
            .optional()?)
    }

    /// The active key of a CA, if any.
    pub fn active_ca_key(&self, ca: &str) -> Result<Option<CaKey>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {CA_KEY_COLS} FROM ca_keys WHERE ca = ?1 AND state = 'active'"),
                [ca],
                ca_key_from_row,
            )
            .optional()?)
    }

    pub fn ca_keys(&self, ca: &str) -> Result<Vec<CaKey>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {CA_KEY_COLS} FROM ca_keys WHERE ca = ?1 ORDER BY id"
        ))?;
        let rows = st.query_map([ca], ca_key_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn ca_key_history(&self, key_id: i64) -> Result<Vec<CaKeyStateChange>> {
        let mut st = self.conn.prepare(
            "SELECT state, at, operator, approvers, note FROM ca_key_states WHERE key_id = ?1 ORDER BY id",
        )?;
        let rows = st.query_map([key_id], |r| {
            let a: String = r.get(3)?;
            Ok(CaKeyStateChange {
                state: r.get(0)?,
                at: r.get(1)?,
                operator: r.get(2)?,
                approvers: serde_json::from_str(&a).unwrap_or_default(),
                note: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
