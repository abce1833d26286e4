//! The card profile (`profiles/card/*.toml`) as typed values, and the personalization plan it
//! gives: which PIV slots get which key (SP 800-73-4 Part 1 §3.2 key references, SP 800-78-4
//! algorithms), which data objects are written, the management-key algorithm of the per-card key,
//! the transport credentials of blank cards, and the PIN/PUK policy.
//!
//! Unknown keys are refused (`deny_unknown_fields`); every error names the file, the key and the
//! rule. (This belongs in the `profiles` crate eventually; it lives here until that move.)

use std::path::Path;

use serde::Deserialize;

use crate::error::Error;
use crate::piv::Slot;
use crate::secret::{ManagementKey, MgmtAlgorithm, Pin, PinKind};

/// Key algorithm of a slot. Only ECC P-256 (SP 800-78-4 algorithm 11) is supported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyAlgorithm {
    /// ECC curve P-256.
    P256,
}

/// `[card]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardSection {
    /// Profile name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

/// `[transport]`: credentials of a blank card as the card vendor ships it.
#[derive(Clone, Deserialize)]
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

impl std::fmt::Debug for TransportSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TransportSection({}, <redacted>)",
            self.management_key_algorithm
        )
    }
}

/// `[management_key]`: the per-card key installed during personalization.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagementKeySection {
    /// Its algorithm (the value comes from the caller, derived in the HSM).
    pub algorithm: MgmtAlgorithm,
}

/// `[[keys]]`: one on-card key pair.
#[derive(Clone, Debug, Deserialize)]
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
#[derive(Clone, Copy, Debug, Deserialize)]
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
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChuidSection {
    /// FASC-N.
    pub fascn: FascnKind,
    /// Also write the Cardholder UUID (tag 36) = the GUID.
    #[serde(default)]
    pub cardholder_uuid: bool,
}

