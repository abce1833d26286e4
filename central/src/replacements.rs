//! Cards to replace because their chip data can no longer be authenticated: the Document
//! Signer that signed their EF.SOD was revoked with its station (`idcentral station disable
//! --reason`, docs/centre.md "Cutting a station off"), or the CSCA key that certified that
//! Document Signer was withdrawn from the CSCA Master List (`idcentral ca withdraw-csca`).
//! [`flag_station_cards`] and [`flag_csca_cards`] mark them in the disable's or the withdrawal's
//! transaction (migrations V16, V24); [`list`] is what `idcentral station cards-to-replace`
//! prints (ca-admin or auditor) and [`for_office`] what a station asks for its office's cards
//! (`POST /v1/cards-to-replace`): reads of personal data, audited in the transaction that
//! reads.

use crate::db::Prepared;
use centre_api::{roles, CardsToReplace, CardsToReplaceRequest, WhoAmI};
use deadpool_postgres::{Pool, Transaction};

use crate::audit;
use crate::error::Result;
use crate::operators::{Role, Session};
use crate::pki::Centre;

/// Flag every card of `station` still in use (active or suspended, not replaced, not flagged
/// before) for replacement, naming why; returns how many.
pub(crate) async fn flag_station_cards(
    tx: &Transaction<'_>,
    station: &str,
    reason: &str,
) -> Result<u64> {
    let why = format!("the Document Signer of station {station} was revoked ({reason})");
    Ok(tx
        .prepared_execute(
            "UPDATE documents SET replacement_due = $2, replacement_due_at = now()
             WHERE station = $1 AND state IN ('active', 'suspended') AND replaced_by IS NULL
               AND replacement_due IS NULL",
            &[&station, &why],
        )
        .await?)
}

/// Flag every card still in use (not replaced, not flagged before) whose EF.SOD a Document
/// Signer certified by CSCA key `key` signed, naming why; returns how many. A card completed by a
/// station that did not name its Document Signer (a station older than `complete`'s
/// `document_signer`) is flagged when its station held a Document Signer under `key` by then
/// whose key usage period had not ended when the job was reserved (an hour's margin: the
/// station's pre-flight refuses a Document Signer past its period before it reserves); the
/// centre cannot tell which of the station's keys signed it, so such a card may have been
/// signed by a newer one, and its reason says so. The station certificates' issuer keys must be
/// filled in first (`stations::fill_issuer_keys`).
pub(crate) async fn flag_csca_cards(tx: &Transaction<'_>, key: &str, reason: &str) -> Result<u64> {
    let why = format!(
        "the CSCA key {key} that certified its Document Signer was withdrawn from the CSCA \
         Master List ({reason})"
    );
    let mut flagged = tx
        .prepared_execute(
            "UPDATE documents d SET replacement_due = $2, replacement_due_at = now()
             WHERE d.state IN ('active', 'suspended') AND d.replaced_by IS NULL
               AND d.replacement_due IS NULL
               AND EXISTS (SELECT 1 FROM station_certs s
                           WHERE s.station = d.station AND s.purpose = 'document-signer'
                             AND s.serial = d.document_signer AND s.issuer_key = $1)",
            &[&key, &why],
        )
        .await?;
    let unknown = format!(
        "{why}; which Document Signer signed it is not recorded, and its station held one under \
         that key when it was issued"
    );
    let signers = tx
        .prepared_query(
            "SELECT station, issued_at, cert_der FROM station_certs
             WHERE purpose = 'document-signer' AND issuer_key = $1",
            &[&key],
        )
        .await?;
    for s in signers {
        let (station, issued_at): (String, std::time::SystemTime) = (s.get(0), s.get(1));
        // No usage period (a profile without one): no end to bound by.
        let usage_until = ca::CertInfo::parse(s.get(2))?.key_usage_until;
        flagged += tx
            .prepared_execute(
                "UPDATE documents d SET replacement_due = $3, replacement_due_at = now()
                 FROM jobs j
                 WHERE j.id = d.job AND d.station = $1
                   AND d.state IN ('active', 'suspended') AND d.replaced_by IS NULL
                   AND d.replacement_due IS NULL AND d.document_signer IS NULL
                   AND d.created_at >= $2
                   AND ($4::text IS NULL OR j.created_at <= $4::text::timestamptz + interval '1 hour')",
                &[&station, &issued_at, &unknown, &usage_until],
            )
            .await?;
    }
    Ok(flagged)
}

