//! Document numbers (series of 2 Latin capitals + 7 digits, e.g. `AD1234567`, the 9-character
//! TD1 document number of ICAO Doc 9303 Part 5) allocated from per-office series blocks.
//!
//! Allocation runs in a `BEGIN IMMEDIATE` transaction, so two processes never receive the same
//! number. Every number handed out gets a row in `document_numbers` whose state moves forward
//! only: `allocated` → `used` (a document was issued) | `spoiled` (the card was spoiled) |
//! `released` (never printed; the number is *not* handed out again). A block's `next` pointer
//! only grows, so no number is ever reused silently.

use std::fmt;
use std::str::FromStr;

use rusqlite::{params, OptionalExtension};

use crate::{now_rfc3339, validate, Error, Registry, Result, Tx};

/// A document number: series + 7-digit number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentNumber {
    pub series: [u8; 2],
    pub number: u32,
}

impl DocumentNumber {
    pub fn new(series: &str, number: u32) -> Result<Self> {
        validate::series("series", series)?;
        validate::number("number", number)?;
        let b = series.as_bytes();
        Ok(DocumentNumber {
            series: [b[0], b[1]],
            number,
        })
    }
    pub fn series_str(&self) -> &str {
        // Constructed only from validated A–Z bytes.
        std::str::from_utf8(&self.series).unwrap_or("??")
    }
}

impl fmt::Display for DocumentNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:07}", self.series_str(), self.number)
    }
}

impl FromStr for DocumentNumber {
    type Err = Error;
    /// Parse `AD1234567`: exactly 2 Latin capital letters then exactly 7 digits.
    fn from_str(s: &str) -> Result<Self> {
        let b = s.as_bytes();
        let ok = b.len() == 9
            && b[..2].iter().all(|c| c.is_ascii_uppercase())
            && b[2..].iter().all(|c| c.is_ascii_digit());
        if !ok {
            return Err(Error::invalid(
                "document_number",
                s,
                "must be 2 Latin capital letters followed by 7 digits (e.g. AD1234567)",
            ));
        }
        let n: u32 = s[2..]
            .parse()
            .map_err(|_| Error::invalid("document_number", s, "7 digits expected"))?;
        DocumentNumber::new(&s[..2], n).map_err(|_| {
            Error::invalid(
                "document_number",
                s,
                "number part must be between 0000001 and 9999999",
            )
        })
    }
}

/// What became of an allocated number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberState {
    Allocated,
    Used,
    Spoiled,
    Released,
}

impl NumberState {
    pub fn as_str(self) -> &'static str {
        match self {
            NumberState::Allocated => "allocated",
            NumberState::Used => "used",
            NumberState::Spoiled => "spoiled",
            NumberState::Released => "released",
        }
    }
    pub(crate) fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "allocated" => NumberState::Allocated,
            "used" => NumberState::Used,
            "spoiled" => NumberState::Spoiled,
            "released" => NumberState::Released,
            _ => return Err(Error::invalid("document_numbers.state", s, "unknown state")),
        })
    }
}

/// A block of numbers of one series assigned to one office.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberBlock {
    pub id: i64,
    pub office: String,
    pub series: String,
    pub first: u32,
    pub last: u32,
    /// The next number to hand out (`last + 1` when exhausted).
    pub next: u32,
}

/// A number block moved on by [`Tx::advance_number_blocks`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BlockMoved {
    pub series: String,
    pub first: u32,
    pub last: u32,
    pub next_before: u32,
    pub next_after: u32,
}

