//! The seam of the card services (issue 16) between the station and whoever holds the national
//! record: [`ServiceSeam`]. [`InStation`] is a standalone station (its own e-Signature CA, its
//! own registry: nothing to ask anyone); the national centre's implementation
//! (`ViaCentre`, in the `ra_services` module) puts each call on the centre's API (`centre_api`,
//! `/v1/services/{job}/…`). The services (`crate::services`) talk to the CA and the national
//! record only through this trait and pick the implementation with
//! `seam` of the `ra_services` module.
//!
//! Every renewal draws a job UUID (journaled with its `ca.issue` step before the first call);
//! the centre answers a repeated call of a step of that job with its first answer, so a call
//! may always be retried.

use std::time::SystemTime;

use centre_api::{AddressResponse, HoldResponse};
use profiles::card::Slot;
use registry::{Actor, NewAddress, NewHolder};

use crate::certifier::{CardCertificate, KeyToCertify, ProofDigests};
use crate::error::StationError;
use crate::Station;

/// One renewal as the seam sees it.
#[derive(Debug, Clone, Copy)]
pub struct Renewal<'a> {
    /// The local service job.
    pub service_job: i64,
    /// The job's UUID (the centre's idempotency key).
    pub uuid: &'a str,
    /// Document number, e.g. `AA0000042`.
    pub document: &'a str,
    /// `YYYY-MM-DD`: no new certificate outlives it.
    pub date_of_expiry: &'a str,
    /// The card's chip serial (8 hex digits), as read and matched.
    pub card_serial: &'a str,
    pub holder: &'a NewHolder,
}

/// A hold (suspend) or a release (resume) the national record made.
pub type Hold = HoldResponse;

/// The national record and CA of the card services.
pub trait ServiceSeam {
    /// What each new card key must sign before [`renewal_certify`](Self::renewal_certify), or
    /// `None` when no proof is asked (the station's own CA trusts its own card session).
    fn renewal_proof_digests(
        &self,
        st: &mut Station,
        actor: &Actor,
        renewal: &Renewal<'_>,
        keys: &[(Slot, &[u8])],
    ) -> Result<Option<ProofDigests>, StationError>;

    /// Certificates for the new card keys, validity capped at the document's expiry.
    fn renewal_certify(
        &self,
        st: &mut Station,
        actor: &Actor,
        renewal: &Renewal<'_>,
        keys: &[KeyToCertify<'_>],
    ) -> Result<Vec<CardCertificate>, StationError>;

    /// The new certificates are on the card: active; the previous ones superseded.
    fn renewal_complete(
        &self,
        st: &mut Station,
        actor: &Actor,
        renewal: &Renewal<'_>,
    ) -> Result<(), StationError>;

    /// Undo the renewal: its certificates revoked (cessationOfOperation).
    fn renewal_abort(
        &self,
        st: &mut Station,
        actor: &Actor,
        renewal: &Renewal<'_>,
        reason: &str,
    ) -> Result<(), StationError>;

    /// Why the renewal was aborted by the record's keeper while this station waited for the
    /// card (the centre's timeout); `None` while it can still complete.
    fn renewal_aborted(
        &self,
        st: &Station,
        renewal: &Renewal<'_>,
    ) -> Result<Option<String>, StationError>;

    /// Put document `document` on hold nationally; `None` when the station's own registry is
    /// the record (standalone).
    fn hold(
        &self,
        st: &Station,
        actor: &Actor,
        document: &str,
    ) -> Result<Option<Hold>, StationError>;

    /// Release the hold of `document` (the holder in person).
    fn release(
        &self,
        st: &Station,
        actor: &Actor,
        document: &str,
        identity_confirmed: bool,
    ) -> Result<Option<Hold>, StationError>;

    /// A replacement settled: `new` issued (the old document revoked for `reason` and linked
    /// to it) or, with `None`, rolled back (the hold on the old document released).
    fn replacement_settled(
        &self,
        st: &Station,
        actor: &Actor,
        old: &str,
        reason: &str,
        new: Option<&str>,
    ) -> Result<(), StationError>;

    /// Record an address change nationally (`set`, or the temporary registration ended on
    /// `end_on`); `None` when the station's own registry is the record.
    fn address(
        &self,
        st: &Station,
        actor: &Actor,
        pinfl: &str,
        set: Option<&NewAddress>,
        end_on: Option<&str>,
    ) -> Result<Option<AddressResponse>, StationError>;
}

/// A standalone station: its own e-Signature CA in its HSM, its own registry.
pub struct InStation;

impl ServiceSeam for InStation {
    fn renewal_proof_digests(
        &self,
        _st: &mut Station,
        _actor: &Actor,
        _renewal: &Renewal<'_>,
        _keys: &[(Slot, &[u8])],
    ) -> Result<Option<ProofDigests>, StationError> {
        Ok(None)
    }

