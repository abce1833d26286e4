//! The certification seam of an issuance: [`Certifier`] turns the public keys generated on a
//! card, plus the holder, into the card's certificates (RFC 5280, profiles under
//! `profiles/cert/`).
//!
//! [`InStationCa`] signs with the station's own e-Signature CA key in the HSM (a standalone
//! station). The national centre's implementation (`CentreCertifier`, in the station's
//! registration-authority module) asks the centre: the station sends the
//! keys with a proof of possession made on the card, the centre answers with certificates.
//! The issuance job talks to the CA only through this trait.

use std::time::SystemTime;

use personalization::secret::ManagementKey;
use profiles::card::{CardProfile, Slot};
use registry::Actor;

use crate::error::StationError;
use crate::holder::ValidHolder;
use crate::Station;

/// One key generated on the card that needs a certificate.
#[derive(Debug, Clone, Copy)]
pub struct KeyToCertify<'a> {
    pub slot: Slot,
    /// The certificate profile the card profile names for this slot.
    pub profile: &'a str,
    /// SubjectPublicKeyInfo, DER, as the card returned it.
    pub public_key: &'a [u8],
    /// The card key's signature (DER ECDSA) over the digest [`Certifier::proof_digests`]
    /// named for this slot; `None` when the certifier asked for no proof.
    pub proof: Option<&'a [u8]>,
}

/// A certificate made for one card key.
#[derive(Debug, Clone)]
pub struct CardCertificate {
    pub slot: Slot,
    pub profile: String,
    pub der: Vec<u8>,
    /// The registry id of the CA key that signed it.
    pub issuer_key_id: i64,
}

/// One SHA-256 digest per card key, for the key to sign as proof of possession.
pub type ProofDigests = Vec<(Slot, [u8; 32])>;

/// Turns a card's public keys plus the holder into certificates, one per key, in key order.
pub trait Certifier {
    /// The per-card management key of job `job_id`'s card `serial`, and the label of the
    /// centre's card key it derives from (`None`: this station's own, derived in its HSM,
    /// [`crate::card::card_management_key`]). Whoever certifies the card's keys decides whose
    /// key the card is under: a card certified by the national centre is under the centre's,
    /// so that any office can serve it later.
    fn card_key(
        &self,
        st: &Station,
        _actor: &Actor,
        _job_id: i64,
        profile: &CardProfile,
        serial: u32,
    ) -> Result<(ManagementKey, Option<String>), StationError> {
        Ok((crate::card::card_management_key(st, profile, serial)?, None))
    }

    /// What each card key of job `job_id` must sign to prove possession before
    /// [`certify`](Self::certify): one SHA-256 digest per `(slot, SubjectPublicKeyInfo)`, or
    /// `None` when this certifier needs no proof (it generated nothing it does not trust).
    fn proof_digests(
        &self,
        _st: &Station,
        _job_id: i64,
        _keys: &[(Slot, &[u8])],
    ) -> Result<Option<ProofDigests>, StationError> {
        Ok(None)
    }

    fn certify(
        &self,
        st: &mut Station,
        actor: &Actor,
        job_id: i64,
        holder: &ValidHolder,
        keys: &[KeyToCertify<'_>],
    ) -> Result<Vec<CardCertificate>, StationError>;
}

/// The station's own CA: certificates signed in the HSM by the active e-Signature CA key.
pub struct InStationCa;

impl Certifier for InStationCa {
    fn certify(
        &self,
        st: &mut Station,
        _actor: &Actor,
        _job_id: i64,
        holder: &ValidHolder,
        keys: &[KeyToCertify<'_>],
    ) -> Result<Vec<CardCertificate>, StationError> {
        let (esign_key, issuer) = crate::hierarchy::active_issuer(st, "esign")?;
        let country = &st.document_profile()?.country;
        let subject = crate::holder_views::certificate_subject(holder, country);
        let now = SystemTime::now();
        keys.iter()
            .map(|key| {
                let cert_profile = st.profiles.cert(key.profile)?;
                let cert = ca::issue(
                    st.keys.as_ref(),
                    cert_profile,
                    &issuer,
                    key.public_key,
                    &subject,
                    now,
                )?;
                Ok(CardCertificate {
                    slot: key.slot,
                    profile: key.profile.to_string(),
                    der: cert.der,
                    issuer_key_id: esign_key.id,
                })
            })
            .collect()
    }
}
