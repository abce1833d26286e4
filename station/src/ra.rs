//! The station as a registration authority of the national centre (docs/centre.md, "Issuance
//! as a protocol"): [`CentreRegistrar`] and [`CentreCertifier`] put the issuance job's two
//! seams on the centre's API (`centre_api`), so an enrolled station issues with the same job,
//! journal and recovery as a standalone one.
//!
//! ```text
//! reserve ─► (keys generated on the card) ─► certify (each key signs the centre's challenge)
//!   ─► (card written, LOCKED) ─► complete            … or abort (certificates revoked)
//! ```
//!
//! The centre decides what is national: the holder rule (one active card in the country), the
//! document number (from the station's block) and the certificates. The station keeps its own
//! SQLite registry as the journal of its jobs and a mirror of what the centre answered, so
//! `show`, recovery and the audit log work as on a standalone station.
//!
//! Every call names the job by a UUID drawn before the first call, and the centre answers a
//! repeated call with its first answer; so the station may always retry. The UUID is written
//! to `DATA/centre-pending/` before `reserve` goes out and removed once the local job records
//! it: a crash in between leaves a file that [`recover_pending`] settles by aborting the
//! centre's job (its number is released: nothing was printed).

use std::path::{Path, PathBuf};

use centre_api::{
    paths, AbortRequest, AbortResponse, CertifyRequest, CertifyResponse, CompleteRequest,
    CompleteResponse, JobState, JobStatus, KeyToCertify as WireKey, NumberOutcome, ReserveRequest,
    ReserveResponse, StationStatus,
};
use profiles::card::Slot;
use registry::{
    Actor, CaKeyState, DocumentNumber, NewHolder, NumberState, Rollback, RollbackSummary,
};
use serde::{Deserialize, Serialize};

use crate::centre::CentreClient;
use crate::certifier::{CardCertificate, Certifier, KeyToCertify, ProofDigests};
use crate::datadir::{Work, WorkLock};
use crate::error::StationError;
use crate::holder::ValidHolder;
use crate::registrar::{
    JournalEntry, LocalRegistry, RecordedCertificate, Registrar, Reservation, Reserved,
};
use crate::Station;

/// The journal step (finished in the reserve transaction) that records the centre's job.
pub const RESERVE_STEP: &str = "centre.reserve";

/// The seams of an issuance on `st`: the centre's when the station is enrolled to one, else the
/// station's own CA and registry.
pub fn seams(st: &Station) -> (Box<dyn Certifier>, Box<dyn Registrar>) {
    if st.config.centre.is_some() {
        (Box::new(CentreCertifier), Box::new(CentreRegistrar))
    } else {
        (
            Box::new(crate::certifier::InStationCa),
            Box::new(LocalRegistry),
        )
    }
}

/// The centre's job of local job `job_id`, as the reserve step recorded it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CentreJob {
    centre_job: String,
    challenge: String,
    document: String,
}

fn centre_job(st: &Station, job_id: i64) -> Result<CentreJob, StationError> {
    let job = st
        .registry
        .job(job_id)?
        .ok_or_else(|| StationError::NotFound(format!("job {job_id}")))?;
    let step = job
        .steps
        .iter()
        .find(|s| s.step == RESERVE_STEP)
        .ok_or_else(|| {
            StationError::Other(format!(
                "job {job_id} has no {RESERVE_STEP} step: it was not reserved at the centre"
            ))
        })?;
    serde_json::from_str(&step.details)
        .map_err(|e| StationError::Other(format!("job {job_id}: {RESERVE_STEP} details: {e}")))
}

/// New job UUID (RFC 9562 version 4, from the OS CSPRNG).
pub(crate) fn new_uuid() -> Result<String, StationError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| StationError::Other(format!("random job id: {e}")))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

// ---------------------------------------------------------------------------------------------
// Pending reservations

/// The work lock of a reservation: the first 64 bits of its UUID.
fn reservation_work(uuid: &str) -> Work {
    let hex16: String = uuid.chars().filter(|c| *c != '-').take(16).collect();
    Work::CentreReservation(u64::from_str_radix(&hex16, 16).unwrap_or(0))
}

