//! Command and response APDUs (ISO/IEC 7816-4:2020 §5.1–5.6): short APDUs only (Debian's vpcd has
//! no extended length), command chaining with CLA bit b5 = 0x10 (§5.4.1) for data over 255 bytes,
//! and GET RESPONSE (INS C0, §11.4.3) while the card answers `61xx`.

use std::fmt;

use crate::error::Error;
use crate::transport::Transport;

/// Largest data field of one short C-APDU.
pub const MAX_SHORT_DATA: usize = 255;

use crate::status::StatusWord;

/// A command APDU before it is cut into short APDUs. The data may hold a secret; it is zeroized
/// when the command is dropped and `Debug` does not show it.
pub struct Command {
    /// Name for errors and logs ("PUT DATA", "VERIFY", ...).
    pub name: &'static str,
    /// CLA without the chaining bit.
    pub cla: u8,
    /// INS.
    pub ins: u8,
    /// P1.
    pub p1: u8,
    /// P2.
    pub p2: u8,
    /// Command data (any length: it is chained).
    pub data: zeroize::Zeroizing<Vec<u8>>,
    /// Whether a response body is expected (Le = 00 on the last short APDU).
    pub expect_response: bool,
}

impl Command {
    /// A command with CLA 00.
    pub fn new(name: &'static str, ins: u8, p1: u8, p2: u8, data: Vec<u8>) -> Self {
        Self {
            name,
            cla: 0x00,
            ins,
            p1,
            p2,
            data: zeroize::Zeroizing::new(data),
            expect_response: false,
        }
    }

    /// Ask for a response body (Le = 00).
    pub fn with_le(mut self) -> Self {
        self.expect_response = true;
        self
    }

    /// The short C-APDUs that carry this command (ISO 7816-4 §5.4.1 chaining: every APDU but the
    /// last has CLA | 0x10; only the last carries Le).
    pub fn to_short_apdus(&self) -> Vec<zeroize::Zeroizing<Vec<u8>>> {
        let mut out = Vec::new();
        let chunks: Vec<&[u8]> = if self.data.is_empty() {
            vec![&[][..]]
        } else {
            self.data.chunks(MAX_SHORT_DATA).collect()
        };
        let n = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let last = i + 1 == n;
            let mut apdu = zeroize::Zeroizing::new(Vec::with_capacity(chunk.len() + 6));
            apdu.push(if last { self.cla } else { self.cla | 0x10 });
            apdu.extend_from_slice(&[self.ins, self.p1, self.p2]);
            if !chunk.is_empty() {
                apdu.push(chunk.len() as u8);
                apdu.extend_from_slice(chunk);
            }
            if last && self.expect_response {
                apdu.push(0x00);
            }
            out.push(apdu);
        }
        out
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Command({} {:02X} {:02X} {:02X} {:02X}, {} data bytes)",
            self.name,
            self.cla,
            self.ins,
            self.p1,
            self.p2,
            self.data.len()
        )
    }
}

/// A complete response: all data (GET RESPONSE parts joined) and the final status word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Response data.
    pub data: Vec<u8>,
    /// Final status word.
    pub sw: StatusWord,
}

impl Response {
    /// Splits an R-APDU into data and SW; an R-APDU shorter than 2 bytes is malformed.
    pub fn from_rapdu(command: &'static str, rapdu: &[u8]) -> Result<Self, Error> {
        match rapdu.len() {
            0 | 1 => Err(Error::Malformed {
                command,
                detail: format!("R-APDU of {} bytes has no status word", rapdu.len()),
            }),
            n => Ok(Self {
                data: rapdu[..n - 2].to_vec(),
                sw: StatusWord::from_bytes(rapdu[n - 2], rapdu[n - 1]),
            }),
        }
    }
}

/// APDU and byte counts, each direction, as seen on the wire (every short APDU counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// C-APDUs sent (chained parts and GET RESPONSEs each count).
    pub apdus: u64,
    /// Bytes sent (C-APDUs).
    pub bytes_sent: u64,
    /// Bytes received (R-APDUs including SW).
    pub bytes_received: u64,
}

impl Stats {
    /// Sum of two counts.
    pub fn add(&mut self, other: &Stats) {
        self.apdus += other.apdus;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
    }
}

