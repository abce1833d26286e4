//! `idstation renew`: new key pairs on an issued (LOCKED) card, new certificates (capped at the
//! document's expiry) from the station's e-Signature CA or, on a station enrolled to a
//! national centre, from the centre's (each new key signs the centre's challenge with the
//! holder's PIN: proof of possession), written and read back, test-signed with the holder's
//! PIN, then the old certificates revoked as superseded. The CA and the national record are
//! reached only through [`crate::service_seam::ServiceSeam`].
//!
//! ```text
//! card read and matched ─► PIN verified ─► [resume a renewal left after ca.issue]
//!  ─► card.generate (9A, 9C) ─► ca.issue (recorded as issued) ─► card.install (write, read
//!     back, test-sign) ─► registry.complete (new active, old revoked superseded, one commit)
//! ```
//!
//! Through a centre the renewal is opened there before `card.generate`, so a refusal (the
//! document no longer active in the national registry, expiring, another office's renewal
//! open) leaves the card's keys as they were.
//!
//! A failure before `ca.issue` finished rolls the job back (the card may hold new keys under
//! its old certificates until the next renewal; the old certificates stay active; the centre,
//! if any, is told to abort the job's UUID, which revokes what it may have issued). From
//! `ca.issue` on the job is left `running` and the next `renew` of the document resumes it
//! (the centre's `complete` is idempotent by the job's UUID).

use std::time::Instant;

use personalization::piv::services as card_services;
use personalization::piv::Piv;
use personalization::secret::Pin;
use personalization::transport::Transport;
use profiles::card::Slot;
use registry::{AuditEntry, CertStatus, JobState, NewServiceJob, ServiceJob, ServiceKind};
use serde::Serialize;
use serde_json::json;
use zeroize::Zeroizing;

use super::{begin, finish, issued_document, match_card, refused, IssuedDocument};
use super::{ServiceProgress, ServiceStep};
use crate::card::{serial_text, slot_name};
use crate::certifier::{CardCertificate, KeyToCertify};
use crate::error::StationError;
use crate::service_seam::{Renewal, ServiceSeam};
use crate::session::Session;
use crate::Station;
use registry::StepState;

