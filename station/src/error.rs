//! The station's error type and the CLI exit codes it maps to
//! (0 ok, 2 invalid input, 3 card or reader, 4 HSM, 5 conflict, 6 not permitted
//! (wrong operator password or role), 7 the national centre cannot be reached, 1 anything
//! else). A refusal by the centre maps to the code of its kind (409 → 5, 401/403 → 6,
//! 400/404 → 2).

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StationError {
    #[error("invalid input: {field}: {rule}")]
    Invalid { field: String, rule: String },
    #[error("data dir {data_dir} is not initialised (run `idstation init`)")]
    NotInitialised { data_dir: PathBuf },
    #[error("data dir {data_dir} is already initialised; refusing to overwrite it")]
    AlreadyInitialised { data_dir: PathBuf },
    #[error("config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    /// A file or directory others can read that must be the owner's alone.
    #[error("{path}: {rule}")]
    Insecure { path: PathBuf, rule: String },
    #[error("HSM: {0}")]
    Hsm(#[from] hsm::HsmError),
    #[error("CA: {0}")]
    Ca(#[from] ca::CaError),
    #[error("profile: {0}")]
    Profile(#[from] profiles::ProfileError),
    /// Card or reader: which job step (if any) and what happened, in plain words.
    #[error("{}", match step { Some(s) => format!("card: {message} (job step {s})"), None => format!("card: {message}") })]
    Card {
        step: Option<String>,
        message: String,
    },
    #[error("registry: {0}")]
    Registry(#[from] registry::Error),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("not permitted: {0}")]
    NotPermitted(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// A registered holder came back with other personal data and the clerk has not
    /// confirmed the update.
    #[error(
        "invalid input: holder: PINFL {pinfl} is registered with other data ({}); check the \
         holder's documents, then issue with --update-holder to update the registry",
        changes.iter().map(|c| c.field).collect::<Vec<_>>().join(", ")
    )]
    HolderDiffers {
        pinfl: String,
        changes: Vec<crate::field_change::FieldChange>,
    },
    /// The national centre could not be reached: connection refused, a timeout, a TLS
    /// failure or an HTTP 5xx answer. Nothing was changed on this station.
    #[error(
        "centre: the centre at {url} cannot be reached ({reason}); nothing was changed on this \
         station; check the network and try again"
    )]
    CentreUnreachable { url: String, reason: String },
    /// The national centre refused the request: its sentence and rule (docs/centre.md).
    #[error("centre refused: {} (rule {})", refusal.error, refusal.rule)]
    CentreRefused {
        status: u16,
        refusal: centre_api::Refusal,
    },
    #[error("{0}")]
    Other(String),
}

/// Exit code of [`StationError::CentreUnreachable`].
pub const EXIT_CENTRE_UNREACHABLE: i32 = 7;

impl StationError {
    pub fn io(path: &Path, e: std::io::Error) -> Self {
        StationError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    }

    pub fn invalid(field: impl Into<String>, rule: impl Into<String>) -> Self {
        StationError::Invalid {
            field: field.into(),
            rule: rule.into(),
        }
    }

    /// A card or reader error from `personalization`, with the job step it happened in.
    pub fn card(step: Option<&str>, e: &personalization::Error) -> Self {
        StationError::Card {
            step: step.map(str::to_owned),
            message: e.to_string(),
        }
    }

    /// Exit code of the `idstation` CLI for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            StationError::Invalid { .. }
            | StationError::NotInitialised { .. }
            | StationError::AlreadyInitialised { .. }
            | StationError::Config { .. }
            | StationError::HolderDiffers { .. }
            | StationError::Insecure { .. }
            | StationError::Profile(_) => 2,
            StationError::Ca(e) => ca_exit_code(e),
            StationError::Hsm(_) => 4,
            StationError::Conflict(_) => 5,
            StationError::Card { .. } => 3,
            StationError::NotPermitted(_) => 6,
            StationError::NotFound(_) => 2,
            StationError::Registry(e) => registry_exit_code(e),
            StationError::Io { .. } | StationError::Other(_) => 1,
            StationError::CentreUnreachable { .. } => EXIT_CENTRE_UNREACHABLE,
            StationError::CentreRefused { status, .. } => match status {
                409 => 5,
                401 | 403 | 429 => 6,
                _ => 2,
            },
        }
    }
}

/// What kind of failure a [`StationError`] is, for a user interface that words it in the
/// operator's language (the GUI's catalogue has one message per kind). A registry error is
/// sorted by its own kind: invalid, conflict, not found, or the database itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Invalid,
    NotInitialised,
    AlreadyInitialised,
    Config,
    Io,
    Insecure,
    Hsm,
    Ca,
    Profile,
    Card,
    /// The registry database itself (SQLite, its files, the audit chain, a schema).
    Database,
    NotFound,
    NotPermitted,
    Conflict,
    HolderDiffers,
    CentreUnreachable,
    CentreRefused,
    Other,
}

impl StationError {
    /// This error's [`ErrorKind`].
    pub fn kind(&self) -> ErrorKind {
        use registry::Error as R;
        match self {
            StationError::Invalid { .. } => ErrorKind::Invalid,
            StationError::NotInitialised { .. } => ErrorKind::NotInitialised,
            StationError::AlreadyInitialised { .. } => ErrorKind::AlreadyInitialised,
            StationError::Config { .. } => ErrorKind::Config,
            StationError::Io { .. } => ErrorKind::Io,
            StationError::Insecure { .. } => ErrorKind::Insecure,
            StationError::Hsm(_) => ErrorKind::Hsm,
            StationError::Ca(_) => ErrorKind::Ca,
            StationError::Profile(_) => ErrorKind::Profile,
            StationError::Card { .. } => ErrorKind::Card,
            StationError::Registry(R::Invalid { .. } | R::Password(_)) => ErrorKind::Invalid,
            StationError::Registry(R::Conflict(_)) => ErrorKind::Conflict,
            StationError::Registry(R::NotFound(_)) => ErrorKind::NotFound,
            StationError::Registry(R::Signer(_)) => ErrorKind::Hsm,
            StationError::Registry(_) => ErrorKind::Database,
            StationError::NotFound(_) => ErrorKind::NotFound,
            StationError::NotPermitted(_) => ErrorKind::NotPermitted,
            StationError::Conflict(_) => ErrorKind::Conflict,
            StationError::HolderDiffers { .. } => ErrorKind::HolderDiffers,
            StationError::CentreUnreachable { .. } => ErrorKind::CentreUnreachable,
            StationError::CentreRefused { .. } => ErrorKind::CentreRefused,
            StationError::Other(_) => ErrorKind::Other,
        }
    }

    /// The record key of the field an invalid-input error names (`pinfl`,
    /// `address.registered_until`, …), if it names one.
    pub fn field(&self) -> Option<&str> {
        match self {
            StationError::Invalid { field, .. } => Some(field),
            StationError::Registry(registry::Error::Invalid { field, .. }) => Some(field),
            _ => None,
        }
    }
}

fn ca_exit_code(e: &ca::CaError) -> i32 {
    use ca::CaError as E;
    match e {
        E::Hsm(_) | E::Random(_) => 4,
        E::Encoding { .. } => 1,
        _ => 2,
    }
}

fn registry_exit_code(e: &registry::Error) -> i32 {
    match e {
        registry::Error::Invalid { .. } | registry::Error::NotFound(_) => 2,
        registry::Error::Conflict(_) => 5,
        // The signing function is the HSM's (audit checkpoints, export manifests).
        registry::Error::Signer(_) => 4,
        _ => 1,
    }
}
