//! YubiHSM 2 backend (Yubico YubiHSM 2 command reference, through the `yubihsm` crate) over
//! USB or yubihsm-connector HTTP. Station labels are YubiHSM object labels (at most 40 bytes,
//! "Object Label" in the YubiHSM 2 concepts). Key pairs are `ecp256` asymmetric keys with only
//! the `sign-ecdsa` capability; secrets are `hmac-sha256` keys with `sign-hmac`/`verify-hmac`.
//! Neither gets `exportable-under-wrap`, so no key can leave the device, not even wrapped.
//!
//! `yubihsm` 0.42 uses the previous RustCrypto generation (p256 0.13, ecdsa 0.16); this module
//! meets it with plain bytes: the raw public point goes to a p256 0.14 SubjectPublicKeyInfo,
//! the DER signature is re-parsed and low-S normalised with p256 0.14.

use std::sync::Mutex;

use yubihsm::object::{self, Filter, Label};
use yubihsm::{Capability, Client, Connector, Credentials, Domain};
use zeroize::Zeroizing;

use crate::{HsmConfig, HsmError, KeyInfo, KeyKind, KeyStore, Result, YubihsmConnector};

/// YubiHSM 2 object labels are 40 bytes.
pub const MAX_LABEL_LEN: usize = object::LABEL_SIZE;

/// Keys the station creates live in domain 1 (the auth key must have access to it).
const DOMAIN: Domain = Domain::DOM1;

/// First object id tried for new keys (ids below are left for manual set-up, e.g. auth keys).
const FIRST_KEY_ID: object::Id = 0x0100;

/// Key store over a YubiHSM 2 (or, in tests, the `yubihsm` crate's MockHsm).
pub struct YubiHsmStore {
    client: Client,
    /// Serialises "check label, pick id, generate" so two threads cannot take the same label.
    generate: Mutex<()>,
}

impl std::fmt::Debug for YubiHsmStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YubiHsmStore").finish_non_exhaustive()
    }
}

fn op_err(op: &'static str, e: impl std::fmt::Display) -> HsmError {
    HsmError::Operation {
        op,
        reason: e.to_string(),
    }
}

fn kind_of(info: &object::Info) -> Option<KeyKind> {
    use yubihsm::Algorithm;
    match (info.object_type, info.algorithm) {
        (
            object::Type::AsymmetricKey,
            Algorithm::Asymmetric(yubihsm::asymmetric::Algorithm::EcP256),
        ) => Some(KeyKind::EcP256),
        (object::Type::HmacKey, Algorithm::Hmac(yubihsm::hmac::Algorithm::Sha256)) => {
            Some(KeyKind::HmacSha256)
        }
        _ => None,
    }
}

impl YubiHsmStore {
    /// Wrap an open client (tests pass a MockHsm client: `Connector::mockhsm()`).
    pub fn from_client(client: Client) -> Self {
        YubiHsmStore {
            client,
            generate: Mutex::new(()),
        }
    }

    /// Connect and authenticate with auth key `auth_key_id` and its password. The client keeps
    /// the derived session credentials to re-establish a lost session by itself.
    pub fn connect(
        connector: &YubihsmConnector,
        auth_key_id: u16,
        password: Zeroizing<String>,
    ) -> Result<Self> {
        let (conn, desc) = match connector {
            YubihsmConnector::Http { addr, port } => {
                let cfg = yubihsm::HttpConfig {
                    addr: addr.clone(),
                    port: *port,
                    ..Default::default()
                };
                (
                    Connector::http(&cfg),
                    format!("yubihsm-connector http://{addr}:{port}"),
                )
            }
            YubihsmConnector::Usb { serial } => {
                let serial = match serial {
                    None => None,
                    Some(s) => Some(s.parse().map_err(|_| HsmError::Operation {
                        op: "connect to YubiHSM 2",
                        reason: format!("usb serial {s:?} is not a YubiHSM serial number (digits)"),
                    })?),
                };
                let cfg = yubihsm::UsbConfig {
                    serial,
                    timeout_ms: yubihsm::UsbConfig::DEFAULT_TIMEOUT_MILLIS,
                };
                (Connector::usb(&cfg), "YubiHSM 2 over USB".to_owned())
            }
        };
        Self::open_with(conn, &desc, auth_key_id, password)
    }

