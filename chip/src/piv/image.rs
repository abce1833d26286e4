//! The PIV application in the card image: a public part (retry counters, the management key's
//! algorithm, each key slot's algorithm, origin and public point, the data objects) and a
//! secret part sealed in the image (PIN, PUK, management key, private key scalars). Restoring
//! checks every field and names the one that is wrong.

use std::collections::BTreeMap;

use p256::ecdsa::SigningKey;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::{
    is_key_slot, is_writable_tag, KeyOrigin, Piv, Reference, SlotKey, ALG_ECC_P256, MAX_OBJECT_LEN,
};
use crate::mgmt::{MgmtAlgorithm, MgmtKey};
use crate::os::AppImage;

/// Public part of the PIV state in the card image.
#[derive(Serialize, Deserialize)]
struct PivPublic {
    pin_retries_max: u8,
    pin_retries_left: u8,
    puk_retries_max: u8,
    puk_retries_left: u8,
    management_key_algorithm: u8,
    keys: BTreeMap<String, PublicKeyEntry>,
    objects: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct PublicKeyEntry {
    algorithm: u8,
    origin: KeyOrigin,
    public_point: String,
}

/// Secret part of the PIV state (sealed in the image).
#[derive(Serialize, Deserialize)]
struct PivSecrets {
    pin: String,
    puk: String,
    management_key: String,
    private_keys: BTreeMap<String, String>,
}

impl Drop for PivSecrets {
    fn drop(&mut self) {
        self.pin.zeroize();
        self.puk.zeroize();
        self.management_key.zeroize();
        for v in self.private_keys.values_mut() {
            v.zeroize();
        }
    }
}

/// Errors restoring the PIV state from an image, naming the field.
fn image_err(field: &str, rule: &str) -> crate::ChipError {
    crate::ChipError::Image(format!("piv.{field}: {rule}"))
}

fn parse_hex_u32(s: &str) -> Option<u32> {
    u32::from_str_radix(s, 16).ok()
}

fn parse_hex_u8(s: &str) -> Option<u8> {
    u8::from_str_radix(s, 16).ok()
}

impl Piv {
    /// Restore from the public and secret parts of an image.
    pub(crate) fn from_image(
        public: &serde_json::Value,
        secrets: &str,
    ) -> Result<Piv, crate::ChipError> {
        let public: PivPublic = serde_json::from_value(public.clone())
            .map_err(|e| image_err("public", &format!("does not parse: {e}")))?;
        let secrets: PivSecrets = serde_json::from_str(secrets)
            .map_err(|_| image_err("secrets", "sealed PIV secrets do not parse"))?;
        let hex_secret = |field: &str, s: &str, len: usize| {
            let v = Zeroizing::new(hex::decode(s).map_err(|_| image_err(field, "not hex"))?);
            if v.len() != len {
                return Err(image_err(field, &format!("must be {len} bytes")));
            }
            Ok::<_, crate::ChipError>(v)
        };
        let check_retries = |field: &str, max: u8, left: u8| {
            if max == 0 || max > 15 || left > max {
                return Err(image_err(
                    field,
                    "retry counters must satisfy 0 <= left <= max <= 15, max >= 1",
                ));
            }
            Ok(())
        };
        check_retries(
            "pin_retries",
            public.pin_retries_max,
            public.pin_retries_left,
        )?;
        check_retries(
            "puk_retries",
            public.puk_retries_max,
            public.puk_retries_left,
        )?;
        let pin = Reference {
            value: hex_secret("pin", &secrets.pin, 8)?,
            max: public.pin_retries_max,
            left: public.pin_retries_left,
        };
        let puk = Reference {
            value: hex_secret("puk", &secrets.puk, 8)?,
            max: public.puk_retries_max,
            left: public.puk_retries_left,
        };
        let alg = MgmtAlgorithm::from_id(public.management_key_algorithm)
            .ok_or_else(|| image_err("management_key_algorithm", "must be 03, 08, 0A or 0C"))?;
        let mkey = hex_secret("management_key", &secrets.management_key, alg.key_len())?;
        let mgmt = MgmtKey::new(alg, &mkey)
            .map_err(|_| image_err("management_key", "length does not match algorithm"))?;
        let mut keys = BTreeMap::new();
        for (slot_hex, entry) in &public.keys {
            let slot = parse_hex_u8(slot_hex)
                .filter(|s| is_key_slot(*s))
                .ok_or_else(|| image_err("keys", &format!("{slot_hex} is not a key slot")))?;
            if entry.algorithm != ALG_ECC_P256 {
                return Err(image_err("keys", "only algorithm 11 (P-256) is supported"));
            }
            let scalar_hex = secrets.private_keys.get(slot_hex).ok_or_else(|| {
                image_err("private_keys", &format!("missing key for slot {slot_hex}"))
            })?;
            let scalar = hex_secret("private_keys", scalar_hex, 32)?;
            let key = SigningKey::from_slice(&scalar)
                .map_err(|_| image_err("private_keys", "not a valid P-256 scalar"))?;
            let sk = SlotKey {
                origin: entry.origin,
                key,
            };
            if hex::encode(sk.public_point()) != entry.public_point.to_lowercase() {
                return Err(image_err(
                    "keys",
                    &format!("public point of slot {slot_hex} does not match its private key"),
                ));
            }
            keys.insert(slot, sk);
        }
        let mut objects = BTreeMap::new();
        for (tag_hex, value_hex) in &public.objects {
            let tag = parse_hex_u32(tag_hex)
                .filter(|t| is_writable_tag(*t))
                .ok_or_else(|| {
                    image_err(
                        "objects",
                        &format!("{tag_hex} is not a PIV data object tag"),
                    )
                })?;
            let value = hex::decode(value_hex)
                .map_err(|_| image_err("objects", &format!("{tag_hex} is not hex")))?;
            if value.len() > MAX_OBJECT_LEN + 8 {
                return Err(image_err(
                    "objects",
                    &format!("{tag_hex} longer than {MAX_OBJECT_LEN}"),
                ));
            }
            objects.insert(tag, value);
        }
        Ok(Piv {
            pin,
            puk,
            mgmt,
            keys,
            objects,
            pin_verified: false,
            pin_fresh_for_always: false,
            pending: None,
            mgmt_authenticated_when_locked: false,
        })
    }

