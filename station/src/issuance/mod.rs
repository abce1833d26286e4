//! The issuance job (ARCHITECTURE "One issuance"): a validated holder record and a blank card
//! in a reader become an issued ID card, journaled step by step in the registry.
//!
//! ```text
//! registry: holder, document number, job ─► card: inspect (reset if left PERSONALIZING)
//!  ─► card.prepare (per-card management key derived in the HSM, keys generated on the chip)
//!  ─► ca.issue (certificates signed in the HSM, recorded as issued)
//!  ─► card.complete (write PIV objects, read back, test-sign; write the ICAO 9303 LDS, read it
//!     back through BAC, passive authentication; card.lock journaled before LOCK is sent)
//!  ─► registry: document ACTIVE, card LOCKED, certificates ACTIVE, outbox, audit (one commit)
//! ```
//!
//! Every step is journaled before its side effect. A failure before the LOCK command rolls
//! the job back at once (certificates revoked as cessationOfOperation, the number spoiled or
//! released; the card is reset when it is next inserted). A failure after the LOCK command may
//! have reached the card leaves the job for [`crate::recovery`], which asks the card.
//!
//! While a job runs, its process holds an exclusive lock file (`DATA/locks/job-<id>.lock`), so
//! recovery in another process never touches a job that is still alive.

use std::time::{Instant, SystemTime};

use personalization::executor::{
    self, CompleteInput, HolderCardData, LdsPlan, Personalizer, Progress,
};
use personalization::piv::{Lifecycle, Slot};
use personalization::plan::CardProfile;
use personalization::secret::{Pin, PinKind};
use personalization::transport::pcsc::Pcsc;
use registry::{
    AuditEntry, CardLifecycle, DocumentNumber, NewHolder, NumberState, Rollback, StepState,
};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::datadir::{Work, WorkLock};
use crate::error::StationError;
use crate::holder::ValidHolder;
use crate::operators::Session;
use crate::Station;

// Moved to their owners; kept here for the callers that still name them through `issuance`.
mod lds;

pub use lds::{build_lds, LdsData};

pub use crate::card::{
    card_management_key, card_profile, serial_text, slot_name, MGMT_KEY_PURPOSE,
};
pub use crate::holder_views::{
    printed_name, record_mrz_lines as mrz_lines, MrzRecord as MrzHolder, ISSUING_STATE,
};

/// Step names in the job journal.
pub mod steps {
    pub const CARD_RESET: &str = "card.reset";
    pub const CARD_PREPARE: &str = "card.prepare";
    pub const CA_ISSUE: &str = "ca.issue";
    pub const CARD_COMPLETE: &str = "card.complete";
    /// Journaled by the progress callback right before the LOCK command goes to the card.
    pub const CARD_LOCK: &str = "card.lock";
    pub const REGISTRY_COMPLETE: &str = "registry.complete";
}

