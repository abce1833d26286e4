//! `idstation renew` of a card another office issued, on a station enrolled with the national
//! centre (docs/station.md "Card services on an issued card"). This station has no record of the
//! document: the centre has (`POST /v1/cards/lookup` with the chip serial and the certificates
//! read from the card); the chip must open with the MRZ of the centre's record and carry its
//! document number, the document must be active there and the card under a management key the
//! centre derives (released for this renewal, `POST /v1/cards/key`). The renewal is the centre's
//! service job, as at the issuing office, and its journal is this registry's `centre_renewals`:
//!
//! ```text
//! card read, looked up, matched ─► PIN verified ─► [resume one left after `certified`]
//!  ─► opened (UUID journaled) ─► centre `renew` ─► generated (9A, 9C) ─► proofs, centre
//!     `certify` ─► certified (the certificates kept) ─► installed (written, read back,
//!     test-signed) ─► centre `complete` (old certificates superseded there) ─► completed
//! ```
//!
//! A failure before `certified` aborts the job at the centre (it revokes what it may have
//! issued) and rolls the journal back; when the centre cannot be told, the renewal stays
//! running and the next attempt (or `idstation recover`) aborts it. From `certified` on it stays
//! running and the next `renew` of the document, with the card and the holder's PIN, resumes it
//! (both the card step and the centre's `complete` are repeated safely) — unless the centre
//! aborted it meanwhile (`[issuance] renewal_timeout_seconds`): then it is rolled back here and
//! a new renewal made at once (the card, which may carry the aborted renewal's revoked
//! certificates, still gets its key released).

use std::time::Instant;

use centre_api::{
    paths, CertifyRequest, CertifyResponse, KeyToCertify as WireKey, RenewRequest, RenewResponse,
    ServiceFinishRequest, ServiceFinishResponse,
};
use personalization::piv::services::{self as card_services, IssuedCard};
use personalization::piv::{PinStatus, Piv};
use personalization::secret::{ManagementKey, Pin, PinKind};
use personalization::transport::Transport;
use profiles::card::Slot;
use registry::{AuditEntry, CentreRenewal};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::elsewhere::{self, AtCentre};
use super::renew::{ms, RenewInput, RenewReport, RenewedCertificate};
use super::{refused, ServiceProgress, ServiceStep};
use crate::card::{serial_text, slot_name};
use crate::datadir::{Work, WorkLock};
use crate::error::StationError;
use crate::ra::decode_hex;
use crate::ra_services::post;
use crate::session::Session;
use crate::Station;

/// A certificate the centre issued for the renewal, as the journal keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Issued {
    slot: String,
    profile: String,
    serial: String,
    not_after: String,
    /// DER, hex.
    der: String,
}

impl Issued {
    fn slot(&self) -> Result<Slot, StationError> {
        [Slot::Authentication, Slot::Signature]
            .into_iter()
            .find(|s| slot_name(*s) == self.slot)
            .ok_or_else(|| StationError::Other(format!("renewal journal: slot {}", self.slot)))
    }
}

/// One renewal's context.
struct Run<'a> {
    st: &'a mut Station,
    session: &'a Session,
    number: String,
    office: String,
    serial: u32,
    progress: &'a mut dyn FnMut(&ServiceProgress),
    apdus: u64,
    card_ms: f64,
}

