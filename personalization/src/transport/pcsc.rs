//! PC/SC transport through pcscd (`pcsc` crate; PC/SC Workgroup specification part 5): list
//! readers, wait for card insertion/removal with `SCardGetStatusChange`, connect T=1 in exclusive
//! mode and hold one `SCardBeginTransaction` for a whole personalization. pcsc failures become
//! the crate's typed errors (card removed / reset, reader gone, no card).

use std::ffi::CString;
use std::time::{Duration, Instant};

use pcsc::{Context, Disposition, Protocols, ReaderState, Scope, ShareMode, State};

use super::Transport;
use crate::error::Error;

/// How long [`Pcsc::connect`] waits for another application to release the card.
const CONNECT_BUSY_WAIT: Duration = Duration::from_secs(5);

/// A reader and what is in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaderInfo {
    /// Reader name as pcscd gives it.
    pub name: String,
    /// A card is present.
    pub card_present: bool,
    /// The card's ATR, if present.
    pub atr: Vec<u8>,
}

/// A PC/SC resource-manager context (one per thread that talks to readers).
pub struct Pcsc {
    ctx: Context,
}

fn map_err(e: pcsc::Error, reader: &str) -> Error {
    match e {
        pcsc::Error::RemovedCard => Error::CardRemoved,
        pcsc::Error::ResetCard => Error::CardReset,
        pcsc::Error::NoSmartcard => Error::NoCard {
            reader: reader.to_string(),
        },
        pcsc::Error::ReaderUnavailable
        | pcsc::Error::UnknownReader
        | pcsc::Error::NoReadersAvailable => Error::ReaderGone {
            reader: reader.to_string(),
        },
        pcsc::Error::NoService | pcsc::Error::ServiceStopped => Error::NoService,
        other => Error::Pcsc(other),
    }
}

impl Pcsc {
    /// Connects to pcscd.
    pub fn establish() -> Result<Self, Error> {
        let ctx = Context::establish(Scope::User).map_err(|e| map_err(e, ""))?;
        Ok(Self { ctx })
    }

    fn reader_cstr(name: &str) -> Result<CString, Error> {
        CString::new(name).map_err(|_| Error::Invalid {
            field: "reader".into(),
            rule: "reader name must not contain NUL".into(),
        })
    }

    /// Reader names.
    pub fn reader_names(&self) -> Result<Vec<String>, Error> {
        let names = self.ctx.list_readers_owned().map_err(|e| map_err(e, ""))?;
        Ok(names
            .iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect())
    }

    /// Readers with card presence and ATR (one `SCardGetStatusChange` with zero timeout).
    pub fn readers(&self) -> Result<Vec<ReaderInfo>, Error> {
        let names = self.ctx.list_readers_owned().map_err(|e| map_err(e, ""))?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut states: Vec<ReaderState> = names
            .iter()
            .map(|n| ReaderState::new(n.clone(), State::UNAWARE))
            .collect();
        match self.ctx.get_status_change(Duration::ZERO, &mut states) {
            Ok(()) | Err(pcsc::Error::Timeout) => {}
            Err(e) => return Err(map_err(e, "")),
        }
        Ok(states
            .iter()
            .map(|s| ReaderInfo {
                name: s.name().to_string_lossy().into_owned(),
                card_present: s.event_state().contains(State::PRESENT),
                atr: if s.event_state().contains(State::PRESENT) {
                    s.atr().to_vec()
                } else {
                    Vec::new()
                },
            })
            .collect())
    }

    fn check_known(&self, reader: &str) -> Result<CString, Error> {
        let names = self.reader_names()?;
        if !names.iter().any(|n| n == reader) {
            return Err(Error::UnknownReader {
                reader: reader.to_string(),
                available: names.join(", "),
            });
        }
        Self::reader_cstr(reader)
    }

