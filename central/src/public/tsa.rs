//! The time-stamping unit at `POST /tsa` (RFC 3161): a TimeStampReq
//! (`application/timestamp-query`) in, a TimeStampResp (`application/timestamp-reply`) out. The
//! token is CMS SignedData (RFC 5652) over a TSTInfo, signed by the active TSA key
//! `centre-tsa-<N>` in the centre's HSM (ECDSA P-256, SHA-256), whose certificate (profile `tsa`:
//! EKU timeStamping only, critical) the National Root CA issues. A key signs only within its
//! usage period (the certificate's privateKeyUsagePeriod, 15 months by default, as the CA/Browser
//! Forum Code Signing Baseline Requirements §6.3.2 bound a Timestamp Certificate's key), and
//! [`ensure_tsa`] rolls it over before that period ends; the certificate stays valid long after
//! (135 months by default, the same section's limit), so that its tokens can be verified. The
//! TSTInfo names
//! - the policy: the first policy of the `tsa` profile (a request asking for another is
//!   refused `unacceptedPolicy`);
//! - genTime: the system clock in whole seconds, with accuracy 1 second stated;
//! - a serial number of 127 random bits, unique by `tsa_tokens`' primary key (each token is
//!   recorded there: serial, time, imprint);
//! - the request's nonce, and the TSA certificate when `certReq` asks for it.
//!
//! Signed attributes: contentType id-ct-TSTInfo, messageDigest, and ESS signingCertificateV2
//! (RFC 5035, RFC 5816) naming the TSA certificate by its SHA-256.

use std::sync::Arc;
use std::time::SystemTime;

use axum::response::Response;
use cmpv2::status::{PkiFailureInfoValues, PkiStatus, PkiStatusInfo};
use cms02::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms02::content_info::{CmsVersion, ContentInfo};
use cms02::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use deadpool_postgres::Pool;
use hsm::KeyStore;
use x509_cert_02::attr::Attribute;
use x509_cert_02::der::asn1::{
    Any, GeneralizedTime, Int, ObjectIdentifier, OctetString, SetOfVec, Utf8StringRef,
};
use x509_cert_02::der::{Decode, Encode};
use x509_tsp::{Accuracy, TimeStampReq, TimeStampResp, TspVersion, TstInfo};

use super::asn1::{self, enc};
use super::Public;
use crate::audit;
use crate::error::{CentralError, Result};

/// The TSA keys' HSM labels: `centre-tsa-<N>`, N from 1, one more at each rollover.
pub const KEY_PREFIX: &str = "centre-tsa-";
/// The TSA certificate's profile.
pub const PROFILE: &str = "tsa";
/// A key rolls over when less than this part of its usage period is left (about 38 days of the
/// default 15 months): every instance picks the new key up within a refresh of the worker, long
/// before the old key's usage ends.
pub const ROLL_WHEN_LEFT: u32 = 12;

const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");

/// The time-stamping unit: its key, certificate and policy.
pub struct Tsa {
    pub key_label: String,
    pub cert_der: Vec<u8>,
    cert: x509_cert_02::Certificate,
    pub policy: ObjectIdentifier,
    /// The end of the key's usage period (its certificate's privateKeyUsagePeriod, else its
    /// notAfter): no token is signed with it afterwards.
    pub key_usage_until: SystemTime,
}

impl Tsa {
    /// Whether the key may sign a token at `now`: inside its usage period and its certificate's
    /// validity.
    pub fn signs_at(&self, now: SystemTime) -> bool {
        let validity = &self.cert.tbs_certificate.validity;
        now < self.key_usage_until
            && now >= validity.not_before.to_system_time()
            && now < validity.not_after.to_system_time()
    }
}

