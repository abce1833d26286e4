//! A CA that can sign: its HSM key paired with its CA certificate (checked to belong
//! together), and the extensions it has encoded per profile.

use std::time::SystemTime;

use der::{Decode, Encode};
use hsm::KeyStore;
use p256::ecdsa::VerifyingKey;
use profiles::{CertProfile, SkiMethod};
use x509_cert::certificate::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use x509_cert::name::Name;

use crate::error::{enc, CaError, Result};
use crate::extensions::{extensions, ExtContext};
use crate::keys::{key_identifier, p256_key};
use crate::signer::ECDSA_WITH_SHA256;
use crate::template;

/// Per-issuer memo of profile-derived extensions (see [`Issuer::extensions_for`]).
pub(crate) type ExtCache = std::sync::Arc<
    std::sync::Mutex<Vec<(CertProfile, std::sync::Arc<template::ExtensionTemplate>)>>,
>;

/// A CA that can sign: its HSM key label and its certificate, checked to belong together.
#[derive(Debug, Clone)]
pub struct Issuer {
    pub(crate) key_label: String,
    pub(crate) cert: Certificate,
    pub(crate) cert_der: Vec<u8>,
    pub(crate) public: VerifyingKey,
    pub(crate) key_id: Vec<u8>,
    pub(crate) key_id_hex: String,
    pub(crate) path_len: Option<u8>,
    /// The CA certificate's notAfter, converted once (every issuance checks against it).
    pub(crate) not_after: SystemTime,
    /// The issuer name and signature algorithm, encoded once for every certificate it signs.
    pub(crate) parts: template::IssuerParts,
    /// Extensions that depend only on (profile, this issuer), encoded, per profile seen; the
    /// SKI entry is replaced per certificate. Keyed by the profile's digest (its name and the
    /// text it was loaded from), so a profile edited and reloaded gets a new entry.
    pub(crate) ext_cache: ExtCache,
}

impl Issuer {
    /// Pair the HSM key `key_label` with its CA certificate (DER). Fails unless the
    /// certificate is a CA certificate (basicConstraints cA, keyUsage keyCertSign) whose public
    /// key is the HSM key's public key.
    pub fn new(store: &dyn KeyStore, key_label: &str, cert_der: &[u8]) -> Result<Issuer> {
        let cert = Certificate::from_der(cert_der).map_err(|e| CaError::Certificate {
            reason: e.to_string(),
        })?;
        let issuer_err = |rule: &str| CaError::Issuer {
            label: key_label.to_owned(),
            rule: rule.to_owned(),
        };
        let tbs = &cert.tbs_certificate();
        let bc = tbs
            .get_extension::<BasicConstraints>()
            .map_err(|e| issuer_err(&format!("basicConstraints does not decode: {e}")))?
            .map(|(_, bc)| bc)
            .filter(|bc| bc.ca)
            .ok_or_else(|| issuer_err("not a CA certificate (basicConstraints cA is not TRUE)"))?;
        if let Some((_, ku)) = tbs
            .get_extension::<KeyUsage>()
            .map_err(|e| issuer_err(&format!("keyUsage does not decode: {e}")))?
        {
            if !ku.key_cert_sign() {
                return Err(issuer_err("keyUsage lacks keyCertSign"));
            }
        }
        let cert_spki = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(enc("issuer public key"))?;
        let hsm_spki = store.public_key_spki(key_label)?;
        if hsm_spki != cert_spki {
            return Err(issuer_err(
                "the HSM key's public key is not the certificate's public key",
            ));
        }
        let public = p256_key(tbs.subject_public_key_info())?;
        let key_id = match tbs
            .get_extension::<SubjectKeyIdentifier>()
            .map_err(|e| issuer_err(&format!("subjectKeyIdentifier does not decode: {e}")))?
        {
            Some((_, ski)) => ski.0.as_bytes().to_vec(),
            None => key_identifier(SkiMethod::Rfc5280Sha1, tbs.subject_public_key_info()),
        };
        let not_after = tbs.validity().not_after.to_system_time();
        let parts = template::IssuerParts {
            name: template::Encoded::new(
                tbs.subject().to_der().map_err(enc("issuer name"))?,
                "issuer name",
            )?,
            algorithm: template::Encoded::new(
                spki::AlgorithmIdentifierOwned {
                    oid: ECDSA_WITH_SHA256,
                    parameters: None,
                }
                .to_der()
                .map_err(enc("signature algorithm"))?,
                "signature algorithm",
            )?,
        };
        Ok(Issuer {
            key_label: key_label.to_owned(),
            cert_der: cert_der.to_vec(),
            cert,
            public,
            key_id_hex: hex::encode(&key_id),
            key_id,
            path_len: bc.path_len_constraint,
            not_after,
            parts,
            ext_cache: Default::default(),
        })
    }

    /// HSM label of the signing key.
    pub fn key_label(&self) -> &str {
        &self.key_label
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA certificate, parsed.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// The key identifier (the certificate's subjectKeyIdentifier) that certificates and CRLs
    /// signed by this key carry as authorityKeyIdentifier.
    pub fn key_id(&self) -> &[u8] {
        &self.key_id
    }

    /// The CA certificate's notAfter.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    pub(crate) fn subject(&self) -> &Name {
        self.cert.tbs_certificate().subject()
    }

    /// [`extensions`] for `profile` under this issuer, from the cache when the same profile was
    /// used before, with the subjectKeyIdentifier set to `ctx.ski`.
    pub(crate) fn extensions_for(
        &self,
        profile: &CertProfile,
        ctx: &ExtContext<'_>,
    ) -> Result<std::sync::Arc<template::ExtensionTemplate>> {
        // Keyed by the profile's digest (name + source text), not by comparing whole profile
        // values: that comparison walks every string of two profile copies on every issuance,
        // the hot path the CA budget in docs/BENCHMARKS.md measures. Debug builds still compare
        // the whole value.
        let cached = self.ext_cache.lock().ok().and_then(|c| {
            c.iter()
                .find(|(p, _)| {
                    if profile.digest() == &[0u8; 32] {
                        // Not made by profiles::parse_cert_profile: no digest to key on.
                        p == profile
                    } else {
                        p.digest() == profile.digest() && p.name == profile.name
                    }
                })
                .map(|(p, e)| {
                    debug_assert!(
                        p == profile,
                        "profile {} was changed in memory after loading",
                        profile.name
                    );
                    std::sync::Arc::clone(e)
                })
        });
        if let Some(e) = cached {
            return Ok(e);
        }
        let e = std::sync::Arc::new(template::ExtensionTemplate::new(&extensions(
            profile, ctx,
        )?)?);
        if let Ok(mut c) = self.ext_cache.lock() {
            if c.len() < 32 {
                c.push((profile.clone(), std::sync::Arc::clone(&e)));
            }
        }
        Ok(e)
    }
}
