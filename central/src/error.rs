//! The centre's one error type; messages name the field and the rule, never a secret.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    #[error("{field}: {rule}")]
    Invalid { field: &'static str, rule: String },
    #[error("configuration {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("database: {0}")]
    Database(String),
    #[error("the centre is already initialised (database {0})")]
    AlreadyInitialised(String),
    #[error("the centre is not initialised: run `idcentral init` first")]
    NotInitialised,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotPermitted(String),
    /// A station's request refused by a named rule (HTTP 400, 401, 403, 404 or 409 with `rule`
    /// in the JSON body, and `office` when the rule is about another office's card).
    #[error("{reason}")]
    Refused {
        status: Refusal,
        rule: &'static str,
        reason: String,
        office: Option<String>,
    },
    #[error(transparent)]
    Hsm(#[from] hsm::HsmError),
    #[error(transparent)]
    Ca(#[from] ca::CaError),
    #[error(transparent)]
    Profile(#[from] profiles::ProfileError),
    #[error("{0}")]
    Other(String),
}

/// How a station's request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The request breaks a rule of its own (e.g. a proof of possession): HTTP 400.
    BadRequest,
    /// No (valid) client certificate where one is required: HTTP 401.
    Unauthenticated,
    /// Not allowed: HTTP 403.
    Forbidden,
    /// No such thing (e.g. an unknown job): HTTP 404.
    NotFound,
    /// In conflict with the current state (e.g. already enrolled): HTTP 409.
    Conflict,
    /// More requests than a limit allows in its window (e.g. number look-ups): HTTP 429.
    TooMany,
}

impl CentralError {
    /// A refusal by the rule `rule` (a short kebab-case name clients can match on).
    pub fn refused(status: Refusal, rule: &'static str, reason: impl Into<String>) -> Self {
        CentralError::Refused {
            status,
            rule,
            reason: reason.into(),
            office: None,
        }
    }

    /// A refusal about a card or an issuance of `office` (HTTP 409 with `office` in the body).
    pub fn refused_at(rule: &'static str, office: String, reason: impl Into<String>) -> Self {
        CentralError::Refused {
            status: Refusal::Conflict,
            rule,
            reason: reason.into(),
            office: Some(office),
        }
    }

    /// The rule a station's request was refused by; `None` when the error is the centre's own
    /// failure (database, HSM, ...), not a refusal.
    pub fn rule(&self) -> Option<&'static str> {
        Some(match self {
            CentralError::Refused { rule, .. } => rule,
            CentralError::Invalid { .. } => centre_api::rules::INVALID_REQUEST,
            CentralError::NotFound(_) => "not-found",
            CentralError::Conflict(_) => "conflict",
            CentralError::NotPermitted(_) => "not-permitted",
            _ => return None,
        })
    }

    pub fn invalid(field: &'static str, rule: impl Into<String>) -> Self {
        CentralError::Invalid {
            field,
            rule: rule.into(),
        }
    }

    pub fn io(path: &std::path::Path, e: std::io::Error) -> Self {
        CentralError::Io {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    }

    /// The process exit code, the station's scheme (docs/station.md): 1 other, 2 invalid input
    /// or state, 4 HSM, 5 conflict, 6 not permitted, 7 the database is unreachable.
    pub fn exit_code(&self) -> i32 {
        match self {
            CentralError::Invalid { .. }
            | CentralError::Config { .. }
            | CentralError::AlreadyInitialised(_)
            | CentralError::NotInitialised
            | CentralError::NotFound(_)
            | CentralError::Profile(_) => 2,
            CentralError::Ca(ca::CaError::Hsm(_)) | CentralError::Hsm(_) => 4,
            CentralError::Ca(_) => 2,
            CentralError::Conflict(_) => 5,
            CentralError::NotPermitted(_) => 6,
            CentralError::Refused { status, .. } => match status {
                Refusal::Conflict => 5,
                Refusal::BadRequest | Refusal::NotFound => 2,
                Refusal::Unauthenticated | Refusal::Forbidden | Refusal::TooMany => 6,
            },
            CentralError::Database(_) => 7,
            CentralError::Io { .. } | CentralError::Other(_) => 1,
        }
    }
}

impl From<tokio_postgres::Error> for CentralError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The server's own message (constraint, trigger) when there is one.
        match e.as_db_error() {
            // The one-active-card rule's index caught what the checks before it could not (two
            // transactions racing): a refusal with its rule, not "the database, try again".
            Some(db)
                if *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION
                    && db.constraint() == Some("documents_one_active_per_holder") =>
            {
                CentralError::refused(
                    Refusal::Conflict,
                    centre_api::rules::HOLDER_HAS_ACTIVE_CARD,
                    "the holder has an active card already (another office's change came first)",
                )
            }
            Some(db) => CentralError::Database(format!("{} ({})", db.message(), db.code().code())),
            None => CentralError::Database(e.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for CentralError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(b) => b.into(),
            other => CentralError::Database(other.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, CentralError>;
