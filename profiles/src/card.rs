//! Card profiles (`profiles/card/<name>.toml`): what a chip is personalized with, in the PIV
//! vocabulary of NIST SP 800-73-4 (key references, Part 1 §3.2) and SP 800-78-4 (algorithms):
//! which slots get which key, which data objects are written, the management-key algorithm of
//! the per-card key, the transport credentials of blank cards, and the PIN/PUK policy.
//!
//! Plain data checked at load time; the host side of the card (`personalization`) acts on it.
//! Unknown keys are refused (`deny_unknown_fields`); every error names the file, the key and
//! the rule, never a credential's value.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::{ProfileError, Result};

/// PIV key slots (SP 800-73-4 Part 1 Table 4b key references), as profiles name them ("9a").
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize, serde::Serialize,
)]
pub enum Slot {
    /// 9A PIV Authentication.
    #[serde(rename = "9a", alias = "9A")]
    Authentication,
    /// 9C Digital Signature (PIN always before use).
    #[serde(rename = "9c", alias = "9C")]
    Signature,
    /// 9D Key Management.
    #[serde(rename = "9d", alias = "9D")]
    KeyManagement,
    /// 9E Card Authentication.
    #[serde(rename = "9e", alias = "9E")]
    CardAuthentication,
}

impl Slot {
    /// Key reference.
    pub fn key_ref(self) -> u8 {
        match self {
            Self::Authentication => 0x9A,
            Self::Signature => 0x9C,
            Self::KeyManagement => 0x9D,
            Self::CardAuthentication => 0x9E,
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02X}", self.key_ref())
    }
}

/// PIV management key algorithm (SP 800-78-4 Table 6-2 algorithm identifiers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MgmtAlgorithm {
    /// Triple DES, three keys (identifier 03; 24-byte key, 8-byte blocks).
    #[serde(rename = "3des")]
    TripleDes,
    /// AES-128 (identifier 08).
    Aes128,
    /// AES-192 (identifier 0A).
    Aes192,
    /// AES-256 (identifier 0C).
    Aes256,
}

impl MgmtAlgorithm {
    /// Algorithm identifier as used in P1 of GENERAL AUTHENTICATE and in SET MANAGEMENT KEY.
    pub fn id(self) -> u8 {
        match self {
            Self::TripleDes => 0x03,
            Self::Aes128 => 0x08,
            Self::Aes192 => 0x0A,
            Self::Aes256 => 0x0C,
        }
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::TripleDes | Self::Aes192 => 24,
            Self::Aes128 => 16,
            Self::Aes256 => 32,
        }
    }

    /// Cipher block length in bytes (the challenge/witness length of GENERAL AUTHENTICATE).
    pub fn block_len(self) -> usize {
        match self {
            Self::TripleDes => 8,
            _ => 16,
        }
    }

    /// Name used in profiles and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::TripleDes => "3des",
            Self::Aes128 => "aes128",
            Self::Aes192 => "aes192",
            Self::Aes256 => "aes256",
        }
    }
}

impl fmt::Display for MgmtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Key algorithm of a slot. Only ECC P-256 (SP 800-78-4 algorithm 11) is supported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyAlgorithm {
    /// ECC curve P-256.
    P256,
}

/// `[card]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardSection {
    /// Profile name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

/// `[transport]`: credentials of a blank card as the card vendor ships it. Industry defaults,
/// not secrets, but `Debug` still leaves them out.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportSection {
    /// Algorithm of the transport management key.
    pub management_key_algorithm: MgmtAlgorithm,
    /// Transport management key, hex.
    pub management_key: String,
    /// Transport PIN.
    pub pin: String,
    /// Transport PUK.
    pub puk: String,
}

impl fmt::Debug for TransportSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TransportSection({}, <redacted>)",
            self.management_key_algorithm
        )
    }
}

/// `[management_key]`: the per-card key installed during personalization.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagementKeySection {
    /// Its algorithm (the value comes from the caller, derived in the HSM).
    pub algorithm: MgmtAlgorithm,
}

/// `[[keys]]`: one on-card key pair.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySection {
    /// PIV slot.
    pub slot: Slot,
    /// Key algorithm.
    pub algorithm: KeyAlgorithm,
    /// Name of the certificate profile (`profiles/cert/<name>.toml`) the CA issues with.
    pub certificate_profile: String,
    /// The card wants the PIN immediately before every use (slot 9C).
    #[serde(default)]
    pub pin_before_each_use: bool,
}

