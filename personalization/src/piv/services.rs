//! The issuer's card services on an issued (LOCKED) card, docs/card.md "Operational state":
//! read the card as it is ([`read_issued`]); renew its keys — new key pairs in 9A/9C
//! ([`generate_keys`]), then their certificates and the Key History object written, read back
//! and test-signed with the holder's PIN ([`install_certificates`]); unblock — a new PIN with
//! its retry counter reset, optionally a new PUK ([`unblock`]). Each operation opens its own
//! issuer session: PIV selected, the card's serial checked against the one the caller matched
//! to its registry, the lifecycle LOCKED, the per-card management key authenticated (SP
//! 800-73-4 Part 2 appendix A.3). Errors name the step ("… during 'write certificate 9C'").

use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use profiles::card::Slot;
use sha2::{Digest, Sha256};

use super::objects::KeyHistory;
use super::objects::{certificate_from_object, certificate_object, certificate_tag, tags};
use super::{PinStatus, Piv};
use crate::apdu::Stats;
use crate::error::Error;
use crate::executor::PublicKeyInfo;
use crate::lifecycle::Lifecycle;
use crate::secret::{ManagementKey, Pin, PinKind};
use crate::status::StatusWord;
use crate::transport::Transport;

/// An issued card as read (reads only, no authentication).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCard {
    /// GET SERIAL.
    pub serial: u32,
    /// The lifecycle object.
    pub lifecycle: Lifecycle,
    /// The DER certificate of each asked slot that holds one, in the order asked.
    pub certificates: Vec<(Slot, Vec<u8>)>,
    /// The PIN's retry status.
    pub pin: PinStatus,
}

impl IssuedCard {
    /// The certificate in `slot`, if the card holds one.
    pub fn certificate(&self, slot: Slot) -> Option<&[u8]> {
        self.certificates
            .iter()
            .find(|(s, _)| *s == slot)
            .map(|(_, der)| der.as_slice())
    }
}

/// Reads serial, lifecycle, PIN status and the certificates of `slots` (an empty or absent
/// certificate object is left out).
pub fn read_issued(transport: &mut dyn Transport, slots: &[Slot]) -> Result<IssuedCard, Error> {
    let mut piv = Piv::new(transport);
    piv.select()
        .map_err(|e| e.in_step("select PIV application"))?;
    let serial = piv.serial().map_err(|e| e.in_step("read serial"))?;
    let lifecycle = piv.lifecycle().map_err(|e| e.in_step("read lifecycle"))?;
    let mut certificates = Vec::new();
    for &slot in slots {
        let step = format!("read certificate {slot}");
        let cmd_result = piv.get_data(certificate_tag(slot));
        let object = match cmd_result {
            Ok(o) => o,
            Err(Error::Status {
                sw: StatusWord::NotFound,
                ..
            }) => continue,
            Err(e) => return Err(e.in_step(&step)),
        };
        let der = certificate_from_object(&object).map_err(|e| e.in_step(&step))?;
        certificates.push((slot, der));
    }
    let pin = piv
        .pin_status(PinKind::Pin)
        .map_err(|e| e.in_step("read PIN status"))?;
    Ok(IssuedCard {
        serial,
        lifecycle,
        certificates,
        pin,
    })
}

/// The MRZ in the card's DG1, read through Basic Access Control with the keys of
/// `mrz_information` (ICAO Doc 9303 Part 11 §4.3; document number, birth and expiry dates with
/// their check digits): a card personalized for another document fails BAC. Also the APDUs
/// used.
pub fn read_mrz(
    transport: &mut dyn Transport,
    mrz_information: &str,
) -> Result<([String; 3], Stats), Error> {
    let mut ch = crate::apdu::Channel::new(transport);
    let lds = crate::lds::read_lds(&mut ch, mrz_information)
        .map_err(|e| e.in_step("read the LDS through BAC"))?;
    let dg1 = lds.dgs.get(&1).ok_or_else(|| {
        Error::Lds {
            object: "DG1".into(),
            rule: "EF.COM lists no DG1".into(),
        }
        .in_step("read DG1")
    })?;
    let mrz = crate::lds::parse_dg1(dg1).map_err(|e| e.in_step("read DG1"))?;
    Ok((mrz, ch.stats()))
}