/// Renew the certificates of another office's card, document `input.document`, in the reader.
pub(super) fn renew(
    st: &mut Station,
    session: &Session,
    input: &RenewInput,
    progress: &mut dyn FnMut(&ServiceProgress),
    started: Instant,
) -> Result<RenewReport, StationError> {
    let number = input.document.clone();
    let pin = Pin::new(PinKind::Pin, &input.pin).map_err(|e| {
        refused(
            st,
            session,
            "renewal",
            &number,
            StationError::invalid("pin", e.to_string()),
        )
    })?;
    let profile = st.card_profile()?.clone();
    let slots: Vec<Slot> = profile.keys.iter().map(|k| k.slot).collect();
    let t0 = Instant::now();
    let mut card_session = super::connect(input.reader.as_deref())?;
    let mut tx = card_session
        .conn
        .begin()
        .map_err(|e| StationError::card(None, &e.in_step("open a card transaction")))?;
    let card = card_services::read_issued(&mut tx, &slots)
        .map_err(|e| StationError::card(Some("read the card"), &e))?;
    let found = elsewhere::for_service(st, session, "renewal", &number, &card)?;
    let mut run = Run {
        st,
        session,
        office: found.record.office.clone(),
        number,
        serial: card.serial,
        progress,
        apdus: 0,
        card_ms: ms(t0),
    };
    run.check_card(&mut tx, &found, &card, &pin)?;

    // One renewal of the document at a time here, and recovery leaves a live one alone: the
    // lock is taken before the journal is read.
    let parsed = crate::records::parse_document(&run.number)?;
    let _lock = WorkLock::acquire(&run.st.layout.root, Work::centre_renewal(parsed))?;
    let running = run.st.registry.running_centre_renewal(&run.number)?;
    let (journal, resumed) = match running {
        Some(r) if r.certificates.is_some() => {
            match crate::ra_services::renewal_aborted_at_centre(run.st, &r.uuid)? {
                // Aborted there while the card was away (the centre's timeout): its
                // certificates are revoked; a new renewal replaces them.
                Some(why) => {
                    roll_back_journal(run.st, session.actor(), &r, &why)?;
                    (run.open()?, false)
                }
                None => (r, true),
            }
        }
        Some(r) => {
            let why = format!(
                "interrupted before its certificates were issued ({})",
                r.error.as_deref().unwrap_or("no error recorded")
            );
            run.roll_back(&r, &why)?;
            (run.open()?, false)
        }
        None => (run.open()?, false),
    };
    let request = centre_api::CardKeyRequest {
        operator: session.operator().to_owned(),
        card_serial: serial_text(card.serial),
        purpose: "renewal".into(),
        job: None,
        document: Some(run.number.clone()),
        certificates: elsewhere::serials_read(&card)?,
    };
    // Released only once the renewal is open at the centre (or, resumed, for the card step).
    let mut card_key = super::CardKey::Centre(Box::new(request));
    let issued = if resumed {
        serde_json::from_str::<Vec<Issued>>(journal.certificates.as_deref().unwrap_or("[]"))
            .map_err(|e| {
                StationError::Other(format!("renewal {}: certificates: {e}", journal.id))
            })?
    } else {
        match run.generate_and_certify(&mut tx, &journal, &mut card_key, &slots, &pin) {
            Ok(issued) => issued,
            Err(e) => {
                if let Err(re) = run.roll_back(&journal, &e.to_string()) {
                    tracing::error!(renewal = journal.id, error = %re, "renewal not rolled back; `idstation recover` or the next renewal does it");
                }
                return Err(e);
            }
        }
    };
    let superseded = match run.install_and_complete(&mut tx, &journal, &mut card_key, &issued, &pin)
    {
        Ok(s) => s,
        Err(e) => {
            let _ = run
                .st
                .registry
                .write(|t| t.set_centre_renewal_error(journal.id, &e.to_string()));
            return Err(e);
        }
    };
    Ok(RenewReport {
        service_job: None,
        issued_by_office: Some(run.office.clone()),
        document: run.number.clone(),
        card_serial: serial_text(card.serial),
        reader: card_session.reader.clone(),
        resumed,
        certificates: issued
            .iter()
            .map(|c| RenewedCertificate {
                slot: c.slot.clone(),
                profile: c.profile.clone(),
                serial: c.serial.clone(),
                not_after: c.not_after.clone(),
            })
            .collect(),
        superseded,
        apdus: run.apdus,
        card_ms: run.card_ms,
        hsm_ms: 0.0,
        total_ms: ms(started),
    })
}

