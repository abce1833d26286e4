//! Test-only in-memory [`hsm::KeyStore`] over `p256` (never shipped: compiled only under
//! `cfg(test)`). It lets the CA's unit tests run without SoftHSM2; the
//! oracle tests and the benchmark use SoftHSM2 through `hsm::pkcs11`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use hsm::{HsmError, KeyInfo, KeyKind, KeyStore};
use p256::ecdsa::SigningKey;
use p256::pkcs8::EncodePublicKey;
use zeroize::Zeroizing;

#[derive(Default)]
pub struct MemStore {
    keys: Mutex<BTreeMap<String, SigningKey>>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn with_key<T>(&self, label: &str, f: impl FnOnce(&SigningKey) -> T) -> hsm::Result<T> {
        let keys = self.keys.lock().map_err(|_| HsmError::Operation {
            op: "lock",
            reason: "poisoned".into(),
        })?;
        keys.get(label).map(f).ok_or_else(|| HsmError::KeyNotFound {
            label: label.to_owned(),
        })
    }

    fn info(label: &str, key: &SigningKey) -> KeyInfo {
        KeyInfo {
            label: label.to_owned(),
            kind: KeyKind::EcP256,
            spki_der: key
                .verifying_key()
                .to_public_key_der()
                .ok()
                .map(|d| d.as_bytes().to_vec()),
        }
    }
}

impl KeyStore for MemStore {
    fn backend(&self) -> &'static str {
        "memory-test"
    }

    fn generate_p256(&self, label: &str) -> hsm::Result<KeyInfo> {
        let mut keys = self.keys.lock().map_err(|_| HsmError::Operation {
            op: "lock",
            reason: "poisoned".into(),
        })?;
        if keys.contains_key(label) {
            return Err(HsmError::KeyExists {
                label: label.to_owned(),
            });
        }
        let key = loop {
            let mut b = Zeroizing::new([0u8; 32]);
            getrandom::fill(&mut b[..]).map_err(|e| HsmError::Operation {
                op: "generate",
                reason: e.to_string(),
            })?;
            if let Ok(k) = SigningKey::from_slice(&b[..]) {
                break k;
            }
        };
        let info = Self::info(label, &key);
        keys.insert(label.to_owned(), key);
        Ok(info)
    }

    fn generate_hmac_secret(&self, _label: &str) -> hsm::Result<KeyInfo> {
        Err(HsmError::Operation {
            op: "generate_hmac_secret",
            reason: "the in-memory test store holds P-256 keys only".into(),
        })
    }

    fn find(&self, label: &str) -> hsm::Result<Option<KeyInfo>> {
        match self.with_key(label, |k| Self::info(label, k)) {
            Ok(i) => Ok(Some(i)),
            Err(HsmError::KeyNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn destroy(&self, label: &str) -> hsm::Result<bool> {
        let mut keys = self.keys.lock().map_err(|_| HsmError::Operation {
            op: "lock",
            reason: "poisoned".into(),
        })?;
        Ok(keys.remove(label).is_some())
    }

    fn list(&self) -> hsm::Result<Vec<KeyInfo>> {
        let keys = self.keys.lock().map_err(|_| HsmError::Operation {
            op: "lock",
            reason: "poisoned".into(),
        })?;
        Ok(keys.iter().map(|(l, k)| Self::info(l, k)).collect())
    }

    fn public_key_spki(&self, label: &str) -> hsm::Result<Vec<u8>> {
        self.with_key(label, |k| {
            k.verifying_key()
                .to_public_key_der()
                .map(|d| d.as_bytes().to_vec())
        })?
        .map_err(|e| HsmError::Operation {
            op: "public_key_spki",
            reason: e.to_string(),
        })
    }

    fn sign_p256_sha256(&self, label: &str, message: &[u8]) -> hsm::Result<Vec<u8>> {
        self.with_key(label, |k| {
            let sig: p256::ecdsa::Signature = signature::Signer::sign(k, message);
            let sig = sig.normalize_s();
            sig.to_der().as_bytes().to_vec()
        })
    }

    fn hmac_sha256(&self, _label: &str, _data: &[u8]) -> hsm::Result<Zeroizing<[u8; 32]>> {
        Err(HsmError::Operation {
            op: "hmac_sha256",
            reason: "the in-memory test store holds P-256 keys only".into(),
        })
    }
}
