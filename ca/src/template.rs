//! End-entity tbsCertificate (RFC 5280 §4.1) encoded from parts prepared once per issuer and
//! profile: the issuer name, the signature algorithm and every profile-derived extension are
//! DER-encoded when a profile is first used under an issuer; per certificate only the serial,
//! validity, subject, public key and subjectKeyIdentifier are new. All encoding goes through
//! `der` (its headers, lengths and the encoders of every value); the pre-encoded parts are
//! complete DER elements produced by `der` and copied in as they are.
//!
//! Why: issuing a holder certificate should cost little more than the HSM signature itself
//! (the CA budget in docs/BENCHMARKS.md).
//! `x509-cert`'s `CertificateBuilder` re-encodes the whole issuer name and extension list for
//! every certificate and allocates every attribute of the subject; here the constant parts are
//! encoded once and the per-certificate parts are borrowed, not owned. CA certificates (root,
//! subordinate) still go through the builder, and a test checks that this encoder and the
//! builder produce the same bytes for the same certificate
//! (`template_tbs_equals_the_x509_cert_builder_output`).

use const_oid::ObjectIdentifier;
use der::asn1::{AnyRef, ContextSpecificRef, OctetStringRef, UintRef};
use der::{Encode, EncodeValue, FixedTag, Length, Tag, TagMode, TagNumber, Writer};
use x509_cert::certificate::Version;
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::ext::Extension;
use x509_cert::time::Validity;

use crate::error::enc;
use crate::Result;

/// What one (issuer, profile) pair contributes to every certificate: the extensions in
/// profile order, encoded and concatenated, split around the subjectKeyIdentifier (which is
/// new in every certificate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExtensionTemplate {
    /// The encoded extensions before the SKI (all of them if the profile has no SKI).
    before_ski: Vec<u8>,
    /// The encoded extensions after the SKI.
    after_ski: Vec<u8>,
    has_ski: bool,
}

impl ExtensionTemplate {
    /// Encode `extensions` once. The subjectKeyIdentifier, if the profile has one, is left
    /// out here and encoded for every certificate.
    pub(crate) fn new(extensions: &[Extension]) -> Result<Self> {
        use const_oid::AssociatedOid;
        let mut t = ExtensionTemplate {
            before_ski: Vec::new(),
            after_ski: Vec::new(),
            has_ski: false,
        };
        for e in extensions {
            if e.extn_id == SubjectKeyIdentifier::OID {
                t.has_ski = true;
                continue;
            }
            let part = if t.has_ski {
                &mut t.after_ski
            } else {
                &mut t.before_ski
            };
            e.encode_to_vec(part).map_err(enc("extension"))?;
        }
        Ok(t)
    }
}

/// The issuer-constant parts: the issuer's name and the signature algorithm, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IssuerParts {
    pub(crate) name: Encoded,
    pub(crate) algorithm: Encoded,
}

/// One DER element encoded once, with its header parsed once, so that every certificate can
/// carry it as an [`AnyRef`] without decoding it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Encoded {
    der: Vec<u8>,
    tag: Tag,
    value_at: usize,
}

impl Encoded {
    pub(crate) fn new(der: Vec<u8>, what: &'static str) -> Result<Self> {
        let (tag, value_len) = {
            let any = any(&der, what)?;
            (der::Tagged::tag(&any), any.value().len())
        };
        Ok(Encoded {
            value_at: der.len() - value_len,
            tag,
            der,
        })
    }

    pub(crate) fn any(&self) -> AnyRef<'_> {
        // The value was taken from a decoded element: its length is valid.
        AnyRef::new(self.tag, &self.der[self.value_at..]).unwrap_or(AnyRef::NULL)
    }
}

/// One subject attribute, rendered and checked (`crate::subject_values`).
pub(crate) struct SubjectValue<'a> {
    pub oid: ObjectIdentifier,
    /// PrintableString if true (its character set already checked), else UTF8String.
    pub printable: bool,
    /// Borrowed from the profile or the holder when the template is one of them verbatim.
    pub value: std::borrow::Cow<'a, str>,
}

/// Everything that is new in one certificate.
pub(crate) struct PerCertificate<'a> {
    pub serial: &'a [u8],
    pub validity: Validity,
    /// In profile order, one attribute per RelativeDistinguishedName.
    pub subject: &'a [SubjectValue<'a>],
    /// The subject's SubjectPublicKeyInfo, already checked and in canonical DER.
    pub spki_der: &'a [u8],
    pub ski: &'a [u8],
    /// Extensions of this certificate alone (the subjectAltName), encoded, after the profile's.
    pub own_extensions: &'a [u8],
}

/// `AttributeTypeAndValue` (RFC 5280 §4.1.2.4) over a borrowed value.
#[derive(der::Sequence)]
struct AttributeRef<'a> {
    oid: ObjectIdentifier,
    value: AnyRef<'a>,
}

/// A `RelativeDistinguishedName` (SET OF AttributeTypeAndValue) of exactly one attribute, the
/// only shape profiles produce; a one-element SET OF needs no DER sorting.
struct SingleAttributeRdn<'a>(AttributeRef<'a>);

impl FixedTag for SingleAttributeRdn<'_> {
    const TAG: Tag = Tag::Set;
}

