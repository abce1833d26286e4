//! How C-APDUs reach a card: one small trait ([`Transport`]), a PC/SC implementation over pcscd
//! ([`pcsc`]: PC/SC Workgroup spec part 5, `SCardTransmit` / `SCardGetStatusChange`), and — in
//! unit tests only — an in-process one over the virtual chip's library.

pub mod pcsc;

#[cfg(test)]
pub(crate) mod in_process;

use crate::error::Error;

/// A connection to one card that exchanges short APDUs (ISO/IEC 7816-4 §5.1, T=1).
pub trait Transport {
    /// Sends one short C-APDU and returns the R-APDU including SW1 SW2.
    ///
    /// Card or reader failures are typed: [`Error::CardRemoved`], [`Error::CardReset`],
    /// [`Error::ReaderGone`], [`Error::NoCard`].
    fn transmit(&mut self, capdu: &[u8]) -> Result<Vec<u8>, Error>;
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn transmit(&mut self, capdu: &[u8]) -> Result<Vec<u8>, Error> {
        (**self).transmit(capdu)
    }
}

/// Wraps a transport and remembers the instruction bytes it sent (for tests and audits that
/// must prove "no write was sent"). Data fields are not kept (they may be secrets).
pub struct Recording<T> {
    inner: T,
    /// (CLA, INS, P1, P2) of every C-APDU sent.
    pub headers: Vec<[u8; 4]>,
}

impl<T: Transport> Recording<T> {
    /// Starts recording.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            headers: Vec::new(),
        }
    }

    /// The wrapped transport.
    pub fn into_inner(self) -> T {
        self.inner
    }

    /// The wrapped transport, borrowed.
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// INS bytes of commands that change card state (PIV and the card contract's vendor
    /// instructions): PUT DATA, GENERATE, SET MANAGEMENT KEY, CHANGE REFERENCE DATA, RESET RETRY
    /// COUNTER, IMPORT, RESET TO BLANK, ACTIVATE (lock).
    pub const WRITE_INS: [u8; 8] = [0xDB, 0x47, 0xFF, 0x24, 0x2C, 0xFE, 0xFB, 0x44];

    /// True if any state-changing instruction was sent.
    pub fn sent_a_write(&self) -> bool {
        self.headers.iter().any(|h| Self::WRITE_INS.contains(&h[1]))
    }
}

impl<T: Transport> Transport for Recording<T> {
    fn transmit(&mut self, capdu: &[u8]) -> Result<Vec<u8>, Error> {
        let mut h = [0u8; 4];
        for (d, s) in h.iter_mut().zip(capdu.iter()) {
            *d = *s;
        }
        self.headers.push(h);
        self.inner.transmit(capdu)
    }
}
