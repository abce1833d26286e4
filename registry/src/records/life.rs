//! The card's life after the desk (issue 16): certificates put on hold and released
//! (RFC 5280 §5.3.1 certificateHold), the end of a temporary registration (addresses stay
//! append-only: an end is its own row), and cards brought back to the office and destroyed.

use rusqlite::{params, OptionalExtension};

use super::card::Card;
use super::certificate::{cert_from_row, Certificate, CERT_COLS};
use crate::{now_rfc3339, validate, Actor, Error, Registry, Result, Tx};

/// A document's suspension: since when, and until when it may be resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspension {
    /// When the document became suspended (RFC 3339).
    pub since: String,
    /// Until when it may be resumed, as recorded with the suspension (schema version 10 on);
    /// `None` for a suspension recorded before.
    pub resume_until: Option<String>,
}

/// The end of a registration address (`address end`): on `ended_on`, recorded by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressEnd {
    pub address_id: i64,
    pub ended_on: String,
    pub reason: String,
    pub recorded_at: String,
    pub recorded_by: String,
}

/// A card brought back to the office (`card returned`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardReturn {
    pub card_id: i64,
    pub document_id: i64,
    pub returned_at: String,
    pub destroyed: bool,
    pub operator: String,
}

/// A replacement (`idstation replace`): the old document held while a new card is issued for
/// the same holder, then revoked with the link to the new document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    pub id: i64,
    pub old_document_id: i64,
    pub holder_id: i64,
    /// lost, stolen, damaged, name-change or recalled.
    pub reason: String,
    /// The RFC 5280 CRLReason the old certificates get when the replacement completes.
    pub crl_reason: String,
    /// holding (the old document suspended, the new card being issued), completed,
    /// rolled-back (the old document active again).
    pub state: String,
    /// The largest issuance job id when the replacement began: its issuance job is the
    /// holder's first job above it.
    pub issuance_job_floor: i64,
    pub new_document_id: Option<i64>,
    pub issuance_job_id: Option<i64>,
    pub operator: String,
    pub created_at: String,
    pub finished_at: Option<String>,
    /// On an enrolled station, the centre's service job that holds the old document there
    /// (drawn before the hold is asked for; schema V12, `None` before it).
    pub hold_job: Option<String>,
}

const REPLACEMENT_COLS: &str = "id, old_document_id, holder_id, reason, crl_reason, state, \
    issuance_job_floor, new_document_id, issuance_job_id, operator, created_at, finished_at, \
    hold_job";

fn replacement_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Replacement> {
    Ok(Replacement {
        id: r.get(0)?,
        old_document_id: r.get(1)?,
        holder_id: r.get(2)?,
        reason: r.get(3)?,
        crl_reason: r.get(4)?,
        state: r.get(5)?,
        issuance_job_floor: r.get(6)?,
        new_document_id: r.get(7)?,
        issuance_job_id: r.get(8)?,
        operator: r.get(9)?,
        created_at: r.get(10)?,
        finished_at: r.get(11)?,
        hold_job: r.get(12)?,
    })
}