impl EncodeValue for SingleAttributeRdn<'_> {
    fn value_len(&self) -> der::Result<Length> {
        self.0.encoded_len()
    }
    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        self.0.encode(writer)
    }
}

/// `Extension` (RFC 5280 §4.1.2.9) for the subjectKeyIdentifier: not critical, so the
/// DEFAULT FALSE `critical` field is absent in DER.
#[derive(der::Sequence)]
struct SkiExtensionRef<'a> {
    extn_id: ObjectIdentifier,
    extn_value: &'a OctetStringRef,
}

/// `Extensions` (SEQUENCE OF Extension): the pre-encoded extensions around this
/// certificate's SKI extension.
struct ExtensionsRef<'a> {
    before: &'a [u8],
    ski: Option<SkiExtensionRef<'a>>,
    after: &'a [u8],
    own: &'a [u8],
}

impl FixedTag for ExtensionsRef<'_> {
    const TAG: Tag = Tag::Sequence;
}

impl EncodeValue for ExtensionsRef<'_> {
    fn value_len(&self) -> der::Result<Length> {
        let ski = match &self.ski {
            Some(s) => s.encoded_len()?,
            None => Length::ZERO,
        };
        Length::try_from(self.before.len())?
            + ski
            + Length::try_from(self.after.len())?
            + Length::try_from(self.own.len())?
    }
    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        writer.write(self.before)?;
        if let Some(s) = &self.ski {
            s.encode(writer)?;
        }
        writer.write(self.after)?;
        writer.write(self.own)
    }
}

/// `TBSCertificate` (RFC 5280 §4.1.2) of a v3 certificate with extensions and no unique
/// identifiers.
struct TbsParts<'a> {
    version: ContextSpecificRef<'a, Version>,
    serial_number: UintRef<'a>,
    signature: AnyRef<'a>,
    issuer: AnyRef<'a>,
    validity: &'a Validity,
    subject: &'a Vec<SingleAttributeRdn<'a>>,
    subject_public_key_info: AnyRef<'a>,
    extensions: ContextSpecificRef<'a, ExtensionsRef<'a>>,
}

impl FixedTag for TbsParts<'_> {
    const TAG: Tag = Tag::Sequence;
}

impl EncodeValue for TbsParts<'_> {
    fn value_len(&self) -> der::Result<Length> {
        self.version.encoded_len()?
            + self.serial_number.encoded_len()?
            + self.signature.encoded_len()?
            + self.issuer.encoded_len()?
            + self.validity.encoded_len()?
            + self.subject.encoded_len()?
            + self.subject_public_key_info.encoded_len()?
            + self.extensions.encoded_len()?
    }
    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        self.version.encode(writer)?;
        self.serial_number.encode(writer)?;
        self.signature.encode(writer)?;
        self.issuer.encode(writer)?;
        self.validity.encode(writer)?;
        self.subject.encode(writer)?;
        self.subject_public_key_info.encode(writer)?;
        self.extensions.encode(writer)
    }
}

fn any<'a>(bytes: &'a [u8], what: &'static str) -> Result<AnyRef<'a>> {
    use der::Decode;
    AnyRef::from_der(bytes).map_err(enc::<der::Error>(what))
}

/// Encode the tbsCertificate.
pub(crate) fn encode_tbs(
    issuer: &IssuerParts,
    exts: &ExtensionTemplate,
    cert: PerCertificate<'_>,
) -> Result<Vec<u8>> {
    // The SKI extension's extnValue: the DER of the KeyIdentifier OCTET STRING.
    let mut ski_buf = [0u8; 64];
    let ski_value = match exts.has_ski {
        true => Some(
            OctetStringRef::new(cert.ski)
                .and_then(|s| s.encode_to_slice(&mut ski_buf))
                .map_err(enc("SKI"))?,
        ),
        false => None,
    };
    let ski = match ski_value {
        Some(v) => Some(SkiExtensionRef {
            extn_id: <SubjectKeyIdentifier as const_oid::AssociatedOid>::OID,
            extn_value: OctetStringRef::new(v).map_err(enc("SKI"))?,
        }),
        None => None,
    };
    let mut subject = Vec::with_capacity(cert.subject.len());
    for v in cert.subject {
        let tag = if v.printable {
            Tag::PrintableString
        } else {
            Tag::Utf8String
        };
        subject.push(SingleAttributeRdn(AttributeRef {
            oid: v.oid,
            value: AnyRef::new(tag, v.value.as_bytes()).map_err(enc("subject attribute"))?,
        }));
    }
    let extensions = ExtensionsRef {
        before: &exts.before_ski,
        ski,
        after: &exts.after_ski,
        own: cert.own_extensions,
    };
    TbsParts {
        version: ContextSpecificRef {
            tag_number: TagNumber(0),
            tag_mode: TagMode::Explicit,
            value: &Version::V3,
        },
        serial_number: UintRef::new(cert.serial).map_err(enc("serial number"))?,
        signature: issuer.algorithm.any(),
        issuer: issuer.name.any(),
        validity: &cert.validity,
        subject: &subject,
        subject_public_key_info: any(cert.spki_der, "subjectPublicKeyInfo")?,
        extensions: ContextSpecificRef {
            tag_number: TagNumber(3),
            tag_mode: TagMode::Explicit,
            value: &extensions,
        },
    }
    .to_der()
    .map_err(enc("tbsCertificate"))
}
