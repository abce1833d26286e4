//! OCSP (RFC 6960) as profiled for high volume by RFC 5019: one delegated responder per issuing
//! CA key (profile `ocsp-responder`: EKU OCSPSigning, id-pkix-ocsp-nocheck, 30 days, issued
//! again for a new key when a third of that is left: [`super::responder_keys`]), its key in the
//! centre's HSM; responses signed ahead of time ([`super::worker`]) with a SHA-1 CertID (RFC 5019
//! §2.2.1) and served as stored.
//!
//! A request (RFC 5019 §2.1.1: exactly one certificate) for
//! - a certificate the centre issued: its stored response (`good`, or `revoked` with time and
//!   reason); a request hashed with SHA-256 gets the same status signed for its CertID;
//! - a serial of a CA key the centre has but never issued: `unknown`, signed when asked. Not the
//!   "extended revoked" answer of RFC 6960 §2.2: a client that treats `unknown` as a failure
//!   (as RFC 6960 §2.2 expects of a client that cannot get status) refuses the certificate
//!   anyway, and `unknown` does not claim a revocation the CA never made. Never `good`.
//! - a CA key that is not the centre's: `unauthorized` (RFC 5019 §2.2.3);
//! - anything that is not one DER OCSPRequest: `malformedRequest` (RFC 6960 §2.3).
//!
//! A stored response is served from memory when [`ocsp_cache`] has it (no database round trip),
//! else read from the database (and kept in memory).
//!
//! Requests' nonces are not echoed (RFC 5019 §2.2.1: a pre-signed response cannot).

use crate::db::Prepared;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::response::Response;
use hsm::KeyStore;
use x509_cert_02::der::asn1::{BitString, OctetString};
use x509_cert_02::der::{Decode, Encode};
use x509_cert_02::ext::pkix::CrlReason;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    OcspResponseStatus, ResponderId, ResponseData, RevokedInfo, SingleResponse, Version,
};

use super::asn1::{self, enc};
use super::{ocsp_cache, Public};
use crate::error::{CentralError, Result};

/// The responder certificate's profile.
pub const PROFILE: &str = "ocsp-responder";

/// The issuing CA key as a CertID names it (RFC 6960 §4.1.1): hashes of its name and key.
#[derive(Debug, Clone)]
struct IssuerHashes {
    name_sha1: Vec<u8>,
    key_sha1: Vec<u8>,
    name_sha256: Vec<u8>,
    key_sha256: Vec<u8>,
}

impl IssuerHashes {
    fn of(issuer: &ca::Issuer) -> Result<Self> {
        use der::Encode as _;
        use sha2::Digest;
        let tbs = issuer.certificate().tbs_certificate();
        let name = tbs
            .subject()
            .to_der()
            .map_err(|e| CentralError::Other(format!("issuer name: {e}")))?;
        let key = tbs.subject_public_key_info().subject_public_key.raw_bytes();
        Ok(IssuerHashes {
            name_sha1: sha1::Sha1::digest(&name).to_vec(),
            key_sha1: sha1::Sha1::digest(key).to_vec(),
            name_sha256: sha2::Sha256::digest(&name).to_vec(),
            key_sha256: sha2::Sha256::digest(key).to_vec(),
        })
    }

    fn matches(&self, id: &CertId) -> bool {
        let (n, k) = (
            id.issuer_name_hash.as_bytes(),
            id.issuer_key_hash.as_bytes(),
        );
        match id.hash_algorithm.oid {
            asn1::SHA1 => n == self.name_sha1 && k == self.key_sha1,
            asn1::SHA256 => n == self.name_sha256 && k == self.key_sha256,
            _ => false,
        }
    }

    /// The SHA-1 CertID of `serial` (what responses are signed ahead of time for).
    fn cert_id_sha1(&self, serial: &[u8]) -> Result<CertId> {
        use x509_cert_02::der::asn1::Null;
        Ok(CertId {
            hash_algorithm: x509_cert_02::spki::AlgorithmIdentifierOwned {
                oid: asn1::SHA1,
                parameters: Some(Null.into()),
            },
            issuer_name_hash: OctetString::new(self.name_sha1.clone()).map_err(enc("CertID"))?,
            issuer_key_hash: OctetString::new(self.key_sha1.clone()).map_err(enc("CertID"))?,
            serial_number: x509_cert_02::serial_number::SerialNumber::new(serial)
                .map_err(enc("CertID serial"))?,
        })
    }
}

/// One CA key's delegated responder.
pub struct Responder {
    pub ca_key: String,
    pub key_label: String,
    pub cert_der: Vec<u8>,
    pub not_after: SystemTime,
    cert: x509_cert_02::Certificate,
    /// ResponderID byKey: SHA-1 of the responder's public key (RFC 6960 §4.2.1).
    key_hash: Vec<u8>,
    issuer: IssuerHashes,
}

