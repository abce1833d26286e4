//! EF.SOD, the Document Security Object (ICAO Doc 9303 Part 10 §4.6.2), and passive
//! authentication (Part 11 §5.1).
//!
//! EF.SOD is a CMS `SignedData` (RFC 5652) whose encapsulated content, of type
//! `id-icao-mrtd-security-ldsSecurityObject` (2.23.136.1.1.1), is:
//!
//! ```text
//! LDSSecurityObject ::= SEQUENCE {
//!     version                LDSSecurityObjectVersion,   -- v0(0)
//!     hashAlgorithm          DigestAlgorithmIdentifier,
//!     dataGroupHashValues    SEQUENCE SIZE (2..ub-DataGroups) OF DataGroupHash,
//!     ldsVersionInfo         LDSVersionInfo OPTIONAL }   -- only with v1
//! DataGroupHash ::= SEQUENCE {
//!     dataGroupNumber        DataGroupNumber,            -- INTEGER 1..16
//!     dataGroupHashValue     OCTET STRING }
//! ```
//!
//! We sign with SHA-256 and ECDSA P-256 (`ecdsa-with-SHA256`), the signed attributes being
//! `contentType` and `messageDigest` (Part 10 §4.6.2.2: SignerInfo with signedAttrs), the
//! Document Signer certificate included in `certificates`. The signature itself is made by a
//! caller-supplied function (the HSM): this module never holds a private key.
//!
//! Every structure goes through `der` (the `cms`, `x509-cert` and `spki` types, and the
//! derived [`LdsSecurityObject`]); nothing is encoded by hand.

use std::collections::BTreeMap;
use std::time::SystemTime;

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::ObjectIdentifier;
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode, Sequence};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{DerSignature, VerifyingKey};
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use x509_cert::Certificate;

use crate::{tlv, Error, Result};

/// id-icao-mrtd-security-ldsSecurityObject (Part 10 §4.6.2.3).
pub const ID_LDS_SECURITY_OBJECT: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.136.1.1.1");
/// id-signedData (RFC 5652 §5.1).
pub const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// id-sha256 (RFC 5754 §2.2).
pub const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// ecdsa-with-SHA256 (RFC 5758 §3.2).
pub const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// id-contentType (RFC 5652 §11.1).
pub const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
/// id-messageDigest (RFC 5652 §11.2).
pub const ID_MESSAGE_DIGEST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");

/// `DataGroupHash` (Part 10 §4.6.2.2).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct DataGroupHash {
    /// Data group number 1..16.
    pub data_group_number: u8,
    /// Hash of the whole data group (its TLV).
    pub data_group_hash_value: OctetString,
}

/// `LDSSecurityObject` v0 (Part 10 §4.6.2.2).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct LdsSecurityObject {
    /// 0 = v0.
    pub version: u8,
    /// The hash algorithm of the data group hashes.
    pub hash_algorithm: AlgorithmIdentifierOwned,
    /// One hash per data group.
    pub data_group_hash_values: Vec<DataGroupHash>,
}

fn sod_err(rule: impl Into<String>) -> Error {
    Error::Lds {
        object: "EF.SOD".into(),
        rule: rule.into(),
    }
}

fn der_err(what: &str) -> impl Fn(der::Error) -> Error + '_ {
    move |e| sod_err(format!("{what}: {e}"))
}

fn sha256_alg() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ID_SHA256,
        parameters: None,
    }
}

/// The DER signed attributes (as the SET OF that is signed, RFC 5652 §5.4).
fn signed_attributes(econtent: &[u8]) -> Result<SetOfVec<Attribute>> {
    let digest = Sha256::digest(econtent);
    let ct = Attribute {
        oid: ID_CONTENT_TYPE,
        values: SetOfVec::try_from(vec![
            Any::encode_from(&ID_LDS_SECURITY_OBJECT).map_err(der_err("contentType"))?
        ])
        .map_err(der_err("contentType"))?,
    };
    let md = Attribute {
        oid: ID_MESSAGE_DIGEST,
        values: SetOfVec::try_from(vec![Any::encode_from(
            &OctetString::new(digest.to_vec()).map_err(der_err("messageDigest"))?,
        )
        .map_err(der_err("messageDigest"))?])
        .map_err(der_err("messageDigest"))?,
    };
    SetOfVec::try_from(vec![ct, md]).map_err(der_err("signedAttrs"))
}

