//! The national register of holders (PINFL unique) and their registration addresses (never
//! overwritten: a new row when one differs from the latest). Issuance takes a transaction
//! advisory lock keyed by the PINFL first, so every centre instance serialises the checks of
//! one holder (one active card, one open issuance).

use crate::db::Prepared;
use deadpool_postgres::{GenericClient, Transaction};
use registry::{AddressKind, NewAddress, NewHolder};
use sha2::{Digest, Sha256};
use tokio_postgres::Row;

use crate::error::{CentralError, Result};

/// Who recorded something: the station and its operator.
#[derive(Debug, Clone)]
pub struct RecordedBy<'a> {
    pub station: &'a str,
    pub operator: &'a str,
}

/// Serialise every transaction about the holder `pinfl` (across centre instances) until the
/// end of `tx`.
pub async fn lock(tx: &Transaction<'_>, pinfl: &str) -> Result<()> {
    advisory_lock(tx, "holder", pinfl).await
}

/// A transaction-scoped advisory lock on `key` of `domain` (its 64-bit key: the first eight
/// bytes of a SHA-256; a collision only serialises two unrelated transactions).
pub async fn advisory_lock(tx: &Transaction<'_>, domain: &str, key: &str) -> Result<()> {
    let d = Sha256::new()
        .chain_update(b"idcentral ")
        .chain_update(domain.as_bytes())
        .chain_update([0])
        .chain_update(key.as_bytes())
        .finalize();
    let mut key = [0u8; 8];
    key.copy_from_slice(&d[..8]);
    tx.prepared_execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&i64::from_be_bytes(key)],
    )
    .await?;
    Ok(())
}

/// A holder's columns as [`holder_of`] reads them (a macro, so that the statements are literals
/// that [`Prepared`] can keep).
macro_rules! holder_cols {
    () => {
        "id, pinfl, surname, given_names, patronymic, surname_cyrillic, given_names_cyrillic, \
         patronymic_cyrillic, sex, date_of_birth, place_of_birth, citizenship, photo_sha256"
    };
}

fn holder_of(r: &Row) -> (i64, NewHolder) {
    (
        r.get(0),
        NewHolder {
            pinfl: r.get(1),
            surname: r.get(2),
            given_names: r.get(3),
            patronymic: r.get(4),
            surname_cyrillic: r.get(5),
            given_names_cyrillic: r.get(6),
            patronymic_cyrillic: r.get(7),
            sex: r.get(8),
            date_of_birth: r.get(9),
            place_of_birth: r.get(10),
            citizenship: r.get(11),
            photo_sha256: r.get(12),
        },
    )
}

/// The registered holder `pinfl` with its id.
pub async fn find(c: &impl GenericClient, pinfl: &str) -> Result<Option<(i64, NewHolder)>> {
    const SQL: &str = concat!("SELECT ", holder_cols!(), " FROM holders WHERE pinfl = $1");
    Ok(c.prepared_opt(SQL, &[&pinfl]).await?.map(|r| holder_of(&r)))
}

/// The holder with id `id`.
pub async fn get(c: &impl GenericClient, id: i64) -> Result<NewHolder> {
    const SQL: &str = concat!("SELECT ", holder_cols!(), " FROM holders WHERE id = $1");
    let row = c.prepared_one(SQL, &[&id]).await?;
    Ok(holder_of(&row).1)
}

/// The names of the fields in which `new` differs from `old`.
pub fn differing_fields(old: &NewHolder, new: &NewHolder) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return vec!["holder".into()];
    };
    a.iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect()
}

