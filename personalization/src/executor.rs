//! The personalization executor: runs a [`CardProfile`] on a card in two phases so the CA can sit
//! in between (ARCHITECTURE.md "One issuance"), and brings a half-personalized card back to BLANK.
//!
//! - [`Personalizer::prepare`]: SELECT, check BLANK and the PIN retry counter, authenticate with the transport key (mutual),
//!   install the per-card management key and prove it, generate the key pairs; returns the public
//!   keys (SPKI DER per slot). A card that is not BLANK is refused before any write.
//! - [`Personalizer::complete`]: write the certificates and the other objects, set PIN and PUK
//!   from the transport values, read every written object back and compare, test-sign with every
//!   slot (PIN right before 9C) and verify against the certificate's key, then LOCK.
//! - [`Personalizer::reset`]: a card left PERSONALIZING goes back to BLANK with its per-card key,
//!   or with the transport key if the failure came before the key change.
//!
//! Every step reports [`Progress`] and every error names its step
//! ("card removed during 'write certificate 9C'"). APDUs and bytes are counted both ways.

use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use sha2::{Digest, Sha256};
use time::Date;

use crate::apdu::Stats;
use crate::error::Error;
use profiles::card::{CardProfile, FascnKind, Slot};

use crate::lifecycle::Lifecycle;
use crate::piv::objects::{
    certificate_object, certificate_tag, random_uuid, Ccc, Chuid, Discovery, Fascn, KeyHistory,
    PrintedInformation,
};
use crate::piv::{PinStatus, Piv};
use crate::plan::Credentials;
use crate::secret::{ManagementKey, Pin, PinKind};
use crate::transport::Transport;

#[path = "executor_lds.rs"]
mod lds_steps;
use lds_steps::lds_steps;

/// Which phase a progress report belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Before the CA.
    Prepare,
    /// After the CA.
    Complete,
    /// Reset to BLANK.
    Reset,
}

/// One progress report: step `index` (1-based) of `total` is starting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Phase.
    pub phase: Phase,
    /// The step; its `Display` is its name, e.g. "write certificate 9C".
    pub step: CardStep,
    /// 1-based index.
    pub index: usize,
    /// Steps in this phase.
    pub total: usize,
}

/// A public key generated on the card (defined with the PIV client).
pub use crate::piv::PublicKeyInfo;

/// Result of [`Personalizer::prepare`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// Card serial (GET SERIAL).
    pub serial: u32,
    /// Card application version (GET VERSION).
    pub version: [u8; 3],
    /// One per planned slot, in plan order.
    pub public_keys: Vec<PublicKeyInfo>,
    /// The Chip Authentication and Active Authentication public keys the chip generated for
    /// its ICAO application (a personalizer [`with_chip_access`](Personalizer::with_chip_access)),
    /// for DG14 and DG15.
    pub chip_keys: Option<crate::pace::ca::ChipKeys>,
    /// APDUs and bytes of this phase.
    pub stats: Stats,
}

impl Prepared {
    /// The SPKI of `slot`.
    pub fn public_key(&self, slot: Slot) -> Option<&[u8]> {
        self.public_keys
            .iter()
            .find(|k| k.slot == slot)
            .map(|k| k.spki_der.as_slice())
    }
}

/// Holder data printed into the chip (Printed Information) and the card expiry (CHUID).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HolderCardData {
    /// Holder name as printed (≤ 125 bytes).
    pub name: String,
    /// Document number (Agency Card Serial Number, ≤ 10 bytes).
    pub document_number: String,
    /// Card expiry date (CHUID tag 35 and Printed Information tag 04).
    pub expiry: Date,
}

/// What [`Personalizer::complete`] needs from the caller.
pub struct CompleteInput<'a> {
    /// DER certificate per planned slot.
    pub certificates: &'a [(Slot, Vec<u8>)],
    /// Holder data.
    pub holder: &'a HolderCardData,
    /// The holder's PIN.
    pub pin: &'a Pin,
    /// The holder's PUK.
    pub puk: &'a Pin,
}

/// The ICAO 9303 LDS to write in [`Personalizer::complete_with_lds`], after the PIV objects
/// and before the lock, and what to check it against when it is read back through BAC.
pub struct LdsPlan<'a> {
    /// EF.COM is derived; the data groups and EF.SOD as built by the caller.
    pub files: &'a crate::lds::LdsFiles,
    /// The MRZ information (document number, birth, expiry with check digits) the BAC keys
    /// derive from; the key seed written to the card is computed from it.
    pub mrz_information: zeroize::Zeroizing<String>,
    /// The CSCA certificate (DER) that passive authentication chains the Document Signer to.
    pub csca_der: &'a [u8],
    /// "Now" for the Document Signer certificate's validity.
    pub now: std::time::SystemTime,
    /// The card access number written as the PACE CAN (a personalizer
    /// [`with_chip_access`](Personalizer::with_chip_access) needs it; six digits).
    pub can: Option<zeroize::Zeroizing<String>>,
}