/// The active TSA key and certificate: the recorded one while more than a
/// [`ROLL_WHEN_LEFT`]th of its usage period is left and the HSM has its key; otherwise the
/// next ([`roll`]). Under a transaction advisory lock, so instances on one database roll once.
/// A rollover that fails (e.g. the active root may not certify a key for the profile's
/// validity) is logged and leaves the active key signing while it still may.
pub async fn ensure_tsa(
    pool: &Pool,
    store: &Arc<dyn KeyStore>,
    issuers: &std::collections::BTreeMap<String, ca::Issuer>,
    profiles: &profiles::ProfileSet,
    centre_name: &str,
) -> Result<Tsa> {
    let profile = profiles.cert(PROFILE)?;
    let policy = policy(profile)?;
    let usage_days = profile
        .private_key_usage_period
        .as_ref()
        .map_or(profile.validity.days, |p| p.days);
    let usage = std::time::Duration::from_secs(u64::from(usage_days) * 86_400);
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('idcentral.tsa'))",
        &[],
    )
    .await?;
    let now = SystemTime::now();
    let active = match tx
        .query_opt(
            "SELECT label, cert_der, key_usage_until FROM tsa_keys WHERE state = 'active'",
            &[],
        )
        .await?
    {
        Some(row) => Some(Tsa::new(row.get(0), row.get(1), policy, row.get(2))?),
        None => None,
    };
    let usable = match active {
        Some(t) if store.find(&t.key_label)?.is_some() && t.signs_at(now) => Some(t),
        _ => None,
    };
    if let Some(t) = &usable {
        let left = t.key_usage_until.duration_since(now).unwrap_or_default();
        if left > usage / ROLL_WHEN_LEFT {
            tx.commit().await?;
            return usable.ok_or(CentralError::NotInitialised);
        }
    }
    let rolled = roll(&tx, store, issuers, profile, policy, centre_name, now).await;
    match (rolled, usable) {
        (Ok(new), _) => {
            tx.commit().await?;
            Ok(new)
        }
        (Err(e), Some(t)) => {
            tracing::warn!(error = %e, key = %t.key_label,
                until = %crate::public::http_date(t.key_usage_until),
                "could not roll the time-stamping key over: the active key signs until its usage period ends");
            Ok(t)
        }
        (Err(e), None) => Err(e),
    }
}

/// Make `centre-tsa-<N+1>` the active TSA key in `tx`: its key generated in the HSM unless an
/// interrupted rollover left it there, certified by the active National Root CA; the old row
/// retired (kept: tokens name their key); audited `tsa.certified` with `replaces`.
async fn roll(
    tx: &deadpool_postgres::Transaction<'_>,
    store: &Arc<dyn KeyStore>,
    issuers: &std::collections::BTreeMap<String, ca::Issuer>,
    profile: &profiles::CertProfile,
    policy: ObjectIdentifier,
    centre_name: &str,
    now: SystemTime,
) -> Result<Tsa> {
    let replaces: Option<String> = tx
        .query_opt("SELECT label FROM tsa_keys WHERE state = 'active'", &[])
        .await?
        .map(|r| r.get(0));
    let last: Option<i32> = tx
        .query_one(
            "SELECT max(substring(label FROM '^centre-tsa-([0-9]{1,9})$')::int) FROM tsa_keys",
            &[],
        )
        .await?
        .get(0);
    let n = last.unwrap_or(0) + 1;
    let label = format!("{KEY_PREFIX}{n}");
    let root_label: String = tx
        .query_one(
            "SELECT label FROM ca_keys WHERE ca = 'root' AND state = 'active'",
            &[],
        )
        .await?
        .get(0);
    let root = issuers
        .get(&root_label)
        .ok_or(CentralError::NotInitialised)?;
    if store.find(&label)?.is_none() {
        store.generate_p256(&label)?;
    }
    let cert = ca::issue_station_cert(
        store.as_ref(),
        profile,
        root,
        &store.public_key_spki(&label)?,
        &format!("idstation Time-Stamping Unit {n}"),
        now,
    )?;
    let key_usage_until = ca::private_key_usage_end(&cert.der)?.unwrap_or(cert.not_after);
    tx.execute(
        "UPDATE tsa_keys SET state = 'retired', retired_at = now() WHERE state = 'active'",
        &[],
    )
    .await?;
    tx.execute(
        "INSERT INTO tsa_keys (label, cert_der, not_after, serial, key_usage_until)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &label,
            &cert.der,
            &cert.not_after,
            &cert.serial,
            &key_usage_until,
        ],
    )
    .await?;
    let details = serde_json::json!({
        "key": label, "serial": cert.serial_hex(), "policy": policy.to_string(),
        "issuer_key": root_label,
        "not_after": crate::public::http_date(cert.not_after),
        "key_usage_until": crate::public::http_date(key_usage_until),
        "replaces": replaces,
        "fingerprint_sha256": ca::fingerprint_sha256(&cert.der)?,
    });
    audit::append(
        tx,
        &super::centre_actor(centre_name),
        "tsa.certified",
        &format!("tsa:{label}"),
        &details,
    )
    .await?;
    tracing::info!(key = %label, serial = %cert.serial_hex(), replaces = ?replaces,
        "certified the time-stamping unit");
    Tsa::new(label, cert.der, policy, key_usage_until)
}

