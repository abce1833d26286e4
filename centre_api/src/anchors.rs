//! The Station CA rollover seen from a station (docs/centre.md "Station CA rollover"): the
//! anchors the centre holds now (`GET /v1/anchors`) and the renewal of the station's identity
//! certificate under the active Station CA key (`POST /v1/identity/renew`), both over the
//! station's existing mutual-TLS connection.

use serde::{Deserialize, Serialize};

/// `GET`: [`Anchors`].
pub const ANCHORS_PATH: &str = "/v1/anchors";
/// `POST` an [`IdentityRenewRequest`]: [`IdentityRenewResponse`].
pub const IDENTITY_RENEW_PATH: &str = "/v1/identity/renew";

/// One Station CA key the centre accepts identities under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationCaAnchor {
    /// `station-ca-N`.
    pub label: String,
    /// `active` (issues new identities) or `retired` (still accepted until it expires).
    pub state: String,
    /// The certificate, PEM (issued by the National Root).
    pub cert: String,
}

/// A link certificate between two National Root keys (RFC 4210 §4.4.1): `new-with-old` certifies
/// the newer key (`certified`) under the older one (`signer`), `old-with-new` the reverse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootLink {
    pub certified: String,
    pub signer: String,
    pub kind: String,
    /// The link certificate, PEM.
    pub cert: String,
}

/// `GET /v1/anchors`: the active National Root (PEM, for information: a station checks each
/// certificate against the roots it already trusts, never against this one), every usable
/// Station CA key, the label of the one the centre's TLS server certificate is under, every
/// unexpired National Root key (self-signed, PEM, `label`/`state` as for the Station CA) and
/// the link certificates between them. A station accepts a new root only through a
/// `new-with-old` link signed by a root it trusts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Anchors {
    pub root: String,
    pub station_cas: Vec<StationCaAnchor>,
    pub server_issuer: String,
    #[serde(default)]
    pub roots: Vec<StationCaAnchor>,
    #[serde(default)]
    pub root_links: Vec<RootLink>,
    /// SHA-256 fingerprints (`AB:CD:…`, of the DER certificate) of the CSCA keys the centre
    /// withdrew from its CSCA Master List (`idcentral ca withdraw-csca`): a station stops
    /// trusting them for passive authentication.
    #[serde(default)]
    pub withdrawn_cscas: Vec<String>,
}

/// `POST /v1/identity/renew`: a PKCS#10 request (PEM or hex DER) for the station's identity key,
/// signed by that key; the operator who asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityRenewRequest {
    pub operator: String,
    pub identity_csr: String,
}

/// The new identity certificate (PEM) and the Station CA key that issued it. The certificate
/// the request came with stays accepted until it expires or the next renewal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentityRenewResponse {
    pub station: String,
    pub identity_cert: String,
    pub issuer: String,
    pub previous_serial: String,
}

/// `POST` a [`DocumentSignerRenewRequest`]: [`DocumentSignerRenewResponse`].
pub const DOCUMENT_SIGNER_RENEW_PATH: &str = "/v1/document-signer/renew";

/// `POST /v1/document-signer/renew`: a PKCS#10 request (PEM or hex DER) for a new Document
/// Signer key in the station's HSM, signed by that key; the operator who asked. Idempotent by
/// key: asking again for a key the centre already certified for this station gets the same
/// certificate (a retry after a lost answer).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentSignerRenewRequest {
    pub operator: String,
    pub document_signer_csr: String,
}

/// The Document Signer certificate (PEM) from the CSCA key `csca` (its certificate, PEM, in
/// `csca_cert`), every `new-with-old` link certificate between the centre's CSCA keys (so a
/// station that knows an older CSCA can check a newer one: ICAO Doc 9303-12's CSCA Link
/// certificates) and whether it was issued now (`false`: the key had been certified before,
/// the same certificate is returned).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocumentSignerRenewResponse {
    pub station: String,
    pub document_signer_cert: String,
    pub csca: String,
    pub csca_cert: String,
    pub csca_links: Vec<RootLink>,
    pub issued_now: bool,
}
