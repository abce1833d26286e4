//! The outbox: messages for other government systems, kept until acknowledged.

use rusqlite::params;

use crate::{now_rfc3339, validate, Actor, Error, Registry, Result, Tx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: i64,
    pub topic: String,
    pub payload: String,
    pub created_at: String,
    pub acked_at: Option<String>,
    pub acked_by: Option<String>,
}

/// Outbox topic: register a holder in the e-government system.
pub const TOPIC_EGOV_REGISTER_HOLDER: &str = "egov.register-holder";

/// Outbox topic of a signed audit checkpoint: defined with the audit log that sends it.
pub use crate::audit::TOPIC_AUDIT_CHECKPOINT;

impl Tx<'_> {
    /// Queue a message for another government system.
    pub fn outbox_push(&self, topic: &str, payload: &serde_json::Value) -> Result<i64> {
        validate::text("topic", topic, 100)?;
        self.conn().execute(
            "INSERT INTO outbox (topic, payload, created_at) VALUES (?1, ?2, ?3)",
            params![topic, crate::audit::canonical_json(payload)?, now_rfc3339()],
        )?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Acknowledge an outbox message (delivered).
    pub fn outbox_ack(&self, id: i64, by: &Actor) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE outbox SET acked_at = ?2, acked_by = ?3 WHERE id = ?1 AND acked_at IS NULL",
            params![id, now_rfc3339(), by.operator],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!(
                "unacknowledged outbox message {id}"
            )));
        }
        Ok(())
    }
}

impl Registry {
    /// Messages not yet acknowledged, oldest first.
    pub fn outbox_pending(&self) -> Result<Vec<OutboxMessage>> {
        let mut st = self.conn.prepare(
            "SELECT id, topic, payload, created_at, acked_at, acked_by FROM outbox WHERE acked_at IS NULL ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(OutboxMessage {
                id: r.get(0)?,
                topic: r.get(1)?,
                payload: r.get(2)?,
                created_at: r.get(3)?,
                acked_at: r.get(4)?,
                acked_by: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