impl Run<'_> {
    fn refuse(&mut self, e: StationError) -> StationError {
        refused(self.st, self.session, "renewal", &self.number, e)
    }

    /// The card's management key, released by the centre on first use; its refusal audited.
    fn key<'k>(
        &mut self,
        card_key: &'k mut super::CardKey,
    ) -> Result<&'k ManagementKey, StationError> {
        let profile = self.st.card_profile()?.clone();
        match card_key.get(self.st, &profile) {
            Ok(key) => Ok(key),
            Err(e @ StationError::CentreRefused { .. }) => Err(self.refuse(e)),
            Err(e) => Err(e),
        }
    }

    /// The centre's record is of this document, active, under the centre's card key; the chip
    /// opens with its MRZ; the holder's PIN is not blocked and verifies.
    fn check_card(
        &mut self,
        tx: &mut dyn Transport,
        found: &AtCentre,
        card: &IssuedCard,
        pin: &Pin,
    ) -> Result<(), StationError> {
        let serial = serial_text(card.serial);
        super::unblock_elsewhere::check_record(found, &self.number, &serial, "renewed")
            .map_err(|e| self.refuse(e))?;
        let t0 = Instant::now();
        elsewhere::match_chip(tx, &found.record).map_err(|e| self.refuse(e))?;
        if card.pin == PinStatus::Blocked {
            let e = StationError::Conflict(format!(
                "pin: the PIN of card {serial} is blocked; unblock it first (idstation unblock)"
            ));
            return Err(self.refuse(e));
        }
        let mut piv = Piv::new(tx);
        piv.select()
            .and_then(|_| piv.verify(pin))
            .map_err(|e| StationError::card(Some("verify the holder's PIN"), &e))?;
        self.apdus += piv.stats().apdus;
        self.card_ms += ms(t0);
        Ok(())
    }

    /// A new renewal in the journal (its UUID drawn first), audited.
    fn open(&mut self) -> Result<CentreRenewal, StationError> {
        let uuid = crate::ra_services::job_uuid()?;
        let (number, office, serial) = (&self.number, &self.office, serial_text(self.serial));
        let actor = self.session.actor();
        let id = self.st.registry.write(|t| {
            let id = t.start_centre_renewal(number, office, &serial, &uuid, actor)?;
            t.audit(&AuditEntry {
                actor,
                action: "renewal.started",
                object: &format!("document:{number}"),
                details: &json!({ "at_centre": true, "uuid": uuid, "card": serial,
                    "issued_by_office": office }),
            })?;
            Ok(id)
        })?;
        self.st
            .registry
            .running_centre_renewal(number)?
            .filter(|r| r.id == id)
            .ok_or_else(|| StationError::Other(format!("renewal {id} not in the journal")))
    }

    /// Centre `renew`, `generated`, proofs, centre `certify`, `certified`.
    fn generate_and_certify(
        &mut self,
        tx: &mut dyn Transport,
        journal: &CentreRenewal,
        card_key: &mut super::CardKey,
        slots: &[Slot],
        pin: &Pin,
    ) -> Result<Vec<Issued>, StationError> {
        let actor = self.session.actor();
        let uuid = &journal.uuid;
        // Opened at the centre before the card's keys are replaced: a refusal leaves the card
        // as it was.
        let opened: RenewResponse = post(
            self.st,
            &paths::service(uuid, "renew"),
            &RenewRequest {
                operator: actor.operator.clone(),
                document: self.number.clone(),
                card_serial: journal.card_serial.clone(),
            },
        )?;
        let challenge = decode_hex("challenge", &opened.challenge)?;
        let card_key = self.key(card_key)?;
        crate::failpoint::hit("renew.card.generate");
        (self.progress)(&ServiceProgress {
            step: ServiceStep::CardGenerate,
            detail: "new key pairs on the card".into(),
        });
        let t0 = Instant::now();
        let keys = card_services::generate_keys(tx, self.serial, card_key, slots)
            .map_err(|e| StationError::card(Some(ServiceStep::CardGenerate.as_str()), &e))?;
        self.apdus += keys.stats.apdus;
        self.st
            .registry
            .write(|t| t.centre_renewal_step(journal.id, "generated", None))?;
        crate::failpoint::hit("renew.ca.issue");
        (self.progress)(&ServiceProgress {
            step: ServiceStep::CaIssue,
            detail: "certificates from the national centre's e-Signature CA".into(),
        });
        let profile = self.st.card_profile()?.clone();
        let mut with: Vec<(Slot, &[u8], [u8; 32])> = Vec::new();
        for key in &profile.keys {
            let spki = keys.public_key(key.slot).ok_or_else(|| {
                StationError::Other(format!(
                    "the card returned no public key for slot {}",
                    slot_name(key.slot)
                ))
            })?;
            let digest = centre_api::proof_digest(uuid, &challenge, key.slot.key_ref(), spki);
            with.push((key.slot, spki, digest));
        }
        let (proofs, stats) = card_services::prove_possession(tx, pin, &with)
            .map_err(|e| StationError::card(Some(ServiceStep::CaIssue.as_str()), &e))?;
        self.apdus += stats.apdus;
        self.card_ms += ms(t0);
        let request = CertifyRequest {
            operator: actor.operator.clone(),
            keys: profile
                .keys
                .iter()
                .zip(&with)
                .map(|(k, (slot, spki, _))| WireKey {
                    slot: format!("{:02X}", slot.key_ref()),
                    profile: k.certificate_profile.clone(),
                    public_key: hex::encode(spki),
                    proof: proofs
                        .iter()
                        .find(|(s, _)| s == slot)
                        .map(|(_, p)| hex::encode(p))
                        .unwrap_or_default(),
                })
                .collect(),
        };
        let answer: CertifyResponse = post(self.st, &paths::service(uuid, "certify"), &request)?;
        crate::failpoint::hit("centre.renewal.certified");
        let issued = answer
            .certificates
            .iter()
            .map(|c| {
                let der = decode_hex("certificate", &c.der)?;
                let info = ca::CertInfo::parse(&der)
                    .map_err(|e| StationError::Other(format!("the centre's certificate: {e}")))?;
                Ok(Issued {
                    slot: c.slot.clone(),
                    profile: c.profile.clone(),
                    serial: c.serial.clone(),
                    not_after: info.not_after,
                    der: c.der.clone(),
                })
            })
            .collect::<Result<Vec<_>, StationError>>()?;
        let kept = serde_json::to_string(&issued)
            .map_err(|e| StationError::Other(format!("renewal certificates: {e}")))?;
        self.st
            .registry
            .write(|t| t.centre_renewal_step(journal.id, "certified", Some(&kept)))?;
        Ok(issued)
    }

    /// `installed`, then the centre's `complete` and the journal's end: the superseded serials.
    fn install_and_complete(
        &mut self,
        tx: &mut dyn Transport,
        journal: &CentreRenewal,
        card_key: &mut super::CardKey,
        issued: &[Issued],
        pin: &Pin,
    ) -> Result<Vec<String>, StationError> {
        crate::failpoint::hit("renew.card.install");
        (self.progress)(&ServiceProgress {
            step: ServiceStep::CardInstall,
            detail: "write, read back and test-sign".into(),
        });
        let certs = issued
            .iter()
            .map(|c| Ok((c.slot()?, decode_hex("certificate", &c.der)?)))
            .collect::<Result<Vec<_>, StationError>>()?;
        let card_key = self.key(card_key)?;
        let t0 = Instant::now();
        let report = card_services::install_certificates(tx, self.serial, card_key, &certs, pin)
            .map_err(|e| StationError::card(Some(ServiceStep::CardInstall.as_str()), &e))?;
        self.card_ms += ms(t0);
        self.apdus += report.stats.apdus;
        self.st
            .registry
            .write(|t| t.centre_renewal_step(journal.id, "installed", None))?;
        crate::failpoint::hit("renew.registry.complete");
        (self.progress)(&ServiceProgress {
            step: ServiceStep::RegistryComplete,
            detail: "the national registry".into(),
        });
        let actor = self.session.actor();
        let done: ServiceFinishResponse = post(
            self.st,
            &paths::service(&journal.uuid, "complete"),
            &ServiceFinishRequest {
                operator: actor.operator.clone(),
                reason: String::new(),
            },
        )?;
        let number = &self.number;
        let new: Vec<&String> = issued.iter().map(|c| &c.serial).collect();
        self.st.registry.write(|t| {
            t.finish_centre_renewal(journal.id, "completed", None)?;
            t.audit(&AuditEntry {
                actor,
                action: "renewal.completed",
                object: &format!("document:{number}"),
                details: &json!({ "at_centre": true, "uuid": journal.uuid,
                    "card": journal.card_serial, "issued_by_office": journal.office,
                    "certificates": new, "superseded": done.revoked }),
            })
        })?;
        crate::audit::checkpoint_after(self.st, "renewal.completed");
        Ok(done.revoked)
    }

    /// Undo a renewal that never got its certificates: [`abort_and_roll_back`].
    fn roll_back(&mut self, journal: &CentreRenewal, why: &str) -> Result<(), StationError> {
        abort_and_roll_back(self.st, self.session.actor(), journal, why)
    }
}

