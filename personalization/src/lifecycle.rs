//! The card's lifecycle as the card contract defines it (BLANK → PERSONALIZING → LOCKED; the
//! lifecycle object 5FFF20): what the executor checks and what errors report.

use std::fmt;

/// Card lifecycle (card contract).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    /// Transport credentials, nothing written.
    Blank,
    /// Personalization started, not locked.
    Personalizing,
    /// Operational; personalization commands refused.
    Locked,
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Blank => "BLANK",
            Self::Personalizing => "PERSONALIZING",
            Self::Locked => "LOCKED",
        })
    }
}
