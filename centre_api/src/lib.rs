//! The wire format between a station and the national centre (`idcentral serve`): the JSON
//! bodies of the HTTPS API, shared by the server (`central`) and its client (`station`), so the
//! two cannot drift apart. docs/centre.md describes the protocol with example messages.
//!
//! Binary values travel as hexadecimal (certificates, public keys and signatures as DER),
//! certificates at enrolment as PEM. Every issuance call names a job by a UUID the station draws
//! before its first call; the centre answers a repeated call of the same step of the same job
//! with the answer it gave the first time (idempotency by station, job and step), so a station
//! may retry any call after a timeout.
#![forbid(unsafe_code)]

pub mod anchors;
mod card_keys;
mod changes;
pub use card_keys::{CardKey, CardKeyRequest};
pub use changes::{CertificatesRenewed, DocumentChange, DocumentChanges, DocumentChangesRequest};

use registry::{NewAddress, NewHolder};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The API's paths.
pub mod paths {
    pub const ENROL: &str = "/v1/enrol";
    pub const WHOAMI: &str = "/v1/whoami";
    pub const STATUS: &str = "/v1/status";
    pub const RESERVE: &str = "/v1/jobs/reserve";
    pub const AUDIT_PUSH: &str = "/v1/audit/push";
    /// `POST`: the events of the station's audit log the centre holds (a restore takes them back).
    pub const AUDIT_EVENTS: &str = "/v1/audit/events";

    /// `GET`: what the centre knows of a job (recovery asks this).
    pub fn job(job: &str) -> String {
        format!("/v1/jobs/{job}")
    }
    pub fn certify(job: &str) -> String {
        format!("/v1/jobs/{job}/certify")
    }
    pub fn complete(job: &str) -> String {
        format!("/v1/jobs/{job}/complete")
    }
    pub fn abort(job: &str) -> String {
        format!("/v1/jobs/{job}/abort")
    }
    /// `POST`: take an issued document out of use.
    pub fn revoke(document: &str) -> String {
        format!("/v1/documents/{document}/revoke")
    }
    /// `POST`: one step of a card service job (`renew`, `certify`, `complete`, `abort`,
    /// `hold`, `release`, `address`), named by the station's job UUID.
    pub fn service(job: &str, step: &str) -> String {
        format!("/v1/services/{job}/{step}")
    }
    /// `GET`: what the centre knows of a card service job (recovery asks this).
    pub fn service_job(job: &str) -> String {
        format!("/v1/services/{job}")
    }
    /// `POST`: a card of any office as the national registry has it ([`crate::CardLookupRequest`]
    /// → [`crate::CardAtCentre`]): a clerk serves a holder whose card another office issued.
    pub const CARD_LOOKUP: &str = "/v1/cards/lookup";
    /// `POST`: a document of any office by its number ([`crate::DocumentLookupRequest`] →
    /// [`crate::CardAtCentre`]): whose it is, for a clerk who looks a number up.
    pub const DOCUMENT_LOOKUP: &str = "/v1/documents/lookup";
    /// `POST`: the e-government outbox as a station's operator may see it
    /// ([`crate::OutboxListRequest`]).
    pub const OUTBOX_LIST: &str = "/v1/outbox/list";
    /// `POST`: the cards of the station's office flagged for replacement
    /// ([`crate::CardsToReplaceRequest`] → [`crate::CardsToReplace`]).
    pub const CARDS_TO_REPLACE: &str = "/v1/cards-to-replace";
    /// The states of this station's documents changed at the centre
    /// ([`crate::DocumentChangesRequest`] → [`crate::DocumentChanges`]).
    pub const DOCUMENT_CHANGES: &str = "/v1/documents/changes";
    /// `POST`: the per-card management key of a card whose key the centre derives
    /// ([`crate::CardKeyRequest`] → [`crate::CardKey`]).
    pub const CARD_KEY: &str = "/v1/cards/key";
    /// `POST`: put the dead letter `id` back in the queue ([`crate::OutboxRetryRequest`]).
    pub fn outbox_retry(id: i64) -> String {
        format!("/v1/outbox/{id}/retry")
    }
}

/// A refusal: HTTP 400, 401, 403, 404 or 409 with this body. `rule` is a stable name
/// (docs/centre.md lists them); `office` names the office concerned where the rule is about
/// another office's card (`holder-has-active-card`, `holder-has-pending-issuance`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub error: String,
    pub rule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office: Option<String>,
}