impl Tx<'_> {
    /// Begin a replacement of document `old_document_id` (state holding). Refuses a document
    /// with a replacement already holding or completed.
    pub fn start_replacement(
        &self,
        old_document_id: i64,
        holder_id: i64,
        reason: &str,
        crl_reason: &str,
        hold_job: Option<&str>,
        by: &Actor,
    ) -> Result<i64> {
        let floor: i64 =
            self.conn()
                .query_row("SELECT coalesce(max(id), 0) FROM issuance_jobs", [], |r| {
                    r.get(0)
                })?;
        self.conn()
            .execute(
                "INSERT INTO document_replacements (old_document_id, holder_id, reason, crl_reason,
                    state, issuance_job_floor, operator, station, created_at, hold_job)
                 VALUES (?1, ?2, ?3, ?4, 'holding', ?5, ?6, ?7, ?8, ?9)",
                params![
                    old_document_id,
                    holder_id,
                    reason,
                    crl_reason,
                    floor,
                    by.operator,
                    by.station,
                    now_rfc3339(),
                    hold_job
                ],
            )
            .map_err(|e| {
                super::unique_conflict(e, || {
                    format!("document {old_document_id} is already being replaced or was replaced")
                })
            })?;
        Ok(self.conn().last_insert_rowid())
    }

    /// End replacement `id`: completed with the new document and its issuance job, or
    /// rolled back (both `None`).
    pub fn finish_replacement(&self, id: i64, new: Option<(i64, i64)>) -> Result<()> {
        self.finish_holding(
            "UPDATE document_replacements SET state = ?2, new_document_id = ?3, issuance_job_id = ?4,
                finished_at = ?5 WHERE id = ?1 AND state = 'holding'",
            id,
            new,
        )
    }

    /// `update` (a replacement journal's end: id, state, new document, issuance job, time) run
    /// for replacement `id`, which must be holding.
    pub(super) fn finish_holding(
        &self,
        update: &str,
        id: i64,
        new: Option<(i64, i64)>,
    ) -> Result<()> {
        let (state, doc, job) = match new {
            Some((d, j)) => ("completed", Some(d), Some(j)),
            None => ("rolled-back", None, None),
        };
        let n = self
            .conn()
            .execute(update, params![id, state, doc, job, now_rfc3339()])?;
        if n == 0 {
            return Err(Error::Conflict(format!("replacement {id} is not holding")));
        }
        Ok(())
    }

    /// Release a certificate from hold (resume): it is active again and absent from the next
    /// full CRL. Only a certificate revoked with reason certificateHold can be released
    /// (RFC 5280 §5.3.1: every other reason is final).
    pub fn release_certificate_hold(&self, cert_id: i64) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE certificates SET status = 'active', revocation_reason = NULL, revoked_at = NULL
             WHERE id = ?1 AND status = 'revoked' AND revocation_reason = 'certificateHold'",
            [cert_id],
        )?;
        if n == 0 {
            return Err(Error::Conflict(format!(
                "certificate {cert_id} is not on hold (only certificateHold can be released)"
            )));
        }
        Ok(())
    }

    /// Turn a hold into a final revocation with `reason` (a suspended document revoked):
    /// RFC 5280 §5.3.1 lets a certificateHold entry change to another reason; the revocation
    /// date becomes `at`. Refuses a certificate not on hold.
    pub fn finalize_certificate_hold(&self, cert_id: i64, reason: &str, at: &str) -> Result<()> {
        if !super::certificate::REVOCATION_REASONS.contains(&reason) || reason == "certificateHold"
        {
            return Err(Error::invalid(
                "revocation_reason",
                reason,
                "a hold is made final with an RFC 5280 CRLReason other than certificateHold",
            ));
        }
        let n = self.conn().execute(
            "UPDATE certificates SET revocation_reason = ?2, revoked_at = ?3
             WHERE id = ?1 AND status = 'revoked' AND revocation_reason = 'certificateHold'",
            params![cert_id, reason, at],
        )?;
        if n == 0 {
            return Err(Error::Conflict(format!(
                "certificate {cert_id} is not on hold"
            )));
        }
        Ok(())
    }

    /// Record the end of registration address `address_id` on `ended_on` (a date). Refuses a
    /// permanent address (it is replaced by a new one, never ended), an address already ended,
    /// and a date before its registration.
    pub fn end_address(
        &self,
        address_id: i64,
        ended_on: &str,
        reason: &str,
        by: &Actor,
    ) -> Result<()> {
        validate::date("ended_on", ended_on)?;
        validate::text("reason", reason, 200)?;
        let row: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT kind, registered_on FROM addresses WHERE id = ?1",
                [address_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (kind, registered_on) =
            row.ok_or_else(|| Error::NotFound(format!("address {address_id}")))?;
        if kind != "temporary" {
            return Err(Error::invalid(
                "kind",
                &kind,
                "only a temporary registration is cancelled; a permanent one is replaced by a new address",
            ));
        }
        if ended_on.as_bytes() < registered_on.as_bytes() {
            return Err(Error::invalid(
                "ended_on",
                ended_on,
                format!("must not be before the registration ({registered_on})"),
            ));
        }
        let n = self.conn().execute(
            "INSERT INTO address_ends (address_id, ended_on, reason, recorded_at, recorded_by)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (address_id) DO NOTHING",
            params![address_id, ended_on, reason, now_rfc3339(), by.operator],
        )?;
        if n == 0 {
            return Err(Error::Conflict(format!(
                "address {address_id} has already ended"
            )));
        }
        Ok(())
    }

    /// Record card `card_id` (of document `document_id`) as brought back, and destroyed if
    /// `destroyed`; the card's lifecycle becomes destroyed then. A card is returned once.
    pub fn record_card_return(
        &self,
        card_id: i64,
        document_id: i64,
        destroyed: bool,
        by: &Actor,
    ) -> Result<()> {
        let now = now_rfc3339();
        let n = self.conn().execute(
            "INSERT INTO card_returns (card_id, document_id, returned_at, destroyed, operator)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (card_id) DO NOTHING",
            params![card_id, document_id, now, destroyed as i64, by.operator],
        )?;
        if n == 0 {
            return Err(Error::Conflict(format!(
                "card {card_id} has already been returned"
            )));
        }
        if destroyed {
            self.conn().execute(
                "UPDATE cards SET lifecycle = 'destroyed', updated_at = ?2 WHERE id = ?1",
                params![card_id, now],
            )?;
        }
        Ok(())
    }
}

