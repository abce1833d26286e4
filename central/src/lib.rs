//! The national centre: one CA hierarchy (National Root, e-Signature, CSCA, Station CA) in the
//! centre's HSM and one registry in PostgreSQL for every issuance office; stations enrol with a
//! one-time code. The `idcentral` binary is a thin layer over these modules (docs/centre.md).

pub mod anchors;
pub mod audit;
pub mod audit_export;
pub mod audit_push;
pub mod audit_search;
pub mod config;
pub mod csca_withdrawal;
pub mod db;
pub mod document_signer;
pub mod documents;
pub mod egov;
pub mod enrol;
pub mod error;
pub mod failpoint;
pub mod holders;
pub mod init;
pub mod issuance;
pub mod key_destruction;
pub mod numbers;
pub mod operators;
pub mod pki;
pub mod public;
pub mod refusals;
pub mod replacements;
pub mod request_failure;
pub mod revocation;
pub mod rotation;
pub mod server;
pub mod services;
pub mod show;
pub mod stations;
pub mod timeouts;
pub mod tls;

pub use config::CentreConfig;
pub use error::{CentralError, Refusal, Result};
