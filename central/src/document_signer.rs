//! A station's Document Signer renewed (`POST /v1/document-signer/renew`, docs/centre.md
//! "Document Signer renewal"). ICAO Doc 9303-12 Table 1 bounds a Document Signer's private key
//! usage to about three months (the shipped `document-signer` profile: 92 days of
//! privateKeyUsagePeriod), while its certificate stays valid for the documents it signed. So a
//! station makes a new key in its HSM each quarter and sends its PKCS#10 request here over its
//! mutual-TLS connection.
//!
//! In one transaction the centre locks the station (it must still be enrolled: a `station
//! disable` waits or wins) and its certificates, then either finds a Document Signer it already
//! certified for that key (a retry after a lost answer: the same certificate, nothing new
//! recorded) or certifies the key under the active CSCA, records it as one more
//! `document-signer` row (the older ones stay: they remain valid, and a `station disable
//! --reason` revokes them all) and audits `station.document-signer-renewed`. A key that is
//! the station's identity or audit key, or a Document Signer key whose certificate was revoked,
//! is refused.

use crate::db::Prepared;
use std::sync::Arc;

use centre_api::anchors::{DocumentSignerRenewRequest, DocumentSignerRenewResponse, RootLink};
use centre_api::WhoAmI;
use serde_json::json;

use crate::error::{CentralError, Refusal, Result};
use crate::pki::Centre;

const PURPOSE: &str = "document-signer";

fn pem(der: &[u8]) -> Result<String> {
    ca::cert_pem(der).map_err(CentralError::from)
}

/// What the station holds already for the requested key: the Document Signer certificate
/// that certifies it (unrevoked), if any; a refusal when the key has another use or its
/// certificate was revoked.
async fn earlier_certificate(
    tx: &tokio_postgres::Transaction<'_>,
    station: &str,
    spki: &[u8],
) -> Result<Option<Vec<u8>>> {
    let state: Option<String> = tx
        .query_opt(
            "SELECT state FROM stations WHERE name = $1 FOR SHARE",
            &[&station],
        )
        .await?
        .map(|r| r.get(0));
    if state.as_deref() != Some("enrolled") {
        return Err(CentralError::refused(
            Refusal::Forbidden,
            "station-disabled",
            format!("station {station} is not enrolled"),
        ));
    }
    let rows = tx
        .query(
            "SELECT purpose, cert_der, revoked_at IS NOT NULL FROM station_certs
             WHERE station = $1 FOR UPDATE",
            &[&station],
        )
        .await?;
    for r in &rows {
        let (purpose, der, revoked): (&str, &[u8], bool) = (r.get(0), r.get(1), r.get(2));
        if ca::certificate_spki(der)? != spki {
            continue;
        }
        if purpose != PURPOSE {
            return Err(CentralError::invalid(
                "document_signer_csr",
                format!(
                    "is for the station's {purpose} key: a Document Signer needs a key of its own"
                ),
            ));
        }
        if revoked {
            return Err(CentralError::refused(
                Refusal::Conflict,
                "document-signer-key-revoked",
                "the Document Signer certificate of this key is revoked: make a new key",
            ));
        }
        return Ok(Some(der.to_vec()));
    }
    Ok(None)
}

/// The CSCA keys (label, certificate) and the `new-with-old` links between them.
async fn cscas_and_links(
    tx: &deadpool_postgres::Transaction<'_>,
) -> Result<(Vec<(String, Vec<u8>)>, Vec<RootLink>)> {
    let keys = tx
        .prepared_query(
            "SELECT label, cert_der FROM ca_keys WHERE ca = 'csca' ORDER BY created_at, label",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut links = crate::anchors::ca_links(tx, "csca").await?;
    links.retain(|l| l.kind == "new-with-old");
    Ok((keys, links))
}

/// `POST /v1/document-signer/renew` by `who` (see the module documentation).
pub async fn renew(
    centre: &Arc<Centre>,
    who: &WhoAmI,
    req: &DocumentSignerRenewRequest,
) -> Result<DocumentSignerRenewResponse> {
    crate::issuance::check_operator(&req.operator)?;
    let spki = crate::enrol::checked_key("document_signer_csr", &req.document_signer_csr)?;
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    let earlier = earlier_certificate(&tx, &who.station, &spki).await?;
    let (cscas, csca_links) = cscas_and_links(&tx).await?;
    let issued_now = earlier.is_none();
    let der = match earlier {
        Some(der) => der,
        None => {
            let csca = centre.active_issuer(&tx, "csca").await?;
            let name = format!("{} Document Signer", who.station);
            let cert = crate::pki::issue_station_cert(centre, &csca, PURPOSE, spki, name).await?;
            let serial =
                hex::decode(cert.serial_hex()).map_err(|e| CentralError::Other(e.to_string()))?;
            tx.prepared_execute(
                "INSERT INTO station_certs (station, purpose, serial, cert_der, issuer_key)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &who.station,
                    &PURPOSE,
                    &serial,
                    &cert.der,
                    &csca.key_label(),
                ],
            )
            .await?;
            let info = ca::CertInfo::parse(&cert.der)?;
            let details = json!({
                "serial": info.serial_hex, "fingerprint_sha256": ca::fingerprint_sha256(&cert.der)?,
                "issuer": csca.key_label(), "key_usage_until": info.key_usage_until,
            });
            let actor = crate::issuance::actor(who, &req.operator);
            let object = format!("station:{}", who.station);
            let action = "station.document-signer-renewed";
            crate::audit::append(&tx, &actor, action, &object, &details).await?;
            cert.der
        }
    };
    let (csca, csca_der) = crate::stations::issuer_label(Some(&der), &cscas)
        .and_then(|l| cscas.iter().find(|(k, _)| *k == l).cloned())
        .ok_or_else(|| {
            CentralError::Other(format!(
                "no CSCA key of this centre signed the Document Signer of station {}",
                who.station
            ))
        })?;
    tx.commit().await?;
    Ok(DocumentSignerRenewResponse {
        station: who.station.clone(),
        document_signer_cert: pem(&der)?,
        csca,
        csca_cert: pem(&csca_der)?,
        csca_links,
        issued_now,
    })
}
