//! Key custody for idstation: every private or secret key the station uses lives in an HSM
//! and is used only through the [`KeyStore`] trait. One module per backend:
//! [`pkcs11`] (any PKCS#11 module; SoftHSM2 by default) and [`yubihsm2`] (YubiHSM 2 over USB
//! or yubihsm-connector).
//!
//! Keys are named by label. Asymmetric keys are ECDSA P-256, generated inside the HSM,
//! non-extractable and sensitive. Signatures hash on the host (SHA-256) and send only the
//! digest, because SoftHSM2 offers only `CKM_ECDSA`. Secret keys (HMAC-SHA256) derive
//! per-card values, e.g. a card's PIV management key from its serial.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// What kind of key a label names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    /// ECDSA key pair on the NIST P-256 curve.
    EcP256,
    /// HMAC-SHA256 secret key, used to derive per-card secrets.
    HmacSha256,
}

/// A key the HSM holds, as the station sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub label: String,
    pub kind: KeyKind,
    /// SubjectPublicKeyInfo DER for key pairs; `None` for secret keys.
    pub spki_der: Option<Vec<u8>>,
}

/// Where a secret (HSM user PIN, YubiHSM auth password) comes from: a file, mode 0600, the
/// station's user's. Never the command line, never an environment variable: a station.toml
/// that still says `{ env = "NAME" }` is refused with [`ENV_SOURCE_REFUSED`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "kebab-case",
    deny_unknown_fields,
    try_from = "SecretSourceToml"
)]
pub enum SecretSource {
    /// The first line of a file (mode 0600).
    File(PathBuf),
}

/// Why `{ env = "NAME" }` is no longer a secret source, and what to write instead.
pub const ENV_SOURCE_REFUSED: &str = "secrets never come from environment variables (the \
     environment is inherited by every child process and readable in /proc/PID/environ); \
     put the secret in a file only the station's user can read (chmod 600 FILE) and write \
     { file = \"/absolute/path/FILE\" } instead";

/// Every form a secret source has had in station.toml, so that the old environment form is
/// refused with a message that says how to fix it rather than "unknown variant".
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
enum SecretSourceToml {
    File(PathBuf),
    Env(serde::de::IgnoredAny),
}

impl TryFrom<SecretSourceToml> for SecretSource {
    type Error = &'static str;
    fn try_from(raw: SecretSourceToml) -> std::result::Result<Self, Self::Error> {
        match raw {
            SecretSourceToml::File(p) => Ok(SecretSource::File(p)),
            SecretSourceToml::Env(_) => Err(ENV_SOURCE_REFUSED),
        }
    }
}

impl SecretSource {
    /// Human-readable description of where the secret comes from (never the secret itself),
    /// for error messages: `file /x/hsm-pin`.
    pub fn describe(&self) -> String {
        match self {
            SecretSource::File(path) => format!("file {}", path.display()),
        }
    }

    /// Read the secret: the file's first line without the line ending. An unreadable file or
    /// an empty secret is an [`HsmError::Secret`] naming the source (not the value).
    pub fn read(&self) -> Result<Zeroizing<String>> {
        let fail = |reason: String| HsmError::Secret {
            source_desc: self.describe(),
            reason,
        };
        let secret = match self {
            SecretSource::File(path) => {
                let whole = Zeroizing::new(
                    std::fs::read_to_string(path)
                        .map_err(|e| fail(format!("cannot be read: {e}")))?,
                );
                let first = whole.lines().next().unwrap_or("");
                Zeroizing::new(first.to_owned())
            }
        };
        if secret.is_empty() {
            return Err(fail("is empty; an HSM secret must not be empty".into()));
        }
        Ok(secret)
    }
}

