//! The message the e-government services receive for a completed issuance (topic
//! `document.issued`): what the decree asks — the holder's PINFL and names, the document's series
//! and number, place (office and station) and date of issue, the registration address in force
//! when the document was issued, and the serials of the holder's certificates. Read from the
//! registry when the message is first sent; the signed text is then kept with the outbox row, so
//! every retry sends the same bytes.

use crate::db::Prepared;
use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};

use crate::error::{CentralError, Result};

/// A completed issuance (`issuance::finish::complete`).
pub const DOCUMENT_ISSUED: &str = "document.issued";
/// A registration address set or ended (`services::address`).
pub const ADDRESS_CHANGED: &str = "address.changed";

/// The message of an address change: the holder and the change as recorded (`change`: `set`
/// with the `address`, or `end` with `ended_on`; the registry's `address_id`; the office and
/// station that recorded it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressMessage {
    pub message_id: i64,
    pub topic: String,
    pub centre: String,
    pub created_at: String,
    pub holder: Holder,
    pub change: serde_json::Value,
}

/// The JSON payload of outbox row `id`, whatever its topic.
pub async fn payload(
    c: &impl GenericClient,
    centre: &str,
    id: i64,
    topic: &str,
    job: &str,
) -> Result<Vec<u8>> {
    let bytes = if topic == ADDRESS_CHANGED {
        serde_json::to_vec(&build_address(c, centre, id).await?)
    } else {
        serde_json::to_vec(&build(c, centre, id, topic, job).await?)
    };
    bytes.map_err(|e| CentralError::Other(e.to_string()))
}

