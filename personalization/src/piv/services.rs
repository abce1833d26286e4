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
use super::PublicKeyInfo;
use super::{PinStatus, Piv};
use crate::apdu::Stats;
use crate::error::Error;
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

/// The MRZ in the card's DG1, read through PACE with the MRZ password when the chip offers
/// PACE (EF.CardAccess readable), else through Basic Access Control, with `mrz_information`
/// (ICAO Doc 9303 Part 11 §4.4 / §4.3; document number, birth and expiry dates with their check
/// digits): a card personalized for another document fails the access control. Also the APDUs
/// used and the access control ("PACE-MRZ" or "BAC").
pub fn read_mrz(
    transport: &mut dyn Transport,
    mrz_information: &str,
) -> Result<([String; 3], Stats, &'static str), Error> {
    use crate::pace::{read_card_access, Access, IcaoReader};
    let mut ch = crate::apdu::Channel::new(transport);
    let access = match read_card_access(&mut ch) {
        Ok(_) => Access::pace_mrz(mrz_information),
        Err(Error::Bac { .. }) => Access::bac(mrz_information),
        Err(e) => return Err(e.in_step("read EF.CardAccess")),
    };
    let step = format!("open the ICAO application with {}", access.name());
    let mut r = IcaoReader::open(&mut ch, &access).map_err(|e| e.in_step(&step))?;
    let dg1 = r
        .read_ef(crate::lds::fid::dg(1))
        .map_err(|e| e.in_step("read DG1"))?;
    let mrz = crate::lds::parse_dg1(&dg1).map_err(|e| e.in_step("read DG1"))?;
    drop(r);
    Ok((mrz, ch.stats(), access.name()))
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

/// Each key's proof of possession (DER ECDSA signature), by slot.
pub type Proofs = Vec<(Slot, Vec<u8>)>;

/// Proof of possession for a renewal through the centre: each new key (slot, SubjectPublicKeyInfo)
/// signs its digest after the holder's PIN (the card requires it for every use of 9C), and each
/// signature is checked with the key before it leaves. Keys only, no issuer session: the proof
/// is the holder's card answering, as it will for every signature.
pub fn prove_possession(
    transport: &mut dyn Transport,
    pin: &Pin,
    keys: &[(Slot, &[u8], [u8; 32])],
) -> Result<(Proofs, Stats), Error> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    check_slots(keys.iter().map(|(s, _, _)| *s))?;
    let mut piv = Piv::new(transport);
    piv.select()?;
    let mut out = Vec::with_capacity(keys.len());
    for (slot, spki, digest) in keys {
        let step = format!("proof of possession {slot}");
        let key = p256::PublicKey::from_public_key_der(spki).map_err(|_| Error::Certificate {
            slot: slot.to_string(),
            rule: "the new key is not an ECC P-256 SubjectPublicKeyInfo".into(),
        })?;
        piv.verify(pin)
            .map_err(|e| e.in_step("verify the holder's PIN"))?;
        let sig = piv.sign_p256(*slot, digest).map_err(|e| e.in_step(&step))?;
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
    Ok((out, piv.stats()))
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
