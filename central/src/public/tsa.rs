//! The time-stamping unit at `POST /tsa` (RFC 3161): a TimeStampReq
//! (`application/timestamp-query`) in, a TimeStampResp (`application/timestamp-reply`) out. The
//! token is CMS SignedData (RFC 5652) over a TSTInfo, signed by the active TSA key
//! `centre-tsa-<N>` in the centre's HSM (ECDSA P-256, SHA-256), whose certificate (profile `tsa`:
//! EKU timeStamping only, critical) the National Root CA issues; the key signs only within its
//! usage period and rolls over before it ends ([`super::tsa_keys`]). The TSTInfo names
//! - the policy: the first policy of the `tsa` profile (a request asking for another is
//!   refused `unacceptedPolicy`);
//! - genTime: the system clock in whole seconds, with accuracy 1 second stated;
//! - a serial number of 127 random bits, unique by `tsa_tokens`' primary key (each token is
//!   recorded there: serial, time, imprint);
//! - the request's nonce, and the TSA certificate when `certReq` asks for it.
//!
//! Signed attributes: contentType id-ct-TSTInfo, messageDigest, and ESS signingCertificateV2
//! (RFC 5035, RFC 5816) naming the TSA certificate by its SHA-256.

use crate::db::Prepared;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::response::Response;
use cmpv2::status::{PkiStatus, PkiStatusInfo};
use cms02::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms02::content_info::{CmsVersion, ContentInfo};
use cms02::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use hsm::KeyStore;
use x509_cert_02::attr::Attribute;
use x509_cert_02::der::asn1::BitString;
use x509_cert_02::der::asn1::{
    Any, GeneralizedTime, Int, ObjectIdentifier, OctetString, SetOfVec, Utf8StringRef,
};
use x509_cert_02::der::{Decode, Encode, EncodeValue, FixedTag, Length, Tag, Writer};
use x509_tsp::{Accuracy, TimeStampReq, TimeStampResp, TspVersion, TstInfo};

use super::asn1::{self, enc};
use super::tsa_keys::Tsa;
use super::Public;
use crate::error::{CentralError, Result};

const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");

/// The PKIFailureInfo bits a TSA answers with (RFC 3161 §2.4.2), by their position in the BIT
/// STRING. (`cmpv2` 0.2's `PkiFailureInfoValues` gives these positions as flag masks —
/// `UnacceptedExtension = 16` is the mask of bit 4, badCertId — so the failure is encoded here
/// as the BIT STRING it is.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailInfo {
    BadAlg = 0,
    BadRequest = 2,
    BadDataFormat = 5,
    UnacceptedPolicy = 15,
    UnacceptedExtension = 16,
    SystemFailure = 25,
}

impl FailInfo {
    /// The named bit alone, in DER: no trailing zero bits (X.690 §11.2.2).
    fn bits(self) -> x509_cert_02::der::Result<BitString> {
        let n = self as usize;
        let mut bytes = vec![0u8; n / 8 + 1];
        bytes[n / 8] = 0x80 >> (n % 8);
        BitString::new(7 - (n % 8) as u8, bytes)
    }
}

/// PKIStatusInfo with status rejection, one statusString and failInfo (RFC 3161 §2.4.2).
struct Rejected<'a> {
    text: Vec<Utf8StringRef<'a>>,
    fail: BitString,
}

impl FixedTag for Rejected<'_> {
    const TAG: Tag = Tag::Sequence;
}

impl EncodeValue for Rejected<'_> {
    fn value_len(&self) -> x509_cert_02::der::Result<Length> {
        (PkiStatus::Rejection.encoded_len()? + self.text.encoded_len()?)?
            + self.fail.encoded_len()?
    }
    fn encode_value(&self, w: &mut impl Writer) -> x509_cert_02::der::Result<()> {
        PkiStatus::Rejection.encode(w)?;
        self.text.encode(w)?;
        self.fail.encode(w)
    }
}

/// TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken absent }.
struct RejectedResp<'a>(Rejected<'a>);

