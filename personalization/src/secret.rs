//! Secrets the host handles: PIN, PUK and PIV management keys (SP 800-73-4 Part 2 §3.2.1,
//! SP 800-78-4 Table 6-1). Zeroized on drop; `Debug` prints only a redaction marker.

use std::fmt;

use zeroize::Zeroizing;

use profiles::card::MgmtAlgorithm;

use crate::error::Error;

/// A PIV card management key (key reference 9B). The key bytes are zeroized on drop and never
/// printed.
#[derive(Clone)]
pub struct ManagementKey {
    algorithm: MgmtAlgorithm,
    key: Zeroizing<Vec<u8>>,
}

impl ManagementKey {
    /// A key of `algorithm` from its raw bytes; the length must match the algorithm.
    pub fn new(algorithm: MgmtAlgorithm, key: &[u8]) -> Result<Self, Error> {
        if key.len() != algorithm.key_len() {
            return Err(Error::Invalid {
                field: "management key".into(),
                rule: format!(
                    "an {} key is {} bytes long, got {}",
                    algorithm,
                    algorithm.key_len(),
                    key.len()
                ),
            });
        }
        Ok(Self {
            algorithm,
            key: Zeroizing::new(key.to_vec()),
        })
    }

    /// A key from hexadecimal text (whitespace ignored); errors never echo the text.
    pub fn from_hex(algorithm: MgmtAlgorithm, text: &str) -> Result<Self, Error> {
        let digits: Zeroizing<Vec<u8>> =
            Zeroizing::new(text.bytes().filter(|b| !b.is_ascii_whitespace()).collect());
        if !digits.len().is_multiple_of(2) || !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(Error::Invalid {
                field: "management key".into(),
                rule: "must be hexadecimal digits, two per byte".into(),
            });
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(digits.len() / 2));
        for pair in digits.chunks(2) {
            bytes.push((hex_val(pair[0]) << 4) | hex_val(pair[1]));
        }
        Self::new(algorithm, &bytes)
    }

    /// The SP 800-73-4 / card-contract transport key: 3DES 0102030405060708 × 3.
    pub fn transport_default() -> Self {
        let mut k = Zeroizing::new(Vec::with_capacity(24));
        for _ in 0..3 {
            k.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        }
        Self {
            algorithm: MgmtAlgorithm::TripleDes,
            key: k,
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> MgmtAlgorithm {
        self.algorithm
    }

    /// The key bytes (crate-internal: only the crypto and SET MANAGEMENT KEY see them).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.key
    }
}

impl fmt::Debug for ManagementKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManagementKey({}, <redacted>)", self.algorithm)
    }
}

fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// Which reference data a [`Pin`] is (SP 800-73-4 Part 2 Table 4b key references).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinKind {
    /// PIV Card Application PIN, reference 80.
    Pin,
    /// PIN Unblocking Key, reference 81.
    Puk,
}

impl PinKind {
    /// Key reference (P2 of VERIFY / CHANGE REFERENCE DATA).
    pub fn reference(self) -> u8 {
        match self {
            Self::Pin => 0x80,
            Self::Puk => 0x81,
        }
    }

    /// Name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pin => "PIN",
            Self::Puk => "PUK",
        }
    }
}

/// A PIN or PUK value. Zeroized on drop, never printed. SP 800-73-4 Part 2 §2.4.3: 6–8 bytes,
/// padded to 8 with `FF`.
#[derive(Clone)]
pub struct Pin {
    kind: PinKind,
    value: Zeroizing<Vec<u8>>,
}

impl Pin {
    /// A PIN (or PUK) of 6 to 8 ASCII characters.
    pub fn new(kind: PinKind, value: &str) -> Result<Self, Error> {
        let len = value.len();
        if !(6..=8).contains(&len) || !value.is_ascii() {
            return Err(Error::Invalid {
                field: kind.name().into(),
                rule: "must be 6 to 8 ASCII characters (SP 800-73-4 Part 2 §2.4.3)".into(),
            });
        }
        Ok(Self {
            kind,
            value: Zeroizing::new(value.as_bytes().to_vec()),
        })
    }

    /// Which reference this is.
    pub fn kind(&self) -> PinKind {
        self.kind
    }

    /// Length in characters.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// Always false (a PIN has at least 6 characters); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// True if every character is a decimal digit.
    pub fn is_numeric(&self) -> bool {
        self.value.iter().all(u8::is_ascii_digit)
    }

    /// The 8-byte `FF`-padded reference data block.
    pub(crate) fn padded(&self) -> Zeroizing<[u8; 8]> {
        let mut out = Zeroizing::new([0xFFu8; 8]);
        out[..self.value.len()].copy_from_slice(&self.value);
        out
    }

    /// Constant-shape equality check (for "PIN must differ from transport PIN" rules).
    pub fn same_value(&self, other: &Pin) -> bool {
        self.value.len() == other.value.len()
            && self
                .value
                .iter()
                .zip(other.value.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(<redacted>)", self.kind.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_secrets_never_shows_the_value() {
        let k = ManagementKey::from_hex(MgmtAlgorithm::Aes128, "00112233445566778899aabbccddeeff")
            .unwrap();
        let p = Pin::new(PinKind::Pin, "918273").unwrap();
        let text = format!("{k:?} {p:?}");
        assert!(!text.contains("0011") && !text.contains("918273"), "{text}");
        assert!(text.contains("redacted"));
    }

    #[test]
    fn management_key_length_must_match_algorithm() {
        let e = ManagementKey::new(MgmtAlgorithm::Aes128, &[0u8; 24]).unwrap_err();
        assert!(e.to_string().contains("16 bytes"), "{e}");
        assert!(ManagementKey::from_hex(MgmtAlgorithm::Aes128, "zz").is_err());
    }

    #[test]
    fn pin_is_padded_with_ff_to_eight_bytes() {
        let p = Pin::new(PinKind::Pin, "123456").unwrap();
        assert_eq!(&*p.padded(), b"123456\xff\xff");
        assert!(Pin::new(PinKind::Pin, "12345").is_err());
        assert!(Pin::new(PinKind::Puk, "123456789").is_err());
    }
}