pub use crate::steps::{CardStep, PivObject, LDS_STEPS};
pub use profiles::document::ChipAccess;

/// Result of [`Personalizer::complete`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Card serial.
    pub serial: u32,
    /// Data groups read back through BAC and verified by passive authentication (empty when no
    /// LDS was written).
    pub lds_verified: Vec<u8>,
    /// The ICAO checks the read-back passed, in order ("PACE-CAN", "CA", "AA", "BAC", "PA").
    pub lds_checks: Vec<&'static str>,
    /// The CHUID GUID written (if the plan writes a CHUID).
    pub guid: Option<[u8; 16]>,
    /// Names of the objects written and read back equal.
    pub objects_verified: Vec<String>,
    /// Slots whose test signature verified against their certificate.
    pub signatures_verified: Vec<Slot>,
    /// Lifecycle at the end (LOCKED).
    pub lifecycle: Lifecycle,
    /// APDUs and bytes of this phase.
    pub stats: Stats,
}

/// What [`Personalizer::reset`] found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetOutcome {
    /// The card was already BLANK: nothing sent but reads.
    AlreadyBlank,
    /// Reset with the per-card management key.
    ResetWithCardKey,
    /// Reset with the transport key (the failure came before the key change).
    ResetWithTransportKey,
}

/// Serial, version and lifecycle of a card (reads only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CardInfo {
    /// Serial.
    pub serial: u32,
    /// Version.
    pub version: [u8; 3],
    /// Lifecycle.
    pub lifecycle: Lifecycle,
}

/// Reads serial, version and lifecycle (no authentication, no write).
pub fn inspect(transport: &mut dyn Transport) -> Result<CardInfo, Error> {
    let mut piv = Piv::new(transport);
    piv.select()
        .map_err(|e| e.in_step("select PIV application"))?;
    let serial = piv.serial().map_err(|e| e.in_step("read serial"))?;
    let version = piv.version().map_err(|e| e.in_step("read version"))?;
    let lifecycle = piv.lifecycle().map_err(|e| e.in_step("read lifecycle"))?;
    Ok(CardInfo {
        serial,
        version,
        lifecycle,
    })
}

/// Runs a phase's plan step by step, reporting progress and naming the step in errors.
struct Steps<'p> {
    phase: Phase,
    progress: &'p mut dyn FnMut(&Progress),
}

impl Steps<'_> {
    fn run_all(
        &mut self,
        piv: &mut Piv<'_>,
        plan: &[CardStep],
        mut run: impl FnMut(CardStep, &mut Piv<'_>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        for (i, &step) in plan.iter().enumerate() {
            (self.progress)(&Progress {
                phase: self.phase,
                step,
                index: i + 1,
                total: plan.len(),
            });
            tracing::debug!(phase = ?self.phase, %step, index = i + 1, "step");
            run(step, piv).map_err(|e| {
                tracing::warn!(phase = ?self.phase, %step, error = %e, "step failed");
                e.in_step(&step.to_string())
            })?;
        }
        Ok(())
    }
}

/// A step in a phase whose plan never holds it.
fn not_in_phase(step: CardStep, phase: &str) -> Error {
    Error::Invalid {
        field: "card step".into(),
        rule: format!("'{step}' is not a step of the {phase} phase"),
    }
}

fn spki_of_cert(slot: Slot, der: &[u8]) -> Result<p256::PublicKey, Error> {
    use der::{Decode, Encode};
    let bad = |rule: String| Error::Certificate {
        slot: slot.to_string(),
        rule,
    };
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| bad(format!("is not a DER X.509 certificate: {e}")))?;
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| bad(format!("subject public key info does not encode: {e}")))?;
    p256::PublicKey::from_public_key_der(&spki)
        .map_err(|_| bad("subject public key is not an ECC P-256 key".into()))
}

/// The executor for one card profile.
pub struct Personalizer<'a> {
    profile: &'a CardProfile,
    /// The ICAO application's access control (document profile `chip_access`); `None`: an
    /// LDS written is opened with BAC only, and no Chip/Active Authentication keys.
    chip_access: Option<ChipAccess>,
}

/// What the prepare phase has read and generated so far.
#[derive(Default)]
struct PrepareState {
    serial: u32,
    version: [u8; 3],
    public_keys: Vec<PublicKeyInfo>,
    chip_keys: Option<crate::pace::ca::ChipKeys>,
}

/// Everything the complete phase works with, and what it has verified so far.
struct CompleteRun<'r> {
    prepared: &'r Prepared,
    card_key: &'r ManagementKey,
    input: &'r CompleteInput<'r>,
    lds: Option<&'r LdsPlan<'r>>,
    transport_pin: Pin,
    transport_puk: Pin,
    /// Every planned object's encoding, built before the first APDU.
    objects: Vec<(PivObject, Vec<u8>)>,
    objects_verified: Vec<String>,
    signatures_verified: Vec<Slot>,
    chip_access: Option<ChipAccess>,
    lds_read: Option<crate::lds::LdsRead>,
    lds_verified: Vec<u8>,
    lds_checks: Vec<&'static str>,
    lifecycle: Option<Lifecycle>,
}