/// Undo renewal `journal`, which never got its certificates: the centre told first (it revokes
/// whatever it may have issued under the UUID; a job it never saw is nothing to undo), then the
/// journal rolled back and audited. When the centre cannot be told the renewal stays running
/// with the error, for the next attempt or `idstation recover`.
pub(crate) fn abort_and_roll_back(
    st: &mut Station,
    actor: &registry::Actor,
    journal: &CentreRenewal,
    why: &str,
) -> Result<(), StationError> {
    let request = ServiceFinishRequest {
        operator: actor.operator.clone(),
        reason: why.chars().take(500).collect(),
    };
    match post::<_, ServiceFinishResponse>(st, &paths::service(&journal.uuid, "abort"), &request) {
        Ok(_) => {}
        // The centre never saw the job (by its rule, not any 404): nothing to undo there.
        Err(StationError::CentreRefused { refusal, .. })
            if refusal.rule == centre_api::rules::JOB_NOT_FOUND => {}
        Err(e) => {
            let _ = st
                .registry
                .write(|t| t.set_centre_renewal_error(journal.id, &format!("{why}; abort: {e}")));
            return Err(e);
        }
    }
    roll_back_journal(st, actor, journal, why)
}

/// The journal's half of [`abort_and_roll_back`]: renewal `journal` ended `rolled-back`, audited.
pub(crate) fn roll_back_journal(
    st: &mut Station,
    actor: &registry::Actor,
    journal: &CentreRenewal,
    why: &str,
) -> Result<(), StationError> {
    st.registry.write(|t| {
        t.finish_centre_renewal(journal.id, "rolled-back", Some(why))?;
        t.audit(&AuditEntry {
            actor,
            action: "renewal.rolled-back",
            object: &format!("document:{}", journal.document),
            details: &json!({ "at_centre": true, "uuid": journal.uuid, "error": why }),
        })
    })?;
    Ok(())
}