impl Tx<'_> {
    /// Assign numbers `first..=last` of `series` to `office`. Refuses a range that overlaps any
    /// existing block of the same series.
    pub fn add_number_block(
        &self,
        office: &str,
        series: &str,
        first: u32,
        last: u32,
    ) -> Result<i64> {
        validate::office("office", office)?;
        validate::series("series", series)?;
        validate::number("first", first)?;
        validate::number("last", last)?;
        if last < first {
            return Err(Error::invalid(
                "last",
                last.to_string(),
                format!("must not be below first ({first})"),
            ));
        }
        let overlap: Option<(String, u32, u32)> = self
            .conn()
            .query_row(
                "SELECT office, first, last FROM number_blocks
                 WHERE series = ?1 AND first <= ?3 AND last >= ?2 LIMIT 1",
                params![series, first, last],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        if let Some((o, f, l)) = overlap {
            return Err(Error::Conflict(format!(
                "number block {series} {first:07}..{last:07} overlaps {series} {f:07}..{l:07} of office {o}"
            )));
        }
        self.conn().execute(
            "INSERT INTO number_blocks (office, series, first, last, next) VALUES (?1, ?2, ?3, ?4, ?3)",
            params![office, series, first, last],
        )?;
        Ok(self.conn().last_insert_rowid())
    }

    /// After a restore from a backup: numbers below `next` of `office` are taken (cards issued
    /// after the backup may carry them), so the office's blocks before the one holding `next`
    /// are exhausted and that block goes on from `next`. Refuses a number in no block of the
    /// office, and one below what the registry already handed out. The blocks changed.
    pub fn advance_number_blocks(
        &self,
        office: &str,
        next: DocumentNumber,
    ) -> Result<Vec<BlockMoved>> {
        let series = next.series_str();
        let blocks: Vec<(i64, String, u32, u32, u32)> = {
            let mut st = self.conn().prepare(
                "SELECT id, series, first, last, next FROM number_blocks WHERE office = ?1 ORDER BY id",
            )?;
            let rows = st.query_map([office], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let Some(at) = blocks
            .iter()
            .position(|(_, s, f, l, _)| *s == series && (*f..=*l).contains(&next.number))
        else {
            return Err(Error::invalid(
                "next_number",
                next.to_string(),
                format!("is in no number block of office {office}"),
            ));
        };
        let mut changed = Vec::new();
        for (i, (id, s, f, l, n)) in blocks.iter().enumerate().take(at + 1) {
            let to = if i == at { next.number } else { l + 1 };
            if to < *n {
                return Err(Error::invalid(
                    "next_number",
                    next.to_string(),
                    format!(
                        "is below what the registry already handed out (block {s} \
                         {f:07}..{l:07} goes on from {n:07})"
                    ),
                ));
            }
            if to > *n {
                self.conn().execute(
                    "UPDATE number_blocks SET next = ?2 WHERE id = ?1",
                    params![id, to],
                )?;
                changed.push(BlockMoved {
                    series: s.clone(),
                    first: *f,
                    last: *l,
                    next_before: *n,
                    next_after: to,
                });
            }
        }
        Ok(changed)
    }

    /// Hand out the next free number of `office` (lowest block id first).
    pub fn allocate_document_number(&self, office: &str) -> Result<DocumentNumber> {
        validate::office("office", office)?;
        let block: Option<(i64, String, u32)> = self
            .conn()
            .query_row(
                "SELECT id, series, next FROM number_blocks
                 WHERE office = ?1 AND next <= last ORDER BY id LIMIT 1",
                [office],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((block_id, series, n)) = block else {
            return Err(Error::Conflict(format!(
                "office {office} has no document numbers left: assign it a new number block"
            )));
        };
        let now = now_rfc3339();
        self.conn().execute(
            "UPDATE number_blocks SET next = next + 1 WHERE id = ?1",
            [block_id],
        )?;
        self.conn().execute(
            "INSERT INTO document_numbers (series, number, block_id, office, state, allocated_at, changed_at)
             VALUES (?1, ?2, ?3, ?4, 'allocated', ?5, ?5)",
            params![series, n, block_id, office, now],
        )?;
        DocumentNumber::new(&series, n)
    }

    /// Record `num` as allocated to `office` when another authority handed it out (a station
    /// enrolled to the national centre mirrors the number the centre reserved for it): the
    /// number must lie in one of the office's blocks and never have been recorded; the block's
    /// `next` moves past it. `NotFound` when no block of the office holds it (the caller
    /// mirrors the authority's blocks first).
    pub fn take_document_number(&self, office: &str, num: DocumentNumber) -> Result<()> {
        validate::office("office", office)?;
        let block: Option<i64> = self
            .conn()
            .query_row(
                "SELECT id FROM number_blocks
                 WHERE office = ?1 AND series = ?2 AND first <= ?3 AND last >= ?3",
                params![office, num.series_str(), num.number],
                |r| r.get(0),
            )
            .optional()?;
        let Some(block_id) = block else {
            return Err(Error::NotFound(format!(
                "no number block of office {office} holds document number {num}"
            )));
        };
        let now = now_rfc3339();
        let inserted = self.conn().execute(
            "INSERT INTO document_numbers (series, number, block_id, office, state, allocated_at, changed_at)
             VALUES (?1, ?2, ?3, ?4, 'allocated', ?5, ?5) ON CONFLICT DO NOTHING",
            params![num.series_str(), num.number, block_id, office, now],
        )?;
        if inserted == 0 {
            return Err(Error::Conflict(format!(
                "document number {num} was already handed out ({})",
                number_state(self.conn(), num)?.as_str()
            )));
        }
        self.conn().execute(
            "UPDATE number_blocks SET next = max(next, ?2 + 1) WHERE id = ?1",
            params![block_id, num.number],
        )?;
        Ok(())
    }

    /// Move an allocated number to `used`, `spoiled` or `released` (forward only).
    pub fn mark_document_number(
        &self,
        num: DocumentNumber,
        state: NumberState,
        reason: Option<&str>,
    ) -> Result<()> {
        if state == NumberState::Allocated {
            return Err(Error::invalid(
                "state",
                "allocated",
                "a number can only move to used, spoiled or released",
            ));
        }
        let current = number_state(self.conn(), num)?;
        if current != NumberState::Allocated {
            return Err(Error::Conflict(format!(
                "document number {num} is already {}; it cannot become {}",
                current.as_str(),
                state.as_str()
            )));
        }
        self.conn().execute(
            "UPDATE document_numbers SET state = ?3, changed_at = ?4, reason = ?5
             WHERE series = ?1 AND number = ?2",
            params![
                num.series_str(),
                num.number,
                state.as_str(),
                now_rfc3339(),
                reason
            ],
        )?;
        Ok(())
    }
}

pub(crate) fn number_state(c: &rusqlite::Connection, num: DocumentNumber) -> Result<NumberState> {
    let s: Option<String> = c
        .query_row(
            "SELECT state FROM document_numbers WHERE series = ?1 AND number = ?2",
            params![num.series_str(), num.number],
            |r| r.get(0),
        )
        .optional()?;
    match s {
        Some(s) => NumberState::parse(&s),
        None => Err(Error::NotFound(format!(
            "document number {num} was never allocated"
        ))),
    }
}

impl Registry {
    /// Allocate one number in its own durable transaction.
    pub fn allocate_document_number(&mut self, office: &str) -> Result<DocumentNumber> {
        self.write(|tx| tx.allocate_document_number(office))
    }

    /// The state of an allocated number.
    pub fn document_number_state(&self, num: DocumentNumber) -> Result<NumberState> {
        number_state(&self.conn, num)
    }

    /// The blocks of an office.
    pub fn number_blocks(&self, office: &str) -> Result<Vec<NumberBlock>> {
        let mut st = self.conn.prepare(
            "SELECT id, office, series, first, last, next FROM number_blocks WHERE office = ?1 ORDER BY id",
        )?;
        let rows = st.query_map([office], |r| {
            Ok(NumberBlock {
                id: r.get(0)?,
                office: r.get(1)?,
                series: r.get(2)?,
                first: r.get(3)?,
                last: r.get(4)?,
                next: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::temp_registry;
    use std::collections::HashSet;
    use std::process::Command;

    #[test]
    fn document_number_a1234567_is_refused_naming_field_and_rule() {
        let e = "A1234567"
            .parse::<DocumentNumber>()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("document_number")
                && e.contains("2 Latin capital letters followed by 7 digits"),
            "{e}"
        );
        let ok: DocumentNumber = "AD1234567".parse().unwrap();
        assert_eq!(ok.to_string(), "AD1234567");
        assert!("AD0000000".parse::<DocumentNumber>().is_err());
    }

    #[test]
    fn a_number_handed_out_by_the_centre_is_taken_once_inside_a_block_and_moves_next_past_it() {
        let (_d, mut reg) = temp_registry();
        reg.write(|tx| tx.add_number_block("TAS01", "AA", 100, 199).map(|_| ()))
            .unwrap();
        let n: DocumentNumber = "AA0000150".parse().unwrap();
        reg.write(|tx| tx.take_document_number("TAS01", n)).unwrap();
        assert_eq!(
            reg.document_number_state(n).unwrap(),
            NumberState::Allocated
        );
        assert_eq!(reg.number_blocks("TAS01").unwrap()[0].next, 151);
        let e = reg
            .write(|tx| tx.take_document_number("TAS01", n))
            .unwrap_err();
        assert!(
            matches!(e, Error::Conflict(_)) && e.to_string().contains("AA0000150"),
            "{e}"
        );
        // A lower number later does not move `next` back.
        let low: DocumentNumber = "AA0000120".parse().unwrap();
        reg.write(|tx| tx.take_document_number("TAS01", low))
            .unwrap();
        assert_eq!(reg.number_blocks("TAS01").unwrap()[0].next, 151);
        // Outside every block of the office, or another office's block: not found.
        let outside: DocumentNumber = "AA0000200".parse().unwrap();
        let e = reg
            .write(|tx| tx.take_document_number("TAS01", outside))
            .unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e}");
        let e = reg
            .write(|tx| tx.take_document_number("SAM01", "AA0000160".parse().unwrap()))
            .unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e}");
    }

    #[test]
    fn numbers_come_in_order_move_forward_only_and_are_never_handed_out_twice() {
        let (_d, mut reg) = temp_registry();
        reg.write(|tx| tx.add_number_block("TAS01", "AA", 1, 3).map(|_| ()))
            .unwrap();
        let a = reg.allocate_document_number("TAS01").unwrap();
        let b = reg.allocate_document_number("TAS01").unwrap();
        assert_eq!(
            (a.to_string(), b.to_string()),
            ("AA0000001".into(), "AA0000002".into())
        );
        reg.write(|tx| tx.mark_document_number(a, NumberState::Released, Some("job failed")))
            .unwrap();
        // A released number is not handed out again.
        let c = reg.allocate_document_number("TAS01").unwrap();
        assert_eq!(c.to_string(), "AA0000003");
        let e = reg.allocate_document_number("TAS01").unwrap_err();
        assert!(matches!(e, Error::Conflict(_)), "{e}");
        // Released cannot become used.
        let e = reg
            .write(|tx| tx.mark_document_number(a, NumberState::Used, None))
            .unwrap_err();
        assert!(matches!(e, Error::Conflict(_)), "{e}");
        assert_eq!(reg.document_number_state(a).unwrap(), NumberState::Released);
        // Even raw SQL cannot move a settled number back, nor delete it.
        assert!(reg
            .connection()
            .execute(
                "UPDATE document_numbers SET state='allocated' WHERE number=1",
                []
            )
            .is_err());
        assert!(reg
            .connection()
            .execute("DELETE FROM document_numbers WHERE number=1", [])
            .is_err());
    }

    #[test]
    fn overlapping_blocks_are_refused() {
        let (_d, mut reg) = temp_registry();
        reg.write(|tx| tx.add_number_block("TAS01", "AA", 1, 999_999).map(|_| ()))
            .unwrap();
        let e = reg
            .write(|tx| {
                tx.add_number_block("SAM01", "AA", 500_000, 1_500_000)
                    .map(|_| ())
            })
            .unwrap_err();
        assert!(e.to_string().contains("overlaps"), "{e}");
        reg.write(|tx| {
            tx.add_number_block("SAM01", "AA", 1_000_000, 1_999_999)
                .map(|_| ())
        })
        .unwrap();
    }

    const CHILD_ENV: &str = "REGISTRY_TEST_ALLOC_CHILD_DB";
    const PER_PROCESS: usize = 300;

    /// Child half of `two_processes_allocating_at_once_never_get_the_same_number`: run by the
    /// parent test in a separate process (`--ignored`), never on its own.
    #[test]
    #[ignore = "child process of two_processes_allocating_at_once_never_get_the_same_number"]
    fn alloc_child_process() {
        let path = std::env::var(CHILD_ENV).expect("run by the parent test only");
        let mut reg = Registry::open(&path).expect("open shared registry");
        for _ in 0..PER_PROCESS {
            let n = reg.allocate_document_number("TAS01").expect("allocate");
            println!("ALLOC {n}");
        }
    }

    #[test]
    fn two_processes_allocating_at_once_never_get_the_same_number() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("shared.sqlite");
        let mut reg = Registry::open(&db).unwrap();
        reg.write(|tx| tx.add_number_block("TAS01", "AA", 1, 999_999).map(|_| ()))
            .unwrap();
        drop(reg);
        let exe = std::env::current_exe().unwrap();
        let spawn = || {
            Command::new(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    "numbers::tests::alloc_child_process",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, &db)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        let mut all = Vec::new();
        for child in [a, b] {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "child failed");
            let text = String::from_utf8(out.stdout).unwrap();
            let nums: Vec<String> = text
                .lines()
                // The harness may print "test ... " on the same line as the first one.
                .filter_map(|l| l.find("ALLOC ").map(|i| l[i + 6..].trim().to_string()))
                .collect();
            assert_eq!(nums.len(), PER_PROCESS, "each child allocated its share");
            all.extend(nums);
        }
        let unique: HashSet<&String> = all.iter().collect();
        assert_eq!(unique.len(), 2 * PER_PROCESS, "no number handed out twice");
        let reg = Registry::open(&db).unwrap();
        let rows: i64 = reg
            .connection()
            .query_row("SELECT count(*) FROM document_numbers", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows as usize, 2 * PER_PROCESS);
        assert_eq!(
            reg.number_blocks("TAS01").unwrap()[0].next as usize,
            2 * PER_PROCESS + 1
        );
    }

    #[test]
    fn after_a_restore_the_blocks_before_the_next_number_are_used_up_and_nothing_goes_back() {
        let (_d, mut reg) = temp_registry();
        reg.write(|tx| {
            tx.add_number_block("TAS01", "AA", 1, 10)?;
            tx.add_number_block("TAS01", "AA", 100, 199)?;
            tx.add_number_block("SAM01", "AA", 300, 399).map(|_| ())
        })
        .unwrap();
        assert_eq!(reg.allocate_document_number("TAS01").unwrap().number, 1);
        let n = |s: &str| -> DocumentNumber { s.parse().unwrap() };
        // In the second block: the first is used up, the second goes on from 150.
        let moved = reg
            .write(|tx| tx.advance_number_blocks("TAS01", n("AA0000150")))
            .unwrap();
        assert_eq!(
            moved
                .iter()
                .map(|b| (b.first, b.next_before, b.next_after))
                .collect::<Vec<_>>(),
            vec![(1, 2, 11), (100, 100, 150)]
        );
        assert_eq!(reg.allocate_document_number("TAS01").unwrap().number, 150);
        // Not back, not in another office's block, not outside every block.
        for (bad, rule) in [
            ("AA0000120", "below what the registry already handed out"),
            ("AA0000350", "in no number block of office TAS01"),
            ("AA0000050", "in no number block of office TAS01"),
        ] {
            let e = reg
                .write(|tx| tx.advance_number_blocks("TAS01", n(bad)))
                .unwrap_err()
                .to_string();
            assert!(e.contains("next_number") && e.contains(rule), "{bad}: {e}");
        }
        // The same number again changes nothing.
        let again = reg
            .write(|tx| tx.advance_number_blocks("TAS01", n("AA0000151")))
            .unwrap();
        assert!(again.is_empty(), "{again:?}");
    }
}
