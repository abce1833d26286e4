//! The CSCA Master List (ICAO Doc 9303 Part 12 §9): a CMS `SignedData` (RFC 5652) whose
//! encapsulated content, of type `id-icao-cscaMasterList` (2.23.136.1.1.2, §9.2), is
//!
//! ```text
//! CscaMasterList ::= SEQUENCE {
//!     version   CscaMasterListVersion,   -- v0(0)
//!     certList  SET OF Certificate }
//! ```
//!
//! signed by a Master List Signer whose certificate the CSCA issued (§5.3: "Master Lists MUST
//! NOT be signed and issued directly by a CSCA itself"), its extendedKeyUsage
//! id-icao-cscaMasterListSigningKey (2.23.136.1.1.3, §7.1.1.3).
//!
//! [`build`] follows Table 18: SignedData v3; one digest algorithm, SHA-256 without parameters
//! (the note under Table 18); the content encapsulated; `certificates` holds the Master List
//! Signer's certificate and the CSCA certificate that issued it (§5.3 "MUST include"); no CRLs;
//! one SignerInfo naming the signer by subjectKeyIdentifier (recommended by Table 18; so
//! SignerInfo v3, RFC 5652 §5.3), with the signed attributes contentType and messageDigest
//! (RFC 5652 §5.3) and signingTime ("signedAttrs MUST include signing time"),
//! ecdsa-with-SHA256. `certList` is a DER SET OF: sorted, without duplicates.
//!
//! [`verify`] is what a receiving State does before it uses a list (§6.1.2): the structure as
//! above, the signer certificate a Master List Signer's issued by one of the CSCA certificates
//! it trusts and valid at the signing time, the signature, and the content's digest.
//!
//! Every structure goes through `der` and the `cms` / `x509-cert` types; nothing is encoded by
//! hand. The signature is made by a caller-supplied function (the HSM).

use std::time::SystemTime;

use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::ObjectIdentifier;
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode, Sequence};
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectKeyIdentifier};
use x509_cert::time::Time;
use x509_cert::Certificate;

use crate::error::{enc, CaError, Result};

/// id-icao-cscaMasterList (Doc 9303-12 §9.2).
pub const ID_CSCA_MASTER_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.136.1.1.2");
/// id-icao-cscaMasterListSigningKey (Doc 9303-12 §7.1.1.3, §9.2).
pub const ID_CSCA_MASTER_LIST_SIGNING_KEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.23.136.1.1.3");
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
const ID_SUBJECT_KEY_IDENTIFIER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
const ID_EXTENDED_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");

/// `CscaMasterList` (Doc 9303-12 §9.2).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CscaMasterList {
    /// v0(0).
    pub version: u8,
    pub cert_list: SetOfVec<Certificate>,
}

/// What [`verify`] found in a Master List.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterListContent {
    /// The CSCA certificates of `certList`, DER, in their (DER SET OF) order.
    pub certificates: Vec<Vec<u8>>,
    /// The Master List Signer's certificate, DER.
    pub signer: Vec<u8>,
    /// The signed signingTime.
    pub signing_time: SystemTime,
}

fn rule(rule: impl Into<String>) -> CaError {
    CaError::MasterList { rule: rule.into() }
}

fn sha256_alg() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ID_SHA256,
        parameters: None,
    }
}

fn parse_cert(der: &[u8], what: &str) -> Result<Certificate> {
    Certificate::from_der(der).map_err(|e| rule(format!("{what} is not a certificate: {e}")))
}

/// The DER `CscaMasterList` of `certs` (each a DER certificate; duplicates dropped).
pub fn content(certs: &[Vec<u8>]) -> Result<Vec<u8>> {
    let mut list = Vec::with_capacity(certs.len());
    for (i, der) in certs.iter().enumerate() {
        let cert = parse_cert(der, &format!("certificate {i} of the list"))?;
        if !list.contains(&cert) {
            list.push(cert);
        }
    }
    CscaMasterList {
        version: 0,
        cert_list: SetOfVec::try_from(list).map_err(enc("certList"))?,
    }
    .to_der()
    .map_err(enc("CscaMasterList"))
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value]).map_err(enc("signed attribute"))?,
    })
}

/// The signed attributes over `econtent` at `at` (RFC 5652 §5.3, §11; Doc 9303-12 Table 18).
fn signed_attributes(econtent: &[u8], at: SystemTime) -> Result<SetOfVec<Attribute>> {
    let digest = OctetString::new(Sha256::digest(econtent).to_vec()).map_err(enc("digest"))?;
    let time = Time::try_from(at).map_err(enc("signingTime"))?;
    SetOfVec::try_from(vec![
        attribute(
            ID_CONTENT_TYPE,
            Any::encode_from(&ID_CSCA_MASTER_LIST).map_err(enc("contentType"))?,
        )?,
        attribute(
            ID_MESSAGE_DIGEST,
            Any::encode_from(&digest).map_err(enc("messageDigest"))?,
        )?,
        attribute(
            ID_SIGNING_TIME,
            Any::encode_from(&time).map_err(enc("signingTime"))?,
        )?,
    ])
    .map_err(enc("signedAttrs"))
}

