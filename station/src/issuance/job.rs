//! The running issuance job as a state machine. [`Job`] is the context every state uses (the
//! station, the card, the seams, the journal); each state owns what the steps before it
//! produced, and moving to the next state consumes it, so the steps can only run in order:
//!
//! ```text
//! Inspected ─prepare─► Prepared ─certify─► Certified ─personalize─► Locked ─register─► report
//!  (card.reset, card.prepare)  (ca.issue)   (card.complete, card.lock)  (registry.complete)
//! ```
//!
//! Every journaled step goes through [`Job::journaled`]: begin in the journal, crash point,
//! progress, the work, finish.

use std::time::{Instant, SystemTime};

use personalization::executor::{self, CardInfo, CardStep, CompleteInput, LdsPlan, Personalizer};
use personalization::lifecycle::Lifecycle;
use personalization::secret::{ManagementKey, Pin};
use personalization::transport::Transport;
use profiles::card::{CardProfile, Slot};
use profiles::document::DocumentProfile;
use registry::{DocumentNumber, StepState};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::lds::{build_lds, LdsData};
use super::{IssueReport, IssuedCertSummary, JobProgress, Timings};
use crate::card::{serial_text, slot_name};
use crate::certifier::{CardCertificate, Certifier, KeyToCertify};
use crate::error::StationError;
use crate::holder::ValidHolder;
use crate::journal::{JobStep, Reached};
use crate::registrar::{RecordedCertificate, Registrar};
use crate::session::Session;
use crate::Station;

/// What every state of a running job works with.
pub(super) struct Job<'a> {
    pub st: &'a mut Station,
    pub session: &'a Session,
    pub certifier: &'a dyn Certifier,
    pub registrar: &'a dyn Registrar,
    pub job_id: i64,
    pub number: DocumentNumber,
    /// The card's serial.
    pub serial: u32,
    pub holder: &'a ValidHolder,
    pub profile: &'a CardProfile,
    pub doc_profile: &'a DocumentProfile,
    pub card: &'a mut dyn Transport,
    pub progress: &'a mut dyn FnMut(&JobProgress),
    /// How far the journal shows the job: decides how a failure is undone.
    pub reached: Reached,
    pub timings: Timings,
}

/// Journal the beginning of `step` of job `job_id` and move `reached` on.
fn begin_step(
    st: &mut Station,
    reached: &mut Reached,
    job_id: i64,
    step: JobStep,
    details: &Value,
) -> Result<i64, StationError> {
    let id = st
        .registry
        .write(|tx| tx.begin_step(job_id, step.as_str(), details))?;
    *reached = reached.after_beginning(step);
    Ok(id)
}

pub(super) fn ms(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1000.0
}

impl Job<'_> {
    /// One journaled step: begun in the journal before its side effect (with `details`), the
    /// crash point of its name, one progress event unless the card reports the step's
    /// progress itself, then `work`. `work` gets the journal id of the step and returns the
    /// details the step finishes with, or `None` when it finished the step itself (in the
    /// transaction that records its outcome).
    fn journaled<T>(
        &mut self,
        step: JobStep,
        details: Value,
        work: impl FnOnce(&mut Self, i64) -> Result<(T, Option<Value>), StationError>,
    ) -> Result<T, StationError> {
        let id = begin_step(self.st, &mut self.reached, self.job_id, step, &details)?;
        crate::failpoint::hit(step.as_str());
        if !step.card_reports_progress() {
            (self.progress)(&JobProgress::new(step, None));
        }
        let (out, finished) = work(self, id)?;
        if let Some(d) = finished {
            self.st
                .registry
                .write(|tx| tx.finish_step(id, StepState::Done, Some(&d)))?;
        }
        Ok(out)
    }
}

/// The card-side progress of `step`, as job progress.
fn card_progress<'p>(
    progress: &'p mut dyn FnMut(&JobProgress),
    step: JobStep,
) -> impl FnMut(&executor::Progress) + 'p {
    move |p| progress(&JobProgress::new(step, Some(p.clone())))
}