async fn build_address(c: &impl GenericClient, centre: &str, id: i64) -> Result<AddressMessage> {
    let utc = "YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"";
    let r = c
        .query_one(
            &format!(
                "SELECT o.payload, to_char(o.created_at AT TIME ZONE 'UTC', '{utc}'), h.id
                 FROM outbox o JOIN holders h ON h.pinfl = o.payload->>'pinfl' WHERE o.id = $1"
            ),
            &[&id],
        )
        .await?;
    let h = crate::holders::get(c, r.get(2)).await?;
    Ok(AddressMessage {
        message_id: id,
        topic: ADDRESS_CHANGED.to_owned(),
        centre: centre.to_owned(),
        created_at: r.get(1),
        holder: Holder {
            pinfl: h.pinfl,
            surname: h.surname,
            given_names: h.given_names,
            patronymic: h.patronymic,
            surname_cyrillic: h.surname_cyrillic,
            given_names_cyrillic: h.given_names_cyrillic,
            patronymic_cyrillic: h.patronymic_cyrillic,
            sex: h.sex,
            date_of_birth: h.date_of_birth,
            place_of_birth: h.place_of_birth,
            citizenship: h.citizenship,
        },
        change: r.get(0),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The outbox id: also the idempotency key (the `Idempotency-Key` header).
    pub message_id: i64,
    pub topic: String,
    /// The centre's name (`[centre] name`).
    pub centre: String,
    /// When the issuance completed (RFC 3339, UTC).
    pub created_at: String,
    pub holder: Holder,
    pub document: Document,
    pub registration_address: Address,
    pub certificates: Vec<Certificate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pinfl: String,
    pub surname: String,
    pub given_names: String,
    pub patronymic: Option<String>,
    pub surname_cyrillic: Option<String>,
    pub given_names_cyrillic: Option<String>,
    pub patronymic_cyrillic: Option<String>,
    pub sex: String,
    pub date_of_birth: String,
    pub place_of_birth: String,
    pub citizenship: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// Series and number, e.g. `AA0000001`.
    pub number: String,
    pub series: String,
    pub place_of_issue: PlaceOfIssue,
    /// `YYYY-MM-DD`.
    pub date_of_issue: String,
    pub date_of_expiry: String,
    pub card_serial: String,
}

/// Where the document was issued: the office (its code) and the station.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceOfIssue {
    pub office: String,
    pub station: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// `permanent` or `temporary`.
    pub kind: String,
    pub region: String,
    pub district: String,
    pub street: String,
    pub house: String,
    pub apartment: Option<String>,
    pub registered_on: String,
    pub registered_until: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// Upper-case hex, as `idcentral show` prints it.
    pub serial: String,
    /// The card slot, e.g. `9A`.
    pub slot: String,
    pub profile: String,
}

/// The message of outbox row `id` (topic `document.issued`, the issuance of `job`).
pub async fn build(
    c: &impl GenericClient,
    centre: &str,
    id: i64,
    topic: &str,
    job: &str,
) -> Result<Message> {
    if topic != DOCUMENT_ISSUED {
        return Err(CentralError::Other(format!(
            "outbox message {id}: topic {topic:?} has no e-government message (known: {DOCUMENT_ISSUED})"
        )));
    }
    let missing = |what: &str| CentralError::Database(format!("outbox message {id}: {what}"));
    let utc = "YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"";
    let d = c
        .query_opt(
            &format!(
                "SELECT d.series, d.number, d.office, d.station,
                        to_char(d.date_of_issue, 'YYYY-MM-DD'), to_char(d.date_of_expiry, 'YYYY-MM-DD'),
                        d.card_serial, d.holder_id, to_char(o.created_at AT TIME ZONE 'UTC', '{utc}')
                 FROM outbox o JOIN documents d ON d.job = o.job WHERE o.id = $1"
            ),
            &[&id],
        )
        .await?
        .ok_or_else(|| missing(&format!("no document for job {job}")))?;
    let series: String = d.get(0);
    let number: i32 = d.get(1);
    let holder_id: i64 = d.get(7);
    let h = crate::holders::get(c, holder_id).await?;
    // The registration in force when the issuance completed: of those recorded by then, one
    // not ended nor expired by then first, a permanent one before a temporary one, the newest
    // first (a holder whose every registration had ended gets the newest).
    let a = c
        .prepared_opt(
            "SELECT a.kind, a.region, a.district, a.street, a.house, a.apartment, a.registered_on,
                    a.registered_until
             FROM holder_addresses a, outbox o
             WHERE o.id = $1 AND a.holder_id = $2 AND a.recorded_at <= o.created_at
             ORDER BY (NOT EXISTS (SELECT 1 FROM holder_address_ends e
                                   WHERE e.address_id = a.id AND e.recorded_at <= o.created_at)
                       AND (a.registered_until IS NULL
                            OR a.registered_until >= to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'))) DESC,
                      (a.kind = 'permanent') DESC, a.id DESC
             LIMIT 1",
            &[&id, &holder_id],
        )
        .await?
        .ok_or_else(|| missing("the holder has no registration address"))?;
    let certificates = c
        .prepared_query(
            "SELECT serial, slot, profile FROM certificates
             WHERE job = $1 AND service_job IS NULL ORDER BY slot",
            &[&job],
        )
        .await?
        .iter()
        .map(|r| Certificate {
            serial: hex::encode_upper(r.get::<_, &[u8]>(0)),
            slot: r.get(1),
            profile: r.get(2),
        })
        .collect();
    Ok(Message {
        message_id: id,
        topic: topic.to_owned(),
        centre: centre.to_owned(),
        created_at: d.get(8),
        holder: Holder {
            pinfl: h.pinfl,
            surname: h.surname,
            given_names: h.given_names,
            patronymic: h.patronymic,
            surname_cyrillic: h.surname_cyrillic,
            given_names_cyrillic: h.given_names_cyrillic,
            patronymic_cyrillic: h.patronymic_cyrillic,
            sex: h.sex,
            date_of_birth: h.date_of_birth,
            place_of_birth: h.place_of_birth,
            citizenship: h.citizenship,
        },
        document: Document {
            number: crate::numbers::document_number(&series, number),
            series,
            place_of_issue: PlaceOfIssue {
                office: d.get(2),
                station: d.get(3),
            },
            date_of_issue: d.get(4),
            date_of_expiry: d.get(5),
            card_serial: d.get(6),
        },
        registration_address: Address {
            kind: a.get(0),
            region: a.get(1),
            district: a.get(2),
            street: a.get(3),
            house: a.get(4),
            apartment: a.get(5),
            registered_on: a.get(6),
            registered_until: a.get(7),
        },
        certificates,
    })
}