    /// New certificates from the station's active e-Signature CA key, one per new key, each
    /// certificate profile's validity capped at the document's expiry (and at the issuing CA
    /// certificate's, which a certificate may not outlive).
    fn renewal_certify(
        &self,
        st: &mut Station,
        _actor: &Actor,
        renewal: &Renewal<'_>,
        keys: &[KeyToCertify<'_>],
    ) -> Result<Vec<CardCertificate>, StationError> {
        let (esign_key, issuer) = crate::hierarchy::active_issuer(st, "esign")?;
        let country = st.document_profile()?.country.clone();
        let h = renewal.holder;
        let subject = ca::holder_subject(&h.pinfl, &h.surname, &h.given_names, &country);
        let now = SystemTime::now();
        let cap = validity_cap(renewal, issuer.not_after(), now)?;
        keys.iter()
            .map(|key| {
                let profile = st.profiles.cert(key.profile)?.with_validity_at_most(cap);
                let cert = ca::issue(
                    st.keys.as_ref(),
                    &profile,
                    &issuer,
                    key.public_key,
                    &subject,
                    now,
                )?;
                Ok(CardCertificate {
                    slot: key.slot,
                    profile: key.profile.to_owned(),
                    der: cert.der,
                    issuer_key_id: esign_key.id,
                })
            })
            .collect()
    }

    fn renewal_complete(
        &self,
        _st: &mut Station,
        _actor: &Actor,
        _renewal: &Renewal<'_>,
    ) -> Result<(), StationError> {
        Ok(())
    }

    fn renewal_abort(
        &self,
        _st: &mut Station,
        _actor: &Actor,
        _renewal: &Renewal<'_>,
        _reason: &str,
    ) -> Result<(), StationError> {
        Ok(())
    }

    /// The station's own renewals wait for their card as long as it takes.
    fn renewal_aborted(
        &self,
        _st: &Station,
        _renewal: &Renewal<'_>,
    ) -> Result<Option<String>, StationError> {
        Ok(None)
    }

    fn hold(
        &self,
        _st: &Station,
        _actor: &Actor,
        _document: &str,
    ) -> Result<Option<Hold>, StationError> {
        Ok(None)
    }

    fn release(
        &self,
        _st: &Station,
        _actor: &Actor,
        _document: &str,
        _identity_confirmed: bool,
    ) -> Result<Option<Hold>, StationError> {
        Ok(None)
    }

    fn replacement_settled(
        &self,
        _st: &Station,
        _actor: &Actor,
        _old: &str,
        _reason: &str,
        _new: Option<&str>,
    ) -> Result<(), StationError> {
        Ok(())
    }

    fn address(
        &self,
        _st: &Station,
        _actor: &Actor,
        _pinfl: &str,
        _set: Option<&NewAddress>,
        _end_on: Option<&str>,
    ) -> Result<Option<AddressResponse>, StationError> {
        Ok(None)
    }
}

/// Whole days a renewal's certificates may be valid: up to the document's expiry and the
/// issuing CA certificate's notAfter, whichever comes first; refused when under a day.
pub fn validity_cap(
    renewal: &Renewal<'_>,
    issuer_not_after: SystemTime,
    now: SystemTime,
) -> Result<u32, StationError> {
    let expiry = crate::holder::parse_date(renewal.date_of_expiry).map_err(|e| {
        StationError::Other(format!(
            "document {}: date_of_expiry: {e}",
            renewal.document
        ))
    })?;
    let days_left = (expiry - crate::time_util::today_utc()).whole_days();
    if days_left < 1 {
        return Err(StationError::Conflict(format!(
            "date_of_expiry: document {} expires on {expiry}: there is nothing to renew",
            renewal.document
        )));
    }
    let issuer_days = issuer_not_after
        .duration_since(now)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0);
    let cap = u32::try_from(days_left.min(i64::try_from(issuer_days).unwrap_or(i64::MAX)))
        .unwrap_or(u32::MAX);
    if cap < 1 {
        return Err(StationError::Conflict(format!(
            "esign CA: its certificate expires within a day; roll the e-Signature CA over \
             before renewing document {}",
            renewal.document
        )));
    }
    Ok(cap)
}