/// Rules of refusals a station acts on.
pub mod rules {
    /// A request the centre could not read or whose field breaks a rule (HTTP 400).
    pub const INVALID_REQUEST: &str = "invalid-request";
    pub const HOLDER_HAS_ACTIVE_CARD: &str = "holder-has-active-card";
    pub const HOLDER_HAS_PENDING_ISSUANCE: &str = "holder-has-pending-issuance";
    pub const HOLDER_DATA_DIFFERS: &str = "holder-data-differs";
    pub const NO_NUMBERS_LEFT: &str = "no-numbers-left";
    /// The same job UUID with a different request, or a step out of order.
    pub const JOB_CONFLICT: &str = "job-conflict";
    /// A job (issuance or card service) the centre does not know.
    pub const JOB_NOT_FOUND: &str = "job-not-found";
    /// A job that belongs to another station.
    pub const JOB_OF_ANOTHER_STATION: &str = "job-of-another-station";
    pub const PROOF_OF_POSSESSION_FAILED: &str = "proof-of-possession-failed";
    pub const JOB_ABORTED: &str = "job-aborted";
    pub const AUDIT_HEAD_DOES_NOT_EXTEND: &str = "audit-head-does-not-extend";
    pub const STATION_DISABLED: &str = "station-disabled";
    /// A card service named a document the centre has not issued.
    pub const DOCUMENT_NOT_FOUND: &str = "document-not-found";
    /// A station looked up more document numbers in the last hour than the centre's
    /// `[issuance] document_lookups_per_hour` allows (HTTP 429).
    pub const LOOKUP_LIMIT: &str = "lookup-limit";
    /// A card service needs an active document (renewal, hold) or a suspended one (release).
    pub const DOCUMENT_NOT_ACTIVE: &str = "document-not-active";
    pub const DOCUMENT_SUSPENDED: &str = "document-suspended";
    pub const DOCUMENT_NOT_SUSPENDED: &str = "document-not-suspended";
    /// The card the station read is not the document's card.
    pub const CARD_NOT_THE_DOCUMENTS: &str = "card-not-the-documents";
    /// A reservation naming the chip serial of a card a document is already on: an issued
    /// card is locked and never personalized again (409, with the office that issued it).
    pub const CARD_ALREADY_ISSUED: &str = "card-already-issued";
    /// The card's management key is its issuing station's (a card issued before the centre
    /// derived card keys): renewal and PIN unblock are served at that office.
    pub const CARD_KEY_OF_ISSUING_STATION: &str = "card-key-of-issuing-station";
    /// The document expires within a day: nothing to renew.
    pub const DOCUMENT_EXPIRES: &str = "document-expires";
    /// A release after `[issuance] suspension_limit_days`: revoke instead.
    pub const SUSPENSION_LIMIT_EXCEEDED: &str = "suspension-limit-exceeded";
    /// A release without the holder in person.
    pub const IDENTITY_NOT_CONFIRMED: &str = "identity-not-confirmed";
    /// A suspended document held for a replacement in progress.
    pub const DOCUMENT_HELD_FOR_REPLACEMENT: &str = "document-held-for-replacement";
    /// An address change for a PINFL the national registry does not know.
    pub const HOLDER_NOT_FOUND: &str = "holder-not-found";
    /// `address end` with no temporary registration in force.
    pub const NO_TEMPORARY_ADDRESS: &str = "no-temporary-address";
    /// The role the station named for its operator may not do this at the centre (an outbox
    /// list needs ca-admin or auditor, a retry ca-admin).
    pub const OPERATOR_ROLE_NOT_PERMITTED: &str = "operator-role-not-permitted";
    /// An outbox id the centre does not have.
    pub const OUTBOX_MESSAGE_NOT_FOUND: &str = "outbox-message-not-found";
    /// A retry of an outbox message that is not the dead letter (pending or delivered).
    pub const OUTBOX_MESSAGE_NOT_FAILED: &str = "outbox-message-not-failed";
    /// The CA that would issue has no active key: its certificate was revoked in an emergency
    /// (`idcentral ca revoke-ca`) and no new key is approved yet (`ca rotate`).
    pub const NO_ACTIVE_CA_KEY: &str = "no-active-ca-key";
}

/// The station roles a station may name for its operator (`registry::Role`'s names).
pub mod roles {
    pub const CA_ADMIN: &str = "ca-admin";
    pub const AUDITOR: &str = "auditor";
    pub const CLERK: &str = "clerk";
}

// ---------------------------------------------------------------------------------------------
// Enrolment and status

/// `POST /v1/enrol` (no client certificate). The CSRs are PEM (`-----BEGIN CERTIFICATE
/// REQUEST-----`) or DER in hex.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    pub station: String,
    pub enrolment_code: String,
    pub identity_csr: String,
    pub audit_csr: String,
    pub document_signer_csr: String,
}

impl std::fmt::Debug for EnrolRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolRequest")
            .field("station", &self.station)
            .finish_non_exhaustive()
    }
}