impl<'a> Personalizer<'a> {
    /// An executor for `profile`.
    pub fn new(profile: &'a CardProfile) -> Self {
        Self {
            profile,
            chip_access: None,
        }
    }

    /// The card's ICAO application is opened with PACE (and BAC too with
    /// [`ChipAccess::PaceAndBac`]): prepare has the chip generate its Chip Authentication and
    /// Active Authentication keys (for DG14/DG15, so EF.SOD covers them), complete writes the
    /// PACE passwords (CAN and MRZ; the BAC key seed only with `PaceAndBac`) and reads the LDS
    /// back through PACE with the CAN, Chip Authentication and Active Authentication before
    /// passive authentication and the lock.
    pub fn with_chip_access(mut self, access: ChipAccess) -> Self {
        self.chip_access = Some(access);
        self
    }

    /// Objects the plan writes, in write order: a certificate per planned slot, then the
    /// objects the profile asks for.
    fn planned_objects(&self) -> Vec<PivObject> {
        let o = &self.profile.objects;
        let mut v: Vec<PivObject> = self
            .profile
            .slots()
            .into_iter()
            .map(PivObject::Certificate)
            .collect();
        for (wanted, object) in [
            (o.chuid, PivObject::Chuid),
            (o.ccc, PivObject::Ccc),
            (o.discovery, PivObject::Discovery),
            (o.printed_information, PivObject::PrintedInformation),
            (o.key_history, PivObject::KeyHistory),
        ] {
            if wanted {
                v.push(object);
            }
        }
        v
    }

    /// The steps of [`prepare`](Self::prepare), in order: the plan it runs.
    pub fn prepare_steps(&self) -> Vec<CardStep> {
        let mut v = vec![
            CardStep::SelectPiv,
            CardStep::ReadSerial,
            CardStep::ReadVersion,
            CardStep::ReadLifecycle,
            CardStep::ReadPinRetries,
            CardStep::AuthenticateTransportKey,
            CardStep::SetCardKey,
            CardStep::AuthenticateCardKey,
        ];
        v.extend(self.profile.slots().into_iter().map(CardStep::GenerateKey));
        if self.chip_access.is_some() {
            v.push(CardStep::GenerateChipKeys);
        }
        v
    }

    /// The steps of [`complete`](Self::complete), in order.
    pub fn complete_steps(&self) -> Vec<CardStep> {
        self.complete_steps_with_lds(false)
    }

    /// The steps of [`complete_with_lds`](Self::complete_with_lds): the plan it runs; with
    /// `lds`, the [`LDS_STEPS`] come right before the lock.
    pub fn complete_steps_with_lds(&self, lds: bool) -> Vec<CardStep> {
        let mut v = vec![
            CardStep::SelectPiv,
            CardStep::ReadSerial,
            CardStep::ReadLifecycle,
            CardStep::AuthenticateCardKey,
        ];
        let objects = self.planned_objects();
        v.extend(objects.iter().copied().map(CardStep::Write));
        v.extend([
            CardStep::ChangePin,
            CardStep::ChangePuk,
            CardStep::VerifyPin,
        ]);
        v.extend(objects.iter().copied().map(CardStep::ReadBack));
        for k in &self.profile.keys {
            if k.pin_before_each_use {
                v.push(CardStep::VerifyPinFor(k.slot));
            }
            v.push(CardStep::TestSign(k.slot));
        }
        if lds {
            v.extend(lds_steps(self.chip_access));
        }
        v.extend([CardStep::Lock, CardStep::ReadLifecycleAfterLock]);
        v
    }

    /// The steps of [`reset`](Self::reset) on a PERSONALIZING card (the transport-key step is
    /// taken only if the card key is refused).
    pub fn reset_steps(&self) -> Vec<CardStep> {
        vec![
            CardStep::SelectPiv,
            CardStep::ReadLifecycle,
            CardStep::AuthenticateCardKey,
            CardStep::AuthenticateTransportKey,
            CardStep::ResetToBlank,
            CardStep::ReadLifecycleAfterReset,
        ]
    }

