//! The card services through the national centre (docs/centre.md, "Card services"):
//! [`ViaCentre`] puts the [`ServiceSeam`] on the centre's `/v1/services/{job}/…` calls. Each
//! call names a job UUID; a call that times out (or meets a centre instance going away) is sent
//! again with the same request and gets the centre's first answer.
//!
//! [`seam`] picks the implementation: the centre's when the station is enrolled to one, else
//! the station's own CA and registry.

use centre_api::{
    paths, AddressRequest, AddressResponse, CertifyRequest, CertifyResponse, HoldRequest,
    KeyToCertify as WireKey, RenewRequest, RenewResponse, ServiceFinishRequest,
    ServiceFinishResponse,
};
use profiles::card::Slot;
use registry::{Actor, NewAddress};
use serde::{de::DeserializeOwned, Serialize};

use crate::centre::CentreClient;
use crate::certifier::{CardCertificate, KeyToCertify, ProofDigests};
use crate::error::StationError;
use crate::ra::{centre_issuer_key, decode_hex, new_uuid};
use crate::service_seam::{Hold, InStation, Renewal, ServiceSeam};
use crate::Station;

/// Attempts of one call when the centre cannot be reached or times out.
const ATTEMPTS: usize = 3;

/// The services' seam on `st`.
pub fn seam(st: &Station) -> Box<dyn ServiceSeam> {
    if st.config.centre.is_some() {
        Box::new(ViaCentre)
    } else {
        Box::new(InStation)
    }
}

/// A new job UUID for a service.
pub fn job_uuid() -> Result<String, StationError> {
    new_uuid()
}

/// POST `body` to `path`, again (same request) when the centre could not be reached.
pub(crate) fn post<Q: Serialize, R: DeserializeOwned>(
    st: &Station,
    path: &str,
    body: &Q,
) -> Result<R, StationError> {
    let client = CentreClient::for_station(st)?;
    retried(path, || client.post(path, body))
}

/// `call` to `path`, made again (the same request) when the centre could not be reached:
/// [`ATTEMPTS`] in all, a little longer apart each time.
fn retried<R>(path: &str, call: impl Fn() -> Result<R, StationError>) -> Result<R, StationError> {
    let mut last = None;
    for attempt in 1..=ATTEMPTS {
        match call() {
            Err(e @ StationError::CentreUnreachable { .. }) => {
                tracing::warn!(attempt, %path, error = %e, "centre call failed; sending it again");
                last = Some(e);
                std::thread::sleep(std::time::Duration::from_millis(200 * attempt as u64));
            }
            r => return r,
        }
    }
    Err(last.unwrap_or_else(|| StationError::Other("no attempt made".into())))
}

/// Hold `document` at the centre under service job `job` (a repeat after a lost answer is the
/// same job: the centre answers it with its first answer).
pub(crate) fn hold_at_centre(
    st: &Station,
    actor: &Actor,
    job: &str,
    document: &str,
) -> Result<Hold, StationError> {
    let request = HoldRequest {
        operator: actor.operator.clone(),
        document: document.to_owned(),
        identity_confirmed: false,
    };
    post(st, &paths::service(job, "hold"), &request)
}

