//! The card operating system (ISO/IEC 7816-4:2020): answer-to-reset, C-APDU parsing, command
//! chaining (clause 5.3.3, CLA b5 = 0x10), response chaining with 61xx and GET RESPONSE
//! (clause 5.3.4, INS C0), application selection by DF name (clause 11.2.2 SELECT, P1 = 04,
//! right-truncated AIDs accepted), and dispatch of every other command to the selected
//! [`Application`]. The card lifecycle (BLANK → PERSONALIZING → LOCKED), the card-wide
//! "management key authenticated in this session" flag and the fault-injection settings live
//! here because they are properties of the whole chip, not of one application. Commands with
//! secure messaging (CLA 0C, clause 10) go whole to the selected application if it offers
//! secure messaging (the LDS application, ICAO 9303 Part 11 §9.8).

use crate::apdu::{response, Command};
use crate::sw::StatusWord;

/// Largest command data field accepted through chaining (bytes). Big enough for a certificate
/// object with some margin; a longer chain is answered 6700.
pub const MAX_CHAINED_DATA: usize = 8192;

/// Card lifecycle as fixed by the card contract (docs/card.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Transport credentials, nothing personalized yet.
    Blank,
    /// At least one state-changing personalization command succeeded.
    Personalizing,
    /// Personalization ended with LOCK; personalization-only commands are refused (6985).
    Locked,
}

impl Lifecycle {
    /// The byte reported by GET DATA 5FFF20.
    pub fn code(self) -> u8 {
        match self {
            Lifecycle::Blank => 0x00,
            Lifecycle::Personalizing => 0x01,
            Lifecycle::Locked => 0x02,
        }
    }

    /// Inverse of [`Lifecycle::code`].
    pub fn from_code(code: u8) -> Option<Lifecycle> {
        match code {
            0x00 => Some(Lifecycle::Blank),
            0x01 => Some(Lifecycle::Personalizing),
            0x02 => Some(Lifecycle::Locked),
            _ => None,
        }
    }

    /// Lower-case name used in images and `vchip show`.
    pub fn name(self) -> &'static str {
        match self {
            Lifecycle::Blank => "blank",
            Lifecycle::Personalizing => "personalizing",
            Lifecycle::Locked => "locked",
        }
    }
}

/// Chip-wide state an application may read and change.
#[derive(Debug)]
pub struct CardContext {
    /// Chip serial number (GET SERIAL).
    pub serial: u32,
    /// Lifecycle state (persistent).
    pub lifecycle: Lifecycle,
    /// The PIV card application administration key (9B) was authenticated in this card
    /// session (mutual or external flow). Card-wide so that the LDS application's
    /// personalization commands can rely on it (card contract); cleared by power-on / reset.
    pub mgmt_authenticated: bool,
    /// Fault injection (`vchip insert --corrupt-ef`, [`crate::Card::corrupt_ef`]): EFs whose
    /// last byte is returned with its lowest bit flipped. Not persistent.
    pub corrupt_efs: std::collections::BTreeSet<u16>,
    dirty: bool,
    wipe: bool,
}

impl CardContext {
    /// Record that persistent state changed: the image must be written before the response
    /// leaves the card.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// RESET TO BLANK was accepted: after the current command every application is wiped
    /// ([`Application::wipe`]) and the management-key authentication is forgotten.
    pub fn request_wipe(&mut self) {
        self.wipe = true;
        self.lifecycle = Lifecycle::Blank;
        self.mgmt_authenticated = false;
        self.dirty = true;
    }

    /// The card-wide LOCK (card contract; ISO 7816-9 ACTIVATE FILE): needs the management key
    /// in this session (else 6982) and the state PERSONALIZING (else 6985).
    pub fn lock(&mut self, cmd: &Command) -> Result<Vec<u8>, StatusWord> {
        if (cmd.p1, cmd.p2) != (0, 0) {
            return Err(StatusWord::IncorrectP1P2);
        }
        if !cmd.data.is_empty() {
            return Err(StatusWord::WrongLength);
        }
        if !self.mgmt_authenticated {
            return Err(StatusWord::SecurityStatusNotSatisfied);
        }
        if self.lifecycle != Lifecycle::Personalizing {
            return Err(StatusWord::ConditionsNotSatisfied);
        }
        self.lifecycle = Lifecycle::Locked;
        self.dirty = true;
        Ok(Vec::new())
    }