/// What the clerk hands to a renewal.
pub struct RenewInput {
    /// Document number.
    pub document: String,
    /// Reader name (or a unique part of it); `None` = the one reader holding a card.
    pub reader: Option<String>,
    /// The holder's PIN, entered by the holder (for the test signatures).
    pub pin: Zeroizing<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RenewedCertificate {
    pub slot: String,
    pub profile: String,
    pub serial: String,
    pub not_after: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RenewReport {
    /// This station's service job; `None` for another office's card (its journal is
    /// `centre_renewals`).
    pub service_job: Option<i64>,
    /// The office that issued the card, when it is another office's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_by_office: Option<String>,
    pub document: String,
    pub card_serial: String,
    pub reader: String,
    /// The job was one left by an interrupted renewal, finished now.
    pub resumed: bool,
    pub certificates: Vec<RenewedCertificate>,
    /// Serials of the certificates revoked as superseded.
    pub superseded: Vec<String>,
    pub apdus: u64,
    pub card_ms: f64,
    pub hsm_ms: f64,
    pub total_ms: f64,
}

pub(super) fn ms(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1000.0
}

/// The certificates a renewal recorded (`ca.issue` details).
#[derive(Debug, Clone)]
pub(super) struct Recorded {
    pub id: i64,
    pub slot: Slot,
    pub profile: String,
    pub serial: String,
    pub not_after: String,
    pub der: Vec<u8>,
}

/// The certificates renewal `job` recorded at `ca.issue`, when that step finished.
pub(super) fn renewal_certificates(
    st: &Station,
    issuance_job: i64,
    job: &ServiceJob,
) -> Result<Option<Vec<Recorded>>, StationError> {
    let Some(step) = job
        .step(ServiceStep::CaIssue.as_str())
        .filter(|s| s.state == StepState::Done)
    else {
        return Ok(None);
    };
    let details: serde_json::Value = serde_json::from_str(&step.details).map_err(|e| {
        StationError::Other(format!("service job {}: ca.issue details: {e}", job.id))
    })?;
    let ids: Vec<i64> = details["certificates"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v["id"].as_i64()).collect())
        .unwrap_or_default();
    let all = st.registry.certificates_of_job(issuance_job)?;
    let profile = st.card_profile()?;
    ids.iter()
        .map(|id| {
            let c = all.iter().find(|c| c.id == *id).ok_or_else(|| {
                StationError::Other(format!("renewed certificate {id} is not in the registry"))
            })?;
            let slot = profile
                .keys
                .iter()
                .find(|k| k.certificate_profile == c.data.purpose)
                .map(|k| k.slot)
                .ok_or_else(|| {
                    StationError::Other(format!(
                        "certificate {id}: profile {} names no slot of the card profile",
                        c.data.purpose
                    ))
                })?;
            Ok(Recorded {
                id: c.id,
                slot,
                profile: c.data.purpose.clone(),
                serial: c.data.serial.clone(),
                not_after: c.data.not_after.clone(),
                der: c.data.der.clone(),
            })
        })
        .collect::<Result<Vec<_>, StationError>>()
        .map(Some)
}

/// The UUID a renewal job drew (journaled with `card.generate`), the centre's key for it.
pub(crate) fn renewal_uuid(job: &ServiceJob) -> String {
    job.step(ServiceStep::CardGenerate.as_str())
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s.details).ok())
        .and_then(|d| d["uuid"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Renew the certificates of document `input.document` on its card in the reader. See the
/// module docs.
pub fn renew(
    st: &mut Station,
    session: &Session,
    input: &RenewInput,
    progress: &mut dyn FnMut(&ServiceProgress),
) -> Result<RenewReport, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "renew certificates",
        &[registry::Role::Clerk],
    )?;
    let started = Instant::now();
    if !super::known_here(st, &input.document)
        .map_err(|e| refused(st, session, "renewal", &input.document, e))?
        && st.config.centre.is_some()
    {
        return super::renew_elsewhere::renew(st, session, input, progress, started);
    }
    let (doc, pin) = check_before_card(st, input)
        .map_err(|e| refused(st, session, "renewal", &input.document, e))?;
    crate::records::audit_holder_reads(
        st,
        session,
        &[&doc.holder.data.pinfl],
        &format!("renew --document {}", doc.document.number),
    )?;
    // One card service per document at a time; recovery leaves a live one alone.
    let _lock = crate::datadir::WorkLock::acquire(
        &st.layout.root,
        crate::datadir::Work::CardService(doc.document.id),
    )?;
    let t0 = Instant::now();
    let mut card_session = super::connect(input.reader.as_deref())?;
    let mut tx = card_session
        .conn
        .begin()
        .map_err(|e| StationError::card(None, &e.in_step("open a card transaction")))?;
    let profile = st.card_profile()?.clone();
    let slots: Vec<Slot> = profile.keys.iter().map(|k| k.slot).collect();
    let card = card_services::read_issued(&mut tx, &slots)
        .map_err(|e| StationError::card(Some("read the card"), &e))?;
    // Renewed at another office since this registry last saw it: brought here first.
    let doc = if super::adopt::renewed_elsewhere(st, session, &profile, &doc, &card)? {
        issued_document(st, &input.document)?
    } else {
        doc
    };
    let number = doc.document.number.to_string();
    let mut run = Run {
        seam: crate::ra_services::seam(st),
        st,
        session,
        doc: &doc,
        number: &number,
        serial: card.serial,
        progress,
        card_ms: ms(t0),
        hsm_ms: 0.0,
        apdus: 0,
    };
    let pending = run
        .st
        .registry
        .running_service_job(doc.document.id, ServiceKind::Renew)?;
    let resumable = match pending {
        Some(job) => run.resumable(job)?,
        None => None,
    };
    run.check_card(&mut tx, &card, &profile, resumable.as_ref(), &pin)?;
    // The centre's card key is asked for only once the renewal is open there.
    let mut card_key =
        super::card_key_of(run.st, session.actor(), &profile, &doc, &card, "renewal")?;
    let (job, recorded, resumed) = match resumable {
        Some((job, recorded)) => (job, recorded, true),
        None => {
            let job = run.open_job()?;
            let recorded = match run.generate_and_certify(
                &mut tx,
                &job,
                &mut card_key,
                &slots,
                &pin,
            ) {
                Ok(r) => r,
                Err(e) => {
                    if let Err(re) = run.roll_back(&job, &e) {
                        tracing::error!(job = job.id, error = %re, "renewal not rolled back; `idstation recover` or the next renewal does it");
                    }
                    return Err(e);
                }
            };
            (job, recorded, false)
        }
    };
    let superseded = run.install_and_complete(&mut tx, &job, &mut card_key, &recorded, &pin)?;
    crate::audit::checkpoint_after(run.st, "renewal.completed");
    Ok(RenewReport {
        service_job: Some(job.id),
        issued_by_office: None,
        document: number.clone(),
        card_serial: serial_text(card.serial),
        reader: card_session.reader.clone(),
        resumed,
        certificates: recorded
            .iter()
            .map(|c| RenewedCertificate {
                slot: slot_name(c.slot),
                profile: c.profile.clone(),
                serial: c.serial.clone(),
                not_after: c.not_after.clone(),
            })
            .collect(),
        superseded,
        apdus: run.apdus,
        card_ms: run.card_ms,
        hsm_ms: run.hsm_ms,
        total_ms: ms(started),
    })
}