/// Builds EF.SOD (tag 77 around the ContentInfo) for `dg_hashes` (SHA-256 by data group
/// number), signed by `sign`, which gets the DER signed attributes and returns a DER
/// `Ecdsa-Sig-Value` made with the key of `ds_cert_der` (ECDSA P-256, SHA-256 of the message).
pub fn build_sod(
    dg_hashes: &BTreeMap<u8, [u8; 32]>,
    ds_cert_der: &[u8],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    if dg_hashes.len() < 2 {
        return Err(sod_err(
            "LDSSecurityObject needs at least two data group hashes",
        ));
    }
    let lso = LdsSecurityObject {
        version: 0,
        hash_algorithm: sha256_alg(),
        data_group_hash_values: dg_hashes
            .iter()
            .map(|(&n, h)| {
                Ok(DataGroupHash {
                    data_group_number: n,
                    data_group_hash_value: OctetString::new(h.to_vec())
                        .map_err(der_err("dataGroupHashValue"))?,
                })
            })
            .collect::<Result<_>>()?,
    };
    let econtent = lso.to_der().map_err(der_err("LDSSecurityObject"))?;
    let cert =
        Certificate::from_der(ds_cert_der).map_err(der_err("Document Signer certificate"))?;
    let attrs = signed_attributes(&econtent)?;
    let to_sign = attrs.to_der().map_err(der_err("signedAttrs"))?;
    let sig = sign(&to_sign)?;
    // Check what the HSM gave us before putting it on a card.
    let vk = verifying_key(&cert)?;
    let ds = DerSignature::from_bytes(&sig)
        .map_err(|_| sod_err("the signer returned no DER ECDSA signature"))?;
    vk.verify(&to_sign, &ds).map_err(|_| {
        sod_err("the signer's signature does not verify with the Document Signer certificate")
    })?;
    let signer = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate().issuer().clone(),
            serial_number: cert.tbs_certificate().serial_number().clone(),
        }),
        digest_alg: sha256_alg(),
        signed_attrs: Some(attrs),
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA256,
            parameters: None,
        },
        signature: OctetString::new(sig).map_err(der_err("signature"))?,
        unsigned_attrs: None,
    };
    let sd = SignedData {
        // RFC 5652 §5.1: v3 because eContentType is not id-data.
        version: CmsVersion::V3,
        digest_algorithms: SetOfVec::try_from(vec![sha256_alg()])
            .map_err(der_err("digestAlgorithms"))?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_LDS_SECURITY_OBJECT,
            econtent: Some(
                Any::encode_from(&OctetString::new(econtent).map_err(der_err("eContent"))?)
                    .map_err(der_err("eContent"))?,
            ),
        },
        certificates: Some(CertificateSet(
            SetOfVec::try_from(vec![CertificateChoices::Certificate(cert)])
                .map_err(der_err("certificates"))?,
        )),
        crls: None,
        signer_infos: SignerInfos(
            SetOfVec::try_from(vec![signer]).map_err(der_err("signerInfos"))?,
        ),
    };
    let ci = ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&sd).map_err(der_err("SignedData"))?,
    };
    Ok(tlv::encode(
        0x77,
        &ci.to_der().map_err(der_err("ContentInfo"))?,
    ))
}

fn verifying_key(cert: &Certificate) -> Result<VerifyingKey> {
    let spki = cert.tbs_certificate().subject_public_key_info();
    let bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| sod_err("certificate public key is not a whole number of bytes"))?;
    VerifyingKey::from_sec1_bytes(bits)
        .map_err(|_| sod_err("certificate key is not a P-256 public key"))
}

/// The DER ContentInfo inside EF.SOD (tag 77).
pub fn content_info_der(ef_sod: &[u8]) -> Result<Vec<u8>> {
    Ok(tlv::expect_single(ef_sod, 0x77)?.to_vec())
}

/// What passive authentication established.
#[derive(Debug, Clone)]
pub struct PassiveAuthentication {
    /// The Document Signer certificate (DER) found in EF.SOD.
    pub ds_cert_der: Vec<u8>,
    /// The data group hashes EF.SOD holds.
    pub dg_hashes: BTreeMap<u8, Vec<u8>>,
}

