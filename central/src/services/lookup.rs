//! `POST /v1/cards/lookup`: the card in a clerk's reader as the national registry has it, so
//! that any office can serve a holder whose card another office issued (docs/centre.md "Card
//! services"). The card is found by its chip serial; every certificate the station read from it
//! must be one the centre issued for that document; an unknown card and a certificate that is
//! not the document's get the same `document-not-found`, which names no document. The station
//! then opens the chip with the MRZ of the answer before it shows anything
//! (`station::services::elsewhere`). Nothing changes but the audit log: the read of the
//! holder's data is `card.looked-up`, naming the station, its office and the operator.

use centre_api::{
    rules, AddressAtCentre, CardAtCentre, CardLookupRequest, CertificateAtCentre,
    DocumentLookupRequest, HolderAtCentre, ReplacementDue,
};
use deadpool_postgres::GenericClient;

use super::audit;
use crate::db::Prepared;
use crate::enrol::WhoAmI;
use crate::error::{CentralError, Refusal, Result};
use crate::issuance::{check_card_serial, check_operator};
use crate::pki::Centre;

/// The longest certificate serial (hex) a request may name: 20 octets (RFC 5280 §4.1.2.2).
const MAX_HEX: usize = 40;

fn check_hex(field: &'static str, v: &str) -> Result<()> {
    if v.is_empty() || v.len() > MAX_HEX || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CentralError::invalid(
            field,
            format!(
                "{:?} must be 1 to {MAX_HEX} hexadecimal digits",
                registry::audit::bounded_name(v)
            ),
        ));
    }
    Ok(())
}

fn check(req: &CardLookupRequest) -> Result<()> {
    check_operator(&req.operator)?;
    check_card_serial(&req.card_serial)?;
    check_certificates(&req.certificates)
}

/// The serials of the certificates a station read from a card: 1 to 8, each hex.
pub(super) fn check_certificates(certificates: &[String]) -> Result<()> {
    if certificates.is_empty() || certificates.len() > 8 {
        return Err(CentralError::invalid(
            "certificates",
            "name the 1 to 8 certificates read from the card",
        ));
    }
    for s in certificates {
        check_hex("certificates", s)?;
    }
    Ok(())
}

