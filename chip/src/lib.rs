//! The virtual ID-card chip of idstation: an ISO/IEC 7816-4 card OS ([`os`]) hosting a NIST
//! SP 800-73-4 PIV application ([`piv`]) and an ICAO Doc 9303 LDS1 eMRTD application ([`lds`])
//! read through Basic Access Control ([`bac`]) and secure messaging ([`sm`]), with its whole
//! state in one atomically written image file ([`image`]), and a vsmartcard vpcd client
//! ([`vpcd`]) that plugs it into pcscd as the `vchip` binary. Written from the standards;
//! shares no code with the host side.
//!
//! Where this crate and `personalization` look alike (BER-TLV, BAC key derivation, secure
//! messaging, EF.SOD structures), they are two implementations of the same clauses on
//! purpose: a misreading of a standard on one side is then caught by the other, instead of
//! being shared by both. Do not factor them into a common crate.
//!
//! ```
//! let mut card = chip::Card::new_blank(0x0102_0304).unwrap();
//! let atr = card.power_on();
//! assert_eq!(atr[0], 0x3B);
//! let r = card.transmit(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08]);
//! assert_eq!(&r[r.len() - 2..], &[0x90, 0x00]);
//! ```
#![forbid(unsafe_code)]

pub mod apdu;
pub mod bac;
pub mod image;
pub mod lds;
pub mod mgmt;
pub mod os;
pub mod pace;
pub mod piv;
pub mod sm;
pub mod sw;
pub mod tlv;
pub mod vpcd;

use std::path::Path;

use serde_json::json;
use zeroize::Zeroizing;

pub use os::{Application, Lifecycle};
pub use sw::StatusWord;

/// Errors of the chip crate (image files, randomness, the vpcd connection).
#[derive(Debug, thiserror::Error)]
pub enum ChipError {
    /// File system error on an image or socket error.
    #[error("{path}: {source}")]
    Io {
        /// The file or address concerned.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The image does not have the expected structure (names the field and the rule).
    #[error("card image: {0}")]
    Image(String),
    /// The image's integrity tag does not match (edited or corrupt image).
    #[error("card image: integrity check failed (the file was edited or is corrupt)")]
    Integrity,
    /// The operating system's random generator failed.
    #[error("random generator: {0}")]
    Random(String),
    /// Bad argument (names the field and the rule).
    #[error("{0}")]
    Invalid(String),
}

/// Default retry limits (card contract / issue 3).
pub const DEFAULT_PIN_RETRIES: u8 = 3;
/// Default PUK retry limit.
pub const DEFAULT_PUK_RETRIES: u8 = 10;

/// A complete chip: card OS, applications, persistent state.
pub struct Card {
    os: os::CardOs,
    salt: Vec<u8>,
}

/// Which applications a new card carries (`vchip create --no-piv / --no-lds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applications {
    /// The PIV application (NIST SP 800-73-4).
    pub piv: bool,
    /// The LDS1 eMRTD application (ICAO Doc 9303 Part 10).
    pub lds: bool,
}

impl Applications {
    /// PIV and LDS: what `vchip create` makes by default.
    pub const ALL: Applications = Applications {
        piv: true,
        lds: true,
    };
}

impl Card {
    /// A blank card with the PIV and LDS applications and default retry limits.
    pub fn new_blank(serial: u32) -> Result<Card, ChipError> {
        Card::new_blank_with(serial, DEFAULT_PIN_RETRIES, DEFAULT_PUK_RETRIES)
    }

    /// A blank card with the PIV and LDS applications and the given retry limits (1..=15 each).
    pub fn new_blank_with(
        serial: u32,
        pin_retries: u8,
        puk_retries: u8,
    ) -> Result<Card, ChipError> {
        Card::new_with_applications(serial, pin_retries, puk_retries, Applications::ALL)
    }

    /// A blank card with the chosen applications and retry limits (1..=15 each).
    pub fn new_with_applications(
        serial: u32,
        pin_retries: u8,
        puk_retries: u8,
        which: Applications,
    ) -> Result<Card, ChipError> {
        for (name, v) in [("pin_retries", pin_retries), ("puk_retries", puk_retries)] {
            if !(1..=15).contains(&v) {
                return Err(ChipError::Invalid(format!(
                    "{name} {v} out of range: must be 1..=15 (63Cx has one hex digit)"
                )));
            }
        }
        let mut apps: Vec<Box<dyn Application>> = Vec::new();
        if which.piv {
            apps.push(Box::new(piv::Piv::blank(pin_retries, puk_retries)));
        }
        if which.lds {
            apps.push(Box::new(lds::Lds::blank()));
        }
        Ok(Card {
            os: os::CardOs::new(serial, Lifecycle::Blank, apps),
            salt: image::new_salt()?,
        })
    }

    /// A card without the PIV application (SELECT of the PIV AID answers 6A82) but with the
    /// LDS application, for negative tests.
    pub fn new_without_piv(serial: u32) -> Result<Card, ChipError> {
        Card::new_with_applications(
            serial,
            DEFAULT_PIN_RETRIES,
            DEFAULT_PUK_RETRIES,
            Applications {
                piv: false,
                lds: true,
            },
        )
    }

    /// Fault injection for passive-authentication tests (card contract): whenever EF `fid`
    /// of the LDS application is read (plain or through secure messaging), the chip returns
    /// its last byte with the lowest bit flipped. The stored file is unchanged; the setting is
    /// not saved in the image.
    pub fn corrupt_ef(&mut self, fid: u16) {
        self.os.ctx.corrupt_efs.insert(fid);
    }

    /// Cold reset: returns the ATR and clears every volatile state (selection, PIN and
    /// management-key authentication, chaining, pending response).
    pub fn power_on(&mut self) -> Vec<u8> {
        self.os.power_on()
    }