/// Upper bound on GET RESPONSE rounds (a hostile card answering 61xx forever must not hang us:
/// 64 × 256 bytes is far beyond any PIV object this crate reads).
const MAX_GET_RESPONSE: usize = 64;

/// A transport plus counters: sends [`Command`]s with chaining and GET RESPONSE.
pub struct Channel<'t> {
    transport: &'t mut dyn Transport,
    stats: Stats,
}

impl<'t> Channel<'t> {
    /// Wraps a transport.
    pub fn new(transport: &'t mut dyn Transport) -> Self {
        Self {
            transport,
            stats: Stats::default(),
        }
    }

    /// Counts so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    fn raw(&mut self, capdu: &[u8], name: &'static str) -> Result<Response, Error> {
        self.stats.apdus += 1;
        self.stats.bytes_sent += capdu.len() as u64;
        tracing::trace!(
            command = name,
            ins = capdu.get(1).copied().unwrap_or(0),
            len = capdu.len(),
            "C-APDU"
        );
        let rapdu = self.transport.transmit(capdu)?;
        self.stats.bytes_received += rapdu.len() as u64;
        let r = Response::from_rapdu(name, &rapdu)?;
        tracing::trace!(command = name, sw = %r.sw, len = r.data.len(), "R-APDU");
        Ok(r)
    }

    /// Sends a command (chained if needed), fetches all `61xx` data with GET RESPONSE and returns
    /// the joined data with the final status word. A non-9000 final SW is *returned*, not an
    /// error: callers map it with [`Response`] in context. A non-9000 SW on an intermediate chain
    /// part stops the chain and is returned as it is.
    pub fn exchange(&mut self, cmd: &Command) -> Result<Response, Error> {
        let parts = cmd.to_short_apdus();
        let n = parts.len();
        let mut resp = Response {
            data: Vec::new(),
            sw: StatusWord::Ok,
        };
        for (i, part) in parts.iter().enumerate() {
            resp = self.raw(part, cmd.name)?;
            if i + 1 < n && resp.sw != StatusWord::Ok {
                return Ok(resp);
            }
        }
        self.collect(cmd.name, resp)
    }

    /// Sends one short C-APDU built by the caller (e.g. a secure-messaging APDU, or one with an
    /// explicit Le) and fetches all `61xx` data with GET RESPONSE, like [`exchange`](Self::exchange).
    pub fn exchange_short(&mut self, name: &'static str, capdu: &[u8]) -> Result<Response, Error> {
        let resp = self.raw(capdu, name)?;
        self.collect(name, resp)
    }

    fn collect(&mut self, name: &'static str, mut resp: Response) -> Result<Response, Error> {
        let mut data = std::mem::take(&mut resp.data);
        let mut rounds = 0;
        while let StatusWord::MoreData(n) = resp.sw {
            rounds += 1;
            if rounds > MAX_GET_RESPONSE {
                return Err(Error::Malformed {
                    command: name,
                    detail: format!("more than {MAX_GET_RESPONSE} GET RESPONSE rounds"),
                });
            }
            let get = [0x00, 0xC0, 0x00, 0x00, n];
            resp = self.raw(&get, name)?;
            data.append(&mut resp.data);
        }
        Ok(Response { data, sw: resp.sw })
    }

    /// [`exchange`](Self::exchange) and require 9000; other SWs become typed errors.
    pub fn ok(&mut self, cmd: &Command) -> Result<Vec<u8>, Error> {
        let r = self.exchange(cmd)?;
        check(cmd.name, r.sw)?;
        Ok(r.data)
    }
}

