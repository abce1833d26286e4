//! What a station learns and renews over its mutual-TLS connection during a Station CA
//! rollover (docs/centre.md "Station CA rollover"):
//!
//! - `GET /v1/anchors` ([`anchors`]): the active root, every usable Station CA key (active or
//!   retired, unrevoked, unexpired: `crate::tls::usable_station_cas`), the key the server
//!   certificate is under, and the CSCA keys withdrawn from the Master List
//!   (`crate::csca_withdrawal`);
//! - `POST /v1/identity/renew` ([`renew_identity`]): a new identity certificate from the active
//!   Station CA key for a key that proves possession by its PKCS#10 signature. In one
//!   transaction the certificate the request came with becomes `identity-previous` (still
//!   accepted, so a lost answer never locks the station out; a repeated renewal over that
//!   certificate replaces the unanswered one), the new one `identity`, and
//!   `station.identity-renewed` is audited.

use crate::db::Prepared;
use std::sync::Arc;

use centre_api::anchors::{
    Anchors, IdentityRenewRequest, IdentityRenewResponse, RootLink, StationCaAnchor,
};
use centre_api::WhoAmI;
use serde_json::json;

use crate::error::{CentralError, Result};
use crate::pki::Centre;

fn pem(der: &[u8]) -> Result<String> {
    ca::cert_pem(der).map_err(CentralError::from)
}