/// The subjectKeyIdentifier of `cert`, which a Master List names its signer by.
fn subject_key_id(cert: &Certificate) -> Option<SubjectKeyIdentifier> {
    cert.tbs_certificate()
        .extensions()?
        .iter()
        .find(|e| e.extn_id == ID_SUBJECT_KEY_IDENTIFIER)
        .and_then(|e| SubjectKeyIdentifier::from_der(e.extn_value.as_bytes()).ok())
}

/// Whether `cert` says it is a Master List Signer (extendedKeyUsage 2.23.136.1.1.3).
fn is_master_list_signer(cert: &Certificate) -> bool {
    cert.tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .filter(|e| e.extn_id == ID_EXTENDED_KEY_USAGE)
        .filter_map(|e| ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).ok())
        .any(|eku| eku.0.contains(&ID_CSCA_MASTER_LIST_SIGNING_KEY))
}

/// The Master List (DER ContentInfo) of `certs`, signed at `at` by the Master List Signer of
/// `signer_der`, which `csca_der` issued; `sign` gets the DER signed attributes and returns a
/// DER `Ecdsa-Sig-Value` made with the signer's key (ECDSA P-256 over SHA-256), checked here.
pub fn build(
    certs: &[Vec<u8>],
    signer_der: &[u8],
    csca_der: &[u8],
    at: SystemTime,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let signer = parse_cert(signer_der, "the Master List Signer certificate")?;
    let csca = parse_cert(csca_der, "the CSCA certificate")?;
    if !is_master_list_signer(&signer) {
        return Err(rule(
            "the signer certificate has no extendedKeyUsage id-icao-cscaMasterListSigningKey \
             (Doc 9303-12 §7.1.1.3)",
        ));
    }
    if !crate::issued_by(signer_der, csca_der)? {
        return Err(rule(
            "the CSCA certificate given did not issue the Master List Signer certificate",
        ));
    }
    let ski = subject_key_id(&signer).ok_or_else(|| {
        rule("the Master List Signer certificate has no subjectKeyIdentifier to be named by")
    })?;
    let econtent = content(certs)?;
    let attrs = signed_attributes(&econtent, at)?;
    let to_sign = attrs.to_der().map_err(enc("signedAttrs"))?;
    let signature = sign(&to_sign)?;
    if !crate::possession::signed_by(&signer, &to_sign, &signature)? {
        return Err(rule(
            "the signature made does not verify with the Master List Signer certificate",
        ));
    }
    let signer_info = SignerInfo {
        // RFC 5652 §5.3: v3 with a subjectKeyIdentifier.
        version: CmsVersion::V3,
        sid: SignerIdentifier::SubjectKeyIdentifier(ski),
        digest_alg: sha256_alg(),
        signed_attrs: Some(attrs),
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: crate::ECDSA_WITH_SHA256,
            parameters: None,
        },
        signature: OctetString::new(signature).map_err(enc("signature"))?,
        unsigned_attrs: None,
    };
    let sd = SignedData {
        // RFC 5652 §5.1 and Doc 9303-12 Table 18: v3.
        version: CmsVersion::V3,
        digest_algorithms: SetOfVec::try_from(vec![sha256_alg()])
            .map_err(enc("digestAlgorithms"))?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_CSCA_MASTER_LIST,
            econtent: Some(
                Any::encode_from(&OctetString::new(econtent).map_err(enc("eContent"))?)
                    .map_err(enc("eContent"))?,
            ),
        },
        certificates: Some(CertificateSet(
            SetOfVec::try_from(vec![
                CertificateChoices::Certificate(signer),
                CertificateChoices::Certificate(csca),
            ])
            .map_err(enc("certificates"))?,
        )),
        crls: None,
        signer_infos: SignerInfos(
            SetOfVec::try_from(vec![signer_info]).map_err(enc("signerInfos"))?,
        ),
    };
    ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&sd).map_err(enc("SignedData"))?,
    }
    .to_der()
    .map_err(enc("ContentInfo"))
}

/// One signed attribute's single value.
fn attr_value<'a>(
    attrs: &'a SetOfVec<Attribute>,
    oid: ObjectIdentifier,
    name: &str,
) -> Result<&'a Any> {
    let a = attrs
        .iter()
        .find(|a| a.oid == oid)
        .ok_or_else(|| rule(format!("the signed attributes lack {name}")))?;
    match a.values.as_slice() {
        [v] => Ok(v),
        _ => Err(rule(format!("{name} must have exactly one value"))),
    }
}

