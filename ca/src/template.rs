//! End-entity tbsCertificate (RFC 5280 §4.1) encoded from parts prepared once per issuer and
//! profile: the issuer name, the signature algorithm and every profile-derived extension are
//! DER-encoded when a profile is first used under an issuer; per certificate only the serial,
//! validity, subject, public key and subjectKeyIdentifier are new. All encoding goes through
//! `der` (derive + `AnyRef` for the pre-encoded parts); nothing is written byte by byte.
//!
//! Why: issue 2 asks that issuing a holder certificate cost at most 1.15 × one HSM signature.
//! `x509-cert`'s `CertificateBuilder` re-encodes the whole issuer name and extension list for
//! every certificate; here that work is done once. CA certificates (root, subordinate) still
//! go through the builder, and a test checks that this encoder and the builder produce the
//! same bytes for the same certificate (`template_tbs_equals_the_x509_cert_builder_output`).

use der::asn1::{AnyRef, OctetString};
use der::{Decode, Encode};
use x509_cert::certificate::Version;
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;

use crate::{enc, Result};

/// `TBSCertificate` (RFC 5280 §4.1.2) of a v3 certificate with extensions and no unique
/// identifiers, with the parts that repeat between certificates carried as encoded DER.
#[derive(der::Sequence)]
struct TbsParts<'a> {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    version: Version,
    serial_number: SerialNumber,
    signature: AnyRef<'a>,
    issuer: AnyRef<'a>,
    validity: Validity,
    subject: Name,
    subject_public_key_info: AnyRef<'a>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT")]
    extensions: Vec<AnyRef<'a>>,
}

/// What one (issuer, profile) pair contributes to every certificate: encoded extensions in
/// profile order, with the position of the subjectKeyIdentifier (replaced per certificate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExtensionTemplate {
    encoded: Vec<Vec<u8>>,
    ski_index: Option<usize>,
}

impl ExtensionTemplate {
    /// Encode `extensions` once. The subjectKeyIdentifier, if the profile has one, is a
    /// placeholder here and is re-encoded for every certificate.
    pub(crate) fn new(extensions: &[Extension]) -> Result<Self> {
        use const_oid::AssociatedOid;
        let mut encoded = Vec::with_capacity(extensions.len());
        let mut ski_index = None;
        for (i, e) in extensions.iter().enumerate() {
            if e.extn_id == SubjectKeyIdentifier::OID {
                ski_index = Some(i);
            }
            encoded.push(e.to_der().map_err(enc("extension"))?);
        }
        Ok(ExtensionTemplate { encoded, ski_index })
    }
}

/// The issuer-constant parts: the issuer's name and the signature algorithm, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IssuerParts {
    pub(crate) name_der: Vec<u8>,
    pub(crate) algorithm_der: Vec<u8>,
}

/// Everything that is new in one certificate.
pub(crate) struct PerCertificate<'a> {
    pub serial: &'a [u8],
    pub validity: Validity,
    pub subject: Name,
    /// The subject's SubjectPublicKeyInfo, already checked and in canonical DER.
    pub spki_der: &'a [u8],
    pub ski: &'a [u8],
}

fn any<'a>(bytes: &'a [u8], what: &'static str) -> Result<AnyRef<'a>> {
    AnyRef::from_der(bytes).map_err(enc::<der::Error>(what))
}

/// Encode the tbsCertificate.
pub(crate) fn encode_tbs(
    issuer: &IssuerParts,
    exts: &ExtensionTemplate,
    cert: PerCertificate<'_>,
) -> Result<Vec<u8>> {
    let ski_der = match exts.ski_index {
        Some(_) => Some(
            crate::ext(
                <SubjectKeyIdentifier as const_oid::AssociatedOid>::OID,
                false,
                &SubjectKeyIdentifier(OctetString::new(cert.ski).map_err(enc("SKI"))?),
            )?
            .to_der()
            .map_err(enc("SKI"))?,
        ),
        None => None,
    };
    let mut extensions = Vec::with_capacity(exts.encoded.len());
    for (i, e) in exts.encoded.iter().enumerate() {
        match (&ski_der, exts.ski_index) {
            (Some(ski), Some(at)) if at == i => extensions.push(any(ski, "SKI")?),
            _ => extensions.push(any(e, "extension")?),
        }
    }
    TbsParts {
        version: Version::V3,
        serial_number: SerialNumber::new(cert.serial).map_err(enc("serial number"))?,
        signature: any(&issuer.algorithm_der, "signature algorithm")?,
        issuer: any(&issuer.name_der, "issuer name")?,
        validity: cert.validity,
        subject: cert.subject,
        subject_public_key_info: any(cert.spki_der, "subjectPublicKeyInfo")?,
        extensions,
    }
    .to_der()
    .map_err(enc("tbsCertificate"))
}