/// Passive authentication (Part 11 §5.1): EF.SOD parses as SignedData over an
/// LDSSecurityObject; the contentType and messageDigest signed attributes match; the signature
/// verifies with the Document Signer certificate in EF.SOD; that certificate was issued by
/// `csca_der` (issuer name, ECDSA-SHA256 signature) and is valid at `now`; and every data group
/// read hashes (SHA-256) to the value in EF.SOD, with none missing on either side.
pub fn passive_authentication(
    ef_sod: &[u8],
    dgs: &BTreeMap<u8, Vec<u8>>,
    csca_der: &[u8],
    now: SystemTime,
) -> Result<PassiveAuthentication> {
    let (sd, econtent, lso) = signed_security_object(ef_sod)?;
    let cert = document_signer(&sd)?;
    verify_signer_info(&sd, &cert, &econtent)?;
    verify_document_signer(&cert, csca_der, now)?;
    let dg_hashes = check_data_groups(&lso, dgs)?;
    Ok(PassiveAuthentication {
        ds_cert_der: cert.to_der().map_err(der_err("DS certificate"))?,
        dg_hashes,
    })
}

/// EF.SOD as SignedData over an LDSSecurityObject with SHA-256 data group hashes (Part 10
/// §4.6.2): the SignedData, its eContent and the decoded security object.
fn signed_security_object(ef_sod: &[u8]) -> Result<(SignedData, OctetString, LdsSecurityObject)> {
    let ci = ContentInfo::from_der(&content_info_der(ef_sod)?).map_err(der_err("ContentInfo"))?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(sod_err(format!(
            "content type {} is not signedData",
            ci.content_type
        )));
    }
    let sd: SignedData = ci.content.decode_as().map_err(der_err("SignedData"))?;
    let eci = &sd.encap_content_info;
    if eci.econtent_type != ID_LDS_SECURITY_OBJECT {
        return Err(sod_err(format!(
            "eContentType {} is not ldsSecurityObject",
            eci.econtent_type
        )));
    }
    let econtent: OctetString = eci
        .econtent
        .as_ref()
        .ok_or_else(|| sod_err("no eContent"))?
        .decode_as()
        .map_err(der_err("eContent"))?;
    let lso =
        LdsSecurityObject::from_der(econtent.as_bytes()).map_err(der_err("LDSSecurityObject"))?;
    if lso.hash_algorithm.oid != ID_SHA256 {
        return Err(sod_err(format!(
            "hash algorithm {} is not SHA-256",
            lso.hash_algorithm.oid
        )));
    }
    Ok((sd, econtent, lso))
}

/// The Document Signer certificate EF.SOD carries (Part 10 §4.6.2.2: certificates).
fn document_signer(sd: &SignedData) -> Result<Certificate> {
    sd.certificates
        .as_ref()
        .and_then(|cs| {
            cs.0.iter().find_map(|c| match c {
                CertificateChoices::Certificate(c) => Some(c.clone()),
                _ => None,
            })
        })
        .ok_or_else(|| sod_err("no Document Signer certificate in EF.SOD"))
}

