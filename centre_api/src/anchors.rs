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

/// `GET /v1/anchors`: the active National Root (PEM, for information: a station checks each
/// Station CA certificate against the root it already trusts, never against this one), every
/// usable Station CA key, and the label of the one the centre's TLS server certificate is
/// under.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Anchors {
    pub root: String,
    pub station_cas: Vec<StationCaAnchor>,
    pub server_issuer: String,
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