/// The CA certificates a station keeps (PEM): the anchors it trusts (National Root CA, CSCA,
/// Station CA) and the e-Signature CA that issues its holders' certificates.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrustAnchors {
    pub root: String,
    pub esign: String,
    pub csca: String,
    pub station_ca: String,
}

/// A block of document numbers of one series assigned to one station: `first..=last`, the
/// next unused one `next` (`last + 1` when exhausted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberBlock {
    pub series: String,
    pub first: u32,
    pub last: u32,
    pub next: u32,
}

impl NumberBlock {
    pub fn left(&self) -> u64 {
        (u64::from(self.last) + 1).saturating_sub(u64::from(self.next))
    }
}

/// The answer to an enrolment: the station's certificates (PEM), the CA certificates, the
/// fingerprint of the centre's TLS certificate and the station's first number block.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrolResponse {
    pub station: String,
    pub office: String,
    pub identity_cert: String,
    pub audit_cert: String,
    pub document_signer_cert: String,
    pub trust_anchors: TrustAnchors,
    pub centre_tls_fingerprint_sha256: String,
    pub number_block: NumberBlock,
}

/// `GET /v1/whoami`: the station the client certificate belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WhoAmI {
    pub station: String,
    pub office: String,
    pub state: String,
}

/// `GET /v1/status`: the station as the centre sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StationStatus {
    pub station: String,
    pub office: String,
    pub state: String,
    /// The identity certificate's notAfter (RFC 3339).
    pub identity_not_after: String,
    /// The station's number blocks, oldest first.
    pub number_blocks: Vec<NumberBlock>,
    /// Numbers left over all blocks.
    pub numbers_left: u64,
    /// Jobs reserved or certified and not yet completed or aborted.
    pub open_jobs: u64,
    /// The last audit checkpoint the centre accepted from the station (0 = none yet).
    pub audit_head_seq: u64,
    /// The serial (lower-case hex) of the newest unrevoked Document Signer the centre certified
    /// for the station: when it is not the one the station signs with, a renewal was
    /// interrupted after the centre's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_signer_serial: Option<String>,
    /// The centre's clock when it answered (RFC 3339, UTC): the station compares its own with
    /// it before it judges by its clock whether its Document Signer is due for renewal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Issuance

/// `POST /v1/jobs/reserve`: step 1. The centre refuses a holder with an active card anywhere
/// in the country (`holder-has-active-card`, naming the office) or with an issuance open at
/// another job (`holder-has-pending-issuance`), and a registered holder whose data differ
/// unless `update_holder` (`holder-data-differs`); otherwise it records the holder (and an
/// address that differs from the latest one) and reserves the next number of the station's
/// blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    /// The job's UUID (RFC 9562 text form), drawn by the station.
    pub job: String,
    /// The station's operator (clerk) who runs the issuance.
    pub operator: String,
    pub holder: NewHolder,
    pub address: NewAddress,
    /// The clerk confirmed a registered holder's changed data.
    pub update_holder: bool,
    /// The chip serial of the card to be personalized (8 hex digits).
    pub card_serial: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveResponse {
    pub job: String,
    /// Series and number, e.g. `AA0000042`.
    pub document: String,
    pub series: String,
    pub number: u32,
    /// 32 random bytes (hex) each card key signs in `certify` ([`proof_digest`]).
    pub challenge: String,
}

/// One key generated on the card, with its proof of possession.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyToCertify {
    /// PIV key reference in hex, e.g. `9A`, `9C`.
    pub slot: String,
    /// The certificate profile the station's card profile names for the slot.
    pub profile: String,
    /// SubjectPublicKeyInfo, DER, hex.
    pub public_key: String,
    /// ECDSA signature (DER, hex) by the card key over [`proof_digest`].
    pub proof: String,
}

/// `POST /v1/jobs/{job}/certify`: step 3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertifyRequest {
    pub operator: String,
    pub keys: Vec<KeyToCertify>,
}

/// A certificate the centre issued for a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCertificate {
    pub slot: String,
    pub profile: String,
    /// Serial number, upper-case hex.
    pub serial: String,
    /// The certificate, DER, hex.
    pub der: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertifyResponse {
    pub job: String,
    pub certificates: Vec<IssuedCertificate>,
    /// The issuing CA's certificate (DER, hex).
    pub issuer: String,
}

/// `POST /v1/jobs/{job}/complete`: step 5, the card is LOCKED with the certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    pub operator: String,
    pub card_serial: String,
    /// `YYYY-MM-DD`.
    pub date_of_issue: String,
    /// `YYYY-MM-DD`.
    pub date_of_expiry: String,
    /// The serial number (hex) of the Document Signer certificate whose key signed the card's
    /// EF.SOD: one the centre certified for this station. Absent from a station older than the
    /// field; the centre then records no Document Signer for the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_signer: Option<String>,
}