    fn wait_for(&self, reader: &str, present: bool, timeout: Duration) -> Result<(), Error> {
        let name = self.check_known(reader)?;
        let what = if present {
            format!("a card in {reader:?}")
        } else {
            format!("the card to leave {reader:?}")
        };
        let deadline = Instant::now() + timeout;
        let mut states = [ReaderState::new(name, State::UNAWARE)];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.ctx.get_status_change(left, &mut states) {
                Ok(()) => {}
                Err(pcsc::Error::Timeout) => return Err(Error::Timeout { what }),
                Err(e) => return Err(map_err(e, reader)),
            }
            let ev = states[0].event_state();
            if ev.intersects(State::UNKNOWN | State::UNAVAILABLE) {
                return Err(Error::ReaderGone {
                    reader: reader.to_string(),
                });
            }
            if ev.contains(State::PRESENT) == present && !ev.contains(State::MUTE) {
                return Ok(());
            }
            if left.is_zero() {
                return Err(Error::Timeout { what });
            }
            states[0].sync_current_state();
        }
    }

    /// Waits until a card is present in `reader` (`SCardGetStatusChange`).
    pub fn wait_for_card(&self, reader: &str, timeout: Duration) -> Result<(), Error> {
        self.wait_for(reader, true, timeout)
    }

    /// Waits until `reader` is empty.
    pub fn wait_for_removal(&self, reader: &str, timeout: Duration) -> Result<(), Error> {
        self.wait_for(reader, false, timeout)
    }

    /// Connects to the card in `reader`: T=1, exclusive.
    pub fn connect(&self, reader: &str) -> Result<PcscCard, Error> {
        let name = self.check_known(reader)?;
        // Another PC/SC client (a PKCS#11 module scanning readers, a monitor tool) may hold the
        // card for a moment: retry a sharing violation for up to CONNECT_BUSY_WAIT.
        let deadline = Instant::now() + CONNECT_BUSY_WAIT;
        let card = loop {
            match self.ctx.connect(&name, ShareMode::Exclusive, Protocols::T1) {
                Ok(c) => break c,
                Err(pcsc::Error::SharingViolation) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(pcsc::Error::SharingViolation) => {
                    return Err(Error::ReaderBusy {
                        reader: reader.to_string(),
                    })
                }
                Err(e) => return Err(map_err(e, reader)),
            }
        };
        tracing::debug!(reader, "connected T=1 exclusive");
        Ok(PcscCard {
            card,
            reader: reader.to_string(),
        })
    }
}

/// A connected card (exclusive). Disconnecting (drop) resets it, so no authentication state
/// outlives our session.
pub struct PcscCard {
    card: pcsc::Card,
    reader: String,
}

impl PcscCard {
    /// Reader name.
    pub fn reader(&self) -> &str {
        &self.reader
    }

    /// Starts a PC/SC transaction that lasts until the returned value is ended or dropped.
    pub fn begin(&mut self) -> Result<PcscTransaction<'_>, Error> {
        let reader = self.reader.clone();
        let tx = self.card.transaction().map_err(|e| map_err(e, &reader))?;
        Ok(PcscTransaction {
            tx: Some(tx),
            reader,
            buf: vec![0u8; pcsc::MAX_BUFFER_SIZE],
        })
    }
}

/// One PC/SC transaction (`SCardBeginTransaction` … `SCardEndTransaction`): the [`Transport`]
/// the executor uses.
pub struct PcscTransaction<'c> {
    tx: Option<pcsc::Transaction<'c>>,
    reader: String,
    buf: Vec<u8>,
}

impl PcscTransaction<'_> {
    /// Ends the transaction, leaving the card as it is.
    pub fn end(mut self) -> Result<(), Error> {
        if let Some(tx) = self.tx.take() {
            tx.end(Disposition::LeaveCard)
                .map_err(|(_, e)| map_err(e, &self.reader))?;
        }
        Ok(())
    }

    /// Classifies an unexpected transmit failure by asking pcscd for the card's status: a card
    /// that left the reader within [`MUTE_GRACE`] is [`Error::CardRemoved`] whatever the
    /// transmit error was (vpcd reports a card torn mid-command as a failed transaction before
    /// pcscd's poll of the reader notices the removal, later when the machine is busy).
    fn classify(&self, e: pcsc::Error) -> Error {
        let typed = map_err(e, &self.reader);
        if !matches!(typed, Error::Pcsc(_)) {
            return typed;
        }
        match self.watch_removal() {
            Some(e) if !matches!(e, Error::Pcsc(_)) => e,
            _ => typed,
        }
    }
}