    /// A personalization command succeeded: BLANK becomes PERSONALIZING.
    pub fn personalization_step(&mut self) {
        if self.lifecycle == Lifecycle::Blank {
            self.lifecycle = Lifecycle::Personalizing;
        }
        self.dirty = true;
    }
}

/// Persistent state of one application, as stored in the card image.
pub struct AppImage {
    /// Public part (shown by `vchip show`, stored in clear).
    pub public: serde_json::Value,
    /// Secret part (PINs, keys); sealed before it is written.
    pub secrets: zeroize::Zeroizing<String>,
}

/// An on-card application, selected by its AID.
pub trait Application: Send {
    /// Short stable name, used as the key in the card image ("piv").
    fn name(&self) -> &'static str;
    /// Full application identifier.
    fn aid(&self) -> &'static [u8];
    /// The application was selected; returns the FCI / application property template.
    fn select(&mut self, ctx: &mut CardContext) -> Result<Vec<u8>, StatusWord>;
    /// Another application was selected: drop the volatile security state.
    fn deselect(&mut self);
    /// Cold or warm reset: drop the volatile security state.
    fn reset(&mut self);
    /// Process one complete (de-chained) command.
    fn process(&mut self, ctx: &mut CardContext, cmd: &Command) -> Result<Vec<u8>, StatusWord>;
    /// Process one command into response data and a status word. The default maps
    /// [`Application::process`]; an application that answers data together with an error
    /// status (a protected status word under secure messaging) overrides it.
    fn respond(&mut self, ctx: &mut CardContext, cmd: &Command) -> (Vec<u8>, StatusWord) {
        match self.process(ctx, cmd) {
            Ok(data) => (data, StatusWord::Ok),
            Err(sw) => (Vec::new(), sw),
        }
    }
    /// Whether commands with CLA 0C (secure messaging) are passed to this application
    /// (otherwise the OS answers 6E00).
    fn supports_secure_messaging(&self) -> bool {
        false
    }
    /// RESET TO BLANK: destroy all persistent content and return to the blank state.
    fn wipe(&mut self);
    /// Persistent state for the card image.
    fn image(&self) -> AppImage;
}

/// What processing produced: data still to be cut into 256-byte chunks, or a chunk that
/// already carries its status word (GET RESPONSE, or a protected error response).
enum Reply {
    Data(Vec<u8>),
    Chunk(Vec<u8>, StatusWord),
}

impl Reply {
    fn from_response((data, sw): (Vec<u8>, StatusWord)) -> Result<Reply, StatusWord> {
        match sw {
            StatusWord::Ok => Ok(Reply::Data(data)),
            sw if data.is_empty() => Err(sw),
            sw => Ok(Reply::Chunk(data, sw)),
        }
    }
}

struct Chain {
    header: (u8, u8, u8),
    data: Vec<u8>,
}

impl Drop for Chain {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.data);
    }
}

/// The card OS: applications, selection, chaining and response buffering.
pub struct CardOs {
    pub(crate) ctx: CardContext,
    pub(crate) apps: Vec<Box<dyn Application>>,
    selected: Option<usize>,
    chain: Option<Chain>,
    pending: Vec<u8>,
}

