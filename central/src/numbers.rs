//! Document numbers: blocks of one series assigned to stations (cut one after another under a
//! lock, so they never overlap), and the numbers handed out of them. A released number is never handed
//! out again; when a station's blocks run out it gets the next block of the series.

use crate::db::Prepared;
use centre_api::NumberBlock;
use deadpool_postgres::Transaction;

use crate::config::IssuanceSection;
use crate::error::{CentralError, Result};

/// The largest number a document number's seven digits hold.
pub const MAX_NUMBER: i32 = 9_999_999;

/// `AA0000042`: the series and the number in seven digits.
pub fn document_number(series: &str, number: i32) -> String {
    format!("{series}{number:07}")
}

/// A document number's series and number (`AA0000042`).
pub fn parse_document(d: &str) -> Result<(String, i32)> {
    let ok = d.len() == 9
        && d.as_bytes()[..2].iter().all(u8::is_ascii_uppercase)
        && d.as_bytes()[2..].iter().all(u8::is_ascii_digit);
    let number = d.get(2..).and_then(|n| n.parse::<i32>().ok());
    match number {
        Some(n) if ok => Ok((d[..2].to_owned(), n)),
        _ => Err(CentralError::invalid(
            "document",
            "must be a series of two capital letters and seven digits (e.g. AA0000042)",
        )),
    }
}

/// Assign `station` the next block of the configured series (its first block at enrolment, a
/// new one when the others are used up). Blocks of a series are cut under one advisory lock, so
/// two centre instances never cut overlapping ones.
pub async fn assign_block(
    tx: &Transaction<'_>,
    station: &str,
    cfg: &IssuanceSection,
) -> Result<NumberBlock> {
    crate::holders::advisory_lock(tx, "number-blocks", &cfg.series).await?;
    let last: Option<i32> = tx
        .prepared_one(
            "SELECT max(last) FROM number_blocks WHERE series = $1",
            &[&cfg.series],
        )
        .await?
        .get(0);
    let first = last.unwrap_or(0) + 1;
    let size = i32::try_from(cfg.block_size).unwrap_or(i32::MAX);
    if first > MAX_NUMBER {
        return Err(CentralError::refused(
            crate::error::Refusal::Conflict,
            centre_api::rules::NO_NUMBERS_LEFT,
            format!(
                "series {}: every number up to {MAX_NUMBER} is assigned; configure another [issuance] series",
                cfg.series
            ),
        ));
    }
    let last = first.saturating_add(size - 1).min(MAX_NUMBER);
    tx.prepared_execute(
        "INSERT INTO number_blocks (station, series, first, last, next) VALUES ($1, $2, $3, $4, $3)",
        &[&station, &cfg.series, &first, &last],
    )
    .await?;
    Ok(NumberBlock {
        series: cfg.series.clone(),
        first: first as u32,
        last: last as u32,
        next: first as u32,
    })
}

/// The station's blocks, oldest first.
pub async fn blocks(client: &tokio_postgres::Client, station: &str) -> Result<Vec<NumberBlock>> {
    let rows = client
        .query(
            "SELECT series, first, last, next FROM number_blocks WHERE station = $1 ORDER BY id",
            &[&station],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| NumberBlock {
            series: r.get(0),
            first: r.get::<_, i32>(1) as u32,
            last: r.get::<_, i32>(2) as u32,
            next: r.get::<_, i32>(3) as u32,
        })
        .collect())
}

/// Hand out a number to `job`: the next one of the station's oldest block with numbers left,
/// else of a new block. Returns (series, number). A released number is not handed out again
/// (the station registry's rule too: every number names at most one job, and a station's
/// mirror of its numbers never sees one come back).
pub async fn allocate(
    tx: &Transaction<'_>,
    station: &str,
    job: &str,
    cfg: &IssuanceSection,
) -> Result<(String, i32)> {
    let (block, series, number) = match next_of_blocks(tx, station).await? {
        Some(n) => n,
        None => {
            assign_block(tx, station, cfg).await?;
            next_of_blocks(tx, station).await?.ok_or_else(|| {
                CentralError::Other(format!("station {station}: a new block has no number"))
            })?
        }
    };
    tx.prepared_execute(
        "INSERT INTO document_numbers (series, number, block_id, state, job) VALUES ($1, $2, $3, 'allocated', $4)",
        &[&series, &number, &block, &job],
    )
    .await?;
    Ok((series, number))
}

/// Take the next number of the station's oldest block that has one (the block row locked).
async fn next_of_blocks(tx: &Transaction<'_>, station: &str) -> Result<Option<(i64, String, i32)>> {
    let row = tx
        .prepared_opt(
            "UPDATE number_blocks SET next = next + 1
             WHERE id = (SELECT id FROM number_blocks WHERE station = $1 AND next <= last
                         ORDER BY id LIMIT 1 FOR UPDATE)
             RETURNING id, series, next - 1",
            &[&station],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1), r.get(2))))
}

/// Mark a job's number `used`, `spoiled` or `released`.
pub async fn set_state(tx: &Transaction<'_>, series: &str, number: i32, state: &str) -> Result<()> {
    tx.prepared_execute(
        "UPDATE document_numbers SET state = $3, changed_at = now() WHERE series = $1 AND number = $2",
        &[&series, &number, &state],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn document_numbers_parse_and_bad_ones_name_the_field() {
        assert_eq!(
            super::parse_document("AA0000042").unwrap(),
            ("AA".into(), 42)
        );
        for bad in ["AA000004", "aa0000042", "AA00000X2", "AAA000042"] {
            let e = super::parse_document(bad).unwrap_err().to_string();
            assert!(e.starts_with("document: "), "{bad}: {e}");
        }
    }

    #[test]
    fn a_document_number_is_the_series_and_seven_digits() {
        assert_eq!(super::document_number("AA", 42), "AA0000042");
        assert_eq!(super::document_number("AB", 9_999_999), "AB9999999");
    }
}
