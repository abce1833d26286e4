//! The per-card PIV management keys the centre derives (docs/centre.md "Card management keys").
//!
//! A card's management key lets whoever holds it generate keys on the card and write its
//! certificates (NIST SP 800-73-4 Part 2 §3.2.4, the issuer's operational-state rights,
//! docs/card.md): a renewal and a PIN unblock need it. A standalone station derives it from a
//! secret in its own HSM, so only that station can serve its cards. For the cards its stations
//! issue, the centre derives it instead — HMAC-SHA256 under the active `card_keys` secret in the
//! centre's HSM over the chip serial and a random value drawn for the issuance job that prepares
//! the card (migration V28: a chip serial alone is printed on the card and can be named in any
//! reservation) — and releases it to the station that has the card in its reader: for the
//! station's own issuance job of that card (`issuance`), or for an active document's card whose
//! current certificates the station read from it (`renewal`, `unblock`). Neither side stores it; every release is audited
//! (`card.key-released`, naming the station, its office, the operator, the purpose and the
//! issuing office) and every refusal too (`request.refused`).

use centre_api::{rules, CardKey, CardKeyRequest};
use deadpool_postgres::{GenericClient, Transaction};

use super::audit;
use crate::db::Prepared;
use crate::enrol::WhoAmI;
use crate::error::{CentralError, Refusal, Result};
use crate::issuance::{check_card_serial, check_job_id, check_operator};
use crate::pki::Centre;

/// The label the first card key gets.
pub const FIRST_LABEL: &str = "card-keys-1";
/// The derivation's purpose string: the station's own (`station::card::MGMT_KEY_PURPOSE`), so
/// both derive alike, each under its own secret.
pub const PURPOSE: &str = "piv-management-key";

