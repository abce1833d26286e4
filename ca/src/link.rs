//! Root key rollover link certificates (RFC 4210 §4.4.1): when a root CA replaces its key, it
//! publishes `OldWithNew` (the old public key certified by the new private key) and
//! `NewWithOld` (the new public key certified by the old private key), so that a relying party
//! trusting either root can validate certificates issued under the other.
//!
//! A link certificate carries the certified root's own subject, public key and extensions
//! (basicConstraints, keyUsage, subjectKeyIdentifier, ...) — so that certificates below the
//! certified key chain to it by name and key identifier — with the signing root as issuer and
//! the signing key's identifier as authorityKeyIdentifier (RFC 5280 §4.2.1.1). Its validity ends
//! with the old root's (RFC 4210 §4.4.1: links are needed until the old key's certificates
//! expire), and never after either root's.

use std::time::{Duration, SystemTime};

use der::{Decode, Encode};
use hsm::KeyStore;
use profiles::CertProfile;
use x509_cert::certificate::Certificate;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlDistributionPoints};
use x509_cert::time::Time;

use crate::error::enc;
use crate::extensions::{crl_distribution_points, ext};
use crate::sign::{sign_certificate, Prepared};
use crate::{CaError, IssuedCert, Issuer, Result};

/// The two link certificates of a root rollover.
#[derive(Debug, Clone)]
pub struct RootLinks {
    /// Old root public key signed by the new root key (issuer = new root).
    pub old_with_new: IssuedCert,
    /// New root public key signed by the old root key (issuer = old root).
    pub new_with_old: IssuedCert,
}

/// Create `OldWithNew` and `NewWithOld` for a rollover from root `old` to root `new` (both
/// self-signed CA certificates whose keys are in `store`).
/// `profile` is the roots' certificate profile: when it names a CRL distribution point (an
/// ICAO 9303 CSCA, Doc 9303-12 Table 6: mandatory in a CSCA link certificate too), each link
/// names the CRL of the key that signed it, where its revocation would be listed.
pub fn root_link_certificates(
    store: &dyn KeyStore,
    old: &Issuer,
    new: &Issuer,
    profile: &CertProfile,
    now: SystemTime,
) -> Result<RootLinks> {
    let end = old.not_after().min(new.not_after());
    let cdp = profile.crl_distribution_point.as_deref();
    Ok(RootLinks {
        old_with_new: link_certificate(store, new, old.cert_der(), cdp, now, end)?,
        new_with_old: link_certificate(store, old, new.cert_der(), cdp, now, end)?,
    })
}

/// Certify the public key of the CA certificate `certified_der` with `signer`'s key: same
/// subject, key and extensions (authorityKeyIdentifier replaced by the signer's key id, and
/// with `crl_template` the CRL distribution point filled for the signer), issuer = the
/// signer's subject, valid from `now` until `not_after` (capped by both CAs).
pub fn link_certificate(
    store: &dyn KeyStore,
    signer: &Issuer,
    certified_der: &[u8],
    crl_template: Option<&str>,
    now: SystemTime,
    not_after: SystemTime,
) -> Result<IssuedCert> {
    use const_oid::AssociatedOid;
    let certified = Certificate::from_der(certified_der).map_err(|e| CaError::Certificate {
        reason: e.to_string(),
    })?;
    let tbs = certified.tbs_certificate();
    let certified_end = tbs.validity().not_after.to_system_time();
    let end = not_after.min(certified_end).min(signer.not_after());
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| enc::<&str>("validity")("clock is before 1970"))?
        .as_secs();
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    if end <= start {
        return Err(CaError::Issuer {
            label: signer.key_label().to_owned(),
            rule: "a link certificate would end before it starts (a root has expired)".into(),
        });
    }
    let aki = ext(
        AuthorityKeyIdentifier::OID,
        false,
        &AuthorityKeyIdentifier {
            key_identifier: Some(der::asn1::OctetString::new(signer.key_id()).map_err(enc("AKI"))?),
            ..Default::default()
        },
    )?;
    let mut extensions: Vec<_> = tbs
        .extensions()
        .map(|e| e.to_vec())
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e.extn_id != AuthorityKeyIdentifier::OID
                && (crl_template.is_none() || e.extn_id != CrlDistributionPoints::OID)
        })
        .collect();
    extensions.push(aki);
    if let Some(t) = crl_template {
        extensions.push(crl_distribution_points(
            t,
            signer.key_label(),
            &signer.key_id_hex,
        )?);
    }
    // Re-encode the SPKI through der so the builder gets an owned value.
    let spki = spki::SubjectPublicKeyInfoOwned::from_der(
        &tbs.subject_public_key_info()
            .to_der()
            .map_err(enc("certified public key"))?,
    )
    .map_err(enc("certified public key"))?;
    let cert = sign_certificate(
        store,
        signer.key_label(),
        signer.public,
        Prepared {
            issuer: signer.certificate().tbs_certificate().subject().clone(),
            subject: tbs.subject().clone(),
            extensions,
        },
        spki,
        Time::try_from(start).map_err(enc("notBefore"))?,
        Time::try_from(end).map_err(enc("notAfter"))?,
    )?;
    tracing::info!(signer = %signer.key_label(), serial = %cert.serial_hex(), "issued root link certificate");
    Ok(cert)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memstore::MemStore;
    use p256::ecdsa::signature::Verifier;

    fn verify_signed_by(cert_der: &[u8], issuer: &Issuer) {
        let c = Certificate::from_der(cert_der).unwrap();
        let tbs = c.tbs_certificate().to_der().unwrap();
        let sig = p256::ecdsa::DerSignature::from_bytes(c.signature().raw_bytes()).unwrap();
        issuer
            .public
            .verify(&tbs, &sig)
            .expect("signed by the issuer's key");
    }

    #[test]
    fn link_certificates_certify_each_root_key_with_the_other_and_keep_subject_and_ski() {
        let store = MemStore::new();
        let set = profiles::builtin().unwrap();
        let prof = set.cert("root-ca").unwrap();
        let now = SystemTime::now();
        store.generate_p256("root-1").unwrap();
        store.generate_p256("root-2").unwrap();
        let old = crate::create_root(&store, prof, "root-1", now).unwrap();
        let new = crate::create_root(&store, prof, "root-2", now).unwrap();
        let links = root_link_certificates(&store, &old, &new, prof, now).unwrap();

        let own = Certificate::from_der(&links.old_with_new.der).unwrap();
        let t = own.tbs_certificate();
        let old_t = old.certificate().tbs_certificate();
        assert_eq!(t.subject(), old_t.subject());
        assert_eq!(t.issuer(), new.certificate().tbs_certificate().subject());
        assert_eq!(t.subject_public_key_info(), old_t.subject_public_key_info());
        let (_, aki) = t
            .get_extension::<AuthorityKeyIdentifier>()
            .unwrap()
            .unwrap();
        assert_eq!(aki.key_identifier.unwrap().as_bytes(), new.key_id());
        let (_, ski) = t
            .get_extension::<x509_cert::ext::pkix::SubjectKeyIdentifier>()
            .unwrap()
            .unwrap();
        assert_eq!(ski.0.as_bytes(), old.key_id());
        verify_signed_by(&links.old_with_new.der, &new);
        verify_signed_by(&links.new_with_old.der, &old);
        assert!(links.new_with_old.not_after <= old.not_after());
        assert_eq!(links.old_with_new.issuer_key_label, "root-2");
        assert_eq!(links.new_with_old.issuer_key_label, "root-1");
    }
}