/// Our own answer-to-reset (ISO/IEC 7816-3 clause 8): direct convention, T=1 only, and 15
/// historical bytes in COMPACT-TLV (ISO 7816-4 clause 12.1): category 80, issuer data (tag 5)
/// "idstation", card capabilities (tag 7): selection by full and partial DF name, command
/// chaining, no extended lengths. TCK closes it as T=1 requires.
pub fn atr() -> Vec<u8> {
    let mut hist = vec![0x80, 0x59];
    hist.extend_from_slice(b"idstation");
    hist.extend_from_slice(&[0x73, 0xC0, 0x00, 0x80]);
    let mut atr = vec![0x3B, 0x80 | (hist.len() as u8 & 0x0F), 0x80, 0x01];
    atr.extend_from_slice(&hist);
    let tck = atr[1..].iter().fold(0u8, |acc, b| acc ^ b);
    atr.push(tck);
    atr
}

impl CardOs {
    pub(crate) fn new(
        serial: u32,
        lifecycle: Lifecycle,
        apps: Vec<Box<dyn Application>>,
    ) -> CardOs {
        CardOs {
            ctx: CardContext {
                serial,
                lifecycle,
                mgmt_authenticated: false,
                corrupt_efs: std::collections::BTreeSet::new(),
                dirty: false,
                wipe: false,
            },
            apps,
            selected: None,
            chain: None,
            pending: Vec::new(),
        }
    }

    /// Reset: clear every volatile state, return the ATR.
    pub(crate) fn power_on(&mut self) -> Vec<u8> {
        self.selected = None;
        self.chain = None;
        self.pending.clear();
        self.ctx.mgmt_authenticated = false;
        for app in &mut self.apps {
            app.reset();
        }
        atr()
    }

