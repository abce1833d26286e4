//! The issuance job (ARCHITECTURE "One issuance"): a validated holder record and a blank card
//! in a reader become an issued ID card, journaled step by step in the registry.
//!
//! ```text
//! checks (PIN, holder, preflight) ─► card: inspect, recovery of its unfinished jobs
//!  ─► Registrar::reserve (holder, document number, job) ─► PIN letter
//!  ─► card.reset (a card left PERSONALIZING) ─► card.prepare (per-card management key derived
//!     in the HSM, keys generated on the chip) ─► ca.issue (Certifier::certify, recorded as
//!     issued) ─► card.complete (write PIV objects, read back, test-sign; write the ICAO 9303
//!     LDS, read it back through BAC, passive authentication; card.lock journaled before LOCK
//!     is sent) ─► registry.complete (Registrar::complete: document ACTIVE, card LOCKED,
//!     certificates ACTIVE, outbox, audit, one commit)
//! ```
//!
//! The job is a state machine ([`job`]): each state owns what the steps before it produced;
//! the journal stores the steps' names ([`JobStep`]) and how far a job got ([`Reached`])
//! decides how a failure is undone. A failure before the LOCK command rolls the job back at
//! once ([`Registrar::abort`]: certificates revoked as cessationOfOperation, the number spoiled
//! or released; the card is reset when it is next inserted). A failure after the LOCK command
//! may have reached the card leaves the job for [`crate::recovery`], which asks the card.
//!
//! The job talks to the CA only through [`Certifier`] and to the holder and document records
//! only through [`Registrar`]: the in-station CA and the local registry on a standalone
//! station, the national centre's API on an enrolled one ([`crate::ra`]).
//!
//! While a job runs, its process holds the job's [`crate::datadir::WorkLock`], so recovery in
//! another process never touches a job that is still alive.

mod job;
mod lds;
mod preflight;
mod secrets;

use std::time::Instant;

use personalization::executor::{self, Progress};
use personalization::lifecycle::Lifecycle;
use personalization::secret::Pin;
use personalization::transport::pcsc::Pcsc;
use personalization::transport::Transport;
use registry::Rollback;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::certifier::Certifier;
use crate::error::StationError;
use crate::holder::ValidHolder;
use crate::registrar::{Registrar, Reservation};
use crate::session::Session;
use crate::Station;
use job::{ms, Inspected, Job};

pub use preflight::preflight;
pub use secrets::check_pin;

use crate::card::serial_text;
use crate::holder_views::printed_name;
use crate::journal::{JobStep, Reached};

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
    /// The Document Signer the station renewed before this card because its key usage was
    /// about to end (it signed this card's EF.SOD).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_signer_renewed: Option<crate::document_signer::DocumentSignerRenewal>,
}

/// A progress event for the CLI and the GUI: the job step and, inside card steps, the card step.
#[derive(Debug, Clone)]
pub struct JobProgress {
    pub step: JobStep,
    pub card: Option<Progress>,
}

impl JobProgress {
    pub fn new(step: JobStep, card: Option<Progress>) -> Self {
        JobProgress { step, card }
    }
}

/// Issue one card: through the national centre when the station is enrolled to one, else with
/// the in-station CA and the local registry ([`crate::ra::seams`]). See the module docs for
/// the steps and what a failure leaves behind.
pub fn issue(
    st: &mut Station,
    session: &Session,
    input: &IssueInput,
    progress: &mut dyn FnMut(&JobProgress),
) -> Result<IssueReport, StationError> {
    let (certifier, registrar) = crate::ra::seams(st);
    issue_with(
        st,
        session,
        input,
        certifier.as_ref(),
        registrar.as_ref(),
        progress,
    )
}

/// [`issue`] with another [`Certifier`] and [`Registrar`].
pub fn issue_with(
    st: &mut Station,
    session: &Session,
    input: &IssueInput,
    certifier: &dyn Certifier,
    registrar: &dyn Registrar,
    progress: &mut dyn FnMut(&JobProgress),
) -> Result<IssueReport, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "issue cards",
        &[registry::Role::Clerk],
    )?;
    // An enrolled station's Document Signer about to end its key usage is renewed first.
    let renewed = crate::document_signer::before_issue(st, session)?;
    let started = Instant::now();
    let mut t = Timings::default();
    let Checked {
        profile,
        pin,
        doc_profile,
        record,
    } = check_before_card(st, input, registrar)
        .map_err(|e| refused_before_card(st, session, &input.holder.record.pinfl, e))?;

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
    let info = recover_first(st, session, registrar, &mut tx, first.serial, &reader).map_err(
        |e| match e {
            // A LOCKED card: refused, audited on the card.
            StationError::Conflict(_) => crate::audit::refused(
                st,
                session,
                "issuance.refused",
                &format!("card:{}", serial_text(first.serial)),
                e,
            ),
            e => e,
        },
    )?;

    // Registry: holder, number, job (one transaction; a conflict leaves nothing behind).
    let t0 = Instant::now();
    let reserved = registrar.reserve(
        st,
        session.actor(),
        &Reservation {
            holder: &input.holder,
            record: &record,
            update_holder: input.update_holder,
            card_serial: info.serial,
        },
    )?;
    t.registry_ms += ms(t0);
    crate::failpoint::hit("job.created");

    let mut job = Job {
        st,
        session,
        certifier,
        registrar,
        job_id: reserved.job_id,
        number: reserved.number,
        serial: info.serial,
        holder: &input.holder,
        profile: &profile,
        doc_profile: &doc_profile,
        card: &mut tx,
        progress,
        reached: Reached::Started,
        timings: t,
    };
    let mut letter_written = false;
    let result = write_letter(&mut job, input, &mut letter_written)
        .and_then(|puk| run(&mut job, Inspected { info }, &pin, &puk));
    match result {
        Ok(mut report) => {
            report.reader = reader;
            report.document_signer_renewed = renewed;
            job.timings.total_ms = ms(started);
            report.timings = job.timings;
            Ok(report)
        }
        Err(e) => {
            abandon(&mut job, &e, letter_written.then_some(&input.pin_letter));
            Err(e)
        }
    }
}

