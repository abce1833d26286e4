//! `idstation renew`: new key pairs on an issued (LOCKED) card, new certificates from the
//! station's e-Signature CA (capped at the document's expiry), written and read back,
//! test-signed with the holder's PIN, then the old certificates revoked as superseded.
//!
//! ```text
//! card read and matched ─► PIN verified ─► [resume a renewal left after ca.issue]
//!  ─► card.generate (9A, 9C) ─► ca.issue (recorded as issued) ─► card.install (write, read
//!     back, test-sign) ─► registry.complete (new active, old revoked superseded, one commit)
//! ```
//!
//! A failure before `ca.issue` finished rolls the job back (the card may hold new keys under
//! its old certificates until the next renewal; the old certificates stay active). From
//! `ca.issue` on the job is left `running` and the next `renew` of the document resumes it.

use std::time::{Instant, SystemTime};

use personalization::piv::services as card_services;
use personalization::piv::Piv;
use personalization::secret::Pin;
use personalization::transport::pcsc::Pcsc;
use personalization::transport::Transport;
use profiles::card::Slot;
use registry::{AuditEntry, CertStatus, JobState, NewServiceJob, ServiceJob, ServiceKind};
use serde::Serialize;
use serde_json::json;
use zeroize::Zeroizing;

use super::{begin, finish, issued_document, match_card, refused, IssuedDocument};
use super::{ServiceProgress, ServiceStep};
use crate::card::{card_management_key, serial_text, slot_name};
use crate::error::StationError;
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
    pub service_job: i64,
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

fn ms(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1000.0
}

