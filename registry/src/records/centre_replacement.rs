//! The journal of a replacement of another station's card (schema V12): the old document is
//! not in this registry, only its number, office and holder's PINFL; it is held at the national
//! centre while the new card is issued here. The new card's issuance job is the first job above
//! `issuance_job_floor` of the holder with that PINFL.

use rusqlite::params;
use serde::Serialize;

use crate::{now_rfc3339, Actor, Registry, Result, Tx};

/// One replacement of another station's card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CentreReplacement {
    pub id: i64,
    /// The old document's number (`AA0000042`), as the centre has it.
    pub old_document: String,
    /// The office that issued it.
    pub old_office: String,
    pub pinfl: String,
    /// The UUID of the centre's service job that holds the old document (drawn before the
    /// hold is asked for: the centre knows the job only if it made the hold).
    pub hold_job: String,
    /// lost, stolen, damaged, name-change or recalled.
    pub reason: String,
    /// holding (held at the centre, the new card being issued here), completed, rolled-back.
    pub state: String,
    /// The largest issuance job id when the replacement began.
    pub issuance_job_floor: i64,
    pub new_document_id: Option<i64>,
    pub issuance_job_id: Option<i64>,
    pub operator: String,
    pub created_at: String,
    pub finished_at: Option<String>,
}

const COLS: &str = "id, old_document, old_office, pinfl, hold_job, reason, state, \
    issuance_job_floor, new_document_id, issuance_job_id, operator, created_at, finished_at";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CentreReplacement> {
    Ok(CentreReplacement {
        id: r.get(0)?,
        old_document: r.get(1)?,
        old_office: r.get(2)?,
        pinfl: r.get(3)?,
        hold_job: r.get(4)?,
        reason: r.get(5)?,
        state: r.get(6)?,
        issuance_job_floor: r.get(7)?,
        new_document_id: r.get(8)?,
        issuance_job_id: r.get(9)?,
        operator: r.get(10)?,
        created_at: r.get(11)?,
        finished_at: r.get(12)?,
    })
}

impl Tx<'_> {
    /// Begin the replacement of another station's document `old_document` (state holding).
    /// Refuses a document with a replacement already holding or completed here.
    pub fn start_centre_replacement(
        &self,
        old_document: &str,
        old_office: &str,
        pinfl: &str,
        hold_job: &str,
        reason: &str,
        by: &Actor,
    ) -> Result<i64> {
        let floor: i64 =
            self.conn()
                .query_row("SELECT coalesce(max(id), 0) FROM issuance_jobs", [], |r| {
                    r.get(0)
                })?;
        self.conn()
            .execute(
                "INSERT INTO centre_replacements (old_document, old_office, pinfl, hold_job, reason,
                     state, issuance_job_floor, operator, station, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'holding', ?6, ?7, ?8, ?9)",
                params![
                    old_document,
                    old_office,
                    pinfl,
                    hold_job,
                    reason,
                    floor,
                    by.operator,
                    by.station,
                    now_rfc3339()
                ],
            )
            .map_err(|e| {
                super::unique_conflict(e, || {
                    format!(
                        "document {old_document} is already being replaced or was replaced here"
                    )
                })
            })?;
        Ok(self.conn().last_insert_rowid())
    }

    /// End replacement `id`: completed with the new document and its issuance job, or rolled
    /// back (`None`).
    pub fn finish_centre_replacement(&self, id: i64, new: Option<(i64, i64)>) -> Result<()> {
        self.finish_holding(
            "UPDATE centre_replacements SET state = ?2, new_document_id = ?3, issuance_job_id = ?4,
                finished_at = ?5 WHERE id = ?1 AND state = 'holding'",
            id,
            new,
        )
    }
}

impl Registry {
    /// Replacements of other stations' cards still holding, oldest first.
    pub fn open_centre_replacements(&self) -> Result<Vec<CentreReplacement>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {COLS} FROM centre_replacements WHERE state = 'holding' ORDER BY id"
        ))?;
        let rows = st.query_map([], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every replacement here of another station's document `old_document`, oldest first.
    pub fn centre_replacements_of(&self, old_document: &str) -> Result<Vec<CentreReplacement>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {COLS} FROM centre_replacements WHERE old_document = ?1 ORDER BY id"
        ))?;
        let rows = st.query_map([old_document], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn one_open_replacement_per_old_document_and_each_ends_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut reg = Registry::open(dir.path().join("r.sqlite")).unwrap();
        let by = Actor::new("alice", "clerk", "S1");
        let id = reg
            .write(|tx| {
                tx.start_centre_replacement(
                    "AA0000007",
                    "SAM01",
                    "31234567890123",
                    "job-1",
                    "lost",
                    &by,
                )
            })
            .unwrap();
        let again = reg.write(|tx| {
            tx.start_centre_replacement(
                "AA0000007",
                "SAM01",
                "31234567890123",
                "job-2",
                "damaged",
                &by,
            )
        });
        assert!(
            matches!(&again, Err(Error::Conflict(m)) if m.contains("AA0000007")),
            "{again:?}"
        );
        let open = reg.open_centre_replacements().unwrap();
        assert_eq!(
            open.iter()
                .map(|r| (r.id, r.state.as_str(), r.reason.as_str()))
                .collect::<Vec<_>>(),
            vec![(id, "holding", "lost")]
        );
        reg.write(|tx| tx.finish_centre_replacement(id, None))
            .unwrap();
        let twice = reg.write(|tx| tx.finish_centre_replacement(id, None));
        assert!(matches!(twice, Err(Error::Conflict(_))), "{twice:?}");
        assert!(reg.open_centre_replacements().unwrap().is_empty());
        // Rolled back: the document may be replaced again.
        let next = reg
            .write(|tx| {
                tx.start_centre_replacement(
                    "AA0000007",
                    "SAM01",
                    "31234567890123",
                    "job-3",
                    "damaged",
                    &by,
                )
            })
            .unwrap();
        assert_eq!(
            reg.centre_replacements_of("AA0000007")
                .unwrap()
                .iter()
                .map(|r| (r.id, r.state.as_str()))
                .collect::<Vec<_>>(),
            vec![(id, "rolled-back"), (next, "holding")]
        );
        // A reason outside the list is refused by the table itself.
        let bad = reg.write(|tx| {
            tx.start_centre_replacement(
                "AA0000008",
                "SAM01",
                "31234567890123",
                "job-4",
                "bored",
                &by,
            )
        });
        assert!(bad.is_err(), "{bad:?}");
    }
}