/// Whether the centre made the hold of `document` under service job `job` (asked again when
/// it cannot be reached): a job unknown there, the hold was never made.
pub(crate) fn centre_made_hold(
    st: &Station,
    job: &str,
    document: &str,
) -> Result<bool, StationError> {
    let path = paths::service_job(job);
    let client = CentreClient::for_station(st)?;
    match retried(&path, || client.get::<centre_api::ServiceJobStatus>(&path)) {
        Ok(s) if s.kind == "hold" && s.document.as_deref() == Some(document) => Ok(true),
        Ok(s) => Err(StationError::Other(format!(
            "the centre's job {job} is a {} job of document {:?}, not a hold of {document}",
            s.kind, s.document
        ))),
        Err(StationError::CentreRefused { refusal, .. })
            if refusal.rule == centre_api::rules::JOB_NOT_FOUND =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Why the centre aborted renewal `uuid` (its timeout, `[issuance] renewal_timeout_seconds`,
/// or a station's abort), or `None` while it is open or completed there. A renewal this station
/// left after the centre's certificates asks before it goes on: an aborted one cannot complete,
/// and its certificates, which the card may carry, are revoked.
pub(crate) fn renewal_aborted_at_centre(
    st: &Station,
    uuid: &str,
) -> Result<Option<String>, StationError> {
    let path = paths::service_job(uuid);
    let client = CentreClient::for_station(st)?;
    let s = retried(&path, || client.get::<centre_api::ServiceJobStatus>(&path))?;
    if s.kind != "renew" {
        return Err(StationError::Other(format!(
            "the centre's job {uuid} is a {} job, not a renewal",
            s.kind
        )));
    }
    Ok((s.state == centre_api::JobState::Aborted).then(|| {
        let by = if s.timed_out {
            "the centre aborted it: it stayed open too long"
        } else {
            "it was aborted at the centre"
        };
        format!(
            "renewal {uuid}: {by} ({})",
            s.abort_reason.as_deref().unwrap_or("no reason recorded")
        )
    }))
}

/// The card services through the centre.
pub struct ViaCentre;

impl ServiceSeam for ViaCentre {
    fn renewal_proof_digests(
        &self,
        st: &mut Station,
        actor: &Actor,
        renewal: &Renewal<'_>,
        keys: &[(Slot, &[u8])],
    ) -> Result<Option<ProofDigests>, StationError> {
        let answer: RenewResponse = post(
            st,
            &paths::service(renewal.uuid, "renew"),
            &RenewRequest {
                operator: actor.operator.clone(),
                document: renewal.document.to_owned(),
                card_serial: renewal.card_serial.to_owned(),
            },
        )?;
        let challenge = decode_hex("challenge", &answer.challenge)?;
        Ok(Some(
            keys.iter()
                .map(|(slot, spki)| {
                    let d =
                        centre_api::proof_digest(renewal.uuid, &challenge, slot.key_ref(), spki);
                    (*slot, d)
                })
                .collect(),
        ))
    }

    fn renewal_certify(
        &self,
        st: &mut Station,
        actor: &Actor,
        renewal: &Renewal<'_>,
        keys: &[KeyToCertify<'_>],
    ) -> Result<Vec<CardCertificate>, StationError> {
        let request = CertifyRequest {
            operator: actor.operator.clone(),
            keys: keys
                .iter()
                .map(|k| WireKey {
                    slot: format!("{:02X}", k.slot.key_ref()),
                    profile: k.profile.to_owned(),
                    public_key: hex::encode(k.public_key),
                    proof: hex::encode(k.proof.unwrap_or_default()),
                })
                .collect(),
        };
        let answer: CertifyResponse = post(st, &paths::service(renewal.uuid, "certify"), &request)?;
        crate::failpoint::hit("centre.renewal.certified");
        let issuer = decode_hex("issuer", &answer.issuer)?;
        let issuer_key_id = centre_issuer_key(st, &issuer)?;
        keys.iter()
            .map(|k| {
                let slot = format!("{:02X}", k.slot.key_ref());
                let c = answer
                    .certificates
                    .iter()
                    .find(|c| c.slot == slot)
                    .ok_or_else(|| {
                        StationError::Other(format!(
                            "the centre answered no certificate for slot {slot}"
                        ))
                    })?;
                Ok(CardCertificate {
                    slot: k.slot,
                    profile: k.profile.to_owned(),
                    der: decode_hex("certificate", &c.der)?,
                    issuer_key_id,
                })
            })
            .collect()
    }

    fn renewal_complete(
        &self,
        st: &mut Station,
        actor: &Actor,
        renewal: &Renewal<'_>,
    ) -> Result<(), StationError> {
        let _: ServiceFinishResponse = post(
            st,
            &paths::service(renewal.uuid, "complete"),
            &ServiceFinishRequest {
                operator: actor.operator.clone(),
                reason: String::new(),
            },
        )?;
        crate::failpoint::hit("centre.renewal.completed");
        Ok(())
    }

    fn renewal_abort(
        &self,
        st: &mut Station,
        actor: &Actor,
        renewal: &Renewal<'_>,
        reason: &str,
    ) -> Result<(), StationError> {
        let request = ServiceFinishRequest {
            operator: actor.operator.clone(),
            reason: reason.chars().take(500).collect(),
        };
        match post::<_, ServiceFinishResponse>(st, &paths::service(renewal.uuid, "abort"), &request)
        {
            Ok(_) => Ok(()),
            // The centre never saw the job: nothing to undo there.
            Err(StationError::CentreRefused { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn renewal_aborted(
        &self,
        st: &Station,
        renewal: &Renewal<'_>,
    ) -> Result<Option<String>, StationError> {
        renewal_aborted_at_centre(st, renewal.uuid)
    }

    fn hold(
        &self,
        st: &Station,
        actor: &Actor,
        document: &str,
    ) -> Result<Option<Hold>, StationError> {
        hold_at_centre(st, actor, &job_uuid()?, document).map(Some)
    }

    fn release(
        &self,
        st: &Station,
        actor: &Actor,
        document: &str,
        identity_confirmed: bool,
    ) -> Result<Option<Hold>, StationError> {
        let request = HoldRequest {
            operator: actor.operator.clone(),
            document: document.to_owned(),
            identity_confirmed,
        };
        post(st, &paths::service(&job_uuid()?, "release"), &request).map(Some)
    }

    fn replacement_settled(
        &self,
        st: &Station,
        actor: &Actor,
        old: &str,
        reason: &str,
        new: Option<&str>,
    ) -> Result<(), StationError> {
        let number = crate::records::parse_document(old)?;
        match new {
            Some(new) => {
                // The centre's word for a card replaced because it was recalled (the centre
                // keeps why it flagged the card): replaced, superseded, linked to the new one.
                let reason = if reason == "recalled" {
                    "replaced"
                } else {
                    reason
                };
                crate::ra::revoke_replaced_at_centre(st, actor, number, reason, Some(new))?;
                Ok(())
            }
            None => match self.release(st, actor, old, true) {
                Ok(_) => Ok(()),
                // Released already (a repeat of this settlement).
                Err(StationError::CentreRefused { refusal, .. })
                    if refusal.rule == centre_api::rules::DOCUMENT_NOT_SUSPENDED =>
                {
                    Ok(())
                }
                Err(e) => Err(e),
            },
        }
    }

    fn address(
        &self,
        st: &Station,
        actor: &Actor,
        pinfl: &str,
        set: Option<&NewAddress>,
        end_on: Option<&str>,
    ) -> Result<Option<AddressResponse>, StationError> {
        let request = AddressRequest {
            operator: actor.operator.clone(),
            pinfl: pinfl.to_owned(),
            set: set.cloned(),
            end_temporary_on: end_on.map(str::to_owned),
        };
        post(st, &paths::service(&job_uuid()?, "address"), &request).map(Some)
    }
}