/// Select PIV, check the serial and the LOCKED state, authenticate the per-card key.
fn open_issuer(piv: &mut Piv<'_>, serial: u32, card_key: &ManagementKey) -> Result<(), Error> {
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
    let lifecycle = piv.lifecycle().map_err(|e| e.in_step("read lifecycle"))?;
    if lifecycle != Lifecycle::Locked {
        return Err(Error::WrongLifecycle {
            operation: "a card service on an issued card",
            found: lifecycle,
            needed: "LOCKED",
        }
        .in_step("read lifecycle"));
    }
    piv.authenticate(card_key)
        .map_err(|e| e.in_step("authenticate with the card key"))
}

/// The slots a renewal may touch (docs/card.md: 9A and 9C only).
fn check_slots(slots: impl IntoIterator<Item = Slot>) -> Result<(), Error> {
    for slot in slots {
        if !matches!(slot, Slot::Authentication | Slot::Signature) {
            return Err(Error::Invalid {
                field: format!("slot {slot}"),
                rule: "a LOCKED card renews keys in 9A and 9C only (docs/card.md)".into(),
            });
        }
    }
    Ok(())
}

/// New key pairs generated by a renewal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenewedKeys {
    /// One per slot, in the order asked.
    pub public_keys: Vec<PublicKeyInfo>,
    /// APDUs and bytes.
    pub stats: Stats,
}

impl RenewedKeys {
    /// The SPKI of `slot`.
    pub fn public_key(&self, slot: Slot) -> Option<&[u8]> {
        self.public_keys
            .iter()
            .find(|k| k.slot == slot)
            .map(|k| k.spki_der.as_slice())
    }
}

/// GENERATE ASYMMETRIC KEY PAIR (P-256) in each of `slots` on the LOCKED card `serial`, as the
/// issuer. The new key replaces the old one at once (SP 800-73-4 Part 2 §3.3.2): until
/// [`install_certificates`] has run, the slot's old certificate no longer matches its key.
pub fn generate_keys(
    transport: &mut dyn Transport,
    serial: u32,
    card_key: &ManagementKey,
    slots: &[Slot],
) -> Result<RenewedKeys, Error> {
    check_slots(slots.iter().copied())?;
    let mut piv = Piv::new(transport);
    open_issuer(&mut piv, serial, card_key)?;
    let mut public_keys = Vec::with_capacity(slots.len());
    for &slot in slots {
        let step = format!("generate key {slot}");
        let pk = piv.generate_p256(slot).map_err(|e| e.in_step(&step))?;
        let spki_der = pk
            .to_public_key_der()
            .map_err(|e| {
                Error::Malformed {
                    command: "GENERATE ASYMMETRIC KEY PAIR",
                    detail: format!("public key does not encode as SPKI: {e}"),
                }
                .in_step(&step)
            })?
            .as_bytes()
            .to_vec();
        public_keys.push(PublicKeyInfo { slot, spki_der });
    }
    let stats = piv.stats();
    tracing::info!(serial, keys = public_keys.len(), "renewal keys generated");
    Ok(RenewedKeys { public_keys, stats })
}

/// What [`install_certificates`] verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallReport {
    /// Slots whose certificate was read back equal to what was written.
    pub read_back: Vec<Slot>,
    /// Slots whose test signature (with the holder's PIN) verified with the new certificate.
    pub signatures_verified: Vec<Slot>,
    /// APDUs and bytes.
    pub stats: Stats,
}