    /// Whether persistent state changed since the last call (and clear the flag).
    pub(crate) fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.ctx.dirty)
    }

    /// Process one C-APDU into an R-APDU. Never panics.
    pub(crate) fn transmit(&mut self, capdu: &[u8]) -> Vec<u8> {
        let result = self.process(capdu);
        if std::mem::take(&mut self.ctx.wipe) {
            for app in &mut self.apps {
                app.wipe();
            }
        }
        let (data, sw) = match result {
            Ok(Reply::Data(data)) => self.send_chunk(data, 256),
            Ok(Reply::Chunk(data, sw)) => (data, sw),
            Err(sw) => (Vec::new(), sw),
        };
        response(&data, sw)
    }

    fn send_chunk(&mut self, mut data: Vec<u8>, ne: usize) -> (Vec<u8>, StatusWord) {
        if data.len() <= ne {
            return (data, StatusWord::Ok);
        }
        let rest = data.split_off(ne);
        let announce = rest.len().min(256) as u8; // 256 is announced as 00
        self.pending = rest;
        (data, StatusWord::MoreData(announce))
    }

    fn process(&mut self, capdu: &[u8]) -> Result<Reply, StatusWord> {
        let cmd = match Command::parse(capdu) {
            Ok(c) => c,
            Err(sw) => {
                self.chain = None;
                self.pending.clear();
                return Err(sw);
            }
        };
        // Only the interindustry class on the basic logical channel (ISO 7816-4 clause 5.4.1):
        // CLA 0x00, 0x10 for chaining, 0x0C for secure messaging with an authenticated header.
        if cmd.cla == crate::sm::SM_CLA {
            self.chain = None;
            self.pending.clear();
            let app = self.selected.and_then(|i| self.apps.get_mut(i));
            return match app {
                Some(app) if app.supports_secure_messaging() => {
                    Reply::from_response(app.respond(&mut self.ctx, &cmd))
                }
                _ => Err(StatusWord::ClaNotSupported),
            };
        }
        if cmd.cla & !0x10 != 0x00 {
            self.chain = None;
            self.pending.clear();
            return Err(StatusWord::ClaNotSupported);
        }
        if cmd.ins == 0xC0 {
            return self.get_response(&cmd);
        }
        self.pending.clear();

        // GENERAL AUTHENTICATE (INS 86) chains a protocol's steps (ICAO 9303-11 §4.4.4.2,
        // BSI TR-03110-3 B.1): each part is answered by the application, not reassembled here.
        if cmd.ins == 0x86 {
            self.chain = None;
            return match self.selected.and_then(|i| self.apps.get_mut(i)) {
                Some(app) => Reply::from_response(app.respond(&mut self.ctx, &cmd)),
                None => Err(StatusWord::InsNotSupported),
            };
        }

        if let Some(chain) = &self.chain {
            if chain.header != (cmd.ins, cmd.p1, cmd.p2) {
                self.chain = None;
                return Err(StatusWord::LastCommandExpected);
            }
        }
        if cmd.is_chained() {
            if cmd.ins == 0xA4 {
                self.chain = None;
                return Err(StatusWord::ChainingNotSupported);
            }
            let chain = self.chain.get_or_insert_with(|| Chain {
                header: (cmd.ins, cmd.p1, cmd.p2),
                data: Vec::new(),
            });
            if chain.data.len() + cmd.data.len() > MAX_CHAINED_DATA {
                self.chain = None;
                return Err(StatusWord::WrongLength);
            }
            chain.data.extend_from_slice(&cmd.data);
            return Ok(Reply::Data(Vec::new()));
        }
        let cmd = match self.chain.take() {
            Some(mut chain) => {
                chain.data.extend_from_slice(&cmd.data);
                if chain.data.len() > MAX_CHAINED_DATA {
                    return Err(StatusWord::WrongLength);
                }
                Command {
                    cla: cmd.cla,
                    ins: cmd.ins,
                    p1: cmd.p1,
                    p2: cmd.p2,
                    data: std::mem::take(&mut chain.data),
                    ne: cmd.ne,
                }
            }
            None => cmd,
        };

        if cmd.ins == 0xA4 && cmd.p1 == 0x04 {
            return self.select(&cmd).map(Reply::Data);
        }
        match self.selected.and_then(|i| self.apps.get_mut(i)) {
            Some(app) => Reply::from_response(app.respond(&mut self.ctx, &cmd)),
            // SELECT of a file with no application selected: no such file.
            None if cmd.ins == 0xA4 => Err(StatusWord::NotFound),
            None => Err(StatusWord::InsNotSupported),
        }
    }

    fn get_response(&mut self, cmd: &Command) -> Result<Reply, StatusWord> {
        self.chain = None;
        if cmd.is_chained() {
            return Err(StatusWord::ChainingNotSupported);
        }
        if cmd.p1 != 0 || cmd.p2 != 0 {
            return Err(StatusWord::IncorrectP1P2);
        }
        if !cmd.data.is_empty() {
            return Err(StatusWord::WrongLength);
        }
        if self.pending.is_empty() {
            return Err(StatusWord::ConditionsNotSatisfied);
        }
        let pending = std::mem::take(&mut self.pending);
        let ne = cmd.ne.unwrap_or(256);
        let (data, sw) = self.send_chunk(pending, ne);
        Ok(Reply::Chunk(data, sw))
    }

    /// SELECT by DF name (P1 = 04). Selection of files (other P1) goes to the application.
    fn select(&mut self, cmd: &Command) -> Result<Vec<u8>, StatusWord> {
        if cmd.p2 != 0x00 && cmd.p2 != 0x0C {
            return Err(StatusWord::IncorrectP1P2);
        }
        if cmd.data.len() < 5 || cmd.data.len() > 16 {
            return Err(StatusWord::NotFound);
        }
        let found = self
            .apps
            .iter()
            .position(|app| app.aid().starts_with(&cmd.data));
        let Some(index) = found else {
            // A failed SELECT keeps the current application selected.
            return Err(StatusWord::NotFound);
        };
        if let Some(old) = self.selected {
            if old != index {
                if let Some(app) = self.apps.get_mut(old) {
                    app.deselect();
                }
            }
        }
        let app = self.apps.get_mut(index).ok_or(StatusWord::NotFound)?;
        let fci = app.select(&mut self.ctx)?;
        self.selected = Some(index);
        if cmd.p2 == 0x0C {
            Ok(Vec::new())
        } else {
            Ok(fci)
        }
    }
}
