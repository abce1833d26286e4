//! The crate's one error type. Messages name the step, the field and the rule; they never contain
//! a PIN, PUK or key (see [`crate::secret`]).

use crate::lifecycle::Lifecycle;
use crate::status::StatusWord;

/// Everything that can go wrong talking to a reader or a card, or reading a card profile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The card left the reader (PC/SC `SCARD_W_REMOVED_CARD`, or the reader lost it mid-command).
    #[error("card removed")]
    CardRemoved,
    /// Another party reset the card; volatile state (authentication, PIN) is gone.
    #[error("card was reset")]
    CardReset,
    /// The reader disappeared (unplugged, or its driver went away).
    #[error("reader {reader:?} is gone")]
    ReaderGone {
        /// Reader name.
        reader: String,
    },
    /// No card in the reader.
    #[error("no card in reader {reader:?}")]
    NoCard {
        /// Reader name.
        reader: String,
    },
    /// The card answered without a status word and is still reported present.
    #[error("the card in {reader:?} stopped answering (no status word)")]
    CardMute {
        /// Reader name.
        reader: String,
    },
    /// Another application keeps the card in use.
    #[error("the card in {reader:?} is in use by another application")]
    ReaderBusy {
        /// Reader name.
        reader: String,
    },
    /// No reader of that name.
    #[error("no reader named {reader:?} (readers: {available})")]
    UnknownReader {
        /// Requested name.
        reader: String,
        /// Comma-separated list of what there is.
        available: String,
    },
    /// pcscd is not running.
    #[error("the PC/SC service (pcscd) is not running")]
    NoService,
    /// Waiting for a card (or its removal) timed out.
    #[error("timed out waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
    },
    /// Another PC/SC failure.
    #[error("PC/SC: {0}")]
    Pcsc(#[from] pcsc::Error),
    /// The card answered a command with an error status word.
    #[error("card answered {sw} to {command}")]
    Status {
        /// Command name.
        command: &'static str,
        /// What the card said.
        sw: StatusWord,
    },
    /// Wrong PIN or PUK (SW 63Cx).
    #[error("wrong {which}: {tries_left} tries left")]
    WrongPin {
        /// "PIN" or "PUK".
        which: &'static str,
        /// Retries left on the card.
        tries_left: u8,
    },
    /// PIN or PUK blocked (SW 6983).
    #[error("{which} is blocked")]
    PinBlocked {
        /// "PIN" or "PUK".
        which: &'static str,
    },
    /// The card refused the management key (mutual authentication step 2 failed).
    #[error("the card refused the {algorithm} management key (wrong key)")]
    ManagementKeyRejected {
        /// Algorithm tried.
        algorithm: &'static str,
    },
    /// The card's answer to our challenge was wrong: it does not know the management key.
    #[error("the card did not prove knowledge of the management key: not the expected card")]
    CardAuthenticationFailed,
    /// SELECT of the PIV AID answered 6A82.
    #[error("the card has no PIV application (SELECT answered 6A82)")]
    NoPivApplication,
    /// The card is not in the lifecycle state this operation needs.
    #[error("card is {found}, {operation} needs {needed}")]
    WrongLifecycle {
        /// What was attempted.
        operation: &'static str,
        /// The state found.
        found: Lifecycle,
        /// The state(s) needed.
        needed: &'static str,
    },
    /// The card in the reader is not the one prepared.
    #[error("card serial {found} is not the prepared card {expected}")]
    WrongCard {
        /// Serial prepared.
        expected: u32,
        /// Serial found.
        found: u32,
    },
    /// A response did not have the expected structure.
    #[error("malformed answer to {command}: {detail}")]
    Malformed {
        /// Command name.
        command: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// BER-TLV decoding failed.
    #[error("BER-TLV: {0}")]
    Tlv(String),
    /// A data object read back differs from what was written.
    #[error("read-back of {object} differs from what was written")]
    ReadBackMismatch {
        /// Object name.
        object: String,
    },
    /// A certificate given for a slot is unusable.
    #[error("certificate for slot {slot}: {rule}")]
    Certificate {
        /// Slot name, e.g. "9C".
        slot: String,
        /// What is wrong.
        rule: String,
    },
    /// A test signature did not verify with the certificate's public key.
    #[error("test signature with slot {slot} does not verify with its certificate's public key")]
    SignatureInvalid {
        /// Slot name.
        slot: String,
    },
    /// A card profile is invalid.
    #[error("card profile {file}: {key}: {rule}")]
    Profile {
        /// File name.
        file: String,
        /// Key path inside the file.
        key: String,
        /// The rule broken.
        rule: String,
    },
    /// Basic Access Control or secure messaging failed (ICAO 9303 Part 11): wrong MRZ, a
    /// response MAC that does not verify, a malformed protected response. Never holds a key.
    #[error("BAC: {rule}")]
    Bac {
        /// What failed.
        rule: String,
    },
    /// An LDS data group or EF.SOD is malformed, or passive authentication failed
    /// (ICAO 9303 Part 10, Part 11 §5.1).
    #[error("LDS {object}: {rule}")]
    Lds {
        /// The file or structure, e.g. "EF.SOD", "DG1".
        object: String,
        /// The rule broken.
        rule: String,
    },
    /// Caller input is invalid.
    #[error("{field}: {rule}")]
    Invalid {
        /// Field name.
        field: String,
        /// The rule broken.
        rule: String,
    },
    /// An error during a named personalization step.
    #[error("{source} during '{step}'")]
    Step {
        /// Step name, e.g. "write certificate 9C".
        step: String,
        /// What went wrong.
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// The error without its step wrapper(s).
    pub fn root(&self) -> &Error {
        match self {
            Error::Step { source, .. } => source.root(),
            e => e,
        }
    }

    /// The step the error happened in, if any.
    pub fn step(&self) -> Option<&str> {
        match self {
            Error::Step { step, .. } => Some(step),
            _ => None,
        }
    }

    /// True if the card was pulled, reset, or the reader went away: the card- or reader-side
    /// failures after which the job must be recovered on the next insertion.
    pub fn is_card_gone(&self) -> bool {
        matches!(
            self.root(),
            Error::CardRemoved | Error::CardReset | Error::ReaderGone { .. } | Error::NoCard { .. }
        )
    }

    /// Name the step `self` happened in (kept if it already names one): "… during 'step'".
    pub fn in_step(self, step: &str) -> Error {
        match self {
            e @ Error::Step { .. } => e,
            e => Error::Step {
                step: step.to_string(),
                source: Box::new(e),
            },
        }
    }
}