/// Make sure the centre has an active card key: recorded in `card_keys` and present in the HSM.
/// The first `serve` after this version generates it (an HMAC secret, sensitive and not
/// extractable), under an advisory lock so that two instances starting together make one.
pub async fn ensure(
    pool: &deadpool_postgres::Pool,
    store: &dyn hsm::KeyStore,
    centre: &str,
) -> Result<String> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.prepared_execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('card-keys', 0))",
        &[],
    )
    .await?;
    let active = tx
        .prepared_opt("SELECT label FROM card_keys WHERE state = 'active'", &[])
        .await?;
    if let Some(row) = active {
        let label: String = row.get(0);
        if store.find(&label)?.is_none() {
            return Err(CentralError::Other(format!(
                "the card key {label} is recorded as active but the HSM has no key of that \
                 label: restore the HSM token (the cards issued under it cannot be renewed or \
                 unblocked without it)"
            )));
        }
        return Ok(label);
    }
    let label = FIRST_LABEL;
    if store.find(label)?.is_none() {
        store.generate_hmac_secret(label)?;
    }
    tx.prepared_execute("INSERT INTO card_keys (label) VALUES ($1)", &[&label])
        .await?;
    crate::audit::append(
        &tx,
        &crate::audit::Actor {
            operator: "idcentral".into(),
            role: "system".into(),
            station: centre.to_owned(),
        },
        "card-keys.created",
        &format!("key:{label}"),
        &serde_json::json!({ "purpose": PURPOSE }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(label, "generated the centre's card key");
    Ok(label.to_owned())
}

fn check(req: &CardKeyRequest) -> Result<()> {
    check_operator(&req.operator)?;
    check_card_serial(&req.card_serial)?;
    match req.purpose.as_str() {
        "issuance" => {
            let job = req.job.as_deref().ok_or_else(|| {
                CentralError::invalid("job", "name the issuance job of the card (issuance)")
            })?;
            check_job_id(job)?;
        }
        "renewal" | "unblock" => {
            if req.document.is_none() {
                return Err(CentralError::invalid(
                    "document",
                    "name the document of the card (renewal, unblock)",
                ));
            }
            super::lookup::check_certificates(&req.certificates)?;
        }
        _ => {
            return Err(CentralError::invalid(
                "purpose",
                "must be issuance, renewal or unblock",
            ))
        }
    }
    Ok(())
}

/// `POST /v1/cards/key`: the management key of the card `req` names, audited.
pub async fn release(centre: &Centre, who: &WhoAmI, req: &CardKeyRequest) -> Result<CardKey> {
    check(req)?;
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    let (label, salt, object, issued_by) = match req.purpose.as_str() {
        "issuance" => for_job(&tx, who, req).await?,
        _ => for_document(&tx, req).await?,
    };
    let serial = u32::from_str_radix(&req.card_serial, 16)
        .map_err(|_| CentralError::invalid("card_serial", "must be 8 hexadecimal digits"))?;
    let store = std::sync::Arc::clone(&centre.store);
    let key_label = label.clone();
    let mut input = serial.to_be_bytes().to_vec();
    input.extend_from_slice(&salt);
    // Derived before the audit append: the append holds the centre's audit lock until the
    // commit, and every audited write in the country would wait behind the HSM meanwhile.
    let secret = tokio::task::spawn_blocking(move || {
        hsm::derive_card_secret(store.as_ref(), &key_label, PURPOSE, &input)
    })
    .await
    .map_err(|e| CentralError::Other(format!("the card key derivation: {e}")))??;
    audit(
        &tx,
        who,
        &req.operator,
        "card.key-released",
        &object,
        serde_json::json!({ "card_serial": req.card_serial.to_uppercase(),
            "purpose": req.purpose, "key": label, "issued_by_office": issued_by }),
    )
    .await?;
    // The key leaves only once its release is committed to the audit log.
    tx.commit().await?;
    Ok(CardKey {
        card_serial: req.card_serial.to_uppercase(),
        key: label,
        secret: hex::encode(&secret[..]),
    })
}

/// The card key's label and the job's random value, the audit object and the issuing office.
type Release = (String, Vec<u8>, String, String);

/// The card of this station's issuance job `req.job`, no other issuance's document: the job's
/// key, or — while the job is only reserved (its card not yet prepared) — the active card key
/// and a new random value, recorded on the job.
async fn for_job(tx: &Transaction<'_>, who: &WhoAmI, req: &CardKeyRequest) -> Result<Release> {
    let job = req.job.as_deref().unwrap_or_default();
    let row = tx
        .prepared_opt(
            "SELECT station, card_serial, state, card_key, card_key_salt FROM jobs
             WHERE id = $1 FOR UPDATE",
            &[&job],
        )
        .await?
        .ok_or_else(|| {
            CentralError::refused(
                Refusal::NotFound,
                rules::JOB_NOT_FOUND,
                format!("the centre has no issuance job {job}"),
            )
        })?;
    if row.get::<_, &str>(0) != who.station {
        return Err(CentralError::refused(
            Refusal::Forbidden,
            rules::JOB_OF_ANOTHER_STATION,
            format!("job {job} is another station's"),
        ));
    }
    if !row.get::<_, &str>(1).eq_ignore_ascii_case(&req.card_serial) {
        return Err(CentralError::refused(
            Refusal::Conflict,
            rules::CARD_NOT_THE_DOCUMENTS,
            format!(
                "card_serial: job {job} issues card {}, not {}",
                row.get::<_, &str>(1),
                req.card_serial
            ),
        ));
    }
    // A chip serial can be read from any card and named in a reservation: the key of a card
    // another job issued is not released for this one.
    let issued = tx
        .prepared_opt(
            "SELECT series, number, office FROM documents
             WHERE upper(card_serial) = upper($1) AND job <> $2 LIMIT 1",
            &[&req.card_serial, &job],
        )
        .await?;
    if let Some(d) = issued {
        return Err(CentralError::refused_at(
            rules::CARD_NOT_THE_DOCUMENTS,
            d.get(2),
            format!(
                "card_serial: card {} is document {} of another issuance",
                req.card_serial,
                crate::numbers::document_number(d.get(0), d.get(1))
            ),
        ));
    }
    let object = format!("job:{job}");
    if let (Some(label), Some(salt)) = (
        row.get::<_, Option<String>>(3),
        row.get::<_, Option<Vec<u8>>>(4),
    ) {
        return Ok((label, salt, object, who.office.clone()));
    }
    if row.get::<_, &str>(2) != "reserved" {
        return Err(CentralError::refused_at(
            rules::CARD_KEY_OF_ISSUING_STATION,
            who.office.clone(),
            format!(
                "card_serial: job {job} was certified without a card key of the centre: the \
                 card is under this station's own key"
            ),
        ));
    }
    let label: String = tx
        .prepared_one("SELECT label FROM card_keys WHERE state = 'active'", &[])
        .await?
        .get(0);
    let mut salt = vec![0u8; 16];
    getrandom::fill(&mut salt)
        .map_err(|e| CentralError::Other(format!("random card key value: {e}")))?;
    tx.prepared_execute(
        "UPDATE jobs SET card_key = $2, card_key_salt = $3 WHERE id = $1",
        &[&job, &label, &salt],
    )
    .await?;
    Ok((label, salt, object, who.office.clone()))
}

/// The card of active document `req.document`, every certificate read from it a current one of
/// the document's (active, or issued by a renewal not yet completed).
async fn for_document(tx: &Transaction<'_>, req: &CardKeyRequest) -> Result<Release> {
    let document = req.document.as_deref().unwrap_or_default();
    let (series, number) = crate::numbers::parse_document(document)?;
    let not_found = || {
        CentralError::refused(
            Refusal::NotFound,
            rules::DOCUMENT_NOT_FOUND,
            format!(
                "the national registry has no document {document} on card {} with the \
                 certificates read from it",
                req.card_serial
            ),
        )
    };
    let d = tx
        .prepared_opt(
            "SELECT d.state, d.office, d.card_serial, d.job, j.card_key, j.card_key_salt
             FROM documents d JOIN jobs j ON j.id = d.job
             WHERE d.series = $1 AND d.number = $2",
            &[&series, &number],
        )
        .await?
        .ok_or_else(not_found)?;
    if !d.get::<_, &str>(2).eq_ignore_ascii_case(&req.card_serial) {
        return Err(not_found());
    }
    let job: String = d.get(3);
    let (all, current) = certificate_serials(tx, &job).await?;
    let among = |set: &[String]| {
        req.certificates
            .iter()
            .all(|s| set.iter().any(|t| t.eq_ignore_ascii_case(s)))
    };
    if !among(&all) {
        return Err(not_found());
    }
    let office: String = d.get(1);
    let state: &str = d.get(0);
    if state != "active" {
        return Err(CentralError::refused_at(
            rules::DOCUMENT_NOT_ACTIVE,
            office,
            format!("document {document} is {state}: its card is not served"),
        ));
    }
    if !among(&current) {
        return Err(CentralError::refused(
            Refusal::NotFound,
            rules::DOCUMENT_NOT_FOUND,
            format!(
                "certificates: those read from card {} are not document {document}'s current \
                 ones (active, or issued by a renewal not yet completed or timed out)",
                req.card_serial
            ),
        ));
    }
    let salt: Option<Vec<u8>> = d.get(5);
    let label = d
        .get::<_, Option<String>>(4)
        .filter(|_| salt.is_some())
        .ok_or_else(|| {
            CentralError::refused_at(
                rules::CARD_KEY_OF_ISSUING_STATION,
                office.clone(),
                format!(
                    "document {document}: its card is under the management key of the station \
                 of office {office} that issued it (issued before the centre derived card \
                 keys): renewal and PIN unblock are served there"
                ),
            )
        })?;
    Ok((
        label,
        salt.unwrap_or_default(),
        format!("document:{document}"),
        office,
    ))
}

/// Every certificate of the document's issuance job, and its current ones: active, or issued
/// by a renewal not yet completed (a card left between a renewal's certificates and its
/// completion carries those), or issued by a renewal the centre aborted (its timeout, or a
/// ca-admin) with no renewal completed since (the same card, left longer: the abort revoked
/// them, the card still carries them). Other revoked ones — on the CRL for anyone to read —
/// prove nothing.
async fn certificate_serials(
    c: &impl GenericClient,
    job: &str,
) -> Result<(Vec<String>, Vec<String>)> {
    let rows = c
        .prepared_query(
            "SELECT c.serial, COALESCE(c.state IN ('active', 'issued')
                    OR (c.state = 'revoked' AND c.revocation_reason = 'cessationOfOperation'
                        AND s.aborted_at_centre
                        AND NOT EXISTS (SELECT 1 FROM service_jobs l
                            WHERE l.document_id = s.document_id AND l.kind = 'renew'
                              AND l.state = 'completed' AND l.created_at > s.created_at)), false)
             FROM certificates c LEFT JOIN service_jobs s ON s.id = c.service_job
             WHERE c.job = $1",
            &[&job],
        )
        .await?;
    let all = super::serials(&rows);
    let current = all
        .iter()
        .zip(&rows)
        .filter(|(_, r)| r.get::<_, bool>(1))
        .map(|(s, _)| s.clone())
        .collect();
    Ok((all, current))
}