impl CompleteRequest {
    /// Whether `refusal` is a centre older than [`CompleteRequest::document_signer`] refusing
    /// the field it does not know (its request bodies refuse unknown fields: 400
    /// `invalid-request`, serde's "unknown field `document_signer`"). The station then completes
    /// without it rather than leave a locked card uncompleted.
    pub fn refused_as_unknown_field(refusal: &Refusal) -> bool {
        refusal.rule == rules::INVALID_REQUEST
            && refusal.error.contains("unknown field `document_signer`")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteResponse {
    pub job: String,
    pub document: String,
    pub state: JobState,
}

/// What happens to an aborted job's document number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NumberOutcome {
    /// Never printed or written anywhere: it may be handed out again.
    Released,
    /// It may exist on a card or a letter: never used again.
    Spoiled,
}

/// `POST /v1/jobs/{job}/abort`: step 5 when the card was not finished. Certificates issued for
/// the job are revoked (cessationOfOperation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortRequest {
    pub operator: String,
    pub reason: String,
    pub number: NumberOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortResponse {
    pub job: String,
    pub state: JobState,
    /// Serials of the certificates revoked by this abort.
    pub revoked: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Reserved,
    Certified,
    Completed,
    Aborted,
}

/// `GET /v1/jobs/{job}`: what the centre knows of one of the station's jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    pub job: String,
    pub state: JobState,
    pub document: String,
    pub certificates: Vec<IssuedCertificate>,
    /// Why it was aborted (by the station, or by the centre after the job timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_reason: Option<String>,
}

/// Domain separation of the proof of possession.
pub const PROOF_DOMAIN: &[u8] = b"idstation proof of possession v1";

/// The digest a card key signs to prove possession for a job (ECDSA P-256 over this SHA-256):
/// `SHA-256(PROOF_DOMAIN ‖ 0x00 ‖ job UUID text ‖ 0x00 ‖ challenge ‖ slot key reference ‖
/// SubjectPublicKeyInfo DER)`. Binding the job, the centre's challenge, the slot and the key
/// means a signature proves nothing for any other job, slot or key.
pub fn proof_digest(job: &str, challenge: &[u8], slot: u8, spki_der: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(PROOF_DOMAIN);
    h.update([0]);
    h.update(job.as_bytes());
    h.update([0]);
    h.update(challenge);
    h.update([slot]);
    h.update(spki_der);
    h.finalize().into()
}

// ---------------------------------------------------------------------------------------------
// Documents

/// `POST /v1/documents/{document}/revoke`: any enrolled station takes an issued document out
/// of use (a holder may go to any office). `reason`: lost, stolen (the document becomes `lost`,
/// its certificates revoked keyCompromise), damaged, deceased (cessationOfOperation), replaced
/// (superseded), data-changed (affiliationChanged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    pub operator: String,
    pub reason: String,
    /// A replacement: the holder's new (active) document that replaces this one; the centre
    /// links old → new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
}

/// The document's state afterwards and its certificates revoked (serials, upper-case hex). A
/// document already out of use answers with its state; `crl_reason` is then empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeResponse {
    pub document: String,
    pub state: String,
    pub revoked: Vec<String>,
    pub crl_reason: String,
}

// ---------------------------------------------------------------------------------------------
// Card services (issue 16): renewal, hold and release, address changes

/// `POST /v1/services/{job}/renew`: open a renewal of an ACTIVE document whose card (chip
/// serial `card_serial`) the station read and matched. Any enrolled station may serve any
/// holder (the registry is national); the centre records which office did. The answer's
/// challenge is signed by each new card key ([`proof_digest`] with the service job's UUID),
/// as at issuance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    pub operator: String,
    pub document: String,
    pub card_serial: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewResponse {
    pub job: String,
    pub document: String,
    /// 32 random bytes (hex) each new card key signs in `certify`.
    pub challenge: String,
    /// The document's expiry (`YYYY-MM-DD`): no certificate of the renewal outlives it.
    pub date_of_expiry: String,
}

/// `POST /v1/services/{job}/complete` (the new certificates are on the card, read back and
/// test-signed: they become active and the document's previous ones are revoked superseded)
/// and `/abort` (the renewal's certificates revoked cessationOfOperation, the old ones stay).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFinishRequest {
    pub operator: String,
    /// Why (abort only; empty on complete).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceFinishResponse {
    pub job: String,
    pub document: String,
    pub state: JobState,
    /// Serials made active (complete).
    pub active: Vec<String>,
    /// Serials revoked: superseded (complete) or the renewal's own (abort).
    pub revoked: Vec<String>,
}