impl FixedTag for RejectedResp<'_> {
    const TAG: Tag = Tag::Sequence;
}

impl EncodeValue for RejectedResp<'_> {
    fn value_len(&self) -> x509_cert_02::der::Result<Length> {
        self.0.encoded_len()
    }
    fn encode_value(&self, w: &mut impl Writer) -> x509_cert_02::der::Result<()> {
        self.0.encode(w)
    }
}

/// The DER of a TimeStampResp refusing a request with `fail` and the sentence `why`.
fn rejection_der(fail: FailInfo, why: &str) -> x509_cert_02::der::Result<Vec<u8>> {
    RejectedResp(Rejected {
        text: vec![Utf8StringRef::new(why)?],
        fail: fail.bits()?,
    })
    .to_der()
}

/// A refused request as a TimeStampResp (RFC 3161 §2.4.2: status rejection, the failure and a
/// sentence naming the rule), logged.
fn rejection(fail: FailInfo, why: &str) -> Response {
    tracing::info!(reason = why, ?fail, "time-stamp request refused");
    super::signed_object(
        "application/timestamp-reply",
        rejection_der(fail, why).unwrap_or_default(),
        None,
    )
}

/// Answer one request body (see the module documentation).
pub async fn answer(public: &Arc<Public>, content_type: &str, body: &[u8]) -> Response {
    if !content_type.starts_with("application/timestamp-query") {
        return rejection(
            FailInfo::BadRequest,
            "Content-Type: must be application/timestamp-query (RFC 3161 §3.4)",
        );
    }
    let req = match TimeStampReq::from_der(body) {
        Ok(r) => r,
        Err(_) => {
            return rejection(
                FailInfo::BadDataFormat,
                "body: not a DER TimeStampReq (RFC 3161 §2.4.1)",
            )
        }
    };
    let imprint = &req.message_imprint;
    match asn1::digest_len(&imprint.hash_algorithm.oid) {
        None => {
            return rejection(
                FailInfo::BadAlg,
                "messageImprint.hashAlgorithm: must be SHA-1, SHA-256, SHA-384 or SHA-512",
            )
        }
        Some(n) if n != imprint.hashed_message.as_bytes().len() => {
            return rejection(
                FailInfo::BadDataFormat,
                "messageImprint.hashedMessage: its length is not the hash algorithm's",
            )
        }
        Some(_) => {}
    }
    let tsa = match public.tsa.signing(&public.centre).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "no time-stamping key can sign now");
            return rejection(
                FailInfo::SystemFailure,
                "the time-stamping unit has no key in its usage period now; try again later",
            );
        }
    };
    if req.req_policy.is_some_and(|p| p != tsa.policy) {
        return rejection(
            FailInfo::UnacceptedPolicy,
            "reqPolicy: this TSA time-stamps under its own policy only",
        );
    }
    // "If an extension … is not recognized by the server, the server SHALL not issue a token
    // and SHALL return a failure (unacceptedExtension)" (RFC 3161 §2.4.1): it knows none.
    if req.extensions.as_ref().is_some_and(|e| !e.is_empty()) {
        return rejection(
            FailInfo::UnacceptedExtension,
            "extensions: this TSA recognises no request extension (RFC 3161 §2.4.1)",
        );
    }
    match token(public, &tsa, &req).await {
        Ok(der) => super::signed_object("application/timestamp-reply", der, None),
        Err(e) => {
            tracing::error!(error = %e, "time-stamp failed");
            rejection(
                FailInfo::SystemFailure,
                "the time-stamping unit could not sign now; try again",
            )
        }
    }
}

/// A random positive 16-byte serial (127 bits of randomness, leading byte 0x40..=0x7f).
fn random_serial() -> Result<Vec<u8>> {
    let mut b = vec![0u8; 16];
    getrandom::fill(&mut b).map_err(|e| CentralError::Other(format!("random serial: {e}")))?;
    b[0] = (b[0] & 0x7f) | 0x40;
    Ok(b)
}

