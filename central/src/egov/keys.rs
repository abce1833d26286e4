//! The centre's e-government keys, both P-256 in its HSM, never extractable:
//! - `centre-egov-1` signs the messages (JWS ES256), certified by the National Root CA under the
//!   `egov-signer` profile (EKU id-kp-idstationEgovMessageSigning): a receiver checks a message
//!   with the root certificate alone;
//! - `centre-egov-tls-1` is the client key of the mutual TLS connection, certified by the
//!   Station CA under the `station-identity` profile (EKU clientAuth), its TLS 1.3 signature made
//!   in the HSM through `hsm::tls`, like a station's identity. The receiver trusts the Station CA
//!   (or the root above it) for client certificates.
//!
//! [`ensure`] makes them once (`init`, or the first `serve` of a centre initialised before them):
//! idempotent, under an advisory lock so several instances make one pair, an HSM key of the
//! label left by an interrupted run is reused, and each certificate is audited
//! (`egov.key-certified`). It also keeps them certified: a certificate with less than a sixth
//! of its validity left, or whose CA key was revoked, is replaced by a new certificate of the
//! same HSM key from the CA's active key (`egov.key-recertified`, naming why and both serials).
//! The publisher runs it at its start and every hour ([`RECHECK`]).

use crate::db::Prepared;
use std::time::SystemTime;

use deadpool_postgres::Pool;
use hsm::KeyStore;

use super::{JWS_KEY_LABEL, TLS_KEY_LABEL};
use crate::audit::{self, Actor};
use crate::error::{CentralError, Result};

/// Key of the advisory lock that serialises making the keys.
const EGOV_KEYS_LOCK: i64 = 0x0e90_7ea5;

/// How often the publisher looks whether a certificate is due ([`renewal_due`]).
pub const RECHECK: std::time::Duration = std::time::Duration::from_secs(3600);

/// The two keys: HSM label and certificate chain (DER, end entity first, then its CA).
#[derive(Debug, Clone)]
pub struct EgovKeys {
    pub jws_label: String,
    pub jws_chain: Vec<Vec<u8>>,
    pub tls_label: String,
    pub tls_chain: Vec<Vec<u8>>,
}

/// One key's purpose: how it is named, certified and by whom.
struct Purpose {
    name: &'static str,
    label: &'static str,
    ca: &'static str,
    profile: &'static str,
    common_name: &'static str,
}

const JWS: Purpose = Purpose {
    name: "jws",
    label: JWS_KEY_LABEL,
    ca: "root",
    profile: "egov-signer",
    common_name: "e-government message signer",
};

const TLS: Purpose = Purpose {
    name: "tls-client",
    label: TLS_KEY_LABEL,
    ca: "station-ca",
    profile: "station-identity",
    common_name: "e-government client",
};

/// Both keys, made and certified where missing (see the module documentation).
/// Certificates are made under `profiles`, the centre's (URLs at `[public] base_url`).
pub async fn ensure(
    pool: &Pool,
    store: &dyn KeyStore,
    profiles: &profiles::ProfileSet,
    centre: &str,
) -> Result<EgovKeys> {
    let (jws_label, jws_chain) = ensure_one(pool, store, profiles, centre, &JWS).await?;
    let (tls_label, tls_chain) = ensure_one(pool, store, profiles, centre, &TLS).await?;
    Ok(EgovKeys {
        jws_label,
        jws_chain,
        tls_label,
        tls_chain,
    })
}

/// The active certificate of `purpose` (`jws` or `tls-client`), if made.
pub async fn active_cert(
    client: &impl deadpool_postgres::GenericClient,
    purpose: &str,
) -> Result<Option<(String, Vec<u8>)>> {
    Ok(client
        .prepared_opt(
            "SELECT label, cert_der FROM egov_keys WHERE purpose = $1 AND state = 'active'",
            &[&purpose],
        )
        .await?
        .map(|r| (r.get(0), r.get(1))))
}

/// The key of CA `ca` (any state) that signed `der`: its label, state and certificate.
async fn issuer_of(
    client: &impl deadpool_postgres::GenericClient,
    ca: &str,
    der: &[u8],
) -> Result<Option<(String, String, Vec<u8>)>> {
    let rows = client
        .prepared_query(
            "SELECT label, state, cert_der FROM ca_keys WHERE ca = $1",
            &[&ca],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get::<_, Vec<u8>>(2)))
        .find(|(_, _, c)| ca::issued_by(der, c).unwrap_or(false)))
}

