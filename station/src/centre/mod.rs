//! The station as the national centre's client (docs/centre.md, docs/station.md
//! "Enrolment"): the HTTPS client ([`CentreClient`]: TLS 1.3, the station's identity key in
//! its HSM as the client certificate), the files enrolment leaves in the data dir
//! ([`files`]), the pinned first connection ([`pin`]), `idstation centre status`
//! ([`status`]), the centre's e-government outbox for a ca-admin or auditor ([`outbox`]), the
//! office's cards the centre flagged for replacement ([`to_replace`]) and the centre's Station
//! CA and root rollovers: new anchors, a renewed identity ([`anchors`]).
//! The station's next Document Signer, certified by the centre's CSCA, is
//! `crate::document_signer` (it needs the hierarchy, which this module must not import).

pub mod anchors;
pub mod audit_push;
pub mod client;
pub mod files;
pub mod outbox;
pub mod pin;
pub mod status;
pub mod to_replace;

pub use client::{CentreClient, ClientCache};

/// HSM label of the station's identity key (its TLS client certificate at the centre).
pub const IDENTITY_KEY: &str = "identity-1";