/// One card to replace (the wire type stations read too).
pub use centre_api::CardToReplace;

/// The cards flagged for replacement and not replaced yet, of `station` or of every station,
/// oldest flag first; `idcentral station cards-to-replace`, ca-admin or auditor, audited.
pub async fn list(
    pool: &Pool,
    session: &Session,
    station: Option<&str>,
) -> Result<Vec<CardToReplace>> {
    session.require(&[Role::CaAdmin, Role::Auditor], "list cards to replace")?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let cards = flagged(&tx, station, None, None).await?;
    let details = serde_json::json!({ "station": station, "cards": cards.len() });
    let object = station.map_or_else(|| "stations".to_owned(), |s| format!("station:{s}"));
    audit::append(
        &tx,
        session.actor(),
        "documents.replacement-listed",
        &object,
        &details,
    )
    .await?;
    tx.commit().await?;
    Ok(cards)
}

/// The roles of a station's operator that may list the office's cards to replace: each of them
/// serves the holders who must be called in.
const STATION_ROLES: &[&str] = &[roles::CLERK, roles::CA_ADMIN, roles::AUDITOR];

/// `POST /v1/cards-to-replace`: the cards of the asking station's office flagged and not
/// replaced yet, for the station's operator; audited `documents.replacement-listed` with the
/// station, its operator and role.
pub async fn for_office(
    centre: &Centre,
    who: &WhoAmI,
    req: &CardsToReplaceRequest,
) -> Result<CardsToReplace> {
    let actor = crate::operators::station_operator(
        who,
        &req.operator,
        &req.role,
        "list the cards to replace",
        STATION_ROLES,
    )?;
    let only = req
        .document
        .as_deref()
        .map(crate::numbers::parse_document)
        .transpose()?;
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    let cards = flagged(&tx, None, Some(&who.office), only.as_ref()).await?;
    let documents: Vec<&str> = cards.iter().map(|c| c.document.as_str()).collect();
    let details = serde_json::json!({ "office": who.office, "cards": cards.len(),
        "documents": documents, "asked_for": req.document });
    let object = format!("office:{}", who.office);
    audit::append(
        &tx,
        &actor,
        "documents.replacement-listed",
        &object,
        &details,
    )
    .await?;
    tx.commit().await?;
    Ok(CardsToReplace {
        office: who.office.clone(),
        cards,
    })
}

/// The flagged cards in use, of `station`, `office` and the one document (series, number) when
/// given, oldest flag first.
async fn flagged(
    tx: &Transaction<'_>,
    station: Option<&str>,
    office: Option<&str>,
    document: Option<&(String, i32)>,
) -> Result<Vec<CardToReplace>> {
    let (series, number) = (document.map(|d| d.0.as_str()), document.map(|d| d.1));
    let rows = tx
        .prepared_query(
            "SELECT d.series, d.number, d.state, h.pinfl, h.surname, h.given_names, d.station,
                    d.office, d.date_of_issue::text, d.replacement_due,
                    to_char(d.replacement_due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             FROM documents d JOIN holders h ON h.id = d.holder_id
             WHERE d.replacement_due IS NOT NULL AND d.replaced_by IS NULL
               AND d.state IN ('active', 'suspended')
               AND ($1::text IS NULL OR d.station = $1)
               AND ($2::text IS NULL OR d.office = $2)
               AND ($3::text IS NULL OR (d.series = $3 AND d.number = $4))
             ORDER BY d.replacement_due_at, d.id",
            &[&station, &office, &series, &number],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| CardToReplace {
            document: crate::numbers::document_number(r.get(0), r.get(1)),
            state: r.get(2),
            pinfl: r.get(3),
            surname: r.get(4),
            given_names: r.get(5),
            station: r.get(6),
            office: r.get(7),
            date_of_issue: r.get(8),
            reason: r.get(9),
            flagged_at: r.get(10),
        })
        .collect())
}
