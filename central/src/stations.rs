//! Issuance stations known to the centre: added by a ca-admin with a one-time enrolment code,
//! enrolled by the station itself with that code, disabled to cut one off.
//!
//! The code is 25 characters of Crockford base32 (125 bits from the OS's random source) in
//! groups of five; only its SHA-256 is stored, it works once and expires after
//! [`ENROLMENT_CODE_HOURS`] hours.

use crate::db::Prepared;
use deadpool_postgres::{Pool, Transaction};
use serde::Serialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::audit;
use crate::error::{CentralError, Result};
use crate::operators::{Role, Session};

/// Hours an enrolment code stays valid.
pub const ENROLMENT_CODE_HOURS: i32 = 24;

/// Crockford's base32 alphabet (no I, L, O, U).
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Station names: 1–63 of `a-z 0-9 -`, starting with a letter or digit.
pub fn check_station_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(CentralError::invalid(
            "station",
            "must be 1-63 of a-z 0-9 - starting with a letter or digit (e.g. tas01-st1)",
        ))
    }
}

/// Office codes: three capital letters and two digits (e.g. TAS01).
pub fn check_office(office: &str) -> Result<()> {
    let b = office.as_bytes();
    if b.len() == 5
        && b[..3].iter().all(u8::is_ascii_uppercase)
        && b[3..].iter().all(u8::is_ascii_digit)
    {
        Ok(())
    } else {
        Err(CentralError::invalid(
            "office",
            "must be three capital letters and two digits (e.g. TAS01)",
        ))
    }
}

/// A fresh enrolment code, `XXXXX-XXXXX-XXXXX-XXXXX-XXXXX`.
fn new_code() -> Result<Zeroizing<String>> {
    let mut raw = Zeroizing::new([0u8; 25]);
    getrandom::fill(&mut raw[..]).map_err(|e| CentralError::Other(format!("random code: {e}")))?;
    let mut code = Zeroizing::new(String::with_capacity(29));
    for (i, b) in raw.iter().enumerate() {
        if i > 0 && i % 5 == 0 {
            code.push('-');
        }
        code.push(ALPHABET[(b & 31) as usize] as char);
    }
    Ok(code)
}

/// SHA-256 of a code as typed: case, spaces and dashes do not matter, and Crockford's
/// look-alikes (I, L → 1; O → 0) read as the digits.
pub fn code_digest(code: &str) -> [u8; 32] {
    let norm: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            c => c,
        })
        .collect();
    Sha256::digest(norm.as_bytes()).into()
}

/// A station added, with its code (shown once).
pub struct Added {
    pub station: String,
    pub office: String,
    pub code: Zeroizing<String>,
    pub expires_at: String,
}