/// The card `req` names, audited.
pub async fn card(centre: &Centre, who: &WhoAmI, req: &CardLookupRequest) -> Result<CardAtCentre> {
    check(req)?;
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    let found = tx
        .prepared_opt(
            "SELECT d.id, d.series, d.number, d.state, d.office, d.date_of_issue::text,
                    d.date_of_expiry::text, d.job, d.holder_id, d.suspended_at,
                    CASE WHEN d.replaced_by IS NULL AND d.state IN ('active', 'suspended')
                         THEN d.replacement_due END,
                    to_char(d.replacement_due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    (SELECT j.card_key FROM jobs j WHERE j.id = d.job)
             FROM documents d WHERE upper(d.card_serial) = upper($1)
             ORDER BY d.id DESC LIMIT 1",
            &[&req.card_serial],
        )
        .await?;
    // An unknown card and a known card with a certificate that is not its document's get the
    // same answer, which names no document: a station learns nothing of a card it cannot show
    // the certificates of (the refusal's audit event keeps the request).
    let not_found = || {
        CentralError::refused(
            Refusal::NotFound,
            rules::DOCUMENT_NOT_FOUND,
            format!(
                "the national registry has no document on card {} with the certificates read \
                 from it",
                req.card_serial
            ),
        )
    };
    let Some(d) = found else {
        return Err(not_found());
    };
    let answer = answer(&tx, centre, &d, true).await?;
    let theirs = |s: &String| {
        answer
            .certificates
            .iter()
            .any(|c| c.serial.eq_ignore_ascii_case(s))
    };
    if !req.certificates.iter().all(theirs) {
        return Err(not_found());
    }
    audit(
        &tx,
        who,
        &req.operator,
        "card.looked-up",
        &format!("document:{}", answer.document),
        serde_json::json!({ "card_serial": req.card_serial, "holder": answer.holder.pinfl,
            "issued_by_office": answer.office }),
    )
    .await?;
    tx.commit().await?;
    Ok(answer)
}

/// `POST /v1/documents/lookup`: document `req.document` as the national registry has it, for a
/// clerk who looks a number up (a holder declaring a card lost, say) and must see whose it is.
/// Audited `document.looked-up`.
pub async fn document(
    centre: &Centre,
    who: &WhoAmI,
    req: &DocumentLookupRequest,
) -> Result<CardAtCentre> {
    check_operator(&req.operator)?;
    let (series, number) = crate::numbers::parse_document(&req.document)?;
    let mut client = centre.pool.get().await?;
    let counted = crate::numbers::document_number(&series, number);
    count_within_limit(&mut client, centre, who, &req.operator, &counted).await?;
    let tx = client.transaction().await?;
    let d = tx
        .prepared_opt(
            "SELECT d.id, d.series, d.number, d.state, d.office, d.date_of_issue::text,
                    d.date_of_expiry::text, d.job, d.holder_id, d.suspended_at,
                    CASE WHEN d.replaced_by IS NULL AND d.state IN ('active', 'suspended')
                         THEN d.replacement_due END,
                    to_char(d.replacement_due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    (SELECT j.card_key FROM jobs j WHERE j.id = d.job)
             FROM documents d WHERE d.series = $1 AND d.number = $2",
            &[&series, &number],
        )
        .await?
        .ok_or_else(|| {
            CentralError::refused(
                Refusal::NotFound,
                rules::DOCUMENT_NOT_FOUND,
                format!(
                    "the national registry has no issued document {}",
                    req.document
                ),
            )
        })?;
    // A number is no proof of having the card: whose it is and its state, not the holder's
    // addresses or the certificates.
    let answer = answer(&tx, centre, &d, false).await?;
    audit(
        &tx,
        who,
        &req.operator,
        "document.looked-up",
        &format!("document:{}", answer.document),
        serde_json::json!({ "holder": answer.holder.pinfl, "issued_by_office": answer.office }),
    )
    .await?;
    tx.commit().await?;
    Ok(answer)
}

/// Count station `who`'s number look-up, or refuse it when the station has made `[issuance]
/// document_lookups_per_hour` of them in the last hour (`lookup-limit`, HTTP 429): a number is
/// no proof of having the card, so a station (or a stolen station key) must not be able to walk
/// the national registry. Every distinct number is counted (migration V20's `document_lookups`,
/// V25's `document`), one the registry does not have too, in a transaction of its own committed
/// before the look-up, so the count holds across every `idcentral` on the database; a station's
/// attempts are counted one at a time under a transaction-scoped advisory lock. A number the
/// station looked up within the hour is not counted again and is answered even when the hour is
/// full: it teaches nothing new (a retry after a lost answer, say). Look-ups by card
/// (`/v1/cards/lookup`) prove the card is in the reader and are not counted. Within the
/// station's hour each operator may look up at most `document_lookups_per_operator_per_hour`
/// new numbers (migration V26), so one clerk does not spend the office's hour alone.
async fn count_within_limit(
    client: &mut deadpool_postgres::Object,
    centre: &Centre,
    who: &WhoAmI,
    operator: &str,
    document: &str,
) -> Result<()> {
    let limit = i64::from(centre.issuance.document_lookups_per_hour);
    let per_operator = i64::from(centre.issuance.lookups_per_operator());
    let tx = client.transaction().await?;
    tx.prepared_execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('document-lookup:' || $1, 0))",
        &[&who.station],
    )
    .await?;
    tx.prepared_execute(
        "DELETE FROM document_lookups WHERE station = $1 AND at < now() - interval '1 hour'",
        &[&who.station],
    )
    .await?;
    let seen = tx
        .prepared_opt(
            "SELECT 1 FROM document_lookups WHERE station = $1 AND document = $2 LIMIT 1",
            &[&who.station, &document],
        )
        .await?;
    if seen.is_some() {
        tx.commit().await?;
        return Ok(());
    }
    // The station's hour, then the operator's own attempts within it.
    let station_text = format!("station {}", who.station);
    let operator_text = format!("operator {operator} of station {}", who.station);
    for (whose, by, most, key) in [
        (None, &station_text, limit, "document_lookups_per_hour"),
        (
            Some(operator),
            &operator_text,
            per_operator,
            "document_lookups_per_operator_per_hour",
        ),
    ] {
        if let Some(again) = hour_full(&tx, &who.station, whose, most).await? {
            return Err(CentralError::refused(
                Refusal::TooMany,
                rules::LOOKUP_LIMIT,
                format!(
                    "{by} has looked up {most} document numbers in the last hour, the most \
                     [issuance] {key} allows; look a number up again after {again}, or look the \
                     card up with the card in the reader"
                ),
            ));
        }
    }
    tx.prepared_execute(
        "INSERT INTO document_lookups (station, operator, document) VALUES ($1, $2, $3)",
        &[&who.station, &operator, &document],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// When `station`'s (or, with `operator`, that operator's) hour of look-ups is full — its
/// `most`-th latest attempt within the hour exists — the time (RFC 3339) it has room again.
async fn hour_full(
    tx: &deadpool_postgres::Transaction<'_>,
    station: &str,
    operator: Option<&str>,
    most: i64,
) -> Result<Option<String>> {
    Ok(tx
        .prepared_opt(
            "SELECT to_char((at + interval '1 hour') AT TIME ZONE 'UTC',
                            'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             FROM document_lookups WHERE station = $1 AND ($2::text IS NULL OR operator = $2)
             ORDER BY at DESC OFFSET $3 LIMIT 1",
            &[&station, &operator, &(most - 1)],
        )
        .await?
        .map(|r| r.get(0)))
}

/// The national registry's record of the document in row `d` (the columns both look-ups
/// select); with its certificates and the holder's addresses when `full`.
async fn answer(
    c: &impl GenericClient,
    centre: &Centre,
    d: &tokio_postgres::Row,
    full: bool,
) -> Result<CardAtCentre> {
    let job: String = d.get(7);
    let holder_id: i64 = d.get(8);
    let state: String = d.get(3);
    let suspended_at: Option<std::time::SystemTime> = d.get(9);
    let (suspended_at, release_until) = match (state.as_str(), suspended_at) {
        ("suspended", Some(at)) => (
            Some(super::hold::rfc3339(at)),
            Some(super::hold::rfc3339(at + super::hold::limit(centre))),
        ),
        _ => (None, None),
    };
    Ok(CardAtCentre {
        document: crate::numbers::document_number(d.get(1), d.get(2)),
        state,
        office: d.get(4),
        date_of_issue: d.get(5),
        date_of_expiry: d.get(6),
        holder: holder(c, holder_id).await?,
        certificates: if full {
            certificates(c, &job).await?
        } else {
            Vec::new()
        },
        addresses: if full {
            addresses(c, holder_id).await?
        } else {
            Vec::new()
        },
        suspended_at,
        release_until,
        replacement_due: replacement_due(d),
        card_key: d.get(12),
    })
}

/// The replacement flag of the document in row `d` (columns 10 and 11: set only while the card
/// is in use and not replaced, as `replacements::flagged` lists them).
fn replacement_due(d: &tokio_postgres::Row) -> Option<ReplacementDue> {
    let reason: Option<String> = d.get(10);
    let flagged_at: Option<String> = d.get(11);
    Some(ReplacementDue {
        reason: reason?,
        flagged_at: flagged_at.unwrap_or_default(),
    })
}

/// Every certificate of issuance job `job` (renewals hang on it too), newest first.
async fn certificates(c: &impl GenericClient, job: &str) -> Result<Vec<CertificateAtCentre>> {
    let rows = c
        .prepared_query(
            "SELECT serial, slot, state, revocation_reason, cert_der FROM certificates
             WHERE job = $1 ORDER BY issued_at DESC, slot",
            &[&job],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let info = ca::CertInfo::parse(r.get::<_, &[u8]>(4))?;
            Ok(CertificateAtCentre {
                slot: r.get(1),
                serial: hex::encode_upper(r.get::<_, &[u8]>(0)),
                state: r.get(2),
                reason: r.get(3),
                not_after: info.not_after,
            })
        })
        .collect()
}

async fn holder(c: &impl GenericClient, id: i64) -> Result<HolderAtCentre> {
    let r = c
        .prepared_one(
            "SELECT pinfl, surname, given_names, patronymic, surname_cyrillic, given_names_cyrillic,
                    patronymic_cyrillic, date_of_birth
             FROM holders WHERE id = $1",
            &[&id],
        )
        .await?;
    Ok(HolderAtCentre {
        pinfl: r.get(0),
        surname: r.get(1),
        given_names: r.get(2),
        patronymic: r.get(3),
        surname_cyrillic: r.get(4),
        given_names_cyrillic: r.get(5),
        patronymic_cyrillic: r.get(6),
        date_of_birth: r.get(7),
    })
}

async fn addresses(c: &impl GenericClient, holder: i64) -> Result<Vec<AddressAtCentre>> {
    let rows = c
        .prepared_query(
            "SELECT a.id, a.kind, a.region, a.district, a.street, a.house, a.apartment,
                    a.registered_on, a.registered_until, e.ended_on,
                    to_char(a.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    a.station, a.operator
             FROM holder_addresses a LEFT JOIN holder_address_ends e ON e.address_id = a.id
             WHERE a.holder_id = $1 ORDER BY a.id",
            &[&holder],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let kind = match r.get::<_, &str>(1) {
                "permanent" => registry::AddressKind::Permanent,
                "temporary" => registry::AddressKind::Temporary,
                k => return Err(CentralError::Database(format!("address kind {k:?}"))),
            };
            Ok(AddressAtCentre {
                address_id: r.get(0),
                address: registry::NewAddress {
                    kind,
                    region: r.get(2),
                    district: r.get(3),
                    street: r.get(4),
                    house: r.get(5),
                    apartment: r.get(6),
                    registered_on: r.get(7),
                    registered_until: r.get(8),
                },
                ended_on: r.get(9),
                recorded_at: r.get(10),
                recorded_by: format!("{}/{}", r.get::<_, &str>(11), r.get::<_, &str>(12)),
            })
        })
        .collect()
}
