//! Typed records of the registry and their writes (on [`Tx`]) and reads (on [`Registry`]):
//! holders, registration addresses, documents with status history, cards, certificates, CA keys
//! with state history, dual-control requests, operators and the outbox.
//!
//! One module per record noun; each holds the typed record, its row mapping, its writes
//! (on [`Tx`]) and its reads (on [`Registry`]).

mod ca_key;
mod ca_request;
mod can;
mod card;
mod centre_renewal;
mod centre_replacement;
mod certificate;
mod crl;
mod document;
mod holder;
mod life;
mod operator;
mod outbox;

pub use ca_key::*;
pub use ca_request::*;
pub use card::*;
pub use centre_renewal::*;
pub use centre_replacement::*;
pub use certificate::*;
pub use document::*;
pub use holder::*;
pub use life::*;
pub use operator::*;
pub use outbox::*;

use crate::Error;

/// Map a UNIQUE violation to a [`Error::Conflict`] with `what` as the message.
pub(crate) fn unique_conflict(e: rusqlite::Error, what: impl FnOnce() -> String) -> Error {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if f.code == rusqlite::ErrorCode::ConstraintViolation
            && (f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
        {
            return Error::Conflict(what());
        }
    }
    Error::Sqlite(e)
}

#[cfg(test)]
pub(crate) mod tests;