/// `[objects]`: which data objects are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectsSection {
    /// CHUID 5FC102.
    pub chuid: bool,
    /// CCC 5FC107.
    pub ccc: bool,
    /// Discovery 7E.
    pub discovery: bool,
    /// Printed Information 5FC109.
    pub printed_information: bool,
    /// Key History 5FC10C.
    pub key_history: bool,
}

/// FASC-N choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FascnKind {
    /// SP 800-73-4 non-federal issuer FASC-N (9999 / 9999 / 999999).
    NonFederal,
}

/// `[chuid]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChuidSection {
    /// FASC-N.
    pub fascn: FascnKind,
    /// Also write the Cardholder UUID (tag 36) = the GUID.
    #[serde(default)]
    pub cardholder_uuid: bool,
}

/// `[printed_information]`: issuer-level fields; holder fields come per card.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrintedSection {
    /// Issuer identification (tag 06, ≤ 15 bytes).
    pub issuer: String,
    /// Employee affiliation (tag 02, ≤ 20 bytes).
    #[serde(default)]
    pub employee_affiliation: String,
    /// Organization affiliation line 1 (tag 07).
    #[serde(default)]
    pub organization_line1: Option<String>,
    /// Organization affiliation line 2 (tag 08).
    #[serde(default)]
    pub organization_line2: Option<String>,
}

/// `[pin]` / `[puk]`: policy for the holder's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretPolicy {
    /// Minimum length (≥ 6).
    pub min_length: usize,
    /// Maximum length (≤ 8).
    pub max_length: usize,
    /// Digits only.
    #[serde(default = "yes")]
    pub numeric: bool,
    /// Retry counter. For the PIN, `prepare` checks that the blank card reports it (VERIFY
    /// without data, 63Cx) before any write; the card contract has no command to set it, and
    /// PIV has no status query for the PUK, so for the PUK it is documentation only.
    pub retries: u8,
    /// The holder's value must differ from the transport value.
    #[serde(default = "yes")]
    pub differ_from_transport: bool,
}

fn yes() -> bool {
    true
}

/// The whole card profile file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardProfile {
    /// `[card]`.
    pub card: CardSection,
    /// `[transport]`.
    pub transport: TransportSection,
    /// `[management_key]`.
    pub management_key: ManagementKeySection,
    /// `[[keys]]`.
    pub keys: Vec<KeySection>,
    /// `[objects]`.
    pub objects: ObjectsSection,
    /// `[chuid]`.
    pub chuid: ChuidSection,
    /// `[printed_information]`.
    pub printed_information: PrintedSection,
    /// `[pin]`.
    pub pin: SecretPolicy,
    /// `[puk]`.
    pub puk: SecretPolicy,
}

impl CardProfile {
    /// Slots in plan order.
    pub fn slots(&self) -> Vec<Slot> {
        self.keys.iter().map(|k| k.slot).collect()
    }
}

/// Parse and check one card profile from text; `file` is used in errors.
pub fn parse_card_profile(file: &Path, text: &str) -> Result<CardProfile> {
    let p: CardProfile = crate::parse_toml(file, text)?;
    check(&p).map_err(|(key, rule)| ProfileError::Rule {
        file: file.to_owned(),
        key,
        rule,
    })?;
    Ok(p)
}

/// Load one card profile file.
pub fn load_card_profile(path: &Path) -> Result<CardProfile> {
    parse_card_profile(path, &crate::read(path)?)
}

type Broken = (String, String);

fn check(p: &CardProfile) -> std::result::Result<(), Broken> {
    let bad = |key: &str, rule: &str| Err((key.to_owned(), rule.to_owned()));
    if p.card.name.trim().is_empty() {
        return bad("card.name", "must not be empty");
    }
    check_transport(&p.transport)?;
    check_keys(&p.keys)?;
    for (name, pol, kind) in [("pin", &p.pin, "PIN"), ("puk", &p.puk, "PUK")] {
        if pol.min_length < 6 || pol.max_length > 8 || pol.min_length > pol.max_length {
            return Err((
                format!("{name}.min_length"),
                format!(
                    "{kind} length range {}..={} must lie within 6..=8 (SP 800-73-4 Part 2 §2.4.3)",
                    pol.min_length, pol.max_length
                ),
            ));
        }
        if pol.retries == 0 || pol.retries > 15 {
            return bad(
                &format!("{name}.retries"),
                "must be 1 to 15 (63Cx reports at most 15)",
            );
        }
    }
    if p.objects.printed_information {
        check_printed(&p.printed_information)?;
    }
    Ok(())
}