/// The management key a card left PERSONALIZING by an earlier job of this station is under: that
/// job's — the centre's, asked for again by its UUID, or this station's own. `None` when no
/// earlier job here prepared the card.
fn key_of_earlier_job(job: &Job<'_>, serial: u32) -> Result<Option<ManagementKey>, StationError> {
    let earlier = job
        .st
        .registry
        .last_job_that_prepared(&serial_text(serial), job.job_id)?;
    let Some(earlier) = earlier else {
        return Ok(None);
    };
    let key = match crate::card::journaled_card_key(&earlier) {
        Some(_) => {
            let actor = job.session.actor();
            crate::ra::centre_card_key_for_job(job.st, actor, earlier.id, job.profile, serial)?.0
        }
        None => crate::card::card_management_key(job.st, job.profile, serial)?,
    };
    Ok(Some(key))
}

/// The card inspected and the job reserved: the card steps start here.
pub(super) struct Inspected {
    pub info: CardInfo,
}

/// Key pairs generated on the card under its per-card management key.
pub(super) struct Prepared {
    card_key: ManagementKey,
    prepared: executor::Prepared,
}

/// Certificates for the card's keys, recorded as issued.
pub(super) struct Certified {
    prepared: Prepared,
    certificates: Vec<CardCertificate>,
    recorded: Vec<RecordedCertificate>,
}

/// The card written, checked and LOCKED.
pub(super) struct Locked {
    certified: Certified,
    report: executor::Report,
    expiry: time::Date,
    /// The serial (hex) of the Document Signer certificate whose key signed EF.SOD.
    document_signer: String,
}

impl Inspected {
    /// `card.reset` (a card left PERSONALIZING by an earlier failure goes back to BLANK),
    /// then `card.prepare`.
    pub fn prepare(self, job: &mut Job<'_>) -> Result<Prepared, StationError> {
        let personalizer =
            Personalizer::new(job.profile).with_chip_access(job.doc_profile.chip_access);
        let t0 = Instant::now();
        let (card_key, centre_key) = job.certifier.card_key(
            job.st,
            job.session.actor(),
            job.job_id,
            job.profile,
            self.info.serial,
        )?;
        job.timings.hsm_ms += ms(t0);
        // Whose key the card goes under is journaled before it does (and kept when the step
        // finishes), so that recovery and the card services later ask for the same one.
        let mut key_details = json!({});
        if let Some(label) = &centre_key {
            key_details[crate::card::JOURNALED_CARD_KEY] = json!(label);
        }
        if self.info.lifecycle == Lifecycle::Personalizing {
            // The card is under the key of the job that left it so, not this one's (the
            // centre's key differs per job).
            let earlier = key_of_earlier_job(job, self.info.serial)?;
            job.journaled(JobStep::CardReset, key_details.clone(), |job, _| {
                let t0 = Instant::now();
                let mut progress = card_progress(&mut *job.progress, JobStep::CardReset);
                let outcome = personalizer
                    .reset(
                        &mut *job.card,
                        earlier.as_ref().unwrap_or(&card_key),
                        &mut progress,
                    )
                    .map_err(|e| StationError::card(Some(JobStep::CardReset.as_str()), &e))?;
                job.timings.card_ms += ms(t0);
                let mut finished = key_details.clone();
                finished["outcome"] = json!(format!("{outcome:?}"));
                Ok(((), Some(finished)))
            })?;
        }
        let mut details = key_details.clone();
        details["card"] = json!(serial_text(self.info.serial));
        let prepared = job.journaled(JobStep::CardPrepare, details, |job, _| {
            let t0 = Instant::now();
            let mut progress = card_progress(&mut *job.progress, JobStep::CardPrepare);
            let prepared = personalizer
                .prepare(&mut *job.card, &card_key, &mut progress)
                .map_err(|e| StationError::card(Some(JobStep::CardPrepare.as_str()), &e))?;
            job.timings.card_ms += ms(t0);
            // The finished step's details replace the begun step's: the key's label stays.
            let mut finished = key_details;
            finished["keys"] = json!(prepared.public_keys.len());
            finished["chip_authentication_keys"] = json!(prepared.chip_keys.is_some());
            Ok((prepared, Some(finished)))
        })?;
        Ok(Prepared { card_key, prepared })
    }
}