impl Registry {
    /// Replacements still holding (interrupted), oldest first.
    pub fn open_replacements(&self) -> Result<Vec<Replacement>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {REPLACEMENT_COLS} FROM document_replacements WHERE state = 'holding' ORDER BY id"
        ))?;
        let rows = st.query_map([], replacement_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every replacement of document `old_document_id`, oldest first (the link old → new).
    pub fn replacements_of(&self, old_document_id: i64) -> Result<Vec<Replacement>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {REPLACEMENT_COLS} FROM document_replacements WHERE old_document_id = ?1 ORDER BY id"
        ))?;
        let rows = st.query_map([old_document_id], replacement_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The card a document was issued on (whatever its lifecycle now), if any.
    pub fn card_of_document(&self, document_id: i64) -> Result<Option<Card>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, chip_serial, lifecycle, holder_id, document_id, updated_at
                 FROM cards WHERE document_id = ?1 ORDER BY id DESC LIMIT 1",
                [document_id],
                super::card::card_from_row,
            )
            .optional()?)
    }

    /// The certificates on card `card_id`, oldest first.
    pub fn certificates_of_card(&self, card_id: i64) -> Result<Vec<Certificate>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {CERT_COLS} FROM certificates WHERE card_id = ?1 ORDER BY id"
        ))?;
        let rows = st.query_map([card_id], cert_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Document `document_id`'s last suspension (its status history), if ever.
    pub fn last_suspension(&self, document_id: i64) -> Result<Option<Suspension>> {
        Ok(self
            .conn
            .query_row(
                "SELECT at, resume_until FROM document_status_history
                 WHERE document_id = ?1 AND status = 'suspended' ORDER BY id DESC LIMIT 1",
                [document_id],
                |r| {
                    Ok(Suspension {
                        since: r.get(0)?,
                        resume_until: r.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    /// The ends of a holder's registration addresses, oldest first.
    pub fn address_ends(&self, holder_id: i64) -> Result<Vec<AddressEnd>> {
        let mut st = self.conn.prepare(
            "SELECT e.address_id, e.ended_on, e.reason, e.recorded_at, e.recorded_by
             FROM address_ends e JOIN addresses a ON a.id = e.address_id
             WHERE a.holder_id = ?1 ORDER BY e.address_id",
        )?;
        let rows = st.query_map([holder_id], |r| {
            Ok(AddressEnd {
                address_id: r.get(0)?,
                ended_on: r.get(1)?,
                reason: r.get(2)?,
                recorded_at: r.get(3)?,
                recorded_by: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The return of card `card_id`, if it was brought back.
    pub fn card_return(&self, card_id: i64) -> Result<Option<CardReturn>> {
        Ok(self
            .conn
            .query_row(
                "SELECT card_id, document_id, returned_at, destroyed, operator
                 FROM card_returns WHERE card_id = ?1",
                [card_id],
                |r| {
                    Ok(CardReturn {
                        card_id: r.get(0)?,
                        document_id: r.get(1)?,
                        returned_at: r.get(2)?,
                        destroyed: r.get::<_, i64>(3)? != 0,
                        operator: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }
}

/// Outbox topic: a holder's registration address set or ended (e-government registration).
pub const TOPIC_EGOV_ADDRESS_CHANGED: &str = "egov.address-changed";

#[cfg(test)]
mod tests {
    use super::super::tests::{address, holder};
    use super::*;
    use crate::testutil::{actor, temp_registry};
    use crate::{AddressKind, NewAddress};

    #[test]
    fn only_a_temporary_registration_ends_once_and_not_before_it_began() {
        let (_d, mut reg) = temp_registry();
        let a = actor();
        let h = reg
            .write(|tx| tx.insert_holder(&holder("31405850000012"), &address(), &a))
            .unwrap();
        let permanent = reg.addresses(h).unwrap()[0].id;
        let e = reg
            .write(|tx| tx.end_address(permanent, "2020-01-01", "cancelled", &a))
            .unwrap_err();
        assert!(
            matches!(&e, Error::Invalid { field, .. } if field == "kind"),
            "{e}"
        );
        let temp = NewAddress {
            kind: AddressKind::Temporary,
            registered_on: "2024-03-01".into(),
            registered_until: Some("2027-03-01".into()),
            ..address()
        };
        let t = reg.write(|tx| tx.add_address(h, &temp, &a)).unwrap();
        let e = reg
            .write(|tx| tx.end_address(t, "2024-02-28", "cancelled", &a))
            .unwrap_err();
        assert!(
            matches!(&e, Error::Invalid { field, .. } if field == "ended_on"),
            "{e}"
        );
        reg.write(|tx| tx.end_address(t, "2025-01-01", "cancelled", &a))
            .unwrap();
        let e = reg
            .write(|tx| tx.end_address(t, "2025-01-02", "cancelled", &a))
            .unwrap_err();
        assert!(matches!(e, Error::Conflict(_)), "{e}");
        let ends = reg.address_ends(h).unwrap();
        assert_eq!(ends.len(), 1);
        assert_eq!(ends[0].address_id, t);
        assert_eq!(ends[0].ended_on, "2025-01-01");
        // History: an end is never changed.
        assert!(reg
            .connection()
            .execute("UPDATE address_ends SET ended_on = '2026-01-01'", [])
            .is_err());
        assert_eq!(reg.addresses(h).unwrap().len(), 2);
    }
}