/// The one SignerInfo names `cert`, uses ecdsa-with-SHA256, its signed attributes carry the
/// right contentType and the eContent's messageDigest, and its signature verifies with `cert`
/// (RFC 5652 §5.4, §11.1, §11.2).
fn verify_signer_info(sd: &SignedData, cert: &Certificate, econtent: &OctetString) -> Result<()> {
    let [signer] = sd.signer_infos.0.as_slice() else {
        return Err(sod_err("EF.SOD must have exactly one SignerInfo"));
    };
    match &signer.sid {
        SignerIdentifier::IssuerAndSerialNumber(ias)
            if ias.issuer == *cert.tbs_certificate().issuer()
                && ias.serial_number == *cert.tbs_certificate().serial_number() => {}
        _ => {
            return Err(sod_err(
                "the SignerInfo does not name the included certificate",
            ))
        }
    }
    if signer.signature_algorithm.oid != ECDSA_WITH_SHA256 || signer.digest_alg.oid != ID_SHA256 {
        return Err(sod_err("signature algorithm is not ecdsa-with-SHA256"));
    }
    let attrs = signer
        .signed_attrs
        .as_ref()
        .ok_or_else(|| sod_err("no signed attributes"))?;
    let attr = |oid: ObjectIdentifier, name: &str| -> Result<Any> {
        let a = attrs
            .iter()
            .find(|a| a.oid == oid)
            .ok_or_else(|| sod_err(format!("no {name} signed attribute")))?;
        let [v] = a.values.as_slice() else {
            return Err(sod_err(format!("{name} must have one value")));
        };
        Ok(v.clone())
    };
    let ct: ObjectIdentifier = attr(ID_CONTENT_TYPE, "contentType")?
        .decode_as()
        .map_err(der_err("contentType"))?;
    if ct != ID_LDS_SECURITY_OBJECT {
        return Err(sod_err("contentType attribute is not ldsSecurityObject"));
    }
    let md: OctetString = attr(ID_MESSAGE_DIGEST, "messageDigest")?
        .decode_as()
        .map_err(der_err("messageDigest"))?;
    if md.as_bytes() != Sha256::digest(econtent.as_bytes()).as_slice() {
        return Err(sod_err(
            "messageDigest does not match the LDSSecurityObject",
        ));
    }
    let signed = attrs.to_der().map_err(der_err("signedAttrs"))?;
    let sig = DerSignature::from_bytes(signer.signature.as_bytes())
        .map_err(|_| sod_err("signature is not a DER ECDSA signature"))?;
    verifying_key(cert)?
        .verify(&signed, &sig)
        .map_err(|_| sod_err("signature does not verify with the Document Signer certificate"))?;
    Ok(())
}

/// `cert` was issued by the CSCA `csca_der` (issuer name, ECDSA-SHA256 signature) and is valid
/// at `now` (Part 12 §5).
fn verify_document_signer(cert: &Certificate, csca_der: &[u8], now: SystemTime) -> Result<()> {
    let csca = Certificate::from_der(csca_der).map_err(der_err("CSCA certificate"))?;
    if cert.tbs_certificate().issuer() != csca.tbs_certificate().subject() {
        return Err(sod_err(
            "the Document Signer certificate was not issued by this CSCA (issuer name)",
        ));
    }
    if cert.signature_algorithm().oid != ECDSA_WITH_SHA256 {
        return Err(sod_err(
            "the Document Signer certificate is not signed with ecdsa-with-SHA256",
        ));
    }
    let tbs = cert
        .tbs_certificate()
        .to_der()
        .map_err(der_err("DS tbsCertificate"))?;
    let csig = DerSignature::from_bytes(
        cert.signature()
            .as_bytes()
            .ok_or_else(|| sod_err("DS certificate signature bits"))?,
    )
    .map_err(|_| sod_err("DS certificate signature is not DER ECDSA"))?;
    verifying_key(&csca)?.verify(&tbs, &csig).map_err(|_| {
        sod_err("the Document Signer certificate's signature does not verify with the CSCA key")
    })?;
    let v = cert.tbs_certificate().validity();
    if now < v.not_before.to_system_time() || now > v.not_after.to_system_time() {
        return Err(sod_err("the Document Signer certificate is not valid now"));
    }
    Ok(())
}

/// Every data group read hashes (SHA-256) to its value in EF.SOD, with none missing on either
/// side and none listed twice; the hashes EF.SOD holds.
fn check_data_groups(
    lso: &LdsSecurityObject,
    dgs: &BTreeMap<u8, Vec<u8>>,
) -> Result<BTreeMap<u8, Vec<u8>>> {
    let mut in_sod = BTreeMap::new();
    for h in &lso.data_group_hash_values {
        if in_sod
            .insert(
                h.data_group_number,
                h.data_group_hash_value.as_bytes().to_vec(),
            )
            .is_some()
        {
            return Err(sod_err(format!("DG{} listed twice", h.data_group_number)));
        }
    }
    for (n, content) in dgs {
        let want = in_sod
            .get(n)
            .ok_or_else(|| sod_err(format!("DG{n} was read but has no hash in EF.SOD")))?;
        if Sha256::digest(content).as_slice() != want.as_slice() {
            return Err(sod_err(format!(
                "DG{n} does not match its hash in EF.SOD (altered)"
            )));
        }
    }
    if let Some(n) = in_sod.keys().find(|n| !dgs.contains_key(n)) {
        return Err(sod_err(format!("DG{n} is in EF.SOD but was not read")));
    }
    Ok(in_sod)
}