impl Prepared {
    /// `ca.issue`: the certifier makes one certificate per planned key (after the card proved
    /// possession of each key, when the certifier asks for it); the registrar records them (as
    /// issued) in the transaction that finishes the step.
    pub fn certify(self, job: &mut Job<'_>) -> Result<Certified, StationError> {
        job.journaled(JobStep::CaIssue, json!({}), |job, step_id| {
            let public_keys = job
                .profile
                .keys
                .iter()
                .map(|key| {
                    let public_key = self.prepared.public_key(key.slot).ok_or_else(|| {
                        StationError::Other(format!(
                            "the card returned no public key for slot {:?}",
                            key.slot
                        ))
                    })?;
                    Ok((key.slot, public_key))
                })
                .collect::<Result<Vec<_>, StationError>>()?;
            let proofs = self.prove_possession(job, &public_keys)?;
            let keys: Vec<KeyToCertify<'_>> = job
                .profile
                .keys
                .iter()
                .zip(&public_keys)
                .map(|(key, (slot, public_key))| KeyToCertify {
                    slot: *slot,
                    profile: &key.certificate_profile,
                    public_key,
                    proof: proofs
                        .iter()
                        .find(|(s, _)| s == slot)
                        .map(|(_, p)| p.as_slice()),
                })
                .collect();
            let t0 = Instant::now();
            let certificates = job.certifier.certify(
                job.st,
                job.session.actor(),
                job.job_id,
                job.holder,
                &keys,
            )?;
            job.timings.hsm_ms += ms(t0);
            let t0 = Instant::now();
            let recorded = job.registrar.record_certificates(
                job.st,
                job.job_id,
                step_id,
                job.holder,
                &certificates,
            )?;
            job.timings.registry_ms += ms(t0);
            Ok((
                Certified {
                    prepared: self,
                    certificates,
                    recorded,
                },
                None,
            ))
        })
    }
}

impl Prepared {
    /// The card signs what the certifier asks for each key (nothing when it asks for nothing).
    fn prove_possession(
        &self,
        job: &mut Job<'_>,
        public_keys: &[(Slot, &[u8])],
    ) -> Result<Vec<(Slot, Vec<u8>)>, StationError> {
        let Some(digests) = job
            .certifier
            .proof_digests(job.st, job.job_id, public_keys)?
        else {
            return Ok(Vec::new());
        };
        let t0 = Instant::now();
        let proofs = Personalizer::new(job.profile)
            .prove_possession(&mut *job.card, &self.prepared, &digests)
            .map_err(|e| StationError::card(Some(JobStep::CaIssue.as_str()), &e))?;
        job.timings.card_ms += ms(t0);
        Ok(proofs)
    }
}

impl Certified {
    /// The LDS built (a bad photo costs no card I/O), then `card.complete`: PIV objects and the
    /// LDS written, read back, test-signed, passive authentication, `card.lock` journaled right
    /// before the LOCK command.
    pub fn personalize(
        self,
        job: &mut Job<'_>,
        pin: &Pin,
        puk: &Pin,
    ) -> Result<Locked, StationError> {
        let today = crate::time_util::today_utc();
        let expiry = job.doc_profile.expiry(today);
        let t0 = Instant::now();
        let chip_keys = self.prepared.prepared.chip_keys.as_ref();
        let lds = build_lds(
            job.st,
            job.holder,
            &job.number.to_string(),
            (expiry, today),
            chip_keys,
        )?;
        job.timings.hsm_ms += ms(t0);
        let can = draw_can(job)?;
        let details = json!({
            "lds": lds.files.dgs.keys().collect::<Vec<_>>(),
            "chip_access": job.doc_profile.chip_access.as_str(),
            "document_signer": lds.document_signer,
        });
        let report = job.journaled(JobStep::CardComplete, details, |job, _| {
            let report = self.complete_card(job, &lds, &can, expiry, (pin, puk))?;
            let details = json!({
                "objects": report.objects_verified,
                "signatures": report.signatures_verified.len(),
                "lds_passive_authentication": report.lds_verified,
                "lds_checks": report.lds_checks,
                "document_signer": lds.document_signer,
            });
            Ok((report, Some(details)))
        })?;
        crate::failpoint::hit("card.locked");
        Ok(Locked {
            certified: self,
            report,
            expiry,
            document_signer: lds.document_signer,
        })
    }

