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
use crate::piv::objects::{
    certificate_object, random_uuid, tags, Ccc, Chuid, Discovery, Fascn, KeyHistory,
    PrintedInformation,
};
use crate::piv::{Lifecycle, PinStatus, Piv, Slot};
use crate::plan::{CardProfile, FascnKind};
use crate::secret::{ManagementKey, Pin, PinKind};
use crate::transport::Transport;

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
    /// Step name, e.g. "write certificate 9C".
    pub step: String,
    /// 1-based index.
    pub index: usize,
    /// Steps in this phase.
    pub total: usize,
}

/// A public key generated on the card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKeyInfo {
    /// Slot.
    pub slot: Slot,
    /// SubjectPublicKeyInfo, DER (RFC 5480 id-ecPublicKey / prime256v1).
    pub spki_der: Vec<u8>,
}

/// Result of [`Personalizer::prepare`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// Card serial (GET SERIAL).
    pub serial: u32,
    /// Card application version (GET VERSION).
    pub version: [u8; 3],
    /// One per planned slot, in plan order.
    pub public_keys: Vec<PublicKeyInfo>,
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
}

/// LDS step names of [`Personalizer::complete_with_lds`], between the test signatures and the
/// lock.
pub const LDS_STEPS: [&str; 4] = [
    "write LDS",
    "read LDS through BAC",
    "passive authentication",
    "select PIV application again",
];

/// Result of [`Personalizer::complete`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Card serial.
    pub serial: u32,
    /// Data groups read back through BAC and verified by passive authentication (empty when no
    /// LDS was written).
    pub lds_verified: Vec<u8>,
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

/// Runs steps, reporting progress and naming the step in errors.
struct Steps<'p> {
    phase: Phase,
    names: Vec<String>,
    next: usize,
    progress: &'p mut dyn FnMut(&Progress),
}

impl Steps<'_> {
    fn run<T>(
        &mut self,
        piv: &mut Piv<'_>,
        name: &str,
        f: impl FnOnce(&mut Piv<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        debug_assert_eq!(
            self.names.get(self.next).map(String::as_str),
            Some(name),
            "step list out of sync"
        );
        self.next += 1;
        (self.progress)(&Progress {
            phase: self.phase,
            step: name.to_string(),
            index: self.next,
            total: self.names.len(),
        });
        tracing::debug!(phase = ?self.phase, step = name, index = self.next, "step");
        f(piv).map_err(|e| {
            tracing::warn!(phase = ?self.phase, step = name, error = %e, "step failed");
            e.in_step(name)
        })
    }
}

/// Objects the plan writes besides certificates, in write order: (name, tag).
fn planned_objects(profile: &CardProfile) -> Vec<(&'static str, u32)> {
    let o = &profile.objects;
    let mut v = Vec::new();
    if o.chuid {
        v.push(("CHUID", tags::CHUID));
    }
    if o.ccc {
        v.push(("CCC", tags::CCC));
    }
    if o.discovery {
        v.push(("Discovery", tags::DISCOVERY));
    }
    if o.printed_information {
        v.push(("Printed Information", tags::PRINTED));
    }
    if o.key_history {
        v.push(("Key History", tags::KEY_HISTORY));
    }
    v
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
}

impl<'a> Personalizer<'a> {
    /// An executor for `profile`.
    pub fn new(profile: &'a CardProfile) -> Self {
        Self { profile }
    }

