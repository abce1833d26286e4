//! `idcentral show --pinfl N | --document D`: one holder as the national registry knows them —
//! their data, address history, documents (station, office, state, dates, renewals) and
//! certificates (serial, profile, state). A read of personal data: ca-admin or auditor, and every look-up is
//! written to the audit log (found, not found or refused) in the transaction that reads.

use crate::db::Prepared;
use deadpool_postgres::{GenericClient, Pool};
use registry::NewHolder;
use serde::Serialize;

use crate::audit;
use crate::error::{CentralError, Result};
use crate::holders::{self, RecordedAddress};
use crate::operators::{Role, Session};

/// What to look a holder up by.
#[derive(Debug, Clone)]
pub enum Query {
    Pinfl(String),
    /// Series and number, e.g. `AA0000042`.
    Document(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct DocumentRecord {
    pub document: String,
    pub state: String,
    pub station: String,
    pub office: String,
    pub date_of_issue: String,
    pub date_of_expiry: String,
    pub card_serial: String,
    pub job: String,
    /// The document that replaced this one (a replacement), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
    /// Why the card must be replaced (its Document Signer was revoked, or the CSCA key that
    /// certified it withdrawn), if it must.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replacement_due: Option<String>,
    /// The serial number (hex) of the Document Signer certificate that signed the card's
    /// EF.SOD, as the station named it at `complete`; absent when the station did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_signer: Option<String>,
    /// Every renewal of the document's certificates, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub renewals: Vec<crate::services::renewals::RenewalRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CertificateRecord {
    pub serial: String,
    pub slot: String,
    pub profile: String,
    pub state: String,
    pub revocation_reason: Option<String>,
    /// The document number of the job it was issued for.
    pub document: String,
    pub job: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HolderRecord {
    pub holder: NewHolder,
    pub addresses: Vec<RecordedAddress>,
    pub documents: Vec<DocumentRecord>,
    pub certificates: Vec<CertificateRecord>,
}

async fn holder_id(c: &impl GenericClient, q: &Query) -> Result<Option<i64>> {
    Ok(match q {
        Query::Pinfl(p) => {
            registry::validate::pinfl("pinfl", p)
                .map_err(|e| CentralError::invalid("pinfl", e.to_string()))?;
            holders::find(c, p).await?.map(|(id, _)| id)
        }
        Query::Document(d) => {
            let (series, number) = crate::numbers::parse_document(d)?;
            c.prepared_opt(
                "SELECT holder_id FROM jobs WHERE series = $1 AND number = $2 ORDER BY created_at DESC LIMIT 1",
                &[&series, &number],
            )
            .await?
            .map(|r| r.get(0))
        }
    })
}

async fn documents(c: &impl GenericClient, holder: i64) -> Result<Vec<DocumentRecord>> {
    let rows = c
        .prepared_query(
            "SELECT d.series, d.number, d.state, d.station, d.office, d.date_of_issue::text,
                    d.date_of_expiry::text, d.card_serial, d.job, n.series, n.number,
                    d.replacement_due, encode(d.document_signer, 'hex')
             FROM documents d LEFT JOIN documents n ON n.id = d.replaced_by
             WHERE d.holder_id = $1 ORDER BY d.id",
            &[&holder],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| DocumentRecord {
            document: crate::numbers::document_number(r.get(0), r.get(1)),
            state: r.get(2),
            station: r.get(3),
            office: r.get(4),
            date_of_issue: r.get(5),
            date_of_expiry: r.get(6),
            card_serial: r.get(7),
            job: r.get(8),
            replaced_by: r
                .get::<_, Option<String>>(9)
                .map(|s| crate::numbers::document_number(&s, r.get(10))),
            replacement_due: r.get(11),
            document_signer: r.get(12),
            renewals: Vec::new(),
        })
        .collect())
}

async fn certificates(c: &impl GenericClient, holder: i64) -> Result<Vec<CertificateRecord>> {
    let rows = c
        .prepared_query(
            "SELECT c.serial, c.slot, c.profile, c.state, c.revocation_reason, j.series, j.number, j.id
             FROM certificates c JOIN jobs j ON j.id = c.job
             WHERE c.holder_id = $1 ORDER BY c.issued_at, c.slot",
            &[&holder],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| CertificateRecord {
            serial: hex::encode_upper(r.get::<_, &[u8]>(0)),
            slot: r.get(1),
            profile: r.get(2),
            state: r.get(3),
            revocation_reason: r.get(4),
            document: crate::numbers::document_number(r.get(5), r.get(6)),
            job: r.get(7),
        })
        .collect())
}

fn describe(q: &Query) -> (String, serde_json::Value) {
    match q {
        Query::Pinfl(p) => (format!("holder:{p}"), serde_json::json!({ "pinfl": p })),
        Query::Document(d) => (
            format!("document:{d}"),
            serde_json::json!({ "document": d }),
        ),
    }
}

/// Look a holder up (see the module documentation).
pub async fn show(pool: &Pool, session: &Session, q: &Query) -> Result<HolderRecord> {
    session.require(&[Role::CaAdmin, Role::Auditor], "show")?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let id = holder_id(&tx, q).await;
    let (object, mut details) = describe(q);
    match &id {
        Ok(found) => details["found"] = found.is_some().into(),
        Err(e) => details["refused"] = e.to_string().into(),
    }
    audit::append(&tx, session.actor(), "holder.shown", &object, &details).await?;
    let id = match id {
        Ok(id) => id,
        Err(e) => {
            tx.commit().await?;
            return Err(e);
        }
    };
    let record = match id {
        None => None,
        Some(id) => Some(HolderRecord {
            holder: holders::get(&tx, id).await?,
            addresses: holders::addresses(&tx, id).await?,
            documents: {
                let mut docs = documents(&tx, id).await?;
                let which = crate::services::renewals::Which {
                    holder: Some(id),
                    ..Default::default()
                };
                for r in crate::services::renewals::renewals(&tx, &which).await? {
                    if let Some(d) = docs.iter_mut().find(|d| d.document == r.document) {
                        d.renewals.push(r);
                    }
                }
                docs
            },
            certificates: certificates(&tx, id).await?,
        }),
    };
    tx.commit().await?;
    record
        .ok_or_else(|| CentralError::NotFound(format!("{object} is not in the national registry")))
}