/// How far from its genTime a token may be signed: under the accuracy it states (1 s), less
/// the time a signature takes.
const MAX_OFF: Duration = Duration::from_millis(950);

/// Record, sign and encode one granted TimeStampResp.
async fn token(public: &Arc<Public>, tsa: &Arc<Tsa>, req: &TimeStampReq) -> Result<Vec<u8>> {
    // The token is recorded in a transaction committed once it is signed: a refused or failed
    // signature leaves no token recorded as issued.
    let mut client = public.centre.pool.get().await?;
    let tx = client.transaction().await?;
    let serial = random_serial()?;
    // The time is read once a connection is at hand and rounded to the nearest second (a
    // GeneralizedTime without fractions), and the token is signed within the accuracy it
    // states or not at all (below): genTime is its creation time ± 1 s.
    let now = SystemTime::now() + Duration::from_millis(500);
    let gen_time: GeneralizedTime = asn1::generalized(now)?;
    let gen_at = gen_time.to_system_time();
    tx.prepared_execute(
        "INSERT INTO tsa_tokens (serial, gen_time, imprint_alg, imprint, tsa_key)
             VALUES ($1, $2, $3, $4, $5)",
        &[
            &serial,
            &gen_at,
            &req.message_imprint.hash_algorithm.oid.to_string(),
            &req.message_imprint.hashed_message.as_bytes(),
            &tsa.key_label,
        ],
    )
    .await?;
    let tst = TstInfo {
        version: TspVersion::V1,
        policy: tsa.policy,
        message_imprint: req.message_imprint.clone(),
        serial_number: Int::new(&serial).map_err(enc("serialNumber"))?,
        gen_time,
        accuracy: Some(Accuracy {
            seconds: Some(1),
            millis: None,
            micros: None,
        }),
        ordering: false,
        nonce: req.nonce.clone(),
        tsa: None,
        extensions: None,
    };
    let tst_der = tst.to_der().map_err(enc("TSTInfo"))?;
    let store = Arc::clone(&public.centre.store);
    let tsa = Arc::clone(tsa);
    let with_cert = req.cert_req;
    let der = tokio::task::spawn_blocking(move || {
        let signing_at = SystemTime::now();
        let off = signing_at
            .duration_since(gen_at)
            .unwrap_or_else(|e| e.duration());
        if off >= MAX_OFF {
            return Err(CentralError::Other(format!(
                "the token would be signed {} ms from its genTime, past the accuracy it states",
                off.as_millis()
            )));
        }
        // The key's usage period may have ended since the request came in.
        if !tsa.signs_at(signing_at) {
            return Err(CentralError::Other(format!(
                "time-stamping key {} left its usage period before it signed",
                tsa.key_label
            )));
        }
        signed_response(
            store.as_ref(),
            &tsa.key_label,
            &tsa.cert,
            &tsa.cert_der,
            &tst_der,
            with_cert,
        )
    })
    .await
    .map_err(|e| CentralError::Other(format!("time-stamp signing task: {e}")))??;
    tx.commit().await?;
    Ok(der)
}

fn attribute(
    oid: ObjectIdentifier,
    value: &(impl x509_cert_02::der::EncodeValue + x509_cert_02::der::Tagged),
) -> Result<Attribute> {
    let any = Any::encode_from(value).map_err(enc("attribute"))?;
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![any]).map_err(enc("attribute"))?,
    })
}