/// `[printed_information]`: issuer-level fields; holder fields come per card.
#[derive(Clone, Debug, Deserialize)]
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
#[derive(Clone, Copy, Debug, Deserialize)]
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
#[derive(Clone, Debug, Deserialize)]
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
    /// Reads and validates a card profile file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Profile {
            file: file.clone(),
            key: "(file)".into(),
            rule: format!("cannot be read: {e}"),
        })?;
        Self::parse(&file, &text)
    }

    /// Parses and validates profile text; `file` is used in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, Error> {
        let p: CardProfile = toml::from_str(text).map_err(|e| Error::Profile {
            file: file.into(),
            key: "(syntax)".into(),
            rule: e.message().to_string()
                + &e.span()
                    .map(|s| {
                        let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                        format!(" (line {line})")
                    })
                    .unwrap_or_default(),
        })?;
        p.validate(file)?;
        Ok(p)
    }

    fn validate(&self, file: &str) -> Result<(), Error> {
        let bad = |key: &str, rule: String| Error::Profile {
            file: file.into(),
            key: key.into(),
            rule,
        };
        if self.card.name.trim().is_empty() {
            return Err(bad("card.name", "must not be empty".into()));
        }
        self.transport_key().map_err(|e| {
            bad(
                "transport.management_key",
                match e {
                    Error::Invalid { rule, .. } => rule,
                    other => other.to_string(),
                },
            )
        })?;
        Pin::new(PinKind::Pin, &self.transport.pin)
            .map_err(|_| bad("transport.pin", "must be 6 to 8 ASCII characters".into()))?;
        Pin::new(PinKind::Puk, &self.transport.puk)
            .map_err(|_| bad("transport.puk", "must be 6 to 8 ASCII characters".into()))?;
        if self.keys.is_empty() {
            return Err(bad(
                "keys",
                "at least one [[keys]] entry is required".into(),
            ));
        }
        for (i, k) in self.keys.iter().enumerate() {
            if self.keys[..i].iter().any(|o| o.slot == k.slot) {
                return Err(bad(
                    &format!("keys[{i}].slot"),
                    format!("slot {} appears twice", k.slot),
                ));
            }
            if k.certificate_profile.trim().is_empty() {
                return Err(bad(
                    &format!("keys[{i}].certificate_profile"),
                    "must name a certificate profile".into(),
                ));
            }
            if k.slot == Slot::Signature && !k.pin_before_each_use {
                return Err(bad(
                    &format!("keys[{i}].pin_before_each_use"),
                    "slot 9c always needs the PIN before each use (SP 800-73-4 Part 1 §3.2.2)"
                        .into(),
                ));
            }
        }
        for (name, pol, kind) in [("pin", &self.pin, "PIN"), ("puk", &self.puk, "PUK")] {
            if pol.min_length < 6 || pol.max_length > 8 || pol.min_length > pol.max_length {
                return Err(bad(
                    &format!("{name}.min_length"),
                    format!(
                        "{kind} length range {}..={} must lie within 6..=8 (SP 800-73-4 Part 2 §2.4.3)",
                        pol.min_length, pol.max_length
                    ),
                ));
            }
            if pol.retries == 0 || pol.retries > 15 {
                return Err(bad(
                    &format!("{name}.retries"),
                    "must be 1 to 15 (63Cx reports at most 15)".into(),
                ));
            }
        }
        let pi = &self.printed_information;
        if self.objects.printed_information {
            if pi.issuer.is_empty() || pi.issuer.len() > 15 {
                return Err(bad(
                    "printed_information.issuer",
                    "must be 1 to 15 bytes (SP 800-73-4 Table 11)".into(),
                ));
            }
            if pi.employee_affiliation.len() > 20 {
                return Err(bad(
                    "printed_information.employee_affiliation",
                    "must be at most 20 bytes (SP 800-73-4 Table 11)".into(),
                ));
            }
            for (k, v) in [
                (
                    "printed_information.organization_line1",
                    &pi.organization_line1,
                ),
                (
                    "printed_information.organization_line2",
                    &pi.organization_line2,
                ),
            ] {
                if v.as_ref().is_some_and(|s| s.len() > 20) {
                    return Err(bad(
                        k,
                        "must be at most 20 bytes (SP 800-73-4 Table 11)".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The transport management key.
    pub fn transport_key(&self) -> Result<ManagementKey, Error> {
        ManagementKey::from_hex(
            self.transport.management_key_algorithm,
            &self.transport.management_key,
        )
    }

    /// The transport PIN.
    pub fn transport_pin(&self) -> Result<Pin, Error> {
        Pin::new(PinKind::Pin, &self.transport.pin)
    }

    /// The transport PUK.
    pub fn transport_puk(&self) -> Result<Pin, Error> {
        Pin::new(PinKind::Puk, &self.transport.puk)
    }

    /// Checks a holder PIN or PUK against the policy; the error names the rule, never the value.
    pub fn check_secret(&self, value: &Pin) -> Result<(), Error> {
        let (pol, transport, field) = match value.kind() {
            PinKind::Pin => (&self.pin, self.transport_pin()?, "PIN"),
            PinKind::Puk => (&self.puk, self.transport_puk()?, "PUK"),
        };
        if value.len() < pol.min_length || value.len() > pol.max_length {
            return Err(Error::Invalid {
                field: field.into(),
                rule: format!(
                    "must be {} to {} characters long",
                    pol.min_length, pol.max_length
                ),
            });
        }
        if pol.numeric && !value.is_numeric() {
            return Err(Error::Invalid {
                field: field.into(),
                rule: "must be digits only".into(),
            });
        }
        if pol.differ_from_transport && value.same_value(&transport) {
            return Err(Error::Invalid {
                field: field.into(),
                rule: "must differ from the transport value".into(),
            });
        }
        Ok(())
    }

    /// Slots in plan order.
    pub fn slots(&self) -> Vec<Slot> {
        self.keys.iter().map(|k| k.slot).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> String {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../profiles/card/card-esign.toml"
        );
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn shipped_esign_profile_loads_with_9a_and_9c() {
        let p = CardProfile::parse("card-esign.toml", &shipped()).unwrap();
        assert_eq!(p.slots(), vec![Slot::Authentication, Slot::Signature]);
        assert_eq!(p.management_key.algorithm, MgmtAlgorithm::Aes128);
        assert_eq!(
            p.transport_key().unwrap().algorithm(),
            MgmtAlgorithm::TripleDes
        );
        assert!(p.objects.chuid && p.objects.printed_information);
    }

    #[test]
    fn unknown_key_is_refused_naming_file_and_key() {
        let text = shipped().replace("[objects]", "[objects]\nbiometrics = true");
        let e = CardProfile::parse("card-esign.toml", &text)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("card-esign.toml") && e.contains("biometrics"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_slot_and_bad_pin_policy_are_refused() {
        let text = shipped().replace("slot = \"9c\"", "slot = \"9a\"");
        let e = CardProfile::parse("f.toml", &text).unwrap_err().to_string();
        assert!(e.contains("keys[1].slot") && e.contains("twice"), "{e}");
        let text = shipped().replacen("min_length = 6", "min_length = 4", 1);
        let e = CardProfile::parse("f.toml", &text).unwrap_err().to_string();
        assert!(e.contains("pin.min_length"), "{e}");
    }

    #[test]
    fn wrong_transport_key_length_is_refused_without_echoing_it() {
        let text = shipped().replace(
            "010203040506070801020304050607080102030405060708",
            "0102030405060708",
        );
        let e = CardProfile::parse("f.toml", &text).unwrap_err().to_string();
        assert!(
            e.contains("transport.management_key") && !e.contains("0102"),
            "{e}"
        );
    }

    #[test]
    fn holder_pin_policy_is_enforced() {
        let p = CardProfile::parse("f", &shipped()).unwrap();
        assert!(p
            .check_secret(&Pin::new(PinKind::Pin, "918273").unwrap())
            .is_ok());
        let e = p
            .check_secret(&Pin::new(PinKind::Pin, "123456").unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("transport"), "{e}");
        let e = p
            .check_secret(&Pin::new(PinKind::Pin, "12a456").unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("digits"), "{e}");
        assert!(p
            .check_secret(&Pin::new(PinKind::Puk, "1234567").unwrap())
            .is_err());
    }
}