/// `POST /v1/services/{job}/hold` (suspend: certificateHold on the document's active
/// certificates, the document SUSPENDED) and `/release` (resume, the holder in person, within
/// the centre's `[issuance] suspension_limit_days`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    pub operator: String,
    pub document: String,
    /// Release only: the clerk confirmed the holder's identity in person.
    #[serde(default)]
    pub identity_confirmed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldResponse {
    pub document: String,
    /// `suspended` after a hold, `active` after a release.
    pub state: String,
    /// Serials put on hold or released.
    pub certificates: Vec<String>,
    /// When the hold began (RFC 3339 UTC).
    pub suspended_at: String,
    /// The last moment a release is allowed (RFC 3339 UTC).
    pub release_until: String,
}

/// `POST /v1/services/{job}/address`: a registration address recorded in the national
/// registry's history of holder `pinfl` (`set`), or the temporary registration in force ended
/// (`end`, on `ended_on`); either goes to the e-government outbox (topic `address.changed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressRequest {
    pub operator: String,
    pub pinfl: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<NewAddress>,
    /// `YYYY-MM-DD`: end the temporary registration in force on this day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_temporary_on: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressResponse {
    pub pinfl: String,
    /// The registry row of the address recorded (set) or ended (end).
    pub address_id: i64,
    /// The e-government outbox message.
    pub outbox_id: i64,
}

/// `POST /v1/cards/lookup`: the card in a clerk's reader, by its chip serial, with the serials
/// of the certificates read from it (each must be one the centre issued for the card's
/// document; an unknown card and a certificate that is not the document's are both
/// `document-not-found`). Any enrolled station may ask, for its clerk; the read of the holder's
/// data is audited at the centre (`card.looked-up`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardLookupRequest {
    pub operator: String,
    /// The chip serial: 8 hexadecimal digits, as the issuing station recorded it (either case).
    pub card_serial: String,
    /// Serials (hex) of the certificates on the card.
    pub certificates: Vec<String>,
}

/// `POST /v1/documents/lookup`: a document by its number, for a clerk who looks it up (a holder
/// who lost the card has only the number); audited at the centre (`document.looked-up`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentLookupRequest {
    pub operator: String,
    /// The document number (`AA0000042`).
    pub document: String,
}

/// A card (its document) as the national registry has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardAtCentre {
    pub document: String,
    /// `active`, `suspended`, `lost`, `stolen`, `revoked`, ...
    pub state: String,
    /// The office that issued it.
    pub office: String,
    /// `YYYY-MM-DD`.
    pub date_of_issue: String,
    /// `YYYY-MM-DD`.
    pub date_of_expiry: String,
    pub holder: HolderAtCentre,
    /// Every certificate issued for the document (renewals' included), newest first; none in
    /// the answer to a look-up by number.
    pub certificates: Vec<CertificateAtCentre>,
    /// The holder's registration addresses, oldest first; none in the answer to a look-up by
    /// number (a number alone is no proof of having the card).
    pub addresses: Vec<AddressAtCentre>,
    /// When the hold began, if the document is suspended (RFC 3339 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_at: Option<String>,
    /// The last moment the hold may be released (RFC 3339 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_until: Option<String>,
    /// The card is still in use and the centre flagged it for replacement (its chip data can no
    /// longer be authenticated): why and when. Absent from a centre older than the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement_due: Option<ReplacementDue>,
    /// The label of the centre's key the card's management key derives from, when the centre
    /// derives it (`POST /v1/cards/key`): then any office can renew the card's certificates and
    /// unblock its PIN. Absent for a card under its issuing station's own key, and from a centre
    /// older than the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_key: Option<String>,
}

