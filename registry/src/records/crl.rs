//! CRLs a CA key signed: their numbers (RFC 5280 §5.2.3, rising, never reused) and the latest one.

use rusqlite::{params, OptionalExtension};

use crate::{validate, Error, Registry, Result, Tx};

impl Tx<'_> {
    /// The next CRL number of a CA key: one above the last recorded (1 for the first CRL).
    /// Call it in the transaction that then records the CRL with [`Tx::record_crl`].
    pub fn next_crl_number(&self, key_id: i64) -> Result<u64> {
        let last: Option<i64> = self.conn().query_row(
            "SELECT max(crl_number) FROM crls WHERE key_id = ?1",
            [key_id],
            |r| r.get(0),
        )?;
        Ok(last.map_or(1, |n| n as u64 + 1))
    }

    /// Record a CRL a CA key signed. Refuses a CRL number that is not above the last one.
    pub fn record_crl(
        &self,
        key_id: i64,
        crl_number: u64,
        this_update: &str,
        next_update: &str,
        der: &[u8],
    ) -> Result<()> {
        validate::date_time("this_update", this_update)?;
        validate::date_time("next_update", next_update)?;
        let next = self.next_crl_number(key_id)?;
        if crl_number < next {
            return Err(Error::Conflict(format!(
                "CRL number {crl_number} of CA key {key_id} is not above the last one ({})",
                next - 1
            )));
        }
        self.conn().execute(
            "INSERT INTO crls (key_id, crl_number, this_update, next_update, der)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![key_id, crl_number as i64, this_update, next_update, der],
        )?;
        Ok(())
    }
}

impl Registry {
    /// The latest CRL recorded for a CA key: (CRL number, DER).
    pub fn latest_crl(&self, key_id: i64) -> Result<Option<(u64, Vec<u8>)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT crl_number, der FROM crls WHERE key_id = ?1 ORDER BY crl_number DESC LIMIT 1",
                [key_id],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()?)
    }
}