/// Maps a final status word to `Ok(())` or the typed error.
pub fn check(command: &'static str, sw: StatusWord) -> Result<(), Error> {
    match sw {
        StatusWord::Ok => Ok(()),
        sw => Err(Error::Status { command, sw }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Script {
        replies: Vec<Vec<u8>>,
        sent: Vec<Vec<u8>>,
    }
    impl Transport for Script {
        fn transmit(&mut self, capdu: &[u8]) -> Result<Vec<u8>, Error> {
            self.sent.push(capdu.to_vec());
            if self.replies.is_empty() {
                return Err(Error::CardRemoved);
            }
            Ok(self.replies.remove(0))
        }
    }

    #[test]
    fn data_over_255_bytes_is_chained_with_cla_10_and_le_only_on_last() {
        let cmd = Command::new("PUT DATA", 0xDB, 0x3F, 0xFF, vec![0xAB; 600]).with_le();
        let parts = cmd.to_short_apdus();
        assert_eq!(parts.len(), 3);
        assert_eq!(&parts[0][..5], &[0x10, 0xDB, 0x3F, 0xFF, 0xFF]);
        assert_eq!(parts[0].len(), 5 + 255);
        assert_eq!(&parts[1][..5], &[0x10, 0xDB, 0x3F, 0xFF, 0xFF]);
        assert_eq!(&parts[2][..5], &[0x00, 0xDB, 0x3F, 0xFF, 90]);
        assert_eq!(parts[2].len(), 5 + 90 + 1);
        assert_eq!(*parts[2].last().unwrap(), 0x00);
    }

    #[test]
    fn case_1_and_case_2_commands_have_no_lc() {
        let c1 = Command::new("LOCK", 0x44, 0, 0, vec![]);
        assert_eq!(&*c1.to_short_apdus()[0], &[0x00, 0x44, 0x00, 0x00]);
        let c2 = Command::new("GET SERIAL", 0xF8, 0, 0, vec![]).with_le();
        assert_eq!(&*c2.to_short_apdus()[0], &[0x00, 0xF8, 0x00, 0x00, 0x00]);
    }

    #[test]
    fn get_response_loop_joins_61xx_parts() {
        let mut t = Script {
            replies: vec![
                [vec![1u8; 256], vec![0x61, 0x00]].concat(),
                [vec![2u8; 256], vec![0x61, 0x10]].concat(),
                [vec![3u8; 16], vec![0x90, 0x00]].concat(),
            ],
            sent: vec![],
        };
        let mut ch = Channel::new(&mut t);
        let data = ch
            .ok(&Command::new("GET DATA", 0xCB, 0x3F, 0xFF, vec![0x5C, 1, 0x7E]).with_le())
            .unwrap();
        assert_eq!(data.len(), 528);
        assert_eq!(ch.stats().apdus, 3);
        assert_eq!(ch.stats().bytes_received, 258 + 258 + 18);
        assert_eq!(t.sent[1], vec![0x00, 0xC0, 0x00, 0x00, 0x00]);
        assert_eq!(t.sent[2], vec![0x00, 0xC0, 0x00, 0x00, 0x10]);
    }

    #[test]
    fn error_in_the_middle_of_a_chain_stops_it() {
        let mut t = Script {
            replies: vec![vec![0x6A, 0x80]],
            sent: vec![],
        };
        let mut ch = Channel::new(&mut t);
        let e = ch
            .ok(&Command::new("PUT DATA", 0xDB, 0x3F, 0xFF, vec![0; 300]))
            .unwrap_err();
        assert!(matches!(
            e,
            Error::Status {
                sw: StatusWord::IncorrectData,
                ..
            }
        ));
        assert_eq!(t.sent.len(), 1);
    }

    #[test]
    fn endless_61xx_is_an_error_not_a_hang() {
        let mut t = Script {
            replies: vec![vec![0x61, 0x01]; 200],
            sent: vec![],
        };
        let mut ch = Channel::new(&mut t);
        let e = ch
            .ok(&Command::new("GET DATA", 0xCB, 0x3F, 0xFF, vec![]).with_le())
            .unwrap_err();
        assert!(e.to_string().contains("GET RESPONSE"), "{e}");
    }

    #[test]
    fn short_rapdu_is_malformed_not_a_panic() {
        assert!(Response::from_rapdu("X", &[0x90]).is_err());
        assert!(Response::from_rapdu("X", &[]).is_err());
    }

    #[test]
    fn status_words_round_trip_and_name_themselves() {
        for v in [
            0x9000u16, 0x6105, 0x63C2, 0x6700, 0x6883, 0x6884, 0x6982, 0x6983, 0x6985, 0x6A80,
            0x6A81, 0x6A82, 0x6A86, 0x6D00, 0x6E00, 0x6F00,
        ] {
            let sw = StatusWord::from_bytes((v >> 8) as u8, v as u8);
            assert_eq!(sw.to_u16(), v);
        }
        assert_eq!(StatusWord::from_bytes(0x63, 0xC2), StatusWord::WrongPin(2));
        assert_eq!(
            StatusWord::SecurityStatusNotSatisfied.to_string(),
            "6982 (security status not satisfied)"
        );
    }
}