/// Everything that needs no card: the document and its card on record, the holder's PIN as
/// the profile takes it.
fn check_before_card(
    st: &Station,
    input: &RenewInput,
) -> Result<(IssuedDocument, Pin), StationError> {
    let doc = issued_document(st, &input.document)?;
    let pin = Pin::new(personalization::secret::PinKind::Pin, &input.pin)
        .map_err(|e| StationError::invalid("pin", e.to_string()))?;
    Ok((doc, pin))
}

/// A renewal job: its local id and its UUID.
pub(crate) struct RenewJob {
    pub id: i64,
    pub uuid: String,
}

/// One renewal's context.
struct Run<'a> {
    seam: Box<dyn ServiceSeam>,
    st: &'a mut Station,
    session: &'a Session,
    doc: &'a IssuedDocument,
    number: &'a str,
    serial: u32,
    progress: &'a mut dyn FnMut(&ServiceProgress),
    card_ms: f64,
    hsm_ms: f64,
    apdus: u64,
}

impl<'a> Run<'a> {
    fn step_error(step: ServiceStep, e: &personalization::Error) -> StationError {
        StationError::card(Some(step.as_str()), e)
    }

    /// The renewal as the seam sees it.
    fn renewal<'b>(&self, job: &'b RenewJob) -> Renewal<'b>
    where
        'a: 'b,
    {
        let doc: &'a IssuedDocument = self.doc;
        Renewal {
            service_job: job.id,
            uuid: &job.uuid,
            document: self.number,
            date_of_expiry: &doc.document.date_of_expiry,
            card_serial: &doc.card.chip_serial,
            holder: &doc.holder.data,
        }
    }

    /// The card is the document's (with its current or, when resuming, the recorded new
    /// certificates), its chip opens with the document's MRZ, and the holder's PIN verifies.
    fn check_card(
        &mut self,
        tx: &mut dyn Transport,
        card: &card_services::IssuedCard,
        profile: &profiles::card::CardProfile,
        resumable: Option<&(RenewJob, Vec<Recorded>)>,
        pin: &Pin,
    ) -> Result<(), StationError> {
        let (doc, session, num) = (self.doc, self.session, self.number);
        let left_on_card = carried_certificates(self.st, doc, profile)?;
        let slots: Vec<Slot> = profile.keys.iter().map(|k| k.slot).collect();
        let recorded_ders: Vec<(Slot, &[u8])> = resumable
            .map(|(_, r)| r.iter().map(|c| (c.slot, c.der.as_slice())).collect())
            .unwrap_or_default();
        match_card(doc, card, &slots, |slot| {
            let mut ok: Vec<&[u8]> = Vec::new();
            if let Some(c) = doc.certificate(profile, slot) {
                ok.push(&c.data.der);
            }
            ok.extend(
                recorded_ders
                    .iter()
                    .filter(|(s, _)| *s == slot)
                    .map(|(_, d)| *d),
            );
            ok.extend(
                left_on_card
                    .iter()
                    .filter(|(s, _)| *s == slot)
                    .map(|(_, d)| d.as_slice()),
            );
            ok
        })
        .map_err(|e| refused(self.st, session, "renewal", num, e))?;
        let t0 = Instant::now();
        self.apdus += match super::match_document(self.st, tx, doc) {
            Ok(n) => n,
            Err(e @ StationError::Conflict(_)) => {
                return Err(refused(self.st, session, "renewal", num, e))
            }
            Err(e) => return Err(e),
        };
        self.card_ms += ms(t0);
        if card.pin == personalization::piv::PinStatus::Blocked {
            let e = StationError::Conflict(format!(
                "pin: the PIN of card {} is blocked; unblock it first (idstation unblock)",
                serial_text(card.serial)
            ));
            return Err(refused(self.st, session, "renewal", num, e));
        }
        self.verify_pin(tx, pin)
    }

    /// A new renewal job (and its UUID), audited.
    fn open_job(&mut self) -> Result<RenewJob, StationError> {
        let doc = self.doc;
        let session = self.session;
        let office = self.st.config.station.office.clone();
        let uuid = crate::ra_services::job_uuid()?;
        let id = self.st.registry.write(|t| {
            let id = t.create_service_job(
                &NewServiceJob {
                    kind: ServiceKind::Renew,
                    document_id: doc.document.id,
                    holder_id: doc.holder.id,
                    card_serial: doc.card.chip_serial.clone(),
                    office,
                },
                session.actor(),
            )?;
            t.audit(&AuditEntry {
                actor: session.actor(),
                action: "renewal.started",
                object: &format!("document:{}", doc.document.number),
                details: &json!({ "service_job": id, "card": doc.card.chip_serial, "uuid": uuid }),
            })?;
            Ok(id)
        })?;
        Ok(RenewJob { id, uuid })
    }

    /// A running renewal of this document: resumable (its certificates, from `ca.issue`) when
    /// `ca.issue` finished and the centre, if any, has not aborted it since (its timeout: then
    /// it is rolled back here, and a new renewal accepts the card with its certificates on
    /// it); otherwise nothing of it is in use and it is rolled back now (an error when the
    /// centre could not be told: the job stays for the next attempt).
    fn resumable(
        &mut self,
        job: ServiceJob,
    ) -> Result<Option<(RenewJob, Vec<Recorded>)>, StationError> {
        let rj = RenewJob {
            id: job.id,
            uuid: renewal_uuid(&job),
        };
        if let Some(recorded) = renewal_certificates(self.st, self.doc.issuance_job, &job)? {
            let renewal = self.renewal(&rj);
            if let Some(why) = self.seam.renewal_aborted(self.st, &renewal)? {
                tracing::warn!(job = job.id, reason = %why, "a renewal left for the card was aborted at the centre");
                let number = self.number.to_owned();
                roll_back_locally(
                    self.st,
                    self.session.actor(),
                    (self.doc.issuance_job, &number),
                    rj.id,
                    &StationError::Conflict(why),
                )?;
                return Ok(None);
            }
            tracing::info!(job = job.id, "resuming an interrupted renewal");
            return Ok(Some((rj, recorded)));
        }
        let e = StationError::Other(format!(
            "interrupted before its certificates were issued ({})",
            job.error.as_deref().unwrap_or("no error recorded")
        ));
        self.roll_back(&rj, &e)?;
        Ok(None)
    }

    /// The holder's PIN checked by the card before anything changes (a wrong PIN costs a try
    /// and nothing else).
    fn verify_pin(&mut self, tx: &mut dyn Transport, pin: &Pin) -> Result<(), StationError> {
        let t0 = Instant::now();
        let mut piv = Piv::new(tx);
        piv.select()
            .and_then(|_| piv.verify(pin))
            .map_err(|e| StationError::card(Some("verify the holder's PIN"), &e))?;
        self.apdus += piv.stats().apdus;
        self.card_ms += ms(t0);
        Ok(())
    }

    /// `card.generate` then `ca.issue`.
    fn generate_and_certify(
        &mut self,
        tx: &mut dyn Transport,
        job: &RenewJob,
        card_key: &mut super::CardKey,
        slots: &[Slot],
        pin: &Pin,
    ) -> Result<Vec<Recorded>, StationError> {
        let step = ServiceStep::CardGenerate;
        let names: Vec<String> = slots.iter().map(|s| slot_name(*s)).collect();
        let id = begin(
            self.st,
            job.id,
            step,
            &json!({ "slots": names, "uuid": job.uuid }),
        )?;
        crate::failpoint::hit("renew.card.generate");
        // The UUID is journaled: ask the national centre, if any, before the card's keys are
        // replaced. It opens the renewal (the document active there, on this card, not
        // expiring) or refuses; the same request again, with the keys, gets the same answer.
        let renewal = self.renewal(job);
        self.seam
            .renewal_proof_digests(self.st, self.session.actor(), &renewal, &[])?;
        (self.progress)(&ServiceProgress {
            step,
            detail: "new key pairs on the card".into(),
        });
        let t0 = Instant::now();
        let profile = self.st.card_profile()?.clone();
        let key = card_key.get(self.st, &profile)?;
        let keys = card_services::generate_keys(tx, self.serial, key, slots)
            .map_err(|e| Self::step_error(step, &e))?;
        self.card_ms += ms(t0);
        self.apdus += keys.stats.apdus;
        let done = json!({ "keys": keys.public_keys.len(), "slots": names, "uuid": job.uuid });
        finish(self.st, id, StepState::Done, &done)?;

        let step = ServiceStep::CaIssue;
        let id = begin(self.st, job.id, step, &json!({ "uuid": job.uuid }))?;
        crate::failpoint::hit("renew.ca.issue");
        (self.progress)(&ServiceProgress {
            step,
            detail: "certificates from the e-Signature CA".into(),
        });
        let certs = self.certify(tx, job, &keys, pin)?;
        self.record(job, id, &certs)
    }

    /// Proof of possession (when the seam asks for it), then the certificates.
    fn certify(
        &mut self,
        tx: &mut dyn Transport,
        job: &RenewJob,
        keys: &card_services::RenewedKeys,
        pin: &Pin,
    ) -> Result<Vec<CardCertificate>, StationError> {
        let renewal = self.renewal(job);
        let actor = self.session.actor();
        let profile = self.st.card_profile()?.clone();
        let mut wanted = Vec::new();
        for key in &profile.keys {
            let spki = keys.public_key(key.slot).ok_or_else(|| {
                StationError::Other(format!(
                    "the card returned no public key for slot {}",
                    slot_name(key.slot)
                ))
            })?;
            wanted.push((key.slot, key.certificate_profile.clone(), spki));
        }
        let spkis: Vec<(Slot, &[u8])> = wanted.iter().map(|(s, _, k)| (*s, *k)).collect();
        let t0 = Instant::now();
        let digests = self
            .seam
            .renewal_proof_digests(self.st, actor, &renewal, &spkis)?;
        self.hsm_ms += ms(t0);
        let proofs = match digests {
            Some(d) => {
                let t0 = Instant::now();
                let with: Vec<(Slot, &[u8], [u8; 32])> = d
                    .iter()
                    .filter_map(|(slot, digest)| {
                        spkis
                            .iter()
                            .find(|(s, _)| s == slot)
                            .map(|(s, k)| (*s, *k, *digest))
                    })
                    .collect();
                let (proofs, stats) = card_services::prove_possession(tx, pin, &with)
                    .map_err(|e| Self::step_error(ServiceStep::CaIssue, &e))?;
                self.apdus += stats.apdus;
                self.card_ms += ms(t0);
                proofs
            }
            None => Vec::new(),
        };
        let to_certify: Vec<KeyToCertify<'_>> = wanted
            .iter()
            .map(|(slot, profile, spki)| KeyToCertify {
                slot: *slot,
                profile,
                public_key: spki,
                proof: proofs
                    .iter()
                    .find(|(s, _)| s == slot)
                    .map(|(_, p)| p.as_slice()),
            })
            .collect();
        let t0 = Instant::now();
        let certs = self
            .seam
            .renewal_certify(self.st, actor, &renewal, &to_certify)?;
        self.hsm_ms += ms(t0);
        Ok(certs)
    }

    /// The certificates recorded as issued in the transaction that finishes `ca.issue`.
    fn record(
        &mut self,
        job: &RenewJob,
        step_id: i64,
        certs: &[CardCertificate],
    ) -> Result<Vec<Recorded>, StationError> {
        let doc = self.doc;
        let uuid = &job.uuid;
        let recorded = self.st.registry.write(|t| {
            let mut out = Vec::new();
            for c in certs {
                let mut rec = crate::hierarchy::cert_record(c.issuer_key_id, &c.der, &c.profile)
                    .map_err(|e| registry::Error::Conflict(e.to_string()))?;
                rec.holder_id = Some(doc.holder.id);
                rec.job_id = Some(doc.issuance_job);
                let serial = rec.serial.clone();
                let not_after = rec.not_after.clone();
                out.push(Recorded {
                    id: t.insert_certificate(&rec)?,
                    slot: c.slot,
                    profile: c.profile.clone(),
                    serial,
                    not_after,
                    der: c.der.clone(),
                });
            }
            let details = json!({ "uuid": uuid, "certificates": out.iter().map(|c| json!({
                "id": c.id, "slot": slot_name(c.slot), "serial": c.serial })).collect::<Vec<_>>() });
            t.finish_service_step(step_id, StepState::Done, Some(&details))?;
            Ok(out)
        })?;
        Ok(recorded)
    }

    /// `card.install` then `registry.complete`; a failure leaves the job running (the new
    /// certificates may be on the card) for the next renewal to resume.
    fn install_and_complete(
        &mut self,
        tx: &mut dyn Transport,
        job: &RenewJob,
        card_key: &mut super::CardKey,
        recorded: &[Recorded],
        pin: &Pin,
    ) -> Result<Vec<String>, StationError> {
        let result = self
            .install(tx, job.id, card_key, recorded, pin)
            .and_then(|()| self.complete(job, recorded));
        if let Err(e) = &result {
            let _ = self
                .st
                .registry
                .write(|t| t.set_service_job_error(job.id, &e.to_string()));
        }
        result
    }
    /// `card.install`: certificates and Key History written, read back, test-signed.
    fn install(
        &mut self,
        tx: &mut dyn Transport,
        job_id: i64,
        card_key: &mut super::CardKey,
        recorded: &[Recorded],
        pin: &Pin,
    ) -> Result<(), StationError> {
        let step = ServiceStep::CardInstall;
        let id = begin(self.st, job_id, step, &json!({}))?;
        crate::failpoint::hit("renew.card.install");
        (self.progress)(&ServiceProgress {
            step,
            detail: "write, read back and test-sign".into(),
        });
        let certs: Vec<(Slot, Vec<u8>)> =
            recorded.iter().map(|c| (c.slot, c.der.clone())).collect();
        let t0 = Instant::now();
        let profile = self.st.card_profile()?.clone();
        let key = card_key.get(self.st, &profile)?;
        let report = card_services::install_certificates(tx, self.serial, key, &certs, pin)
            .map_err(|e| Self::step_error(step, &e))?;
        self.card_ms += ms(t0);
        self.apdus += report.stats.apdus;
        finish(
            self.st,
            id,
            StepState::Done,
            &json!({
                "read_back": report.read_back.iter().map(|s| slot_name(*s)).collect::<Vec<_>>(),
                "signatures": report.signatures_verified.iter().map(|s| slot_name(*s)).collect::<Vec<_>>(),
            }),
        )
    }

    /// `registry.complete`: the new certificates active on the card, the old ones revoked as
    /// superseded, the job completed, one audit event — one commit.
    fn complete(
        &mut self,
        job: &RenewJob,
        recorded: &[Recorded],
    ) -> Result<Vec<String>, StationError> {
        let step = ServiceStep::RegistryComplete;
        (self.progress)(&ServiceProgress {
            step,
            detail: "registry".into(),
        });
        crate::failpoint::hit("renew.registry.complete");
        // The national record first (idempotent by the job's UUID): a crash between it and the
        // local commit leaves the job running, and its resumption completes it again.
        let renewal = self.renewal(job);
        self.seam
            .renewal_complete(self.st, self.session.actor(), &renewal)?;
        let job_id = job.id;
        let doc = self.doc;
        let new_ids: Vec<i64> = recorded.iter().map(|c| c.id).collect();
        let old: Vec<(i64, String)> = doc
            .certificates
            .iter()
            .filter(|c| c.status == CertStatus::Active && !new_ids.contains(&c.id))
            .map(|c| (c.id, c.data.serial.clone()))
            .collect();
        let now = registry::now_rfc3339();
        let session = self.session;
        let superseded = self.st.registry.write(|t| {
            let id = t.begin_service_step(job_id, step.as_str(), &json!({}))?;
            for c in recorded {
                t.activate_certificate(c.id, doc.card.id)?;
            }
            for (id, _) in &old {
                t.revoke_certificate(*id, "superseded", &now)?;
            }
            let superseded: Vec<String> = old.iter().map(|(_, s)| s.clone()).collect();
            let new: Vec<&String> = recorded.iter().map(|c| &c.serial).collect();
            t.finish_service_step(
                id,
                StepState::Done,
                Some(&json!({ "active": new, "superseded": superseded })),
            )?;
            t.end_service_job(job_id, JobState::Completed, None)?;
            t.audit(&AuditEntry {
                actor: session.actor(),
                action: "renewal.completed",
                object: &format!("document:{}", doc.document.number),
                details: &json!({
                    "service_job": job_id,
                    "card": doc.card.chip_serial,
                    "certificates": new,
                    "superseded": superseded,
                }),
            })?;
            Ok(superseded)
        })?;
        Ok(superseded)
    }

    /// Undo a renewal that never reached `card.install`: the national record told first (the
    /// centre revokes what it may have issued for the job's UUID), then its certificates (if
    /// any were recorded) revoked as cessationOfOperation, the job rolled back, audited. An
    /// error when the centre could not be told: the job stays running for the next attempt.
    fn roll_back(&mut self, job: &RenewJob, e: &StationError) -> Result<(), StationError> {
        let renewal = self.renewal(job);
        if let Err(ce) =
            self.seam
                .renewal_abort(self.st, self.session.actor(), &renewal, &e.to_string())
        {
            let _ = self
                .st
                .registry
                .write(|t| t.set_service_job_error(job.id, &format!("{e}; abort: {ce}")));
            return Err(ce);
        }
        let number = self.number.to_owned();
        roll_back_locally(
            self.st,
            self.session.actor(),
            (self.doc.issuance_job, &number),
            job.id,
            e,
        )
    }
}

