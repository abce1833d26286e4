//! Status words (ISO/IEC 7816-4:2020 §5.6, NIST SP 800-73-4 Part 2 Table 6) as a typed value:
//! what a card answered, for the APDU layer and for the crate's errors.

use std::fmt;

/// ISO 7816-4 §5.6 / SP 800-73-4 Part 2 Table 6 status words, typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusWord {
    /// 9000: normal processing.
    Ok,
    /// 61xx: xx more bytes available with GET RESPONSE (00 = 256 or more).
    MoreData(u8),
    /// 63Cx: verification failed, x tries left (ISO 7816-4 §5.6 table 6).
    WrongPin(u8),
    /// 6700: wrong length.
    WrongLength,
    /// 6882: secure messaging not supported.
    SecureMessagingNotSupported,
    /// 6883: last command of the chain expected.
    LastCommandOfChainExpected,
    /// 6884: command chaining not supported.
    ChainingNotSupported,
    /// 6982: security status not satisfied.
    SecurityStatusNotSatisfied,
    /// 6983: authentication method blocked.
    Blocked,
    /// 6985: conditions of use not satisfied.
    ConditionsNotSatisfied,
    /// 6A80: incorrect parameters in the data field.
    IncorrectData,
    /// 6A81: function not supported.
    FunctionNotSupported,
    /// 6A82: file or application not found.
    NotFound,
    /// 6A84: not enough memory.
    NotEnoughMemory,
    /// 6A86: incorrect P1-P2.
    IncorrectP1P2,
    /// 6A88: referenced data not found.
    ReferencedDataNotFound,
    /// 6Cxx: wrong Le, xx is the right one.
    WrongLe(u8),
    /// 6D00: instruction not supported.
    InsNotSupported,
    /// 6E00: class not supported.
    ClaNotSupported,
    /// Anything else.
    Other(u16),
}

impl StatusWord {
    /// From SW1 SW2.
    pub fn from_bytes(sw1: u8, sw2: u8) -> Self {
        match (sw1, sw2) {
            (0x90, 0x00) => Self::Ok,
            (0x61, n) => Self::MoreData(n),
            (0x63, n) if n & 0xF0 == 0xC0 => Self::WrongPin(n & 0x0F),
            (0x67, 0x00) => Self::WrongLength,
            (0x68, 0x82) => Self::SecureMessagingNotSupported,
            (0x68, 0x83) => Self::LastCommandOfChainExpected,
            (0x68, 0x84) => Self::ChainingNotSupported,
            (0x69, 0x82) => Self::SecurityStatusNotSatisfied,
            (0x69, 0x83) => Self::Blocked,
            (0x69, 0x85) => Self::ConditionsNotSatisfied,
            (0x6A, 0x80) => Self::IncorrectData,
            (0x6A, 0x81) => Self::FunctionNotSupported,
            (0x6A, 0x82) => Self::NotFound,
            (0x6A, 0x84) => Self::NotEnoughMemory,
            (0x6A, 0x86) => Self::IncorrectP1P2,
            (0x6A, 0x88) => Self::ReferencedDataNotFound,
            (0x6C, n) => Self::WrongLe(n),
            (0x6D, 0x00) => Self::InsNotSupported,
            (0x6E, 0x00) => Self::ClaNotSupported,
            (a, b) => Self::Other(u16::from_be_bytes([a, b])),
        }
    }

    /// As a 16-bit number.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::Ok => 0x9000,
            Self::MoreData(n) => 0x6100 | n as u16,
            Self::WrongPin(n) => 0x63C0 | (n & 0x0F) as u16,
            Self::WrongLength => 0x6700,
            Self::SecureMessagingNotSupported => 0x6882,
            Self::LastCommandOfChainExpected => 0x6883,
            Self::ChainingNotSupported => 0x6884,
            Self::SecurityStatusNotSatisfied => 0x6982,
            Self::Blocked => 0x6983,
            Self::ConditionsNotSatisfied => 0x6985,
            Self::IncorrectData => 0x6A80,
            Self::FunctionNotSupported => 0x6A81,
            Self::NotFound => 0x6A82,
            Self::NotEnoughMemory => 0x6A84,
            Self::IncorrectP1P2 => 0x6A86,
            Self::ReferencedDataNotFound => 0x6A88,
            Self::WrongLe(n) => 0x6C00 | n as u16,
            Self::InsNotSupported => 0x6D00,
            Self::ClaNotSupported => 0x6E00,
            Self::Other(v) => v,
        }
    }

    fn meaning(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::MoreData(_) => "more data available",
            Self::WrongPin(_) => "verification failed",
            Self::WrongLength => "wrong length",
            Self::SecureMessagingNotSupported => "secure messaging not supported",
            Self::LastCommandOfChainExpected => "last command of chain expected",
            Self::ChainingNotSupported => "command chaining not supported",
            Self::SecurityStatusNotSatisfied => "security status not satisfied",
            Self::Blocked => "authentication method blocked",
            Self::ConditionsNotSatisfied => "conditions of use not satisfied",
            Self::IncorrectData => "incorrect data",
            Self::FunctionNotSupported => "function not supported",
            Self::NotFound => "not found",
            Self::NotEnoughMemory => "not enough memory",
            Self::IncorrectP1P2 => "incorrect P1-P2",
            Self::ReferencedDataNotFound => "referenced data not found",
            Self::WrongLe(_) => "wrong Le",
            Self::InsNotSupported => "instruction not supported",
            Self::ClaNotSupported => "class not supported",
            Self::Other(_) => "unknown status",
        }
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X} ({})", self.to_u16(), self.meaning())
    }
}