/// How to reach the HSM; read from `station.toml` (`[hsm]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "kebab-case", deny_unknown_fields)]
pub enum HsmConfig {
    /// Any PKCS#11 module; the token is found by its label (slot ids move after init).
    Pkcs11 {
        module: PathBuf,
        token_label: String,
        pin: SecretSource,
        /// Extra environment for the module, e.g. `SOFTHSM2_CONF` for a private SoftHSM2 token dir.
        #[serde(default)]
        env: std::collections::BTreeMap<String, String>,
    },
    /// YubiHSM 2.
    Yubihsm {
        connector: YubihsmConnector,
        auth_key_id: u16,
        password: SecretSource,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum YubihsmConnector {
    /// yubihsm-connector over HTTP, e.g. `http://127.0.0.1:12345`.
    Http { addr: String, port: u16 },
    /// Directly over USB; `serial` picks one device when several are attached.
    Usb { serial: Option<String> },
}

/// One error enum for the crate. Messages never carry a PIN, password or key material.
#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    #[error("HSM module {path}: {reason}")]
    Module { path: PathBuf, reason: String },
    #[error("HSM token {label:?} not found")]
    TokenNotFound { label: String },
    #[error("HSM login failed: {0}")]
    Login(String),
    #[error("HSM secret source {source_desc}: {reason}")]
    Secret { source_desc: String, reason: String },
    #[error("key {label:?} not found in the HSM")]
    KeyNotFound { label: String },
    #[error("key {label:?} already exists in the HSM")]
    KeyExists { label: String },
    #[error("key {label:?} is a {actual:?} key, this operation needs {expected:?}")]
    WrongKeyKind {
        label: String,
        expected: KeyKind,
        actual: KeyKind,
    },
    #[error("HSM operation {op} failed: {reason}")]
    Operation { op: &'static str, reason: String },
    /// A key pair's private half without its public half: what a destroy interrupted between
    /// the two objects leaves (destroying it again removes the rest).
    #[error(
        "key {label:?} has no public key object in the HSM (an interrupted destroy leaves this)"
    )]
    PublicHalfMissing { label: String },
    #[error("key label {label:?} is not allowed: {rule}")]
    InvalidLabel { label: String, rule: String },
    /// The process was started without the environment a PKCS#11 module reads at
    /// `C_Initialize` (see [`process_env`]).
    #[error(
        "environment variable {name} must be {wanted:?} when the process starts (found: {found}); \
         the PKCS#11 module reads it once, at C_Initialize, and a running process does not change \
         its own environment"
    )]
    Environment {
        name: String,
        wanted: String,
        found: String,
    },
}

pub type Result<T> = std::result::Result<T, HsmError>;

/// Key custody. Implementations must be usable from several threads.
pub trait KeyStore: Send + Sync {
    /// Short backend name for logs and `ca show` ("pkcs11", "yubihsm").
    fn backend(&self) -> &'static str;

    /// Generate a P-256 key pair under `label` (non-extractable, sensitive). Fails with
    /// [`HsmError::KeyExists`] if the label is taken.
    fn generate_p256(&self, label: &str) -> Result<KeyInfo>;

    /// Generate an HMAC-SHA256 secret key under `label` (non-extractable, sensitive).
    fn generate_hmac_secret(&self, label: &str) -> Result<KeyInfo>;

    /// Find a key by label.
    fn find(&self, label: &str) -> Result<Option<KeyInfo>>;

    /// Every key the station can see, sorted by label.
    fn list(&self) -> Result<Vec<KeyInfo>>;

    /// SubjectPublicKeyInfo DER of the P-256 key `label`.
    fn public_key_spki(&self, label: &str) -> Result<Vec<u8>>;

    /// ECDSA P-256 with SHA-256 over `message` (hashed on the host). Returns the signature as
    /// DER `Ecdsa-Sig-Value` (the form X.509, CRLs and CMS carry), low-S normalised.
    fn sign_p256_sha256(&self, label: &str, message: &[u8]) -> Result<Vec<u8>>;

    /// HMAC-SHA256(secret `label`, `data`) computed inside the HSM. Used to derive per-card
    /// secrets from a master key and a card serial; the result is the caller's to zeroize.
    fn hmac_sha256(&self, label: &str, data: &[u8]) -> Result<Zeroizing<[u8; 32]>>;

    /// Remove key `label` from the HSM for good (a key pair with its public half, or a secret):
    /// the end of a key's life, e.g. a time-stamping key after its usage period. `Ok(false)`
    /// when there is no such key, so a retry after a crash is harmless; a retry also removes
    /// what an interrupted destroy left (a public half without its private key, or the
    /// reverse). Objects under the label that are not a key this trait made are left alone.
    fn destroy(&self, label: &str) -> Result<bool>;
}

impl std::fmt::Debug for dyn KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyStore({})", self.backend())
    }
}