/// A reserve that went out and is not yet recorded in a local job.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    job: String,
    pinfl: String,
    card_serial: String,
}

fn pending_dir(st: &Station) -> PathBuf {
    st.layout.root.join("centre-pending")
}

fn pending_file(st: &Station, job: &str) -> PathBuf {
    pending_dir(st).join(format!("{job}.json"))
}

fn write_pending(st: &Station, p: &Pending) -> Result<(), StationError> {
    let dir = pending_dir(st);
    registry::files::create_dir_private(&dir).map_err(|e| StationError::io(&dir, e))?;
    let file = pending_file(st, &p.job);
    let text = serde_json::to_vec(p).map_err(|e| StationError::Other(e.to_string()))?;
    registry::files::write_new_synced(&file, &text).map_err(|e| StationError::io(&file, e))
}

fn remove_pending(st: &Station, job: &str) {
    let file = pending_file(st, job);
    if let Err(e) = std::fs::remove_file(&file) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::error!(path = %file.display(), error = %e, "could not remove a settled pending reservation");
        }
    }
}

/// Settle reservations the centre may hold for jobs this station never recorded (a crash or a
/// lost answer between `reserve` and the local commit): each is aborted at the centre (its
/// number released) and its file removed. Left for the next run when the centre cannot be
/// reached. Returns the job UUIDs settled.
pub fn recover_pending(st: &Station, actor: &Actor) -> Result<Vec<String>, StationError> {
    let dir = pending_dir(st);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut settled = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        let Some(pending) = read_pending(&path) else {
            continue;
        };
        let Ok(_lock) = WorkLock::acquire(&st.layout.root, reservation_work(&pending.job)) else {
            continue;
        };
        if !path.exists() {
            continue;
        }
        if let Some(job) = local_job_of(st, &pending.job)? {
            tracing::info!(job, centre_job = %pending.job, "pending reservation already recorded");
        } else {
            abort_at_centre(
                st,
                actor,
                &pending.job,
                "the station did not record the reservation (interrupted); recovery released it",
                NumberOutcome::Released,
            )?;
        }
        remove_pending(st, &pending.job);
        settled.push(pending.job);
    }
    Ok(settled)
}

fn read_pending(path: &Path) -> Option<Pending> {
    let text = std::fs::read(path).ok()?;
    match serde_json::from_slice(&text) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "unreadable pending reservation left alone");
            None
        }
    }
}

/// The local job that recorded centre job `uuid`, if any.
fn local_job_of(st: &Station, uuid: &str) -> Result<Option<i64>, StationError> {
    let pattern = format!("%\"centre_job\":\"{uuid}\"%");
    let mut stmt = st
        .registry
        .connection()
        .prepare("SELECT job_id FROM job_steps WHERE step = ?1 AND details LIKE ?2 LIMIT 1")
        .map_err(|e| StationError::Other(format!("look up centre job {uuid}: {e}")))?;
    let ids: Vec<i64> = stmt
        .query_map([RESERVE_STEP, pattern.as_str()], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| StationError::Other(format!("look up centre job {uuid}: {e}")))?;
    Ok(ids.first().copied())
}