/// Record a new holder; its id.
pub async fn insert(tx: &Transaction<'_>, h: &NewHolder, by: &RecordedBy<'_>) -> Result<i64> {
    let row = tx
        .prepared_one(
            "INSERT INTO holders (pinfl, surname, given_names, patronymic, surname_cyrillic,
                given_names_cyrillic, patronymic_cyrillic, sex, date_of_birth, place_of_birth,
                citizenship, photo_sha256, created_station, created_operator)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
            &[
                &h.pinfl,
                &h.surname,
                &h.given_names,
                &h.patronymic,
                &h.surname_cyrillic,
                &h.given_names_cyrillic,
                &h.patronymic_cyrillic,
                &h.sex,
                &h.date_of_birth,
                &h.place_of_birth,
                &h.citizenship,
                &h.photo_sha256,
                &by.station,
                &by.operator,
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// Overwrite a registered holder's data (the clerk confirmed the change).
pub async fn update(tx: &Transaction<'_>, id: i64, h: &NewHolder) -> Result<()> {
    tx.prepared_execute(
        "UPDATE holders SET surname = $2, given_names = $3, patronymic = $4, surname_cyrillic = $5,
            given_names_cyrillic = $6, patronymic_cyrillic = $7, sex = $8, date_of_birth = $9,
            place_of_birth = $10, citizenship = $11, photo_sha256 = $12, updated_at = now()
         WHERE id = $1",
        &[
            &id,
            &h.surname,
            &h.given_names,
            &h.patronymic,
            &h.surname_cyrillic,
            &h.given_names_cyrillic,
            &h.patronymic_cyrillic,
            &h.sex,
            &h.date_of_birth,
            &h.place_of_birth,
            &h.citizenship,
            &h.photo_sha256,
        ],
    )
    .await?;
    Ok(())
}

/// One address as recorded, with when and by whom.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecordedAddress {
    #[serde(flatten)]
    pub address: NewAddress,
    pub recorded_at: String,
    pub station: String,
    pub operator: String,
}

/// The holder's addresses, oldest first.
pub async fn addresses(c: &impl GenericClient, holder: i64) -> Result<Vec<RecordedAddress>> {
    let rows = c
        .prepared_query(
            "SELECT kind, region, district, street, house, apartment, registered_on, registered_until,
                    to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), station, operator
             FROM holder_addresses WHERE holder_id = $1 ORDER BY id",
            &[&holder],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let kind = match r.get::<_, &str>(0) {
                "permanent" => AddressKind::Permanent,
                "temporary" => AddressKind::Temporary,
                k => return Err(CentralError::Database(format!("address kind {k:?}"))),
            };
            Ok(RecordedAddress {
                address: NewAddress {
                    kind,
                    region: r.get(1),
                    district: r.get(2),
                    street: r.get(3),
                    house: r.get(4),
                    apartment: r.get(5),
                    registered_on: r.get(6),
                    registered_until: r.get(7),
                },
                recorded_at: r.get(8),
                station: r.get(9),
                operator: r.get(10),
            })
        })
        .collect()
}

/// Record `a` unless it is the holder's latest address; whether it was recorded.
pub async fn record_address(
    tx: &Transaction<'_>,
    holder: i64,
    a: &NewAddress,
    by: &RecordedBy<'_>,
) -> Result<bool> {
    let latest = addresses(tx, holder).await?.pop();
    if latest.is_some_and(|l| l.address == *a) {
        return Ok(false);
    }
    tx.prepared_execute(
        "INSERT INTO holder_addresses (holder_id, kind, region, district, street, house, apartment,
            registered_on, registered_until, station, operator)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &holder,
            &a.kind.as_str(),
            &a.region,
            &a.district,
            &a.street,
            &a.house,
            &a.apartment,
            &a.registered_on,
            &a.registered_until,
            &by.station,
            &by.operator,
        ],
    )
    .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_that_differ_are_named() {
        let a = NewHolder {
            pinfl: "31234567890123".into(),
            surname: "Karimova".into(),
            given_names: "Dilnoza".into(),
            sex: "F".into(),
            ..Default::default()
        };
        let b = NewHolder {
            surname: "Karimov".into(),
            sex: "M".into(),
            ..a.clone()
        };
        assert_eq!(differing_fields(&a, &b), ["sex", "surname"]);
        assert!(differing_fields(&a, &a).is_empty());
    }
}
