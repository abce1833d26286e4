//! In-process transport to the virtual chip's library (`chip::Card`), for unit tests only: it
//! is compiled under `cfg(test)` and `chip` is a dev-dependency, so no release path can reach it.

use super::Transport;
use crate::error::Error;

/// The chip in the same process, with an optional tear after N APDUs (like `vchip --tear-after`).
pub(crate) struct InProcess {
    pub card: chip::Card,
    pub tear_after: Option<u64>,
    pub sent: u64,
}

impl InProcess {
    /// A powered-on card.
    pub fn new(mut card: chip::Card) -> Self {
        card.power_on();
        Self {
            card,
            tear_after: None,
            sent: 0,
        }
    }

    /// Re-inserts the card: power cycle, counter and tear cleared.
    pub fn reinsert(&mut self) {
        self.card.power_on();
        self.tear_after = None;
        self.sent = 0;
    }
}

impl Transport for InProcess {
    fn transmit(&mut self, capdu: &[u8]) -> Result<Vec<u8>, Error> {
        if let Some(n) = self.tear_after {
            if self.sent >= n {
                return Err(Error::CardRemoved);
            }
        }
        self.sent += 1;
        Ok(self.card.transmit(capdu))
    }
}