    /// The PIV part of the card image: the public state, and the secrets (PIN, PUK, management
    /// key, private keys) that the image seals.
    pub(super) fn to_image(&self) -> AppImage {
        let public = PivPublic {
            pin_retries_max: self.pin.max,
            pin_retries_left: self.pin.left,
            puk_retries_max: self.puk.max,
            puk_retries_left: self.puk.left,
            management_key_algorithm: self.mgmt.alg.id(),
            keys: self
                .keys
                .iter()
                .map(|(slot, k)| {
                    (
                        format!("{slot:02x}"),
                        PublicKeyEntry {
                            algorithm: ALG_ECC_P256,
                            origin: k.origin,
                            public_point: hex::encode(k.public_point()),
                        },
                    )
                })
                .collect(),
            objects: self
                .objects
                .iter()
                .map(|(tag, v)| (format!("{tag:x}"), hex::encode(v)))
                .collect(),
        };
        let secrets = PivSecrets {
            pin: hex::encode(self.pin.value.as_slice()),
            puk: hex::encode(self.puk.value.as_slice()),
            management_key: hex::encode(self.mgmt.key.as_slice()),
            private_keys: self
                .keys
                .iter()
                .map(|(slot, k)| {
                    let scalar = Zeroizing::new(k.key.to_bytes());
                    (format!("{slot:02x}"), hex::encode(scalar.as_slice()))
                })
                .collect(),
        };
        AppImage {
            public: serde_json::to_value(&public).unwrap_or(serde_json::Value::Null),
            secrets: Zeroizing::new(serde_json::to_string(&secrets).unwrap_or_default()),
        }
    }
}