    /// Authenticate over an already built connector (`desc` names it in errors and logs).
    fn open_with(
        conn: Connector,
        desc: &str,
        auth_key_id: u16,
        password: Zeroizing<String>,
    ) -> Result<Self> {
        let credentials = Credentials::from_password(auth_key_id, password.as_bytes());
        drop(password);
        let client = Client::open(conn, credentials, true).map_err(|e| match e.kind() {
            yubihsm::client::ErrorKind::AuthenticationError => {
                HsmError::Login(format!("{desc} refused auth key {auth_key_id}: {e}"))
            }
            _ => HsmError::Module {
                path: desc.into(),
                reason: e.to_string(),
            },
        })?;
        tracing::info!(connector = %desc, auth_key_id, "YubiHSM 2 session opened");
        Ok(Self::from_client(client))
    }

    /// Open from an `[hsm]` config with `backend = "yubihsm"`, reading the password from its source.
    pub fn from_config(cfg: &HsmConfig) -> Result<Self> {
        match cfg {
            HsmConfig::Yubihsm {
                connector,
                auth_key_id,
                password,
            } => Self::connect(connector, *auth_key_id, password.read()?),
            HsmConfig::Pkcs11 { .. } => Err(HsmError::Operation {
                op: "open YubiHSM store",
                reason: "the [hsm] config names backend \"pkcs11\", not \"yubihsm\"".into(),
            }),
        }
    }

    /// The underlying client (for diagnostics and tests).
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn label(label: &str) -> Result<Label> {
        crate::check_label(label, MAX_LABEL_LEN)?;
        Label::from_bytes(label.as_bytes()).map_err(|e| HsmError::InvalidLabel {
            label: label.to_owned(),
            rule: e.to_string(),
        })
    }

    /// The station keys labelled `label` (asymmetric P-256 or HMAC-SHA256 objects).
    fn lookup(&self, label: &str) -> Result<Option<(object::Id, KeyKind)>> {
        let l = Self::label(label)?;
        let entries = self
            .client
            .list_objects(&[Filter::Label(l)])
            .map_err(|e| op_err("list objects", e))?;
        for entry in entries {
            let info = self
                .client
                .get_object_info(entry.object_id, entry.object_type)
                .map_err(|e| op_err("get object info", e))?;
            if let Some(kind) = kind_of(&info) {
                return Ok(Some((entry.object_id, kind)));
            }
        }
        Ok(None)
    }

    fn require(&self, label: &str, expected: KeyKind) -> Result<object::Id> {
        match self.lookup(label)? {
            None => Err(HsmError::KeyNotFound {
                label: label.to_owned(),
            }),
            Some((_, actual)) if actual != expected => Err(HsmError::WrongKeyKind {
                label: label.to_owned(),
                expected,
                actual,
            }),
            Some((id, _)) => Ok(id),
        }
    }

    /// Refuse a taken label (any object type) and pick the lowest free object id.
    fn prepare_new(&self, label: &str) -> Result<(Label, object::Id)> {
        let l = Self::label(label)?;
        let all = self
            .client
            .list_objects(&[])
            .map_err(|e| op_err("list objects", e))?;
        let mut used = std::collections::BTreeSet::new();
        for entry in &all {
            used.insert(entry.object_id);
            let info = self
                .client
                .get_object_info(entry.object_id, entry.object_type)
                .map_err(|e| op_err("get object info", e))?;
            if info.label == l {
                return Err(HsmError::KeyExists {
                    label: label.to_owned(),
                });
            }
        }
        let id = (FIRST_KEY_ID..=object::Id::MAX)
            .find(|id| !used.contains(id))
            .ok_or(HsmError::Operation {
                op: "generate key",
                reason: "no free object id left on the YubiHSM".into(),
            })?;
        Ok((l, id))
    }

    fn spki(&self, id: object::Id) -> Result<Vec<u8>> {
        let op = "read public key";
        let pk = self.client.get_public_key(id).map_err(|e| op_err(op, e))?;
        // The YubiHSM returns X || Y without the SEC 1 `04` prefix.
        let mut point = Vec::with_capacity(1 + pk.bytes.len());
        point.push(0x04);
        point.extend_from_slice(&pk.bytes);
        crate::p256_point_to_spki(&point, op)
    }
}