/// `abort` at the centre; a job the centre never saw (404) needs nothing.
fn abort_at_centre(
    st: &Station,
    actor: &Actor,
    uuid: &str,
    reason: &str,
    number: NumberOutcome,
) -> Result<Option<AbortResponse>, StationError> {
    let client = CentreClient::for_station(st)?;
    let request = AbortRequest {
        operator: actor.operator.clone(),
        reason: reason.chars().take(500).collect(),
        number,
    };
    match client.post::<_, AbortResponse>(&paths::abort(uuid), &request) {
        Ok(r) => Ok(Some(r)),
        Err(StationError::CentreRefused { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Registrar

/// Holder, number and job records through the centre, mirrored in the local registry.
pub struct CentreRegistrar;

impl Registrar for CentreRegistrar {
    fn check_holder(
        &self,
        st: &Station,
        record: &NewHolder,
        update_holder: bool,
    ) -> Result<(), StationError> {
        // The local mirror refuses early what it already knows; the centre checks again.
        LocalRegistry.check_holder(st, record, update_holder)
    }

    fn precheck(&self, st: &Station, holder: &ValidHolder) -> Result<(), StationError> {
        // Unreachable, disabled or without numbers: said now, before the card is touched.
        let status: StationStatus = CentreClient::for_station(st)?.get(paths::STATUS)?;
        if status.state != "enrolled" {
            return Err(StationError::NotPermitted(format!(
                "the centre reports station {} as {}: it may not issue",
                status.station, status.state
            )));
        }
        // The holder rule is the centre's (its `reserve` refuses naming the office): this
        // station's mirror does not see documents another office took out of use.
        let _ = holder;
        Ok(())
    }

    fn reserve(
        &self,
        st: &mut Station,
        actor: &Actor,
        request: &Reservation<'_>,
    ) -> Result<Reserved, StationError> {
        let uuid = new_uuid()?;
        let serial = crate::card::serial_text(request.card_serial);
        let _lock = WorkLock::acquire(&st.layout.root, reservation_work(&uuid))?;
        write_pending(
            st,
            &Pending {
                job: uuid.clone(),
                pinfl: request.record.pinfl.clone(),
                card_serial: serial.clone(),
            },
        )?;
        let wire = ReserveRequest {
            job: uuid.clone(),
            operator: actor.operator.clone(),
            holder: request.record.clone(),
            address: registry::NewAddress::from(request.holder),
            update_holder: request.update_holder,
            card_serial: serial.clone(),
        };
        let answer: ReserveResponse =
            match CentreClient::for_station(st)?.post(paths::RESERVE, &wire) {
                Ok(a) => a,
                Err(e @ StationError::CentreRefused { .. }) => {
                    // Refused: the centre reserved nothing.
                    remove_pending(st, &uuid);
                    return Err(e);
                }
                // Unreachable or an unclear answer: the file stays for recovery to settle.
                Err(e) => return Err(e),
            };
        let number = DocumentNumber::new(&answer.series, answer.number)?;
        let reserved = record_reservation(st, actor, request, &uuid, &answer, number);
        match reserved {
            Ok(r) => {
                remove_pending(st, &uuid);
                Ok(r)
            }
            Err(e) => {
                // Not recorded here: release the centre's reservation now (or recovery will).
                if abort_at_centre(
                    st,
                    actor,
                    &uuid,
                    &format!("the station could not record the reservation: {e}"),
                    NumberOutcome::Released,
                )
                .is_ok()
                {
                    remove_pending(st, &uuid);
                }
                Err(e)
            }
        }
    }

    fn record_certificates(
        &self,
        st: &mut Station,
        job_id: i64,
        step_id: i64,
        holder: &ValidHolder,
        certificates: &[CardCertificate],
    ) -> Result<Vec<RecordedCertificate>, StationError> {
        LocalRegistry.record_certificates(st, job_id, step_id, holder, certificates)
    }

    fn complete(
        &self,
        st: &mut Station,
        actor: &Actor,
        completion: &registry::Completion,
        step_name: &str,
    ) -> Result<(), StationError> {
        let cj = centre_job(st, completion.job_id)?;
        let mut request = CompleteRequest {
            operator: actor.operator.clone(),
            card_serial: completion.card_serial.clone(),
            date_of_issue: completion.date_of_issue.clone(),
            date_of_expiry: completion.date_of_expiry.clone(),
            document_signer: completion.document_signer.clone(),
        };
        let client = CentreClient::for_station(st)?;
        let path = paths::complete(&cj.centre_job);
        let answer = match client.post::<_, CompleteResponse>(&path, &request) {
            Err(StationError::CentreRefused {
                status: 400,
                refusal,
            }) if CompleteRequest::refused_as_unknown_field(&refusal) => {
                // A centre older than this station: the card is locked, so complete without
                // the field (the centre then records no Document Signer for the document).
                tracing::warn!(
                    job = %cj.centre_job,
                    "the centre does not take the Document Signer at complete: upgrade the centre"
                );
                request.document_signer = None;
                client.post::<_, CompleteResponse>(&path, &request)
            }
            other => other,
        };
        match answer {
            Ok(r) if r.state == JobState::Completed => {}
            Ok(r) => {
                return Err(StationError::Conflict(format!(
                    "the centre did not complete job {} (it is {:?})",
                    cj.centre_job, r.state
                )))
            }
            Err(StationError::CentreRefused {
                status: 409,
                refusal,
            }) if refusal.rule == centre_api::rules::JOB_ABORTED => {
                return Err(self.aborted_by_centre(st, actor, completion, &refusal))
            }
            Err(e) => return Err(e),
        }
        crate::failpoint::hit("centre.completed");
        LocalRegistry.complete(st, actor, completion, step_name)?;
        // The completion's signed checkpoint, anchored at the centre.
        crate::centre::audit_push::push_after(st, "issuance.completed");
        Ok(())
    }

    fn abort(
        &self,
        st: &mut Station,
        actor: &Actor,
        rollback: &Rollback,
        card_serial: Option<&str>,
    ) -> Result<RollbackSummary, StationError> {
        if let Ok(cj) = centre_job(st, rollback.job_id) {
            let number = match rollback.number {
                NumberState::Released => NumberOutcome::Released,
                _ => NumberOutcome::Spoiled,
            };
            match abort_at_centre(st, actor, &cj.centre_job, &rollback.reason, number) {
                Ok(_) => {}
                Err(StationError::CentreRefused { status: 409, .. }) => {
                    refuse_abort_of_completed(st, &cj.centre_job)?
                }
                Err(e) => return Err(e),
            }
        }
        LocalRegistry.abort(st, actor, rollback, card_serial)
    }
}

impl CentreRegistrar {
    /// The centre aborted the job before it completed (its timeout, or a revoked CA key that
    /// issued the job's certificates): the card holds certificates the centre has revoked. The
    /// job is rolled back here too (number spoiled: it is on the card), and the error says the
    /// card is void. A rollback that fails leaves the job for recovery, which asks again.
    fn aborted_by_centre(
        &self,
        st: &mut Station,
        actor: &Actor,
        completion: &registry::Completion,
        refusal: &centre_api::Refusal,
    ) -> StationError {
        // The registry keeps up to 500 characters of a reason; the centre keeps all of it.
        let reason: String = format!("the centre aborted the job: {}", refusal.error)
            .chars()
            .take(500)
            .collect();
        let rollback = Rollback {
            job_id: completion.job_id,
            number: NumberState::Spoiled,
            card_reset: None,
            reason,
        };
        // Nothing to abort at the centre: it has.
        if let Err(e) = LocalRegistry.abort(st, actor, &rollback, Some(&completion.card_serial)) {
            tracing::error!(job = completion.job_id, error = %e, "rolling back a job the centre aborted failed; recovery will retry");
        }
        StationError::Conflict(format!(
            "card {} is void: {}",
            completion.card_serial, refusal.error
        ))
    }
}

/// The centre refused an abort: fine when it aborted the job itself (timeout), an error when
/// the job is completed there (the local job must then be completed, not rolled back).
fn refuse_abort_of_completed(st: &Station, uuid: &str) -> Result<(), StationError> {
    let status: JobStatus = CentreClient::for_station(st)?.get(&paths::job(uuid))?;
    match status.state {
        JobState::Aborted => Ok(()),
        s => Err(StationError::Conflict(format!(
            "the centre has job {uuid} as {s:?}: it cannot be rolled back here"
        ))),
    }
}

/// The local half of `reserve`: holder, number, job and its reserve step, in one transaction.
fn record_reservation(
    st: &mut Station,
    actor: &Actor,
    request: &Reservation<'_>,
    uuid: &str,
    answer: &ReserveResponse,
    number: DocumentNumber,
) -> Result<Reserved, StationError> {
    let office = st.config.station.office.clone();
    mirror_blocks_for(st, &office, number)?;
    let details = serde_json::to_value(CentreJob {
        centre_job: uuid.to_owned(),
        challenge: answer.challenge.clone(),
        document: answer.document.clone(),
    })
    .map_err(|e| StationError::Other(e.to_string()))?;
    crate::registrar::open_job(
        st,
        actor,
        request,
        |tx, office| {
            tx.take_document_number(office, number)?;
            Ok(number)
        },
        Some(JournalEntry {
            step: RESERVE_STEP,
            details: &details,
            audit: serde_json::json!({ "centre_job": uuid }),
        }),
    )
}

/// Make sure a local block of `office` holds `number`: when none does, the centre assigned the
/// station a new block; mirror the centre's blocks that are missing here.
fn mirror_blocks_for(
    st: &mut Station,
    office: &str,
    number: DocumentNumber,
) -> Result<(), StationError> {
    let holds = |b: &registry::NumberBlock| {
        b.series == number.series_str() && b.first <= number.number && number.number <= b.last
    };
    if st.registry.number_blocks(office)?.iter().any(holds) {
        return Ok(());
    }
    let status: StationStatus = CentreClient::for_station(st)?.get(paths::STATUS)?;
    let local = st.registry.number_blocks(office)?;
    st.registry.write(|tx| {
        for b in &status.number_blocks {
            if !local
                .iter()
                .any(|l| l.series == b.series && l.first == b.first && l.last == b.last)
            {
                tx.add_number_block(office, &b.series, b.first, b.last)?;
            }
        }
        Ok(())
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Documents

/// Take `document` out of use at the centre (any office's document; a repeat answers with
/// its state).
pub fn revoke_at_centre(
    st: &Station,
    actor: &Actor,
    document: DocumentNumber,
    reason: &str,
) -> Result<centre_api::RevokeResponse, StationError> {
    revoke_replaced_at_centre(st, actor, document, reason, None)
}

/// [`revoke_at_centre`], naming the document that replaces it (a replacement: the centre links
/// old → new).
pub fn revoke_replaced_at_centre(
    st: &Station,
    actor: &Actor,
    document: DocumentNumber,
    reason: &str,
    replaced_by: Option<&str>,
) -> Result<centre_api::RevokeResponse, StationError> {
    CentreClient::for_station(st)?.post(
        &paths::revoke(&document.to_string()),
        &centre_api::RevokeRequest {
            operator: actor.operator.clone(),
            reason: reason.to_owned(),
            replaced_by: replaced_by.map(str::to_owned),
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Certifier

/// The management key of local issuance job `job_id`'s card `serial`, released by the centre
/// for the job's UUID (the card being issued, reset or recovered), with the label of the
/// centre's card key.
pub fn centre_card_key_for_job(
    st: &Station,
    actor: &Actor,
    job_id: i64,
    profile: &profiles::card::CardProfile,
    serial: u32,
) -> Result<(personalization::secret::ManagementKey, String), StationError> {
    let cj = centre_job(st, job_id)?;
    crate::card::centre_card_key(
        st,
        profile,
        &centre_api::CardKeyRequest {
            operator: actor.operator.clone(),
            card_serial: crate::card::serial_text(serial),
            purpose: "issuance".into(),
            job: Some(cj.centre_job),
            document: None,
            certificates: Vec::new(),
        },
    )
}

/// Certificates from the centre's e-Signature CA, for keys that proved possession on the card.
pub struct CentreCertifier;

impl Certifier for CentreCertifier {
    fn card_key(
        &self,
        st: &Station,
        actor: &Actor,
        job_id: i64,
        profile: &profiles::card::CardProfile,
        serial: u32,
    ) -> Result<(personalization::secret::ManagementKey, Option<String>), StationError> {
        let (key, label) = centre_card_key_for_job(st, actor, job_id, profile, serial)?;
        Ok((key, Some(label)))
    }

    fn proof_digests(
        &self,
        st: &Station,
        job_id: i64,
        keys: &[(Slot, &[u8])],
    ) -> Result<Option<ProofDigests>, StationError> {
        let cj = centre_job(st, job_id)?;
        let challenge = hex::decode(&cj.challenge)
            .map_err(|e| StationError::Other(format!("job {job_id}: challenge: {e}")))?;
        Ok(Some(
            keys.iter()
                .map(|(slot, spki)| {
                    let digest =
                        centre_api::proof_digest(&cj.centre_job, &challenge, slot.key_ref(), spki);
                    (*slot, digest)
                })
                .collect(),
        ))
    }

    fn certify(
        &self,
        st: &mut Station,
        actor: &Actor,
        job_id: i64,
        _holder: &ValidHolder,
        keys: &[KeyToCertify<'_>],
    ) -> Result<Vec<CardCertificate>, StationError> {
        let cj = centre_job(st, job_id)?;
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
        let answer: CertifyResponse =
            CentreClient::for_station(st)?.post(&paths::certify(&cj.centre_job), &request)?;
        crate::failpoint::hit("centre.certified");
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
}

fn spki_of(cert: &[u8]) -> Result<Vec<u8>, StationError> {
    use der::{Decode, Encode};
    x509_cert::Certificate::from_der(cert)
        .and_then(|c| c.tbs_certificate().subject_public_key_info().to_der())
        .map_err(|e| StationError::Other(format!("the centre's issuer certificate: {e}")))
}

pub(crate) fn decode_hex(what: &str, v: &str) -> Result<Vec<u8>, StationError> {
    hex::decode(v).map_err(|e| StationError::Other(format!("the centre's {what}: not hex: {e}")))
}

/// Whether a National Root the registry holds (any state) signed `issuer`.
fn under_trusted_root(st: &Station, issuer: &[u8]) -> Result<bool, StationError> {
    let roots: Vec<Vec<u8>> = st
        .registry
        .ca_keys("root")?
        .into_iter()
        .filter_map(|k| k.certificate)
        .collect();
    if roots.is_empty() {
        return Err(StationError::Other(
            "no centre root CA certificate in the registry".into(),
        ));
    }
    Ok(roots
        .iter()
        .any(|r| ca::issued_by(issuer, r).unwrap_or(false)))
}

/// The local registry id of the centre's e-Signature CA key whose certificate is `issuer`:
/// the one enrolment recorded, or (after a rotation at the centre) a new record of it.
pub(crate) fn centre_issuer_key(st: &mut Station, issuer: &[u8]) -> Result<i64, StationError> {
    let known = st.registry.ca_keys("esign")?;
    if let Some(k) = known
        .iter()
        .find(|k| k.certificate.as_deref() == Some(issuer))
    {
        return Ok(k.id);
    }
    // A key the station has not seen (a rotation at the centre): recorded only when one of
    // the centre's National Roots the station trusts (the anchor enrolment stored, or one learnt
    // since through its link certificate: `centre::anchors`) signed its certificate.
    // A root rollover the station has not heard of yet: learn the centre's roots (each only
    // through a link certificate a trusted root signed) and look again.
    if !under_trusted_root(st, issuer)? {
        let client = crate::centre::CentreClient::for_station(st)?;
        let actor = registry::Actor::new("idstation", "system", &st.config.station.name);
        crate::centre::anchors::refresh(st, &client, &actor)?;
    }
    if !under_trusted_root(st, issuer)? {
        return Err(StationError::Other(format!(
            "the centre's answer names an e-Signature CA certificate ({}) that no National Root this station trusts signed: refused",
            ca::fingerprint_sha256(issuer)?
        )));
    }
    let info = ca::CertInfo::parse(issuer)?;
    let spki = spki_of(issuer)?;
    let label = format!(
        "centre-esign-{}",
        ca::fingerprint_sha256(issuer)?.replace(':', "")[..16].to_lowercase()
    );
    let actor = Actor::new("centre", "system", &st.config.station.name);
    let id = st.registry.write(|tx| {
        let id = tx.insert_ca_key(&label, "esign", "issuing", &spki, &actor)?;
        tx.set_ca_key_certificate(id, issuer)?;
        for k in &known {
            if k.state == CaKeyState::Active {
                tx.set_ca_key_state(
                    k.id,
                    CaKeyState::Retired,
                    &actor,
                    &[],
                    Some("the centre issues under a newer e-Signature CA key"),
                )?;
            }
        }
        tx.set_ca_key_state(
            id,
            CaKeyState::Active,
            &actor,
            &[],
            Some(&format!("the centre's e-Signature CA {}", info.subject)),
        )?;
        Ok(id)
    })?;
    Ok(id)
}