/// Per-card secret: HMAC-SHA256(master, "idstation/" || purpose || 0x00 || serial), inside the HSM.
pub fn derive_card_secret(
    store: &dyn KeyStore,
    master_label: &str,
    purpose: &str,
    card_serial: &[u8],
) -> Result<Zeroizing<[u8; 32]>> {
    let mut data = Vec::with_capacity(16 + purpose.len() + card_serial.len());
    data.extend_from_slice(b"idstation/");
    data.extend_from_slice(purpose.as_bytes());
    data.push(0);
    data.extend_from_slice(card_serial);
    store.hmac_sha256(master_label, &data)
}

/// Open the key store `cfg` describes: loads the PKCS#11 module or connects to the YubiHSM 2,
/// reads the PIN / password from its [`SecretSource`] and logs in.
pub fn open(cfg: &HsmConfig) -> Result<Box<dyn KeyStore>> {
    match cfg {
        HsmConfig::Pkcs11 { .. } => Ok(Box::new(pkcs11::Pkcs11Store::from_config(cfg)?)),
        HsmConfig::Yubihsm { .. } => Ok(Box::new(yubihsm2::YubiHsmStore::from_config(cfg)?)),
    }
}

/// Labels are how the station names keys: non-empty, at most [`MAX_LABEL_LEN`] bytes of
/// UTF-8 without control characters (backends may allow fewer, e.g. YubiHSM 2: 40 bytes).
pub const MAX_LABEL_LEN: usize = 64;

pub(crate) fn check_label(label: &str, max_len: usize) -> Result<()> {
    let bad = |rule: String| {
        Err(HsmError::InvalidLabel {
            label: label.to_owned(),
            rule,
        })
    };
    if label.is_empty() {
        return bad("a key label must not be empty".into());
    }
    if label.len() > max_len {
        return bad(format!(
            "a key label on this backend is at most {max_len} bytes, this one has {}",
            label.len()
        ));
    }
    if label.chars().any(char::is_control) {
        return bad("a key label must not contain control characters".into());
    }
    Ok(())
}

/// SHA-256 of `message`, the digest both backends sign (hashing happens on the host).
pub(crate) fn sha256(message: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(message).into()
}

/// Raw `r || s` (64 bytes, PKCS#11 `CKM_ECDSA` output, PKCS#11 v3.0 §2.3.1) or a DER
/// `Ecdsa-Sig-Value` (SEC 1 §C.5, what YubiHSM returns) to a low-S DER `Ecdsa-Sig-Value`.
pub(crate) fn normalise_p256_signature(sig: &[u8], op: &'static str) -> Result<Vec<u8>> {
    let parsed = if sig.len() == 64 {
        p256::ecdsa::Signature::from_slice(sig)
    } else {
        p256::ecdsa::Signature::from_der(sig)
    }
    .map_err(|e| HsmError::Operation {
        op,
        reason: format!(
            "the HSM returned a malformed P-256 signature ({} bytes): {e}",
            sig.len()
        ),
    })?;
    Ok(parsed.normalize_s().to_der().as_bytes().to_vec())
}

/// Uncompressed SEC 1 point `04 || X || Y` to SubjectPublicKeyInfo DER (RFC 5480 §2),
/// refusing anything that is not a point on P-256.
pub(crate) fn p256_point_to_spki(point: &[u8], op: &'static str) -> Result<Vec<u8>> {
    use p256::pkcs8::EncodePublicKey;
    let key = p256::PublicKey::from_sec1_bytes(point).map_err(|e| HsmError::Operation {
        op,
        reason: format!("the HSM returned a public key that is not a P-256 point: {e}"),
    })?;
    let doc = key.to_public_key_der().map_err(|e| HsmError::Operation {
        op,
        reason: format!("cannot encode SubjectPublicKeyInfo: {e}"),
    })?;
    Ok(doc.as_bytes().to_vec())
}