/// Check Master List `ml` (DER ContentInfo) as a receiving State does (see the module
/// documentation), its signer issued by one of `trusted_cscas` (DER certificates); what it
/// lists.
pub fn verify(ml: &[u8], trusted_cscas: &[Vec<u8>]) -> Result<MasterListContent> {
    let ci = ContentInfo::from_der(ml).map_err(|e| rule(format!("not a ContentInfo: {e}")))?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(rule("the ContentInfo does not hold SignedData"));
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| rule(format!("not SignedData: {e}")))?;
    if sd.version != CmsVersion::V3 || sd.crls.is_some() {
        return Err(rule(
            "SignedData must be v3 without CRLs (Doc 9303-12 Table 18)",
        ));
    }
    if sd.encap_content_info.econtent_type != ID_CSCA_MASTER_LIST {
        return Err(rule("eContentType is not id-icao-cscaMasterList"));
    }
    let econtent = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| rule("no encapsulated content"))?
        .decode_as::<OctetString>()
        .map_err(|e| rule(format!("eContent: {e}")))?;
    let list = CscaMasterList::from_der(econtent.as_bytes())
        .map_err(|e| rule(format!("not a CscaMasterList: {e}")))?;
    if list.version != 0 {
        return Err(rule("CscaMasterList version must be v0"));
    }
    let [signer_info] = sd.signer_infos.0.as_slice() else {
        return Err(rule("one SignerInfo expected (Doc 9303-12 Table 18)"));
    };
    if signer_info.digest_alg.oid != ID_SHA256
        || signer_info.signature_algorithm.oid != crate::ECDSA_WITH_SHA256
        || !sd.digest_algorithms.iter().any(|a| a.oid == ID_SHA256)
    {
        return Err(rule("only SHA-256 with ecdsa-with-SHA256 is accepted"));
    }
    let certs: Vec<&Certificate> = sd
        .certificates
        .as_ref()
        .map(|c| {
            c.0.iter()
                .filter_map(|c| match c {
                    CertificateChoices::Certificate(c) => Some(c),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let signer = certs
        .into_iter()
        .find(|c| match &signer_info.sid {
            SignerIdentifier::SubjectKeyIdentifier(id) => subject_key_id(c).as_ref() == Some(id),
            SignerIdentifier::IssuerAndSerialNumber(i) => {
                c.tbs_certificate().issuer() == &i.issuer
                    && c.tbs_certificate().serial_number() == &i.serial_number
            }
        })
        .ok_or_else(|| rule("the Master List Signer's certificate is not included"))?;
    let signer_der = signer.to_der().map_err(enc("signer certificate"))?;
    if !is_master_list_signer(signer) {
        return Err(rule(
            "the signer certificate is not a Master List Signer's (extendedKeyUsage \
             2.23.136.1.1.3)",
        ));
    }
    let mut trusted = false;
    for csca in trusted_cscas {
        trusted |= crate::issued_by(&signer_der, csca)?;
    }
    if !trusted {
        return Err(rule(
            "no trusted CSCA certificate issued the Master List Signer",
        ));
    }
    let attrs = signer_info
        .signed_attrs
        .as_ref()
        .ok_or_else(|| rule("no signed attributes"))?;
    let content_type: ObjectIdentifier = attr_value(attrs, ID_CONTENT_TYPE, "contentType")?
        .decode_as()
        .map_err(|e| rule(format!("contentType: {e}")))?;
    let digest: OctetString = attr_value(attrs, ID_MESSAGE_DIGEST, "messageDigest")?
        .decode_as()
        .map_err(|e| rule(format!("messageDigest: {e}")))?;
    let time: Time = attr_value(attrs, ID_SIGNING_TIME, "signingTime")?
        .decode_as()
        .map_err(|e| rule(format!("signingTime: {e}")))?;
    let at = time.to_system_time();
    let validity = signer.tbs_certificate().validity();
    if at < validity.not_before.to_system_time() || at > validity.not_after.to_system_time() {
        return Err(rule(
            "the Master List Signer's certificate was not valid at the list's signingTime",
        ));
    }
    if content_type != ID_CSCA_MASTER_LIST {
        return Err(rule(
            "the contentType attribute is not id-icao-cscaMasterList",
        ));
    }
    if digest.as_bytes() != Sha256::digest(econtent.as_bytes()).as_slice() {
        return Err(rule("messageDigest is not the SHA-256 of the content"));
    }
    let signed = attrs.to_der().map_err(enc("signedAttrs"))?;
    if !crate::possession::signed_by(signer, &signed, signer_info.signature.as_bytes())? {
        return Err(rule(
            "the signature does not verify with the Master List Signer's key",
        ));
    }
    Ok(MasterListContent {
        certificates: list
            .cert_list
            .iter()
            .map(|c| c.to_der().map_err(enc("certificate")))
            .collect::<Result<_>>()?,
        signer: signer_der,
        signing_time: time.to_system_time(),
    })
}