    /// The card's part of `card.complete`, journaling `card.lock` from the card's progress
    /// right before the LOCK command goes out.
    fn complete_card(
        &self,
        job: &mut Job<'_>,
        lds: &LdsData,
        can: &Zeroizing<String>,
        expiry: time::Date,
        (pin, puk): (&Pin, &Pin),
    ) -> Result<executor::Report, StationError> {
        let holder = crate::holder_views::card_data(job.holder, &job.number.to_string(), expiry);
        let certificates: Vec<(Slot, Vec<u8>)> = self
            .certificates
            .iter()
            .map(|c| (c.slot, c.der.clone()))
            .collect();
        let plan = LdsPlan {
            files: &lds.files,
            mrz_information: lds.mrz_information.clone(),
            csca_der: &lds.csca_der,
            now: SystemTime::now(),
            can: Some(can.clone()),
        };
        let input = CompleteInput {
            certificates: &certificates,
            holder: &holder,
            pin,
            puk,
        };
        let t0 = Instant::now();
        let mut journal_error: Option<StationError> = None;
        let Job {
            st,
            job_id,
            reached,
            card,
            progress,
            profile,
            doc_profile,
            ..
        } = job;
        let personalizer = Personalizer::new(profile).with_chip_access(doc_profile.chip_access);
        let report = personalizer.complete_with_lds(
            &mut **card,
            &self.prepared.prepared,
            &self.prepared.card_key,
            &input,
            Some(&plan),
            &mut |p| {
                if p.step == CardStep::Lock && !reached.lock_may_have_reached_the_card() {
                    let lock = JobStep::CardLock;
                    if let Err(e) = begin_step(st, reached, *job_id, lock, &json!({})) {
                        journal_error = Some(e);
                    }
                    crate::failpoint::hit(lock.as_str());
                }
                progress(&JobProgress::new(JobStep::CardComplete, Some(p.clone())))
            },
        );
        if let Some(e) = journal_error {
            return Err(e);
        }
        let report =
            report.map_err(|e| StationError::card(Some(JobStep::CardComplete.as_str()), &e))?;
        job.timings.card_ms += ms(t0);
        Ok(report)
    }
}

/// The card access number of this card (ICAO 9303-11 §4.4; printed on the card face): six
/// digits from the operating system's random generator, recorded in the registry for the job
/// before the card gets it, so no card holds a CAN the registry lacks.
fn draw_can(job: &mut Job<'_>) -> Result<Zeroizing<String>, StationError> {
    let can = personalization::lds::random_can()
        .map_err(|e| StationError::Other(format!("card access number: {e}")))?;
    let job_id = job.job_id;
    job.st.registry.write(|tx| tx.set_job_can(job_id, &can))?;
    Ok(can)
}

impl Locked {
    /// `registry.complete`: document ACTIVE, card LOCKED, certificates ACTIVE, outbox, audit,
    /// in one commit with the step itself.
    pub fn register(self, job: &mut Job<'_>) -> Result<IssueReport, StationError> {
        let t0 = Instant::now();
        let step = JobStep::RegistryComplete;
        (job.progress)(&JobProgress::new(step, None));
        let today = crate::time_util::today_utc();
        let serial = serial_text(self.certified.prepared.prepared.serial);
        let completion = registry::Completion {
            job_id: job.job_id,
            date_of_issue: today.to_string(),
            date_of_expiry: self.expiry.to_string(),
            card_serial: serial.clone(),
            certificate_ids: self.certified.recorded.iter().map(|c| c.id).collect(),
            document_signer: Some(self.document_signer.clone()),
        };
        job.registrar
            .complete(job.st, job.session.actor(), &completion, step.as_str())?;
        job.timings.registry_ms += ms(t0);
        let mut stats = self.certified.prepared.prepared.stats;
        stats.add(&self.report.stats);
        let certificates = self
            .certified
            .certificates
            .iter()
            .zip(&self.certified.recorded)
            .map(|(c, r)| IssuedCertSummary {
                slot: slot_name(c.slot),
                profile: c.profile.clone(),
                serial: r.serial.clone(),
            })
            .collect();
        Ok(IssueReport {
            job_id: job.job_id,
            document: job.number.to_string(),
            card_serial: serial,
            reader: String::new(),
            certificates,
            apdus: stats.apdus,
            bytes_to_card: stats.bytes_sent,
            bytes_from_card: stats.bytes_received,
            timings: Timings::default(),
            document_signer_renewed: None,
        })
    }
}