/// Why and since when the centre wants a card replaced (`POST /v1/cards-to-replace` lists them
/// by office).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplacementDue {
    /// The centre's sentence (the revoked Document Signer or the withdrawn CSCA key, and why).
    pub reason: String,
    /// When it was flagged (RFC 3339 UTC).
    pub flagged_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderAtCentre {
    pub pinfl: String,
    pub surname: String,
    pub given_names: String,
    pub patronymic: Option<String>,
    pub surname_cyrillic: Option<String>,
    pub given_names_cyrillic: Option<String>,
    pub patronymic_cyrillic: Option<String>,
    /// `YYYY-MM-DD`.
    pub date_of_birth: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateAtCentre {
    /// `9A`, `9C`.
    pub slot: String,
    /// Hex, upper case.
    pub serial: String,
    /// `issued`, `active`, `revoked`.
    pub state: String,
    /// The revocation reason (RFC 5280 name), if revoked.
    pub reason: Option<String>,
    /// RFC 3339 UTC.
    pub not_after: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressAtCentre {
    /// The national registry's row (what `end_temporary_on` ends).
    pub address_id: i64,
    #[serde(flatten)]
    pub address: NewAddress,
    /// `YYYY-MM-DD`, when a temporary registration was ended.
    pub ended_on: Option<String>,
    /// RFC 3339 UTC.
    pub recorded_at: String,
    /// The station and operator that recorded it.
    pub recorded_by: String,
}

/// `GET /v1/services/{job}`: a card service job as the centre has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceJobStatus {
    pub job: String,
    /// `renew`, `hold`, `release`, `address`.
    pub kind: String,
    pub state: JobState,
    pub document: Option<String>,
    pub certificates: Vec<IssuedCertificate>,
    /// Why an aborted job was aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_reason: Option<String>,
    /// Aborted by the centre because it stayed open too long (`[issuance]
    /// renewal_timeout_seconds`), not by its station.
    #[serde(default)]
    pub timed_out: bool,
}

// ---------------------------------------------------------------------------------------------
// The e-government outbox (docs/egov.md "The station's view")

/// `POST /v1/outbox/list`: the centre's e-government outbox, every message or only the dead
/// letters (`failed_only`): the newest `limit` of them (1..=1000; absent: 1000), oldest first. `operator` and `role` are the station's operator as
/// the station logged them in; the centre answers a role of ca-admin or auditor only
/// (`operator-role-not-permitted`) and audits the read (`outbox.read`, the station and the
/// operator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxListRequest {
    pub operator: String,
    /// The operator's role at the station (`ca-admin`, `auditor`, `clerk`).
    pub role: String,
    #[serde(default)]
    pub failed_only: bool,
    /// At most this many messages, the newest (1..=[`OUTBOX_LIST_MAX`]; absent: the most).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// The most messages one outbox list answers.
pub const OUTBOX_LIST_MAX: u32 = 1000;

/// Why `limit` is no outbox list's limit (1..=[`OUTBOX_LIST_MAX`]), if it is not: the rule
/// the station checks before it asks and the centre when it answers.
pub fn outbox_limit_rule(limit: u32) -> Option<String> {
    (limit == 0 || limit > OUTBOX_LIST_MAX)
        .then(|| format!("{limit} must be from 1 to {OUTBOX_LIST_MAX}"))
}

/// `POST /v1/cards-to-replace`: the cards of the station's office still in use that the centre
/// flagged for replacement (their EF.SOD can no longer be authenticated), for the station's
/// logged-in operator (any role; the read is audited at the centre and the station).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardsToReplaceRequest {
    pub operator: String,
    /// The operator's role at the station (`ca-admin`, `auditor`, `clerk`).
    pub role: String,
    /// Only this document of the office (`AA0000042`): whether it is flagged, for a replacement
    /// the centre recalled (`replace --reason recalled`). Absent: every flagged card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
}

impl CardsToReplaceRequest {
    /// Whether `refusal` is a centre older than [`CardsToReplaceRequest::document`] refusing
    /// the field it does not know (400 `invalid-request`, serde's "unknown field `document`").
    pub fn refused_as_unknown_field(refusal: &Refusal) -> bool {
        refusal.rule == rules::INVALID_REQUEST && refusal.error.contains("unknown field `document`")
    }
}

/// The answer to [`CardsToReplaceRequest`], oldest flag first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardsToReplace {
    pub office: String,
    pub cards: Vec<CardToReplace>,
}

/// One card to replace, as the national registry has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardToReplace {
    /// Series and number (`AA0000042`).
    pub document: String,
    /// `active` or `suspended`.
    pub state: String,
    pub pinfl: String,
    pub surname: String,
    pub given_names: String,
    /// The station that issued it, and its office.
    pub station: String,
    pub office: String,
    /// `YYYY-MM-DD`.
    pub date_of_issue: String,
    /// Why it must be replaced.
    pub reason: String,
    /// When it was flagged (RFC 3339 UTC).
    pub flagged_at: String,
}

impl CardToReplace {
    /// One line of a text listing.
    pub fn line(&self) -> String {
        format!(
            "{} {:<9} PINFL {} {} {} — {} {}, issued {}; flagged {}: {}\n",
            self.document,
            self.state,
            self.pinfl,
            self.surname,
            self.given_names,
            self.office,
            self.station,
            self.date_of_issue,
            self.flagged_at,
            self.reason
        )
    }
}

/// `POST /v1/outbox/{id}/retry`: a `failed` message becomes `pending` again, no attempts
/// counted, due now (audited `outbox.retried`). The role must be ca-admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxRetryRequest {
    pub operator: String,
    pub role: String,
}

/// The delivery state of an outbox message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxStatus {
    /// Waiting for its next attempt (`next_attempt_at`).
    Pending,
    /// The receiver has it (`delivered_at`, `receipt`).
    Delivered,
    /// The dead letter: it failed `max_attempts` times; only a retry sends it again.
    Failed,
}

impl OutboxStatus {
    /// The state's name on the wire (`pending`, `delivered`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Failed => "failed",
        }
    }
}

