//! PIV keys: GENERATE ASYMMETRIC KEY PAIR (SP 800-73-4 Part 2 clause 3.3.2), the Yubico
//! IMPORT (FE) and SET MANAGEMENT KEY (FF), and GENERAL AUTHENTICATE (Part 2 clause 3.2.4,
//! appendix A): ECDSA P-256 signatures and ECC key establishment (appendix A.5) with a slot's
//! key under its PIN policy, and the management-key authentication (appendix A.1). Private keys
//! are generated here from the OS CSPRNG (FIPS 186-5 A.2.2) and no command returns them.

use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{Signature, SigningKey};
use zeroize::Zeroizing;

use super::{
    is_key_slot, is_operational_slot, pin_policy, KeyOrigin, PendingAuth, PinPolicy, Piv, SlotKey,
    ALG_ECC_P256, KEY_MGMT,
};
use crate::apdu::Command;
use crate::mgmt::{MgmtAlgorithm, MgmtKey};
use crate::os::{CardContext, Lifecycle};
use crate::sw::StatusWord;
use crate::tlv;

/// What a GENERAL AUTHENTICATE with an asymmetric key asks for.
enum Operation<'a> {
    Sign(&'a [u8]),
    Ecdh(&'a [u8]),
}

impl Piv {
    // --- GENERATE ASYMMETRIC KEY PAIR (SP 800-73-4 Part 2 clause 3.3.2) ---
    pub(super) fn generate(
        &mut self,
        ctx: &mut CardContext,
        cmd: &Command,
    ) -> Result<Vec<u8>, StatusWord> {
        if cmd.p1 != 0x00 || !is_key_slot(cmd.p2) {
            return Err(StatusWord::IncorrectP1P2);
        }
        self.require_issuer(ctx, is_operational_slot(cmd.p2))?;
        let template = tlv::parse_single(&cmd.data, 0xAC)?;
        let mut alg = None;
        for obj in tlv::parse_all(template)? {
            match obj.tag {
                0x80 => {
                    if obj.value.len() != 1 {
                        return Err(StatusWord::IncorrectData);
                    }
                    alg = Some(obj.value[0]);
                }
                // Yubico PIN policy (AA) and touch policy (AB): fixed by slot on this card,
                // accepted and ignored. 81 (RSA exponent) is meaningless for ECC.
                0xAA | 0xAB => {}
                _ => return Err(StatusWord::IncorrectData),
            }
        }
        if alg != Some(ALG_ECC_P256) {
            return Err(StatusWord::IncorrectData);
        }
        let key = random_signing_key()?;
        let sk = SlotKey {
            origin: KeyOrigin::Generated,
            key,
        };
        let point = sk.public_point();
        self.keys.insert(cmd.p2, sk);
        ctx.personalization_step();
        // 7F49 { 86 <uncompressed point> } (SP 800-73-4 Part 2 table 7 for ECC).
        Ok(tlv::encode(0x7F49, &tlv::encode(0x86, &point)))
    }

    // --- IMPORT ASYMMETRIC KEY (Yubico INS FE; ECC private key in tag 06) ---
    pub(super) fn import(
        &mut self,
        ctx: &mut CardContext,
        cmd: &Command,
    ) -> Result<Vec<u8>, StatusWord> {
        if !is_key_slot(cmd.p2) {
            return Err(StatusWord::IncorrectP1P2);
        }
        if cmd.p1 != ALG_ECC_P256 {
            return Err(StatusWord::IncorrectP1P2);
        }
        self.require_personalizable(ctx)?;
        let mut scalar: Option<Zeroizing<Vec<u8>>> = None;
        for obj in tlv::parse_all(&cmd.data)? {
            match obj.tag {
                0x06 => scalar = Some(Zeroizing::new(obj.value.to_vec())),
                0xAA | 0xAB => {}
                _ => return Err(StatusWord::IncorrectData),
            }
        }
        let scalar = scalar.ok_or(StatusWord::IncorrectData)?;
        if scalar.len() != 32 {
            return Err(StatusWord::IncorrectData);
        }
        let key = SigningKey::from_slice(&scalar).map_err(|_| StatusWord::IncorrectData)?;
        self.keys.insert(
            cmd.p2,
            SlotKey {
                origin: KeyOrigin::Imported,
                key,
            },
        );
        ctx.personalization_step();
        Ok(Vec::new())
    }

    // --- GENERAL AUTHENTICATE (SP 800-73-4 Part 2 clause 3.2.4, appendix A) ---
    pub(super) fn general_authenticate(
        &mut self,
        ctx: &mut CardContext,
        cmd: &Command,
    ) -> Result<Vec<u8>, StatusWord> {
        let template = tlv::parse_single(&cmd.data, 0x7C)?;
        let mut witness = None;
        let mut challenge = None;
        let mut resp = None;
        let mut exponentiation = None;
        for obj in tlv::parse_all(template)? {
            let slot = match obj.tag {
                0x80 => &mut witness,
                0x81 => &mut challenge,
                0x82 => &mut resp,
                0x85 => &mut exponentiation,
                _ => return Err(StatusWord::IncorrectData),
            };
            if slot.is_some() {
                return Err(StatusWord::IncorrectData);
            }
            *slot = Some(obj.value);
        }
        if cmd.p2 == KEY_MGMT {
            return self.authenticate_mgmt(ctx, cmd.p1, witness, challenge, resp);
        }
        self.pending = None;
        if !is_key_slot(cmd.p2) {
            return Err(StatusWord::ReferenceNotFound);
        }
        if cmd.p1 != ALG_ECC_P256 {
            return Err(StatusWord::IncorrectP1P2);
        }
        if witness.is_some() || resp != Some(&[]) {
            return Err(StatusWord::IncorrectData);
        }
        // 82 empty (response requested) with 81 = hash to sign (ECDSA), or 85 = the peer's
        // public point (ECC key establishment, SP 800-73-4 Part 2 appendix A.5).
        let operation = match (challenge, exponentiation) {
            (Some(hash), None) if hash.len() == 32 => Operation::Sign(hash),
            (None, Some(point)) if point.len() == 65 => Operation::Ecdh(point),
            _ => return Err(StatusWord::IncorrectData),
        };
        let slot = cmd.p2;
        if !self.keys.contains_key(&slot) {
            return Err(StatusWord::ReferenceNotFound);
        }
        match pin_policy(slot) {
            PinPolicy::Never => {}
            PinPolicy::Once => {
                if !self.pin_verified {
                    return Err(StatusWord::SecurityStatusNotSatisfied);
                }
            }
            PinPolicy::Always => {
                if !(self.pin_verified && self.pin_fresh_for_always) {
                    return Err(StatusWord::SecurityStatusNotSatisfied);
                }
                // One private-key operation per PIN presentation.
                self.pin_fresh_for_always = false;
            }
        }
        let hash = match operation {
            Operation::Sign(hash) => hash,
            Operation::Ecdh(point) => {
                let key = &self
                    .keys
                    .get(&slot)
                    .ok_or(StatusWord::ReferenceNotFound)?
                    .key;
                let peer = p256::PublicKey::from_sec1_bytes(point)
                    .map_err(|_| StatusWord::IncorrectData)?;
                let shared = p256::ecdh::diffie_hellman(key.as_nonzero_scalar(), peer.as_affine());
                return Ok(tlv::encode(
                    0x7C,
                    &tlv::encode(0x82, shared.raw_secret_bytes().as_slice()),
                ));
            }
        };
        let key = &self
            .keys
            .get(&slot)
            .ok_or(StatusWord::ReferenceNotFound)?
            .key;
        let sig: Signature = key
            .sign_prehash(hash)
            .map_err(|_| StatusWord::IncorrectData)?;
        let der = sig.to_der();
        Ok(tlv::encode(0x7C, &tlv::encode(0x82, der.as_bytes())))
    }

    fn authenticate_mgmt(
        &mut self,
        ctx: &mut CardContext,
        p1: u8,
        witness: Option<&[u8]>,
        challenge: Option<&[u8]>,
        resp: Option<&[u8]>,
    ) -> Result<Vec<u8>, StatusWord> {
        let pending = self.pending.take();
        // A new attempt forgets the earlier authentication (so does the OS flag below).
        self.mgmt_authenticated_when_locked = false;
        if p1 != self.mgmt.alg.id() {
            ctx.mgmt_authenticated = false;
            return Err(StatusWord::IncorrectP1P2);
        }
        let bl = self.mgmt.alg.block_len();
        match (witness, challenge, resp) {
            // Mutual, step 1: request a witness.
            (Some(&[]), None, None) => {
                ctx.mgmt_authenticated = false;
                let plain = Zeroizing::new(random_bytes(bl)?);
                let mut enc = plain.to_vec();
                self.mgmt.crypt_block(&mut enc, true)?;
                self.pending = Some(PendingAuth::Witness(plain));
                Ok(tlv::encode(0x7C, &tlv::encode(0x80, &enc)))
            }
            // Mutual, step 2: decrypted witness and a challenge for the card.
            (Some(w), Some(c), None | Some(&[])) if !w.is_empty() && !c.is_empty() => {
                let Some(PendingAuth::Witness(expected)) = pending else {
                    return Err(StatusWord::ConditionsNotSatisfied);
                };
                if w.len() != bl || c.len() != bl {
                    return Err(StatusWord::IncorrectData);
                }
                let same = expected
                    .iter()
                    .zip(w)
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0;
                if !same {
                    return Err(StatusWord::SecurityStatusNotSatisfied);
                }
                let mut enc = c.to_vec();
                self.mgmt.crypt_block(&mut enc, true)?;
                ctx.mgmt_authenticated = true;
                self.mgmt_authenticated_when_locked = ctx.lifecycle == Lifecycle::Locked;
                Ok(tlv::encode(0x7C, &tlv::encode(0x82, &enc)))
            }
            // External, step 1: request a challenge.
            (None, Some(&[]), None) => {
                ctx.mgmt_authenticated = false;
                let plain = Zeroizing::new(random_bytes(bl)?);
                let out = tlv::encode(0x7C, &tlv::encode(0x81, &plain));
                self.pending = Some(PendingAuth::Challenge(plain));
                Ok(out)
            }
            // External, step 2: the encrypted challenge.
            (None, None, Some(r)) if !r.is_empty() => {
                let Some(PendingAuth::Challenge(plain)) = pending else {
                    return Err(StatusWord::ConditionsNotSatisfied);
                };
                if r.len() != bl {
                    return Err(StatusWord::IncorrectData);
                }
                let mut expected = Zeroizing::new(plain.to_vec());
                self.mgmt.crypt_block(&mut expected, true)?;
                let same = expected
                    .iter()
                    .zip(r)
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0;
                if !same {
                    return Err(StatusWord::SecurityStatusNotSatisfied);
                }
                ctx.mgmt_authenticated = true;
                self.mgmt_authenticated_when_locked = ctx.lifecycle == Lifecycle::Locked;
                Ok(Vec::new())
            }
            _ => Err(StatusWord::IncorrectData),
        }
    }

    // --- SET MANAGEMENT KEY (Yubico INS FF) ---
    pub(super) fn set_management_key(
        &mut self,
        ctx: &mut CardContext,
        cmd: &Command,
    ) -> Result<Vec<u8>, StatusWord> {
        if cmd.p1 != 0xFF || (cmd.p2 != 0xFF && cmd.p2 != 0xFE) {
            return Err(StatusWord::IncorrectP1P2);
        }
        self.require_personalizable(ctx)?;
        let d = &cmd.data;
        if d.len() < 3 {
            return Err(StatusWord::IncorrectData);
        }
        let alg = MgmtAlgorithm::from_id(d[0]).ok_or(StatusWord::IncorrectData)?;
        if d[1] != KEY_MGMT || usize::from(d[2]) != d.len() - 3 {
            return Err(StatusWord::IncorrectData);
        }
        self.mgmt = MgmtKey::new(alg, &d[3..])?;
        ctx.personalization_step();
        Ok(Vec::new())
    }
}

fn random_bytes(n: usize) -> Result<Vec<u8>, StatusWord> {
    let mut v = vec![0u8; n];
    getrandom::fill(&mut v).map_err(|_| StatusWord::NoPreciseDiagnosis)?;
    Ok(v)
}

/// A P-256 private key from the OS CSPRNG by rejection sampling (FIPS 186-5 A.2.2): draw 256
/// bits, retry if the value is 0 or not below the group order.
fn random_signing_key() -> Result<SigningKey, StatusWord> {
    for _ in 0..64 {
        let bytes = Zeroizing::new(random_bytes(32)?);
        if let Ok(key) = SigningKey::from_slice(&bytes) {
            return Ok(key);
        }
    }
    Err(StatusWord::NoPreciseDiagnosis)
}
