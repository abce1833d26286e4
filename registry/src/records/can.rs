//! The card access number (CAN, ICAO Doc 9303 Part 11 §4.4) of a card issued with PACE: six
//! decimal digits drawn at random per issuance job, written to the chip and printed on the card
//! face. Recorded before the card gets it (so a card never holds a CAN the registry lacks) and
//! never changed; read back by the document it was issued as.

use rusqlite::{params, OptionalExtension};

use crate::{now_rfc3339, DocumentNumber, Error, Registry, Result, Tx};

/// Six ASCII digits.
fn check_can(can: &str) -> Result<()> {
    if can.len() == 6 && can.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        // The value is a secret of the card: never in the error.
        Err(Error::invalid(
            "can",
            "(not shown)",
            "must be exactly 6 decimal digits",
        ))
    }
}

impl Tx<'_> {
    /// Record the CAN of issuance job `job_id` (once: a second CAN for the same job is a
    /// conflict).
    pub fn set_job_can(&self, job_id: i64, can: &str) -> Result<()> {
        check_can(can)?;
        self.conn()
            .execute(
                "INSERT INTO document_cans (job_id, can, created_at) VALUES (?1, ?2, ?3)",
                params![job_id, can, now_rfc3339()],
            )
            .map_err(|e| {
                super::unique_conflict(e, || format!("issuance job {job_id} already has a CAN"))
            })?;
        Ok(())
    }
}

impl Registry {
    /// The CAN of issuance job `job_id`, if one was drawn.
    pub fn job_can(&self, job_id: i64) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT can FROM document_cans WHERE job_id = ?1",
                [job_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The CAN of the card issued as document `num` (its completed issuance job); `None` for a
    /// card issued without PACE.
    pub fn document_can(&self, num: DocumentNumber) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT c.can FROM document_cans c JOIN issuance_jobs j ON j.id = c.job_id
                 WHERE j.series = ?1 AND j.number = ?2 AND j.state = 'completed'
                 ORDER BY j.id DESC LIMIT 1",
                params![num.series_str(), num.number],
                |r| r.get(0),
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use crate::jobs::NewJob;
    use crate::records::tests::{address, holder};
    use crate::testutil::{actor, temp_registry};

    #[test]
    fn a_can_is_six_digits_recorded_once_per_job_and_never_changed() {
        let (_d, mut reg) = temp_registry();
        let a = actor();
        let h = reg
            .write(|tx| {
                tx.add_number_block("TAS01", "AA", 1, 999_999)?;
                tx.insert_holder(&holder("31405850000012"), &address(), &a)
            })
            .unwrap();
        let num = reg.allocate_document_number("TAS01").unwrap();
        let new = NewJob {
            holder_id: h,
            office: "TAS01".into(),
            document: Some(num),
        };
        let job = reg.create_job(&new, &a).unwrap();
        for bad in ["12345", "1234567", "12a456", "", "١٢٣٤٥٦"] {
            let e = reg.write(|tx| tx.set_job_can(job, bad)).expect_err(bad);
            let text = e.to_string();
            assert!(
                text.contains("can") && text.contains("6 decimal digits"),
                "{text}"
            );
            assert!(
                bad.is_empty() || !text.contains(bad),
                "the CAN leaked: {text}"
            );
        }
        reg.write(|tx| tx.set_job_can(job, "042917")).unwrap();
        assert_eq!(reg.job_can(job).unwrap().as_deref(), Some("042917"));
        let e = reg
            .write(|tx| tx.set_job_can(job, "111111"))
            .expect_err("twice");
        assert!(e.to_string().contains("already has a CAN"), "{e}");
        let e = reg
            .connection()
            .execute("UPDATE document_cans SET can = '222222'", [])
            .expect_err("trigger");
        assert!(e.to_string().contains("never changed"), "{e}");
        assert_eq!(reg.job_can(job).unwrap().as_deref(), Some("042917"));
        // The document's CAN is its completed job's: none while the job runs.
        assert_eq!(reg.document_can(num).unwrap(), None);
        reg.connection()
            .execute("UPDATE issuance_jobs SET state = 'completed'", [])
            .unwrap();
        assert_eq!(reg.document_can(num).unwrap().as_deref(), Some("042917"));
    }
}