/// One message of the outbox as a station sees it: no personal data but the document number.
/// Times are RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxMessage {
    pub id: i64,
    /// `document.issued`, `address.changed`.
    pub topic: String,
    pub document: Option<String>,
    pub status: OutboxStatus,
    /// Failed attempts since it was queued (or last retried).
    pub attempts: u32,
    pub created_at: String,
    /// Pending: when it is tried next.
    pub next_attempt_at: Option<String>,
    pub last_attempt_at: Option<String>,
    /// Why the last attempt failed (`HTTP 500: …`, `no answer within 10 s`, …).
    pub last_error: Option<String>,
    /// Failed: when its last attempt, the one that made it the dead letter, began.
    pub dead_since: Option<String>,
    pub delivered_at: Option<String>,
    /// The receiver's HTTP status at the last attempt that got an answer.
    pub receipt_status: Option<i32>,
    /// Delivered: the receiver's receipt (its JSON object, naming the message).
    pub receipt: Option<serde_json::Value>,
}

impl OutboxMessage {
    /// The message as `idcentral outbox list` and `idstation outbox list` print it: id, topic,
    /// document, state, attempts, and when it was delivered, is next due or was last tried,
    /// with the last error of one not delivered.
    pub fn line(&self) -> String {
        let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let when = match self.status {
            OutboxStatus::Delivered => format!("delivered {}", or_dash(&self.delivered_at)),
            OutboxStatus::Pending => format!("next {}", or_dash(&self.next_attempt_at)),
            OutboxStatus::Failed => format!("last {}", or_dash(&self.last_attempt_at)),
        };
        let error = match (&self.last_error, self.status) {
            (Some(e), OutboxStatus::Pending | OutboxStatus::Failed) => format!(" ({e})"),
            _ => String::new(),
        };
        format!(
            "{:>6} {:<16} {:<10} {:<9} attempts {:<3} {when}{error}\n",
            self.id,
            self.topic,
            self.document.as_deref().unwrap_or("-"),
            self.status.as_str(),
            self.attempts
        )
    }
}

/// The answer to [`OutboxListRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxList {
    pub messages: Vec<OutboxMessage>,
    /// Older messages of the filter were left out by the limit.
    #[serde(default)]
    pub more: bool,
}

// ---------------------------------------------------------------------------------------------
// Audit anchoring

/// One event of a station's audit log (registry::audit's fields; hashes in hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEventWire {
    pub seq: u64,
    pub time: String,
    pub operator: String,
    pub role: String,
    pub station: String,
    pub action: String,
    pub object: String,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

/// A signed checkpoint (registry::audit::Checkpoint; hash and signature in hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointWire {
    pub seq: u64,
    pub hash: String,
    pub time: String,
    pub signature: String,
}

/// `POST /v1/audit/push`: the station's events after the last head the centre accepted, up to
/// and including `checkpoint.seq`, and the checkpoint signed by the station's audit key. The
/// centre refuses (`audit-head-does-not-extend`) events that do not chain from its head, a
/// checkpoint whose hash is not the last event's, and a signature that does not verify with
/// the station's audit certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditPush {
    pub events: Vec<AuditEventWire>,
    pub checkpoint: CheckpointWire,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    pub station: String,
    pub seq: u64,
    pub hash: String,
}

