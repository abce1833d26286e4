//! Building and signing a certificate (RFC 5280 §4.1): the tbsCertificate from a resolved
//! profile, its serial number and validity, and the HSM signature over it.

use std::time::{Duration, SystemTime};

use der::asn1::BitString;
use der::{Decode, Encode};
use hsm::KeyStore;
use p256::ecdsa::{DerSignature, VerifyingKey};
use profiles::CertProfile;
use spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::error::{enc, CaError, Result};
use crate::issuer::Issuer;
use crate::signer::HsmSigner;

/// A certificate just issued, with what the registry records about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    pub der: Vec<u8>,
    /// Serial number, big-endian unsigned bytes (16 bytes).
    pub serial: Vec<u8>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// HSM label of the key that signed it.
    pub issuer_key_label: String,
}

impl IssuedCert {
    /// Serial number as lower-case hex.
    pub fn serial_hex(&self) -> String {
        hex::encode(&self.serial)
    }
}

/// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }`
/// (RFC 5280 §4.1), every part already encoded.
#[derive(der::Sequence)]
pub(crate) struct CertificateRef<'a> {
    pub(crate) tbs: der::asn1::AnyRef<'a>,
    pub(crate) algorithm: der::asn1::AnyRef<'a>,
    pub(crate) signature: der::asn1::BitStringRef<'a>,
}

/// A profile resolved for one certificate, handed to `x509-cert`'s builder.
pub(crate) struct Prepared {
    pub(crate) issuer: Name,
    pub(crate) subject: Name,
    pub(crate) extensions: Vec<Extension>,
}

impl BuilderProfile for Prepared {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        _spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        Ok(self.extensions.clone())
    }
}

pub(crate) fn sign_certificate(
    store: &dyn KeyStore,
    signer_label: &str,
    signer_public: VerifyingKey,
    prepared: Prepared,
    spki: SubjectPublicKeyInfoOwned,
    not_before: Time,
    not_after: Time,
) -> Result<IssuedCert> {
    let serial = random_serial()?;
    let serial_number = SerialNumber::new(&serial).map_err(enc("serial number"))?;
    let validity = Validity::new(not_before, not_after);
    let mut builder = CertificateBuilder::new(prepared, serial_number, validity, spki)
        .map_err(enc("certificate"))?;
    let signer = HsmSigner::new(store, signer_label, signer_public);
    // x509-cert's builder assembles and encodes the tbsCertificate; the signed certificate is
    // then written around those exact bytes (Builder::build followed by to_der would encode the
    // whole tbsCertificate a second time, the largest software cost of an issuance).
    let tbs_der = builder.finalize(&signer).map_err(enc("tbsCertificate"))?;
    sign_tbs(&signer, tbs_der, serial, not_before, not_after)
}

/// Sign an encoded tbsCertificate in the HSM and wrap it into the Certificate.
pub(crate) fn sign_tbs(
    signer: &HsmSigner<'_>,
    tbs_der: Vec<u8>,
    serial: Vec<u8>,
    not_before: Time,
    not_after: Time,
) -> Result<IssuedCert> {
    let signature: DerSignature =
        signature::Signer::try_sign(signer, &tbs_der).map_err(|e| match signer.take_error() {
            Some(h) => CaError::Hsm(h),
            None => CaError::Encoding {
                what: "certificate signature from the HSM",
                reason: e.to_string(),
            },
        })?;
    let der = SignedBytes {
        tbs: der::asn1::AnyRef::from_der(&tbs_der).map_err(enc("tbsCertificate"))?,
        algorithm: spki::DynSignatureAlgorithmIdentifier::signature_algorithm_identifier(signer)
            .map_err(enc("signature algorithm"))?,
        signature: spki::SignatureBitStringEncoding::to_bitstring(&signature)
            .map_err(enc("signature"))?,
    }
    .to_der()
    .map_err(enc("certificate"))?;
    Ok(IssuedCert {
        der,
        serial,
        not_before: not_before.to_system_time(),
        not_after: not_after.to_system_time(),
        issuer_key_label: signer.key_label().to_owned(),
    })
}

/// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }`
/// (RFC 5280 §4.1) around an already encoded tbsCertificate.
#[derive(der::Sequence)]
pub(crate) struct SignedBytes<'a> {
    pub(crate) tbs: der::asn1::AnyRef<'a>,
    pub(crate) algorithm: spki::AlgorithmIdentifierOwned,
    pub(crate) signature: BitString,
}

/// 16 bytes from the OS CSPRNG, made positive (top bit clear) and of fixed length (second bit
/// set): 126 random bits, RFC 5280 §4.1.2.2 (positive, at most 20 octets). The bytes come from
/// [`serial_randomness`].
pub(crate) fn random_serial() -> Result<Vec<u8>> {
    let mut b = vec![0u8; 16];
    serial_randomness(&mut b)?;
    b[0] = (b[0] & 0x7f) | 0x40;
    Ok(b)
}

/// Bytes of OS CSPRNG output (`getrandom`) fetched per thread in blocks of [`POOL_BYTES`]
/// and handed out once each: one system call per 64 serial numbers instead of one per
/// certificate, because a system call per certificate (and the cache lines it evicts) is a
/// visible share of an issuance next to the HSM signature (docs/BENCHMARKS.md, the CA).
///
/// A forked child inherits a copy of this thread-local pool, so parent and child would hand
/// out the same bytes. A `pthread_atfork` child handler therefore bumps [`FORK_GENERATION`],
/// and a pool filled in another generation is discarded before use. (Processes started with
/// `std::process::Command` exec at once and never run this code.) Handed-out bytes are zeroed
/// in the pool.
pub(crate) fn serial_randomness(out: &mut [u8]) -> Result<()> {
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicU64, Ordering};

    const POOL_BYTES: usize = 1024;
    static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
    static AT_FORK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    extern "C" fn forked_child() {
        // Async-signal-safe: one atomic increment.
        FORK_GENERATION.fetch_add(1, Ordering::SeqCst);
    }
    struct Pool {
        bytes: [u8; POOL_BYTES],
        next: usize,
        generation: u64,
    }
    thread_local! {
        static POOL: RefCell<Pool> = const {
            RefCell::new(Pool { bytes: [0; POOL_BYTES], next: POOL_BYTES, generation: 0 })
        };
    }
    let random = |e: getrandom::Error| CaError::Random(e.to_string());
    if out.len() > POOL_BYTES {
        return getrandom::fill(out).map_err(random);
    }
    let registered = *AT_FORK.get_or_init(|| {
        // SAFETY: registers a handler that only performs an atomic increment.
        unsafe { libc::pthread_atfork(None, None, Some(forked_child)) == 0 }
    });
    if !registered {
        // Without the fork guard, no pool.
        return getrandom::fill(out).map_err(random);
    }
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let generation = FORK_GENERATION.load(Ordering::SeqCst);
        if pool.generation != generation || pool.next + out.len() > POOL_BYTES {
            getrandom::fill(&mut pool.bytes).map_err(random)?;
            pool.next = 0;
            pool.generation = generation;
        }
        let at = pool.next;
        out.copy_from_slice(&pool.bytes[at..at + out.len()]);
        pool.bytes[at..at + out.len()].fill(0);
        pool.next += out.len();
        Ok(())
    })
}

pub(crate) fn validity(
    profile: &CertProfile,
    now: SystemTime,
    issuer: Option<&Issuer>,
) -> Result<(Time, Time)> {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| enc::<&str>("validity")("clock is before 1970"))?
        .as_secs();
    let nb = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    // notAfter is inclusive (RFC 5280 §4.1.2.5): the last second of the `days` period.
    let days = u64::from(profile.validity.days.max(1));
    let na = nb + Duration::from_secs(days * 86_400 - 1);
    if let Some(i) = issuer {
        if na > i.not_after() {
            return Err(CaError::OutlivesIssuer {
                not_after: Time::try_from(na)
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
                issuer_not_after: i.cert.tbs_certificate().validity().not_after.to_string(),
            });
        }
    }
    Ok((
        Time::try_from(nb).map_err(enc("notBefore"))?,
        Time::try_from(na).map_err(enc("notAfter"))?,
    ))
}
