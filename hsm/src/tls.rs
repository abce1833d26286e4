//! A rustls signing key whose signatures the HSM makes: the TLS 1.3 CertificateVerify
//! (RFC 8446 §4.4.3) of a server or a client certificate is signed by
//! [`KeyStore::sign_p256_sha256`], so the private key never leaves the HSM.
//!
//! Only ecdsa_secp256r1_sha256 is offered (RFC 8446 §4.2.3): the keys are P-256 and the HSM
//! hashes with SHA-256 and returns the DER `Ecdsa-Sig-Value` that TLS carries.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};

use crate::{HsmError, KeyStore, Result};

/// The HSM key `label` as a rustls [`SigningKey`].
pub struct HsmSigningKey {
    store: Arc<dyn KeyStore>,
    label: String,
    spki: Vec<u8>,
}

impl std::fmt::Debug for HsmSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsmSigningKey")
            .field("backend", &self.store.backend())
            .field("label", &self.label)
            .finish()
    }
}

impl HsmSigningKey {
    /// The P-256 key `label` of `store` (it must exist: its public key is read now).
    pub fn new(store: Arc<dyn KeyStore>, label: &str) -> Result<Self> {
        let spki = store.public_key_spki(label)?;
        Ok(HsmSigningKey {
            store,
            label: label.to_owned(),
            spki,
        })
    }
}

impl SigningKey for HsmSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| {
                Box::new(HsmSigner {
                    store: Arc::clone(&self.store),
                    label: self.label.clone(),
                }) as Box<dyn Signer>
            })
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.spki.as_slice()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

/// One signature with the key, for one handshake.
struct HsmSigner {
    store: Arc<dyn KeyStore>,
    label: String,
}

impl std::fmt::Debug for HsmSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsmSigner")
            .field("label", &self.label)
            .finish()
    }
}

impl Signer for HsmSigner {
    fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, rustls::Error> {
        self.store
            .sign_p256_sha256(&self.label, message)
            .map_err(|e| rustls::Error::General(format!("HSM signature: {e}")))
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

/// The certificate chain `chain` (DER, end entity first) with the HSM key `label`, after
/// checking that the end-entity certificate certifies that key.
pub fn certified_key(
    store: Arc<dyn KeyStore>,
    label: &str,
    chain: &[Vec<u8>],
) -> Result<CertifiedKey> {
    let key = HsmSigningKey::new(store, label)?;
    let certs: Vec<CertificateDer<'static>> = chain
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect();
    let ck = CertifiedKey::new(certs, Arc::new(key));
    ck.keys_match().map_err(|e| HsmError::Operation {
        op: "tls certified key",
        reason: format!("the certificate does not certify key {label:?}: {e}"),
    })?;
    Ok(ck)
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::DecodePublicKey;

    use super::*;

    #[test]
    fn the_hsm_signs_ecdsa_p256_sha256_and_offers_nothing_else() {
        let store: Arc<dyn KeyStore> = Arc::new(crate::pkcs11::test_token::fresh_store());
        store.generate_p256("tls").unwrap();
        let key = HsmSigningKey::new(Arc::clone(&store), "tls").unwrap();
        assert_eq!(key.algorithm(), SignatureAlgorithm::ECDSA);
        let others = [
            SignatureScheme::ED25519,
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::ECDSA_NISTP384_SHA384,
        ];
        assert!(key.choose_scheme(&others).is_none());
        let signer = key
            .choose_scheme(&[
                SignatureScheme::ED25519,
                SignatureScheme::ECDSA_NISTP256_SHA256,
            ])
            .unwrap();
        assert_eq!(signer.scheme(), SignatureScheme::ECDSA_NISTP256_SHA256);
        let msg = b"TLS 1.3, server CertificateVerify\0transcript hash";
        let sig = signer.sign(msg).unwrap();
        let sig = p256::ecdsa::Signature::from_der(&sig).expect("DER Ecdsa-Sig-Value");
        let spki = store.public_key_spki("tls").unwrap();
        let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
        vk.verify(msg, &sig).expect("verifies over SHA-256");
        assert_eq!(key.public_key().unwrap().as_ref(), spki.as_slice());
        // A key the HSM does not have is an error, not a panic; its label names it.
        let e = HsmSigningKey::new(store, "absent").unwrap_err();
        assert!(e.to_string().contains("absent"), "{e}");
    }
}