impl Responder {
    pub(super) fn new(issuer: &ca::Issuer, key_label: String, cert_der: Vec<u8>) -> Result<Self> {
        use sha2::Digest;
        let cert = asn1::cert02(&cert_der)?;
        let key_hash = sha1::Sha1::digest(
            cert.tbs_certificate
                .subject_public_key_info
                .subject_public_key
                .raw_bytes(),
        )
        .to_vec();
        let not_after = cert.tbs_certificate.validity.not_after.to_system_time();
        Ok(Responder {
            ca_key: issuer.key_label().to_owned(),
            key_label,
            cert_der,
            not_after,
            cert,
            key_hash,
            issuer: IssuerHashes::of(issuer)?,
        })
    }
}

/// The status of one certificate as the registry has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Good,
    Revoked {
        at: SystemTime,
        reason: Option<String>,
    },
    Unknown,
}

/// Sign one response (RFC 6960 §4.2.1) for `cert_id` in `status`, valid from now for
/// `validity`. Returns (DER OCSPResponse, thisUpdate, nextUpdate).
pub fn sign(
    store: &dyn KeyStore,
    responder: &Responder,
    cert_id: CertId,
    status: &Status,
    validity: Duration,
) -> Result<(Vec<u8>, SystemTime, SystemTime)> {
    let now = SystemTime::now();
    let this_update = SystemTime::UNIX_EPOCH
        + Duration::from_secs(
            now.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
        );
    let next_update = (this_update + validity).min(responder.not_after);
    let time = |t| asn1::generalized(t).map(OcspGeneralizedTime);
    let cert_status = match status {
        Status::Good => CertStatus::good(),
        Status::Unknown => CertStatus::unknown(),
        Status::Revoked { at, reason } => CertStatus::revoked(RevokedInfo {
            revocation_time: time(*at)?,
            revocation_reason: reason.as_deref().and_then(crl_reason),
        }),
    };
    let tbs = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(
            OctetString::new(responder.key_hash.clone()).map_err(enc("ResponderID"))?,
        ),
        produced_at: time(this_update)?,
        responses: vec![SingleResponse {
            cert_id,
            cert_status,
            this_update: time(this_update)?,
            next_update: Some(time(next_update)?),
            single_extensions: None,
        }],
        response_extensions: None,
    };
    let tbs_der = tbs.to_der().map_err(enc("ResponseData"))?;
    let signature = store.sign_p256_sha256(&responder.key_label, &tbs_der)?;
    let basic = BasicOcspResponse {
        tbs_response_data: tbs,
        signature_algorithm: asn1::ecdsa_with_sha256(),
        signature: BitString::from_bytes(&signature).map_err(enc("signature"))?,
        certs: Some(vec![responder.cert.clone()]),
    };
    let der = OcspResponse::successful(basic)
        .and_then(|r| r.to_der())
        .map_err(enc("OCSPResponse"))?;
    Ok((der, this_update, next_update))
}

/// The RFC 5280 §5.3.1 reason name as the CRLReason of a RevokedInfo.
fn crl_reason(name: &str) -> Option<CrlReason> {
    Some(match name {
        "keyCompromise" => CrlReason::KeyCompromise,
        "cACompromise" => CrlReason::CaCompromise,
        "affiliationChanged" => CrlReason::AffiliationChanged,
        "superseded" => CrlReason::Superseded,
        "cessationOfOperation" => CrlReason::CessationOfOperation,
        "certificateHold" => CrlReason::CertificateHold,
        "privilegeWithdrawn" => CrlReason::PrivilegeWithdrawn,
        "aACompromise" => CrlReason::AaCompromise,
        _ => return None,
    })
}

/// Sign the stored (SHA-1 CertID, RFC 5019 §2.2.1) response of the certificate `serial` of the
/// responder's CA key in `status`; what the worker runs for each queued certificate.
pub fn sign_stored(
    store: &dyn KeyStore,
    responder: &Responder,
    serial: &[u8],
    status: &Status,
    validity: Duration,
) -> Result<(Vec<u8>, SystemTime, SystemTime)> {
    let id = responder.issuer.cert_id_sha1(serial)?;
    sign(store, responder, id, status, validity)
}

/// An OCSPResponse with only an error status (RFC 6960 §4.2.1), DER.
fn error_response(status: OcspResponseStatus) -> Vec<u8> {
    OcspResponse {
        response_status: status,
        response_bytes: None,
    }
    .to_der()
    .unwrap_or_default()
}

pub fn malformed() -> Response {
    super::signed_object(
        "application/ocsp-response",
        error_response(OcspResponseStatus::MalformedRequest),
        None,
    )
}

fn unauthorized() -> Response {
    super::signed_object(
        "application/ocsp-response",
        error_response(OcspResponseStatus::Unauthorized),
        None,
    )
}

fn internal_error() -> Response {
    super::signed_object(
        "application/ocsp-response",
        error_response(OcspResponseStatus::InternalError),
        None,
    )
}