/// What the clerk (or a script) hands to an issuance.
pub struct IssueInput {
    pub holder: ValidHolder,
    /// Reader name (or a unique part of it); `None` = the one reader holding a card.
    pub reader: Option<String>,
    /// The holder's PIN, entered by the holder (not the clerk): checked against the card
    /// profile and refused when easy to guess ([`crate::pin_letter::check_holder_pin`]).
    pub pin: Zeroizing<String>,
    /// Where the PIN letter (a PDF with the PUK the station draws at random) is written; the
    /// file must not exist. The station keeps no copy of the PUK.
    pub pin_letter: std::path::PathBuf,
    /// The clerk confirmed that a registered holder's changed personal data is right: the
    /// registry takes the new data (each change audited). Without it such an issuance is
    /// refused before the card is touched.
    pub update_holder: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct IssuedCertSummary {
    pub slot: String,
    pub profile: String,
    pub serial: String,
}

/// Where the time of one issuance went (for the benchmark and the notes).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub card_ms: f64,
    pub hsm_ms: f64,
    pub registry_ms: f64,
    pub total_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct IssueReport {
    pub job_id: i64,
    pub document: String,
    pub card_serial: String,
    pub reader: String,
    pub certificates: Vec<IssuedCertSummary>,
    pub apdus: u64,
    pub bytes_to_card: u64,
    pub bytes_from_card: u64,
    pub timings: Timings,
}

/// A progress event for the CLI and the GUI: the job step and, inside card steps, the card step.
#[derive(Debug, Clone)]
pub struct JobProgress {
    pub job_step: &'static str,
    pub card: Option<Progress>,
}

/// Check PIN and PUK against the card profile before anything is written anywhere.
/// The holder's PIN as the card takes it: the card profile's rules, then the weak-PIN rules
/// (one digit, a run, the holder's birth date). Errors name the rule, never the value.
pub fn check_pin(
    profile: &CardProfile,
    pin: &str,
    date_of_birth: time::Date,
) -> Result<Pin, StationError> {
    let checked =
        Pin::new(PinKind::Pin, pin).map_err(|e| StationError::invalid("pin", e.to_string()))?;
    profile
        .check_secret(&checked)
        .map_err(|e| StationError::invalid("pin", e.to_string()))?;
    crate::pin_letter::check_holder_pin(pin, date_of_birth)?;
    Ok(checked)
}

/// A PUK drawn at random, as long as the card profile allows, checked against it.
fn random_puk(profile: &CardProfile) -> Result<(Pin, Zeroizing<String>), StationError> {
    let text = crate::pin_letter::generate_puk(profile.puk.max_length)?;
    let puk =
        Pin::new(PinKind::Puk, &text).map_err(|e| StationError::invalid("puk", e.to_string()))?;
    profile
        .check_secret(&puk)
        .map_err(|e| StationError::invalid("puk", e.to_string()))?;
    Ok((puk, text))
}

/// Issue one card. See the module docs for the steps and what a failure leaves behind.
pub fn issue(
    st: &mut Station,
    session: &Session,
    input: &IssueInput,
    progress: &mut dyn FnMut(&JobProgress),
) -> Result<IssueReport, StationError> {
    crate::operators::require_current(
        &mut st.registry,
        session,
        "issue cards",
        &[registry::Role::Clerk],
    )?;
    let started = Instant::now();
    let mut t = Timings::default();
    let profile = card_profile(st)?;
    let pin = check_pin(&profile, &input.pin, input.holder.date_of_birth)?;
    crate::pin_letter::check_destination(&input.pin_letter)?;
    let doc_profile = crate::document::DocumentProfile::load(st)?;
    // A registered holder with other data: refused before the card unless confirmed.
    let holder_view = crate::holder_update::registry_view(&input.holder)?;
    if !input.update_holder {
        if let Some(h) = st.registry.holder_by_pinfl(&holder_view.pinfl)? {
            let changes = crate::holder_update::differences(&h.data, &holder_view);
            crate::holder_update::refuse_unconfirmed(&holder_view.pinfl, &changes)?;
        }
    }
    // Everything that needs no card, before the first APDU: a doomed issuance costs no card.
    preflight(st, &input.holder)?;

    // Card first (reads only): a missing card or reader costs no document number.
    let t0 = Instant::now();
    let pcsc = Pcsc::establish().map_err(|e| StationError::card(None, &e))?;
    let reader = crate::readers::choose_reader(&pcsc, input.reader.as_deref())?;
    let mut card = pcsc
        .connect(&reader)
        .map_err(|e| StationError::card(None, &e.in_step("connect to the card")))?;
    let mut tx = card
        .begin()
        .map_err(|e| StationError::card(None, &e.in_step("open a card transaction")))?;
    let first = executor::inspect(&mut tx).map_err(|e| StationError::card(None, &e))?;
    t.card_ms += ms(t0);

    // Recovery first: unfinished jobs are resolved, those of this card with the card at hand.
    let resolved = crate::recovery::recover_with_card(st, session.actor(), &mut tx, first.serial)?;
    let info = executor::inspect(&mut tx).map_err(|e| StationError::card(None, &e))?;
    if info.lifecycle == Lifecycle::Locked {
        let by_recovery = resolved
            .iter()
            .find(|r| r.outcome == "completed")
            .map(|r| format!(" (recovery just completed its unfinished job {})", r.job_id))
            .unwrap_or_default();
        return Err(StationError::Conflict(format!(
            "card {} in {reader} is already issued (LOCKED){by_recovery}; insert a blank card",
            serial_text(info.serial)
        )));
    }

    // Registry: holder, number, job (one transaction; a conflict leaves nothing behind).
    let t0 = Instant::now();
    let (job_id, number, _lock) = start_job(
        st,
        session,
        &input.holder,
        &holder_view,
        input.update_holder,
        info.serial,
    )?;
    t.registry_ms += ms(t0);
    crate::failpoint::hit("job.created");

    let mut state = RunState {
        lock_journaled: false,
        complete_started: false,
    };
    // The PUK: drawn now, printed into the letter before it goes to the card (a PUK on a card
    // with no letter would help nobody), kept nowhere else.
    let mut letter_written = false;
    let result = random_puk(&profile)
        .and_then(|(puk, text)| {
            let facts = crate::pin_letter::LetterFacts {
                document: &number.to_string(),
                holder_name: &printed_name(&input.holder),
                office: &st.config.station.office,
                issued_on: crate::time_util::today_utc(),
            };
            crate::pin_letter::write(&input.pin_letter, &facts, &text)?;
            letter_written = true;
            Ok(puk)
        })
        .and_then(|puk| {
            run_card_steps(
                st,
                session,
                &profile,
                &doc_profile,
                &mut tx,
                &info,
                job_id,
                number,
                &input.holder,
                (&pin, &puk),
                &mut t,
                &mut state,
                progress,
            )
        });
    match result {
        Ok(mut report) => {
            drop(tx);
            report.reader = reader;
            t.total_ms = ms(started);
            report.timings = t;
            Ok(report)
        }
        Err(e) => {
            if state.lock_journaled {
                // The LOCK may have reached the card: only the card can say. Recovery asks it
                // when it is inserted again (or `idstation recover` decides without it).
                tracing::warn!(
                    job = job_id,
                    "issuance failed after LOCK was sent; left for recovery"
                );
                let _ = st
                    .registry
                    .write(|tx| tx.set_job_error(job_id, &e.to_string()));
            } else {
                // The card does not keep this PUK: its letter must not survive either.
                if letter_written {
                    if let Err(re) = std::fs::remove_file(&input.pin_letter) {
                        tracing::error!(error = %re, path = %input.pin_letter.display(), "could not remove the PIN letter of a rolled-back issuance");
                    }
                }
                let rollback = Rollback {
                    job_id,
                    number: if state.complete_started {
                        NumberState::Spoiled
                    } else {
                        NumberState::Released
                    },
                    card_reset: None,
                    reason: e.to_string(),
                };
                let serial = serial_text(info.serial);
                let undone = st.registry.write(|tx| {
                    tx.upsert_card(&serial, CardLifecycle::Personalizing)?;
                    tx.roll_back_issuance(&rollback, session.actor())
                });
                match undone {
                    Ok(_) => crate::audit::checkpoint_after(st, "issuance.rolled-back"),
                    Err(re) => {
                        tracing::error!(job = job_id, error = %re, "rollback failed; recovery will retry")
                    }
                }
            }
            Err(e)
        }
    }
}

/// The checks of an issuance that need no card, run before the first APDU (issue 19): the
/// active e-Signature CA key (its certificate, its key in the HSM), the active Document Signer
/// (its certificate, its key in the HSM) and the CSCA certificate that certified it, the card
/// master key and the audit key in the HSM, a document number left in the office's blocks, and
/// no active card or running issuance for the holder. Each refusal says what to do; a missing
/// or unusable key is a conflict with the station's state (exit 5), an HSM that does not answer
/// or lacks a key is exit 4.
pub fn preflight(st: &Station, holder: &ValidHolder) -> Result<(), StationError> {
    let rotate = |ca: &str, what: &str| {
        StationError::Conflict(format!(
            "no active {what} key with a certificate, so no card can be issued; run `idstation ca rotate --ca {ca}` and have another ca-admin approve it"
        ))
    };
    // e-Signature CA: the key that signs the holder certificates.
    st.registry
        .active_ca_key("esign")?
        .filter(|k| k.certificate.is_some())
        .ok_or_else(|| rotate("esign", "e-Signature CA"))?;
    crate::ca_admin::active_issuer(st, "esign").map_err(|e| match e {
        StationError::Ca(ca::CaError::Issuer { label, rule }) => StationError::Conflict(format!(
            "e-Signature CA key {label} cannot issue: {rule}; run `idstation ca rotate --ca esign`"
        )),
        e => e,
    })?;
    // Document Signer (signs EF.SOD) and the CSCA that certified it.
    let ds = st
        .registry
        .active_ca_key(crate::init::DS_CA)?
        .filter(|k| k.certificate.is_some())
        .ok_or_else(|| rotate("ds", "Document Signer"))?;
    let ds_der = ds.certificate.clone().unwrap_or_default();
    let (_, csca) = crate::rotation::certifying_key(st, &ds.label, &ds_der)?;
    if csca.certificate.is_none()
        || !matches!(
            csca.state,
            registry::CaKeyState::Active | registry::CaKeyState::Retired
        )
    {
        return Err(StationError::Conflict(format!(
            "the CSCA key {} that certified Document Signer {} is {}; run `idstation ca rotate --ca csca`, then `idstation ca rotate --ca ds`",
            csca.label,
            ds.label,
            csca.state.as_str()
        )));
    }
    let ds_spki = st.keys.public_key_spki(&ds.label)?;
    if ca::CertInfo::parse(&ds_der).is_err() || !certificate_has_key(&ds_der, &ds_spki) {
        return Err(StationError::Conflict(format!(
            "the HSM key {} is not the Document Signer certificate's key; run `idstation ca rotate --ca ds`",
            ds.label
        )));
    }
    // The other HSM keys an issuance uses: the card master key and the audit key.
    for label in [&st.config.ca.card_master_key, &st.config.ca.audit_key] {
        if st.keys.find(label)?.is_none() {
            return Err(hsm::HsmError::KeyNotFound {
                label: label.clone(),
            }
            .into());
        }
    }
    // A document number left.
    let office = &st.config.station.office;
    if !st
        .registry
        .number_blocks(office)?
        .iter()
        .any(|b| b.next <= b.last)
    {
        return Err(StationError::Conflict(format!(
            "office {office} has no document numbers left: assign it a new number block"
        )));
    }
    // One active card per holder.
    if let Some(h) = st.registry.holder_by_pinfl(&holder.record.pinfl)? {
        if let Some(active) = st.registry.active_card(h.id)? {
            return Err(StationError::Conflict(format!(
                "holder {} already has an active card (document {}); declare it lost or damaged first: `idstation revoke --document {} --reason lost --operator NAME`",
                holder.record.pinfl, active.document.number, active.document.number
            )));
        }
    }
    Ok(())
}

/// Whether the certificate `der` certifies the public key `spki` (same subjectPublicKey bits).
fn certificate_has_key(der: &[u8], spki: &[u8]) -> bool {
    use der::Decode;
    let Ok(c) = x509_cert::Certificate::from_der(der) else {
        return false;
    };
    let Ok(k) = x509_cert::spki::SubjectPublicKeyInfoRef::from_der(spki) else {
        return false;
    };
    c.tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes()
        == k.subject_public_key.raw_bytes()
}

struct RunState {
    lock_journaled: bool,
    complete_started: bool,
}

fn ms(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1000.0
}

fn start_job(
    st: &mut Station,
    session: &Session,
    holder: &ValidHolder,
    new_holder: &NewHolder,
    update_holder: bool,
    serial: u32,
) -> Result<(i64, DocumentNumber, WorkLock), StationError> {
    let office = st.config.station.office.clone();
    let r = &holder.record;
    let address = crate::holder_update::address_view(holder);
    let existing = st.registry.holder_by_pinfl(&r.pinfl)?;
    let latest_address = match &existing {
        Some(h) => st
            .registry
            .addresses(h.id)?
            .into_iter()
            .last()
            .map(|a| a.data),
        None => None,
    };
    let actor = session.actor();
    let tx = st.registry.transaction()?;
    let holder_id = match &existing {
        Some(h) => {
            // Checked again inside the transaction: the data may have changed since the
            // check before the card.
            let changes = crate::holder_update::differences(&h.data, new_holder);
            if !update_holder {
                crate::holder_update::refuse_unconfirmed(&r.pinfl, &changes)?;
            }
            if !changes.is_empty() {
                tx.update_holder(h.id, new_holder)?;
                tx.audit(&AuditEntry {
                    actor,
                    action: "holder.updated",
                    object: &format!("holder:{}", r.pinfl),
                    details: &serde_json::json!({
                        "changes": changes,
                        "confirmed_by_clerk": update_holder,
                    }),
                })?;
            }
            if latest_address.as_ref() != Some(&address) {
                tx.add_address(h.id, &address, actor)?;
            }
            h.id
        }
        None => tx.insert_holder(new_holder, &address, actor)?,
    };
    let number = tx.allocate_document_number(&office)?;
    let job_id = tx.create_job(
        &registry::NewJob {
            holder_id,
            office: office.clone(),
            document: Some(number),
        },
        actor,
    )?;
    // Locked before the job becomes visible: recovery in another process never sees it unlocked.
    let lock = WorkLock::acquire(&st.layout.root, Work::IssuanceJob(job_id))?;
    tx.set_job_subjects(job_id, None, Some(&serial_text(serial)))?;
    tx.audit(&AuditEntry {
        actor,
        action: "issuance.started",
        object: &format!("job:{job_id}"),
        details: &serde_json::json!({ "document": number.to_string(), "pinfl": r.pinfl, "card": serial_text(serial) }),
    })?;
    tx.commit()?;
    Ok((job_id, number, lock))
}

#[allow(clippy::too_many_arguments)]
fn run_card_steps(
    st: &mut Station,
    session: &Session,
    profile: &CardProfile,
    doc_profile: &crate::document::DocumentProfile,
    tx: &mut dyn personalization::transport::Transport,
    info: &executor::CardInfo,
    job_id: i64,
    number: DocumentNumber,
    holder: &ValidHolder,
    (pin, puk): (&Pin, &Pin),
    t: &mut Timings,
    state: &mut RunState,
    progress: &mut dyn FnMut(&JobProgress),
) -> Result<IssueReport, StationError> {
    let personalizer = Personalizer::new(profile);
    let t0 = Instant::now();
    let card_key = card_management_key(st, profile, info.serial)?;
    t.hsm_ms += ms(t0);

    // A card left PERSONALIZING by an earlier failure is reset before it is used again.
    if info.lifecycle == Lifecycle::Personalizing {
        let step = begin(st, job_id, steps::CARD_RESET, serde_json::json!({}))?;
        let t0 = Instant::now();
        let outcome = personalizer
            .reset(tx, &card_key, &mut |p| {
                progress(&JobProgress {
                    job_step: steps::CARD_RESET,
                    card: Some(p.clone()),
                })
            })
            .map_err(|e| StationError::card(Some(steps::CARD_RESET), &e))?;
        t.card_ms += ms(t0);
        finish(
            st,
            step,
            serde_json::json!({ "outcome": format!("{outcome:?}") }),
        )?;
    }

    // card.prepare
    let step = begin(
        st,
        job_id,
        steps::CARD_PREPARE,
        serde_json::json!({ "card": serial_text(info.serial) }),
    )?;
    crate::failpoint::hit(steps::CARD_PREPARE);
    let t0 = Instant::now();
    let prepared = personalizer
        .prepare(tx, &card_key, &mut |p| {
            progress(&JobProgress {
                job_step: steps::CARD_PREPARE,
                card: Some(p.clone()),
            })
        })
        .map_err(|e| StationError::card(Some(steps::CARD_PREPARE), &e))?;
    t.card_ms += ms(t0);
    finish(
        st,
        step,
        serde_json::json!({ "keys": prepared.public_keys.len() }),
    )?;

    // ca.issue: certificates signed in the HSM and recorded (status issued) with the step.
    let step = begin(st, job_id, steps::CA_ISSUE, serde_json::json!({}))?;
    crate::failpoint::hit(steps::CA_ISSUE);
    progress(&JobProgress {
        job_step: steps::CA_ISSUE,
        card: None,
    });
    let (esign_key, issuer) = crate::ca_admin::active_issuer(st, "esign")?;
    let subject = ca::HolderSubject {
        pinfl: holder.record.pinfl.clone(),
        surname: holder.record.surname.clone(),
        given_names: holder.record.given_names.clone(),
        common_name: format!("{} {}", holder.record.given_names, holder.record.surname),
        country: "UZ".into(),
    };
    let now = SystemTime::now();
    let mut certs: Vec<(Slot, String, Vec<u8>)> = Vec::new();
    let t0 = Instant::now();
    for key in &profile.keys {
        let spki = prepared.public_key(key.slot).ok_or_else(|| {
            StationError::Other(format!(
                "the card returned no public key for slot {:?}",
                key.slot
            ))
        })?;
        let cert_profile = st.profiles.cert(&key.certificate_profile)?;
        let cert = ca::issue(st.keys.as_ref(), cert_profile, &issuer, spki, &subject, now)?;
        certs.push((key.slot, key.certificate_profile.clone(), cert.der));
    }
    t.hsm_ms += ms(t0);
    let t0 = Instant::now();
    let holder_id = st
        .registry
        .holder_by_pinfl(&holder.record.pinfl)?
        .map(|h| h.id)
        .ok_or_else(|| StationError::Other("holder vanished from the registry".into()))?;
    let mut cert_ids = Vec::new();
    let mut summaries = Vec::new();
    {
        let rtx = st.registry.transaction()?;
        for (slot, prof, der) in &certs {
            let mut rec = crate::init::cert_record(esign_key.id, der, prof)?;
            rec.holder_id = Some(holder_id);
            rec.job_id = Some(job_id);
            summaries.push(IssuedCertSummary {
                slot: slot_name(*slot),
                profile: prof.clone(),
                serial: rec.serial.clone(),
            });
            cert_ids.push(rtx.insert_certificate(&rec)?);
        }
        rtx.finish_step(step, StepState::Done, Some(&serde_json::json!({ "certificates": summaries.iter().map(|c| &c.serial).collect::<Vec<_>>() })))?;
        rtx.commit()?;
    }
    t.registry_ms += ms(t0);

    // The LDS (ICAO 9303): data groups from the holder record, EF.SOD signed in the HSM by the
    // Document Signer. Built before the card step: a bad photo costs no card I/O.
    let expiry = doc_profile.expiry(crate::time_util::today_utc());
    let t0 = Instant::now();
    let lds_data = build_lds(
        st,
        holder,
        &number.to_string(),
        expiry,
        crate::time_util::today_utc(),
    )?;
    t.hsm_ms += ms(t0);

    // card.complete: write, read back, test-sign, LDS + BAC + passive authentication;
    // card.lock journaled before LOCK.
    let step = begin(
        st,
        job_id,
        steps::CARD_COMPLETE,
        serde_json::json!({ "lds": lds_data.files.dgs.keys().collect::<Vec<_>>() }),
    )?;
    state.complete_started = true;
    crate::failpoint::hit(steps::CARD_COMPLETE);
    let card_data = HolderCardData {
        name: printed_name(holder),
        document_number: number.to_string(),
        expiry,
    };
    let slot_certs: Vec<(Slot, Vec<u8>)> = certs.iter().map(|(s, _, d)| (*s, d.clone())).collect();
    let t0 = Instant::now();
    let mut journal_error: Option<StationError> = None;
    let report = {
        let reg = &mut st.registry;
        let lock_journaled = &mut state.lock_journaled;
        personalizer.complete_with_lds(
            tx,
            &prepared,
            &card_key,
            &CompleteInput {
                certificates: &slot_certs,
                holder: &card_data,
                pin,
                puk,
            },
            Some(&LdsPlan {
                files: &lds_data.files,
                mrz_information: lds_data.mrz_information.clone(),
                csca_der: &lds_data.csca_der,
                now: SystemTime::now(),
            }),
            &mut |p| {
                if p.step == "lock" && !*lock_journaled {
                    match reg
                        .write(|tx| tx.begin_step(job_id, steps::CARD_LOCK, &serde_json::json!({})))
                    {
                        Ok(_) => *lock_journaled = true,
                        Err(e) => journal_error = Some(e.into()),
                    }
                    crate::failpoint::hit(steps::CARD_LOCK);
                }
                progress(&JobProgress {
                    job_step: steps::CARD_COMPLETE,
                    card: Some(p.clone()),
                })
            },
        )
    };
    if let Some(e) = journal_error {
        return Err(e);
    }
    let report = report.map_err(|e| StationError::card(Some(steps::CARD_COMPLETE), &e))?;
    t.card_ms += ms(t0);
    finish(
        st,
        step,
        serde_json::json!({
            "objects": report.objects_verified,
            "signatures": report.signatures_verified.len(),
            "lds_passive_authentication": report.lds_verified,
        }),
    )?;
    crate::failpoint::hit("card.locked");

    // registry.complete: everything true in one commit.
    let t0 = Instant::now();
    progress(&JobProgress {
        job_step: steps::REGISTRY_COMPLETE,
        card: None,
    });
    let today = crate::time_util::today_utc();
    let completion = registry::Completion {
        job_id,
        date_of_issue: today.to_string(),
        date_of_expiry: expiry.to_string(),
        card_serial: serial_text(info.serial),
        certificate_ids: cert_ids,
    };
    {
        // The completion and a checkpoint over its audit event, signed with the HSM audit key,
        // commit together: every issuance ends inside a signed checkpoint.
        let audit_label = st.config.ca.audit_key.clone();
        let keys = &st.keys;
        let sign = |m: &[u8]| keys.sign_p256_sha256(&audit_label, m);
        let rtx = st.registry.transaction()?;
        let s = rtx.begin_step(job_id, steps::REGISTRY_COMPLETE, &serde_json::json!({}))?;
        rtx.finish_step(s, StepState::Done, None)?;
        rtx.complete_issuance(&completion, session.actor())?;
        rtx.audit_checkpoint(&sign)?;
        rtx.commit()?;
    }
    t.registry_ms += ms(t0);
    let mut stats_total = prepared.stats;
    stats_total.add(&report.stats);
    Ok(IssueReport {
        job_id,
        document: number.to_string(),
        card_serial: serial_text(info.serial),
        reader: String::new(),
        certificates: summaries,
        apdus: stats_total.apdus,
        bytes_to_card: stats_total.bytes_sent,
        bytes_from_card: stats_total.bytes_received,
        timings: Timings::default(),
    })
}

fn begin(
    st: &mut Station,
    job_id: i64,
    step: &str,
    details: serde_json::Value,
) -> Result<i64, StationError> {
    Ok(st
        .registry
        .write(|tx| tx.begin_step(job_id, step, &details))?)
}

fn finish(st: &mut Station, step_id: i64, details: serde_json::Value) -> Result<(), StationError> {
    Ok(st
        .registry
        .write(|tx| tx.finish_step(step_id, StepState::Done, Some(&details)))?)
}