/// The CMS SignedData token over `tst_der`, in a granted TimeStampResp, DER.
fn signed_response(
    store: &dyn KeyStore,
    key: &str,
    cert: &x509_cert_02::Certificate,
    cert_der: &[u8],
    tst_der: &[u8],
    with_cert: bool,
) -> Result<Vec<u8>> {
    use sha2::Digest;
    let sha256 = x509_cert_02::spki::AlgorithmIdentifierOwned {
        oid: asn1::SHA256,
        parameters: None,
    };
    let ess = asn1::SigningCertificateV2 {
        certs: vec![asn1::EssCertIdV2 {
            cert_hash: OctetString::new(sha2::Sha256::digest(cert_der).to_vec())
                .map_err(enc("ESSCertIDv2"))?,
        }],
    };
    let signed_attrs = SetOfVec::try_from(vec![
        attribute(ID_CONTENT_TYPE, &ID_CT_TST_INFO)?,
        attribute(
            ID_MESSAGE_DIGEST,
            &OctetString::new(sha2::Sha256::digest(tst_der).to_vec()).map_err(enc("digest"))?,
        )?,
        attribute(asn1::ID_AA_SIGNING_CERTIFICATE_V2, &ess)?,
    ])
    .map_err(enc("signed attributes"))?;
    // RFC 5652 §5.4: the signature covers the DER of the attributes as a SET OF.
    let to_sign = signed_attrs.to_der().map_err(enc("signed attributes"))?;
    let signature = store.sign_p256_sha256(key, &to_sign)?;
    let signer = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: sha256.clone(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: asn1::ecdsa_with_sha256(),
        signature: OctetString::new(signature).map_err(enc("signature"))?,
        unsigned_attrs: None,
    };
    let certificates = if with_cert {
        Some(CertificateSet(
            SetOfVec::try_from(vec![CertificateChoices::Certificate(cert.clone())])
                .map_err(enc("certificates"))?,
        ))
    } else {
        None
    };
    let signed = SignedData {
        version: CmsVersion::V3,
        digest_algorithms: SetOfVec::try_from(vec![sha256]).map_err(enc("digestAlgorithms"))?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_CT_TST_INFO,
            econtent: Some(
                Any::encode_from(&OctetString::new(tst_der.to_vec()).map_err(enc("eContent"))?)
                    .map_err(enc("eContent"))?,
            ),
        },
        certificates,
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer]).map_err(enc("signerInfos"))?),
    };
    let token = ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed).map_err(enc("SignedData"))?,
    };
    TimeStampResp {
        status: PkiStatusInfo {
            status: PkiStatus::Accepted,
            status_string: None,
            fail_info: None,
        },
        time_stamp_token: Some(token),
    }
    .to_der()
    .map_err(enc("TimeStampResp"))
}

#[cfg(test)]
mod tests {
    use super::{rejection_der, FailInfo};

    /// The failure is the one named bit of RFC 3161 §2.4.2's PKIFailureInfo, DER-encoded with
    /// no trailing zero bits (X.690 §11.2.2): unacceptedExtension (16) is the first bit of the
    /// third byte, 7 bits unused; systemFailure (25) the second bit of the fourth, 6 unused.
    #[test]
    fn a_refusal_carries_the_named_failure_bit() {
        let cases = [
            (FailInfo::BadAlg, &[0x07, 0x80][..]),
            (FailInfo::BadRequest, &[0x05, 0x20]),
            (FailInfo::BadDataFormat, &[0x02, 0x04]),
            (FailInfo::UnacceptedPolicy, &[0x00, 0x00, 0x01]),
            (FailInfo::UnacceptedExtension, &[0x07, 0x00, 0x00, 0x80]),
            (FailInfo::SystemFailure, &[0x06, 0x00, 0x00, 0x00, 0x40]),
        ];
        for (fail, value) in cases {
            let der = rejection_der(fail, "why").unwrap();
            // SEQUENCE { SEQUENCE { INTEGER 2, SEQUENCE { UTF8String "why" }, BIT STRING } }
            let mut inner = vec![0x02, 0x01, 0x02, 0x30, 0x05, 0x0c, 0x03, b'w', b'h', b'y'];
            inner.extend_from_slice(&[0x03, value.len() as u8]);
            inner.extend_from_slice(value);
            let mut want = vec![0x30, inner.len() as u8 + 2, 0x30, inner.len() as u8];
            want.extend_from_slice(&inner);
            assert_eq!(der, want, "{fail:?}");
        }
    }
}