fn try_later() -> Response {
    super::signed_object(
        "application/ocsp-response",
        error_response(OcspResponseStatus::TryLater),
        None,
    )
}

/// A serial as the registry stores it: the INTEGER's unsigned big-endian bytes, without the
/// leading zero a DER INTEGER adds before a high bit.
fn serial_bytes(id: &CertId) -> Vec<u8> {
    let b = id.serial_number.as_bytes();
    let start = b
        .iter()
        .position(|&x| x != 0)
        .unwrap_or(b.len().saturating_sub(1));
    b[start..].to_vec()
}

/// A response signed ahead of time, as stored.
fn stored_answer(e: ocsp_cache::Entry) -> Response {
    super::signed_object(
        "application/ocsp-response",
        e.der,
        Some((e.produced_at, e.next_update)),
    )
}

/// Answer one DER OCSPRequest (see the module documentation).
pub async fn answer(public: &Arc<Public>, der: &[u8]) -> Response {
    let request = match OcspRequest::from_der(der) {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(error = %e, "OCSP request that is not DER OCSPRequest: malformedRequest");
            return malformed();
        }
    };
    let list = &request.tbs_request.request_list;
    if list.len() != 1 {
        tracing::info!(
            count = list.len(),
            "OCSP request for other than one certificate (RFC 5019 §2.1.1): malformedRequest"
        );
        return malformed();
    }
    let id = list[0].req_cert.clone();
    let Some(responder) = public
        .responders()
        .into_iter()
        .find(|r| r.issuer.matches(&id))
    else {
        tracing::info!(hash = %id.hash_algorithm.oid, "OCSP request for a CA the centre does not run: unauthorized");
        return unauthorized();
    };
    match status_answer(public, &responder, id).await {
        Ok(r) => r,
        Err(CentralError::Database(e)) => {
            tracing::error!(error = %e, "OCSP: the database cannot be reached: tryLater");
            try_later()
        }
        // An OCSPResponse a client can read (RFC 6960 §4.2.1 internalError), the error logged.
        Err(e) => {
            tracing::error!(error = %e, "OCSP: the answer could not be made: internalError");
            internal_error()
        }
    }
}

async fn status_answer(
    public: &Arc<Public>,
    responder: &Arc<Responder>,
    id: CertId,
) -> Result<Response> {
    let serial = serial_bytes(&id);
    let sha1 = id.hash_algorithm.oid == asn1::SHA1;
    let cache = &public.ocsp_cache;
    if let Some(e) = sha1
        .then(|| cache.get(&responder.ca_key, &serial, SystemTime::now()))
        .flatten()
    {
        return Ok(stored_answer(e));
    }
    let ticket = cache.ticket();
    let client = public.centre.pool.get().await?;
    // Stored responses answer SHA-1 CertIDs only: a SHA-256 one skips the look-up. A statement
    // prepared once per pooled connection: the hot path is then one round trip.
    let stored = if sha1 {
        let stored_q = client
            .prepare_cached(
                "SELECT response_der, produced_at, next_update FROM ocsp_responses
                 WHERE issuer_key = $1 AND serial = $2 AND next_update > now()",
            )
            .await?;
        client
            .query_opt(&stored_q, &[&responder.ca_key, &serial])
            .await?
    } else {
        None
    };
    if let Some(row) = stored {
        let e = ocsp_cache::Entry {
            der: row.get(0),
            produced_at: row.get(1),
            next_update: row.get(2),
        };
        cache.fill(ticket, &responder.ca_key, &serial, e.clone());
        return Ok(stored_answer(e));
    }
    // Not stored for this CertID (SHA-256, not yet signed, or a serial never issued): the status
    // from the registry, signed now.
    let row = client
        .prepared_opt(
            "SELECT state, revoked_at, revocation_reason FROM issued_status
             WHERE issuer_key = $1 AND serial = $2",
            &[&responder.ca_key, &serial],
        )
        .await?;
    let status = match row {
        None => Status::Unknown,
        Some(r) if r.get::<_, &str>(0) == "revoked" => Status::Revoked {
            at: r
                .get::<_, Option<SystemTime>>(1)
                .unwrap_or(SystemTime::UNIX_EPOCH),
            reason: r.get(2),
        },
        Some(_) => Status::Good,
    };
    if status == Status::Unknown {
        tracing::info!(ca_key = %responder.ca_key, serial = %hex::encode_upper(&serial), "OCSP request for a serial the CA key never issued: unknown");
    }
    let (store, r, validity) = (
        Arc::clone(&public.centre.store),
        Arc::clone(responder),
        public.ocsp_validity,
    );
    let (der, this_update, next_update) =
        tokio::task::spawn_blocking(move || sign(store.as_ref(), &r, id, &status, validity))
            .await
            .map_err(|e| CentralError::Other(format!("OCSP signing task: {e}")))??;
    Ok(super::signed_object(
        "application/ocsp-response",
        der,
        Some((this_update, next_update)),
    ))
}
