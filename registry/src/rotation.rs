//! What CA key rotation under dual control (docs/rotation.md) keeps in the registry beyond the
//! v2 request tables: the journal of a request's execution (`ca_request_steps`, written before
//! each side effect so that `idstation recover` can finish it), the request's outcome, key
//! generations with their requester and approvers, request listings with expiry, and the
//! re-issuance list after an emergency CA revocation.

use rusqlite::{params, OptionalExtension};

use crate::records::{approvals, request_by_id, request_from_row, REQUEST_COLS};

use crate::{format_time, now_rfc3339, Actor, CaRequest, Error, Registry, Result, Tx};

/// RFC 3339 UTC time `seconds` from now, in the registry's format (for request expiry).
pub fn time_in(seconds: u64) -> String {
    let secs = i64::try_from(seconds).unwrap_or(i64::MAX / 2);
    format_time(time::OffsetDateTime::now_utc() + time::Duration::seconds(secs))
}

/// A key generated in the HSM for a dual-control request (see [`Tx::record_key_generation`]).
#[derive(Debug, Clone, Copy)]
pub struct KeyGeneration<'a> {
    pub label: &'a str,
    pub ca: &'a str,
    pub role: &'a str,
    /// SubjectPublicKeyInfo DER.
    pub public_key: &'a [u8],
    pub approvers: &'a [&'a str],
    pub request_id: i64,
}

/// One journaled step of a request's execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestStep {
    pub id: i64,
    pub step: String,
    /// `started` or `done`.
    pub state: String,
    /// Canonical JSON.
    pub details: String,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// A holder certificate to be re-issued (its issuing CA was revoked), with whom to call.
/// Serialized as the clerks' re-issuance list shows it (`ca reissue-list --json`): the
/// certificate by serial, without the registry's row id and the subject.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReissueEntry {
    #[serde(skip)]
    pub certificate_id: i64,
    #[serde(rename = "certificate_serial")]
    pub serial: String,
    pub purpose: String,
    #[serde(skip)]
    pub subject: String,
    pub status: String,
    pub issuer_key: String,
    pub holder_id: i64,
    pub pinfl: String,
    pub surname: String,
    pub given_names: String,
    /// The holder's active document (`AA1234567`), if any.
    pub document: Option<String>,
}

