//! The steps of the personalization executor ([`crate::executor`]) as values: each phase's
//! plan is a list of [`CardStep`]s, and the executor runs exactly that list, so what it
//! reports and what it does cannot drift apart. The step names (`Display`) are what progress
//! reports and errors show ("card removed during 'write certificate 9C'").

use std::fmt;

use crate::piv::objects::tags;
use profiles::card::Slot;

use crate::piv::objects::certificate_tag;

/// A PIV data object the executor writes and reads back (NIST SP 800-73-4 Part 1 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PivObject {
    /// X.509 Certificate for a key slot (Table 10: 5FC105, 5FC10A, …).
    Certificate(Slot),
    /// Card Holder Unique Identifier.
    Chuid,
    /// Card Capability Container.
    Ccc,
    /// Discovery Object.
    Discovery,
    /// Printed Information.
    PrintedInformation,
    /// Key History Object.
    KeyHistory,
}

impl PivObject {
    /// The object's BER-TLV tag (SP 800-73-4 Part 1 Table 3).
    pub fn tag(self) -> u32 {
        match self {
            PivObject::Certificate(slot) => certificate_tag(slot),
            PivObject::Chuid => tags::CHUID,
            PivObject::Ccc => tags::CCC,
            PivObject::Discovery => tags::DISCOVERY,
            PivObject::PrintedInformation => tags::PRINTED,
            PivObject::KeyHistory => tags::KEY_HISTORY,
        }
    }
}

impl fmt::Display for PivObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PivObject::Certificate(slot) => write!(f, "certificate {slot}"),
            PivObject::Chuid => f.write_str("CHUID"),
            PivObject::Ccc => f.write_str("CCC"),
            PivObject::Discovery => f.write_str("Discovery"),
            PivObject::PrintedInformation => f.write_str("Printed Information"),
            PivObject::KeyHistory => f.write_str("Key History"),
        }
    }
}

/// One step of a personalization phase (prepare, complete, reset).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CardStep {
    /// SELECT the PIV application.
    SelectPiv,
    /// GET SERIAL.
    ReadSerial,
    /// GET VERSION.
    ReadVersion,
    /// Read the lifecycle (BLANK / PERSONALIZING / LOCKED).
    ReadLifecycle,
    /// VERIFY without data: the PIN retry counter.
    ReadPinRetries,
    /// Mutual authentication with the transport management key.
    AuthenticateTransportKey,
    /// SET MANAGEMENT KEY to the per-card key.
    SetCardKey,
    /// Mutual authentication with the per-card management key.
    AuthenticateCardKey,
    /// GENERATE ASYMMETRIC KEY PAIR in a slot.
    GenerateKey(Slot),
    /// The chip generates its Chip Authentication and Active Authentication keys (ICAO
    /// application; DG14, DG15).
    GenerateChipKeys,
    /// PUT DATA of an object.
    Write(PivObject),
    /// CHANGE REFERENCE DATA of the PIN (transport value → the holder's).
    ChangePin,
    /// CHANGE REFERENCE DATA of the PUK.
    ChangePuk,
    /// VERIFY the holder's PIN.
    VerifyPin,
    /// GET DATA of an object, compared with what was written.
    ReadBack(PivObject),
    /// VERIFY the PIN right before a slot that wants it before each use.
    VerifyPinFor(Slot),
    /// Sign with a slot and verify with its certificate's key.
    TestSign(Slot),
    /// Write the ICAO 9303 LDS files and the BAC key seed.
    WriteLds,
    /// Read the LDS back through PACE with the CAN, with Chip Authentication and Active
    /// Authentication.
    ReadLdsThroughPace,
    /// Read the LDS back through BAC.
    ReadLdsThroughBac,
    /// Passive authentication of what was read (ICAO 9303 Part 11 §5.1).
    PassiveAuthentication,
    /// SELECT the PIV application again after the LDS.
    SelectPivAgain,
    /// LOCK: the card becomes LOCKED.
    Lock,
    /// Read the lifecycle after LOCK.
    ReadLifecycleAfterLock,
    /// RESET TO BLANK.
    ResetToBlank,
    /// Read the lifecycle after the reset.
    ReadLifecycleAfterReset,
}

impl fmt::Display for CardStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CardStep::SelectPiv => f.write_str("select PIV application"),
            CardStep::ReadSerial => f.write_str("read serial"),
            CardStep::ReadVersion => f.write_str("read version"),
            CardStep::ReadLifecycle => f.write_str("read lifecycle"),
            CardStep::ReadPinRetries => f.write_str("read PIN retry counter"),
            CardStep::AuthenticateTransportKey => f.write_str("authenticate transport key"),
            CardStep::SetCardKey => f.write_str("set card management key"),
            CardStep::AuthenticateCardKey => f.write_str("authenticate card management key"),
            CardStep::GenerateKey(slot) => write!(f, "generate key {slot}"),
            CardStep::GenerateChipKeys => {
                f.write_str("generate Chip and Active Authentication keys")
            }
            CardStep::Write(o) => write!(f, "write {o}"),
            CardStep::ChangePin => f.write_str("change PIN"),
            CardStep::ChangePuk => f.write_str("change PUK"),
            CardStep::VerifyPin => f.write_str("verify PIN"),
            CardStep::ReadBack(o) => write!(f, "read back {o}"),
            CardStep::VerifyPinFor(slot) => write!(f, "verify PIN for {slot}"),
            CardStep::TestSign(slot) => write!(f, "test-sign {slot}"),
            CardStep::WriteLds => f.write_str("write LDS"),
            CardStep::ReadLdsThroughPace => {
                f.write_str("read LDS through PACE, Chip and Active Authentication")
            }
            CardStep::ReadLdsThroughBac => f.write_str("read LDS through BAC"),
            CardStep::PassiveAuthentication => f.write_str("passive authentication"),
            CardStep::SelectPivAgain => f.write_str("select PIV application again"),
            CardStep::Lock => f.write_str("lock"),
            CardStep::ReadLifecycleAfterLock => f.write_str("read lifecycle after lock"),
            CardStep::ResetToBlank => f.write_str("reset to blank"),
            CardStep::ReadLifecycleAfterReset => f.write_str("read lifecycle after reset"),
        }
    }
}

/// The LDS steps of a complete phase without PACE (BAC only), between the test signatures and
/// the lock.
pub const LDS_STEPS: [CardStep; 4] = [
    CardStep::WriteLds,
    CardStep::ReadLdsThroughBac,
    CardStep::PassiveAuthentication,
    CardStep::SelectPivAgain,
];
