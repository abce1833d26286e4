//! Station enrolment (`POST /v1/enrol`) and the authenticated station (`GET /v1/whoami`).
//!
//! Enrolment: the station sends its name, its one-time code and three PKCS#10 requests
//! (RFC 2986) for keys in its own HSM: identity (TLS client), audit signer and Document Signer.
//! In one transaction the centre locks the station's row, checks the code (its SHA-256, not
//! expired, the station awaiting enrolment), checks each request's proof of possession, issues
//! the three certificates, records them, marks the station enrolled (which spends the code) and
//! writes the audit event, and assigns the station its first block of document numbers. A
//! failure anywhere leaves the code unspent.

use crate::db::Prepared;
use std::sync::Arc;

use crate::audit::{self, Actor};
use crate::error::{CentralError, Refusal, Result};
use crate::pki::Centre;
use crate::stations::{check_station_name, code_digest};

pub use centre_api::{EnrolRequest, EnrolResponse, TrustAnchors, WhoAmI};

fn forbidden(rule: &'static str, reason: String) -> CentralError {
    CentralError::refused(Refusal::Forbidden, rule, reason)
}

/// The station's state and office, with the row locked, after checking the code against it.
async fn check_code(
    tx: &tokio_postgres::Transaction<'_>,
    station: &str,
    code: &str,
) -> Result<String> {
    let row = tx
        .query_opt(
            "SELECT office, state, enrolment_code_sha256, enrolment_expires_at < now(),
                    to_char(enrolment_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             FROM stations WHERE name = $1 FOR UPDATE",
            &[&station],
        )
        .await?;
    // An unknown station and a wrong code get the same answer: the request learns nothing
    // about which stations exist.
    let wrong = || {
        forbidden(
            "enrolment-code-wrong",
            format!("the enrolment code is not valid for station {station}"),
        )
    };
    let row = row.ok_or_else(wrong)?;
    let office: String = row.get(0);
    let state: &str = row.get(1);
    match state {
        "disabled" => {
            return Err(forbidden(
                "station-disabled",
                format!("station {station} is disabled"),
            ))
        }
        "enrolled" => {
            return Err(CentralError::refused(
                Refusal::Conflict,
                "enrolment-code-used",
                format!("station {station} is already enrolled: an enrolment code works once"),
            ))
        }
        _ => {}
    }
    let stored: Option<&[u8]> = row.get(2);
    if stored != Some(code_digest(code).as_slice()) {
        return Err(wrong());
    }
    if row.get::<_, Option<bool>>(3) != Some(false) {
        let until: Option<String> = row.get(4);
        return Err(forbidden(
            "enrolment-code-expired",
            format!(
                "the enrolment code of station {station} expired at {}; ask for a new station entry",
                until.unwrap_or_default()
            ),
        ));
    }
    Ok(office)
}

fn csr_bytes(field: &'static str, text: &str) -> Result<Vec<u8>> {
    let t = text.trim();
    if t.starts_with("-----BEGIN") {
        return Ok(t.as_bytes().to_vec());
    }
    hex::decode(t)
        .map_err(|_| CentralError::invalid(field, "must be a PEM or hex DER PKCS#10 request"))
}

/// Check a request's proof of possession; its SubjectPublicKeyInfo (DER).
pub(crate) fn checked_key(field: &'static str, text: &str) -> Result<Vec<u8>> {
    ca::verify_csr(&csr_bytes(field, text)?)
        .map_err(|e| CentralError::invalid(field, e.to_string()))
}

/// The issuers of an enrolment read in its transaction: the active Station CA and CSCA keys.
struct Issuers {
    root: Arc<ca::Issuer>,
    station_ca: Arc<ca::Issuer>,
    csca: Arc<ca::Issuer>,
}

/// The three certificates of an enrolment, DER: identity, audit, Document Signer.
fn issue_three(
    centre: &Centre,
    issuers: &Issuers,
    st: &str,
    keys: &[Vec<u8>; 3],
) -> Result<[Vec<u8>; 3]> {
    let store = centre.store.as_ref();
    let now = std::time::SystemTime::now();
    let p = |n| centre.profiles.cert(n);
    let identity = ca::issue_station_cert(
        store,
        p("station-identity")?,
        &issuers.station_ca,
        &keys[0],
        st,
        now,
    )?;
    let audit =
        ca::issue_station_cert(store, p("audit-signer")?, &issuers.root, &keys[1], st, now)?;
    let ds = ca::issue_station_cert(
        store,
        p("document-signer")?,
        &issuers.csca,
        &keys[2],
        &format!("{st} Document Signer"),
        now,
    )?;
    Ok([identity.der, audit.der, ds.der])
}

/// Enrol `req.station` (see the module documentation).
/// The HSM signatures run on tokio's blocking pool, not on the thread that serves connections.
pub async fn enrol(centre: &Arc<Centre>, req: &EnrolRequest) -> Result<EnrolResponse> {
    check_station_name(&req.station)?;
    let keys = [
        checked_key("identity_csr", &req.identity_csr)?,
        checked_key("audit_csr", &req.audit_csr)?,
        checked_key("document_signer_csr", &req.document_signer_csr)?,
    ];
    if keys[0] == keys[1] || keys[0] == keys[2] || keys[1] == keys[2] {
        return Err(CentralError::invalid(
            "csr",
            "the identity, audit and Document Signer keys must be three different keys",
        ));
    }
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    let office = check_code(&tx, &req.station, &req.enrolment_code).await?;
    // The rotating CAs' active keys, read in this transaction: the identity and the Document
    // Signer are certified by the Station CA and CSCA keys active now, and the anchors handed
    // out are the active ones (the Station CA anchor: the one the server certificate is under).
    let csca = centre.active_issuer(&tx, "csca").await?;
    let esign = centre.active_issuer(&tx, "esign").await?;
    let issuers = Issuers {
        root: centre.active_issuer(&tx, "root").await?,
        station_ca: centre.active_issuer(&tx, "station-ca").await?,
        csca: Arc::clone(&csca),
    };
    // The CA key that issues each of the three, recorded with its certificate.
    let issuer_keys = [
        issuers.station_ca.key_label().to_owned(),
        issuers.root.key_label().to_owned(),
        issuers.csca.key_label().to_owned(),
    ];
    let (c, station, root) = (
        Arc::clone(centre),
        req.station.clone(),
        Arc::clone(&issuers.root),
    );
    let certs = tokio::task::spawn_blocking(move || issue_three(&c, &issuers, &station, &keys))
        .await
        .map_err(|e| CentralError::Other(format!("issuing task: {e}")))??;
    let mut details = serde_json::Map::new();
    let purposes = ["identity", "audit", "document-signer"];
    for ((purpose, der), issuer_key) in purposes.iter().zip(&certs).zip(&issuer_keys) {
        let info = ca::CertInfo::parse(der)?;
        let serial =
            hex::decode(&info.serial_hex).map_err(|e| CentralError::Other(e.to_string()))?;
        tx.prepared_execute(
            "INSERT INTO station_certs (station, purpose, serial, cert_der, issuer_key)
             VALUES ($1, $2, $3, $4, $5)",
            &[&req.station, purpose, &serial, der, issuer_key],
        )
        .await?;
        details.insert(
            (*purpose).into(),
            serde_json::json!({ "serial": info.serial_hex, "fingerprint_sha256": ca::fingerprint_sha256(der)? }),
        );
    }
    tx.prepared_execute(
        "UPDATE stations SET state = 'enrolled', enrolment_code_sha256 = NULL, enrolled_at = now() WHERE name = $1",
        &[&req.station],
    )
    .await?;
    let actor = Actor {
        operator: req.station.clone(),
        role: "station".into(),
        station: req.station.clone(),
    };
    let object = format!("station:{}", req.station);
    let number_block = crate::numbers::assign_block(&tx, &req.station, &centre.issuance).await?;
    details.insert(
        "number_block".into(),
        serde_json::to_value(&number_block).map_err(|e| CentralError::Other(e.to_string()))?,
    );
    audit::append(&tx, &actor, "station.enrolled", &object, &details.into()).await?;
    tx.commit().await?;
    tracing::info!(station = %req.station, office = %office, "station enrolled");
    let pem = |der: &[u8]| ca::cert_pem(der).map_err(CentralError::from);
    Ok(EnrolResponse {
        station: req.station.clone(),
        office,
        identity_cert: pem(&certs[0])?,
        audit_cert: pem(&certs[1])?,
        document_signer_cert: pem(&certs[2])?,
        trust_anchors: TrustAnchors {
            root: pem(root.cert_der())?,
            esign: pem(esign.cert_der())?,
            csca: pem(csca.cert_der())?,
            station_ca: pem(&centre.server_anchor)?,
        },
        centre_tls_fingerprint_sha256: centre.tls_fingerprint.clone(),
        number_block,
    })
}

/// The station a TLS client certificate (already verified up to a usable Station CA key by the
/// TLS layer) belongs to: it must be the identity certificate recorded at enrolment or at the
/// last renewal (or the one renewed then: `crate::anchors`), and the station must not be
/// disabled.
pub async fn authenticate(centre: &Centre, client_cert: Option<&[u8]>) -> Result<WhoAmI> {
    let der = client_cert.ok_or_else(|| {
        CentralError::refused(
            Refusal::Unauthenticated,
            "client-certificate-required",
            "this endpoint needs a station's client certificate (TLS)",
        )
    })?;
    let info = ca::CertInfo::parse(der)?;
    let serial = hex::decode(&info.serial_hex).map_err(|e| CentralError::Other(e.to_string()))?;
    let client = centre.pool.get().await?;
    let row = client
        .prepared_opt(
            "SELECT s.name, s.office, s.state, c.cert_der FROM station_certs c
             JOIN stations s ON s.name = c.station
             WHERE c.purpose IN ('identity', 'identity-previous') AND c.serial = $1",
            &[&serial],
        )
        .await?;
    let row = row.filter(|r| r.get::<_, &[u8]>(3) == der).ok_or_else(|| {
        forbidden(
            "certificate-not-enrolled",
            format!(
                "the client certificate (serial {}) is not a station identity the centre issued",
                info.serial_hex
            ),
        )
    })?;
    let who = WhoAmI {
        station: row.get(0),
        office: row.get(1),
        state: row.get(2),
    };
    drop(client);
    if who.state != "enrolled" {
        let err = forbidden(
            "station-disabled",
            format!("station {} is {}", who.station, who.state),
        );
        crate::refusals::record(centre, &who.station, "authenticate", None, &[], &err).await;
        return Err(err);
    }
    Ok(who)
}
