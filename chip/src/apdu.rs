//! Command APDUs as the card receives them (ISO/IEC 7816-4:2020 clause 5.1, "Command-response
//! pairs"): short length fields only (cases 1, 2S, 3S, 4S). Extended length (Lc = 00 followed
//! by two bytes) is not supported by Debian's vpcd and is answered 6700; long data arrives by
//! command chaining (clause 5.3.3), which the card OS in [`crate::os`] reassembles.

use crate::sw::StatusWord;

/// A parsed short command APDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Class byte as received.
    pub cla: u8,
    /// Instruction byte.
    pub ins: u8,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// Command data field (empty for cases 1 and 2).
    pub data: Vec<u8>,
    /// Expected response length Ne: `None` when absent, 1..=256 otherwise (Le = 00 means 256).
    pub ne: Option<usize>,
}

impl Command {
    /// Parse a short C-APDU. Errors are the status word the card answers with.
    pub fn parse(bytes: &[u8]) -> Result<Command, StatusWord> {
        if bytes.len() < 4 {
            return Err(StatusWord::WrongLength);
        }
        let (cla, ins, p1, p2) = (bytes[0], bytes[1], bytes[2], bytes[3]);
        let body = &bytes[4..];
        let (data, ne) = match body.len() {
            // case 1
            0 => (Vec::new(), None),
            // case 2S: Le only
            1 => (Vec::new(), Some(le_to_ne(body[0]))),
            _ => {
                let lc = usize::from(body[0]);
                if lc == 0 {
                    // Extended length (ISO 7816-4 5.1: Lc coded on three bytes starting 00).
                    return Err(StatusWord::WrongLength);
                }
                if body.len() == 1 + lc {
                    (body[1..].to_vec(), None) // case 3S
                } else if body.len() == 2 + lc {
                    (body[1..1 + lc].to_vec(), Some(le_to_ne(body[1 + lc]))) // case 4S
                } else {
                    return Err(StatusWord::WrongLength);
                }
            }
        };
        Ok(Command {
            cla,
            ins,
            p1,
            p2,
            data,
            ne,
        })
    }

    /// Whether the chaining bit (b5 of CLA, 0x10) is set: more command parts follow.
    pub fn is_chained(&self) -> bool {
        self.cla & 0x10 != 0
    }
}

impl Drop for Command {
    /// The data field may hold a PIN, PUK or key: wipe it.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.data);
    }
}

fn le_to_ne(le: u8) -> usize {
    if le == 0 {
        256
    } else {
        usize::from(le)
    }
}

/// Build an R-APDU: data followed by the status word.
pub fn response(data: &[u8], sw: StatusWord) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 2);
    out.extend_from_slice(data);
    out.extend_from_slice(&sw.to_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_four_short_cases() {
        let c1 = Command::parse(&[0x00, 0x44, 0x00, 0x00]).unwrap();
        assert!(c1.data.is_empty() && c1.ne.is_none());
        let c2 = Command::parse(&[0x00, 0xFD, 0x00, 0x00, 0x00]).unwrap();
        assert_eq!(c2.ne, Some(256));
        let c3 = Command::parse(&[0x00, 0x20, 0x00, 0x80, 0x02, 0x31, 0x32]).unwrap();
        assert_eq!(c3.data, vec![0x31, 0x32]);
        assert_eq!(c3.ne, None);
        let c4 = Command::parse(&[0x00, 0xCB, 0x3F, 0xFF, 0x01, 0x7E, 0x10]).unwrap();
        assert_eq!(c4.data, vec![0x7E]);
        assert_eq!(c4.ne, Some(16));
    }

    #[test]
    fn rejects_short_headers_extended_lengths_and_inconsistent_lc() {
        assert_eq!(Command::parse(&[0x00, 0xA4]), Err(StatusWord::WrongLength));
        assert_eq!(
            Command::parse(&[0x00, 0xA4, 0x04, 0x00, 0x00, 0x00, 0x05]),
            Err(StatusWord::WrongLength)
        );
        assert_eq!(
            Command::parse(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0]),
            Err(StatusWord::WrongLength)
        );
        assert_eq!(
            Command::parse(&[0x00, 0xA4, 0x04, 0x00, 0x01, 0xA0, 0x00, 0x00]),
            Err(StatusWord::WrongLength)
        );
    }
}