/// Why certificate `der` must be replaced now, if it must: its CA key (`issuer_state`) revoked,
/// or less than a sixth of its validity left at `now` (six months of the TLS client's three
/// years, ten of the signer's five), so a certificate never runs out under a running publisher.
fn renewal_due(der: &[u8], issuer_state: Option<&str>, now: SystemTime) -> Result<Option<String>> {
    if issuer_state == Some("revoked") {
        return Ok(Some("its CA key was revoked".into()));
    }
    let (from, until) = ca::certificate_validity(der)
        .map_err(|e| CentralError::Database(format!("egov_keys: certificate: {e}")))?;
    Ok(due_by_time(from, until, now))
}

/// [`renewal_due`]'s clock: less than a sixth of `from`..`until` left at `now`.
fn due_by_time(from: SystemTime, until: SystemTime, now: SystemTime) -> Option<String> {
    let whole = until.duration_since(from).unwrap_or_default();
    let left = until.duration_since(now).unwrap_or_default();
    (left < whole / 6).then(|| {
        format!(
            "{} day(s) of its validity left, less than a sixth",
            left.as_secs() / 86_400
        )
    })
}

/// [`certify_one`]; when it fails while the current certificate is still valid (an HSM that
/// does not answer, a CA certificate ending within a day), that one is kept, logged, and the
/// next look tries again.
async fn ensure_one(
    pool: &Pool,
    store: &dyn KeyStore,
    profiles: &profiles::ProfileSet,
    centre: &str,
    p: &Purpose,
) -> Result<(String, Vec<Vec<u8>>)> {
    let e = match certify_one(pool, store, profiles, centre, p).await {
        Ok(chain) => return Ok(chain),
        Err(e) => e,
    };
    let client = pool.get().await?;
    let Some((label, der)) = active_cert(&client, p.name).await? else {
        return Err(e);
    };
    let valid = ca::certificate_validity(&der).is_ok_and(|(_, until)| until > SystemTime::now());
    if !valid || check_key_matches(store, &label, &der).is_err() {
        return Err(e);
    }
    tracing::warn!(key = %label, error = %e, "could not certify the e-government key again; its current certificate is kept");
    let issuer_der = match issuer_of(&client, p.ca, &der).await? {
        Some((_, _, c)) => c,
        None => return Err(e),
    };
    Ok((label, vec![der, issuer_der]))
}