    /// Phase 1. `card_key` is the per-card management key (derived by the caller in the HSM);
    /// its algorithm must be the profile's. Refuses a card that is not BLANK before any write.
    pub fn prepare(
        &self,
        transport: &mut dyn Transport,
        card_key: &ManagementKey,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<Prepared, Error> {
        if card_key.algorithm() != self.profile.management_key.algorithm {
            return Err(Error::Invalid {
                field: "card management key".into(),
                rule: format!(
                    "profile {} wants {}, got {}",
                    self.profile.card.name,
                    self.profile.management_key.algorithm,
                    card_key.algorithm()
                ),
            });
        }
        let transport_key = self.profile.transport_key()?;
        let mut piv = Piv::new(transport);
        let mut state = PrepareState::default();
        Steps {
            phase: Phase::Prepare,
            progress,
        }
        .run_all(&mut piv, &self.prepare_steps(), |step, p| {
            self.prepare_step(step, p, (&transport_key, card_key), &mut state)
        })?;
        let stats = piv.stats();
        tracing::info!(serial = state.serial, apdus = stats.apdus, "card prepared");
        Ok(Prepared {
            serial: state.serial,
            version: state.version,
            public_keys: state.public_keys,
            chip_keys: state.chip_keys,
            stats,
        })
    }

    /// One step of the prepare phase.
    fn prepare_step(
        &self,
        step: CardStep,
        p: &mut Piv<'_>,
        (transport_key, card_key): (&ManagementKey, &ManagementKey),
        state: &mut PrepareState,
    ) -> Result<(), Error> {
        match step {
            CardStep::SelectPiv => p.select().map(|_| ()),
            CardStep::ReadSerial => p.serial().map(|s| state.serial = s),
            CardStep::ReadVersion => p.version().map(|v| state.version = v),
            CardStep::ReadLifecycle => match p.lifecycle()? {
                Lifecycle::Blank => Ok(()),
                l => Err(Error::WrongLifecycle {
                    operation: "personalization",
                    found: l,
                    needed: "BLANK",
                }),
            },
            CardStep::ReadPinRetries => self.check_pin_retries(p),
            CardStep::AuthenticateTransportKey => p.authenticate(transport_key),
            CardStep::SetCardKey => p.set_management_key(card_key),
            CardStep::AuthenticateCardKey => p.authenticate(card_key),
            CardStep::GenerateKey(slot) => {
                let pk = p.generate_p256(slot)?;
                let spki_der = pk
                    .to_public_key_der()
                    .map_err(|e| Error::Malformed {
                        command: "GENERATE ASYMMETRIC KEY PAIR",
                        detail: format!("public key does not encode as SPKI: {e}"),
                    })?
                    .as_bytes()
                    .to_vec();
                state.public_keys.push(PublicKeyInfo { slot, spki_der });
                Ok(())
            }
            CardStep::GenerateChipKeys => {
                state.chip_keys = Some(lds_steps::generate_chip_keys(p)?);
                Ok(())
            }
            other => Err(not_in_phase(other, "prepare")),
        }
    }

    /// A blank card has the profile's PIN retry counter.
    fn check_pin_retries(&self, p: &mut Piv<'_>) -> Result<(), Error> {
        let want = self.profile.pin.retries;
        match p.pin_status(PinKind::Pin)? {
            PinStatus::TriesLeft(n) if n == want => Ok(()),
            found => Err(Error::Invalid {
                field: "PIN retry counter".into(),
                rule: format!(
                    "profile {} wants a blank card with {want} PIN tries, the card reports {}",
                    self.profile.card.name,
                    match found {
                        PinStatus::TriesLeft(n) => format!("{n} tries"),
                        PinStatus::Blocked => "a blocked PIN".into(),
                        PinStatus::Verified => "a PIN already verified".into(),
                    }
                ),
            }),
        }
    }

    fn check_input(&self, prepared: &Prepared, input: &CompleteInput<'_>) -> Result<(), Error> {
        for k in &self.profile.keys {
            let slot = k.slot;
            let der = input
                .certificates
                .iter()
                .find(|(s, _)| *s == slot)
                .map(|(_, d)| d)
                .ok_or_else(|| Error::Certificate {
                    slot: slot.to_string(),
                    rule: "missing: the profile plans this slot".into(),
                })?;
            let cert_key = spki_of_cert(slot, der)?;
            let card_key = prepared
                .public_key(slot)
                .and_then(|d| p256::PublicKey::from_public_key_der(d).ok())
                .ok_or_else(|| Error::Certificate {
                    slot: slot.to_string(),
                    rule: "the prepared card has no key in this slot".into(),
                })?;
            if cert_key != card_key {
                return Err(Error::Certificate {
                    slot: slot.to_string(),
                    rule: "its public key is not the key generated on this card".into(),
                });
            }
        }
        if let Some((s, _)) = input
            .certificates
            .iter()
            .find(|(s, _)| !self.profile.slots().contains(s))
        {
            return Err(Error::Certificate {
                slot: s.to_string(),
                rule: "the profile does not plan this slot".into(),
            });
        }
        if input.certificates.len() != self.profile.keys.len() {
            return Err(Error::Invalid {
                field: "certificates".into(),
                rule: format!(
                    "exactly one certificate per planned slot ({}), got {}",
                    self.profile.keys.len(),
                    input.certificates.len()
                ),
            });
        }
        if input.pin.kind() != PinKind::Pin || input.puk.kind() != PinKind::Puk {
            return Err(Error::Invalid {
                field: "PIN/PUK".into(),
                rule: "pin must be a PIN and puk a PUK".into(),
            });
        }
        self.profile.check_secret(input.pin)?;
        self.profile.check_secret(input.puk)?;
        Ok(())
    }

    fn printed(&self, holder: &HolderCardData) -> PrintedInformation {
        let pi = &self.profile.printed_information;
        PrintedInformation {
            name: holder.name.clone(),
            employee_affiliation: pi.employee_affiliation.clone(),
            expiry: holder.expiry,
            card_serial: holder.document_number.clone(),
            issuer: pi.issuer.clone(),
            organization_line1: pi.organization_line1.clone(),
            organization_line2: pi.organization_line2.clone(),
        }
    }

    /// Phase 2 on the card prepared in phase 1 (same serial, PERSONALIZING). Input is checked
    /// before any APDU: every planned slot has a certificate whose key is the one generated on
    /// the card, PIN/PUK follow the profile policy, printed fields fit SP 800-73-4 Table 11.
    pub fn complete(
        &self,
        transport: &mut dyn Transport,
        prepared: &Prepared,
        card_key: &ManagementKey,
        input: &CompleteInput<'_>,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<Report, Error> {
        self.complete_with_lds(transport, prepared, card_key, input, None, progress)
    }

    /// [`complete`](Self::complete), writing the ICAO 9303 LDS too: after the PIV objects,
    /// the PIN change, the read-back and the test signatures, the LDS files and the BAC key
    /// seed are written, read back through BAC with the MRZ, and EF.SOD is verified (passive
    /// authentication: signature, chain to the CSCA, every data-group hash). Any failure stops
    /// before the lock, so the card stays PERSONALIZING and can be reset.
    pub fn complete_with_lds(
        &self,
        transport: &mut dyn Transport,
        prepared: &Prepared,
        card_key: &ManagementKey,
        input: &CompleteInput<'_>,
        lds: Option<&LdsPlan<'_>>,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<Report, Error> {
        self.check_input(prepared, input)?;
        if let Some(plan) = lds {
            lds_steps::check_plan(self.chip_access, prepared, plan)?;
        }
        // Every object is built before the card is touched.
        let (objects, guid) = self.build_objects(input)?;
        let mut run = CompleteRun {
            prepared,
            card_key,
            input,
            lds,
            chip_access: self.chip_access,
            transport_pin: self.profile.transport_pin()?,
            transport_puk: self.profile.transport_puk()?,
            objects,
            objects_verified: Vec::new(),
            signatures_verified: Vec::new(),
            lds_read: None,
            lds_verified: Vec::new(),
            lds_checks: Vec::new(),
            lifecycle: None,
        };
        let mut piv = Piv::new(transport);
        let plan = self.complete_steps_with_lds(lds.is_some());
        Steps {
            phase: Phase::Complete,
            progress,
        }
        .run_all(&mut piv, &plan, |step, p| run.step(step, p))?;
        let stats = piv.stats();
        tracing::info!(
            serial = prepared.serial,
            apdus = stats.apdus,
            "card personalized and locked"
        );
        Ok(Report {
            serial: prepared.serial,
            lds_verified: run.lds_verified,
            lds_checks: run.lds_checks,
            guid,
            objects_verified: run.objects_verified,
            signatures_verified: run.signatures_verified,
            lifecycle: run.lifecycle.unwrap_or(Lifecycle::Locked),
            stats,
        })
    }

    /// The encoding of every planned object, in plan order, and the CHUID's GUID (if the plan
    /// writes a CHUID).
    #[allow(clippy::type_complexity)]
    fn build_objects(
        &self,
        input: &CompleteInput<'_>,
    ) -> Result<(Vec<(PivObject, Vec<u8>)>, Option<[u8; 16]>), Error> {
        let mut guid = None;
        let mut objects = Vec::new();
        for object in self.planned_objects() {
            let value = match object {
                PivObject::Certificate(slot) => certificate_object(
                    input
                        .certificates
                        .iter()
                        .find(|(s, _)| *s == slot)
                        .map(|(_, d)| d.as_slice())
                        .unwrap_or_default(),
                ),
                PivObject::Chuid => {
                    let g = random_uuid()?;
                    guid = Some(g);
                    Chuid {
                        fascn: match self.profile.chuid.fascn {
                            FascnKind::NonFederal => Fascn::non_federal().encode()?,
                        },
                        guid: g,
                        expiry: input.holder.expiry,
                        cardholder_uuid: self.profile.chuid.cardholder_uuid.then_some(g),
                    }
                    .encode()
                }
                PivObject::Ccc => Ccc::random()?.encode(),
                PivObject::Discovery => Discovery::application_pin().encode(),
                PivObject::PrintedInformation => self.printed(input.holder).encode()?,
                PivObject::KeyHistory => KeyHistory::default().encode(),
            };
            objects.push((object, value));
        }
        Ok((objects, guid))
    }

    /// Proof of possession for a CA that will certify the prepared card's keys (the CA's
    /// challenge, RFC 4211 §4.1 in spirit: the key signs what the CA asked). On the card
    /// `prepare` left PERSONALIZING: for each `(slot, digest)`, VERIFY the profile's transport
    /// PIN (9C signs only right after a VERIFY, SP 800-73-4 Part 1 §3.2.2 PIN Always) and sign
    /// the digest with the slot's key (GENERAL AUTHENTICATE). Each signature is checked with the
    /// public key the card returned at `prepare` before it is handed out, so a card that signs
    /// with another key is refused here, not by the CA. The transport PIN stays the card's PIN
    /// until `complete` changes it.
    pub fn prove_possession(
        &self,
        transport: &mut dyn Transport,
        prepared: &Prepared,
        digests: &[(Slot, [u8; 32])],
    ) -> Result<Vec<(Slot, Vec<u8>)>, Error> {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        let transport_pin = self.profile.transport_pin()?;
        let mut piv = Piv::new(transport);
        piv.select()?;
        match piv.lifecycle()? {
            Lifecycle::Personalizing => {}
            l => {
                return Err(Error::WrongLifecycle {
                    operation: "proof of possession",
                    found: l,
                    needed: "PERSONALIZING",
                })
            }
        }
        let mut out = Vec::with_capacity(digests.len());
        for (slot, digest) in digests {
            let key = prepared
                .public_key(*slot)
                .and_then(|d| p256::PublicKey::from_public_key_der(d).ok())
                .ok_or_else(|| Error::Certificate {
                    slot: slot.to_string(),
                    rule: "the prepared card has no key in this slot".into(),
                })?;
            piv.verify(&transport_pin)?;
            let sig = piv.sign_p256(*slot, digest)?;
            let parsed = p256::ecdsa::Signature::from_der(&sig).map_err(|_| Error::Malformed {
                command: "GENERAL AUTHENTICATE (sign)",
                detail: "signature is not a DER Ecdsa-Sig-Value".into(),
            })?;
            p256::ecdsa::VerifyingKey::from(&key)
                .verify_prehash(digest, &parsed)
                .map_err(|_| Error::SignatureInvalid {
                    slot: slot.to_string(),
                })?;
            out.push((*slot, sig));
        }
        Ok(out)
    }

    /// Brings a card left PERSONALIZING back to BLANK: authenticates with `card_key`, or with
    /// the transport key if the card refuses it, and sends RESET TO BLANK. A BLANK card is left
    /// alone; a LOCKED card is refused.
    pub fn reset(
        &self,
        transport: &mut dyn Transport,
        card_key: &ManagementKey,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<ResetOutcome, Error> {
        let transport_key = self.profile.transport_key()?;
        // Progress indexes are positions in `reset_steps()`; the transport-key step is skipped
        // when the card key is accepted, so the index may jump from 3 to 5.
        let plan = self.reset_steps();
        let mut piv = Piv::new(transport);
        let mut outcome = ResetOutcome::AlreadyBlank;
        for (i, &step) in plan.iter().enumerate() {
            if step == CardStep::AuthenticateTransportKey
                && outcome == ResetOutcome::ResetWithCardKey
            {
                continue;
            }
            progress(&Progress {
                phase: Phase::Reset,
                step,
                index: i + 1,
                total: plan.len(),
            });
            let done = reset_step(step, &mut piv, (card_key, &transport_key), &mut outcome)
                .map_err(|e| e.in_step(&step.to_string()))?;
            if done {
                return Ok(outcome);
            }
        }
        tracing::info!(outcome = ?outcome, "card reset to BLANK");
        Ok(outcome)
    }
}

/// One step of the reset phase; `true` when the card turned out BLANK already.
fn reset_step(
    step: CardStep,
    piv: &mut Piv<'_>,
    (card_key, transport_key): (&ManagementKey, &ManagementKey),
    outcome: &mut ResetOutcome,
) -> Result<bool, Error> {
    match step {
        CardStep::SelectPiv => piv.select().map(|_| ())?,
        CardStep::ReadLifecycle => match piv.lifecycle()? {
            Lifecycle::Blank => return Ok(true),
            l @ Lifecycle::Locked => {
                return Err(Error::WrongLifecycle {
                    operation: "reset",
                    found: l,
                    needed: "BLANK or PERSONALIZING",
                })
            }
            Lifecycle::Personalizing => {}
        },
        CardStep::AuthenticateCardKey => match piv.authenticate(card_key) {
            Ok(()) => *outcome = ResetOutcome::ResetWithCardKey,
            Err(Error::ManagementKeyRejected { .. }) => {
                *outcome = ResetOutcome::ResetWithTransportKey
            }
            Err(e) => return Err(e),
        },
        CardStep::AuthenticateTransportKey => piv.authenticate(transport_key)?,
        CardStep::ResetToBlank => piv.reset_to_blank()?,
        CardStep::ReadLifecycleAfterReset => {
            let l = piv.lifecycle()?;
            if l != Lifecycle::Blank {
                return Err(Error::WrongLifecycle {
                    operation: "reset",
                    found: l,
                    needed: "BLANK after reset",
                });
            }
        }
        other => return Err(not_in_phase(other, "reset")),
    }
    Ok(false)
}

impl CompleteRun<'_> {
    /// One step of the complete phase.
    fn step(&mut self, step: CardStep, p: &mut Piv<'_>) -> Result<(), Error> {
        let input = self.input;
        match step {
            CardStep::SelectPiv => p.select().map(|_| ()),
            CardStep::ReadSerial => match p.serial()? {
                s if s == self.prepared.serial => Ok(()),
                s => Err(Error::WrongCard {
                    expected: self.prepared.serial,
                    found: s,
                }),
            },
            CardStep::ReadLifecycle => match p.lifecycle()? {
                Lifecycle::Personalizing => Ok(()),
                l => Err(Error::WrongLifecycle {
                    operation: "completing personalization",
                    found: l,
                    needed: "PERSONALIZING",
                }),
            },
            CardStep::AuthenticateCardKey => p.authenticate(self.card_key),
            CardStep::Write(object) => p.put_data(object.tag(), self.object(object)?),
            CardStep::ChangePin => p.change_reference(&self.transport_pin, input.pin),
            CardStep::ChangePuk => p.change_reference(&self.transport_puk, input.puk),
            CardStep::VerifyPin | CardStep::VerifyPinFor(_) => p.verify(input.pin),
            CardStep::ReadBack(object) => {
                if p.get_data(object.tag())? != self.object(object)? {
                    return Err(Error::ReadBackMismatch {
                        object: object.to_string(),
                    });
                }
                self.objects_verified.push(object.to_string());
                Ok(())
            }
            CardStep::TestSign(slot) => {
                let der = input
                    .certificates
                    .iter()
                    .find(|(s, _)| *s == slot)
                    .map(|(_, d)| d.as_slice())
                    .unwrap_or_default();
                test_sign(p, slot, self.prepared.serial, der)?;
                self.signatures_verified.push(slot);
                Ok(())
            }
            CardStep::WriteLds
            | CardStep::ReadLdsThroughPace
            | CardStep::ReadLdsThroughBac
            | CardStep::PassiveAuthentication
            | CardStep::SelectPivAgain => self.lds_step(step, p),
            CardStep::Lock => p.lock(),
            CardStep::ReadLifecycleAfterLock => match p.lifecycle()? {
                l @ Lifecycle::Locked => {
                    self.lifecycle = Some(l);
                    Ok(())
                }
                l => Err(Error::WrongLifecycle {
                    operation: "lock",
                    found: l,
                    needed: "LOCKED after lock",
                }),
            },
            other => Err(not_in_phase(other, "complete")),
        }
    }

    /// The encoding of a planned object.
    fn object(&self, object: PivObject) -> Result<&[u8], Error> {
        self.objects
            .iter()
            .find(|(o, _)| *o == object)
            .map(|(_, v)| v.as_slice())
            .ok_or_else(|| not_in_phase(CardStep::Write(object), "complete"))
    }
}

/// Checks, with reads only, that the card is the LOCKED card `serial` carrying exactly these
/// certificates: for recovery when a job was interrupted after the LOCK command reached the card
/// (the executor locks only after read-back and test signatures passed).
pub fn verify_issued(
    transport: &mut dyn Transport,
    serial: u32,
    certificates: &[(Slot, Vec<u8>)],
) -> Result<(), Error> {
    let mut piv = Piv::new(transport);
    piv.select()
        .map_err(|e| e.in_step("select PIV application"))?;
    let found = piv.serial().map_err(|e| e.in_step("read serial"))?;
    if found != serial {
        return Err(Error::WrongCard {
            expected: serial,
            found,
        }
        .in_step("read serial"));
    }
    let l = piv.lifecycle().map_err(|e| e.in_step("read lifecycle"))?;
    if l != Lifecycle::Locked {
        return Err(Error::WrongLifecycle {
            operation: "verifying an issued card",
            found: l,
            needed: "LOCKED",
        }
        .in_step("read lifecycle"));
    }
    for (slot, der) in certificates {
        let step = format!("read back certificate {slot}");
        let got = piv
            .get_data(certificate_tag(*slot))
            .map_err(|e| e.in_step(&step))?;
        if got != certificate_object(der) {
            return Err(Error::ReadBackMismatch {
                object: format!("certificate {slot}"),
            }
            .in_step(&step));
        }
    }
    Ok(())
}

/// Signs a fresh SHA-256 digest with `slot` and verifies the signature with the certificate's key.
fn test_sign(piv: &mut Piv<'_>, slot: Slot, serial: u32, cert_der: &[u8]) -> Result<(), Error> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| Error::Invalid {
        field: "random generator".into(),
        rule: format!("the operating system RNG failed: {e}"),
    })?;
    let mut h = Sha256::new();
    h.update(b"idstation personalization test signature");
    h.update([slot.key_ref()]);
    h.update(serial.to_be_bytes());
    h.update(nonce);
    let digest: [u8; 32] = h.finalize().into();
    let sig = piv.sign_p256(slot, &digest)?;
    let key = spki_of_cert(slot, cert_der)?;
    let vk = p256::ecdsa::VerifyingKey::from(&key);
    let sig = p256::ecdsa::Signature::from_der(&sig).map_err(|_| Error::Malformed {
        command: "GENERAL AUTHENTICATE (sign)",
        detail: "signature is not a DER Ecdsa-Sig-Value".into(),
    })?;
    vk.verify_prehash(&digest, &sig)
        .map_err(|_| Error::SignatureInvalid {
            slot: slot.to_string(),
        })
}