/// `GET /v1/anchors` for an authenticated station.
pub async fn anchors(centre: &Centre) -> Result<Anchors> {
    let client = centre.pool.get().await?;
    let root: Vec<u8> = client
        .prepared_opt(
            "SELECT cert_der FROM ca_keys WHERE ca = 'root' AND state = 'active'",
            &[],
        )
        .await?
        .ok_or(CentralError::NotInitialised)?
        .get(0);
    let keys = crate::tls::usable_station_cas(&client).await?;
    let server_issuer = keys
        .iter()
        .find(|k| k.cert_der == centre.server_anchor)
        .map(|k| k.label.clone())
        .unwrap_or_default();
    let station_cas = keys
        .iter()
        .map(|k| {
            Ok(StationCaAnchor {
                label: k.label.clone(),
                state: k.state.clone(),
                cert: pem(&k.cert_der)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let (roots, root_links) = roots_and_links(&client).await?;
    let withdrawn_cscas = client
        .prepared_query(
            "SELECT cert_der FROM ca_keys WHERE ca = 'csca' AND withdrawn_at IS NOT NULL
             ORDER BY label",
            &[],
        )
        .await?
        .iter()
        .map(|r| ca::fingerprint_sha256(r.get(0)).map_err(CentralError::from))
        .collect::<Result<Vec<_>>>()?;
    Ok(Anchors {
        root: pem(&root)?,
        station_cas,
        server_issuer,
        roots,
        root_links,
        withdrawn_cscas,
    })
}

/// Every National Root key that is active or retired and unexpired, and the link certificates
/// between root keys.
async fn roots_and_links(
    client: &deadpool_postgres::Client,
) -> Result<(Vec<StationCaAnchor>, Vec<RootLink>)> {
    let rows = client
        .prepared_query(
            "SELECT label, state, cert_der FROM ca_keys
             WHERE ca = 'root' AND state IN ('active', 'retired') ORDER BY created_at, label",
            &[],
        )
        .await?;
    let mut roots = Vec::new();
    for r in rows.iter().filter(|r| crate::tls::unexpired(r.get(2))) {
        roots.push(StationCaAnchor {
            label: r.get(0),
            state: r.get(1),
            cert: pem(r.get(2))?,
        });
    }
    Ok((roots, ca_links(client, "root").await?))
}

/// The link certificates between `ca`'s keys (RFC 4210 §4.4.1; for the CSCA, ICAO Doc 9303-12's
/// CSCA link certificates), the certified keys oldest first.
pub(crate) async fn ca_links(
    client: &impl deadpool_postgres::GenericClient,
    ca: &str,
) -> Result<Vec<RootLink>> {
    let rows = client
        .prepared_query(
            "SELECT l.certified_key, l.signer_key, l.kind, l.cert_der FROM ca_links l
             JOIN ca_keys k ON k.label = l.certified_key WHERE k.ca = $1
             ORDER BY k.created_at, l.certified_key, l.signer_key",
            &[&ca],
        )
        .await?;
    let mut links = Vec::new();
    for r in &rows {
        links.push(RootLink {
            certified: r.get(0),
            signer: r.get(1),
            kind: r.get(2),
            cert: pem(r.get(3))?,
        });
    }
    Ok(links)
}

/// The serial (DER bytes) of the certificate `der`.
fn serial_of(der: &[u8]) -> Result<Vec<u8>> {
    let info = ca::CertInfo::parse(der)?;
    hex::decode(&info.serial_hex).map_err(|e| CentralError::Other(e.to_string()))
}

/// Make the presented certificate `identity-previous` and drop the other one (see the module
/// documentation); the presented certificate's purpose before.
async fn shift_identities(
    tx: &tokio_postgres::Transaction<'_>,
    station: &str,
    presented: &[u8],
) -> Result<String> {
    let rows = tx
        .query(
            "SELECT purpose, cert_der FROM station_certs
             WHERE station = $1 AND purpose IN ('identity', 'identity-previous') FOR UPDATE",
            &[&station],
        )
        .await?;
    let purpose: String = rows
        .iter()
        .find(|r| r.get::<_, &[u8]>(1) == presented)
        .map(|r| r.get(0))
        .ok_or_else(|| {
            CentralError::Conflict(format!(
                "the identity certificate of station {station} changed during the renewal; ask again"
            ))
        })?;
    tx.execute(
        "DELETE FROM station_certs WHERE station = $1 AND purpose IN ('identity', 'identity-previous') AND cert_der <> $2",
        &[&station, &presented],
    )
    .await?;
    tx.execute(
        "UPDATE station_certs SET purpose = 'identity-previous' WHERE station = $1 AND cert_der = $2",
        &[&station, &presented],
    )
    .await?;
    Ok(purpose)
}

/// `POST /v1/identity/renew` by `who`, whose connection came with `presented` (DER).
pub async fn renew_identity(
    centre: &Arc<Centre>,
    who: &WhoAmI,
    presented: &[u8],
    req: &IdentityRenewRequest,
) -> Result<IdentityRenewResponse> {
    crate::issuance::check_operator(&req.operator)?;
    let spki = crate::enrol::checked_key("identity_csr", &req.identity_csr)?;
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    let issuer = centre.active_issuer(&tx, "station-ca").await?;
    let previous = shift_identities(&tx, &who.station, presented).await?;
    let name = who.station.clone();
    let cert =
        crate::pki::issue_station_cert(centre, &issuer, "station-identity", spki, name).await?;
    tx.prepared_execute(
        "INSERT INTO station_certs (station, purpose, serial, cert_der, issuer_key)
         VALUES ($1, 'identity', $2, $3, $4)",
        &[
            &who.station,
            &serial_of(&cert.der)?,
            &cert.der,
            &issuer.key_label(),
        ],
    )
    .await?;
    let previous_serial = ca::CertInfo::parse(presented)?.serial_hex;
    let details = json!({
        "serial": cert.serial_hex(), "fingerprint_sha256": ca::fingerprint_sha256(&cert.der)?,
        "issuer": issuer.key_label(), "previous_serial": previous_serial,
        "renewed_with": previous,
    });
    let actor = crate::issuance::actor(who, &req.operator);
    let object = format!("station:{}", who.station);
    crate::audit::append(&tx, &actor, "station.identity-renewed", &object, &details).await?;
    tx.commit().await?;
    Ok(IdentityRenewResponse {
        station: who.station.clone(),
        identity_cert: pem(&cert.der)?,
        issuer: issuer.key_label().to_owned(),
        previous_serial,
    })
}