/// The transport key is hex of its algorithm's length; PIN and PUK are 6 to 8 ASCII characters
/// (SP 800-73-4 Part 2 §2.4.3). Messages never echo a value.
fn check_transport(t: &TransportSection) -> std::result::Result<(), Broken> {
    let digits: Vec<u8> = t
        .management_key
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if !digits.len().is_multiple_of(2) || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err((
            "transport.management_key".into(),
            "must be hexadecimal digits, two per byte".into(),
        ));
    }
    let alg = t.management_key_algorithm;
    if digits.len() / 2 != alg.key_len() {
        return Err((
            "transport.management_key".into(),
            format!(
                "an {alg} key is {} bytes long, got {}",
                alg.key_len(),
                digits.len() / 2
            ),
        ));
    }
    for (key, value) in [("transport.pin", &t.pin), ("transport.puk", &t.puk)] {
        if !(6..=8).contains(&value.len()) || !value.is_ascii() {
            return Err((key.into(), "must be 6 to 8 ASCII characters".into()));
        }
    }
    Ok(())
}

fn check_keys(keys: &[KeySection]) -> std::result::Result<(), Broken> {
    if keys.is_empty() {
        return Err((
            "keys".into(),
            "at least one [[keys]] entry is required".into(),
        ));
    }
    for (i, k) in keys.iter().enumerate() {
        if keys[..i].iter().any(|o| o.slot == k.slot) {
            return Err((
                format!("keys[{i}].slot"),
                format!("slot {} appears twice", k.slot),
            ));
        }
        if k.certificate_profile.trim().is_empty() {
            return Err((
                format!("keys[{i}].certificate_profile"),
                "must name a certificate profile".into(),
            ));
        }
        if k.slot == Slot::Signature && !k.pin_before_each_use {
            return Err((
                format!("keys[{i}].pin_before_each_use"),
                "slot 9c always needs the PIN before each use (SP 800-73-4 Part 1 §3.2.2)".into(),
            ));
        }
    }
    Ok(())
}

/// Printed Information field lengths (SP 800-73-4 Table 11).
fn check_printed(pi: &PrintedSection) -> std::result::Result<(), Broken> {
    if pi.issuer.is_empty() || pi.issuer.len() > 15 {
        return Err((
            "printed_information.issuer".into(),
            "must be 1 to 15 bytes (SP 800-73-4 Table 11)".into(),
        ));
    }
    let lines = [
        ("employee_affiliation", Some(&pi.employee_affiliation)),
        ("organization_line1", pi.organization_line1.as_ref()),
        ("organization_line2", pi.organization_line2.as_ref()),
    ];
    for (k, v) in lines {
        if v.is_some_and(|s| s.len() > 20) {
            return Err((
                format!("printed_information.{k}"),
                "must be at most 20 bytes (SP 800-73-4 Table 11)".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../card/card-esign.toml");

    fn parse(text: &str) -> Result<CardProfile> {
        parse_card_profile(Path::new("card/card-esign.toml"), text)
    }

    #[test]
    fn shipped_esign_profile_loads_with_9a_and_9c() {
        let p = parse(SHIPPED).unwrap();
        assert_eq!(p.slots(), vec![Slot::Authentication, Slot::Signature]);
        assert_eq!(p.management_key.algorithm, MgmtAlgorithm::Aes128);
        assert_eq!(
            p.transport.management_key_algorithm,
            MgmtAlgorithm::TripleDes
        );
        assert!(p.objects.chuid && p.objects.printed_information);
    }

    #[test]
    fn slots_name_their_key_reference() {
        assert_eq!(Slot::Signature.to_string(), "9C");
        assert_eq!(Slot::Authentication.key_ref(), 0x9A);
    }

    #[test]
    fn unknown_key_is_refused_naming_file_and_key() {
        let text = SHIPPED.replace("[objects]", "[objects]\nbiometrics = true");
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains("card-esign.toml") && e.contains("biometrics"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_slot_and_bad_pin_policy_are_refused() {
        let text = SHIPPED.replace("slot = \"9c\"", "slot = \"9a\"");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("keys[1].slot") && e.contains("twice"), "{e}");
        let text = SHIPPED.replacen("min_length = 6", "min_length = 4", 1);
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("pin.min_length"), "{e}");
    }

    #[test]
    fn wrong_transport_key_length_is_refused_without_echoing_it() {
        let text = SHIPPED.replace(
            "010203040506070801020304050607080102030405060708",
            "0102030405060708",
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains("transport.management_key") && !e.contains("0102"),
            "{e}"
        );
    }
}