/// Certificates a card of `doc` may carry besides its active ones, per slot: those issued for
/// the document after its active certificate of that slot, by a renewal still running (`issued`:
/// perhaps written before it stopped) or one rolled back here or aborted by the centre's timeout
/// (revoked `cessationOfOperation`: written before the renewal could complete). Any of them shows
/// the card is the document's; its chip must still open with the document's MRZ and the holder's
/// PIN verify.
pub(super) fn carried_certificates(
    st: &Station,
    doc: &IssuedDocument,
    profile: &profiles::card::CardProfile,
) -> Result<Vec<(Slot, Vec<u8>)>, StationError> {
    let all = st.registry.certificates_of_job(doc.issuance_job)?;
    let left = |c: &registry::Certificate| {
        c.status == CertStatus::Issued
            || (c.status == CertStatus::Revoked
                && c.revocation_reason.as_deref() == Some("cessationOfOperation"))
    };
    let mut out = Vec::new();
    for k in &profile.keys {
        let of_slot = || {
            all.iter()
                .filter(|c| c.data.purpose == k.certificate_profile)
        };
        // After the slot's last certificate that was on the card for good (active, on hold,
        // superseded, expired): a renewal completed since replaced whatever came before it.
        let settled = of_slot().filter(|c| !left(c)).map(|c| c.id).max();
        for c in of_slot() {
            if left(c) && settled.is_none_or(|s| c.id > s) {
                out.push((k.slot, c.data.der.clone()));
            }
        }
    }
    Ok(out)
}

