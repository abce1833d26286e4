//! Status words (ISO/IEC 7816-4:2020 clause 5.6, "Status bytes"; NIST SP 800-73-4 Part 2
//! clause 3 lists the subset a PIV card returns). The card OS answers every command with one of
//! these; applications return them as the error side of their `Result`.

/// A status word the card may answer with (SW1 SW2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusWord {
    /// 9000: normal processing (ISO 7816-4 table 5).
    Ok,
    /// 61xx: xx more response bytes available with GET RESPONSE (xx = 00 means 256).
    MoreData(u8),
    /// 6300: authentication failed, no information given (ICAO 9303 Part 11 §4.3.3.1: wrong
    /// BAC cryptogram or MAC in MUTUAL AUTHENTICATE).
    AuthenticationFailed,
    /// 63Cx: verification failed, x retries left (ISO 7816-4 table 6, SP 800-73-4 3.2.1).
    WrongPin(u8),
    /// 6700: wrong length (Lc/Le or data object length).
    WrongLength,
    /// 6883: last command of the chain expected (ISO 7816-4 5.3.3).
    LastCommandExpected,
    /// 6884: command chaining not supported for this instruction.
    ChainingNotSupported,
    /// 6982: security status not satisfied (PIN / management key not authenticated).
    SecurityStatusNotSatisfied,
    /// 6983: authentication method blocked (PIN or PUK retries exhausted).
    AuthBlocked,
    /// 6985: conditions of use not satisfied (wrong lifecycle state, no data for GET RESPONSE).
    ConditionsNotSatisfied,
    /// 6986: command not allowed (no current EF for READ/UPDATE BINARY).
    NoCurrentEf,
    /// 6988: incorrect secure messaging data objects (missing DO, bad MAC; ICAO 9303 Part 11
    /// §9.8.6.1). The BAC session ends.
    SmDataObjectsIncorrect,
    /// 6A80: incorrect parameters in the command data field.
    IncorrectData,
    /// 6A81: function not supported.
    FunctionNotSupported,
    /// 6A82: file or application (or data object, or key) not found.
    NotFound,
    /// 6A84: not enough memory space in the file.
    NotEnoughMemory,
    /// 6A86: incorrect parameters P1-P2.
    IncorrectP1P2,
    /// 6A88: referenced data (key reference) not found (SP 800-73-4 3.2.1 VERIFY).
    ReferenceNotFound,
    /// 6A89: file already exists (CREATE FILE, ISO 7816-9).
    FileExists,
    /// 6B00: wrong parameters P1-P2: offset outside the EF (READ/UPDATE BINARY).
    WrongOffset,
    /// 6D00: instruction code not supported or invalid.
    InsNotSupported,
    /// 6E00: class not supported.
    ClaNotSupported,
    /// 6F00: no precise diagnosis (the card could not persist its state).
    NoPreciseDiagnosis,
}

impl StatusWord {
    /// The two status bytes.
    pub fn to_bytes(self) -> [u8; 2] {
        match self {
            StatusWord::Ok => [0x90, 0x00],
            StatusWord::MoreData(n) => [0x61, n],
            StatusWord::AuthenticationFailed => [0x63, 0x00],
            StatusWord::WrongPin(n) => [0x63, 0xC0 | (n & 0x0F)],
            StatusWord::WrongLength => [0x67, 0x00],
            StatusWord::LastCommandExpected => [0x68, 0x83],
            StatusWord::ChainingNotSupported => [0x68, 0x84],
            StatusWord::SecurityStatusNotSatisfied => [0x69, 0x82],
            StatusWord::AuthBlocked => [0x69, 0x83],
            StatusWord::ConditionsNotSatisfied => [0x69, 0x85],
            StatusWord::NoCurrentEf => [0x69, 0x86],
            StatusWord::SmDataObjectsIncorrect => [0x69, 0x88],
            StatusWord::IncorrectData => [0x6A, 0x80],
            StatusWord::FunctionNotSupported => [0x6A, 0x81],
            StatusWord::NotFound => [0x6A, 0x82],
            StatusWord::NotEnoughMemory => [0x6A, 0x84],
            StatusWord::IncorrectP1P2 => [0x6A, 0x86],
            StatusWord::ReferenceNotFound => [0x6A, 0x88],
            StatusWord::FileExists => [0x6A, 0x89],
            StatusWord::WrongOffset => [0x6B, 0x00],
            StatusWord::InsNotSupported => [0x6D, 0x00],
            StatusWord::ClaNotSupported => [0x6E, 0x00],
            StatusWord::NoPreciseDiagnosis => [0x6F, 0x00],
        }
    }

    /// The status word as one number, e.g. 0x9000.
    pub fn to_u16(self) -> u16 {
        let b = self.to_bytes();
        u16::from_be_bytes(b)
    }
}

impl std::fmt::Display for StatusWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04X} ({:?})", self.to_u16(), self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_encode_as_iso_7816_4_bytes() {
        assert_eq!(StatusWord::Ok.to_bytes(), [0x90, 0x00]);
        assert_eq!(StatusWord::MoreData(0).to_bytes(), [0x61, 0x00]);
        assert_eq!(StatusWord::WrongPin(2).to_bytes(), [0x63, 0xC2]);
        assert_eq!(StatusWord::AuthBlocked.to_u16(), 0x6983);
        assert_eq!(StatusWord::ConditionsNotSatisfied.to_u16(), 0x6985);
        assert_eq!(StatusWord::ClaNotSupported.to_u16(), 0x6E00);
        assert_eq!(StatusWord::AuthenticationFailed.to_u16(), 0x6300);
        assert_eq!(StatusWord::NoCurrentEf.to_u16(), 0x6986);
        assert_eq!(StatusWord::SmDataObjectsIncorrect.to_u16(), 0x6988);
        assert_eq!(StatusWord::FileExists.to_u16(), 0x6A89);
        assert_eq!(StatusWord::WrongOffset.to_u16(), 0x6B00);
    }
}
