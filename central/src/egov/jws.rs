//! JSON Web Signature (RFC 7515) in the compact serialization (§7.1), algorithm ES256 (RFC 7518
//! §3.4: ECDSA P-256 with SHA-256, the signature the 64 bytes R ‖ S). The HSM signs the JWS
//! signing input and returns a DER `Ecdsa-Sig-Value`; [`sign`] re-encodes it as R ‖ S with the
//! `p256` crate. The protected header names the key (`kid`) and carries its certificate chain
//! (`x5c`, RFC 7515 §4.1.6: standard base64 DER, the signer first, then the National Root).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hsm::KeyStore;
use serde::{Deserialize, Serialize};

use crate::error::{CentralError, Result};

/// The protected header of the centre's messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub alg: String,
    pub typ: String,
    pub kid: String,
    pub x5c: Vec<String>,
}

/// `payload` signed with the HSM key `label` whose chain is `chain` (DER, signer first): the
/// compact JWS `header.payload.signature`.
pub fn sign(
    store: &dyn KeyStore,
    label: &str,
    chain: &[Vec<u8>],
    payload: &[u8],
) -> Result<String> {
    let header = Header {
        alg: "ES256".into(),
        typ: "JOSE".into(),
        kid: label.to_owned(),
        x5c: chain.iter().map(|c| STANDARD.encode(c)).collect(),
    };
    let header = serde_json::to_vec(&header).map_err(|e| CentralError::Other(e.to_string()))?;
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let der = store.sign_p256_sha256(label, input.as_bytes())?;
    let sig = p256::ecdsa::Signature::from_der(&der).map_err(|e| {
        CentralError::Other(format!("the HSM's signature is not a DER ECDSA value: {e}"))
    })?;
    Ok(format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(sig.to_bytes())
    ))
}

/// A compact JWS checked against `cert_der` (the signer's certificate): ES256, the header's
/// first `x5c` certificate is `cert_der`, the signature verifies with its key. The header and
/// the payload's bytes.
pub fn verify(jws: &str, cert_der: &[u8]) -> Result<(Header, Vec<u8>)> {
    use der::{Decode, Encode};
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::DecodePublicKey;
    let bad = |rule: String| CentralError::invalid("jws", rule);
    let parts: Vec<&str> = jws.split('.').collect();
    let [h, p, s] = parts[..] else {
        return Err(bad(format!(
            "a compact JWS has 3 parts separated by '.', not {}",
            parts.len()
        )));
    };
    let decode = |what: &str, v: &str| {
        URL_SAFE_NO_PAD
            .decode(v)
            .map_err(|e| bad(format!("{what} is not base64url: {e}")))
    };
    let header: Header = serde_json::from_slice(&decode("header", h)?)
        .map_err(|e| bad(format!("header is not the expected JSON: {e}")))?;
    if header.alg != "ES256" {
        return Err(bad(format!("alg {:?}: only ES256 is accepted", header.alg)));
    }
    let first = header
        .x5c
        .first()
        .map(|c| STANDARD.decode(c))
        .transpose()
        .map_err(|e| bad(format!("x5c[0] is not base64: {e}")))?;
    if first.as_deref() != Some(cert_der) {
        return Err(bad(
            "x5c[0] is not the expected signer certificate".to_owned()
        ));
    }
    let payload = decode("payload", p)?;
    let sig = p256::ecdsa::Signature::from_slice(&decode("signature", s)?)
        .map_err(|e| bad(format!("signature is not 64 bytes R || S: {e}")))?;
    let cert = x509_cert::Certificate::from_der(cert_der)
        .map_err(|e| bad(format!("signer certificate: {e}")))?;
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| bad(format!("signer certificate: {e}")))?;
    let key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki)
        .map_err(|e| bad(format!("signer certificate: not a P-256 key: {e}")))?;
    key.verify(format!("{h}.{p}").as_bytes(), &sig)
        .map_err(|_| bad("the signature does not verify".to_owned()))?;
    Ok((header, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hsm_signed_jws_verifies_and_a_changed_byte_does_not() {
        // A token of this test process (the cargo runner gives it a private SOFTHSM2_CONF).
        let dir = hsm::pkcs11::SoftHsm2Token::process_dir().expect("run through cargo");
        std::fs::create_dir_all(&dir).unwrap();
        let token = hsm::pkcs11::SoftHsm2Token::create(&dir, "jws-test", "so-pin-1234", "pin-1234")
            .unwrap();
        let store = token
            .open(zeroize::Zeroizing::new("pin-1234".to_owned()))
            .unwrap();
        store.generate_p256("egov").unwrap();
        let root_store: &dyn KeyStore = &store;
        let profiles = profiles::builtin().unwrap();
        store.generate_p256("root").unwrap();
        let root = ca::create_root(
            root_store,
            profiles.cert("root-ca").unwrap(),
            "root",
            std::time::SystemTime::now(),
        )
        .unwrap();
        let cert = ca::issue_station_cert(
            root_store,
            profiles.cert("egov-signer").unwrap(),
            &root,
            &store.public_key_spki("egov").unwrap(),
            "centre e-government message signer",
            std::time::SystemTime::now(),
        )
        .unwrap();
        let chain = vec![cert.der.clone(), root.cert_der().to_vec()];
        let jws = sign(&store, "egov", &chain, br#"{"message_id":1}"#).unwrap();
        let (header, payload) = verify(&jws, &cert.der).unwrap();
        assert_eq!(
            (header.alg.as_str(), header.kid.as_str()),
            ("ES256", "egov")
        );
        assert_eq!(header.x5c.len(), 2);
        assert_eq!(payload, br#"{"message_id":1}"#);
        // R || S, 64 bytes, as RFC 7518 §3.4 wants.
        let sig = URL_SAFE_NO_PAD
            .decode(jws.rsplit('.').next().unwrap())
            .unwrap();
        assert_eq!(sig.len(), 64);
        // Another payload under the same signature.
        let mut parts: Vec<String> = jws.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(br#"{"message_id":2}"#);
        let e = verify(&parts.join("."), &cert.der).unwrap_err();
        assert!(e.to_string().contains("does not verify"), "{e}");
        // Another certificate.
        let e = verify(&jws, root.cert_der()).unwrap_err();
        assert!(e.to_string().contains("x5c[0]"), "{e}");
        assert!(verify("a.b", &cert.der).is_err());
    }
}
