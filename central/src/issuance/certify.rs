//! `POST /v1/jobs/{job}/certify`: step 3. Each card key must be a P-256 SubjectPublicKeyInfo for
//! a slot of the card profile with that slot's holder certificate profile, signed by itself over
//! [`centre_api::proof_digest`] (the job, its challenge, the slot, the key). The e-Signature CA
//! issues the certificates in the HSM; they are recorded `issued` in the step's transaction.

use crate::db::Prepared;
use std::sync::Arc;

use centre_api::{rules, CertifyRequest, CertifyResponse, JobState, KeyToCertify};
use deadpool_postgres::Transaction;
use profiles::card::Slot;

use super::{actor, certificates, check_operator, json, station_job, Job};
use crate::audit;
use crate::enrol::WhoAmI;
use crate::error::{CentralError, Refusal, Result};
use crate::pki::Centre;

/// A key checked for certification: its slot, profile and SubjectPublicKeyInfo.
pub(crate) struct Checked {
    pub slot: Slot,
    pub profile: String,
    pub spki: Vec<u8>,
}

/// The card profile's slot named `text` (hex key reference, e.g. `9A`).
fn slot_of(centre: &Centre, text: &str) -> Result<(Slot, String)> {
    let card = centre
        .profiles
        .document_and_card(profiles::DEFAULT_DOCUMENT)?
        .1;
    let reference = u8::from_str_radix(text, 16)
        .ok()
        .filter(|_| text.len() == 2);
    card.keys
        .iter()
        .find(|k| Some(k.slot.key_ref()) == reference)
        .map(|k| (k.slot, k.certificate_profile.clone()))
        .ok_or_else(|| {
            let known: Vec<String> = card.keys.iter().map(|k| k.slot.to_string()).collect();
            CentralError::invalid(
                "keys.slot",
                format!(
                    "{text:?} is not a key slot of card profile {} (slots: {})",
                    card.card.name,
                    known.join(", ")
                ),
            )
        })
}

/// Check one key: its slot and profile against the card profile, its encoding and its proof.
fn check_key(centre: &Centre, job: &Proven<'_>, k: &KeyToCertify) -> Result<Checked> {
    let (slot, profile) = slot_of(centre, &k.slot)?;
    if k.profile != profile {
        return Err(CentralError::invalid(
            "keys.profile",
            format!(
                "slot {slot} takes certificate profile {profile}, not {:?} (only the card profile's holder profiles are issued here)",
                k.profile
            ),
        ));
    }
    let spki = hex::decode(&k.public_key).map_err(|_| {
        CentralError::invalid("keys.public_key", "must be hex DER (SubjectPublicKeyInfo)")
    })?;
    let proof = hex::decode(&k.proof)
        .map_err(|_| CentralError::invalid("keys.proof", "must be hex DER (ECDSA signature)"))?;
    let digest = centre_api::proof_digest(job.id, job.challenge, slot.key_ref(), &spki);
    let verified = ca::verify_possession(&spki, &digest, &proof)
        .map_err(|e| CentralError::invalid("keys.public_key", format!("slot {slot}: {e}")))?;
    if !verified {
        return Err(CentralError::refused(
            Refusal::BadRequest,
            rules::PROOF_OF_POSSESSION_FAILED,
            format!(
                "slot {slot}: the proof is not the key's ECDSA P-256 signature over the proof digest of job {} and its challenge",
                job.id
            ),
        ));
    }
    Ok(Checked {
        slot,
        profile,
        spki,
    })
}

/// The job a proof of possession is bound to: its UUID and the centre's challenge.
pub(crate) struct Proven<'a> {
    pub id: &'a str,
    pub challenge: &'a [u8],
}

/// Check every key of a certify request (issuance or renewal) against the card profile and
/// its proof of possession for `job`.
pub(crate) fn check_keys(
    centre: &Centre,
    job: &Proven<'_>,
    req: &CertifyRequest,
) -> Result<Vec<Checked>> {
    if req.keys.is_empty() {
        return Err(CentralError::invalid("keys", "must name at least one key"));
    }
    let checked = req
        .keys
        .iter()
        .map(|k| check_key(centre, job, k))
        .collect::<Result<Vec<_>>>()?;
    for (i, a) in checked.iter().enumerate() {
        for b in &checked[..i] {
            if a.slot == b.slot {
                return Err(CentralError::invalid(
                    "keys.slot",
                    format!("slot {} is named twice", a.slot),
                ));
            }
            if a.spki == b.spki {
                return Err(CentralError::invalid(
                    "keys.public_key",
                    format!(
                        "slots {} and {} carry the same key: each slot needs its own",
                        b.slot, a.slot
                    ),
                ));
            }
        }
    }
    Ok(checked)
}