/// `POST /v1/audit/events`: the events of the calling station's audit log that the centre holds
/// after sequence number `after`, oldest first, at most `limit` (1..1000, default 500) — what a
/// station restored from a backup takes back (docs/station.md "Backup and restore").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEventsRequest {
    /// The station's operator who asks (audited at the centre).
    pub operator: String,
    pub after: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// The answer to [`AuditEventsRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvents {
    /// The hash (hex) of event `after` as the centre holds it, when it holds that event: the
    /// station compares it with its own before it takes anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_hash: Option<String>,
    pub events: Vec<AuditEventWire>,
    /// More events follow the last of `events`.
    pub more: bool,
    /// The head the centre holds: the last checkpoint it accepted (none before the first push).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<CheckpointWire>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A centre older than `CardsToReplaceRequest::document` reads the request into the shape
    /// without it; without the field the older shape reads it.
    #[test]
    fn an_older_centres_refusal_of_the_document_filter_is_recognised() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct OlderCardsToReplaceRequest {
            operator: String,
            role: String,
        }
        let request = CardsToReplaceRequest {
            operator: "clerk1".into(),
            role: "clerk".into(),
            document: Some("AA0000012".into()),
        };
        let body = serde_json::to_vec(&request).unwrap();
        let e = serde_json::from_slice::<OlderCardsToReplaceRequest>(&body).unwrap_err();
        let refusal = Refusal {
            error: format!("body: {e}"),
            rule: rules::INVALID_REQUEST.into(),
            office: None,
        };
        assert!(CardsToReplaceRequest::refused_as_unknown_field(&refusal));
        assert!(!CompleteRequest::refused_as_unknown_field(&refusal));
        let all = CardsToReplaceRequest {
            document: None,
            ..request
        };
        serde_json::from_slice::<OlderCardsToReplaceRequest>(&serde_json::to_vec(&all).unwrap())
            .unwrap();
    }

    /// A centre older than `document_signer` read a completion into this shape and answered
    /// serde's error as `invalid-request` (`central::server`: "body: …").
    #[test]
    fn an_older_centres_refusal_of_document_signer_is_recognised() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct OlderCompleteRequest {
            operator: String,
            card_serial: String,
            date_of_issue: String,
            date_of_expiry: String,
        }
        let request = CompleteRequest {
            operator: "clerk1".into(),
            card_serial: "0A1B2C3D".into(),
            date_of_issue: "2026-12-02".into(),
            date_of_expiry: "2036-12-01".into(),
            document_signer: Some("5f3e".into()),
        };
        let body = serde_json::to_vec(&request).unwrap();
        let e = serde_json::from_slice::<OlderCompleteRequest>(&body).unwrap_err();
        let refusal = Refusal {
            error: format!("body: {e}"),
            rule: rules::INVALID_REQUEST.into(),
            office: None,
        };
        assert!(
            CompleteRequest::refused_as_unknown_field(&refusal),
            "{refusal:?}"
        );
        let other = Refusal {
            error: "date_of_issue: must be a calendar date".into(),
            ..refusal
        };
        assert!(!CompleteRequest::refused_as_unknown_field(&other));
        // Without the field, the older shape reads the request.
        let older = CompleteRequest {
            document_signer: None,
            ..request
        };
        serde_json::from_slice::<OlderCompleteRequest>(&serde_json::to_vec(&older).unwrap())
            .unwrap();
    }

    #[test]
    fn the_proof_digest_binds_job_challenge_slot_and_key() {
        let base = proof_digest("j", &[1; 32], 0x9a, b"k");
        assert_ne!(base, proof_digest("k", &[1; 32], 0x9a, b"k"));
        assert_ne!(base, proof_digest("j", &[2; 32], 0x9a, b"k"));
        assert_ne!(base, proof_digest("j", &[1; 32], 0x9c, b"k"));
        assert_ne!(base, proof_digest("j", &[1; 32], 0x9a, b"l"));
        assert_eq!(base, proof_digest("j", &[1; 32], 0x9a, b"k"));
    }

    #[test]
    fn a_number_block_counts_what_is_left() {
        let b = NumberBlock {
            series: "AA".into(),
            first: 1,
            last: 10,
            next: 11,
        };
        assert_eq!(b.left(), 0);
        assert_eq!(NumberBlock { next: 1, ..b }.left(), 10);
    }

    #[test]
    fn an_outbox_line_says_when_and_what_failed_of_a_message_not_delivered() {
        let m = OutboxMessage {
            id: 7,
            topic: "document.issued".into(),
            document: Some("AA0000001".into()),
            status: OutboxStatus::Failed,
            attempts: 2,
            created_at: "2026-12-02T12:00:00Z".into(),
            next_attempt_at: None,
            last_attempt_at: Some("2026-12-02T12:17:02Z".into()),
            last_error: Some("HTTP 500: busy".into()),
            dead_since: Some("2026-12-02T12:17:02Z".into()),
            delivered_at: None,
            receipt_status: Some(500),
            receipt: None,
        };
        let line = m.line();
        for part in [
            "7 document.issued",
            "AA0000001",
            "failed",
            "attempts 2",
            "last 2026-12-02T12:17:02Z (HTTP 500: busy)",
        ] {
            assert!(line.contains(part), "{part:?} in {line:?}");
        }
        let delivered = OutboxMessage {
            status: OutboxStatus::Delivered,
            delivered_at: Some("2026-12-02T12:30:00Z".into()),
            ..m
        };
        let line = delivered.line();
        assert!(
            line.contains("delivered 2026-12-02T12:30:00Z") && !line.contains("HTTP 500"),
            "{line}"
        );
        let json = serde_json::to_value(&delivered).unwrap();
        assert_eq!(json["status"], "delivered");
    }

    #[test]
    fn a_refusal_without_an_office_parses_and_unknown_request_fields_are_refused() {
        let r = serde_json::from_str::<Refusal>(r#"{"error":"e","rule":"r"}"#).unwrap();
        assert_eq!(r.office, None);
        let e = serde_json::from_str::<CompleteRequest>(
            r#"{"operator":"o","card_serial":"1","date_of_issue":"d","date_of_expiry":"d","x":1}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `x`"), "{e}");
    }
}