/// How long a card that answered without a status word, or whose transmit failed, is watched
/// for removal.
const MUTE_GRACE: Duration = Duration::from_secs(3);

impl PcscTransaction<'_> {
    /// Classifies an answer without status word: removed / reset if pcscd reports so within
    /// [`MUTE_GRACE`], else a mute card.
    fn mute_card(&self) -> Error {
        self.watch_removal().unwrap_or_else(|| Error::CardMute {
            reader: self.reader.clone(),
        })
    }

    /// Asks pcscd for the card's status until it reports the card removed or reset (that
    /// error) or [`MUTE_GRACE`] has passed with the card present (None). A status query that
    /// fails otherwise ends the watch with its error.
    fn watch_removal(&self) -> Option<Error> {
        let deadline = Instant::now() + MUTE_GRACE;
        while let Some(tx) = &self.tx {
            match tx.status2_owned() {
                Err(pcsc::Error::RemovedCard) | Err(pcsc::Error::NoSmartcard) => {
                    return Some(Error::CardRemoved)
                }
                Err(pcsc::Error::ResetCard) => return Some(Error::CardReset),
                Err(e) => return Some(map_err(e, &self.reader)),
                Ok(st) if !st.status().contains(pcsc::Status::PRESENT) => {
                    return Some(Error::CardRemoved)
                }
                Ok(_) => {}
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        None
    }
}

impl Transport for PcscTransaction<'_> {
    fn transmit(&mut self, capdu: &[u8]) -> Result<Vec<u8>, Error> {
        let Some(tx) = self.tx.as_ref() else {
            return Err(Error::CardRemoved);
        };
        match tx.transmit(capdu, &mut self.buf) {
            Ok(r) if r.len() >= 2 => Ok(r.to_vec()),
            Ok(_) => {
                // No status word: vpcd (and some readers) report a card that vanished mid-command
                // as an empty answer before pcscd notices the removal. Ask pcscd until it knows.
                let err = self.mute_card();
                tracing::debug!(reader = %self.reader, error = %err, "answer without status word");
                Err(err)
            }
            Err(e) => {
                let err = self.classify(e);
                tracing::debug!(reader = %self.reader, error = %err, "transmit failed");
                Err(err)
            }
        }
    }
}

/// The name of the first reader whose name contains `needle` (for CLIs: `--reader "PCD 00 01"`).
pub fn find_reader(pcsc: &Pcsc, needle: &str) -> Result<String, Error> {
    let names = pcsc.reader_names()?;
    pick_reader(&names, needle)
}

/// The reader named exactly `needle`, else the one reader whose name contains it. A part that
/// matches several readers is refused with the matches listed (never one picked silently).
pub fn pick_reader(names: &[String], needle: &str) -> Result<String, Error> {
    if let Some(n) = names.iter().find(|n| n.as_str() == needle) {
        return Ok(n.clone());
    }
    let matches: Vec<&String> = names.iter().filter(|n| n.contains(needle)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::UnknownReader {
            reader: needle.to_string(),
            available: names.join(", "),
        }),
        many => Err(Error::Invalid {
            field: "reader".into(),
            rule: format!(
                "{needle:?} matches {} readers ({}); give a longer part or the full name",
                many.len(),
                many.iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

#[cfg(test)]
mod pick_reader_tests {
    use super::pick_reader;

    fn names() -> Vec<String> {
        [
            "Virtual PCD 00 00",
            "Virtual PCD C 00 00",
            "Virtual PCD C 00 01",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    #[test]
    fn a_part_matching_two_readers_is_refused_listing_both() {
        let e = pick_reader(&names(), "C 00").unwrap_err().to_string();
        assert!(
            e.contains("\"Virtual PCD C 00 00\"") && e.contains("\"Virtual PCD C 00 01\""),
            "{e}"
        );
        assert!(e.contains("reader"), "{e}");
    }

    #[test]
    fn an_exact_name_or_a_unique_part_picks_that_reader() {
        assert_eq!(
            pick_reader(&names(), "Virtual PCD 00 00").unwrap(),
            "Virtual PCD 00 00"
        );
        assert_eq!(
            pick_reader(&names(), "C 00 01").unwrap(),
            "Virtual PCD C 00 01"
        );
        assert!(pick_reader(&names(), "nope").is_err());
    }
}