/// The key of `p` certified: made and certified when missing, certified again when due
/// ([`renewal_due`]), else the current certificate.
async fn certify_one(
    pool: &Pool,
    store: &dyn KeyStore,
    profiles: &profiles::ProfileSet,
    centre: &str,
    p: &Purpose,
) -> Result<(String, Vec<Vec<u8>>)> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.prepared_execute("SELECT pg_advisory_xact_lock($1)", &[&EGOV_KEYS_LOCK])
        .await?;
    let ca = tx
        .prepared_opt(
            "SELECT label, cert_der FROM ca_keys WHERE ca = $1 AND state = 'active'",
            &[&p.ca],
        )
        .await?
        .ok_or(CentralError::NotInitialised)?;
    let (ca_label, ca_der): (String, Vec<u8>) = (ca.get(0), ca.get(1));
    let mut replaces = None;
    if let Some((label, der)) = active_cert(&tx, p.name).await? {
        // After a rollover of its CA the certificate is still under the key that issued it:
        // that key's certificate goes with it, not the active one's.
        let issuer = issuer_of(&tx, p.ca, &der).await?;
        let why = renewal_due(
            &der,
            issuer.as_ref().map(|(_, state, _)| state.as_str()),
            SystemTime::now(),
        )?;
        let Some(why) = why else {
            let issuer_der = issuer.map_or(ca_der, |(_, _, c)| c);
            tx.commit().await?;
            check_key_matches(store, &label, &der)?;
            return Ok((label, vec![der, issuer_der]));
        };
        check_key_matches(store, &label, &der)?;
        replaces = Some((label, der, why));
    }
    let label = replaces.as_ref().map_or(p.label, |(l, _, _)| l.as_str());
    if store.find(label)?.is_none() {
        store.generate_p256(label)?;
    }
    let spki = store.public_key_spki(label)?;
    let issuer = ca::Issuer::new(store, &ca_label, &ca_der)?;
    // Never past the CA's own end (RFC 5280 path validation would refuse it): the profile's
    // validity, or the whole days the CA certificate has left.
    let mut profile = profiles.cert(p.profile)?.clone();
    profile.validity.days =
        ca::days_within_issuer(profile.validity.days, issuer.not_after(), SystemTime::now());
    if profile.validity.days == 0 {
        return Err(CentralError::Other(format!(
            "the {} CA certificate {ca_label} ends within a day: no certificate for {label}",
            p.ca
        )));
    }
    let cert = ca::issue_station_cert(
        store,
        &profile,
        &issuer,
        &spki,
        &format!("{centre} {}", p.common_name),
        std::time::SystemTime::now(),
    )?;
    let mut details = serde_json::json!({
        "key_label": label,
        "purpose": p.name,
        "issuer_key": ca_label,
        "serial": cert.serial_hex(),
        "fingerprint_sha256": ca::fingerprint_sha256(&cert.der)?,
        "profile": p.profile,
    });
    let action = match &replaces {
        None => {
            tx.prepared_execute(
                "INSERT INTO egov_keys (label, purpose, state, cert_der) VALUES ($1, $2, 'active', $3)",
                &[&label, &p.name, &cert.der],
            )
            .await?;
            "egov.key-certified"
        }
        Some((_, old, why)) => {
            // The same HSM key, certified again: the row keeps its label, the old certificate
            // stays in the audit event.
            tx.prepared_execute(
                "UPDATE egov_keys SET cert_der = $2, created_at = now() WHERE label = $1",
                &[&label, &cert.der],
            )
            .await?;
            details["why"] = serde_json::json!(why);
            details["replaces_serial"] = serde_json::json!(serial_hex(old));
            "egov.key-recertified"
        }
    };
    let actor = Actor {
        operator: "idcentral".into(),
        role: "system".into(),
        station: centre.to_owned(),
    };
    audit::append(&tx, &actor, action, &format!("egov-key:{label}"), &details).await?;
    tx.commit().await?;
    tracing::info!(
        key = label,
        purpose = p.name,
        action,
        "certified an e-government key"
    );
    Ok((label.to_owned(), vec![cert.der, ca_der]))
}

/// Certificate `der`'s serial number, hexadecimal (empty when it does not parse).
fn serial_hex(der: &[u8]) -> String {
    use der::Decode;
    x509_cert::Certificate::from_der(der)
        .map(|c| hex::encode_upper(c.tbs_certificate().serial_number().as_bytes()))
        .unwrap_or_default()
}

/// The certificate must hold the public key of the HSM key `label`.
fn check_key_matches(store: &dyn KeyStore, label: &str, cert_der: &[u8]) -> Result<()> {
    use der::{Decode, Encode};
    let spki = store.public_key_spki(label)?;
    let c = x509_cert::Certificate::from_der(cert_der)
        .map_err(|e| CentralError::Database(format!("egov_keys.{label}: certificate: {e}")))?;
    let in_cert = c
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| CentralError::Database(format!("egov_keys.{label}: certificate: {e}")))?;
    if in_cert != spki {
        return Err(CentralError::Conflict(format!(
            "egov_keys.{label}: the certificate does not hold the HSM key {label}'s public key"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::due_by_time;
    use std::time::{Duration, SystemTime};

    const DAY: Duration = Duration::from_secs(86_400);

    /// Three years of validity (the TLS client's): renewed in its last six months, not before;
    /// one that has ended is due too.
    #[test]
    fn a_certificate_is_renewed_in_the_last_sixth_of_its_validity() {
        let from = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let until = from + 1095 * DAY;
        assert_eq!(due_by_time(from, until, from + 900 * DAY), None);
        assert_eq!(due_by_time(from, until, from + 912 * DAY), None);
        let due = due_by_time(from, until, from + 913 * DAY).expect("due");
        assert!(due.starts_with("182 day(s)"), "{due}");
        assert!(due_by_time(from, until, until + DAY).is_some());
    }
}