/// The local half of a rollback (see `Run::roll_back`; recovery uses it too) of renewal
/// `job_id` of the document (its issuance job, its number).
pub(crate) fn roll_back_locally(
    st: &mut Station,
    actor: &registry::Actor,
    (issuance_job, number): (i64, &str),
    job_id: i64,
    e: &StationError,
) -> Result<(), StationError> {
    let now = registry::now_rfc3339();
    // Not those revoked since (the document declared lost, say): they stay as they are.
    let all = st.registry.certificates_of_job(issuance_job)?;
    let unrevoked = |id: i64| {
        all.iter()
            .any(|c| c.id == id && matches!(c.status, CertStatus::Issued | CertStatus::Active))
    };
    let issued: Vec<(i64, String)> = st
        .registry
        .service_job(job_id)
        .ok()
        .flatten()
        .and_then(|j| renewal_certificates(st, issuance_job, &j).ok().flatten())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| unrevoked(c.id))
        .map(|c| (c.id, c.serial))
        .collect();
    st.registry.write(|t| {
        for (id, _) in &issued {
            t.revoke_certificate(*id, "cessationOfOperation", &now)?;
        }
        t.end_service_job(job_id, JobState::RolledBack, Some(&e.to_string()))?;
        t.audit(&AuditEntry {
            actor,
            action: "renewal.rolled-back",
            object: &format!("document:{number}"),
            details: &json!({
                "service_job": job_id,
                "error": e.to_string(),
                "revoked": issued.iter().map(|(_, s)| s).collect::<Vec<_>>(),
            }),
        })?;
        Ok(())
    })?;
    Ok(())
}
