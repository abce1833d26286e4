//! One personal-data field whose registered value differs from the one entered now: what a
//! refused re-issuance reports (`StationError::HolderDiffers`) and what `holder.updated` audits.
//! A leaf module (no other module of the crate), so the error type can carry it.

use serde::Serialize;

/// One field whose registered value differs from the one the clerk entered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// The holder file's field name (`surname`, `date_of_birth`, `photo`, …).
    pub field: &'static str,
    /// As registered (`None`: not recorded).
    pub old: Option<String>,
    /// As entered now (`None`: left empty).
    pub new: Option<String>,
}

impl FieldChange {
    /// A change that fills in a value the registry never recorded (a photo digest for a holder
    /// enrolled before the registry kept one). It needs no confirmation; it is still audited.
    pub fn fills_a_gap(&self) -> bool {
        self.old.is_none() && self.field == "photo"
    }
}