/// Issue the certificates in the HSM (on the blocking pool: the HSM call blocks).
async fn issue(
    centre: &Arc<Centre>,
    tx: &Transaction<'_>,
    job: &Job,
    esign: Arc<ca::Issuer>,
    keys: Vec<Checked>,
) -> Result<Vec<(Checked, ca::IssuedCert)>> {
    // Read through the step's own connection: a second one from the pool could wait forever
    // when every connection is held by a certify.
    let holder = crate::holders::get(tx, job.holder_id).await?;
    let c = Arc::clone(centre);
    tokio::task::spawn_blocking(move || {
        let country = &c.profiles.document(profiles::DEFAULT_DOCUMENT)?.country;
        let subject =
            ca::holder_subject(&holder.pinfl, &holder.surname, &holder.given_names, country);
        let now = std::time::SystemTime::now();
        keys.into_iter()
            .map(|k| {
                let profile = c.profiles.cert(&k.profile)?;
                let cert = ca::issue(c.store.as_ref(), profile, &esign, &k.spki, &subject, now)?;
                Ok((k, cert))
            })
            .collect::<Result<Vec<_>>>()
    })
    .await
    .map_err(|e| CentralError::Other(format!("issuing task: {e}")))?
}

/// Certify (see the module documentation). A repeated request gets the same certificates.
pub async fn certify(
    centre: &Arc<Centre>,
    who: &WhoAmI,
    id: &str,
    req: &CertifyRequest,
) -> Result<CertifyResponse> {
    check_operator(&req.operator)?;
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    let job = station_job(&tx, who, id, true).await?;
    // The issuer is the key that signed this job's certificates (a repeat after a rotation
    // still names the key that issued them).
    let answer = |(certificates, issuer): (Vec<_>, Vec<u8>)| CertifyResponse {
        job: job.id.clone(),
        certificates,
        issuer: hex::encode(issuer),
    };
    // An aborted job's certificates are revoked: never hand them out again, even to a repeat.
    if job.state == JobState::Aborted {
        return Err(super::aborted(&job));
    }
    if super::repeated(&job.id, "certify", job.certify_request.as_ref(), req)?.is_some() {
        return Ok(answer(issued(&tx, &job.id).await?));
    }
    match job.state {
        JobState::Reserved => {}
        JobState::Aborted => return Err(super::aborted(&job)),
        s => {
            return Err(super::conflict(format!(
                "job {} is {}: certify comes after reserve only",
                job.id,
                super::state_str(s)
            )))
        }
    }
    let proven = Proven {
        id: &job.id,
        challenge: &job.challenge,
    };
    let keys = check_keys(centre, &proven, req)?;
    // The active e-Signature CA key, read once for the whole job (a rotation's switch waits
    // for this transaction).
    let esign = centre.active_issuer(&tx, "esign").await?;
    let made = issue(centre, &tx, &job, esign, keys).await?;
    let mut serials = Vec::new();
    for (k, cert) in &made {
        tx.prepared_execute(
            "INSERT INTO certificates (serial, job, holder_id, slot, profile, cert_der, issuer_key, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'issued')",
            &[&cert.serial, &job.id, &job.holder_id, &k.slot.to_string(), &k.profile, &cert.der, &cert.issuer_key_label],
        )
        .await?;
        serials.push(serde_json::json!({ "slot": k.slot.to_string(), "profile": k.profile, "serial": hex::encode_upper(&cert.serial) }));
    }
    super::set_state(
        &tx,
        &job.id,
        JobState::Certified,
        super::Step::Certify,
        &json(req)?,
    )
    .await?;
    let details =
        serde_json::json!({ "job": job.id, "document": job.document(), "certificates": serials });
    // Read before the audit append: its lock is held until the commit.
    let certs = issued(&tx, &job.id).await?;
    audit::append(
        &tx,
        &actor(who, &req.operator),
        "job.certified",
        &format!("job:{}", job.id),
        &details,
    )
    .await?;
    tx.commit().await?;
    Ok(answer(certs))
}

/// The job's certificates and the certificate of the key that issued them.
async fn issued(
    tx: &Transaction<'_>,
    job: &str,
) -> Result<(Vec<centre_api::IssuedCertificate>, Vec<u8>)> {
    let certs = certificates(tx, job).await?;
    let issuer = tx
        .prepared_one(
            "SELECT k.cert_der FROM ca_keys k
             WHERE k.label = (SELECT issuer_key FROM certificates
                              WHERE job = $1 AND service_job IS NULL ORDER BY slot LIMIT 1)",
            &[&job],
        )
        .await?
        .get(0);
    Ok((certs, issuer))
}
