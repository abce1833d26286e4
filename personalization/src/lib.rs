//! Host side of the ID card: everything the station says to a chip.
//!
//! The card side is `chip`, written separately from the same standards on purpose: where the
//! two look alike (BER-TLV, BAC and secure messaging, EF.SOD), each checks the other's reading
//! of the clause, so they share no code.
//!
//! Layers, bottom up (one module per card concept, named after the standards' nouns):
//! - [`apdu`]: ISO/IEC 7816-4 §5 command/response APDUs, command chaining (CLA bit 0x10),
//!   GET RESPONSE for `61xx`, typed status words;
//! - [`tlv`]: ISO/IEC 7816-4 §5.2 / ISO/IEC 8825-1 BER-TLV, a small total parser and encoder;
//! - [`transport`]: the [`Transport`](transport::Transport) trait and its PC/SC implementation
//!   (an in-process one over `chip::Card` exists for unit tests only);
//! - [`piv`]: a NIST SP 800-73-4 PIV client (plus the Yubico vendor instructions the card
//!   contract uses) and the PIV data objects (CHUID, CCC, Discovery, Printed Information, ...);
//! - [`plan`]: the card profile (`profiles/card/*.toml`) as typed values;
//! - [`executor`]: the two-phase personalization (prepare → CA → complete) and the reset path,
//!   each phase a plan of [`steps::CardStep`]s that the executor runs as listed.
//!
//! Secrets (PINs, PUKs, management keys) live in zeroizing buffers, and no `Debug`, `Display`,
//! log line or error ever contains one.
#![forbid(unsafe_code)]

pub mod apdu;
pub mod bac;
pub mod error;
pub mod executor;
pub mod lds;
pub mod lifecycle;
pub mod mrz;
pub mod pace;
pub mod piv;
pub mod plan;
pub mod secret;
pub mod sod;
pub mod status;
pub mod steps;
pub mod tlv;
pub mod transport;

#[cfg(test)]
mod services_chip_tests;
#[cfg(test)]
mod testutil;

pub use error::Error;

/// Result with the crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