    /// Process one C-APDU; returns the R-APDU including SW1 SW2. Never panics.
    pub fn transmit(&mut self, capdu: &[u8]) -> Vec<u8> {
        self.os.transmit(capdu)
    }

    /// Whether persistent state changed since the last call; clears the flag. `vchip` saves the
    /// image before it sends the response when this is true.
    pub fn take_dirty(&mut self) -> bool {
        self.os.take_dirty()
    }

    /// Chip serial number.
    pub fn serial(&self) -> u32 {
        self.os.ctx.serial
    }

    /// Lifecycle state.
    pub fn lifecycle(&self) -> Lifecycle {
        self.os.ctx.lifecycle
    }

    /// The image file contents.
    pub fn to_image_bytes(&self) -> Result<Vec<u8>, ChipError> {
        let mut apps = serde_json::Map::new();
        let mut secrets = serde_json::Map::new();
        for app in &self.os.apps {
            let img = app.image();
            apps.insert(app.name().to_string(), img.public);
            secrets.insert(
                app.name().to_string(),
                serde_json::Value::String(img.secrets.to_string()),
            );
        }
        let body = json!({
            "format": image::FORMAT,
            "version": image::VERSION,
            "serial": self.os.ctx.serial,
            "lifecycle": self.os.ctx.lifecycle.name(),
            "applications": apps,
        });
        let secrets_text = Zeroizing::new(
            serde_json::to_vec(&serde_json::Value::Object(secrets))
                .map_err(|e| ChipError::Image(format!("secrets: cannot serialize: {e}")))?,
        );
        let file = image::seal(body, &secrets_text, &self.salt)?;
        let mut out = serde_json::to_vec_pretty(&file)
            .map_err(|e| ChipError::Image(format!("cannot serialize: {e}")))?;
        out.push(b'\n');
        Ok(out)
    }

    /// Parse an image.
    pub fn from_image_bytes(bytes: &[u8]) -> Result<Card, ChipError> {
        let file: image::ImageFile = serde_json::from_slice(bytes)
            .map_err(|e| ChipError::Image(format!("not an image file: {e}")))?;
        let body = &file.body;
        if body.get("format").and_then(|v| v.as_str()) != Some(image::FORMAT) {
            return Err(ChipError::Image(format!(
                "format: must be \"{}\"",
                image::FORMAT
            )));
        }
        let version = body.get("version").and_then(|v| v.as_u64());
        if !version.is_some_and(|v| (1..=u64::from(image::VERSION)).contains(&v)) {
            return Err(ChipError::Image(format!(
                "version: must be 1..={} (this vchip reads images up to version {}; the image \
                 was written by a newer vchip or is not a vchip image)",
                image::VERSION,
                image::VERSION
            )));
        }
        let (plain, salt) = image::open(&file)?;
        let serial = body
            .get("serial")
            .and_then(|v| v.as_u64())
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| ChipError::Image("serial: must be an integer 0..=4294967295".into()))?;
        let lifecycle = match body.get("lifecycle").and_then(|v| v.as_str()) {
            Some("blank") => Lifecycle::Blank,
            Some("personalizing") => Lifecycle::Personalizing,
            Some("locked") => Lifecycle::Locked,
            _ => {
                return Err(ChipError::Image(
                    "lifecycle: must be blank, personalizing or locked".into(),
                ))
            }
        };
        let secrets: serde_json::Value = serde_json::from_slice(&plain)
            .map_err(|_| ChipError::Image("sealed secrets do not parse".into()))?;
        let apps_obj = body
            .get("applications")
            .and_then(|v| v.as_object())
            .ok_or_else(|| ChipError::Image("applications: must be an object".into()))?;
        // Version 1 images (before the LDS application) load as they were: PIV only.
        let mut apps: Vec<Box<dyn Application>> = Vec::new();
        for (name, public) in apps_obj {
            let secret = Zeroizing::new(
                secrets
                    .get(name)
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| ChipError::Image(format!("secrets of {name}: missing")))?
                    .to_string(),
            );
            match name.as_str() {
                "piv" => apps.push(Box::new(piv::Piv::from_image(public, &secret)?)),
                "lds" if version == Some(1) => {
                    return Err(ChipError::Image(
                        "applications.lds: not allowed in a version 1 image".into(),
                    ))
                }
                "lds" => apps.push(Box::new(lds::Lds::from_image(public, &secret)?)),
                other => {
                    return Err(ChipError::Image(format!(
                        "applications.{other}: unknown application"
                    )))
                }
            }
        }
        Ok(Card {
            os: os::CardOs::new(serial, lifecycle, apps),
            salt,
        })
    }

    /// Load an image file.
    pub fn load(path: &Path) -> Result<Card, ChipError> {
        let bytes = std::fs::read(path).map_err(|e| ChipError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Card::from_image_bytes(&bytes)
    }

    /// Save the image atomically (temp file, fsync, rename, fsync directory).
    pub fn save(&self, path: &Path) -> Result<(), ChipError> {
        let bytes = self.to_image_bytes()?;
        image::write_atomic(path, &bytes)
    }

    /// The public part of the image, for `vchip show` (no secrets).
    pub fn public_description(&self) -> Result<serde_json::Value, ChipError> {
        let bytes = self.to_image_bytes()?;
        let file: image::ImageFile = serde_json::from_slice(&bytes)
            .map_err(|e| ChipError::Image(format!("cannot re-read image: {e}")))?;
        Ok(file.body)
    }

    /// Names of the applications on the chip.
    pub fn application_names(&self) -> Vec<&'static str> {
        self.os.apps.iter().map(|a| a.name()).collect()
    }
}

#[cfg(test)]
mod lds_tests;
#[cfg(test)]
mod tests;