#[cfg(test)]
pub(crate) mod conformance;
pub mod pkcs11;
pub mod process_env;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(feature = "rustls")]
pub mod tls;
pub mod yubihsm2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_contributes_its_first_line_without_line_ending() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pin");
        std::fs::write(&p, "s3cret-1\r\nsecond line\n").unwrap();
        assert_eq!(SecretSource::File(p).read().unwrap().as_str(), "s3cret-1");
    }

    #[test]
    fn missing_or_empty_secret_is_an_error_naming_the_source_not_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent");
        let e = SecretSource::File(missing.clone()).read().unwrap_err();
        assert!(
            e.to_string().contains(&missing.display().to_string()),
            "{e}"
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\nsecret-on-line-2\n").unwrap();
        let e = SecretSource::File(empty).read().unwrap_err();
        assert!(e.to_string().contains("is empty"), "{e}");
        assert!(!e.to_string().contains("secret-on-line-2"), "{e}");
    }

    #[test]
    fn hsm_config_reads_from_its_station_toml_form() {
        #[derive(serde::Deserialize)]
        struct Station {
            hsm: HsmConfig,
        }
        let pkcs11: Station = toml::from_str(
            r#"
            [hsm]
            backend = "pkcs11"
            module = "/usr/lib/softhsm/libsofthsm2.so"
            token_label = "idstation"
            pin = { file = "/var/lib/idstation/hsm-pin" }
            env = { SOFTHSM2_CONF = "/var/lib/idstation/hsm/softhsm2.conf" }
            "#,
        )
        .unwrap();
        let HsmConfig::Pkcs11 { pin, env, .. } = &pkcs11.hsm else {
            panic!("pkcs11 expected")
        };
        assert_eq!(
            pin,
            &SecretSource::File("/var/lib/idstation/hsm-pin".into())
        );
        assert_eq!(env.len(), 1);

        let yubi: Station = toml::from_str(
            r#"
            [hsm]
            backend = "yubihsm"
            auth_key_id = 1
            password = { file = "/etc/idstation/yubihsm-password" }
            connector = { kind = "http", addr = "127.0.0.1", port = 12345 }
            "#,
        )
        .unwrap();
        assert!(matches!(
            yubi.hsm,
            HsmConfig::Yubihsm {
                connector: YubihsmConnector::Http { port: 12345, .. },
                auth_key_id: 1,
                ..
            }
        ));
        let usb: Station = toml::from_str(
            "[hsm]\nbackend = \"yubihsm\"\nauth_key_id = 2\npassword = { file = \"/p\" }\n\
             connector = { kind = \"usb\" }\n",
        )
        .unwrap();
        assert!(matches!(
            usb.hsm,
            HsmConfig::Yubihsm {
                connector: YubihsmConnector::Usb { serial: None },
                ..
            }
        ));
        // A PIN written inline is not a thing: unknown keys are refused.
        let inline = toml::from_str::<Station>(
            "[hsm]\nbackend = \"pkcs11\"\nmodule = \"/m\"\ntoken_label = \"t\"\npin = \"1234\"\n",
        );
        assert!(inline.is_err());
    }

    #[test]
    fn an_environment_variable_is_refused_as_a_secret_source_saying_what_to_write() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Station {
            hsm: HsmConfig,
        }
        for (field, toml) in [
            (
                "pin",
                "[hsm]\nbackend = \"pkcs11\"\nmodule = \"/m\"\ntoken_label = \"t\"\n\
                 pin = { env = \"IDSTATION_HSM_PIN\" }\n",
            ),
            (
                "password",
                "[hsm]\nbackend = \"yubihsm\"\nauth_key_id = 1\n\
                 password = { env = \"IDSTATION_YUBIHSM_PASSWORD\" }\n\
                 connector = { kind = \"usb\" }\n",
            ),
        ] {
            let e = toml::from_str::<Station>(toml).unwrap_err().to_string();
            // The internally tagged [hsm] table loses the span: station's config loader names
            // the field itself (`[hsm] pin`).
            assert!(e.contains(ENV_SOURCE_REFUSED), "{field}: {e}");
        }
    }

    #[test]
    fn signature_normalisation_makes_high_s_low_and_keeps_der() {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        let sk = p256::ecdsa::SigningKey::from_slice(&[0x11; 32]).unwrap();
        let digest = sha256(b"m");
        let sig: p256::ecdsa::Signature = sk.sign_prehash(&digest).unwrap();
        let low = sig.normalize_s();
        // Build the high-S twin: s' = n - s.
        let (r, s) = low.split_scalars();
        let high = p256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        assert_ne!(high, low);
        let raw: Vec<u8> = high.to_bytes().to_vec();
        let der = normalise_p256_signature(&raw, "t").unwrap();
        assert_eq!(der, low.to_der().as_bytes());
        let der2 = normalise_p256_signature(high.to_der().as_bytes(), "t").unwrap();
        assert_eq!(der2, der);
        assert!(normalise_p256_signature(&[1, 2, 3], "t").is_err());
    }
}