/// What the checks before the card produce.
struct Checked {
    profile: profiles::card::CardProfile,
    pin: Pin,
    doc_profile: profiles::document::DocumentProfile,
    /// The registry's view of the holder.
    record: registry::NewHolder,
}

/// Everything that needs no card, before the first APDU: a doomed issuance costs no card.
/// The holder's PIN, the PIN letter's destination, the profiles, a registered holder with
/// other data (refused unless the clerk confirmed), then [`preflight`].
fn check_before_card(
    st: &Station,
    input: &IssueInput,
    registrar: &dyn Registrar,
) -> Result<Checked, StationError> {
    let profile = st.card_profile()?.clone();
    let pin = check_pin(&profile, &input.pin, input.holder.date_of_birth)?;
    crate::pin_letter::check_destination(&input.pin_letter)?;
    let doc_profile = st.document_profile()?.clone();
    let record = registry::NewHolder::try_from(&input.holder)?;
    registrar.check_holder(st, &record, input.update_holder)?;
    preflight(st, &input.holder, registrar)?;
    Ok(Checked {
        profile,
        pin,
        doc_profile,
        record,
    })
}

/// An issuance refused before any card was touched (`check_before_card`): audited
/// `issuance.refused` on the holder. A holder registered with other data is answered with the
/// registry's values (the clerk compares them with the documents): a read of the holder's record,
/// audited `holder.read` too.
fn refused_before_card(
    st: &mut Station,
    session: &Session,
    pinfl: &str,
    e: StationError,
) -> StationError {
    if matches!(e, StationError::HolderDiffers { .. }) {
        // A read that cannot be audited is not answered: the registry's values stay here.
        if let Err(ae) = crate::records::audit_holder_reads(
            st,
            session,
            &[pinfl],
            "issue: registered with other data",
        ) {
            return ae;
        }
    }
    crate::audit::refused(
        st,
        session,
        "issuance.refused",
        &format!("holder:{pinfl}"),
        e,
    )
}

/// Recovery first: unfinished jobs are resolved, those of this card with the card at hand.
/// Returns the card as it is afterwards; a LOCKED card is refused.
fn recover_first(
    st: &mut Station,
    session: &Session,
    registrar: &dyn Registrar,
    tx: &mut dyn Transport,
    serial: u32,
    reader: &str,
) -> Result<executor::CardInfo, StationError> {
    let resolved = crate::recovery::recover_with_card(st, session.actor(), registrar, tx, serial)?;
    let info = executor::inspect(tx).map_err(|e| StationError::card(None, &e))?;
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
    Ok(info)
}

/// The PUK: drawn now, printed into the letter before it goes to the card (a PUK on a card
/// with no letter would help nobody), kept nowhere else.
fn write_letter(
    job: &mut Job<'_>,
    input: &IssueInput,
    written: &mut bool,
) -> Result<Pin, StationError> {
    let (puk, text) = secrets::random_puk(job.profile)?;
    let facts = crate::pin_letter::LetterFacts {
        document: &job.number.to_string(),
        holder_name: &printed_name(job.holder),
        office: &job.st.config.station.office,
        issued_on: crate::time_util::today_utc(),
    };
    crate::pin_letter::write(&input.pin_letter, &facts, &text)?;
    *written = true;
    Ok(puk)
}

/// The card steps, state by state.
fn run(
    job: &mut Job<'_>,
    card: Inspected,
    pin: &Pin,
    puk: &Pin,
) -> Result<IssueReport, StationError> {
    card.prepare(job)?
        .certify(job)?
        .personalize(job, pin, puk)?
        .register(job)
}

/// After a failure: left for recovery when the LOCK may have reached the card, else rolled
/// back at once (and the PIN letter, whose PUK the card does not keep, removed).
fn abandon(job: &mut Job<'_>, e: &StationError, letter: Option<&std::path::PathBuf>) {
    let job_id = job.job_id;
    let settled = matches!(
        job.st.registry.job(job_id),
        Ok(Some(j)) if j.state == registry::JobState::RolledBack
    );
    if settled {
        // Already settled: the registrar rolled it back (the centre aborted the job).
        tracing::warn!(job = job_id, error = %e, "issuance refused and rolled back");
        return;
    }
    if job.reached.lock_may_have_reached_the_card() {
        // Only the card can say. Recovery asks it when it is inserted again (or `idstation
        // recover` decides without it).
        tracing::warn!(
            job = job_id,
            "issuance failed after LOCK was sent; left for recovery"
        );
        let _ = job
            .st
            .registry
            .write(|tx| tx.set_job_error(job_id, &e.to_string()));
        return;
    }
    if let Some(path) = letter {
        if let Err(re) = std::fs::remove_file(path) {
            tracing::error!(error = %re, path = %path.display(), "could not remove the PIN letter of a rolled-back issuance");
        }
    }
    let rollback = Rollback {
        job_id,
        number: job.reached.number_on_rollback(),
        card_reset: None,
        reason: e.to_string(),
    };
    let serial = serial_text(job.serial);
    match job
        .registrar
        .abort(job.st, job.session.actor(), &rollback, Some(&serial))
    {
        Ok(_) => crate::audit::checkpoint_after(job.st, "issuance.rolled-back"),
        Err(re) => {
            tracing::error!(job = job_id, error = %re, "rollback failed; recovery will retry")
        }
    }
}