/// A certificate the CA made for a new card key: slot, certificate profile, the registry id
/// of the CA key that signed it, DER.
type NewCertificate = (Slot, String, i64, Vec<u8>);

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
    doc: &IssuedDocument,
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
    let all = st.registry.certificates_of_job(doc.issuance_job)?;
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
    let checked = check_before_card(st, input)
        .map_err(|e| refused(st, session, "renewal", &input.document, e))?;
    let (doc, pin) = checked;
    crate::records::audit_holder_reads(
        st,
        session,
        &[&doc.holder.data.pinfl],
        &format!("renew --document {}", doc.document.number),
    )?;

    let t0 = Instant::now();
    let pcsc = Pcsc::establish().map_err(|e| StationError::card(None, &e))?;
    let reader = crate::readers::choose_reader(&pcsc, input.reader.as_deref())?;
    let mut conn = pcsc
        .connect(&reader)
        .map_err(|e| StationError::card(None, &e.in_step("connect to the card")))?;
    let mut tx = conn
        .begin()
        .map_err(|e| StationError::card(None, &e.in_step("open a card transaction")))?;
    let profile = st.card_profile()?.clone();
    let slots: Vec<Slot> = profile.keys.iter().map(|k| k.slot).collect();
    let card = card_services::read_issued(&mut tx, &slots)
        .map_err(|e| StationError::card(Some("read the card"), &e))?;
    let mut run = Run {
        st,
        session,
        doc: &doc,
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
    let recorded_ders: Vec<(Slot, Vec<u8>)> = resumable
        .as_ref()
        .map(|(_, r)| r.iter().map(|c| (c.slot, c.der.clone())).collect())
        .unwrap_or_default();
    match_card(&doc, &card, &slots, |slot| {
        let mut ok: Vec<&[u8]> = Vec::new();
        if let Some(c) = doc.certificate(&profile, slot) {
            ok.push(&c.data.der);
        }
        ok.extend(
            recorded_ders
                .iter()
                .filter(|(s, _)| *s == slot)
                .map(|(_, d)| d.as_slice()),
        );
        ok
    })
    .map_err(|e| refused(run.st, session, "renewal", &input.document, e))?;
    let t0 = Instant::now();
    run.apdus += match super::match_document(run.st, &mut tx, &doc) {
        Ok(n) => n,
        Err(e @ StationError::Conflict(_)) => {
            return Err(refused(run.st, session, "renewal", &input.document, e))
        }
        Err(e) => return Err(e),
    };
    run.card_ms += ms(t0);
    if card.pin == personalization::piv::PinStatus::Blocked {
        let e = StationError::Conflict(format!(
            "pin: the PIN of card {} is blocked; unblock it first (idstation unblock)",
            serial_text(card.serial)
        ));
        return Err(refused(run.st, session, "renewal", &input.document, e));
    }
    run.verify_pin(&mut tx, &pin)?;

    let card_key = card_management_key(run.st, &profile, card.serial)?;
    let (job_id, recorded, resumed) = match resumable {
        Some((job_id, recorded)) => (job_id, recorded, true),
        None => {
            let job_id = run.st.registry.write(|t| {
                let id = t.create_service_job(
                    &NewServiceJob {
                        kind: ServiceKind::Renew,
                        document_id: doc.document.id,
                        holder_id: doc.holder.id,
                        card_serial: doc.card.chip_serial.clone(),
                        office: run.st.config.station.office.clone(),
                    },
                    session.actor(),
                )?;
                t.audit(&AuditEntry {
                    actor: session.actor(),
                    action: "renewal.started",
                    object: &format!("document:{}", doc.document.number),
                    details: &json!({ "service_job": id, "card": doc.card.chip_serial }),
                })?;
                Ok(id)
            })?;
            let recorded = run
                .generate_and_certify(&mut tx, job_id, &card_key, &slots)
                .inspect_err(|e| run.roll_back(job_id, e))?;
            (job_id, recorded, false)
        }
    };
    let result = run
        .install(&mut tx, job_id, &card_key, &recorded, &pin)
        .and_then(|()| run.complete(job_id, &recorded));
    let superseded = match result {
        Ok(s) => s,
        Err(e) => {
            // The certificates may be on the card: the next renewal resumes this job.
            let _ = run
                .st
                .registry
                .write(|t| t.set_service_job_error(job_id, &e.to_string()));
            return Err(e);
        }
    };
    crate::audit::checkpoint_after(run.st, "renewal.completed");
    Ok(RenewReport {
        service_job: job_id,
        document: doc.document.number.to_string(),
        card_serial: serial_text(card.serial),
        reader,
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

/// Everything that needs no card: a station enrolled at a centre (no renewal in the centre's
/// API yet), the document and its card on record, the holder's PIN as the profile takes it.
fn check_before_card(
    st: &Station,
    input: &RenewInput,
) -> Result<(IssuedDocument, Pin), StationError> {
    if st.config.centre.is_some() {
        return Err(StationError::Conflict(
            "renewal: this station is enrolled at a national centre, whose API (centre_api) has \
             no certificate renewal yet; renew at a standalone station or replace the card"
                .into(),
        ));
    }
    let doc = issued_document(st, &input.document)?;
    let pin = Pin::new(personalization::secret::PinKind::Pin, &input.pin)
        .map_err(|e| StationError::invalid("pin", e.to_string()))?;
    Ok((doc, pin))
}

/// One renewal's context.
struct Run<'a> {
    st: &'a mut Station,
    session: &'a Session,
    doc: &'a IssuedDocument,
    serial: u32,
    progress: &'a mut dyn FnMut(&ServiceProgress),
    card_ms: f64,
    hsm_ms: f64,
    apdus: u64,
}

impl Run<'_> {
    fn step_error(step: ServiceStep, e: &personalization::Error) -> StationError {
        StationError::card(Some(step.as_str()), e)
    }

    /// A running renewal of this document: resumable (its certificates, from `ca.issue`) when
    /// `ca.issue` finished; otherwise nothing of it is in use and it is rolled back now.
    fn resumable(&mut self, job: ServiceJob) -> Result<Option<(i64, Vec<Recorded>)>, StationError> {
        if let Some(recorded) = renewal_certificates(self.st, self.doc, &job)? {
            tracing::info!(job = job.id, "resuming an interrupted renewal");
            return Ok(Some((job.id, recorded)));
        }
        let e = StationError::Other(format!(
            "interrupted before its certificates were issued ({})",
            job.error.as_deref().unwrap_or("no error recorded")
        ));
        self.roll_back(job.id, &e);
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
        job_id: i64,
        card_key: &personalization::secret::ManagementKey,
        slots: &[Slot],
    ) -> Result<Vec<Recorded>, StationError> {
        let step = ServiceStep::CardGenerate;
        let id = begin(
            self.st,
            job_id,
            step,
            &json!({ "slots": slots.iter().map(|s| slot_name(*s)).collect::<Vec<_>>() }),
        )?;
        crate::failpoint::hit("renew.card.generate");
        (self.progress)(&ServiceProgress {
            step,
            detail: "new key pairs on the card".into(),
        });
        let t0 = Instant::now();
        let keys = card_services::generate_keys(tx, self.serial, card_key, slots)
            .map_err(|e| Self::step_error(step, &e))?;
        self.card_ms += ms(t0);
        self.apdus += keys.stats.apdus;
        finish(
            self.st,
            id,
            StepState::Done,
            &json!({ "keys": keys.public_keys.len() }),
        )?;

        let step = ServiceStep::CaIssue;
        let id = begin(self.st, job_id, step, &json!({}))?;
        crate::failpoint::hit("renew.ca.issue");
        (self.progress)(&ServiceProgress {
            step,
            detail: "certificates from the e-Signature CA".into(),
        });
        let t0 = Instant::now();
        let certs = self.certify(&keys)?;
        self.hsm_ms += ms(t0);
        // Recorded as issued in the transaction that finishes the step.
        let doc = self.doc;
        let recorded = self.st.registry.write(|t| {
            let mut out = Vec::new();
            for (slot, profile, issuer_key_id, der) in &certs {
                let mut rec = crate::hierarchy::cert_record(*issuer_key_id, der, profile)
                    .map_err(|e| registry::Error::Conflict(e.to_string()))?;
                rec.holder_id = Some(doc.holder.id);
                rec.job_id = Some(doc.issuance_job);
                let serial = rec.serial.clone();
                let not_after = rec.not_after.clone();
                out.push(Recorded {
                    id: t.insert_certificate(&rec)?,
                    slot: *slot,
                    profile: profile.clone(),
                    serial,
                    not_after,
                    der: der.clone(),
                });
            }
            let details = json!({ "certificates": out.iter().map(|c| json!({
                "id": c.id, "slot": slot_name(c.slot), "serial": c.serial })).collect::<Vec<_>>() });
            t.finish_service_step(id, StepState::Done, Some(&details))?;
            Ok(out)
        })?;
        Ok(recorded)
    }

    /// New certificates from the station's active e-Signature CA key, one per new key, each
    /// certificate profile's validity capped at the document's expiry (and at the issuing CA
    /// certificate's, which a certificate may not outlive).
    fn certify(
        &mut self,
        keys: &card_services::RenewedKeys,
    ) -> Result<Vec<NewCertificate>, StationError> {
        let (esign_key, issuer) = crate::hierarchy::active_issuer(self.st, "esign")?;
        let country = self.st.document_profile()?.country.clone();
        let h = &self.doc.holder.data;
        let subject = ca::holder_subject(&h.pinfl, &h.surname, &h.given_names, &country);
        let expiry = crate::holder::parse_date(&self.doc.document.date_of_expiry).map_err(|e| {
            StationError::Other(format!(
                "document {}: date_of_expiry: {e}",
                self.doc.document.number
            ))
        })?;
        let today = crate::time_util::today_utc();
        let days_left = (expiry - today).whole_days();
        if days_left < 1 {
            return Err(StationError::Conflict(format!(
                "date_of_expiry: document {} expires on {expiry}: there is nothing to renew",
                self.doc.document.number
            )));
        }
        let profile = self.st.card_profile()?.clone();
        let now = SystemTime::now();
        // Whole days the issuing CA's certificate still covers: a certificate may not outlive
        // its issuer (ca refuses one that would), so the cap is the earlier of the two.
        let issuer_days = issuer
            .not_after()
            .duration_since(now)
            .map(|d| d.as_secs() / 86_400)
            .unwrap_or(0);
        let cap = u32::try_from(days_left.min(i64::try_from(issuer_days).unwrap_or(i64::MAX)))
            .unwrap_or(u32::MAX);
        if cap < 1 {
            return Err(StationError::Conflict(format!(
                "esign CA: its certificate expires within a day; roll the e-Signature CA over \
                 before renewing document {}",
                self.doc.document.number
            )));
        }
        let mut out = Vec::new();
        for key in &profile.keys {
            let spki = keys.public_key(key.slot).ok_or_else(|| {
                StationError::Other(format!(
                    "the card returned no public key for slot {}",
                    slot_name(key.slot)
                ))
            })?;
            let mut cert_profile = self.st.profiles.cert(&key.certificate_profile)?.clone();
            cert_profile.validity.days = cert_profile.validity.days.min(cap);
            let cert = ca::issue(
                self.st.keys.as_ref(),
                &cert_profile,
                &issuer,
                spki,
                &subject,
                now,
            )?;
            out.push((
                key.slot,
                key.certificate_profile.clone(),
                esign_key.id,
                cert.der,
            ));
        }
        Ok(out)
    }

    /// `card.install`: certificates and Key History written, read back, test-signed.
    fn install(
        &mut self,
        tx: &mut dyn Transport,
        job_id: i64,
        card_key: &personalization::secret::ManagementKey,
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
        let report = card_services::install_certificates(tx, self.serial, card_key, &certs, pin)
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
        job_id: i64,
        recorded: &[Recorded],
    ) -> Result<Vec<String>, StationError> {
        let step = ServiceStep::RegistryComplete;
        (self.progress)(&ServiceProgress {
            step,
            detail: "registry".into(),
        });
        crate::failpoint::hit("renew.registry.complete");
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

    /// Undo a renewal that never reached `card.install`: its certificates (if any were
    /// recorded) revoked as cessationOfOperation, the job rolled back, audited.
    fn roll_back(&mut self, job_id: i64, e: &StationError) {
        let doc = self.doc;
        let session = self.session;
        let now = registry::now_rfc3339();
        let issued: Vec<(i64, String)> = self
            .st
            .registry
            .service_job(job_id)
            .ok()
            .flatten()
            .and_then(|j| renewal_certificates(self.st, doc, &j).ok().flatten())
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.id, c.serial))
            .collect();
        let result = self.st.registry.write(|t| {
            for (id, _) in &issued {
                t.revoke_certificate(*id, "cessationOfOperation", &now)?;
            }
            t.end_service_job(job_id, JobState::RolledBack, Some(&e.to_string()))?;
            t.audit(&AuditEntry {
                actor: session.actor(),
                action: "renewal.rolled-back",
                object: &format!("document:{}", doc.document.number),
                details: &json!({
                    "service_job": job_id,
                    "error": e.to_string(),
                    "revoked": issued.iter().map(|(_, s)| s).collect::<Vec<_>>(),
                }),
            })?;
            Ok(())
        });
        if let Err(re) = result {
            tracing::error!(job = job_id, error = %re, "renewal rollback failed; the next renewal retries it");
        }
    }
}