impl Tsa {
    fn new(
        key_label: String,
        cert_der: Vec<u8>,
        policy: ObjectIdentifier,
        key_usage_until: SystemTime,
    ) -> Result<Self> {
        Ok(Tsa {
            key_label,
            cert: asn1::cert02(&cert_der)?,
            cert_der,
            policy,
            key_usage_until,
        })
    }
}

/// The TSA policy: the first policy of the `tsa` profile (RFC 3161 §2.4.2).
fn policy(profile: &profiles::CertProfile) -> Result<ObjectIdentifier> {
    profile
        .policies
        .first()
        .ok_or_else(|| {
            CentralError::invalid(
                "profile tsa",
                "policies: the first policy is the TSA policy (RFC 3161 §2.4.2); there is none",
            )
        })
        .and_then(|p| {
            ObjectIdentifier::new(&p.oid.0.to_string())
                .map_err(|e| CentralError::Other(format!("TSA policy OID: {e}")))
        })
}

/// A refused request as a TimeStampResp (RFC 3161 §2.4.2: status rejection, the failure and a
/// sentence naming the rule), logged.
fn rejection(fail: PkiFailureInfoValues, why: &str) -> Response {
    tracing::info!(reason = why, "time-stamp request refused");
    let text = Utf8StringRef::new(why).ok();
    let resp = TimeStampResp {
        status: PkiStatusInfo {
            status: PkiStatus::Rejection,
            status_string: text.map(|t| vec![t]),
            fail_info: Some(fail.into()),
        },
        time_stamp_token: None,
    };
    super::signed_object(
        "application/timestamp-reply",
        resp.to_der().unwrap_or_default(),
        None,
    )
}

/// Answer one request body (see the module documentation).
pub async fn answer(public: &Arc<Public>, content_type: &str, body: &[u8]) -> Response {
    if !content_type.starts_with("application/timestamp-query") {
        return rejection(
            PkiFailureInfoValues::BadRequest,
            "Content-Type: must be application/timestamp-query (RFC 3161 §3.4)",
        );
    }
    let req = match TimeStampReq::from_der(body) {
        Ok(r) => r,
        Err(_) => {
            return rejection(
                PkiFailureInfoValues::BadDataFormat,
                "body: not a DER TimeStampReq (RFC 3161 §2.4.1)",
            )
        }
    };
    let imprint = &req.message_imprint;
    match asn1::digest_len(&imprint.hash_algorithm.oid) {
        None => {
            return rejection(
                PkiFailureInfoValues::BadAlg,
                "messageImprint.hashAlgorithm: must be SHA-1, SHA-256, SHA-384 or SHA-512",
            )
        }
        Some(n) if n != imprint.hashed_message.as_bytes().len() => {
            return rejection(
                PkiFailureInfoValues::BadDataFormat,
                "messageImprint.hashedMessage: its length is not the hash algorithm's",
            )
        }
        Some(_) => {}
    }
    let tsa = match public.signing_tsa().await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "no time-stamping key can sign now");
            return rejection(
                PkiFailureInfoValues::SystemFailure,
                "the time-stamping unit has no key in its usage period now; try again later",
            );
        }
    };
    if req.req_policy.is_some_and(|p| p != tsa.policy) {
        return rejection(
            PkiFailureInfoValues::UnacceptedPolicy,
            "reqPolicy: this TSA time-stamps under its own policy only",
        );
    }
    match token(public, &tsa, &req).await {
        Ok(der) => super::signed_object("application/timestamp-reply", der, None),
        Err(e) => {
            tracing::error!(error = %e, "time-stamp failed");
            rejection(
                PkiFailureInfoValues::SystemFailure,
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

/// Record, sign and encode one granted TimeStampResp.
async fn token(public: &Arc<Public>, tsa: &Arc<Tsa>, req: &TimeStampReq) -> Result<Vec<u8>> {
    let now = SystemTime::now();
    let gen_time: GeneralizedTime = asn1::generalized(now)?;
    let client = public.centre.pool.get().await?;
    let serial = random_serial()?;
    client
        .execute(
            "INSERT INTO tsa_tokens (serial, gen_time, imprint_alg, imprint, tsa_key)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &serial,
                &gen_time.to_system_time(),
                &req.message_imprint.hash_algorithm.oid.to_string(),
                &req.message_imprint.hashed_message.as_bytes(),
                &tsa.key_label,
            ],
        )
        .await?;
    drop(client);
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
    tokio::task::spawn_blocking(move || {
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
    .map_err(|e| CentralError::Other(format!("time-stamp signing task: {e}")))?
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
