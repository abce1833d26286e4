//! The signer adapter between `x509-cert`'s builders and [`hsm::KeyStore`]: ECDSA P-256 with
//! SHA-256 (`ecdsa-with-SHA256`, RFC 5758 §3.2), the private key never leaving the HSM.
//!
//! `x509-cert` wants `signature::Signer` + `Keypair` + `DynSignatureAlgorithmIdentifier`;
//! the HSM returns a DER `Ecdsa-Sig-Value` which is parsed into a [`DerSignature`]. An HSM
//! error is kept aside so the caller gets it back instead of an opaque `signature::Error`.

use std::sync::Mutex;

use const_oid::ObjectIdentifier;
use hsm::{HsmError, KeyStore};
use p256::ecdsa::{DerSignature, VerifyingKey};
use spki::{AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier};

/// ecdsa-with-SHA256 (RFC 5758 §3.2); parameters absent.
pub const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// Signs with the HSM key `label`, whose public key is `public`.
pub(crate) struct HsmSigner<'a> {
    store: &'a dyn KeyStore,
    label: &'a str,
    public: VerifyingKey,
    last_error: Mutex<Option<HsmError>>,
}

impl<'a> HsmSigner<'a> {
    pub(crate) fn new(store: &'a dyn KeyStore, label: &'a str, public: VerifyingKey) -> Self {
        Self {
            store,
            label,
            public,
            last_error: Mutex::new(None),
        }
    }

    /// HSM label of the signing key.
    pub(crate) fn key_label(&self) -> &str {
        self.label
    }

    /// The HSM error behind the last failed signature, if any.
    pub(crate) fn take_error(&self) -> Option<HsmError> {
        self.last_error.lock().ok().and_then(|mut e| e.take())
    }
}

impl signature::Keypair for HsmSigner<'_> {
    type VerifyingKey = VerifyingKey;

    fn verifying_key(&self) -> VerifyingKey {
        self.public
    }
}

impl DynSignatureAlgorithmIdentifier for HsmSigner<'_> {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA256,
            parameters: None,
        })
    }
}

impl signature::Signer<DerSignature> for HsmSigner<'_> {
    fn try_sign(&self, msg: &[u8]) -> Result<DerSignature, signature::Error> {
        let der = match self.store.sign_p256_sha256(self.label, msg) {
            Ok(der) => der,
            Err(e) => {
                if let Ok(mut slot) = self.last_error.lock() {
                    *slot = Some(e);
                }
                return Err(signature::Error::new());
            }
        };
        DerSignature::from_bytes(&der)
    }
}