    /// Step names of [`prepare`](Self::prepare), in order.
    pub fn prepare_steps(&self) -> Vec<String> {
        let mut v: Vec<String> = [
            "select PIV application",
            "read serial",
            "read version",
            "read lifecycle",
            "read PIN retry counter",
            "authenticate transport key",
            "set card management key",
            "authenticate card management key",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for s in self.profile.slots() {
            v.push(format!("generate key {s}"));
        }
        v
    }

    /// Step names of [`complete`](Self::complete), in order.
    pub fn complete_steps(&self) -> Vec<String> {
        self.complete_steps_with_lds(false)
    }

    /// Step names of [`complete_with_lds`](Self::complete_with_lds); with `lds`, the
    /// [`LDS_STEPS`] come right before "lock".
    pub fn complete_steps_with_lds(&self, lds: bool) -> Vec<String> {
        let mut v: Vec<String> = [
            "select PIV application",
            "read serial",
            "read lifecycle",
            "authenticate card management key",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let slots = self.profile.slots();
        for s in &slots {
            v.push(format!("write certificate {s}"));
        }
        for (name, _) in planned_objects(self.profile) {
            v.push(format!("write {name}"));
        }
        v.push("change PIN".into());
        v.push("change PUK".into());
        v.push("verify PIN".into());
        for s in &slots {
            v.push(format!("read back certificate {s}"));
        }
        for (name, _) in planned_objects(self.profile) {
            v.push(format!("read back {name}"));
        }
        for k in &self.profile.keys {
            if k.pin_before_each_use {
                v.push(format!("verify PIN for {}", k.slot));
            }
            v.push(format!("test-sign {}", k.slot));
        }
        if lds {
            v.extend(LDS_STEPS.iter().map(|s| s.to_string()));
        }
        v.push("lock".into());
        v.push("read lifecycle after lock".into());
        v
    }

    /// Step names of [`reset`](Self::reset) on a PERSONALIZING card (the transport-key step is
    /// taken only if the card key is refused).
    pub fn reset_steps(&self) -> Vec<String> {
        [
            "select PIV application",
            "read lifecycle",
            "authenticate card management key",
            "authenticate transport key",
            "reset to blank",
            "read lifecycle after reset",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
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
        let mut steps = Steps {
            phase: Phase::Prepare,
            names: self.prepare_steps(),
            next: 0,
            progress,
        };
        let mut piv = Piv::new(transport);
        steps.run(&mut piv, "select PIV application", |p| p.select())?;
        let serial = steps.run(&mut piv, "read serial", |p| p.serial())?;
        let version = steps.run(&mut piv, "read version", |p| p.version())?;
        steps.run(&mut piv, "read lifecycle", |p| {
            let l = p.lifecycle()?;
            if l != Lifecycle::Blank {
                return Err(Error::WrongLifecycle {
                    operation: "personalization",
                    found: l,
                    needed: "BLANK",
                });
            }
            Ok(())
        })?;
        let want = self.profile.pin.retries;
        steps.run(&mut piv, "read PIN retry counter", |p| {
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
        })?;
        steps.run(&mut piv, "authenticate transport key", |p| {
            p.authenticate(&transport_key)
        })?;
        steps.run(&mut piv, "set card management key", |p| {
            p.set_management_key(card_key)
        })?;
        steps.run(&mut piv, "authenticate card management key", |p| {
            p.authenticate(card_key)
        })?;
        let mut public_keys = Vec::new();
        for slot in self.profile.slots() {
            let pk = steps.run(&mut piv, &format!("generate key {slot}"), |p| {
                p.generate_p256(slot)
            })?;
            let spki_der = pk
                .to_public_key_der()
                .map_err(|e| Error::Malformed {
                    command: "GENERATE ASYMMETRIC KEY PAIR",
                    detail: format!("public key does not encode as SPKI: {e}"),
                })?
                .as_bytes()
                .to_vec();
            public_keys.push(PublicKeyInfo { slot, spki_der });
        }
        let stats = piv.stats();
        tracing::info!(serial, apdus = stats.apdus, "card prepared");
        Ok(Prepared {
            serial,
            version,
            public_keys,
            stats,
        })
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
        let transport_pin = self.profile.transport_pin()?;
        let transport_puk = self.profile.transport_puk()?;

        // Build every object before touching the card.
        let mut guid = None;
        let mut objects: Vec<(String, u32, Vec<u8>)> = Vec::new();
        for (slot, der) in input.certificates.iter() {
            objects.push((
                format!("certificate {slot}"),
                slot.certificate_tag(),
                certificate_object(der),
            ));
        }
        objects.sort_by_key(|(_, tag, _)| {
            self.profile
                .slots()
                .iter()
                .position(|s| s.certificate_tag() == *tag)
        });
        for (name, tag) in planned_objects(self.profile) {
            let value = match tag {
                tags::CHUID => {
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
                tags::CCC => Ccc::random()?.encode(),
                tags::DISCOVERY => Discovery::application_pin().encode(),
                tags::PRINTED => self.printed(input.holder).encode()?,
                _ => KeyHistory::default().encode(),
            };
            objects.push((name.to_string(), tag, value));
        }

        let mut steps = Steps {
            phase: Phase::Complete,
            names: self.complete_steps_with_lds(lds.is_some()),
            next: 0,
            progress,
        };
        let mut piv = Piv::new(transport);
        steps.run(&mut piv, "select PIV application", |p| p.select())?;
        steps.run(&mut piv, "read serial", |p| {
            let s = p.serial()?;
            if s != prepared.serial {
                return Err(Error::WrongCard {
                    expected: prepared.serial,
                    found: s,
                });
            }
            Ok(())
        })?;
        steps.run(&mut piv, "read lifecycle", |p| {
            let l = p.lifecycle()?;
            if l != Lifecycle::Personalizing {
                return Err(Error::WrongLifecycle {
                    operation: "completing personalization",
                    found: l,
                    needed: "PERSONALIZING",
                });
            }
            Ok(())
        })?;
        steps.run(&mut piv, "authenticate card management key", |p| {
            p.authenticate(card_key)
        })?;
        for (name, tag, value) in &objects {
            steps.run(&mut piv, &format!("write {name}"), |p| {
                p.put_data(*tag, value)
            })?;
        }
        steps.run(&mut piv, "change PIN", |p| {
            p.change_reference(&transport_pin, input.pin)
        })?;
        steps.run(&mut piv, "change PUK", |p| {
            p.change_reference(&transport_puk, input.puk)
        })?;
        steps.run(&mut piv, "verify PIN", |p| p.verify(input.pin))?;
        let mut objects_verified = Vec::new();
        for (name, tag, value) in &objects {
            steps.run(&mut piv, &format!("read back {name}"), |p| {
                let got = p.get_data(*tag)?;
                if got != *value {
                    return Err(Error::ReadBackMismatch {
                        object: name.clone(),
                    });
                }
                Ok(())
            })?;
            objects_verified.push(name.clone());
        }
        let mut signatures_verified = Vec::new();
        for k in &self.profile.keys {
            let slot = k.slot;
            if k.pin_before_each_use {
                steps.run(&mut piv, &format!("verify PIN for {slot}"), |p| {
                    p.verify(input.pin)
                })?;
            }
            let der = input
                .certificates
                .iter()
                .find(|(s, _)| *s == slot)
                .map(|(_, d)| d.as_slice())
                .unwrap_or_default();
            steps.run(&mut piv, &format!("test-sign {slot}"), |p| {
                test_sign(p, slot, prepared.serial, der)
            })?;
            signatures_verified.push(slot);
        }
        let mut lds_verified = Vec::new();
        if let Some(plan) = lds {
            let kseed = crate::bac::kseed(&plan.mrz_information);
            steps.run(&mut piv, LDS_STEPS[0], |p| {
                crate::lds::write_lds(p.channel(), plan.files, &kseed)
            })?;
            let read = steps.run(&mut piv, LDS_STEPS[1], |p| {
                crate::lds::read_lds(p.channel(), &plan.mrz_information)
            })?;
            let pa = steps.run(&mut piv, LDS_STEPS[2], |_| {
                if read.com != plan.files.com()? {
                    return Err(Error::ReadBackMismatch {
                        object: "EF.COM".into(),
                    });
                }
                crate::sod::passive_authentication(&read.sod, &read.dgs, plan.csca_der, plan.now)
            })?;
            lds_verified = pa.dg_hashes.keys().copied().collect();
            steps.run(&mut piv, LDS_STEPS[3], |p| p.select().map(|_| ()))?;
        }
        steps.run(&mut piv, "lock", |p| p.lock())?;
        let lifecycle = steps.run(&mut piv, "read lifecycle after lock", |p| {
            let l = p.lifecycle()?;
            if l != Lifecycle::Locked {
                return Err(Error::WrongLifecycle {
                    operation: "lock",
                    found: l,
                    needed: "LOCKED after lock",
                });
            }
            Ok(l)
        })?;
        let stats = piv.stats();
        tracing::info!(
            serial = prepared.serial,
            apdus = stats.apdus,
            "card personalized and locked"
        );
        Ok(Report {
            serial: prepared.serial,
            lds_verified,
            guid,
            objects_verified,
            signatures_verified,
            lifecycle,
            stats,
        })
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
        // Progress indexes are positions in `reset_steps()`; the transport-key step (4) is
        // skipped when the card key is accepted, so the index may jump from 3 to 5.
        let names = self.reset_steps();
        let total = names.len();
        let mut piv = Piv::new(transport);
        let mut step = |i: usize| -> &str {
            progress(&Progress {
                phase: Phase::Reset,
                step: names[i].clone(),
                index: i + 1,
                total,
            });
            &names[i]
        };
        let name = step(0).to_string();
        piv.select().map_err(|e| e.in_step(&name))?;
        let name = step(1).to_string();
        let l = piv.lifecycle().map_err(|e| e.in_step(&name))?;
        match l {
            Lifecycle::Blank => return Ok(ResetOutcome::AlreadyBlank),
            Lifecycle::Locked => {
                return Err(Error::WrongLifecycle {
                    operation: "reset",
                    found: l,
                    needed: "BLANK or PERSONALIZING",
                }
                .in_step(&name))
            }
            Lifecycle::Personalizing => {}
        }
        let name = step(2).to_string();
        let outcome = match piv.authenticate(card_key) {
            Ok(()) => ResetOutcome::ResetWithCardKey,
            Err(Error::ManagementKeyRejected { .. }) => {
                let name = step(3).to_string();
                piv.authenticate(&transport_key)
                    .map_err(|e| e.in_step(&name))?;
                ResetOutcome::ResetWithTransportKey
            }
            Err(e) => return Err(e.in_step(&name)),
        };
        let name = step(4).to_string();
        piv.reset_to_blank().map_err(|e| e.in_step(&name))?;
        let name = step(5).to_string();
        let l = piv.lifecycle().map_err(|e| e.in_step(&name))?;
        if l != Lifecycle::Blank {
            return Err(Error::WrongLifecycle {
                operation: "reset",
                found: l,
                needed: "BLANK after reset",
            }
            .in_step(&name));
        }
        tracing::info!(outcome = ?outcome, "card reset to BLANK");
        Ok(outcome)
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
            .get_data(slot.certificate_tag())
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
        CardProfile::load(std::path::Path::new(p)).unwrap()
    }

    fn card_key() -> ManagementKey {
        ManagementKey::from_hex(
            crate::secret::MgmtAlgorithm::Aes128,
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
            .prepare(&mut t, &card_key(), &mut |p| seen.push(p.step.clone()))
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
        let prep = p.prepare_steps();
        assert!(prep.contains(&"generate key 9A".to_string()));
        assert!(prep.contains(&"generate key 9C".to_string()));
        let comp = p.complete_steps();
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
