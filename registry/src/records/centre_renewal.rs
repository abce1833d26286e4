//! The journal of a certificate renewal of another station's card (schema V13): the document is
//! not in this registry, only its number, issuing office and card; the renewal is the national
//! centre's service job `uuid`. Its steps: `opened` (journaled before the centre is asked),
//! `generated` (new keys on the card), `certified` (the centre's certificates, kept here),
//! `installed` (written and test-signed on the card); then completed or rolled back.

use rusqlite::params;
use serde::Serialize;

use crate::{now_rfc3339, Actor, Error, Registry, Result, Tx};

/// One renewal of another station's card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CentreRenewal {
    pub id: i64,
    /// The document's number (`AA0000042`), as the centre has it.
    pub document: String,
    /// The office that issued it.
    pub office: String,
    /// The card's chip serial (8 hex digits).
    pub card_serial: String,
    /// The centre's service job.
    pub uuid: String,
    /// running, completed, rolled-back.
    pub state: String,
    /// opened, generated, certified, installed.
    pub step: String,
    /// The certificates the centre issued (JSON), from `certified` on.
    pub certificates: Option<String>,
    pub error: Option<String>,
    pub operator: String,
    pub created_at: String,
    pub finished_at: Option<String>,
}

const COLS: &str = "id, document, office, card_serial, uuid, state, step, certificates, error, \
    operator, created_at, finished_at";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CentreRenewal> {
    Ok(CentreRenewal {
        id: r.get(0)?,
        document: r.get(1)?,
        office: r.get(2)?,
        card_serial: r.get(3)?,
        uuid: r.get(4)?,
        state: r.get(5)?,
        step: r.get(6)?,
        certificates: r.get(7)?,
        error: r.get(8)?,
        operator: r.get(9)?,
        created_at: r.get(10)?,
        finished_at: r.get(11)?,
    })
}

impl Tx<'_> {
    /// Begin the renewal of another station's document `document` on card `card_serial` under
    /// the centre's service job `uuid` (running, opened). Refuses a second running renewal of
    /// the document.
    pub fn start_centre_renewal(
        &self,
        document: &str,
        office: &str,
        card_serial: &str,
        uuid: &str,
        by: &Actor,
    ) -> Result<i64> {
        self.conn()
            .execute(
                "INSERT INTO centre_renewals (document, office, card_serial, uuid, state, step,
                     operator, station, created_at)
                 VALUES (?1, ?2, ?3, ?4, 'running', 'opened', ?5, ?6, ?7)",
                params![
                    document,
                    office,
                    card_serial,
                    uuid,
                    by.operator,
                    by.station,
                    now_rfc3339()
                ],
            )
            .map_err(|e| {
                super::unique_conflict(e, || {
                    format!("document {document} has a renewal running here")
                })
            })?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Running renewal `id` reached `step`; `certificates` (JSON) from `certified` on.
    pub fn centre_renewal_step(
        &self,
        id: i64,
        step: &str,
        certificates: Option<&str>,
    ) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE centre_renewals SET step = ?2, certificates = coalesce(?3, certificates)
             WHERE id = ?1 AND state = 'running'",
            params![id, step, certificates],
        )?;
        if n == 0 {
            return Err(Error::Conflict(format!("renewal {id} is not running")));
        }
        Ok(())
    }

    /// End running renewal `id`: `completed`, or `rolled-back` with why.
    pub fn finish_centre_renewal(&self, id: i64, state: &str, error: Option<&str>) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE centre_renewals SET state = ?2, error = ?3, finished_at = ?4
             WHERE id = ?1 AND state = 'running'",
            params![id, state, error, now_rfc3339()],
        )?;
        if n == 0 {
            return Err(Error::Conflict(format!("renewal {id} is not running")));
        }
        Ok(())
    }

    /// Why running renewal `id` stopped, kept for the next attempt.
    pub fn set_centre_renewal_error(&self, id: i64, error: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE centre_renewals SET error = ?2 WHERE id = ?1 AND state = 'running'",
            params![id, error],
        )?;
        Ok(())
    }
}

impl Registry {
    /// The running renewal of another station's document `document`, if any.
    pub fn running_centre_renewal(&self, document: &str) -> Result<Option<CentreRenewal>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {COLS} FROM centre_renewals WHERE document = ?1 AND state = 'running'"
        ))?;
        let mut rows = st.query_map([document], from_row)?;
        Ok(rows.next().transpose()?)
    }

    /// Every running renewal of other stations' cards, oldest first.
    pub fn running_centre_renewals(&self) -> Result<Vec<CentreRenewal>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {COLS} FROM centre_renewals WHERE state = 'running' ORDER BY id"
        ))?;
        let rows = st.query_map([], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every renewal here of another station's document `document`, oldest first.
    pub fn centre_renewals_of(&self, document: &str) -> Result<Vec<CentreRenewal>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {COLS} FROM centre_renewals WHERE document = ?1 ORDER BY id"
        ))?;
        let rows = st.query_map([document], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor() -> Actor {
        Actor::new("clerk", "clerk", "sam01-st1")
    }

    #[test]
    fn one_running_renewal_per_document_its_steps_and_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut reg = Registry::open(dir.path().join("r.sqlite")).unwrap();
        let u1 = "0f5c9f0e-7d2a-4b8e-9c10-3a6b4c8d0e21";
        let id = reg
            .write(|t| t.start_centre_renewal("AA0000007", "TAS01", "5C000031", u1, &actor()))
            .unwrap();
        let again = reg
            .write(|t| t.start_centre_renewal("AA0000007", "TAS01", "5C000031", "other", &actor()));
        assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");
        // Certified without certificates breaks the table's rule.
        assert!(reg
            .write(|t| t.centre_renewal_step(id, "certified", None))
            .is_err());
        reg.write(|t| t.centre_renewal_step(id, "generated", None))
            .unwrap();
        reg.write(|t| t.centre_renewal_step(id, "certified", Some("[]")))
            .unwrap();
        let running = reg.running_centre_renewal("AA0000007").unwrap().unwrap();
        assert_eq!(
            (running.step.as_str(), running.certificates.as_deref()),
            ("certified", Some("[]"))
        );
        assert_eq!(reg.running_centre_renewals().unwrap().len(), 1);
        reg.write(|t| t.finish_centre_renewal(id, "completed", None))
            .unwrap();
        assert!(reg
            .write(|t| t.finish_centre_renewal(id, "rolled-back", None))
            .is_err());
        assert_eq!(reg.running_centre_renewal("AA0000007").unwrap(), None);
        // A new renewal of the document once the first ended.
        reg.write(|t| t.start_centre_renewal("AA0000007", "TAS01", "5C000031", "u2", &actor()))
            .unwrap();
        assert_eq!(reg.centre_renewals_of("AA0000007").unwrap().len(), 2);
    }
}
