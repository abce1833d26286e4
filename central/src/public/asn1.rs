//! Where the centre's two RustCrypto generations meet: OCSP (`x509-ocsp`) and time-stamp
//! (`x509-tsp`, `cms` 0.2) messages are on der 0.7 / x509-cert 0.2, the `ca` crate on der 0.8 /
//! x509-cert 0.3. Values cross as DER bytes only. Also the one ASN.1 type neither crate has:
//! the ESS signing-certificate-v2 attribute (RFC 5035 §3) a time-stamp token carries.

use std::time::SystemTime;

use x509_cert_02::der::asn1::{ObjectIdentifier, OctetString};
use x509_cert_02::der::{self, Decode, Encode, EncodeValue, FixedTag, Length, Tag, Writer};

use crate::error::{CentralError, Result};

/// id-sha1 (RFC 3279 §2.2.1), id-sha256/384/512 (RFC 5754 §2).
pub const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
pub const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
pub const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
pub const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
/// ecdsa-with-SHA256 (RFC 5758 §3.2).
pub const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// A DER encoding failure as the centre's error.
pub fn enc(what: &'static str) -> impl Fn(der::Error) -> CentralError {
    move |e| CentralError::Other(format!("{what}: {e}"))
}

/// A certificate (DER) as x509-cert 0.2's type.
pub fn cert02(der_bytes: &[u8]) -> Result<x509_cert_02::Certificate> {
    x509_cert_02::Certificate::from_der(der_bytes).map_err(enc("certificate"))
}

/// ecdsa-with-SHA256 as an AlgorithmIdentifier (parameters absent, RFC 5758 §3.2).
pub fn ecdsa_with_sha256() -> x509_cert_02::spki::AlgorithmIdentifierOwned {
    x509_cert_02::spki::AlgorithmIdentifierOwned {
        oid: ECDSA_WITH_SHA256,
        parameters: None,
    }
}

/// A time as GeneralizedTime (whole seconds, UTC).
pub fn generalized(t: SystemTime) -> Result<der::asn1::GeneralizedTime> {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| CentralError::Other("the clock is before 1970".into()))?
        .as_secs();
    der::asn1::GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(secs))
        .map_err(enc("GeneralizedTime"))
}

/// The digest of `data` with the hash algorithm `oid` (SHA-1, SHA-256, -384, -512), or `None`
/// for another algorithm.
pub fn digest(oid: &ObjectIdentifier, data: &[u8]) -> Option<Vec<u8>> {
    use sha2::Digest;
    Some(match *oid {
        SHA1 => sha1::Sha1::digest(data).to_vec(),
        SHA256 => sha2::Sha256::digest(data).to_vec(),
        SHA384 => sha2::Sha384::digest(data).to_vec(),
        SHA512 => sha2::Sha512::digest(data).to_vec(),
        _ => return None,
    })
}

/// The output length of a hash algorithm [`digest`] knows.
pub fn digest_len(oid: &ObjectIdentifier) -> Option<usize> {
    digest(oid, b"").map(|d| d.len())
}

/// ```text
/// ESSCertIDv2 ::= SEQUENCE {
///     hashAlgorithm  AlgorithmIdentifier DEFAULT {algorithm id-sha256},
///     certHash       Hash,
///     issuerSerial   IssuerSerial OPTIONAL }
/// ```
/// (RFC 5035 §4): the hash is SHA-256, so hashAlgorithm is absent (DEFAULT); issuerSerial is
/// left out (optional).
pub struct EssCertIdV2 {
    pub cert_hash: OctetString,
}

impl EncodeValue for EssCertIdV2 {
    fn value_len(&self) -> der::Result<Length> {
        self.cert_hash.encoded_len()
    }
    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        self.cert_hash.encode(writer)
    }
}

impl FixedTag for EssCertIdV2 {
    const TAG: Tag = Tag::Sequence;
}

/// ```text
/// SigningCertificateV2 ::= SEQUENCE {
///     certs     SEQUENCE OF ESSCertIDv2,
///     policies  SEQUENCE OF PolicyInformation OPTIONAL }
/// ```
/// (RFC 5035 §3), the value of the id-aa-signingCertificateV2 attribute (1.2.840.113549.1.9.16.2.47).
pub struct SigningCertificateV2 {
    pub certs: Vec<EssCertIdV2>,
}

pub const ID_AA_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");

impl EncodeValue for SigningCertificateV2 {
    fn value_len(&self) -> der::Result<Length> {
        self.certs.encoded_len()
    }
    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        self.certs.encode(writer)
    }
}

impl FixedTag for SigningCertificateV2 {
    const TAG: Tag = Tag::Sequence;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_certificate_v2_is_a_sequence_of_sequences_of_the_hash() {
        let s = SigningCertificateV2 {
            certs: vec![EssCertIdV2 {
                cert_hash: OctetString::new(vec![0xAB; 32]).unwrap(),
            }],
        };
        let der = s.to_der().unwrap();
        // SEQUENCE { SEQUENCE OF { SEQUENCE { OCTET STRING (32) } } }
        assert_eq!(&der[..8], &[0x30, 0x26, 0x30, 0x24, 0x30, 0x22, 0x04, 0x20]);
        assert_eq!(der.len(), 40);
    }
}