impl Tx<'_> {
    /// Journal that `step` of request `request_id` is about to happen (durable once committed,
    /// before the side effect). Returns the step id for [`Tx::finish_request_step`].
    pub fn journal_request_step(
        &self,
        request_id: i64,
        step: &str,
        details: &serde_json::Value,
    ) -> Result<i64> {
        crate::validate::text("step", step, 60)?;
        self.conn().execute(
            "INSERT INTO ca_request_steps (request_id, step, state, details, started_at)
             VALUES (?1, ?2, 'started', ?3, ?4)",
            params![
                request_id,
                step,
                crate::audit::canonical_json(details)?,
                now_rfc3339()
            ],
        )?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Mark a journaled step done, replacing its details when `details` is given.
    pub fn finish_request_step(
        &self,
        step_id: i64,
        details: Option<&serde_json::Value>,
    ) -> Result<()> {
        let n = match details {
            Some(d) => self.conn().execute(
                "UPDATE ca_request_steps SET state = 'done', finished_at = ?2, details = ?3 WHERE id = ?1",
                params![step_id, now_rfc3339(), crate::audit::canonical_json(d)?],
            )?,
            None => self.conn().execute(
                "UPDATE ca_request_steps SET state = 'done', finished_at = ?2 WHERE id = ?1",
                params![step_id, now_rfc3339()],
            )?,
        };
        if n == 0 {
            return Err(Error::NotFound(format!("CA request step {step_id}")));
        }
        Ok(())
    }

    /// Record the outcome text of a settled request (e.g. which key it activated).
    pub fn set_ca_request_outcome(&self, request_id: i64, outcome: &str) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE ca_requests SET outcome = ?2, updated_at = ?3 WHERE id = ?1",
            params![request_id, outcome, now_rfc3339()],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!("CA request {request_id}")));
        }
        Ok(())
    }

    /// Record a key generated for a dual-control request: the key (state `generated`, SHA-256
    /// fingerprint of its SPKI) and a state-history row naming the requester, the approvers
    /// and the request.
    pub fn record_key_generation(&self, g: &KeyGeneration<'_>, requester: &Actor) -> Result<i64> {
        let id = self.insert_ca_key(g.label, g.ca, g.role, g.public_key, requester)?;
        let request_id = g.request_id;
        let approvers = serde_json::to_string(g.approvers).unwrap_or_else(|_| "[]".into());
        self.conn().execute(
            "UPDATE ca_key_states SET approvers = ?2, note = ?3
             WHERE key_id = ?1 AND state = 'generated'",
            params![
                id,
                approvers,
                format!("generated in the HSM for CA request {request_id}")
            ],
        )?;
        Ok(id)
    }

    /// Pending requests whose expiry has passed become `expired`; returns their ids.
    pub fn expire_ca_requests(&self) -> Result<Vec<i64>> {
        let now = now_rfc3339();
        let ids: Vec<i64> = {
            let mut st = self.conn().prepare(
                "SELECT id FROM ca_requests WHERE state = 'pending' AND expires_at <= ?1 ORDER BY id",
            )?;
            let rows = st.query_map([&now], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for id in &ids {
            self.set_ca_request_state(*id, "expired")?;
        }
        Ok(ids)
    }

    /// A request as seen inside this transaction (with its approvals).
    pub fn ca_request_in_tx(&self, id: i64) -> Result<Option<CaRequest>> {
        request_by_id(self.conn(), id)
    }
}

impl Registry {
    /// Dual-control requests, newest first; only those in `states` when given.
    pub fn ca_requests(&self, states: Option<&[&str]>) -> Result<Vec<CaRequest>> {
        let mut st = self.connection().prepare(&format!(
            "SELECT {REQUEST_COLS} FROM ca_requests ORDER BY id DESC"
        ))?;
        let rows = st.query_map([], request_from_row)?;
        let mut out = Vec::new();
        for r in rows {
            let mut r = r?;
            if states.is_some_and(|s| !s.contains(&r.state.as_str())) {
                continue;
            }
            r.approvals = approvals(self.connection(), r.id)?;
            out.push(r);
        }
        Ok(out)
    }

    /// The outcome text of a settled request.
    pub fn ca_request_outcome(&self, id: i64) -> Result<Option<String>> {
        Ok(self
            .connection()
            .query_row("SELECT outcome FROM ca_requests WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?
            .flatten())
    }

    /// The execution journal of a request, in order.
    pub fn request_steps(&self, request_id: i64) -> Result<Vec<RequestStep>> {
        let mut st = self.connection().prepare(
            "SELECT id, step, state, details, started_at, finished_at FROM ca_request_steps
             WHERE request_id = ?1 ORDER BY id",
        )?;
        let rows = st.query_map([request_id], |r| {
            Ok(RequestStep {
                id: r.get(0)?,
                step: r.get(1)?,
                state: r.get(2)?,
                details: r.get(3)?,
                started_at: r.get(4)?,
                finished_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Holder certificates flagged for re-issuance, with the holder and their active document.
    pub fn reissue_list(&self) -> Result<Vec<ReissueEntry>> {
        let mut st = self.connection().prepare(
            "SELECT c.id, c.serial, c.purpose, c.subject, c.status, k.label, h.id, h.pinfl,
                    h.surname, h.given_names,
                    (SELECT d.series || printf('%07d', d.number) FROM documents d
                      WHERE d.holder_id = h.id AND d.status = 'active')
             FROM certificates c
             JOIN ca_keys k ON k.id = c.issuer_key_id
             JOIN holders h ON h.id = c.holder_id
             WHERE c.reissue_required = 1
             ORDER BY c.id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(ReissueEntry {
                certificate_id: r.get(0)?,
                serial: r.get(1)?,
                purpose: r.get(2)?,
                subject: r.get(3)?,
                status: r.get(4)?,
                issuer_key: r.get(5)?,
                holder_id: r.get(6)?,
                pinfl: r.get(7)?,
                surname: r.get(8)?,
                given_names: r.get(9)?,
                document: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::temp_registry;

    #[test]
    fn journal_steps_are_recorded_in_order_and_finished() {
        let (_d, mut reg) = temp_registry();
        let a = Actor::new("alice", "ca-admin", "S1");
        let id = reg
            .write(|tx| {
                tx.create_ca_request(
                    "rotate",
                    "esign",
                    &serde_json::json!({}),
                    1,
                    &time_in(60),
                    &a,
                )
            })
            .unwrap();
        let s1 = reg
            .write(|tx| {
                tx.journal_request_step(id, "key.generate", &serde_json::json!({"label": "k2"}))
            })
            .unwrap();
        reg.write(|tx| tx.finish_request_step(s1, None)).unwrap();
        reg.write(|tx| tx.journal_request_step(id, "cert.sign", &serde_json::json!({})))
            .unwrap();
        let steps = reg.request_steps(id).unwrap();
        assert_eq!(
            steps
                .iter()
                .map(|s| (s.step.as_str(), s.state.as_str()))
                .collect::<Vec<_>>(),
            vec![("key.generate", "done"), ("cert.sign", "started")]
        );
        assert!(steps[0].details.contains("k2"));
    }

    #[test]
    fn overdue_pending_requests_expire_and_are_no_longer_approvable() {
        let (_d, mut reg) = temp_registry();
        let a = Actor::new("alice", "ca-admin", "S1");
        let b = Actor::new("bob", "ca-admin", "S1");
        let id = reg
            .write(|tx| {
                tx.create_ca_request(
                    "rotate",
                    "esign",
                    &serde_json::json!({}),
                    1,
                    &time_in(1),
                    &a,
                )
            })
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(reg.write(|tx| tx.expire_ca_requests()).unwrap(), vec![id]);
        assert_eq!(reg.ca_requests(Some(&["expired"])).unwrap().len(), 1);
        let e = reg.write(|tx| tx.approve_ca_request(id, &b)).unwrap_err();
        assert!(e.to_string().contains("is expired, not pending"), "{e}");
    }

    #[test]
    fn key_generation_records_requester_approvers_and_request() {
        let (_d, mut reg) = temp_registry();
        let a = Actor::new("alice", "ca-admin", "S1");
        let key = reg
            .write(|tx| {
                tx.record_key_generation(
                    &KeyGeneration {
                        label: "esign-ca-2",
                        ca: "esign",
                        role: "issuing",
                        public_key: b"spki",
                        approvers: &["bob"],
                        request_id: 7,
                    },
                    &a,
                )
            })
            .unwrap();
        let h = reg.ca_key_history(key).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].state, "generated");
        assert_eq!(h[0].operator, "alice");
        assert_eq!(h[0].approvers, vec!["bob".to_string()]);
        assert!(h[0].note.as_deref().unwrap().contains("request 7"));
    }

    #[test]
    fn a_certificate_signed_by_a_revoked_ca_key_is_not_recorded() {
        let (_d, mut reg) = temp_registry();
        let a = Actor::new("alice", "ca-admin", "S1");
        let key = reg
            .write(|tx| tx.insert_ca_key("esign-ca-1", "esign", "issuing", b"spki", &a))
            .unwrap();
        let cert = crate::NewCertificate {
            issuer_key_id: key,
            serial: "4a01".into(),
            subject: "CN=x".into(),
            purpose: "holder-sign".into(),
            not_before: "2026-01-01T00:00:00Z".into(),
            not_after: "2027-01-01T00:00:00Z".into(),
            holder_id: None,
            card_id: None,
            job_id: None,
            der: vec![0x30, 0x00],
        };
        reg.write(|tx| tx.insert_certificate(&cert)).unwrap();
        reg.write(|tx| tx.set_ca_key_state(key, crate::CaKeyState::Revoked, &a, &["bob"], None))
            .unwrap();
        let e = reg
            .write(|tx| {
                tx.insert_certificate(&crate::NewCertificate {
                    serial: "4a02".into(),
                    ..cert.clone()
                })
            })
            .unwrap_err();
        assert!(
            e.to_string().contains("CA key esign-ca-1 is revoked"),
            "{e}"
        );
    }
}