/// The P-256 key a certificate certifies.
fn certified_key(slot: Slot, der: &[u8]) -> Result<p256::PublicKey, Error> {
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

/// Writes the renewed certificates on the LOCKED card `serial` as the issuer: each one only
/// after the card showed that its slot holds the certified key (GET METADATA), then the Key
/// History object (no retired keys: a renewal replaces, it retires nothing), reads each back,
/// and test-signs with each slot after the holder's PIN (one VERIFY per signature, which 9C
/// needs anyway), checking the signature with the new certificate.
pub fn install_certificates(
    transport: &mut dyn Transport,
    serial: u32,
    card_key: &ManagementKey,
    certificates: &[(Slot, Vec<u8>)],
    pin: &Pin,
) -> Result<InstallReport, Error> {
    check_slots(certificates.iter().map(|(s, _)| *s))?;
    if pin.kind() != PinKind::Pin {
        return Err(Error::Invalid {
            field: "holder PIN".into(),
            rule: "the test signature needs the PIN, not the PUK".into(),
        });
    }
    let keys = certificates
        .iter()
        .map(|(slot, der)| certified_key(*slot, der).map(|k| (*slot, k)))
        .collect::<Result<Vec<_>, Error>>()?;
    let mut piv = Piv::new(transport);
    open_issuer(&mut piv, serial, card_key)?;
    for ((slot, der), (_, key)) in certificates.iter().zip(&keys) {
        let step = format!("check key {slot}");
        let on_card = piv.slot_public_key(*slot).map_err(|e| e.in_step(&step))?;
        if on_card.as_ref() != Some(key) {
            return Err(Error::Certificate {
                slot: slot.to_string(),
                rule: "certifies a key that is not the one in the slot on this card".into(),
            }
            .in_step(&step));
        }
        let step = format!("write certificate {slot}");
        piv.put_data(certificate_tag(*slot), &certificate_object(der))
            .map_err(|e| e.in_step(&step))?;
    }
    piv.put_data(tags::KEY_HISTORY, &KeyHistory::default().encode())
        .map_err(|e| e.in_step("write key history"))?;
    let mut read_back = Vec::new();
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
        read_back.push(*slot);
    }
    let mut signatures_verified = Vec::new();
    for (slot, key) in &keys {
        piv.verify(pin)
            .map_err(|e| e.in_step("verify the holder's PIN"))?;
        test_sign(&mut piv, *slot, serial, key)
            .map_err(|e| e.in_step(&format!("test signature {slot}")))?;
        signatures_verified.push(*slot);
    }
    let stats = piv.stats();
    tracing::info!(
        serial,
        apdus = stats.apdus,
        "renewed certificates installed"
    );
    Ok(InstallReport {
        read_back,
        signatures_verified,
        stats,
    })
}

/// Signs a fresh digest with `slot` and verifies it with `key`.
fn test_sign(
    piv: &mut Piv<'_>,
    slot: Slot,
    serial: u32,
    key: &p256::PublicKey,
) -> Result<(), Error> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| Error::Invalid {
        field: "random generator".into(),
        rule: format!("the operating system RNG failed: {e}"),
    })?;
    let mut h = Sha256::new();
    h.update(b"idstation renewal test signature");
    h.update([slot.key_ref()]);
    h.update(serial.to_be_bytes());
    h.update(nonce);
    let digest: [u8; 32] = h.finalize().into();
    let sig = piv.sign_p256(slot, &digest)?;
    let sig = p256::ecdsa::Signature::from_der(&sig).map_err(|_| Error::Malformed {
        command: "GENERAL AUTHENTICATE (sign)",
        detail: "signature is not a DER Ecdsa-Sig-Value".into(),
    })?;
    p256::ecdsa::VerifyingKey::from(key)
        .verify_prehash(&digest, &sig)
        .map_err(|_| Error::SignatureInvalid {
            slot: slot.to_string(),
        })
}

/// What [`unblock`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnblockReport {
    /// A new PUK was set too.
    pub new_puk: bool,
    /// APDUs and bytes.
    pub stats: Stats,
}

/// On the LOCKED card `serial`, as the issuer: the holder's new PIN set and its retry counter
/// reset (`00 2C 02 80`), then, when given, a new PUK (`00 2C 02 81`); the new PIN is verified
/// at the end (the card counts it, so a wrong write would show here).
pub fn unblock(
    transport: &mut dyn Transport,
    serial: u32,
    card_key: &ManagementKey,
    new_pin: &Pin,
    new_puk: Option<&Pin>,
) -> Result<UnblockReport, Error> {
    if new_pin.kind() != PinKind::Pin || new_puk.is_some_and(|p| p.kind() != PinKind::Puk) {
        return Err(Error::Invalid {
            field: "unblock".into(),
            rule: "takes a new PIN and, optionally, a new PUK".into(),
        });
    }
    let mut piv = Piv::new(transport);
    open_issuer(&mut piv, serial, card_key)?;
    piv.set_reference_as_issuer(new_pin)
        .map_err(|e| e.in_step("set the new PIN"))?;
    if let Some(puk) = new_puk {
        piv.set_reference_as_issuer(puk)
            .map_err(|e| e.in_step("set the new PUK"))?;
    }
    piv.verify(new_pin)
        .map_err(|e| e.in_step("verify the new PIN"))?;
    let stats = piv.stats();
    tracing::info!(serial, new_puk = new_puk.is_some(), "PIN unblocked");
    Ok(UnblockReport {
        new_puk: new_puk.is_some(),
        stats,
    })
}

