//! `POST /v1/documents/changes` (docs/centre.md "What other offices changed"): what changed at
//! the centre about a station's documents — their state and their certificates' renewals.

use serde::{Deserialize, Serialize};

use crate::IssuedCertificate;

/// `POST /v1/documents/changes`: the documents this station issued whose state changed at the
/// centre after `since` (RFC 3339; absent: every one ever changed), for the station to bring its
/// registry up to date with what other offices did (a suspension, a declared loss). A clerk or
/// ca-admin of the station; audited at the centre (`documents.changes-read`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentChangesRequest {
    pub operator: String,
    /// The operator's role at the station (`clerk`, `ca-admin`).
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// At most this many changes per answer (1..=1000; absent: 1000). A page holds every
    /// change of its last change's time, so it can hold a few more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// The answer to [`DocumentChangesRequest`], oldest change first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentChanges {
    /// The centre's time of the answer (RFC 3339 UTC): the next request's `since` (less a
    /// margin: a change committed meanwhile may carry an earlier time).
    pub until: String,
    pub documents: Vec<DocumentChange>,
    /// The list was cut at its page size: ask again from `until` (exactly) for the rest.
    #[serde(default)]
    pub more: bool,
}

/// A document's state at the centre and its last change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentChange {
    /// Series and number (`AA0000042`).
    pub document: String,
    /// `active`, `suspended`, `lost`, `revoked`, ...
    pub state: String,
    /// Why (`suspended`, `resumed`, or a revocation reason: `lost`, `stolen`, `damaged`, …).
    pub reason: Option<String>,
    /// RFC 3339 UTC.
    pub changed_at: String,
    /// The station and operator (`sam01-st1/clerk2`).
    pub changed_by: Option<String>,
    /// A suspended document: the last moment the hold may be released (RFC 3339 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_until: Option<String>,
    /// The document's certificates were renewed (its latest renewal, at any office).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewed: Option<CertificatesRenewed>,
}

/// The latest renewal of a document's certificates, in a [`DocumentChange`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificatesRenewed {
    /// RFC 3339 UTC.
    pub at: String,
    /// The station and operator (`sam01-st1/clerk2`).
    pub by: String,
    /// The document's active certificates that a renewal issued (none while it is not active).
    pub certificates: Vec<IssuedCertificate>,
}
