//! Cards to replace because their chip data can no longer be authenticated: the Document
//! Signer that signed their EF.SOD was revoked with its station (`idcentral station disable
//! --reason`, docs/centre.md "Cutting a station off"), or the CSCA key that certified that
//! Document Signer was withdrawn from the CSCA Master List (`idcentral ca withdraw-csca`).
//! [`flag_station_cards`] and [`flag_csca_cards`] mark them in the disable's or the withdrawal's
//! transaction (migrations V16, V24); [`list`] is what `idcentral station cards-to-replace`
//! prints: a read of personal data, ca-admin or auditor, audited in the transaction that reads.

use crate::db::Prepared;
use deadpool_postgres::{Pool, Transaction};
use serde::Serialize;

use crate::audit;
use crate::error::Result;
use crate::operators::{Role, Session};

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

/// One card to replace.
#[derive(Debug, Clone, Serialize)]
pub struct CardToReplace {
    /// Series and number (`AA0000042`).
    pub document: String,
    pub state: String,
    pub pinfl: String,
    pub surname: String,
    pub given_names: String,
    pub station: String,
    pub office: String,
    pub date_of_issue: String,
    pub reason: String,
    pub flagged_at: String,
}

/// The cards flagged for replacement and not replaced yet, of `station` or of every station,
/// oldest flag first.
pub async fn list(
    pool: &Pool,
    session: &Session,
    station: Option<&str>,
) -> Result<Vec<CardToReplace>> {
    session.require(&[Role::CaAdmin, Role::Auditor], "list cards to replace")?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .prepared_query(
            "SELECT d.series, d.number, d.state, h.pinfl, h.surname, h.given_names, d.station,
                    d.office, d.date_of_issue::text, d.replacement_due,
                    to_char(d.replacement_due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             FROM documents d JOIN holders h ON h.id = d.holder_id
             WHERE d.replacement_due IS NOT NULL AND d.replaced_by IS NULL
               AND d.state IN ('active', 'suspended')
               AND ($1::text IS NULL OR d.station = $1)
             ORDER BY d.replacement_due_at, d.id",
            &[&station],
        )
        .await?;
    let cards: Vec<CardToReplace> = rows
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
        .collect();
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

impl CardToReplace {
    /// One line of `idcentral station cards-to-replace`.
    pub fn line(&self) -> String {
        format!(
            "{} {:<9} PINFL {} {} {} — {} {}, issued {}; flagged {}: {}\n",
            self.document,
            self.state,
            self.pinfl,
            self.surname,
            self.given_names,
            self.office,
            self.station,
            self.date_of_issue,
            self.flagged_at,
            self.reason
        )
    }
}
