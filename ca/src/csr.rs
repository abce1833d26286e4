//! PKCS#10 certification requests (RFC 2986): parsing, proof of possession, and the holder
//! subject a request names.

use der::asn1::{PrintableStringRef, Utf8StringRef};
use der::{Decode, Encode};
use p256::ecdsa::DerSignature;
use signature::Verifier;
use x509_cert::request::CertReq;

use crate::error::{enc, CaError, Result};
use crate::keys::{checked_p256_spki, p256_key};
use crate::signer::ECDSA_WITH_SHA256;
use crate::subject::HolderSubject;

/// A PKCS#10 request (RFC 2986) given as DER or PEM.
pub(crate) fn parse_csr(csr: &[u8]) -> Result<CertReq> {
    if csr.starts_with(b"-----BEGIN") {
        use der::DecodePem;
        CertReq::from_pem(csr)
    } else {
        CertReq::from_der(csr)
    }
    .map_err(|e| CaError::CsrMalformed {
        reason: e.to_string(),
    })
}

/// Parse a PKCS#10 request (DER or PEM), check that its key is P-256 and that it is signed
/// by that key with ecdsa-with-SHA256. Returns the request's SubjectPublicKeyInfo, DER.
pub fn verify_csr(csr: &[u8]) -> Result<Vec<u8>> {
    let req = parse_csr(csr)?;
    let key = p256_key(&req.info.public_key)?;
    if req.algorithm.oid != ECDSA_WITH_SHA256 {
        return Err(CaError::CsrAlgorithm {
            oid: req.algorithm.oid.to_string(),
        });
    }
    let sig_bytes = req.signature.as_bytes().ok_or(CaError::CsrSignature)?;
    let sig = DerSignature::from_bytes(sig_bytes).map_err(|_| CaError::CsrSignature)?;
    let info = req.info.to_der().map_err(|e| CaError::CsrMalformed {
        reason: e.to_string(),
    })?;
    key.verify(&info, &sig).map_err(|_| CaError::CsrSignature)?;
    req.info.public_key.to_der().map_err(enc("CSR public key"))
}

/// The holder subject named in a PKCS#10 request: serialNumber `PNO<pno_country>-<PINFL>`
/// (ETSI EN 319 412-1 §5.1.3: semantics identifier "PNO", then the ISO 3166-1 alpha-2 code of
/// the country that issued the national identity number, here the issuing country of the
/// document profile), givenName, surname and C (required), and an optional CN. C is the
/// holder's country and may differ from `pno_country`.
pub fn holder_subject_from_csr(csr: &[u8], pno_country: &str) -> Result<HolderSubject> {
    let req = parse_csr(csr)?;
    let mut found: std::collections::BTreeMap<&'static str, String> = Default::default();
    {
        for atv in req.info.subject.iter() {
            let key = match atv.oid {
                o if o == const_oid::db::rfc4519::SERIAL_NUMBER => "serialNumber",
                o if o == const_oid::db::rfc4519::GIVEN_NAME => "givenName",
                o if o == const_oid::db::rfc4519::SN => "surname",
                o if o == const_oid::db::rfc4519::CN => "CN",
                o if o == const_oid::db::rfc4519::C => "C",
                _ => continue,
            };
            let value = atv
                .value
                .decode_as::<Utf8StringRef<'_>>()
                .map(|s| s.to_string())
                .or_else(|_| {
                    atv.value
                        .decode_as::<PrintableStringRef<'_>>()
                        .map(|s| s.to_string())
                })
                .map_err(|e| CaError::CsrMalformed {
                    reason: format!("subject {key} is not a string: {e}"),
                })?;
            found.insert(key, value);
        }
    }
    let need = |k: &'static str| {
        found.get(k).cloned().ok_or_else(|| CaError::Holder {
            field: "subject",
            rule: format!("the CSR subject has no {k} attribute (give --subject FILE instead)"),
        })
    };
    let serial = need("serialNumber")?;
    let prefix = format!("PNO{pno_country}-");
    let pinfl = serial
        .strip_prefix(&prefix)
        .ok_or_else(|| CaError::Holder {
            field: "pinfl",
            rule: format!(
                "CSR serialNumber {serial:?} is not {prefix}<PINFL> (ETSI EN 319 412-1 §5.1.3)"
            ),
        })?
        .to_owned();
    let given_names = need("givenName")?;
    let surname = need("surname")?;
    // The holder's country goes into the certificate's C attribute (RFC 5280 §4.1.2.6,
    // ETSI EN 319 412-2 §4.2.4): a request without one is refused, not given a default.
    let country = need("C")?;
    let subject = HolderSubject {
        common_name: found
            .get("CN")
            .cloned()
            .unwrap_or_else(|| format!("{given_names} {surname}")),
        country,
        pinfl,
        surname,
        given_names,
    };
    subject.validate()?;
    Ok(subject)
}

/// A PKCS#10 request (RFC 2986, DER) for the HSM key `label` with the subject `CN=common_name`,
/// built by x509-cert's `RequestBuilder` and signed by that key in the HSM (ecdsa-with-SHA256):
/// the proof of possession a CA checks with [`verify_csr`]. The common name may use letters,
/// digits, space, '-' and '.'.
pub fn csr_for_hsm_key(
    store: &dyn hsm::KeyStore,
    label: &str,
    common_name: &str,
) -> Result<Vec<u8>> {
    use std::str::FromStr;
    use x509_cert::builder::Builder;
    if common_name.is_empty()
        || !common_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '.'))
    {
        return Err(CaError::Holder {
            field: "common_name",
            rule: "a request's CN may use letters, digits, space, '-' and '.'".into(),
        });
    }
    let (_, public) = checked_p256_spki(&store.public_key_spki(label)?)?;
    let subject = x509_cert::name::Name::from_str(&format!("CN={common_name}"))
        .map_err(enc("CSR subject"))?;
    let signer = crate::signer::HsmSigner::new(store, label, public);
    let req = x509_cert::request::RequestBuilder::new(subject)
        .map_err(enc("CSR"))?
        .build::<_, DerSignature>(&signer)
        .map_err(|e| match signer.take_error() {
            Some(h) => CaError::Hsm(h),
            None => CaError::Encoding {
                what: "CSR",
                reason: e.to_string(),
            },
        })?;
    req.to_der().map_err(enc("CSR"))
}