#[cfg(test)]
mod scripted_tests {
    //! Host-logic tests with scripted card answers (APDU vectors); the chip-backed tests are in
    //! `executor_chip_tests.rs`.
    use super::*;
    use crate::transport::Recording;

    /// Answers by INS from a table; records nothing else.
    struct Scripted {
        answers: Vec<(u8, Vec<u8>)>,
    }
    impl Transport for Scripted {
        fn transmit(&mut self, capdu: &[u8]) -> Result<Vec<u8>, Error> {
            let ins = capdu.get(1).copied().unwrap_or(0);
            Ok(self
                .answers
                .iter()
                .find(|(i, _)| *i == ins)
                .map(|(_, a)| a.clone())
                .unwrap_or_else(|| vec![0x6D, 0x00]))
        }
    }

    fn profile() -> CardProfile {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../profiles/card/card-esign.toml"
        );
        profiles::card::load_card_profile(std::path::Path::new(p)).unwrap()
    }

    fn card_key() -> ManagementKey {
        ManagementKey::from_hex(
            profiles::card::MgmtAlgorithm::Aes128,
            "a1a2a3a4a5a6a7a8a9aaabacadaeafb0",
        )
        .unwrap()
    }

    fn card_in_state(state: u8) -> Scripted {
        Scripted {
            answers: vec![
                (0xA4, vec![0x61, 0x00, 0x90, 0x00]),
                (0xF8, vec![0x00, 0x00, 0x30, 0x39, 0x90, 0x00]),
                (0xFD, vec![0x05, 0x07, 0x01, 0x90, 0x00]),
                (0xCB, vec![0x53, 0x01, state, 0x90, 0x00]),
            ],
        }
    }

    #[test]
    fn prepare_refuses_a_locked_card_and_sends_no_write() {
        let prof = profile();
        let mut t = Recording::new(card_in_state(2));
        let mut seen = Vec::new();
        let e = Personalizer::new(&prof)
            .prepare(&mut t, &card_key(), &mut |p| seen.push(p.step))
            .unwrap_err();
        assert_eq!(e.step(), Some("read lifecycle"));
        assert!(
            matches!(
                e.root(),
                Error::WrongLifecycle {
                    found: Lifecycle::Locked,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "card is LOCKED, personalization needs BLANK during 'read lifecycle'"
        );
        assert!(!t.sent_a_write());
        assert_eq!(seen.len(), 4);
    }

    #[test]
    fn prepare_refuses_a_personalizing_card() {
        let prof = profile();
        let mut t = Recording::new(card_in_state(1));
        let e = Personalizer::new(&prof)
            .prepare(&mut t, &card_key(), &mut |_| {})
            .unwrap_err();
        assert!(e.to_string().contains("PERSONALIZING"), "{e}");
        assert!(!t.sent_a_write());
    }

    #[test]
    fn card_without_piv_is_named_as_such_and_gets_no_write() {
        let prof = profile();
        let mut t = Recording::new(Scripted {
            answers: vec![(0xA4, vec![0x6A, 0x82])],
        });
        let e = Personalizer::new(&prof)
            .prepare(&mut t, &card_key(), &mut |_| {})
            .unwrap_err();
        assert!(matches!(e.root(), Error::NoPivApplication), "{e}");
        assert_eq!(t.headers.len(), 1);
    }

    #[test]
    fn card_key_of_the_wrong_algorithm_is_refused_before_any_apdu() {
        let prof = profile();
        let mut t = Recording::new(card_in_state(0));
        let e = Personalizer::new(&prof)
            .prepare(&mut t, &ManagementKey::transport_default(), &mut |_| {})
            .unwrap_err();
        assert!(e.to_string().contains("aes128"), "{e}");
        assert!(t.headers.is_empty());
    }

    #[test]
    fn step_lists_name_every_planned_slot_and_object() {
        let prof = profile();
        let p = Personalizer::new(&prof);
        let names = |steps: Vec<CardStep>| steps.iter().map(ToString::to_string).collect();
        let prep: Vec<String> = names(p.prepare_steps());
        assert!(prep.contains(&"generate key 9A".to_string()));
        assert!(prep.contains(&"generate key 9C".to_string()));
        let comp: Vec<String> = names(p.complete_steps());
        for s in [
            "write certificate 9C",
            "write CHUID",
            "write Printed Information",
            "read back Key History",
            "verify PIN for 9C",
            "test-sign 9C",
            "lock",
        ] {
            assert!(comp.contains(&s.to_string()), "missing {s}");
        }
        let v9c = comp.iter().position(|s| s == "verify PIN for 9C").unwrap();
        assert_eq!(comp[v9c + 1], "test-sign 9C");
    }
}

#[cfg(test)]
#[path = "executor_chip_tests.rs"]
mod chip_tests;

#[cfg(test)]
#[path = "executor_lds_tests.rs"]
mod lds_tests;