/// Whether `station` may be given a code by `add`: true when it is still awaiting enrolment in
/// `office` and its code expired unused (a new code replaces it), false when it does not exist;
/// any other existing station is refused, naming its state (locks the row until the commit).
async fn renewable(tx: &Transaction<'_>, office: &str, station: &str) -> Result<bool> {
    let Some(row) = tx
        .prepared_opt(
            "SELECT state, office, enrolment_expires_at < now(),
                    to_char(enrolment_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             FROM stations WHERE name = $1 FOR UPDATE",
            &[&station],
        )
        .await?
    else {
        return Ok(false);
    };
    let (state, its_office, expired): (String, String, Option<bool>) =
        (row.get(0), row.get(1), row.get(2));
    let until: Option<String> = row.get(3);
    match (state.as_str(), expired) {
        ("awaiting-enrolment", Some(true)) if its_office == office => Ok(true),
        ("awaiting-enrolment", Some(true)) => Err(CentralError::Conflict(format!(
            "station {station} already exists in office {its_office}, not {office}"
        ))),
        ("awaiting-enrolment", _) => Err(CentralError::Conflict(format!(
            "station {station} already exists (awaiting-enrolment; its code is valid until {}): \
             a new code is given only after it expires, or disable the station",
            until.unwrap_or_default()
        ))),
        _ => Err(CentralError::Conflict(format!(
            "station {station} already exists ({state})"
        ))),
    }
}

/// Add `station` of `office`; returns the one-time enrolment code. A station still awaiting
/// enrolment whose code expired unused gets a new code (audited `station.code-renewed`).
pub async fn add(pool: &Pool, session: &Session, office: &str, station: &str) -> Result<Added> {
    session.require(&[Role::CaAdmin], "add stations")?;
    check_office(office)?;
    check_station_name(station)?;
    let code = new_code()?;
    let digest = code_digest(&code);
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let renewing = renewable(&tx, office, station).await?;
    let row = if renewing {
        tx.prepared_one(
            "UPDATE stations SET enrolment_code_sha256 = $2,
                    enrolment_expires_at = now() + make_interval(hours => $3)
             WHERE name = $1
             RETURNING to_char(enrolment_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
            &[&station, &digest.as_slice(), &ENROLMENT_CODE_HOURS],
        )
        .await?
    } else {
        tx.prepared_one(
            "INSERT INTO stations (name, office, state, enrolment_code_sha256, enrolment_expires_at, created_by)
             VALUES ($1, $2, 'awaiting-enrolment', $3, now() + make_interval(hours => $4), $5)
             RETURNING to_char(enrolment_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
            &[&station, &office, &digest.as_slice(), &ENROLMENT_CODE_HOURS, &session.actor().operator],
        )
        .await?
    };
    let expires_at: String = row.get(0);
    let details = serde_json::json!({ "office": office, "enrolment_expires_at": expires_at });
    let action = if renewing {
        "station.code-renewed"
    } else {
        "station.added"
    };
    audit::append(
        &tx,
        session.actor(),
        action,
        &format!("station:{station}"),
        &details,
    )
    .await?;
    tx.commit().await?;
    Ok(Added {
        station: station.to_owned(),
        office: office.to_owned(),
        code,
        expires_at,
    })
}

/// One station as `station list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StationInfo {
    pub name: String,
    pub office: String,
    pub state: String,
    /// When the outstanding enrolment code stops working (none once the station enrolled or
    /// was disabled: the code is gone).
    pub enrolment_expires_at: Option<String>,
    /// Whether that code has already expired unused.
    pub enrolment_code_expired: bool,
    /// The Station CA key that issued the station's current identity certificate (during a
    /// Station CA rollover: who has renewed; docs/centre.md).
    pub identity_issuer: Option<String>,
    /// The end of the private key usage period of the station's newest unrevoked Document
    /// Signer, and the whole days left until then (negative once it has passed): a station
    /// renews its Document Signer before then (docs/centre.md "Document Signer renewal").
    pub document_signer_until: Option<String>,
    pub document_signer_days_left: Option<i64>,
}

/// The end of the private key usage period of Document Signer certificate `der` and the whole
/// days from now until then (negative once it has passed).
fn key_usage_left(der: Option<&[u8]>) -> Result<(Option<String>, Option<i64>)> {
    use time::format_description::well_known::Rfc3339;
    let Some(until) = der
        .map(ca::CertInfo::parse)
        .transpose()?
        .and_then(|i| i.key_usage_until)
    else {
        return Ok((None, None));
    };
    let end = time::OffsetDateTime::parse(&until, &Rfc3339)
        .map_err(|e| CentralError::Other(format!("privateKeyUsagePeriod {until}: {e}")))?;
    let left = (end - time::OffsetDateTime::now_utc()).whole_seconds();
    Ok((Some(until), Some(left.div_euclid(86_400))))
}

/// The label of the CA key in `keys` (label, certificate) that signed `identity` (any station
/// certificate).
pub(crate) fn issuer_label(identity: Option<&[u8]>, keys: &[(String, Vec<u8>)]) -> Option<String> {
    let der = identity?;
    keys.iter()
        .find(|(_, ca)| ca::issued_by(der, ca).unwrap_or(false))
        .map(|(l, _)| l.clone())
}

/// Name the issuing CA key of each certificate of `station` (of every station when `None`) that
/// names none — rows recorded before the centre stored it with the certificate — found by
/// signature among every key of `ca_keys`, retired ones too.
pub(crate) async fn fill_issuer_keys(tx: &Transaction<'_>, station: Option<&str>) -> Result<()> {
    let rows = tx
        .prepared_query(
            "SELECT station, purpose, serial, cert_der FROM station_certs
             WHERE issuer_key IS NULL AND ($1::text IS NULL OR station = $1) FOR UPDATE",
            &[&station],
        )
        .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let keys = ca_key_certs(tx).await?;
    for r in rows {
        let (name, purpose, serial, der): (String, String, Vec<u8>, Vec<u8>) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if let Some(issuer) = issuer_label(Some(&der), &keys) {
            tx.prepared_execute(
                "UPDATE station_certs SET issuer_key = $4
                 WHERE station = $1 AND purpose = $2 AND serial = $3",
                &[&name, &purpose, &serial, &issuer],
            )
            .await?;
        }
    }
    Ok(())
}

/// The label of the CA key (any of `ca_keys`, retired ones too) whose signature certificate
/// `der` carries, if any.
pub(crate) async fn issuer_by_signature(
    tx: &Transaction<'_>,
    der: &[u8],
) -> Result<Option<String>> {
    Ok(issuer_label(Some(der), &ca_key_certs(tx).await?))
}

/// Every CA key's label with its certificate.
async fn ca_key_certs(tx: &Transaction<'_>) -> Result<Vec<(String, Vec<u8>)>> {
    Ok(tx
        .prepared_query("SELECT label, cert_der FROM ca_keys ORDER BY label", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

pub async fn list(pool: &Pool, session: &Session) -> Result<Vec<StationInfo>> {
    session.require(&[Role::CaAdmin, Role::Auditor], "list stations")?;
    let client = pool.get().await?;
    let rows = client
        .prepared_query(
            "SELECT name, office, state,
                    CASE WHEN enrolment_code_sha256 IS NOT NULL THEN
                      to_char(enrolment_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') END,
                    (SELECT cert_der FROM station_certs c WHERE c.station = s.name AND c.purpose = 'identity'),
                    enrolment_code_sha256 IS NOT NULL AND enrolment_expires_at < now(),
                    (SELECT cert_der FROM station_certs c WHERE c.station = s.name
                       AND c.purpose = 'document-signer' AND c.revoked_at IS NULL
                     ORDER BY c.issued_at DESC LIMIT 1)
             FROM stations s ORDER BY office, name",
            &[],
        )
        .await?;
    let keys: Vec<(String, Vec<u8>)> = client
        .prepared_query(
            "SELECT label, cert_der FROM ca_keys WHERE ca = 'station-ca'",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    rows.iter()
        .map(|r| {
            let (document_signer_until, document_signer_days_left) = key_usage_left(r.get(6))?;
            Ok(StationInfo {
                name: r.get(0),
                office: r.get(1),
                state: r.get(2),
                enrolment_expires_at: r.get(3),
                enrolment_code_expired: r.get(5),
                identity_issuer: issuer_label(r.get::<_, Option<&[u8]>>(4), &keys),
                document_signer_until,
                document_signer_days_left,
            })
        })
        .collect()
}

/// The reasons a station's certificates are revoked with (RFC 5280 §5.3.1; end-entity
/// certificates, so not cACompromise).
pub const REVOCATION_REASONS: &[&str] = &[
    "keyCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
];

/// One station certificate revoked by [`disable`].
#[derive(Debug, Clone, Serialize)]
pub struct RevokedStationCert {
    pub purpose: String,
    /// Upper-case hex.
    pub serial: String,
    /// The CA key that issued it, whose CRL lists it.
    pub issuer_key: String,
}

/// What [`disable`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Disabled {
    pub station: String,
    pub state: &'static str,
    pub reason: Option<String>,
    pub revoked: Vec<RevokedStationCert>,
    /// The station's cards in use flagged for replacement because its Document Signer was
    /// revoked (`station cards-to-replace` lists them).
    pub cards_to_replace: u64,
}

/// Cut `station` off: it is refused from its next request on. With `reason` (one of
/// [`REVOCATION_REASONS`]) its certificates are revoked too, each on the CRL of the CA key that
/// issued it (queued for the signing worker like a CA revocation), and the station's cards in
/// use are flagged for replacement (their EF.SOD no longer passes passive authentication).
/// Without one, the certificates stay valid: the cards whose EF.SOD its Document Signer signed
/// stay good. A
/// station disabled before may be disabled again with a reason, which revokes what is not
/// revoked yet. Ca-admin; one transaction with its audit event.
pub async fn disable(
    pool: &Pool,
    session: &Session,
    station: &str,
    reason: Option<&str>,
) -> Result<Disabled> {
    session.require(&[Role::CaAdmin], "disable stations")?;
    if let Some(r) = reason.filter(|r| !REVOCATION_REASONS.contains(r)) {
        return Err(CentralError::invalid(
            "reason",
            format!(
                "{r:?} is not a reason to revoke a station's certificates: give one of {}",
                REVOCATION_REASONS.join(", ")
            ),
        ));
    }
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let state: Option<String> = tx
        .prepared_opt(
            "SELECT state FROM stations WHERE name = $1 FOR UPDATE",
            &[&station],
        )
        .await?
        .map(|r| r.get(0));
    match (state.as_deref(), reason) {
        (None, _) => {
            return Err(CentralError::NotFound(format!(
                "station {station} is not known to the centre"
            )))
        }
        (Some("disabled"), None) => {
            return Err(CentralError::Conflict(format!(
                "station {station} is already disabled"
            )))
        }
        _ => {}
    }
    tx.prepared_execute(
        "UPDATE stations SET state = 'disabled', enrolment_code_sha256 = NULL,
                disabled_at = coalesce(disabled_at, now()) WHERE name = $1",
        &[&station],
    )
    .await?;
    let revoked = match reason {
        Some(r) => revoke_certs(&tx, station, r).await?,
        None => Vec::new(),
    };
    if state.as_deref() == Some("disabled") && revoked.is_empty() {
        return Err(CentralError::Conflict(format!(
            "station {station} is already disabled and its certificates are revoked"
        )));
    }
    let cards_to_replace = match reason {
        Some(r) if revoked.iter().any(|c| c.purpose == "document-signer") => {
            crate::replacements::flag_station_cards(&tx, station, r).await?
        }
        _ => 0,
    };
    let details = serde_json::json!({
        "previous_state": state, "reason": reason, "revoked": revoked,
        "cards_to_replace": cards_to_replace,
    });
    let action = if revoked.is_empty() {
        "station.disabled"
    } else {
        "station.disabled-revoked"
    };
    audit::append(
        &tx,
        session.actor(),
        action,
        &format!("station:{station}"),
        &details,
    )
    .await?;
    tx.commit().await?;
    Ok(Disabled {
        station: station.to_owned(),
        state: "disabled",
        reason: reason.map(str::to_owned),
        revoked,
        cards_to_replace,
    })
}

/// Revoke every certificate of `station` not revoked yet (identity, the previous identity of a
/// renewal, audit signer, each Document Signer it was ever certified) with `reason`: each
/// names the CA key that issued it (recorded with it, or found by its signature among every
/// key of `ca_keys`, retired ones too), and that key's CRL and the certificate's OCSP answer
/// are queued.
async fn revoke_certs(
    tx: &Transaction<'_>,
    station: &str,
    reason: &str,
) -> Result<Vec<RevokedStationCert>> {
    // Each certificate names its issuer since it was recorded; older rows get theirs here.
    fill_issuer_keys(tx, Some(station)).await?;
    let rows = tx
        .prepared_query(
            "SELECT purpose, serial, issuer_key FROM station_certs
             WHERE station = $1 AND revoked_at IS NULL ORDER BY purpose FOR UPDATE",
            &[&station],
        )
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let (purpose, serial): (String, Vec<u8>) = (r.get(0), r.get(1));
        let issuer: String = r.get::<_, Option<String>>(2).ok_or_else(|| {
            CentralError::Other(format!(
                "no CA key of this centre signed the {purpose} certificate of station {station}"
            ))
        })?;
        tx.prepared_execute(
            "UPDATE station_certs SET issuer_key = $3, revoked_at = now(), revocation_reason = $4
             WHERE station = $1 AND purpose = $2 AND serial = $5",
            &[&station, &purpose, &issuer, &reason, &serial],
        )
        .await?;
        crate::revocation::publish(tx, &issuer, &serial).await?;
        out.push(RevokedStationCert {
            purpose,
            serial: hex::encode_upper(&serial),
            issuer_key: issuer,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_grouped_crockford_base32_and_read_back_leniently() {
        let code = new_code().unwrap();
        assert_eq!(code.len(), 29);
        assert_eq!(code.matches('-').count(), 4);
        assert!(code
            .chars()
            .all(|c| c == '-' || ALPHABET.contains(&(c as u8))));
        let typed = code.to_lowercase().replace('-', " ");
        assert_eq!(code_digest(&typed), code_digest(&code));
        assert_eq!(code_digest("0O1IL"), code_digest("00111"));
        assert_ne!(new_code().unwrap(), code);
    }

    #[test]
    fn names_and_offices_follow_their_rules() {
        assert!(check_station_name("tas01-st1").is_ok());
        assert!(check_station_name("-x").is_err());
        assert!(check_station_name("Tas01").is_err());
        assert!(check_office("TAS01").is_ok());
        assert!(check_office("TAS1").is_err());
        let e = check_office("tas01").unwrap_err().to_string();
        assert!(e.starts_with("office: "), "{e}");
    }
}