#[cfg(test)]
mod tests {
    //! Against the virtual chip in process: a card personalized and locked by the executor,
    //! then renewed and unblocked; refusals; a card pulled at every APDU of a renewal.
    use super::*;
    use crate::executor::{CompleteInput, HolderCardData, Personalizer};
    use crate::testutil::TestCa;
    use crate::transport::in_process::InProcess;
    use profiles::card::{CardProfile, MgmtAlgorithm};

    const PIN: &str = "918273";
    const PUK: &str = "56473829";
    const SLOTS: [Slot; 2] = [Slot::Authentication, Slot::Signature];

    fn profile() -> CardProfile {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../profiles/card/card-esign.toml"
        );
        profiles::card::load_card_profile(std::path::Path::new(p)).unwrap()
    }

    fn card_key() -> ManagementKey {
        ManagementKey::from_hex(MgmtAlgorithm::Aes128, "a1a2a3a4a5a6a7a8a9aaabacadaeafb0").unwrap()
    }

    fn pin(v: &str) -> Pin {
        Pin::new(PinKind::Pin, v).unwrap()
    }

    /// A card issued by the executor (LOCKED), re-inserted.
    fn issued(ca: &mut TestCa, serial: u32) -> InProcess {
        let prof = profile();
        let p = Personalizer::new(&prof);
        let mut t = InProcess::new(chip::Card::new_blank(serial).unwrap());
        let prepared = p.prepare(&mut t, &card_key(), &mut |_| {}).unwrap();
        let certificates: Vec<(Slot, Vec<u8>)> = prepared
            .public_keys
            .iter()
            .map(|k| (k.slot, ca.issue(&k.spki_der, "holder")))
            .collect();
        let holder = HolderCardData {
            name: "ALIYEV SHERZOD".into(),
            document_number: "AD1234567".into(),
            expiry: time::macros::date!(2036 - 11 - 24),
        };
        let input = CompleteInput {
            certificates: &certificates,
            holder: &holder,
            pin: &pin(PIN),
            puk: &Pin::new(PinKind::Puk, PUK).unwrap(),
        };
        p.complete(&mut t, &prepared, &card_key(), &input, &mut |_| {})
            .unwrap();
        t.reinsert();
        t
    }

    fn renew(
        t: &mut InProcess,
        ca: &mut TestCa,
        serial: u32,
    ) -> Result<Vec<(Slot, Vec<u8>)>, Error> {
        let keys = generate_keys(t, serial, &card_key(), &SLOTS)?;
        let certs: Vec<(Slot, Vec<u8>)> = keys
            .public_keys
            .iter()
            .map(|k| (k.slot, ca.issue(&k.spki_der, "holder renewed")))
            .collect();
        let report = install_certificates(t, serial, &card_key(), &certs, &pin(PIN))?;
        assert_eq!(report.signatures_verified, SLOTS.to_vec());
        assert_eq!(report.read_back, SLOTS.to_vec());
        Ok(certs)
    }

    #[test]
    fn renewal_on_a_locked_card_installs_new_keys_and_certificates() {
        let mut ca = TestCa::new();
        let mut t = issued(&mut ca, 501);
        let before = read_issued(&mut t, &SLOTS).unwrap();
        assert_eq!(before.lifecycle, Lifecycle::Locked);
        assert_eq!(before.certificates.len(), 2);
        let certs = renew(&mut t, &mut ca, 501).unwrap();
        t.reinsert();
        let after = read_issued(&mut t, &SLOTS).unwrap();
        assert_eq!(after.lifecycle, Lifecycle::Locked);
        assert_eq!(after.certificates, certs);
        assert_ne!(
            after.certificate(Slot::Signature),
            before.certificate(Slot::Signature)
        );
    }

    #[test]
    fn services_refuse_another_card_and_a_wrong_key_before_writing() {
        let mut ca = TestCa::new();
        let mut t = issued(&mut ca, 502);
        let e = generate_keys(&mut t, 503, &card_key(), &SLOTS).unwrap_err();
        assert!(matches!(e.root(), Error::WrongCard { .. }), "{e}");
        let wrong =
            ManagementKey::from_hex(MgmtAlgorithm::Aes128, "00".repeat(16).as_str()).unwrap();
        let e = generate_keys(&mut t, 502, &wrong, &SLOTS).unwrap_err();
        assert!(
            matches!(e.root(), Error::ManagementKeyRejected { .. }),
            "{e}"
        );
        assert_eq!(e.step(), Some("authenticate with the card key"));
        let e = generate_keys(&mut t, 502, &card_key(), &[Slot::KeyManagement]).unwrap_err();
        assert!(e.to_string().contains("9A and 9C only"), "{e}");
        let e = unblock(&mut t, 502, &wrong, &pin("111222"), None).unwrap_err();
        assert!(
            matches!(e.root(), Error::ManagementKeyRejected { .. }),
            "{e}"
        );
        t.reinsert();
        assert_eq!(
            read_issued(&mut t, &SLOTS).unwrap().pin,
            PinStatus::TriesLeft(3)
        );
    }

    #[test]
    fn a_certificate_for_another_key_is_not_written() {
        let mut ca = TestCa::new();
        let mut t = issued(&mut ca, 504);
        let before = read_issued(&mut t, &SLOTS).unwrap();
        // The old certificates certify the old keys; generate new ones, then offer the old.
        generate_keys(&mut t, 504, &card_key(), &SLOTS).unwrap();
        let e = install_certificates(&mut t, 504, &card_key(), &before.certificates, &pin(PIN))
            .unwrap_err();
        assert_eq!(e.step(), Some("check key 9A"), "{e}");
        t.reinsert();
        assert_eq!(
            read_issued(&mut t, &SLOTS).unwrap().certificates,
            before.certificates
        );
    }

    #[test]
    fn unblock_sets_a_new_pin_and_puk_on_a_blocked_card() {
        let mut ca = TestCa::new();
        let mut t = issued(&mut ca, 505);
        {
            let mut piv = Piv::new(&mut t);
            piv.select().unwrap();
            for _ in 0..3 {
                assert!(piv.verify(&pin("000000")).is_err());
            }
        }
        assert_eq!(read_issued(&mut t, &SLOTS).unwrap().pin, PinStatus::Blocked);
        let new_puk = Pin::new(PinKind::Puk, "11223344").unwrap();
        let r = unblock(&mut t, 505, &card_key(), &pin("246810"), Some(&new_puk)).unwrap();
        assert!(r.new_puk);
        t.reinsert();
        let mut piv = Piv::new(&mut t);
        piv.select().unwrap();
        assert_eq!(
            piv.pin_status(PinKind::Pin).unwrap(),
            PinStatus::TriesLeft(3)
        );
        piv.verify(&pin("246810")).unwrap();
        let e = piv.verify(&Pin::new(PinKind::Puk, PUK).unwrap());
        assert!(
            e.is_err(),
            "VERIFY of the PUK is not offered; the PUK is checked by use"
        );
        // The new PUK changes itself (CHANGE REFERENCE DATA needs the current one).
        piv.change_reference(&new_puk, &Pin::new(PinKind::Puk, "55667788").unwrap())
            .unwrap();
    }

    #[test]
    fn a_renewal_pulled_at_any_apdu_is_finished_by_running_it_again() {
        let mut ca = TestCa::new();
        let mut t = issued(&mut ca, 506);
        let mut n = 0;
        loop {
            t.reinsert();
            t.tear_after = Some(n);
            let result = renew(&mut t, &mut ca, 506);
            let sent = t.sent;
            t.reinsert();
            match result {
                Ok(_) => break,
                Err(e) => {
                    assert!(e.is_card_gone(), "tear {n}: {e}");
                    assert!(e.step().is_some(), "tear {n}: no step in {e}");
                    assert!(sent <= n);
                }
            }
            // The card is still LOCKED and a full renewal succeeds.
            let certs = renew(&mut t, &mut ca, 506).unwrap_or_else(|e| panic!("tear {n}: {e}"));
            t.reinsert();
            assert_eq!(read_issued(&mut t, &SLOTS).unwrap().certificates, certs);
            n += 1;
        }
        assert!(n > 20, "only {n} APDUs in a renewal?");
    }
}