impl KeyStore for YubiHsmStore {
    fn backend(&self) -> &'static str {
        "yubihsm"
    }

    fn generate_p256(&self, label: &str) -> Result<KeyInfo> {
        let _g = self.generate.lock().unwrap_or_else(|p| p.into_inner());
        let (l, id) = self.prepare_new(label)?;
        let id = self
            .client
            .generate_asymmetric_key(
                id,
                l,
                DOMAIN,
                Capability::SIGN_ECDSA,
                yubihsm::asymmetric::Algorithm::EcP256,
            )
            .map_err(|e| op_err("generate P-256 key pair", e))?;
        tracing::info!(
            label,
            object_id = id,
            "generated P-256 key pair on YubiHSM 2"
        );
        Ok(KeyInfo {
            label: label.to_owned(),
            kind: KeyKind::EcP256,
            spki_der: Some(self.spki(id)?),
        })
    }

    fn generate_hmac_secret(&self, label: &str) -> Result<KeyInfo> {
        let _g = self.generate.lock().unwrap_or_else(|p| p.into_inner());
        let (l, id) = self.prepare_new(label)?;
        let id = self
            .client
            .generate_hmac_key(
                id,
                l,
                DOMAIN,
                Capability::SIGN_HMAC | Capability::VERIFY_HMAC,
                yubihsm::hmac::Algorithm::Sha256,
            )
            .map_err(|e| op_err("generate HMAC secret", e))?;
        tracing::info!(
            label,
            object_id = id,
            "generated HMAC-SHA256 secret on YubiHSM 2"
        );
        Ok(KeyInfo {
            label: label.to_owned(),
            kind: KeyKind::HmacSha256,
            spki_der: None,
        })
    }

    fn destroy(&self, label: &str) -> Result<bool> {
        let _g = self.generate.lock().unwrap_or_else(|p| p.into_inner());
        let Some((id, kind)) = self.lookup(label)? else {
            return Ok(false);
        };
        let object_type = match kind {
            KeyKind::EcP256 => object::Type::AsymmetricKey,
            KeyKind::HmacSha256 => object::Type::HmacKey,
        };
        self.client
            .delete_object(id, object_type)
            .map_err(|e| op_err("destroy key", e))?;
        tracing::info!(label, object_id = id, "destroyed key on YubiHSM 2");
        Ok(true)
    }

    fn find(&self, label: &str) -> Result<Option<KeyInfo>> {
        let Some((id, kind)) = self.lookup(label)? else {
            return Ok(None);
        };
        let spki_der = match kind {
            KeyKind::EcP256 => Some(self.spki(id)?),
            KeyKind::HmacSha256 => None,
        };
        Ok(Some(KeyInfo {
            label: label.to_owned(),
            kind,
            spki_der,
        }))
    }

    fn list(&self) -> Result<Vec<KeyInfo>> {
        let entries = self
            .client
            .list_objects(&[])
            .map_err(|e| op_err("list objects", e))?;
        let mut out = Vec::new();
        for entry in entries {
            if !matches!(
                entry.object_type,
                object::Type::AsymmetricKey | object::Type::HmacKey
            ) {
                continue;
            }
            let info = self
                .client
                .get_object_info(entry.object_id, entry.object_type)
                .map_err(|e| op_err("get object info", e))?;
            let Some(kind) = kind_of(&info) else { continue };
            let Ok(label) = info.label.try_as_str() else {
                continue; // not a station key: labels the station writes are UTF-8
            };
            let spki_der = match kind {
                KeyKind::EcP256 => Some(self.spki(entry.object_id)?),
                KeyKind::HmacSha256 => None,
            };
            out.push(KeyInfo {
                label: label.to_owned(),
                kind,
                spki_der,
            });
        }
        out.sort_by(|a, b| a.label.cmp(&b.label));
        Ok(out)
    }

    fn public_key_spki(&self, label: &str) -> Result<Vec<u8>> {
        let id = self.require(label, KeyKind::EcP256)?;
        self.spki(id)
    }

    fn sign_p256_sha256(&self, label: &str, message: &[u8]) -> Result<Vec<u8>> {
        let op = "sign (sign-ecdsa)";
        let id = self.require(label, KeyKind::EcP256)?;
        let digest = crate::sha256(message);
        let der = self
            .client
            .sign_ecdsa_prehash_raw(id, digest.to_vec())
            .map_err(|e| op_err(op, e))?;
        tracing::debug!(label, "signed with P-256 key on YubiHSM 2");
        crate::normalise_p256_signature(&der, op)
    }

    fn hmac_sha256(&self, label: &str, data: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let op = "HMAC (sign-hmac)";
        let id = self.require(label, KeyKind::HmacSha256)?;
        let tag = Zeroizing::new(
            self.client
                .sign_hmac(id, data.to_vec())
                .map_err(|e| op_err(op, e))?
                .into_vec(),
        );
        let mut out = Zeroizing::new([0u8; 32]);
        if tag.len() != out.len() {
            return Err(HsmError::Operation {
                op,
                reason: format!("the YubiHSM returned {} bytes, expected 32", tag.len()),
            });
        }
        out.copy_from_slice(&tag);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;

    fn mock() -> YubiHsmStore {
        let client = Client::open(Connector::mockhsm(), Credentials::default(), true)
            .expect("MockHsm opens with the default credentials");
        YubiHsmStore::from_client(client)
    }

    crate::conformance_tests!(mock());

    #[test]
    fn label_longer_than_40_bytes_is_refused_with_the_rule() {
        let store = mock();
        let label = "x".repeat(41);
        let err = store.generate_p256(&label).unwrap_err();
        assert!(
            matches!(&err, HsmError::InvalidLabel { rule, .. } if rule.contains("at most 40 bytes")),
            "{err}"
        );
        // 40 bytes is fine.
        store.generate_p256(&"y".repeat(40)).expect("40-byte label");
    }

    #[test]
    fn keys_are_created_without_export_capability() {
        let store = mock();
        store.generate_p256("ec").unwrap();
        store.generate_hmac_secret("mac").unwrap();
        for label in ["ec", "mac"] {
            let (id, kind) = store.lookup(label).unwrap().unwrap();
            let ty = match kind {
                KeyKind::EcP256 => object::Type::AsymmetricKey,
                KeyKind::HmacSha256 => object::Type::HmacKey,
            };
            let info = store.client().get_object_info(id, ty).unwrap();
            assert!(
                !info
                    .capabilities
                    .contains(Capability::EXPORTABLE_UNDER_WRAP),
                "{label}"
            );
            assert_eq!(info.origin, object::Origin::Generated, "{label}");
        }
    }

    #[test]
    fn no_yubihsm_password_appears_in_logs_or_errors() {
        let logs = crate::test_support::capture_logs();
        let wrong = "yubi-wrong-pw-4f3e2d";
        let err = YubiHsmStore::open_with(
            Connector::mockhsm(),
            "MockHsm",
            1,
            Zeroizing::new(wrong.into()),
        )
        .unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(matches!(err, HsmError::Login(_)), "{shown}");
        // MockHsm's auth key 1 is derived from the password "password".
        let store = YubiHsmStore::open_with(
            Connector::mockhsm(),
            "MockHsm",
            1,
            Zeroizing::new("password".into()),
        )
        .unwrap();
        store.generate_p256("k").unwrap();
        store.sign_p256_sha256("k", b"m").unwrap();
        let text = logs.text();
        assert!(text.contains("YubiHSM 2 session opened"), "{text}");
        assert!(!text.contains(wrong), "the password leaked into the log");
        assert!(
            !shown.contains(wrong),
            "the password leaked into the error: {shown}"
        );
        assert!(!format!("{store:?}").contains("password"));
    }

    #[test]
    fn missing_password_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("no-such-password-file");
        let cfg = HsmConfig::Yubihsm {
            connector: YubihsmConnector::Http {
                addr: "127.0.0.1".into(),
                port: 1,
            },
            auth_key_id: 1,
            password: crate::SecretSource::File(absent.clone()),
        };
        let err = crate::open(&cfg).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("file {}", absent.display())),
            "{err}"
        );
    }

    #[test]
    fn unreachable_connector_is_a_clear_error_without_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "yubi-secret-93c1\n").unwrap();
        let cfg = HsmConfig::Yubihsm {
            // Port 1 on loopback: nothing listens there.
            connector: YubihsmConnector::Http {
                addr: "127.0.0.1".into(),
                port: 1,
            },
            auth_key_id: 1,
            password: crate::SecretSource::File(pw),
        };
        let err = crate::open(&cfg).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(
            shown.contains("yubihsm-connector http://127.0.0.1:1"),
            "{shown}"
        );
        assert!(!shown.contains("yubi-secret-93c1"), "{shown}");
    }
}
